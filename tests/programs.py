"""Random well-typed lamad programs: hypothesis strategies for property tests.

A :class:`Sample` is a program of one definition, ``def f (x1 : A1) … (xk : Ak) : B = body``,
as source text, with the types of its parameters and result and, when its parameters are
first-order, a point to evaluate it at.  Two strategies make them:

* :func:`programs` — any well-typed definition: parameters and results of every type of
  the source language, functions included (lambdas passed and returned);
* :func:`differentiable_programs` — ``f : A → Real`` with ``A`` made of reals, tensors,
  tuples, records and lists (and a discrete ``Int`` now and then), with an input point:
  what ``grad`` applies to.

The body is generated *type-directed*: asked for a term of some type in some scope, the
generator picks one of the term formers that can produce that type — variables and
literals, ``let`` (with tuple and record patterns and wildcards), lambdas applied or passed to
``map``/``fold``/``iterate``/``while``, functions returned by functions, ``if``, tuples and ``fst``/
``snd``, records (their fields written in any order) and their fields ``r.w``, list literals,
``map``, ``zip``, ``unstack``, and every differentiable builtin —
and generates its subterms recursively, down to a depth limit.  The types it tracks are
finer than lamad's (:class:`RealT`, :class:`TensorT` with its shape, :class:`ListT` with its
length, …), so every program it makes runs without a shape error, and the arguments of
builtins with a restricted domain are kept inside it (``log (square t + 1.0)``,
``sqrt (square t + 1.0)``, ``t / (square u + 1.0)``, ``exp (tanh t)`` against overflow).
Variable names are drawn from a small pool that includes the names ←D and the simplifier
invent (``x1``, ``x1'``, ``a``, ``z1`` …) and shadow each other, and from the names of the
primitives (``sin``, ``sum``, ``map``, and the private helpers the derivative rules call,
``like``, ``unbroadcast`` …), which locals then shadow, to test hygiene.  A shadowed
builtin is never called through the local: the generator uses the local only as a value
of its type, and calls the builtin as ``%name`` while the local is in scope.

With ``smooth=True`` the builtins with kinks (``relu abs max min max_axis``) and comparisons
of reals are left out, so that the result is differentiable at every point and finite
differences apply.

Shrinking favours small programs: leaves come first among the choices."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lamad import parse_type
from lamad.prims import PRIMITIVES
from lamad.syntax import Type

# ------------------------------------------------------------------ types with shapes


class GType:
    """A lamad type with what the checker leaves to run time: shapes and lengths."""

    def source(self) -> str:
        """The type in lamad's ASCII syntax, parenthesised unless atomic."""
        raise NotImplementedError

    def lamad(self) -> Type:
        return parse_type(self.source())


@dataclass(frozen=True)
class RealT(GType):
    def source(self) -> str:
        return "Real"


@dataclass(frozen=True)
class TensorT(GType):
    shape: tuple[int, ...]

    def source(self) -> str:
        return "Tensor"


@dataclass(frozen=True)
class IntT(GType):
    def source(self) -> str:
        return "Int"


@dataclass(frozen=True)
class BoolT(GType):
    def source(self) -> str:
        return "Bool"


@dataclass(frozen=True)
class TupleT(GType):
    items: tuple[GType, ...]

    def source(self) -> str:
        return "(" + " * ".join(i.source() for i in self.items) + ")"


@dataclass(frozen=True)
class RecordT(GType):
    """A record; its fields in the order the generator writes them (any: records are
    structural)."""

    fields: tuple[str, ...]
    items: tuple[GType, ...]

    def source(self) -> str:
        return "{" + ", ".join(f"{f} : {i.source()}" for f, i in zip(self.fields, self.items)) + "}"

    def field(self, name: str) -> GType:
        return self.items[self.fields.index(name)]


@dataclass(frozen=True)
class ListT(GType):
    elem: GType
    length: int

    def source(self) -> str:
        return f"(List {self.elem.source()})"


@dataclass(frozen=True)
class FunT(GType):
    dom: GType
    cod: GType

    def source(self) -> str:
        return f"({self.dom.source()} -> {self.cod.source()})"


REAL, INT, BOOL = RealT(), IntT(), BoolT()
SHAPES = [(), (), (1,), (2,), (3,), (2, 3), (3, 2), (1, 3), (2, 1)]
"""Tensor shapes the generator uses: small, with 1s for broadcasting."""
NAMES = ["x", "y", "z", "w", "v", "h", "acc", "x1", "y1", "z1", "a", "b", "c", "a1", "x'", "x1'", "y2'"]
"""Variable names: short, clashing with the names ←D (``x1``, ``x1'``, ``a1``) and the
simplifier (``z1``, ``a``, ``b``, ``c``) invent."""
FIELDS = ["w", "b", "x", "a1", "sum", "like"]
"""Field names: some also the names of variables (``{w}`` is ``{w = w}``) and primitives."""
SHADOWING = sorted(n for n, p in PRIMITIVES.items() if p.operator is None) + ["y", "dx1", "dx2", "x2"]
"""Names that shadow primitives: those a program calls (``sin``, ``sum``, ``map``,
``grad`` …), the private helpers that derivative rules call (``like``, ``step``,
``count``, ``unbroadcast`` …), and the variables of the rules (``y``, ``dx1``)."""


def first_order(t: GType) -> bool:
    """Whether values of ``t`` hold no function (so that a point can be drawn)."""
    if isinstance(t, FunT):
        return False
    if isinstance(t, (TupleT, RecordT)):
        return all(first_order(i) for i in t.items)
    if isinstance(t, ListT):
        return first_order(t.elem)
    return True


# ------------------------------------------------------------------ samples


@dataclass(frozen=True)
class Sample:
    """``def f (x1 : A1) … : B = body``: its source text, parameters, result type, and a
    point (one value per parameter) when every parameter is first-order."""

    source: str
    params: tuple[tuple[str, GType], ...]
    result: GType
    point: tuple | None

    @property
    def type(self) -> Type:
        """The lamad type of ``f``."""
        t: GType = self.result
        for _, p in reversed(self.params):
            t = FunT(p, t)
        return t.lamad()

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"Sample(\n{self.source}\npoint={self.point!r})"


def points(t: GType, low: float = -1.5, high: float = 1.5) -> st.SearchStrategy:
    """Values of a first-order type: floats for Real, float64 arrays of the shape for
    Tensor, small ints, tuples and lists of the length."""
    if isinstance(t, RealT):
        return st.floats(low, high, allow_subnormal=False)
    if isinstance(t, TensorT):
        return hnp.arrays(np.float64, t.shape, elements=st.floats(low, high, allow_subnormal=False))
    if isinstance(t, IntT):
        return st.integers(0, 3)
    if isinstance(t, BoolT):
        return st.booleans()
    if isinstance(t, TupleT):
        return st.tuples(*(points(i, low, high) for i in t.items))
    if isinstance(t, RecordT):  # a dict, as the API takes a record
        return st.fixed_dictionaries({f: points(i, low, high) for f, i in zip(t.fields, t.items)})
    if isinstance(t, ListT):
        return st.lists(points(t.elem, low, high), min_size=t.length, max_size=t.length)
    raise ValueError(f"no points of type {t}")


# ------------------------------------------------------------------ the generator

Scope = tuple[tuple[str, "GType | None"], ...]
"""The variables in scope, innermost last (a later binding shadows an earlier one); a
variable of type ``None`` is bound but not to be used (it only shadows)."""


def _visible(scope: Scope) -> dict[str, GType]:
    """The variables a term may use."""
    return {name: t for name, t in dict(scope).items() if t is not None}


def _closed(scope: Scope) -> Scope:
    """``scope`` with no variable to use, but the same names shadowing builtins."""
    return tuple((name, None) for name, _ in scope)


def _paren(text: str) -> str:
    return f"({text})"


class _Generator:
    """Type-directed generation of source text, drawing every choice from hypothesis."""

    def __init__(self, draw: Callable, smooth: bool, names: str = "mixed"):
        self.draw = draw
        self.smooth = smooth
        self.pool = {"plain": st.sampled_from(NAMES), "shadowing": st.sampled_from(SHADOWING),
                     "mixed": st.one_of(st.sampled_from(NAMES), st.sampled_from(SHADOWING))}[names]

    def choose(self, options: list):
        return self.draw(st.sampled_from(options))

    # ---------------------------------------------------------------- types

    def shape(self, scope: Scope = ()) -> tuple[int, ...]:
        """A tensor shape, often that of a tensor in scope."""
        in_scope = sorted({t.shape for t in _visible(scope).values() if isinstance(t, TensorT)})
        return self.choose(SHAPES + 4 * in_scope)

    def type(self, depth: int, scope: Scope = ()) -> GType:
        """A random type, often that of a variable in scope; compound ones only while
        ``depth`` lasts."""
        options: list[Callable[[], GType]] = [
            lambda: REAL, lambda: TensorT(self.shape(scope)), lambda: INT, lambda: BOOL]
        if scope:
            options[1:1] = 2 * [lambda: self.choose(list(_visible(scope).values()))]
        if depth > 0:
            options += [
                lambda: TupleT(tuple(self.type(depth - 1, scope) for _ in range(self.choose([2, 3])))),
                lambda: self.record_type(lambda: self.type(depth - 1, scope)),
                lambda: ListT(self.type(depth - 1, scope), self.choose([1, 2, 3])),
                lambda: FunT(self.type(depth - 1, scope), self.type(depth - 1, scope)),
            ]
        return self.choose(options)()

    def differentiable_type(self, depth: int) -> GType:
        """A type made of reals and tensors, through tuples and lists (an Int now and then)."""
        options: list[Callable[[], GType]] = [lambda: REAL, lambda: TensorT(self.shape())]
        if depth > 0:
            options += [
                lambda: TupleT(tuple(self.differentiable_type(depth - 1) for _ in range(self.choose([2, 3])))),
                lambda: self.record_type(lambda: self.differentiable_type(depth - 1)),
                lambda: ListT(self.differentiable_type(depth - 1), self.choose([1, 2, 3])),
                lambda: TupleT((self.differentiable_type(depth - 1), INT)),
            ]
        return self.choose(options)()

    def record_type(self, item: Callable[[], GType]) -> RecordT:
        """A record of one to three fields, of the types ``item`` draws."""
        fields = self.draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True))
        return RecordT(tuple(fields), tuple(item() for _ in fields))

    def name(self) -> str:
        return self.draw(self.pool)

    def names(self, n: int) -> list[str]:
        return self.draw(st.lists(self.pool, min_size=n, max_size=n, unique=True))

    @staticmethod
    def prim(name: str, scope: Scope) -> str:
        """How to call the builtin ``name`` in ``scope``: by its name, or as ``%name`` where
        a variable shadows it."""
        return f"%{name}" if any(name == bound for bound, _ in scope) else name

    # ---------------------------------------------------------------- binders

    def pattern(self, t: GType, annotate: bool) -> tuple[str, list[tuple[str, GType]]]:
        """A pattern for values of ``t`` — a variable, or for a tuple a tuple pattern with
        perhaps a wildcard — and the variables it binds."""
        if isinstance(t, TupleT) and self.draw(st.booleans()):
            names = self.names(len(t.items))
            parts, bound = [], []
            for name, item in zip(names, t.items):
                if self.draw(st.integers(0, 3)) == 0:
                    parts.append("_")
                else:
                    parts.append(name)
                    bound.append((name, item))
            text = "(" + ", ".join(parts) + ")"
            return (f"({text} : {t.source()})" if annotate else text), bound
        if isinstance(t, RecordT) and self.draw(st.booleans()):
            return self.record_pattern(t, annotate)
        name = self.name()
        return (f"({name} : {t.source()})" if annotate else name), [(name, t)]

    def record_pattern(self, t: RecordT, annotate: bool) -> tuple[str, list[tuple[str, GType]]]:
        """``{w, b = x, a1 = _}``: every field, in an order of its own, bound to the variable
        of its name, to another variable, or to nothing."""
        order = self.draw(st.permutations(range(len(t.fields))))
        names = self.names(len(t.fields))
        parts, bound = [], []
        for i in order:
            field, item = t.fields[i], t.items[i]
            how = self.draw(st.integers(0, 3))
            if how == 0:
                parts.append(f"{field} = _")
                continue
            taken = set(names) | {b for b, _ in bound}
            name = field if how == 1 and field not in taken else names[i]
            parts.append(field if name == field else f"{field} = {name}")
            bound.append((name, item))
        text = "{" + ", ".join(parts) + "}"
        return (f"({text} : {t.source()})" if annotate else text), bound

    def lam(self, dom: GType, cod: GType, scope: Scope, depth: int) -> str:
        """``\\(p : A). body`` (parameters are annotated: ←D and the checker see the types)."""
        pattern, bound = self.pattern(dom, annotate=True)
        return _paren(f"\\{pattern}. {self.term(cod, scope + tuple(bound), depth)}")

    def fun(self, dom: GType, cod: GType, scope: Scope, depth: int) -> str:
        """A term of type ``dom -> cod``: a lambda most often, else any former."""
        if self.draw(st.integers(0, 2)) > 0:
            return self.lam(dom, cod, scope, depth)
        return self.term(FunT(dom, cod), scope, depth)

    # ---------------------------------------------------------------- terms

    def term(self, t: GType, scope: Scope, depth: int) -> str:
        """Source text of a term of type ``t`` whose free variables are in ``scope``: a
        leaf at depth 0 and now and then above, else a term former with subterms one
        level less deep."""
        if t == TensorT(()) and self.draw(st.integers(0, 2)) == 0:  # a Real promoted
            return _paren(self.term(REAL, scope, depth) + self.choose(["", " : Tensor"]))
        if depth <= 0 or self.draw(st.integers(0, 3)) == 0:
            return self.leaf(t, scope)
        return self.choose(self.generic(t, scope, depth) + self.specific(t, scope, depth))()

    def leaf(self, t: GType, scope: Scope) -> str:
        """A variable of type ``t`` most often; for a real or a tensor, something computed
        from a variable of another type; else a literal."""
        visible = _visible(scope)
        variables = [name for name, vt in visible.items() if vt == t]
        if variables and self.draw(st.integers(0, 3)) > 0:
            return self.choose(variables)
        if isinstance(t, (RealT, TensorT)) and visible and self.draw(st.integers(0, 3)) > 0:
            name = self.choose(sorted(visible))
            return self.from_variable(name, visible[name], t, scope)
        return self.literal(t, scope, 0)

    def from_variable(self, name: str, vt: GType, t: RealT | TensorT, scope: Scope) -> str:
        """A real or tensor of type ``t`` computed from variable ``name`` of type ``vt``
        (in ``scope``): so that generated programs use their inputs."""
        p = functools.partial(self.prim, scope=scope)
        if vt == t:
            return name
        if isinstance(t, TensorT):
            real = self.from_variable(name, vt, REAL, scope)
            dims = "[" + ", ".join(map(str, t.shape)) + "]"
            promoted = [real, f"({real} : Tensor)"] if t.shape == () else []  # Real ≤ Tensor
            return self.choose([f"({p('fill')} {real} {dims})", f"({real} * {p('ones')} {dims})"] + promoted)
        if isinstance(vt, TensorT):
            return self.choose([f"({p('sum')} {name})", f"({p('mean')} {name})"])
        if isinstance(vt, IntT):
            return f"({p('real')} {name})"
        if isinstance(vt, BoolT):
            return f"(if {name} then 1.5 else 0.5)"
        if isinstance(vt, TupleT):
            i = self.choose(range(len(vt.items)))
            part = self.name()
            pattern = ", ".join(part if j == i else "_" for j in range(len(vt.items)))
            inner = self.from_variable(part, vt.items[i], t, scope + ((part, vt.items[i]),))
            return f"(let ({pattern}) = {name} in {inner})"
        if isinstance(vt, RecordT):
            field, part = self.choose(list(vt.fields)), self.name()
            inner = self.from_variable(part, vt.field(field), t, scope + ((part, vt.field(field)),))
            return f"(let {part} = {name}.{field} in {inner})"
        if isinstance(vt, ListT):
            elem = self.draw(self.pool.filter(lambda n: n != "acc"))
            inner_scope = scope + (("acc", REAL), (elem, vt.elem))
            step = self.from_variable(elem, vt.elem, t, inner_scope)
            return f"({p('fold')} (\\(acc : Real) ({elem} : {vt.elem.source()}). acc + {step}) 0.0 {name})"
        assert isinstance(vt, FunT)
        result = self.name()
        return (f"(let {result} = {name} {self.literal(vt.dom, _closed(scope), 0)} in "
                f"{self.from_variable(result, vt.cod, t, scope + ((result, vt.cod),))})")

    def literal(self, t: GType, scope: Scope, depth: int) -> str:
        """A term of type ``t`` built without further choices of term formers (but
        functions and lists may use the variables in scope)."""
        if isinstance(t, RealT):
            return self.choose(["0.5", "1.5", "2", "(-0.75)", "1e-1"])
        if isinstance(t, TensorT):
            dims = "[" + ", ".join(map(str, t.shape)) + "]"
            promoted = ["0.5", "(1.5 : Tensor)"] if t.shape == () else []
            fill, ones, randn = (self.prim(n, scope) for n in ("fill", "ones", "randn"))
            return self.choose([f"({fill} 0.5 {dims})", f"({ones} {dims})", f"({randn} 7 {dims})",
                                f"({fill} (-1.25) {dims})"] + promoted)
        if isinstance(t, IntT):
            return self.choose(["1", "2", "3"])
        if isinstance(t, BoolT):
            return self.choose(["true", "false"])
        if isinstance(t, TupleT):
            return "(" + ", ".join(self.term(i, scope, 0) for i in t.items) + ")"
        if isinstance(t, RecordT):
            return self.record(t, scope, 0)
        if isinstance(t, ListT):
            if t.length == 0:
                return f"([] : {t.source()})"
            return "[" + ", ".join(self.term(t.elem, scope, 0) for _ in range(t.length)) + "]"
        assert isinstance(t, FunT)
        return self.lam(t.dom, t.cod, scope, 0)

    def generic(self, t: GType, scope: Scope, depth: int) -> list[Callable[[], str]]:
        """Formers that make a term of any type."""
        d = depth - 1
        options = [
            lambda: self.let(t, scope, depth),
            lambda: _paren(f"if {self.term(BOOL, scope, d)} then {self.term(t, scope, d)} "
                           f"else {self.term(t, scope, d)}"),
            lambda: self.projection(t, scope, depth),
            lambda: self.fold(t, scope, depth),
            lambda: _paren(f"{self.prim('iterate', scope)} {self.choose(['0', '1', '2'])} {self.fun(t, t, scope, d)} "
                           f"{self.term(t, scope, d)}"),
            lambda: self.while_loop(t, scope, depth),
            lambda: self.application(t, scope, depth),
        ]
        return options

    def let(self, t: GType, scope: Scope, depth: int) -> str:
        bound_type = self.type(1, scope)
        bound = self.term(bound_type, scope, depth - 1)
        pattern, names = self.pattern(bound_type, annotate=self.draw(st.booleans()))
        body = self.term(t, scope + tuple(names), depth - 1)
        return _paren(f"let {pattern} = {bound} in {body}")

    def projection(self, t: GType, scope: Scope, depth: int) -> str:
        """``fst`` or ``snd`` of a pair, or a field of a record, that holds a ``t``."""
        if self.draw(st.booleans()):
            record = self.record_type(lambda: self.type(1))
            record = RecordT(record.fields, (t,) + record.items[1:])
            return f"{_paren(self.term(record, scope, depth - 1))}.{record.fields[0]}"
        other = self.type(1)
        first = self.draw(st.booleans())
        pair = TupleT((t, other) if first else (other, t))
        return _paren(f"{self.prim('fst' if first else 'snd', scope)} {self.term(pair, scope, depth - 1)}")

    def record(self, t: RecordT, scope: Scope, depth: int) -> str:
        """``{w = t, b = u}``, its fields in an order of their own; a field whose variable
        of the same name is in scope with its type is now and then written alone, ``{w}``."""
        visible = _visible(scope)
        parts = []
        for i in self.draw(st.permutations(range(len(t.fields)))):
            field, item = t.fields[i], t.items[i]
            if visible.get(field) == item and self.draw(st.booleans()):
                parts.append(field)
            else:
                parts.append(f"{field} = {self.term(item, scope, depth)}")
        return "{" + ", ".join(parts) + "}"

    def fold(self, t: GType, scope: Scope, depth: int) -> str:
        """``fold (\\acc x. body) init xs``: a loop over a list, the accumulator of type ``t``."""
        elem, d = self.type(1, scope), depth - 1
        acc, acc_bound = self.pattern(t, annotate=True)
        x, x_bound = self.pattern(elem, annotate=True)
        body = self.term(t, scope + tuple(acc_bound) + tuple(x_bound), d)
        xs = self.term(ListT(elem, self.choose([0, 1, 2, 3])), scope, d)
        return _paren(f"{self.prim('fold', scope)} (\\{acc} {x}. {body}) {self.term(t, scope, d)} {xs}")

    def while_loop(self, t: GType, scope: Scope, depth: int) -> str:
        """``fst (while (\\(_, n). n < k) (\\(p, n). (body, n + 1)) (init, 0))``: a loop that
        counts its steps in its state, ``k`` of them, each a generated term of type ``t``."""
        d = depth - 1
        pattern, bound = self.pattern(t, annotate=False)
        counter = self.draw(self.pool.filter(lambda name: name not in {b for b, _ in bound}))
        body = self.term(t, scope + tuple(bound) + ((counter, INT),), d)
        state = TupleT((t, INT)).source()
        return _paren(f"{self.prim('fst', scope)} ({self.prim('while', scope)} "
                      f"(\\((_, {counter}) : {state}). {counter} < {self.choose(['0', '1', '2'])}) "
                      f"(\\(({pattern}, {counter}) : {state}). ({body}, {counter} + 1)) ({self.term(t, scope, d)}, 0))")

    def application(self, t: GType, scope: Scope, depth: int) -> str:
        """A function applied to arguments: a variable of function type from the scope
        when one returns ``t`` (perhaps curried), else a generated function term."""
        d = depth - 1
        for name, vt in _visible(scope).items():
            args: list[GType] = []
            while isinstance(vt, FunT) and vt != t:
                args.append(vt.dom)
                vt = vt.cod
            if vt == t and args and self.draw(st.booleans()):
                return _paren(" ".join([name] + [self.term(a, scope, d) for a in args]))
        dom = self.type(1, scope)
        return _paren(f"{self.term(FunT(dom, t), scope, d)} {self.term(dom, scope, d)}")

    # ---------------------------------------------------------------- type-specific formers

    def specific(self, t: GType, scope: Scope, depth: int) -> list[Callable[[], str]]:
        if isinstance(t, RealT):
            return self.reals(scope, depth)
        if isinstance(t, TensorT):
            return self.tensors(t.shape, scope, depth)
        if isinstance(t, IntT):
            return [lambda: _paren(f"{self.prim('length', scope)} {self.term(ListT(self.type(0), self.choose([0, 1, 2])), scope, depth - 1)}"),
                    lambda: _paren(f"{self.term(INT, scope, depth - 1)} + {self.term(INT, scope, depth - 1)}")]
        if isinstance(t, BoolT):
            return self.booleans(scope, depth)
        if isinstance(t, TupleT):
            return [lambda: "(" + ", ".join(self.term(i, scope, depth - 1) for i in t.items) + ")"]
        if isinstance(t, RecordT):
            return [lambda: self.record(t, scope, depth - 1)]
        if isinstance(t, ListT):
            return self.lists(t, scope, depth)
        assert isinstance(t, FunT)
        options = [lambda: self.lam(t.dom, t.cod, scope, depth - 1), lambda: self.returned_function(t, scope, depth)]
        builtins = self.builtin_functions(t, scope, depth)
        if builtins:
            options.append(lambda: self.choose(builtins)())
        return options

    def builtin_functions(self, t: FunT, scope: Scope, depth: int) -> list[Callable[[], str]]:
        """Builtins of type ``t`` used as values, partially applied or not (the checker
        eta-expands them): ``map exp xs``, ``map (dot v) xs``, ``map (sum_axis 0) xs``."""
        dom, cod, d = t.dom, t.cod, depth - 1
        p = functools.partial(self.prim, scope=scope)
        options: list[Callable[[], str]] = []
        if dom == cod and isinstance(dom, (RealT, TensorT)):
            names = ["exp", "sin", "cos", "tanh", "sigmoid", "square", "softplus", "log_sigmoid"]
            names += [] if self.smooth else ["relu", "abs"]
            options.append(lambda: p(self.choose(names)))
            if not self.smooth:
                options.append(lambda: _paren(f"{p(self.choose(['max', 'min']))} {self.term(dom, scope, d)}"))
            options.append(lambda: _paren(f"{p('logaddexp')} {self.term(dom, scope, d)}"))
        if isinstance(dom, TensorT) and cod == REAL:
            options += [lambda: p(self.choose(["sum", "mean"])), lambda: _paren(f"{p('dot')} {self.term(dom, scope, d)}")]
        if isinstance(dom, TensorT) and cod == TensorT(dom.shape[::-1]):
            options.append(lambda: p("transpose"))
        if isinstance(dom, TensorT) and isinstance(cod, TensorT) and len(dom.shape) == len(cod.shape) + 1:
            axes = [i for i in range(len(dom.shape)) if dom.shape[:i] + dom.shape[i + 1:] == cod.shape]
            if axes:
                options.append(lambda: _paren(f"{p(self.choose(['sum_axis', 'mean_axis', 'logsumexp_axis']))} "
                                              f"{self.choose(axes)}"))
        if isinstance(dom, ListT) and isinstance(cod, TensorT) and cod.shape == (dom.length,) + getattr(dom.elem, "shape", (None,)):
            options.append(lambda: p("stack"))
        return options

    def returned_function(self, t: FunT, scope: Scope, depth: int) -> str:
        """A function returned by a function: ``(\\(u : U). \\(p : A). body) arg``."""
        outer = self.type(0, scope)
        u, bound = self.pattern(outer, annotate=True)
        inner = self.lam(t.dom, t.cod, scope + tuple(bound), depth - 1)
        return _paren(f"(\\{u}. {inner}) {self.term(outer, scope, depth - 1)}")

    def unary(self, x: str, scope: Scope) -> list[str]:
        """Elementwise builtins applied to ``x``, inside their domains (in ``scope``)."""
        exp, tanh, sin, cos, sigmoid, square, log, sqrt, log1p, softplus, log_sigmoid, relu, abs_ = (
            self.prim(n, scope) for n in ("exp", "tanh", "sin", "cos", "sigmoid", "square", "log", "sqrt", "log1p",
                                          "softplus", "log_sigmoid", "relu", "abs"))
        forms = [f"{exp} ({tanh} {x})", f"{sin} {x}", f"{cos} {x}", f"{tanh} {x}", f"{sigmoid} {x}", f"{square} {x}",
                 f"{log} ({square} {x} + 1.0)", f"{sqrt} ({square} {x} + 1.0)", f"{log1p} ({square} {x})", f"-{x}",
                 f"{x} ** 2", f"{x} ** 3", f"{softplus} {x}", f"{log_sigmoid} {x}"]
        if not self.smooth:
            forms += [f"{relu} {x}", f"{abs_} {x}"]
        return forms

    def binary(self, x: str, y: str, scope: Scope) -> list[str]:
        """Binary builtins applied to ``x`` and ``y`` (broadcasting), inside their domains
        (in ``scope``)."""
        square, exp, tanh, logaddexp, max_, min_ = (
            self.prim(n, scope) for n in ("square", "exp", "tanh", "logaddexp", "max", "min"))
        forms = [f"{x} + {y}", f"{x} - {y}", f"{x} * {y}", f"{x} / ({square} {y} + 1.0)",
                 f"({exp} ({tanh} {x})) ** {y}", f"{logaddexp} {x} {y}"]
        if not self.smooth:
            forms += [f"{max_} {x} {y}", f"{min_} {x} {y}"]
        return forms

    def reals(self, scope: Scope, depth: int) -> list[Callable[[], str]]:
        d = depth - 1
        p = functools.partial(self.prim, scope=scope)

        def any_tensor() -> str:
            return self.term(TensorT(self.shape(scope)), scope, d)

        def dot() -> str:
            shape = self.shape(scope)
            return _paren(f"{p('dot')} {self.term(TensorT(shape), scope, d)} {self.term(TensorT(shape), scope, d)}")

        return [
            lambda: _paren(self.choose(self.unary(self.term(REAL, scope, d), scope))),
            lambda: _paren(self.choose(self.binary(self.term(REAL, scope, d), self.term(REAL, scope, d), scope))),
            lambda: _paren(f"{p('sum')} {any_tensor()}"),
            lambda: _paren(f"{p('mean')} {any_tensor()}"),
            dot,
            lambda: _paren(f"{p('scalar')} {self.term(TensorT(self.choose([(), (1,), (1, 1)])), scope, d)}"),
            lambda: _paren(f"{p('real')} {self.term(INT, scope, d)}"),
        ]

    def broadcast_partner(self, shape: tuple[int, ...]) -> GType:
        """A type whose values broadcast against ``shape`` without widening it."""
        options: list[GType] = [REAL, TensorT(shape)]
        options += [TensorT(shape[i:]) for i in range(1, len(shape) + 1)]
        options += [TensorT(tuple(1 if j == i else n for j, n in enumerate(shape))) for i in range(len(shape))]
        return self.choose(options)

    def tensors(self, shape: tuple[int, ...], scope: Scope, depth: int) -> list[Callable[[], str]]:
        d, rank, t = depth - 1, len(shape), TensorT(shape)
        dims = "[" + ", ".join(map(str, shape)) + "]"
        p = functools.partial(self.prim, scope=scope)

        def binary() -> str:
            x, y = self.term(t, scope, d), self.term(self.broadcast_partner(shape), scope, d)
            if self.draw(st.booleans()):
                x, y = y, x
            return _paren(self.choose(self.binary(x, y, scope)))

        def matmul() -> str:
            k = self.choose([1, 2, 3])
            if rank >= 2:  # batched over the leading axes, as NumPy's matmul
                left, right = shape[:-1] + (k,), shape[:-2] + (k, shape[-1])
            elif rank == 1:
                left, right = self.choose([((k,), (k, shape[0])), ((shape[0], k), (k,))])
            else:
                left, right = (k,), (k,)
            return _paren(f"{self.term(TensorT(left), scope, d)} @ {self.term(TensorT(right), scope, d)}")

        def reshape() -> str:
            source = self.choose([s for s in SHAPES if math.prod(s) == math.prod(shape)] + [(math.prod(shape),)])
            return _paren(f"{p('reshape')} {self.term(TensorT(source), scope, d)} {dims}")

        def reduction() -> str:
            axis = self.choose(range(rank + 1))
            source = shape[:axis] + (self.choose([1, 2, 3]),) + shape[axis:]
            ops = ["sum_axis", "mean_axis", "logsumexp_axis"] + ([] if self.smooth else ["max_axis"])
            spelled = self.choose([str(axis), f"(-{rank + 1 - axis})"])
            return _paren(f"{p(self.choose(ops))} {spelled} {self.term(TensorT(source), scope, d)}")

        def concat() -> str:
            axis = self.choose(range(rank))
            first = self.choose(range(1, shape[axis])) if shape[axis] > 1 else None
            if first is None:
                return _paren(f"{p('concat')} {axis} [{self.term(t, scope, d)}]")
            parts = [shape[:axis] + (n,) + shape[axis + 1:] for n in (first, shape[axis] - first)]
            return _paren(f"{p('concat')} {axis} [{', '.join(self.term(TensorT(s), scope, d) for s in parts)}]")

        def index() -> str:
            """Taken out of a larger tensor: at an Int (maybe negative) of a new leading
            axis, by a slice of a longer first axis, or by the rows of an IntTensor (repeats
            allowed); with ``...`` before the first axis now and then."""
            form = self.choose(["int", "slice", "rows"] if rank else ["int"])
            n = self.choose([1, 2, 3])
            lead = self.choose(["", "..., "]) if form == "int" and not rank else ""
            if form == "int":
                source, position = (n,) + shape, str(self.choose(range(-n, n)))
            elif form == "slice":
                source = (shape[0] + n - 1,) + shape[1:]
                start = self.choose(range(n))
                position = self.choose([f"{start}:{start + shape[0]}", f"{start - source[0]}:{start + shape[0]}"])
            else:
                source = (n,) + shape[1:]
                rows = [self.choose(range(n)) for _ in range(shape[0])]
                position = f"{p('ints')} {rows}"
            return f"({self.term(TensorT(source), scope, d)})[{lead}{position}]"

        options = [
            lambda: _paren(self.choose(self.unary(self.term(t, scope, d), scope))),
            binary,
            index,
            matmul,
            lambda: _paren(f"{p('transpose')} {self.term(TensorT(shape[::-1]), scope, d)}"),
            reshape,
            reduction,
            lambda: _paren(f"{p('fill')} {self.term(REAL, scope, d)} {dims}"),
        ]
        if rank >= 1:
            options += [
                lambda: _paren(f"{p('softmax_axis')} {self.choose(range(rank))} {self.term(t, scope, d)}"),
                lambda: _paren(f"{p('stack')} {self.term(ListT(TensorT(shape[1:]), shape[0]), scope, d)}"),
                concat,
            ]
            ones = [i for i, n in enumerate(shape) if n == 1]
            if ones:
                i = ones[0]
                options.append(lambda: _paren(f"{p('expand_dims')} {i} "
                                              f"{self.term(TensorT(shape[:i] + shape[i + 1:]), scope, d)}"))
        if rank == 2:
            options.append(lambda: _paren(f"{p('outer')} {self.term(TensorT(shape[:1]), scope, d)} "
                                          f"{self.term(TensorT(shape[1:]), scope, d)}"))
        return options

    def booleans(self, scope: Scope, depth: int) -> list[Callable[[], str]]:
        d = depth - 1
        options = [
            lambda: _paren(f"{self.prim('not', scope)} {self.term(BOOL, scope, d)}"),
            lambda: _paren(f"{self.term(BOOL, scope, d)} && {self.term(BOOL, scope, d)}"),
            lambda: _paren(f"{self.term(INT, scope, d)} {self.choose(['<', '<=', '==', '!='])} {self.term(INT, scope, d)}"),
        ]
        if not self.smooth:
            options.append(lambda: _paren(f"{self.term(REAL, scope, d)} {self.choose(['<', '>='])} "
                                          f"{self.term(REAL, scope, d)}"))
        return options

    def lists(self, t: ListT, scope: Scope, depth: int) -> list[Callable[[], str]]:
        d = depth - 1

        def map_() -> str:
            elem = self.type(1, scope)
            return _paren(f"{self.prim('map', scope)} {self.fun(elem, t.elem, scope, d)} "
                          f"{self.term(ListT(elem, t.length), scope, d)}")

        options = [lambda: "[" + ", ".join(self.term(t.elem, scope, d) for _ in range(t.length)) + "]", map_]
        if isinstance(t.elem, TensorT) and t.length > 0 and len(t.elem.shape) < 2:
            options.append(lambda: _paren(f"{self.prim('unstack', scope)} {self.term(TensorT((t.length,) + t.elem.shape), scope, d)}"))
        if isinstance(t.elem, TupleT) and len(t.elem.items) == 2:
            left, right = t.elem.items
            options.append(lambda: _paren(f"{self.prim('zip', scope)} {self.term(ListT(left, t.length), scope, d)} "
                                          f"{self.term(ListT(right, t.length), scope, d)}"))
        return options


# ------------------------------------------------------------------ strategies


def _helper(gen: _Generator, depth: int) -> tuple[str, Scope]:
    """Perhaps a definition ``g`` above ``f`` — a function or a value — which ``f`` then
    has in scope: differentiated functions use definitions as constants."""
    if not gen.draw(st.booleans()):
        return "", ()
    params = tuple((name, gen.type(1)) for name in gen.names(gen.draw(st.integers(0, 2))))
    result = gen.type(1, params)
    t: GType = result
    for _, p in reversed(params):
        t = FunT(p, t)
    return _definition("g", params, result, gen.term(result, params, depth)), (("g", t),)


def _definition(name: str, params: tuple[tuple[str, GType], ...], result: GType, body: str) -> str:
    binders = "".join(f" ({p} : {t.source()})" for p, t in params)
    return f"def {name}{binders} : {result.source()} =\n    {body}\n"


@st.composite
def programs(draw: Callable, max_depth: int = 3, smooth: bool = False, names: str = "mixed") -> Sample:
    """A well-typed definition ``f`` (perhaps below a definition ``g`` that it may use)
    with one to three parameters of any types, functions included, and a result of any
    type; a point when the parameters are first-order.  Variables are named from
    :data:`NAMES` (``names="plain"``), from :data:`SHADOWING` (``"shadowing"``: every
    variable shadows a primitive) or from both (``"mixed"``)."""
    gen = _Generator(draw, smooth, names)
    helper, globals_ = _helper(gen, max_depth - 1)
    params = tuple((name, gen.type(1)) for name in gen.names(draw(st.integers(1, 3))))
    result = gen.type(1, params)
    body = gen.term(result, globals_ + params, max_depth)
    point = None
    if all(first_order(t) for _, t in params):
        point = draw(st.tuples(*(points(t) for _, t in params)))
    return Sample(helper + _definition("f", params, result, body), params, result, point)


@st.composite
def differentiable_programs(draw: Callable, max_depth: int = 3, smooth: bool = True, names: str = "mixed") -> Sample:
    """``def f (p : A) : Real = let pattern = p in body`` with ``A`` made of reals and
    tensors through tuples and lists, and a point in ``A``: what ``grad f`` applies to.
    Smooth (no kinks, no comparisons of reals) unless ``smooth=False``; variables named
    as :func:`programs` names them."""
    gen = _Generator(draw, smooth, names)
    helper, globals_ = _helper(gen, max_depth - 1)
    param = gen.differentiable_type(2)
    pattern, bound = gen.pattern(param, annotate=False)
    body = gen.term(REAL, globals_ + tuple(bound), max_depth)
    params = (("p", param),)
    source = helper + _definition("f", params, REAL, f"let {pattern} = p in {body}")
    return Sample(source, params, REAL, (draw(points(param)),))
