"""The syntactic linearity test of linear functions (docs/language.md): the checker
applies it to every ``λa ⊸ t`` a program writes."""

from __future__ import annotations

from lamad.prims import PRIMITIVES
from lamad.syntax import (
    App, DAdd, DZero, If, Lam, Let, LinLam, LinType, Lit, Prim, Proj, PVar, Term, Var, children, pattern_names,
)



def is_zero(t: Term) -> bool:
    """The zero of ``d``, or the literal ``0`` (which is that zero where ``d`` is expected)."""
    return isinstance(t, DZero) or (isinstance(t, Lit) and not isinstance(t.value, bool) and t.value == 0)


def mentions(t: Term, names: str | frozenset[str]) -> bool:
    """Whether any of ``names`` occurs free in ``t``."""
    names = frozenset([names]) if isinstance(names, str) else names
    if isinstance(t, Var):
        return t.name in names
    if isinstance(t, (Lam, LinLam)):
        names = names - set(pattern_names(t.param))
    if isinstance(t, Let):
        return mentions(t.bound, names) or mentions(t.body, names - set(pattern_names(t.pattern)))
    return bool(names) and any(mentions(c, names) for c in children(t))


def linear_in(t: Term, a: str | frozenset[str]) -> bool:
    """Whether ``t`` is linear in ``a`` (or jointly in a set of variables): built from them
    by sums whose every summand is linear, applications of linear functions, builtins in
    their linear arguments (:attr:`Builtin.linear`) with the other arguments free of
    them, ``let``s whose bound term is linear (its variable is then linear too), and
    functions ``λp. u`` whose body is linear (pointwise: ``map (λi. f i a) is`` is a list
    each element of which is linear in ``a``)."""
    linear = frozenset([a]) if isinstance(a, str) else a
    if isinstance(t, Var):
        return t.name in linear
    if isinstance(t, DAdd) or (isinstance(t, Prim) and t.op in ("add", "sub")):
        args = (t.left, t.right) if isinstance(t, DAdd) else t.args
        return any(linear_in(x, linear) for x in args) and all(linear_in(x, linear) or is_zero(x) for x in args)
    if isinstance(t, Prim):
        hits = [i for i, x in enumerate(t.args) if mentions(x, linear)]
        return len(hits) == 1 and hits[0] in PRIMITIVES[t.op].linear and linear_in(t.args[hits[0]], linear)
    if isinstance(t, App):
        return isinstance(t.fn.ty, LinType) and not mentions(t.fn, linear) and linear_in(t.arg, linear)
    if isinstance(t, Let):
        inner = linear - set(pattern_names(t.pattern))
        if not mentions(t.bound, linear):
            return linear_in(t.body, inner)
        return isinstance(t.pattern, PVar) and linear_in(t.bound, linear) and linear_in(t.body, inner | {t.pattern.name})
    if isinstance(t, If):
        return not mentions(t.cond, linear) and linear_in(t.then, linear) and linear_in(t.orelse, linear)
    if isinstance(t, Proj):  # a field of a record is linear in the record
        return linear_in(t.term, linear)
    if isinstance(t, Lam):
        return not linear & set(pattern_names(t.param)) and linear_in(t.body, linear)
    return False
