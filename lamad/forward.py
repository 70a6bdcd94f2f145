"""The forward-mode transform →D (docs/differentiation.md, "Forward mode"): dual numbers
as a term transform.

``forward(t)`` maps an elaborated term of type ``A`` to a term of type ``→D(A)``, where a
real or a tensor becomes a pair of its value and its *tangent* (``Real ↦ Real × Real``),
by structural recursion with one clause per term former — the clauses it shares with ←D
are in :class:`lamad.transform.Transform`.  A differentiable builtin ``f`` follows

    →D(f t1 … tk) = let (x1, dx1) = →D t1; …; y = f x1 … xk
                    in (y, ∂1f dx1 + … + ∂kf dxk)

with the tangent rules ``∂if dxi`` of its record (:attr:`lamad.prims.Primitive.jvp`), written in lamad (``exp``: ``dx1 *
y``; ``x @ w``: ``dx1 @ x2`` and ``x1 @ dx2``).  Tangents keep their argument's shape, so
no un-broadcasting is needed: a sum of tangents broadcasts like the primal operation.
The result is an ordinary term, printed, type-checked and run like any other;
``jvp f x dx`` runs it (lamad/autodiff.py).
"""

from __future__ import annotations

from lamad.adtypes import forward_type, has_leaves
from lamad.errors import LamTypeError
from lamad.prims import PRIMITIVES
from lamad.instances import join
from lamad.syntax import REAL, TENSOR, Lit, Pattern, Prim, PVar, Span, Term, Tuple, Type, Var, lets
from lamad.transform import Transform

# --------------------------------------------------------------------- the transform


class _Forward(Transform):
    """One run of →D: the clauses for literals and differentiable builtins; the others are
    shared with ←D (:class:`lamad.transform.Transform`)."""

    mark, letter, partner = "→D", "f", "d"

    def type_of(self, t: Type) -> Type:
        return forward_type(t)

    def rules(self, prim) -> tuple[Term | None, ...]:
        return prim.jvp_terms

    def literal(self, t: Lit) -> Term:
        """→D(r) = (r, 0.0) for a numeric literal; other literals are discrete."""
        if t.ty in (REAL, TENSOR):
            return Tuple((Lit(t.value, span=t.span, ty=t.ty), Lit(0.0, span=t.span, ty=t.ty)), span=t.span,
                         ty=forward_type(t.ty))
        return Lit(t.value, span=t.span, ty=t.ty)

    def zero_pair(self, y: Var, span: Span | None) -> Term:
        return Tuple((y, Prim("zeros_like", (y,), span=span, ty=y.ty)), span=span, ty=forward_type(y.ty))

    def applied(self, t: Prim) -> Term | tuple[list[tuple[Pattern, Term]], Var, Term]:
        """``→D(f t1 … tk) = let (xi, dxi) = →D ti; y = f x1 … xk in (y, Σ ∂if dxi)``: the
        bindings, ``y`` and the tangent (:meth:`Transform.applied`)."""
        op, span = t.op, t.span
        prim = PRIMITIVES[op]
        bindings, primals, tangents = self.operands(t)
        names: dict[str, Term] = {f"x{i + 1}": p for i, p in enumerate(primals)}
        names.update({f"dx{i + 1}": Var(d, ty=p.ty) for i, (d, p) in enumerate(zip(tangents, primals))
                      if d is not None})
        value = Prim(op, tuple(primals), span=span, ty=t.ty)
        if not has_leaves(t.ty):
            return lets(bindings, value)
        y = Var(self.fresh("y"), ty=t.ty)
        bindings.append((PVar(y.name), value))
        names["y"] = y
        if prim.derivative == "constant":
            return lets(bindings, self.constant_value(y, span))
        if prim.derivative != "rules":
            raise LamTypeError(f"lamad cannot differentiate '{prim.surface}' in forward mode", span)
        terms = [self.rule(rule, names, span) for rule, d in zip(prim.jvp_terms, tangents) if rule is not None and d]
        tangent: Term = terms[0] if terms else Prim("zeros_like", (y,), span=span, ty=t.ty)
        for term in terms[1:]:
            negated = isinstance(term, Prim) and term.op == "neg"
            tangent = Prim("sub" if negated else "add", (tangent, term.args[0] if negated else term), span=span,
                           ty=join(tangent.ty, term.ty))
        return bindings, y, tangent


def forward(term: Term) -> Term:
    """→D(term) for an elaborated (type-checked) term."""
    return _Forward(term).term(term)


__all__ = ["forward", "forward_type"]
