"""Evaluation (SPEC §4): call-by-value, by compilation to Python closures.

``compile_term`` turns an elaborated term into a function of an environment
*frame* (a Python list) once; running it walks no AST.  Variables are resolved to
frame slots at compile time; each lambda gets a flat frame holding the values it
captures, its parameters and its ``let``-bound locals, so a variable access is
one list index.  Builtins are looked up and specialised to the backend once, and
``let`` chains run in a loop, not by recursion.

Values: backend arrays for ``Real`` (0-d) and ``Tensor``; Python ``int``,
``bool``, ``()``, ``str``, tuples and lists; closures are Python callables of one
argument.
"""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Mapping

from lamad import gradient
from lamad.backend import get_backend
from lamad.builtins import AD_OPERATORS, BUILTINS, Runtime
from lamad.deep import collector_paused
from lamad.errors import LamError, LamRuntimeError
from lamad.gradient import ZERO, ZERO_BACKPROP, Backpropagator, force
from lamad.parser import surface_name
from lamad.syntax import (
    GRAD, REAL, TENSOR, App, FunType, If, Lam, Let, LinLam, ListLit, ListType, Lit, Pattern, Prim, PTuple, PVar,
    PWild, Span, Term, Tuple, TupleType, Type, Var, children, pattern_names,
)

Code = Callable[[list], Any]

_RUNTIME_ERRORS = (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError, FloatingPointError,
                   OSError, MemoryError)


class _Scope:
    """The frame layout of one function body: which slot holds which variable, and
    which slots are filled from the enclosing frame when the closure is made."""

    def __init__(self, parent: _Scope | None):
        self.parent = parent
        self.slots: dict[str, int] = {}
        self.size = 0
        self.captures: list[tuple[int, int]] = []  # (slot in parent frame, slot here)

    def new_slot(self) -> int:
        self.size += 1
        return self.size - 1

    def lookup(self, name: str) -> int | None:
        if name in self.slots:
            return self.slots[name]
        if self.parent is None:
            return None
        outer = self.parent.lookup(name)
        if outer is None:
            return None
        slot = self.slots[name] = self.new_slot()
        self.captures.append((outer, slot))
        return slot


class Compiler:
    """Compiles elaborated terms against a runtime and the values of the definitions
    above them (``globals_(name)`` returns a definition's value)."""

    def __init__(self, runtime: Runtime, globals_: Callable[[str], Any]):
        self.runtime = runtime
        self.globals = globals_
        self.scope = _Scope(None)
        self.impls: dict[str, Callable] = {}

    def compile_closed(self, term: Term) -> Callable[[], Any]:
        """A closed term as a thunk that evaluates it in a fresh frame."""
        scope = self.scope = _Scope(None)
        code = self.compile(term)
        return lambda: code([None] * scope.size)

    # ----------------------------------------------------------------- binding

    def bind_names(self, p: Pattern) -> list[tuple[str, int | None]]:
        """Allocate slots for the variables of ``p``; returns what :meth:`unbind` restores."""
        saved = []
        for name in pattern_names(p):
            saved.append((name, self.scope.slots.get(name)))
            self.scope.slots[name] = self.scope.new_slot()
        return saved

    def unbind(self, saved: list[tuple[str, int | None]]) -> None:
        for name, old in reversed(saved):
            if old is None:
                del self.scope.slots[name]
            else:
                self.scope.slots[name] = old

    def binder(self, p: Pattern) -> Callable[[list, Any], None]:
        """Code that stores a value matched against ``p`` into its (already allocated) slots."""
        if isinstance(p, PVar):
            slot = self.scope.slots[p.name]

            def bind_var(env, value):
                env[slot] = value
            return bind_var
        if isinstance(p, PWild):
            return lambda env, value: None
        assert isinstance(p, PTuple)
        if len(p.items) == 2 and all(isinstance(i, PVar) for i in p.items):
            first, second = (self.scope.slots[i.name] for i in p.items)

            def bind_pair(env, value):  # (x, x'), the pattern of every ←D binding: one unpacking
                env[first], env[second] = value
            return bind_pair
        parts = [self.binder(i) for i in p.items]

        def bind_tuple(env, value):
            for part, v in zip(parts, value):
                part(env, v)
        return bind_tuple

    # ----------------------------------------------------------------- terms

    def compile(self, t: Term) -> Code:
        if isinstance(t, Var):
            slot = self.scope.lookup(t.name)
            if slot is not None:
                return itemgetter(slot)
            value = self.globals(t.name)
            return lambda env: value
        if isinstance(t, Lit):
            if t.ty == GRAD:
                value = ZERO
            elif isinstance(t.value, float):
                value = self.runtime.backend.scalar(t.value)
            else:
                value = t.value
            return lambda env: value
        if isinstance(t, Prim):
            return self.prim(t)
        if isinstance(t, App):
            fn, arg = self.compile(t.fn), self.compile(t.arg)
            if t.ty == GRAD:
                return _send(fn, arg)
            return lambda env: fn(env)(arg(env))
        if isinstance(t, Let):
            return self.let_chain(t)
        if isinstance(t, (Lam, LinLam)):
            return self.lam(t)
        if isinstance(t, If):
            cond, then, orelse = self.compile(t.cond), self.compile(t.then), self.compile(t.orelse)
            return lambda env: then(env) if cond(env) else orelse(env)
        if isinstance(t, Tuple):
            items = [self.compile(i) for i in t.items]
            if len(items) == 2:
                first, second = items
                return lambda env: (first(env), second(env))
            return lambda env: tuple(i(env) for i in items)
        if isinstance(t, ListLit):
            items = [self.compile(i) for i in t.items]
            return lambda env: [i(env) for i in items]
        raise LamRuntimeError(f"cannot evaluate a {type(t).__name__} node", t.span)

    def let_chain(self, t: Let) -> Code:
        """A chain of ``let``s as one loop over its bindings; a binding to a variable is
        a plain store into its slot."""
        steps = []
        saved = []
        node: Term = t
        while isinstance(node, Let):
            code = self.compile(node.bound)
            saved.append(self.bind_names(node.pattern))
            if isinstance(node.pattern, PVar):
                steps.append((self.scope.slots[node.pattern.name], None, code))
            else:
                steps.append((None, self.binder(node.pattern), code))
            node = node.body
        body = self.compile(node)
        for s in reversed(saved):
            self.unbind(s)
        if len(steps) == 1:
            (slot, bind, code), = steps
            if bind is None:
                def let_var(env):
                    env[slot] = code(env)
                    return body(env)
                return let_var

            def let1(env):
                bind(env, code(env))
                return body(env)
            return let1

        def let_n(env):
            for slot, bind, code in steps:
                if bind is None:
                    env[slot] = code(env)
                else:
                    bind(env, code(env))
            return body(env)
        return let_n

    def lam(self, t: Lam | LinLam) -> Code:
        """A closure over a flat frame.  A linear function into ``d`` is a
        :class:`Backpropagator`; other closures remember their term and frame, so that
        :func:`lift` can make their ←D version when they are differentiated."""
        if isinstance(t, LinLam) and t.ty.cod == GRAD and isinstance(t.body, Lit):
            return lambda env: ZERO_BACKPROP  # λa ⊸ 0, the backpropagator of constants
        outer = self.scope
        scope = self.scope = _Scope(outer)
        try:
            self.bind_names(t.param)
            bind = self.binder(t.param)
            param = scope.slots[t.param.name] if isinstance(t.param, PVar) else None
            body = self.compile(t.body)
        finally:
            self.scope = outer
        captures, size = scope.captures, scope.size
        backprop = isinstance(t, LinLam) and t.ty.cod == GRAD
        source = None if backprop else _LamSource(t, scope, self)

        def make_closure(env):
            frame = [None] * size
            for outer_slot, slot in captures:
                frame[slot] = env[outer_slot]

            if param is not None:
                def closure(arg):
                    f = frame.copy()
                    f[param] = arg
                    return body(f)
            else:
                def closure(arg):
                    f = frame.copy()
                    bind(f, arg)
                    return body(f)
            if backprop:
                return Backpropagator(closure)
            closure.lamad = (source, frame)
            return closure
        return make_closure

    def prim(self, t: Prim) -> Code:
        """A builtin applied to its arguments; failures are located at the application."""
        if t.op in AD_OPERATORS:
            return self.ad(t)
        if t.op == "add" and t.ty == GRAD:
            fn = gradient.add
        else:
            if t.op not in self.impls:
                self.impls[t.op] = BUILTINS[t.op].impl(self.runtime)
            fn = self.impls[t.op]
        span, name = t.span, f"'{surface_name(t.op)}'"
        args = [self.compile(a) for a in t.args]

        def fail(e: Exception):
            return LamRuntimeError(f"{name}: {e}", span)

        if len(args) == 1:
            (a,) = args

            def prim1(env):
                x = a(env)
                try:
                    return fn(x)
                except LamError:
                    raise
                except _RUNTIME_ERRORS as e:
                    raise fail(e) from None
            return prim1
        if len(args) == 2:
            a, b = args

            def prim2(env):
                x, y = a(env), b(env)
                try:
                    return fn(x, y)
                except LamError:
                    raise
                except _RUNTIME_ERRORS as e:
                    raise fail(e) from None
            return prim2

        def prim_n(env):
            xs = [a(env) for a in args]
            try:
                return fn(*xs)
            except LamError:
                raise
            except _RUNTIME_ERRORS as e:
                raise fail(e) from None
        return prim_n


    def ad(self, t: Prim) -> Code:
        """``grad f``, ``value_and_grad f``, ``vjp f x`` (SPEC §3): ←D of the function value."""
        f, fty, runtime, span = self.compile(t.args[0]), t.args[0].ty, self.runtime, t.span
        if t.op == "vjp":
            x = self.compile(t.args[1])
            return lambda env: vjp(f(env), x(env), fty, runtime, span)
        with_value = t.op == "value_and_grad"
        return lambda env: grad(f(env), fty, runtime, span, with_value)


def _send(backprop: Code, cotangent: Code) -> Code:
    """``x' t`` at type ``d``: the cotangent ``t`` sent to the backpropagator ``x'``.
    When ``x'`` is the constant ``λa ⊸ 0`` the result is ``0`` whatever ``t`` is, so ``t``
    is not evaluated: the cotangents of constants (the data ``X`` of ``W @ X``, say) are
    never computed."""
    def send(env):
        target = backprop(env)
        if target is ZERO_BACKPROP:
            return ZERO
        return target(cotangent(env))
    return send


def evaluate(term: Term, runtime: Runtime | None = None, globals_: Mapping[str, Any] | None = None) -> Any:
    """Evaluate an elaborated term (its free names looked up in ``globals_``) on
    ``runtime`` (default: the default backend, paths relative to the working directory)."""
    if runtime is None:
        runtime = Runtime(get_backend(), Path.cwd())
    env = dict(globals_ or {})
    return Compiler(runtime, env.__getitem__).compile_closed(term)()


# --------------------------------------------------------------------- differentiation


class _LamSource:
    """What a closure needs to be differentiated: its elaborated term, where its
    captured variables sit in its frame, and how to find the definitions it uses."""

    def __init__(self, term: Lam | LinLam, scope: _Scope, compiler: Compiler):
        self.term = term
        captured = {slot for _, slot in scope.captures}
        self.captured = {name: slot for name, slot in scope.slots.items() if slot in captured}
        self.runtime = compiler.runtime
        self.globals = compiler.globals
        self._dual: tuple[list[tuple[str, Type]], Code, int] | None = None

    @collector_paused
    def dual(self) -> tuple[list[tuple[str, Type]], Code, int]:
        """←D of the term, checked and compiled once, open in the term's free variables."""
        if self._dual is None:
            from lamad.reverse import backprop, backprop_type
            from lamad.types import infer_term

            free = list(free_variables(self.term).items())
            target = infer_term(backprop(self.term), {n: backprop_type(t) for n, t in free})
            compiler = Compiler(self.runtime, self.globals)
            for name, _ in free:
                compiler.scope.slots[name] = compiler.scope.new_slot()
            code = compiler.compile(target)
            self._dual = free, code, compiler.scope.size
        return self._dual

    def lift(self, frame: list) -> Callable:
        free, code, size = self.dual()
        env = [lift(frame[self.captured[n]] if n in self.captured else self.globals(n), t) for n, t in free]
        return code(env + [None] * (size - len(env)))


def free_variables(term: Term) -> dict[str, Type]:
    """The free variables of an elaborated term, with their types.  One walk with an
    explicit stack; binders push and pop their names, so that a chain of ``n`` ``let``s
    costs O(n), not a set of the bound names per binding (O(n²))."""
    free: dict[str, Type] = {}
    bound: dict[str, int] = {}  # name -> how many enclosing binders bind it
    stack: list = [term]
    while stack:
        t = stack.pop()
        if isinstance(t, tuple):  # a scope's (+1 or -1, names): entered or left
            step, names = t
            for name in names:
                bound[name] = bound.get(name, 0) + step
        elif isinstance(t, Var):
            if not bound.get(t.name):
                free.setdefault(t.name, t.ty)
        elif isinstance(t, (Lam, LinLam, Let)):
            names = tuple(pattern_names(t.param if isinstance(t, (Lam, LinLam)) else t.pattern))
            stack += [(-1, names), t.body, (1, names)]
            if isinstance(t, Let):
                stack.append(t.bound)  # outside the scope of its own pattern
        else:
            stack.extend(reversed(list(children(t))))
    return free


def lift(value: Any, t: Type) -> Any:
    """A value of type ``A`` as a value of type ←D(A) that is constant: reals get the
    backpropagator ``λa ⊸ 0``, functions their ←D version (SPEC §3: the free variables
    of a differentiated function are constants)."""
    if t in (REAL, TENSOR):
        return value, ZERO_BACKPROP
    if isinstance(t, TupleType):
        return tuple(lift(v, i) for v, i in zip(value, t.items))
    if isinstance(t, ListType):
        return [lift(v, t.elem) for v in value]
    if isinstance(t, FunType):
        source = getattr(value, "lamad", None)
        if source is None:
            raise LamRuntimeError("cannot differentiate through a function that was not written in lamad")
        return source[0].lift(source[1])
    return value


def _wrap(x: Any, t: Type, inputs: list[Backpropagator]) -> Any:
    """``wrap_A``: pair each real leaf of the input with a backpropagator of its own."""
    if t in (REAL, TENSOR):
        bp = Backpropagator(None)
        inputs.append(bp)
        return x, bp
    if isinstance(t, TupleType):
        return tuple(_wrap(v, i, inputs) for v, i in zip(x, t.items))
    if isinstance(t, ListType):
        return [_wrap(v, t.elem, inputs) for v in x]
    return x


def _collect(x: Any, t: Type, cotangents: dict, inputs, xp) -> Any:
    """``collect_A``: the cotangent of each leaf, zeros where nothing arrived."""
    if t in (REAL, TENSOR):
        ct = cotangents.get(next(inputs))
        return xp.zeros_like(x) if ct is None else ct
    if isinstance(t, TupleType):
        return tuple(_collect(v, i, cotangents, inputs, xp) for v, i in zip(x, t.items))
    if isinstance(t, ListType):
        return [_collect(v, t.elem, cotangents, inputs, xp) for v in x]
    return ()


def _split(y: Any, t: Type, backprops: list) -> Any:
    """The primal part of a ←D value, gathering the backpropagators of its leaves."""
    if t in (REAL, TENSOR):
        backprops.append(y[1])
        return y[0]
    if isinstance(t, TupleType):
        return tuple(_split(v, i, backprops) for v, i in zip(y, t.items))
    if isinstance(t, ListType):
        return [_split(v, t.elem, backprops) for v in y]
    return y


def _leaves(ct: Any, t: Type, out: list) -> list:
    if t in (REAL, TENSOR):
        out.append(ct)
    elif isinstance(t, TupleType):
        for v, i in zip(ct, t.items):
            _leaves(v, i, out)
    elif isinstance(t, ListType):
        for v in ct:
            _leaves(v, t.elem, out)
    return out


def grad(f: Callable, fty: FunType, runtime: Runtime, span: Span | None, with_value: bool = False) -> Callable:
    """``grad f = λx. let (y, y') = ←D(f) (wrap x) in collect (y' 1.0)`` (SPEC §3)."""
    dual, one, xp = lift(f, fty), runtime.backend.scalar(1.0), runtime.backend.xp

    def gradient_of_f(x):
        inputs: list[Backpropagator] = []
        y, y_backprop = dual(_wrap(x, fty.dom, inputs))
        if getattr(y, "ndim", 0) != 0:
            raise LamRuntimeError(f"grad needs a scalar result, but the function returned shape {tuple(y.shape)}",
                                  span)
        ct = _collect(x, fty.dom, force(y_backprop(one)), iter(inputs), xp)
        return (y, ct) if with_value else ct
    return gradient_of_f


def vjp(f: Callable, x: Any, fty: FunType, runtime: Runtime, span: Span | None) -> tuple[Any, Callable]:
    """``vjp f x = (f x, pullback)`` with ``pullback : ct(B) ⊸ ct(A)`` (SPEC §3)."""
    inputs: list[Backpropagator] = []
    backprops: list = []
    y = _split(lift(f, fty)(_wrap(x, fty.dom, inputs)), fty.cod, backprops)

    def pullback(ct):
        cts = _leaves(ct, fty.cod, [])
        sent = gradient.sum_apply(backprops, cts)
        return _collect(x, fty.dom, force(sent), iter(inputs), runtime.backend.xp)
    return y, pullback
