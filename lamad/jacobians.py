"""The Jacobians of functions of records and tuples (docs/differentiation.md, "Nesting and
second order"): ``jacfwd``, ``jacrev`` and ``hessian`` where the argument or the result is
a record or a tuple of Reals and Tensors (at any depth), as JAX gives them for pytrees.

The Jacobian of ``f : X → Y`` is then a value of the structure of ``Y`` whose every leaf
``o`` is a value of the structure of ``X`` whose every leaf ``k`` is the block
``∂y_o/∂x_k``, of shape ``shape(y_o) + shape(x_k)`` (a Real when both are Reals): a record
of records for a record-valued function of a record, and the Hessian of a function of a
record is the record of records of its blocks ``∂²f/∂x_o∂x_k``.  These functions write
that term in lamad, from ``jvp`` (one per component of each leaf of the argument: the
columns) and ``vjp`` (one pullback per component of each leaf of the result: the rows),
for the checker to elaborate as it elaborates the rules of the records (lamad/prims/ad.py).
"""

from __future__ import annotations

from typing import Callable

from lamad.syntax import (
    PRODUCTS, REAL, TENSOR, App, Lam, Let, ListLit, Lit, Prim, Proj, PTuple, PVar, PWild, Record, RecordType, Span,
    Term, Tuple, Type, Var,
)

Path = tuple["str | int", ...]
"""Where a leaf is in a structure: field names of records, positions in tuples."""


def leaves(t: Type) -> list[tuple[Path, Type]] | None:
    """The leaves of a structure of records and tuples, each with its path and its type
    (Real or Tensor), in the order of the values' components; ``None`` if a leaf is of
    another type."""
    if t in (REAL, TENSOR):
        return [((), t)]
    if not isinstance(t, PRODUCTS):
        return None
    keys = t.fields if isinstance(t, RecordType) else range(len(t.items))
    out: list[tuple[Path, Type]] = []
    for key, item in zip(keys, t.items):
        inner = leaves(item)
        if inner is None:
            return None
        out += [((key,) + path, leaf) for path, leaf in inner]
    return out


class _Writer:
    """Source terms located at ``span``, with the fresh names of ``fresh``."""

    def __init__(self, fresh: Callable[[str], str], span: Span | None):
        self.fresh, self.span = fresh, span

    def var(self, name: str) -> Var:
        return Var(name, span=self.span)

    def call(self, fn: str, *args: Term) -> Term:
        """The builtin ``fn`` applied to ``args``, by its ``%name``: whatever the program binds."""
        return self.apply(Var("%" + fn, span=self.span), *args)

    def apply(self, fn: Term, *args: Term) -> Term:
        for a in args:
            fn = App(fn, a, span=self.span)
        return fn

    def at(self, term: Term, path: Path, t: Type) -> Term:
        """The leaf of ``term`` (of type ``t``) at ``path``."""
        for key in path:
            if isinstance(key, str):
                term, t = Proj(term, key, span=self.span), t.field_type(key)
            else:
                name = self.fresh("c")
                parts = tuple(PVar(name, span=self.span) if i == key else PWild(span=self.span)
                              for i in range(len(t.items)))
                term, t = Let(PTuple(parts, span=self.span), term, self.var(name), span=self.span), t.items[key]
        return term

    def build(self, t: Type, leaf: Callable[[Path, Type], Term], path: Path = ()) -> Term:
        """A value of the structure ``t`` whose leaf at each path is ``leaf(path, type)``."""
        if t in (REAL, TENSOR):
            return leaf(path, t)
        if isinstance(t, RecordType):
            return Record(t.fields, tuple(self.build(i, leaf, path + (f,)) for f, i in zip(t.fields, t.items)),
                          span=self.span)
        return Tuple(tuple(self.build(i, leaf, path + (k,)) for k, i in enumerate(t.items)), span=self.span)

    def basis(self, t: Type, value: Term, where: Path, seed: Term) -> Term:
        """A tangent (or cotangent) of ``value : t``: ``seed`` at the leaf ``where``, zeros
        of the other leaves' shapes elsewhere."""
        return self.build(t, lambda path, _: seed if path == where else
                          self.call("zeros_like", self.at(value, path, t)))

    def unit_vectors(self, n: Term) -> Term:
        """The rows of the identity of size ``n``."""
        return self.call("unstack", self.call("eye", n))

    def mapped(self, param: str, param_type: Type, body: Term, over: Term) -> Term:
        return self.call("map", Lam(PVar(param, param_type, span=self.span), body, span=self.span), over)

    def seeded(self, leaf: Type, like: Term, probe: Callable[[Term], Term]) -> Term:
        """``probe`` of 1.0 for a Real leaf; for a Tensor leaf of ``like``'s shape, the list
        of ``probe`` of each of its unit vectors."""
        if leaf == REAL:
            return probe(Lit(1.0, span=self.span))
        e = self.fresh("e")
        unit = self.call("reshape", self.var(e), self.call("shape", like))
        return self.mapped(e, TENSOR, probe(unit), self.unit_vectors(self.call("size", like)))


def jacfwd(f: Term, x: Term, dom: Type, cod: Type, fresh: Callable[[str], str], span: Span | None) -> Term:
    """``jacfwd f x`` for ``f : dom → cod``, structures of Reals and Tensors: for each leaf
    ``k`` of the argument, the tangents of ``f`` along the unit vectors of ``x_k`` (one
    ``jvp`` each; one along 1.0 for a Real), stacked into the blocks of each leaf of the
    result."""
    w = _Writer(fresh, span)
    fn, point, value = fresh("f"), fresh("x"), fresh("y")
    bindings = [(fn, f), (point, x), (value, w.apply(w.var(fn), w.var(point)))]
    columns: dict[Path, str] = {}
    for k, leaf in leaves(dom):
        def tangent(seed: Term, k=k) -> Term:
            return w.call("snd", w.call("jvp", w.var(fn), w.var(point), w.basis(dom, w.var(point), k, seed)))
        columns[k] = fresh("cols")
        bindings.append((columns[k], w.seeded(leaf, w.at(w.var(point), k, dom), tangent)))

    def block(o: Path, out: Type, k: Path, leaf: Type) -> Term:
        """``∂y_o/∂x_k``: the columns' leaf ``o``, stacked and moved behind the result's axes."""
        if leaf == REAL:
            return w.at(w.var(columns[k]), o, cod)
        c = fresh("col")
        stacked = w.call("stack", w.mapped(c, cod, w.at(w.var(c), o, cod), w.var(columns[k])))
        x_k = w.at(w.var(point), k, dom)
        if out == REAL:
            return w.call("reshape", stacked, w.call("shape", x_k))
        rows = w.call("transpose", w.call("reshape", stacked,
                                          ListLit((w.call("size", x_k), Prim("neg", (Lit(1, span=span),), span=span)),
                                                  span=span)))
        return w.call("reshape", rows, w.call("append", w.call("shape", w.at(w.var(value), o, cod)),
                                               w.call("shape", x_k)))

    body = w.build(cod, lambda o, out: w.build(dom, lambda k, leaf: block(o, out, k, leaf)))
    return _lets(bindings, body, span)


def jacrev(f: Term, x: Term, dom: Type, cod: Type, fresh: Callable[[str], str], span: Span | None) -> Term:
    """``jacrev f x`` for ``f : dom → cod``, structures of Reals and Tensors: for each leaf
    ``o`` of the result, the pullbacks of the unit vectors of ``y_o`` (of 1.0 for a Real),
    whose leaves ``k`` are stacked into the blocks."""
    w = _Writer(fresh, span)
    fn, point, value, pullback = fresh("f"), fresh("x"), fresh("y"), fresh("pullback")
    pair = Let(PTuple((PVar(value, span=span), PVar(pullback, span=span)), span=span),
               w.call("vjp", w.var(fn), w.var(point)), None, span=span)
    rows: dict[Path, str] = {}
    later: list[tuple[str, Term]] = []
    for o, leaf in leaves(cod):
        def pulled(seed: Term, o=o) -> Term:
            return w.apply(w.var(pullback), w.basis(cod, w.var(value), o, seed))
        rows[o] = fresh("rows")
        later.append((rows[o], w.seeded(leaf, w.at(w.var(value), o, cod), pulled)))

    def block(o: Path, out: Type, k: Path, leaf: Type) -> Term:
        """``∂y_o/∂x_k``: the rows' leaf ``k``, stacked behind the result's axes."""
        if out == REAL:
            return w.at(w.var(rows[o]), k, dom)
        r = fresh("row")
        stacked = w.call("stack", w.mapped(r, dom, w.at(w.var(r), k, dom), w.var(rows[o])))
        shape = w.call("shape", w.at(w.var(value), o, cod))
        if leaf == TENSOR:
            shape = w.call("append", shape, w.call("shape", w.at(w.var(point), k, dom)))
        return w.call("reshape", stacked, shape)

    body = _lets(later, w.build(cod, lambda o, out: w.build(dom, lambda k, leaf: block(o, out, k, leaf))), span)
    inner = Let(pair.pattern, pair.bound, body, span=span)
    return _lets([(fn, f), (point, x)], inner, span)


def _lets(bindings: list[tuple[str, Term]], body: Term, span: Span | None) -> Term:
    for name, bound in reversed(bindings):
        body = Let(PVar(name, span=span), bound, body, span=span)
    return body
