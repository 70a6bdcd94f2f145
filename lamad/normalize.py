"""Normal forms of higher-order code, made before ←D (docs/differentiation.md, "Normal
forms"): ``lamad grad --normalize`` and the REPL's ``:grad`` and ``:d``.

A function a program binds with ``let``, passes to another or takes from a definition is
inlined where it is applied, and the application β-reduced, so that the symbolic backward
pass of :mod:`lamad.simplify` sees straight-line code: ←D of
``let sq = λz. z · z in sq (sq x)`` is then the backpropagation of ``x⁴``, with no ``sq``
left.  The rules, applied everywhere, under λs too (terms are pure):

* ``(λp. t) u → let p = u in t`` — β, keeping ``u`` computed once;
* ``let f = v in t → t[v/f]`` where ``v`` is a function: a λ, or a definition whose term
  is one (``twice inc``: ``inc`` inlined where ``twice`` applies it);
* ``g u → (λp. t) u`` for a definition ``g = λp. t``: a definition unfolded where it is
  applied;
* ``fst (u, v) → u``, ``snd (u, v) → v``, ``{w = u, …}.w → u`` (functions kept in pairs
  and records);
* ``(t : A) u → t u``.

Simply-typed terms normalise, but the normal form may be much larger than the term;
:func:`normalize` gives up (and returns ``None``) past a budget of rewrites, of nodes
visited or of size.
Functions passed to primitives (``map``, ``fold``) stay λs: the primitives apply them.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from lamad.errors import LamError
from lamad.syntax import (
    Ann, App, Lam, Let, LinLam, Prim, Proj, PVar, Record, Term, Tuple, Var, map_children, pattern_names, size,
    substitute, subterms,
)

STEPS = 2_000
"""The most rewrites :func:`normalize` makes."""
GROWTH = 4
"""How many times larger than the term (plus :data:`SLACK` nodes) its normal form may be."""
SLACK = 2_000
WORK = 25
"""How many times the size of that bound (the normal form's largest) the nodes visited may
be: a rewrite walks the term it makes again, and a term may grow without rewrites (a
function copied where it is used)."""


class _OverBudget(Exception):
    """The budget of :func:`normalize` is spent."""


def normalize(term: Term, definitions: Mapping[str, Term] = {}, steps: int = STEPS) -> Term | None:
    """``term`` with its higher-order code inlined and β-reduced, ``None`` past the budget
    (``steps`` rewrites, or a result :data:`GROWTH` times the size of ``term``).
    ``definitions`` are the program's elaborated terms, unfolded where applied."""
    limit = GROWTH * size(term) + SLACK
    if any(n in definitions for t in (term, *definitions.values()) for n in _binders(t)):
        definitions = {}  # a local named like a definition could capture it where it is unfolded
    normalizer = _Normalizer(definitions, steps, WORK * limit)
    try:
        result = normalizer.term(term)
    except (_OverBudget, RecursionError):
        return None
    return result if size(result) <= limit else None


def project(t: Prim | Proj) -> Term:
    """``fst (u, v) → u``, ``snd (u, v) → v``, ``{w = u, …}.w → u``: a part of a pair or a record
    written out (the rule of :mod:`lamad.normalize` and of :mod:`lamad.reduce`)."""
    if isinstance(t, Proj) and isinstance(t.term, Record):
        return t.term.items[t.term.fields.index(t.field)]
    if isinstance(t, Prim) and isinstance(t.args[0], Tuple):
        return t.args[0].items[0 if t.op == "fst" else 1]
    raise LamError("cannot take a part of this value", t.span)


def _binders(t: Term) -> Iterator[str]:
    """The names bound anywhere in ``t``."""
    for node in subterms(t):
        if isinstance(node, (Lam, LinLam, Let)):
            yield from pattern_names(node.pattern if isinstance(node, Let) else node.param)


def _function(t: Term) -> Lam | None:
    """The λ that ``t`` is, under type ascriptions."""
    while isinstance(t, Ann):
        t = t.term
    return t if isinstance(t, Lam) else None


class _Normalizer:
    """One normalisation: ``steps`` rewrites and ``visits`` nodes visited at most."""

    def __init__(self, definitions: Mapping[str, Term], steps: int, visits: int):
        self.definitions, self.left, self.visits = definitions, steps, visits

    def spend(self) -> None:
        """One rewrite."""
        self.left -= 1
        if self.left < 0:
            raise _OverBudget

    def unfolded(self, t: Term) -> Lam | None:
        """The λ a term stands for: itself, or the definition it names (not shadowed: the
        walk substitutes every bound function before it meets its uses)."""
        if isinstance(t, Var) and t.name in self.definitions:
            return _function(self.definitions[t.name])
        return _function(t)

    def term(self, t: Term) -> Term:
        self.visits -= 1
        if self.visits < 0:
            raise _OverBudget
        cls = t.__class__
        if cls is App:
            return self.application(t)
        if cls is Let:
            return self.let(t)
        if (cls is Prim and t.op in ("fst", "snd")) or cls is Proj:
            return self.projection(t)
        return map_children(t, self.term)

    def application(self, t: App) -> Term:
        """β, the function a λ or a definition: ``(λp. b) u → let p = u in b``."""
        fn, arg = self.term(t.fn), self.term(t.arg)
        lam = self.unfolded(fn)
        if lam is None:
            return App(fn, arg, span=t.span, ty=t.ty) if (fn, arg) != (t.fn, t.arg) else t
        self.spend()
        return self.term(Let(lam.param, arg, lam.body, span=t.span, ty=t.ty))

    def let(self, t: Let) -> Term:
        """``let f = v in b → b[v/f]`` for a function ``v``."""
        bound = self.term(t.bound)
        if isinstance(t.pattern, PVar) and self.unfolded(bound) is not None:
            self.spend()
            return self.term(substitute(t.body, {t.pattern.name: bound}))
        return Let(t.pattern, bound, self.term(t.body), span=t.span, ty=t.ty)

    def projection(self, t: Prim | Proj) -> Term:
        """A part of a pair or a record written out."""
        new = map_children(t, self.term)
        inner = new.term if isinstance(new, Proj) else new.args[0]
        if isinstance(inner, (Tuple, Record)):
            self.spend()
            return project(new)
        return new


def normalized(term: Term, definitions: Mapping[str, Term] = {}) -> Term:
    """``term`` normalised, or ``term`` itself where that is over the budget."""
    result = normalize(term, definitions)
    return term if result is None else result

