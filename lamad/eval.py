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
from lamad.autodiff import Gradient, jvp, relift, vjp
from lamad.backend import get_backend
from lamad.builtins import BUILTINS, MARKS, Runtime, ad_operator
from lamad.deep import collector_paused
from lamad.errors import LamError, LamRuntimeError
from lamad.forward import forward, forward_type
from lamad.gradient import ZERO, ZERO_BACKPROP, Backpropagator
from lamad.parser import surface_name
from lamad.reverse import backprop, backprop_type
from lamad.syntax import (
    GRAD, App, If, Lam, Let, LinLam, ListLit, Lit, Pattern, Prim, PTuple, PVar, PWild, Term, Tuple, Type, Var,
    free_variables, pattern_names,
)
from lamad.types import infer_term, unmarked_type

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
        if ad_operator(t.op) is not None:
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
        """``grad f``, ``value_and_grad f``, ``vjp f x``, ``jvp f x dx`` (SPEC §3), maybe
        marked by the transforms the term went through (lamad/autodiff.py)."""
        op, marks = ad_operator(t.op)
        fty = unmarked_type(t.args[0].ty, marks)
        f, rest = self.compile(t.args[0]), [self.compile(a) for a in t.args[1:]]
        runtime, span = self.runtime, t.span
        if op == "vjp":
            (x,) = rest
            return lambda env: vjp(f(env), x(env), fty, marks, runtime, span)
        if op == "jvp":
            x, dx = rest
            return lambda env: jvp(f(env), x(env), dx(env), fty, marks, runtime, span)
        with_value = op == "value_and_grad"
        return lambda env: Gradient(f(env), fty, marks, runtime, span, with_value)


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
        self._lifted: dict[tuple[str, int], tuple[list[tuple[str, Type]], Code, int]] = {}

    def relift(self, frame: list, mark: str, depth: int) -> Callable:
        """``M(S(f))`` for this closure ``M(f)`` (see :func:`lamad.autodiff.relift`)."""
        free, code, size = self.transformed(mark, depth)
        env = []
        for name, t in free:
            if name in self.captured:
                value = frame[self.captured[name]]
            elif depth == 0:
                value = self.globals(name)
            else:  # pragma: no cover - a transformed closure captures all it uses
                raise LamRuntimeError(f"'{name}' is not captured by this closure", self.term.span)
            env.append(relift(value, t, mark, depth, self.runtime))
        return code(env + [None] * (size - len(env)))

    @collector_paused
    def transformed(self, mark: str, depth: int) -> tuple[list[tuple[str, Type]], Code, int]:
        """``M(S(λ))`` checked and compiled once, open in the free variables of ``λ``, the
        lambda ``M`` made this closure's from (found through ``origin``)."""
        if (mark, depth) not in self._lifted:
            term, marks = self.term, []
            for _ in range(depth):
                if term.origin is None:
                    raise LamRuntimeError("cannot differentiate this function again", self.term.span)
                outer, term = term.origin
                marks.append(_LETTERS[outer])
            free = list(free_variables(term).items())
            types = dict(free)
            for m in [mark, *reversed(marks)]:
                transform, type_of = _TRANSFORMS[m]
                types = {n: type_of(t) for n, t in types.items()}
                term = infer_term(transform(term), types)
            compiler = Compiler(self.runtime, self.globals)
            for name, _ in free:
                compiler.scope.slots[name] = compiler.scope.new_slot()
            code = compiler.compile(term)
            self._lifted[mark, depth] = free, code, compiler.scope.size
        return self._lifted[mark, depth]


_TRANSFORMS = {"r": (backprop, backprop_type), "f": (forward, forward_type)}
_LETTERS = {symbol: letter for letter, symbol in MARKS.items()}
