"""←D reduced step by step (docs/differentiation.md, "Seeing a derivative step by step").

The paper's operational reading of ←D (Brunel, Mazza & Pagani, POPL 2020):
``←D(f)`` applied to the inputs — each real paired with a backpropagator of its own, a
free variable ``x'`` standing for the basis vector of the gradient module ``d`` — and the
backpropagator of its result applied to a cotangent, rewritten one rule at a time, until
the term is a sum ``x1' c1 + … + xk' ck`` of the inputs' backpropagators applied to
constants: ``(c1, …, ck)`` is the gradient.

The strategy is call-by-value, left to right, never under a λ: a redex's parts are
reduced before it is contracted.  Sums in ``d`` are read flat (``+`` is associative and
commutative there), and a sum is rewritten in this order: a ``0`` is dropped; the parts of
its summands ``t u`` are reduced, leftmost first; two summands with the same
backpropagator are factored, ``t u + t v → t (u + v)`` — the paper's linear factoring,
which makes each backpropagator run once on the sum of its cotangents —; only then is a
backpropagator applied, the latest first (one that no other summand's backpropagator
contains), so that the cotangents sent to an earlier one are all collected before it runs.

Each rule is a function of this module (:data:`RULES` names them); the terms are lamad's
(:mod:`lamad.syntax`), substituted by :func:`lamad.syntax.substitute`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from lamad import driver
from lamad.adtypes import backprop_type, cotangent_type
from lamad.errors import LamError, LamRuntimeError
from lamad.instances import join
from lamad.normalize import project
from lamad.pretty import format_value, pretty
from lamad.syntax import (
    BOOL, BOOL_TENSOR, GRAD, INT, INT_TENSOR, REAL, STRING, TENSOR, UNIT, Ann, App, DAdd, DZero, FunType, If, Lam,
    Let, LinLam, LinType, ListLit, ListType, Lit, Pattern, Prim, Proj, PRecord, PTuple, PVar, PWild, Record, RecordType, Span,
    Term, Tuple, TupleType, Type, Var, alpha_key, gradient_sum, perp, substitute, subterms, summands, update,
)

RULES: dict[str, str] = {
    "unfold": "f → ←D(f): a definition the term uses, replaced by its transform",
    "beta": "(λp. t) v → t[v/p]",
    "beta-lin": "(λa ⊸ t) v → t[v/a]: a backpropagator applied to its cotangent",
    "let": "let p = v in t → t[v/p]",
    "proj": "fst (u, v) → u,  snd (u, v) → v,  {w = u, …}.w → u",
    "if": "if true then t else u → t,  if false then t else u → u",
    "delta": "f c1 … ck → c: a primitive applied to constants, evaluated",
    "unroll": "map f [v1, …] → [f v1, …], fold, iterate, while, zip, append: a loop written out",
    "ascribe": "(t : A) → t",
    "zero": "0 + t → t,  t + 0 → t: the unit of d",
    "factor": "t u + t v → t (u + v): linear factoring, for reals u and v",
}
"""The rules of the reduction, by the names the steps print."""

STEP_LIMIT = 100_000
"""The most steps :meth:`Reduction.steps` takes before it gives up."""


class UnsupportedError(LamError):
    """A term the reduction does not step through (tensors, loops over lists), located."""

    kind = "reduce error"


class Step(NamedTuple):
    """One step: the rule applied, the term after it, and the same term with the
    contractum replaced by :data:`HOLE` (where to look in a long line)."""

    rule: str
    term: Term
    holed: Term


HOLE = "◊"
"""The name of the variable :class:`Step.holed` has in place of the contractum."""


class _Redex(NamedTuple):
    """A redex found: the rule, its contractum, and how the whole term is rebuilt around
    a term put in the redex's place."""

    rule: str
    contractum: Term
    plug: Callable[[Term], Term]


def _inside(put: Callable[[Term], Term], found: _Redex | None) -> _Redex | None:
    """A redex found in a part, seen from the term around the part (``put`` rebuilds it)."""
    if found is None:
        return None
    rule, contractum, plug = found
    return _Redex(rule, contractum, lambda t: put(plug(t)))


def _here(rule: str, contractum: Term) -> _Redex:
    return _Redex(rule, contractum, lambda t: t)


# --------------------------------------------------------------------- the rules


def beta(lam: Lam | LinLam, arg: Term) -> Term:
    """``(λp. t) v → t[v/p]``, and ``(λa ⊸ t) v → t[v/a]``."""
    return substitute(lam.body, match(lam.param, arg))


def let(t: Let) -> Term:
    """``let p = v in t → t[v/p]``."""
    return substitute(t.body, match(t.pattern, t.bound))


def choose(t: If) -> Term:
    """``if true then t else u → t``, ``if false then t else u → u``, the condition a value."""
    return t.then if t.cond.value else t.orelse


def delta(t: Prim, constants: Constants) -> Term:
    """``f c1 … ck → c``: a primitive applied to constants, evaluated by lamad itself."""
    return constants.term(constants.evaluate(t), t.ty, t.span)


def unroll(t: Prim) -> Term | None:
    """A loop over a list written out, its function and list values (``None`` for another
    application): ``map f [v1, …, vn] → [f v1, …, f vn]``, ``fold f z [v1, …, vn] →
    f (… (f z v1) …) vn``, ``iterate n f x → f (… (f x))`` (``n`` times), ``while p f x →
    if p x then while p f (f x) else x``, ``zip``, ``append`` and ``length`` of lists."""
    op, args, span = t.op, t.args, t.span

    def call(f: Term, *xs: Term) -> Term:
        for x in xs:
            f = App(f, x, span=span, ty=f.ty.cod)
        return f

    lists = [a.items for a in args if isinstance(a, ListLit)]
    if op == "map" and isinstance(args[1], ListLit):
        return ListLit(tuple(call(args[0], x) for x in args[1].items), span=span, ty=t.ty)
    if op == "fold" and isinstance(args[2], ListLit):  # the accumulator may be a list too
        acc = args[1]
        for x in args[2].items:
            acc = call(args[0], acc, x)
        return acc
    if op == "iterate" and isinstance(args[0], Lit):
        if args[0].value < 0:
            raise LamRuntimeError(f"the count is negative: {args[0].value}", span)
        x = args[2]
        for _ in range(args[0].value):
            x = call(args[1], x)
        return x
    if op == "while":
        again = Prim("while", (args[0], args[1], call(args[1], args[2])), span=span, ty=t.ty)
        return If(call(args[0], args[2]), again, args[2], span=span, ty=t.ty)
    if op in ("zip", "append") and len(lists) == 2:
        xs, ys = lists
        if op == "append":
            return ListLit(xs + ys, span=span, ty=t.ty)
        if len(xs) != len(ys):
            raise LamRuntimeError(f"lists have lengths {len(xs)} and {len(ys)}; zip needs equal lengths", span)
        return ListLit(tuple(Tuple((x, y), span=span, ty=t.ty.elem) for x, y in zip(xs, ys)), span=span, ty=t.ty)
    if op == "length" and lists:
        return Lit(len(lists[0]), span=span, ty=INT)
    return None


def drop_zero(summands: list[Term]) -> list[Term] | None:
    """``0 + t → t`` and ``t + 0 → t``: the first ``0`` of a sum of two summands or more."""
    if len(summands) > 1:
        for i, s in enumerate(summands):
            if isinstance(s, DZero):
                return summands[:i] + summands[i + 1:]
    return None


def factor(summands: list[Term], constants: Constants) -> list[Term] | None:
    """``t u + t v → t (u + v)`` for the first two summands applying the same
    backpropagator (alike up to the names of bound variables) to reals, or to tensors of
    one shape; the sum goes to the place of the first."""
    keys: dict[tuple, int] = {}
    for j, s in enumerate(summands):
        if not (isinstance(s, App) and isinstance(s.fn.ty, LinType) and s.arg.ty in (REAL, TENSOR)):
            continue  # only a linear function distributes over the sum
        key = (alpha_key(s.fn), constants.shape(s.arg))
        i = keys.setdefault(key, j)
        if i != j:
            first = summands[i]
            both = Prim("add", (first.arg, s.arg), span=first.arg.span, ty=join(first.arg.ty, s.arg.ty))
            return summands[:i] + [App(first.fn, both, span=first.span, ty=GRAD)] + summands[i + 1:j] + summands[j + 1:]
    return None


def latest(summands: list[Term]) -> int | None:
    """The summand whose backpropagator runs next: the first ``(λa ⊸ t) v`` whose
    backpropagator no other summand's contains (the latest made)."""
    applied = [i for i, s in enumerate(summands) if isinstance(s, App) and isinstance(s.fn, (Lam, LinLam))]
    inner = [set(_lambda_keys(summands[i].fn)) for i in applied]
    for n, i in enumerate(applied):
        key = alpha_key(summands[i].fn)
        if not any(key in keys for m, keys in enumerate(inner) if m != n):
            return i
    return applied[0] if applied else None


def _lambda_keys(t: Term) -> Iterator[tuple]:
    """The keys of the λs strictly inside ``t``."""
    for node in subterms(t):
        if node is not t and isinstance(node, (Lam, LinLam)):
            yield alpha_key(node)


# --------------------------------------------------------------------- matching and constants


def match(p: Pattern, v: Term) -> dict[str, Term]:
    """The substitution that binds pattern ``p`` to the value ``v``."""
    if isinstance(p, PVar):
        return {p.name: v}
    if isinstance(p, PWild):
        return {}
    if isinstance(p, PTuple) and isinstance(v, Tuple) and len(p.items) == len(v.items):
        pairs = zip(p.items, v.items)
    elif isinstance(p, PRecord) and isinstance(v, Record):
        pairs = ((i, v.items[v.fields.index(f)]) for f, i in zip(p.fields, p.items))
    else:
        raise UnsupportedError(f"cannot bind this pattern to {pretty(v, ascii=True)}", p.span or v.span)
    bound: dict[str, Term] = {}
    for q, w in pairs:
        bound.update(match(q, w))
    return bound


_SCALARS = {REAL: float, INT: int, BOOL: bool, STRING: str}
_ARRAYS = (TENSOR, INT_TENSOR, BOOL_TENSOR)
_SHOWN = 6
"""An array of at most this many entries is named by its entries, a larger one by its
dtype and shape (and a number)."""


class Constants:
    """The constants of a reduction: scalars are literals, and an array is a variable
    named after it (``[1.0, 2.0]``, ``f64[3,4]#2``), whose value this table holds.
    ``program`` is the loaded program whose definitions the terms use."""

    def __init__(self, program: Any):
        self.program = program
        self.arrays: dict[str, Any] = {}

    def term(self, value: Any, ty: Type, span: Span | None = None) -> Term:
        """The constant term of a value of type ``ty`` (numbers, truth values, text,
        arrays, and tuples, records and lists of them)."""
        if ty in _SCALARS:
            return Lit(_SCALARS[ty](value), span=span, ty=ty)
        if ty == UNIT:
            return Lit((), span=span, ty=ty)
        if ty in _ARRAYS:
            return Var(self.name(value), span=span, ty=ty)
        if isinstance(ty, TupleType):
            return Tuple(tuple(self.term(v, t, span) for v, t in zip(value, ty.items)), span=span, ty=ty)
        if isinstance(ty, RecordType):
            return Record(ty.fields, tuple(self.term(v, t, span) for v, t in zip(value, ty.items)), span=span, ty=ty)
        if isinstance(ty, ListType):
            return ListLit(tuple(self.term(v, ty.elem, span) for v in value), span=span, ty=ty)
        raise UnsupportedError(f"reduce steps through terms whose values are data (numbers, truth values, "
                               f"text, arrays, and tuples, records and lists of them); this one is a {ty}", span)

    def name(self, array: Any) -> str:
        """The variable an array is: named by its entries or by its dtype and shape."""
        host = self.host(array)
        if host.size <= _SHOWN:
            name = np.array2string(host, separator=", ").replace("\n", "")
        else:
            name = f"{host.dtype.kind}{8 * host.dtype.itemsize}[{','.join(map(str, host.shape))}]"
        base, n = name, 1
        while name in self.arrays and not _same(self.host(self.arrays[name]), host):
            n += 1
            name = f"{base}#{n}"
        self.arrays[name] = array
        return name

    def host(self, array: Any) -> np.ndarray:
        """An array as NumPy holds it."""
        return np.asarray(self.program.backend.to_host(array))

    def ground(self, t: Term) -> bool:
        """Whether ``t`` is data: literals and arrays in tuples, records and lists."""
        if isinstance(t, (Lit, Var)):
            return isinstance(t, Lit) or t.name in self.arrays
        return isinstance(t, (Tuple, Record, ListLit)) and all(self.ground(i) for i in t.items)

    def shape(self, t: Term) -> tuple[int, ...] | None:
        """The shape of a real or an array constant; ``None`` for another term."""
        if isinstance(t, Lit) and isinstance(t.value, float):
            return ()
        return np.shape(self.arrays[t.name]) if isinstance(t, Var) and t.name in self.arrays else None

    def value(self, name: str) -> Any:
        """The value of a name in a term: an array's, or a definition's."""
        return self.arrays[name] if name in self.arrays else self.program.value(name)

    def evaluate(self, t: Term) -> Any:
        """The value of a closed term of constants."""
        return driver.run(t, self.program.runtime, self.value)


def _same(a: Any, b: Any) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


# --------------------------------------------------------------------- the strategy


@dataclass
class Reduction:
    """The reduction of ``start``: ``definitions`` gives ←D of a definition by name
    (``None`` for a name that is not one); ``constants`` holds its arrays and evaluates."""

    start: Term
    definitions: Callable[[str], Term | None]
    constants: Constants
    limit: int = STEP_LIMIT
    final: Term | None = field(default=None, init=False)

    def steps(self) -> Iterator[Step]:
        """Each step, until the term is normal (then :attr:`final` is it)."""
        t = self.start
        for _ in range(self.limit):
            try:
                found = self.redex(t)
            except RecursionError:
                raise UnsupportedError("the term is nested too deeply to step through", self.start.span) from None
            if found is None:
                self.final = t
                return
            rule, contractum, plug = found
            t = plug(contractum)
            yield Step(rule, t, plug(Var(HOLE, ty=contractum.ty)))
        raise UnsupportedError(f"the reduction took more than {self.limit} steps", self.start.span)

    def redex(self, t: Term) -> _Redex | None:
        """The next redex of ``t`` by the strategy, ``None`` when ``t`` is normal."""
        cls = t.__class__
        if cls is Var:
            unfolded = self.definitions(t.name)
            return None if unfolded is None else _here("unfold", unfolded)
        if cls in (Lit, Lam, LinLam, DZero):
            return None
        if cls is Ann:
            return _here("ascribe", t.term)
        if cls in (Tuple, ListLit, Record):
            return self.first(t.items, lambda items: _with(t, items=items))
        if cls is Proj:
            return self.part(t.term, lambda r: _with(t, term=r)) or _here("proj", project(t))
        if cls is App:
            return self.application(t)
        if cls is Let:
            return self.part(t.bound, lambda b: _with(t, bound=b)) or _here("let", let(t))
        if cls is If:
            return self.part(t.cond, lambda c: _with(t, cond=c)) or _here("if", choose(t))
        if cls is Prim:
            return self.primitive(t)
        if cls is DAdd:
            return self.sum(list(summands(t)))
        raise UnsupportedError(f"reduce does not step through a {cls.__name__}", t.span)

    def part(self, t: Term, put: Callable[[Term], Term]) -> _Redex | None:
        return _inside(put, self.redex(t))

    def first(self, items: tuple[Term, ...], put: Callable[[tuple[Term, ...]], Term]) -> _Redex | None:
        """The redex of the leftmost item that has one."""
        for i, item in enumerate(items):
            found = self.part(item, lambda new, i=i: put(items[:i] + (new,) + items[i + 1:]))
            if found is not None:
                return found
        return None

    def application(self, t: App, contract: bool = True) -> _Redex | None:
        """``t u``: ``t``, then ``u``, then β (unless not ``contract``)."""
        found = self.first((t.fn, t.arg), lambda parts: _with(t, fn=parts[0], arg=parts[1]))
        if found is not None or not contract or not isinstance(t.fn, (Lam, LinLam)):
            return found
        return _applied(t.fn, t.arg)

    def primitive(self, t: Prim) -> _Redex | None:
        """The arguments, left to right, then ``fst``/``snd`` or δ."""
        found = self.first(t.args, lambda args: _with(t, args=args))
        if found is not None:
            return found
        if t.op in ("fst", "snd"):
            return _here("proj", project(t))
        if not all(self.constants.ground(a) for a in t.args):
            if (unrolled := unroll(t)) is not None:
                return _here("unroll", unrolled)
            raise UnsupportedError(f"reduce evaluates primitives on constants, and writes out map, fold, "
                                   f"iterate, while, zip and append; '{t.op}' is applied to a function or a "
                                   f"backpropagator here (scan and AD operators inside the term are not "
                                   f"stepped through)", t.span)
        return _here("delta", delta(t, self.constants))

    def sum(self, summands: list[Term]) -> _Redex | None:
        """A sum in ``d``: drop a ``0``; reduce the parts of the summands; factor; apply
        the latest backpropagator."""
        def at(i: int) -> Callable[[Term], Term]:
            return lambda new: gradient_sum(summands[:i] + [new] + summands[i + 1:])

        if (fewer := drop_zero(summands)) is not None:
            return _here("zero", gradient_sum(fewer))
        for i, s in enumerate(summands):
            inside = self.application(s, contract=False) if isinstance(s, App) else self.redex(s)
            if (found := _inside(at(i), inside)) is not None:
                return found
        if (factored := factor(summands, self.constants)) is not None:
            return _here("factor", gradient_sum(factored))
        i = latest(summands)
        return None if i is None else _inside(at(i), _applied(summands[i].fn, summands[i].arg))


def _applied(fn: Lam | LinLam, arg: Term) -> _Redex:
    """β at the redex ``fn arg``: ``beta-lin`` for a backpropagator."""
    return _here("beta-lin" if isinstance(fn, LinLam) else "beta", beta(fn, arg))


def _with(t: Term, **parts: Any) -> Term:
    """``t`` with these parts replaced."""
    return update(t, **parts)


# --------------------------------------------------------------------- the inputs and the gradient


@dataclass
class Inputs:
    """The inputs of a reduction: the terms ←D(f) is applied to, and the backpropagator
    variable of each real or tensor leaf (its name, in order)."""

    constants: Constants
    terms: list[Term] = field(default_factory=list)
    leaves: list[str] = field(default_factory=list)

    def add(self, name: str, value: Any, ty: Type, span: Span | None) -> None:
        """An input named ``name`` (a parameter's name), of value ``value``; an error
        about it is located at ``span``."""
        self.terms.append(self.dual(name, value, ty, span))

    def dual(self, name: str, value: Any, ty: Type, span: Span | None = None) -> Term:
        """The value paired with backpropagators: ``(v, x')`` for a real or a tensor ``x``."""
        if ty in (REAL, TENSOR):
            self.leaves.append(name + "'")
            return Tuple((self.constants.term(value, ty, span), Var(name + "'", ty=perp(ty))), ty=backprop_type(ty))
        if isinstance(ty, (TupleType, RecordType)):
            labels = ty.fields if isinstance(ty, RecordType) else range(1, len(ty.items) + 1)
            items = tuple(self.dual(f"{name}_{f}", v, t, span) for f, v, t in zip(labels, value, ty.items))
            return (Record(ty.fields, items, ty=backprop_type(ty)) if isinstance(ty, RecordType)
                    else Tuple(items, ty=backprop_type(ty)))
        if isinstance(ty, ListType):
            return ListLit(tuple(self.dual(f"{name}_{i}", v, ty.elem, span) for i, v in enumerate(value)),
                           ty=backprop_type(ty))
        return self.constants.term(value, ty, span)

    def gradient(self, names: list[str], values: list[Any], types: list[Type], final: Term) -> list[Any]:
        """The gradient the normal form ``x1' c1 + … + xk' ck`` holds, one per input."""
        sent: dict[str, Any] = {}
        for s in summands(final):
            if isinstance(s, DZero):
                continue
            if not (isinstance(s, App) and isinstance(s.fn, Var) and s.fn.name in self.leaves
                    and self.constants.shape(s.arg) is not None):
                raise UnsupportedError(f"the reduction stopped at {pretty(s, ascii=True)}, which is not an "
                                       f"input's backpropagator applied to a constant", s.span)
            part = s.arg.value if isinstance(s.arg, Lit) else self.constants.host(self.constants.arrays[s.arg.name])
            sent[s.fn.name] = sent.get(s.fn.name, 0.0) + part
        return [_read(name, v, t, sent) for name, v, t in zip(names, values, types)]


def _read(name: str, value: Any, ty: Type, sent: dict[str, Any]) -> Any:
    """The gradient of the input ``name`` from what was sent to its leaves."""
    if ty == REAL:
        return float(sent.get(name + "'", 0.0))
    if ty == TENSOR:
        return np.zeros(np.shape(value)) + sent.get(name + "'", 0.0)
    if isinstance(ty, (TupleType, RecordType)):
        labels = ty.fields if isinstance(ty, RecordType) else range(1, len(ty.items) + 1)
        return tuple(_read(f"{name}_{f}", v, t, sent) for f, v, t in zip(labels, value, ty.items))
    if isinstance(ty, ListType):
        return [_read(f"{name}_{i}", v, ty.elem, sent) for i, v in enumerate(value)]
    return ()


def result_pattern(ty: Type, cotangent: Term, name: str = "y") -> tuple[Pattern, list[Term]]:
    """The pattern that takes ←D's result of type ``ty`` apart, and the backpropagators of
    its real leaves applied to their parts of ``cotangent``."""
    if ty in (REAL, TENSOR):
        back = Var(name + "'", ty=perp(ty))
        return PTuple((PVar(name), PVar(back.name))), [App(back, cotangent, ty=GRAD)]
    if isinstance(ty, (TupleType, RecordType)) and isinstance(cotangent, (Tuple, Record)):
        parts = [result_pattern(t, c, f"{name}{i}") for i, (t, c) in enumerate(zip(ty.items, cotangent.items), 1)]
        items = tuple(p for p, _ in parts)
        pattern = PRecord(ty.fields, items) if isinstance(ty, RecordType) else PTuple(items)
        return pattern, [s for _, sent in parts for s in sent]
    if cotangent_type(ty) == UNIT:
        return PWild(), []
    raise UnsupportedError(f"reduce sends a cotangent to results made of reals, tensors, tuples and records; "
                           f"this one is a {ty}", cotangent.span)


def start(derivative: Term, inputs: Inputs, result: Type, cotangent: Term) -> Term:
    """``let p = ←D(f) v1 … vk in y1' c1 + … + ym' cm``: the term the reduction starts from,
    located where the cotangent is (at the function)."""
    applied = derivative
    for arg in inputs.terms:
        applied = App(applied, arg, ty=applied.ty.cod)
    pattern, sent = result_pattern(result, cotangent)
    return Let(pattern, applied, gradient_sum(sent), span=cotangent.span, ty=GRAD)


# --------------------------------------------------------------------- printing


def show(step: Step, ascii: bool = False, width: int = 100, shadowed: frozenset[str] = frozenset()) -> str:
    """A step on one line: the rule and the term after it, elided around the contractum
    with ``…`` where it is longer than ``width``."""
    text = one_line(step.term, ascii, shadowed)
    if len(text) > width:
        at = one_line(step.holed, ascii, shadowed).find(HOLE)
        begin = max(0, min(at - width // 3, len(text) - width))
        text = ("…" if begin else "") + text[begin:begin + width] + ("…" if begin + width < len(text) else "")
    return f"{step.rule:<9} {text}"


def one_line(t: Term, ascii: bool = False, shadowed: frozenset[str] = frozenset()) -> str:
    """``t`` printed on one line."""
    return " ".join(line.strip() for line in pretty(t, ascii, shadowed=shadowed).splitlines())


# --------------------------------------------------------------------- a program's reduction


@dataclass
class Reduced:
    """The reduction of ←D(f) at a point, for ``lamad reduce`` and the REPL's ``:step``:
    the point's parameters (names, types, values), and the inputs made of them."""

    reduction: Reduction
    inputs: Inputs
    params: list[tuple[str, Type]]
    values: list[Any]

    def gradient(self) -> tuple[Any, Type]:
        """The gradient the reduction ended at, and its type (a tuple of one per parameter
        when there are several): what ``grad`` gives."""
        assert self.reduction.final is not None, "the steps have not all been taken"
        names, types = [n for n, _ in self.params], [t for _, t in self.params]
        grads = self.inputs.gradient(names, self.values, types, self.reduction.final)
        cts = [cotangent_type(t) for t in types]
        return (grads[0], cts[0]) if len(grads) == 1 else (tuple(grads), TupleType(tuple(cts)))


def parameters(program: Any, term: Term) -> list[tuple[str, Type]]:
    """The parameters ←D(term) is reduced at: a definition's (its named parameters), or
    the one parameter of an elaborated function term (named as its λ names it)."""
    if isinstance(term, Var) and term.name in program.typed.terms:
        definition = program.typed.program[term.name]
        params = [(p.name, t) for p, t in zip(definition.params, program.function_types(term.name))]
        if params:
            return params
    elif isinstance(term.ty, FunType):
        lam = term.term if isinstance(term, Ann) else term
        name = lam.param.name if isinstance(lam, Lam) and isinstance(lam.param, PVar) else "x"
        return [(name, term.ty.dom)]
    raise UnsupportedError(f"reduce steps through a function applied to a point; this is a {term.ty}", term.span)


def point_type(params: list[tuple[str, Type]]) -> Type:
    """The type of the point: the one parameter's, or the tuple of the parameters'."""
    return params[0][1] if len(params) == 1 else TupleType(tuple(t for _, t in params))


def transcript(reduced: Reduced, ascii: bool = False, width: int = 100,
               shadowed: frozenset[str] = frozenset()) -> Iterator[str]:
    """What ``lamad reduce`` prints, line by line: the start, one step a line (numbered),
    and the gradient."""
    leaves = ", ".join(reduced.inputs.leaves) or "none"
    yield f"-- backpropagators of the inputs: {leaves}; rules: docs/differentiation.md"
    text = f"{0:>4} {'start':<9} {one_line(reduced.reduction.start, ascii, shadowed)}"
    yield text if len(text) <= width + 15 else text[:width + 14] + "…"
    n = 0
    for n, step in enumerate(reduced.reduction.steps(), 1):
        yield f"{n:>4} {show(step, ascii, width, shadowed)}"
    value, ty = reduced.gradient()
    shown = " ".join(line.strip() for line in format_value(value, ty, ascii).splitlines())
    yield f"-- gradient, after {n} steps: {shown}"


def reduce_at(program: Any, term: Term, params: list[tuple[str, Type]], values: list[Any],
              cotangent: Any | None = None) -> Reduced:
    """The reduction of ←D(term) at ``values`` (one per parameter) for the loaded program
    ``program`` (:class:`lamad.api.LoadedProgram`): ``term`` is the name of a definition
    (a :class:`Var`, unfolded by the first step) or an elaborated term.  ``cotangent``, a
    value of the result's cotangent type, defaults to 1.0 for a Real result."""

    def definition(name: str) -> Term | None:
        if name not in program.typed.terms:
            return None
        if name not in unfolded:
            unfolded[name] = driver.derivative(program.typed.terms[name], "reverse", simplified=False)[1]
        return unfolded[name]

    unfolded: dict[str, Term] = {}
    if isinstance(term, Var) and term.name in program.typed.terms:
        derivative, ty = Var(term.name, span=term.span, ty=backprop_type(term.ty)), term.ty
    else:
        ty = term.ty
        derivative = driver.derivative(term, "reverse", simplified=False)[1]
    constants = Constants(program)
    inputs = Inputs(constants)
    for (name, t), v in zip(params, values):
        inputs.add(name, v, t, term.span)
        ty = ty.cod
    if cotangent is None:
        if ty != REAL:
            raise UnsupportedError(f"the result is a {ty}, not a Real: give the cotangent to send back "
                                   f"(--cotangent, or ':step f at v with ct')", term.span)
        cotangent = 1.0
    begin = start(derivative, inputs, ty, constants.term(cotangent, cotangent_type(ty), term.span))
    return Reduced(Reduction(begin, definition, constants), inputs, params, values)
