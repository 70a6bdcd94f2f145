"""The reverse-mode transform ←D of Brunel, Mazza & Pagani (POPL 2020);
docs/differentiation.md says how lamad implements it.

``backprop(t)`` maps an elaborated source term of type ``A`` to a target term of
type ``←D(A)``, by structural recursion with one clause per term former and no
global analysis.  Reals and tensors become pairs of a value and its
*backpropagator* (``A⊥ = A ⊸ d``); every other former commutes with ←D.  A
differentiable builtin ``f`` follows the chain rule

    ←D(f t1 … tk) = let (x1, x1') = ←D t1; …; y = f x1 … xk
                    in (y, λa ⊸ x1' (∂1f* a) + … + xk' (∂kf* a))

with the transposed partial derivatives ``∂if*`` of its record
(:attr:`lamad.prims.Primitive.vjp`), written in lamad itself.  The result is an ordinary term: it is printed, type-checked and
evaluated like any other.
"""

from __future__ import annotations

from functools import partial

from lamad.errors import LamTypeError
from lamad.prims import PRIMITIVES
from lamad.adtypes import backprop_type, cotangent_type, has_leaves
from lamad.linearity import is_zero, linear_in, mentions
from lamad.syntax import (
    ARRAY_OF, GRAD, REAL, TENSOR, App, DAdd, DZero, LinLam, Lit, Pattern, PVar, Prim, Span, Term, Tuple, Type, Var, lets,
    perp,
)
from lamad.transform import Transform

ARRAYS = frozenset(ARRAY_OF.values())
"""The array types: an argument of one of them may widen the others' shapes."""

# --------------------------------------------------------------------- the transform


class _Backprop(Transform):
    """One run of ←D: the clauses for literals and differentiable primitives; the others are
    shared with →D (:class:`lamad.transform.Transform`)."""

    mark, letter, partner = "←D", "r", "'"

    def type_of(self, t: Type) -> Type:
        return backprop_type(t)

    def rules(self, prim) -> tuple[Term | None, ...]:
        return prim.vjp_terms

    def literal(self, t: Lit) -> Term:
        """←D(r) = (r, λa ⊸ 0) for a numeric literal; other literals are discrete."""
        if t.ty in (REAL, TENSOR):
            return Tuple.make((Lit.make(t.value, span=t.span, ty=t.ty), self.zero_backprop(t.ty)), span=t.span,
                         ty=backprop_type(t.ty))
        return Lit.make(t.value, span=t.span, ty=t.ty)

    def zero_pair(self, y: Var, span: Span | None) -> Term:
        return Tuple.make((y, self.zero_backprop(y.ty)), ty=backprop_type(y.ty))

    def zero_backprop(self, t: Type) -> Term:
        return LinLam.make(PVar.make(self.fresh("a"), t), DZero.make(ty=GRAD), ty=perp(t))

    def applied(self, t: Prim) -> Term | tuple[list[tuple[Pattern, Term]], Var, Term]:
        """``←D(f t1 … tk) = let (xi, xi') = ←D ti; y = f x1 … xk in (y, λa ⊸ Σ xi' (∂if* a))``:
        the bindings, ``y`` and the backpropagator (:meth:`Transform.applied`)."""
        op, span = t.op, t.span
        prim = PRIMITIVES[op]
        bindings, primals, backprops = self.operands(t)
        value = Prim.make(op, tuple(primals), span=span, ty=t.ty)
        if not has_leaves(t.ty):
            return lets(bindings, value)
        y = Var.make(self.fresh("y"), ty=t.ty)
        bindings.append((PVar.make(y.name), value))
        if prim.derivative == "constant":
            return lets(bindings, self.constant_value(y, span))
        if prim.derivative != "rules":
            raise LamTypeError(f"lamad cannot differentiate '{prim.surface}'", span)
        a = Var.make(self.fresh("a"), ty=t.ty)
        names = dict(zip(_PLACEHOLDERS, primals), y=y, a=a)
        body: Term | None = None
        hoist = partial(self.hoist_metadata, bindings, {})
        arrays = [a.ty in ARRAYS and a.__class__ is not Lit for a in t.args]  # a literal is 0-d
        for i, (rule, bp) in enumerate(zip(prim.vjp_terms, backprops)):
            if rule is None or bp is None:
                continue
            if _is_unbroadcast(rule) and not _broadcasts(arrays, i):
                rule = rule.args[1]  # the summand's shape is already the argument's
            ct = self.rule(rule, names, span, hoist)
            summand = App.make(Var.make(bp, ty=perp(primals[i].ty)), ct, ty=GRAD)
            body = summand if body is None else DAdd.make(body, summand, ty=GRAD)
        backpropagator = LinLam.make(PVar.make(a.name, t.ty), DZero.make(ty=GRAD) if body is None else body,
                                     ty=perp(t.ty))
        return bindings, y, backpropagator

    def hoist_metadata(self, bindings: list[tuple[PVar, Term]], names: dict[tuple[str, str], Var], t: Prim) -> Var:
        """A rule's ``like xi`` (``shape xi``, ``count xi``) bound in the forward pass, before the
        backpropagator, once per primitive and variable: the backpropagator then captures
        the shape, not the array (``x + b`` kept ``x`` alive until the backward pass only
        for ``unbroadcast`` to read its shape)."""
        key = (t.op, t.args[0].name)
        if key not in names:
            names[key] = Var.make(self.fresh("n" if t.op == "count" else "s"), span=t.span, ty=t.ty)
            bindings.append((PVar.make(names[key].name), t))
        return names[key]


_PLACEHOLDERS = tuple(f"x{i}" for i in range(1, max(p.arity for p in PRIMITIVES.values()) + 1))
"""The names of a rule's arguments, in order."""


def _is_unbroadcast(t: Term) -> bool:
    """Whether a rule is ``unbroadcast x g``."""
    return isinstance(t, Prim) and t.op == "unbroadcast"


def _broadcasts(arrays: list[bool], i: int) -> bool:
    """Whether argument ``i`` of an elementwise operation may have been broadcast, given
    which of its arguments are arrays: only when another one is — a Tensor, or the mask
    of ``where`` — (a Real is 0-d, and so is a literal of type Tensor, so neither widens
    a shape)."""
    return sum(arrays) > arrays[i]


def backprop(term: Term) -> Term:
    """←D(term) for an elaborated (type-checked) term."""
    return _Backprop(term).term(term)


__all__ = ["backprop", "backprop_type", "cotangent_type", "linear_in", "is_zero", "mentions"]
