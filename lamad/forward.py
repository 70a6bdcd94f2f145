"""The forward-mode transform →D (SPEC §3, "Forward mode"): dual numbers as a term
transform.

``forward(t)`` maps an elaborated term of type ``A`` to a term of type ``→D(A)``, where a
real or a tensor becomes a pair of its value and its *tangent* (``Real ↦ Real × Real``),
by structural recursion with one clause per term former — the clauses it shares with ←D
are in :class:`lamad.transform.Transform`.  A differentiable builtin ``f`` follows

    →D(f t1 … tk) = let (x1, dx1) = →D t1; …; y = f x1 … xk
                    in (y, ∂1f dx1 + … + ∂kf dxk)

with the tangent rules ``∂if dxi`` of :data:`JVP`, written in lamad (``exp``: ``dx1 *
y``; ``x @ w``: ``dx1 @ x2`` and ``x1 @ dx2``).  Tangents keep their argument's shape, so
no un-broadcasting is needed: a sum of tangents broadcasts like the primal operation.
The result is an ordinary term, printed, type-checked and run like any other;
``jvp f x dx`` runs it (lamad/autodiff.py).
"""

from __future__ import annotations

from lamad.errors import LamTypeError
from lamad.syntax import (
    REAL, TENSOR, FunType, LinType, ListType, Lit, Prim, PVar, Term, Tuple, TupleType,
    TVar, Type, Var,
)
from lamad.transform import CONSTANT, Transform, lets

# --------------------------------------------------------------------- types


def forward_type(t: Type) -> Type:
    """→D(A): ``Real ↦ Real × Real``, ``Tensor ↦ Tensor × Tensor``, structural elsewhere,
    ``→D(A ⊸ B) = →D(A) ⊸ →D(B)`` and ``→D(d) = d`` (see lamad/transform.py)."""
    if t in (REAL, TENSOR):
        return TupleType((t, t))
    if isinstance(t, TupleType):
        return TupleType(tuple(forward_type(i) for i in t.items))
    if isinstance(t, ListType):
        return ListType(forward_type(t.elem))
    if isinstance(t, (FunType, LinType)):
        return type(t)(forward_type(t.dom), forward_type(t.cod))
    if isinstance(t, TVar):
        raise ValueError("→D is not defined on a type that is not known")
    return t


def _has_leaves(t: Type) -> bool:
    """Whether values of type ``t`` carry reals (so that →D changes the type)."""
    return forward_type(t) != t


# --------------------------------------------------------------------- rules

JVP: dict[str, tuple[str | None, ...]] = {
    "add": ("dx1", "dx2"),
    "sub": ("dx1", "-dx2"),
    "mul": ("dx1 * x2", "x1 * dx2"),
    "div": ("dx1 / x2", "-(y * dx2) / x2"),
    "pow": ("dx1 * mul0 x2 (x1 ** (x2 - 1.0))", "dx2 * mul0 y (log x1)"),
    "mul0": ("mul0 dx1 x2", "mul0 x1 dx2"),
    "neg": ("-dx1",),
    "max": ("dx1 * mask_ge x1 x2", "dx2 * (1.0 - mask_ge x1 x2)"),
    "min": ("dx1 * mask_le x1 x2", "dx2 * (1.0 - mask_le x1 x2)"),
    "matmul": ("dx1 @ x2", "x1 @ dx2"),
    "exp": ("dx1 * y",),
    "log": ("dx1 / x1",),
    "sin": ("dx1 * cos x1",),
    "cos": ("-(dx1 * sin x1)",),
    "tanh": ("dx1 * (1.0 - y * y)",),
    "sigmoid": ("dx1 * (y * (1.0 - y))",),
    "relu": ("dx1 * step x1",),
    "sqrt": ("dx1 / (2.0 * y)",),
    "abs": ("dx1 * sign x1",),
    "square": ("dx1 * (2.0 * x1)",),
    "log1p": ("dx1 / (1.0 + x1)",),
    "sum": ("sum dx1",),
    "mean": ("mean dx1",),
    "sum_axis": (None, "sum_axis x1 dx2"),
    "mean_axis": (None, "mean_axis x1 dx2"),
    "max_axis": (None, "sum_axis x1 (dx2 * argmax_mask x1 x2)"),
    "logsumexp_axis": (None, "sum_axis x1 (dx2 * softmax_axis x1 x2)"),
    "softmax_axis": (None, "y * (dx2 - expand_dims x1 (sum_axis x1 (dx2 * y)))"),
    "transpose": ("transpose dx1",),
    "reshape": ("reshape dx1 x2", None),
    "dot": ("dot dx1 x2", "dot x1 dx2"),
    "outer": ("outer dx1 x2", "outer x1 dx2"),
    "scalar": ("scalar dx1",),
    "fill": ("fill dx1 x2", None),
    "expand_dims": (None, "expand_dims x1 dx2"),
    "unbroadcast": (None, "unbroadcast x1 dx2"),
    "where_pos": (None, "where_pos x1 dx2"),
    "broadcast": (None, "broadcast x1 dx2"),
    "matmul_dx": (None, "matmul_dx x1 dx2 x3", "matmul_dx x1 x2 dx3"),
    "matmul_dy": ("matmul_dy dx1 x2 x3", None, "matmul_dy x1 x2 dx3"),
    "embed": (None, None, "embed x1 x2 dx3"),
    "take": (None, "take x1 dx2"),
    "piece": (None, None, None, "piece x1 x2 x3 dx4"),
    "pad_piece": (None, None, None, "pad_piece x1 x2 x3 dx4"),
}
"""The partial derivatives ``∂if dxi`` of each differentiable builtin applied to the
tangent of its ``i``-th argument, one per argument (``None`` where the derivative is zero
or the argument discrete), in terms of the arguments ``x1 … xk``, their tangents ``dx1 …
dxk`` and the result ``y``.  The conventions at kinks are those of ←D (SPEC §2.4), so that
``jvp`` is exactly the transpose of ``vjp``: ``relu'(0) = abs'(0) = 0``, ``max``/``min``
follow the first argument on ties and ``max_axis`` the first maximum."""

SPECIAL: dict[str, str] = {
    "stack": "(stack (map fst x1), stack (map snd x1))",
    "concat": "(concat x1 (map fst x2), concat x1 (map snd x2))",
    "unstack": "let (x, dx) = x1 in zip (unstack x) (unstack dx)",
    "split_like": "let xs = map fst x2; (a, da) = x3 in zip (split_like x1 xs a) (split_like x1 xs da)",
}
"""Builtins whose arguments or results are lists of tensors: their →D in full, in terms of
``x1 … xk``, →D of their arguments."""


# --------------------------------------------------------------------- the transform


class _Forward(Transform):
    """One run of →D: the clauses for literals and differentiable builtins; the others are
    shared with ←D (:class:`lamad.transform.Transform`)."""

    mark, letter, partner = "→D", "f", "d"

    def type_of(self, t: Type) -> Type:
        return forward_type(t)

    def literal(self, t: Lit) -> Term:
        """→D(r) = (r, 0.0) for a numeric literal; other literals are discrete."""
        if t.ty in (REAL, TENSOR):
            return Tuple((Lit(t.value, span=t.span), Lit(0.0, span=t.span)), span=t.span)
        return Lit(t.value, span=t.span)

    def builtin(self, t: Prim) -> Term:
        """``→D(f t1 … tk) = let (xi, dxi) = →D ti; y = f x1 … xk in (y, Σ ∂if dxi)``."""
        op, span = t.op, t.span
        if op in SPECIAL:
            return self.special(SPECIAL[op], t)
        bindings, primals, tangents = self.operands(t)
        names: dict[str, Term] = {f"x{i + 1}": p for i, p in enumerate(primals)}
        names.update({f"dx{i + 1}": Var(d) for i, d in enumerate(tangents) if d is not None})
        value = Prim(op, tuple(primals), span=span)
        if not _has_leaves(t.ty):
            return lets(bindings, value)
        y = self.fresh("y")
        bindings.append((PVar(y), value))
        names["y"] = Var(y)
        if op not in CONSTANT and op not in JVP:
            raise LamTypeError(f"lamad cannot differentiate '{op}' in forward mode", span)
        rules = () if op in CONSTANT else JVP[op]
        terms = [self.rule(rule, names, span) for rule, d in zip(rules, tangents) if rule is not None and d]
        tangent: Term = terms[0] if terms else Prim("zeros_like", (Var(y),), span=span)
        for term in terms[1:]:
            negated = isinstance(term, Prim) and term.op == "neg"
            tangent = Prim("sub" if negated else "add", (tangent, term.args[0] if negated else term), span=span)
        return lets(bindings, Tuple((Var(y), tangent), span=span))


def forward(term: Term) -> Term:
    """→D(term) for an elaborated (type-checked) term (SPEC §3, Forward mode)."""
    return _Forward(term).term(term)


__all__ = ["forward", "forward_type", "JVP"]
