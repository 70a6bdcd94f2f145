"""The reverse-mode transform ←D of Brunel, Mazza & Pagani (POPL 2020), SPEC §3.

``backprop(t)`` maps an elaborated source term of type ``A`` to a target term of
type ``←D(A)``, by structural recursion with one clause per term former and no
global analysis.  Reals and tensors become pairs of a value and its
*backpropagator* (``A⊥ = A ⊸ d``); every other former commutes with ←D.  A
differentiable builtin ``f`` follows the chain rule

    ←D(f t1 … tk) = let (x1, x1') = ←D t1; …; y = f x1 … xk
                    in (y, λa ⊸ x1' (∂1f* a) + … + xk' (∂kf* a))

with the transposed partial derivatives ``∂if*`` of :data:`VJP`, written in
lamad itself.  The result is an ordinary term: it is printed, type-checked and
evaluated like any other.
"""

from __future__ import annotations

from lamad.builtins import BUILTINS
from lamad.errors import LamTypeError
from lamad.syntax import (
    BOOL, INT, REAL, STRING, TENSOR, UNIT, App, FunType, If, Lam, Let, LinLam, LinType, ListType, Lit, PVar,
    Prim, Term, Tuple, TupleType, TVar, Type, Var, children, map_children, pattern_names, perp,
)
from lamad.transform import CONSTANT, Transform, lets

# --------------------------------------------------------------------- types


def backprop_type(t: Type) -> Type:
    """←D(A): ``Real ↦ Real × Real⊥``, ``Tensor ↦ Tensor × Tensor⊥``, structural elsewhere,
    ``←D(A ⊸ B) = ←D(A) ⊸ ←D(B)`` and ``←D(d) = d`` (see lamad/transform.py)."""
    if t in (REAL, TENSOR):
        return TupleType((t, perp(t)))
    if isinstance(t, TupleType):
        return TupleType(tuple(backprop_type(i) for i in t.items))
    if isinstance(t, ListType):
        return ListType(backprop_type(t.elem))
    if isinstance(t, (FunType, LinType)):
        return type(t)(backprop_type(t.dom), backprop_type(t.cod))
    if isinstance(t, TVar):
        raise ValueError("←D is not defined on a type that is not known")
    return t


def cotangent_type(t: Type, marked: bool = False) -> Type:
    """ct(A): the type of gradients with respect to a value of type ``A`` (SPEC §3).  For
    the AD operators marked by a transform (``grad'f``), ``A`` is a transformed type
    whose pairs may hold backpropagators: those are kept, so that ``ct(D(A)) = D(ct(A))``."""
    if t in (REAL, TENSOR):
        return t
    if t in (INT, BOOL, UNIT, STRING):
        return UNIT
    if isinstance(t, TupleType):
        return TupleType(tuple(cotangent_type(i, marked) for i in t.items))
    if isinstance(t, ListType):
        return ListType(cotangent_type(t.elem, marked))
    if marked and isinstance(t, LinType):
        return t
    if isinstance(t, FunType):
        raise ValueError(f"it has a function type, {t}, and functions have no gradient")
    if isinstance(t, TVar):
        raise ValueError("its type is not known here; annotate the parameter")
    raise ValueError(f"{t} has no cotangent type")


def _has_leaves(t: Type) -> bool:
    """Whether values of type ``t`` carry reals (so that ←D changes the type)."""
    return backprop_type(t) != t


# --------------------------------------------------------------------- rules

VJP: dict[str, tuple[str | None, ...]] = {
    "add": ("unbroadcast (like x1) a", "unbroadcast (like x2) a"),
    "sub": ("unbroadcast (like x1) a", "unbroadcast (like x2) (-a)"),
    "mul": ("unbroadcast (like x1) (a * x2)", "unbroadcast (like x2) (x1 * a)"),
    "div": ("unbroadcast (like x1) (a / x2)", "unbroadcast (like x2) (-(a * y) / x2)"),
    "pow": ("unbroadcast (like x1) (a * mul0 x2 (x1 ** (x2 - 1.0)))", "unbroadcast (like x2) (a * mul0 y (log x1))"),
    "mul0": ("unbroadcast (like x1) (mul0 a x2)", "unbroadcast (like x2) (mul0 x1 a)"),
    "neg": ("-a",),
    "max": ("unbroadcast (like x1) (a * mask_ge x1 x2)", "unbroadcast (like x2) (a * (1.0 - mask_ge x1 x2))"),
    "min": ("unbroadcast (like x1) (a * mask_le x1 x2)", "unbroadcast (like x2) (a * (1.0 - mask_le x1 x2))"),
    "matmul": ("matmul_dx x1 x2 a", "matmul_dy x1 x2 a"),
    "exp": ("a * y",),
    "log": ("a / x1",),
    "sin": ("a * cos x1",),
    "cos": ("-(a * sin x1)",),
    "tanh": ("a * (1.0 - y * y)",),
    "sigmoid": ("a * (y * (1.0 - y))",),
    "relu": ("where_pos y a",),
    "sqrt": ("a / (2.0 * y)",),
    "abs": ("a * sign x1",),
    "square": ("a * (2.0 * x1)",),
    "log1p": ("a / (1.0 + x1)",),
    "sum": ("broadcast (like x1) a",),
    "mean": ("broadcast (like x1) (a / count x1)",),
    "sum_axis": (None, "broadcast (like x2) (expand_dims x1 a)"),
    "mean_axis": (None, "broadcast (like x2) (expand_dims x1 a / real (dim x1 x2))"),
    "max_axis": (None, "expand_dims x1 a * argmax_mask x1 x2"),
    "logsumexp_axis": (None, "expand_dims x1 a * exp (x2 - expand_dims x1 y)"),
    "softmax_axis": (None, "y * (a - expand_dims x1 (sum_axis x1 (a * y)))"),
    "transpose": ("transpose a",),
    "reshape": ("reshape a (shape x1)", None),
    "dot": ("a * x2", "x1 * a"),
    "outer": ("reshape (a @ reshape x2 [-1]) (shape x1)", "reshape (transpose a @ reshape x1 [-1]) (shape x2)"),
    "scalar": ("reshape a (shape x1)",),
    "fill": ("sum a", None),
    "expand_dims": (None, "sum_axis x1 a"),
    "unbroadcast": (None, "broadcast (like x2) a"),
    "broadcast": (None, "unbroadcast (like x2) a"),
    "where_pos": (None, "unbroadcast (like x2) (where_pos x1 a)"),
    "matmul_dx": (None, "matmul_dy a x2 x3", "a @ x2"),
    "matmul_dy": ("matmul_dx x1 a x3", None, "x1 @ a"),
    "embed": (None, None, "take x1 a"),
    "take": (None, "embed x1 x2 a"),
    "piece": (None, None, None, "pad_piece x1 x2 x3 a"),
    "pad_piece": (None, None, None, "piece x1 x2 x3 a"),
}
"""The transposed partial derivatives ``∂if* a`` of each differentiable builtin, one
per argument (``None`` for a discrete argument), in terms of the arguments ``x1 …
xk``, the result ``y`` and the cotangent ``a``.  Conventions at kinks (SPEC §2.4):
``relu'(0) = 0``, ``abs'(0) = 0``; ``max``/``min`` send the whole cotangent to the
first argument on ties, and ``max_axis`` to the first maximum."""

METADATA = frozenset({"like", "shape", "count"})
"""Builtins that read only an array's shape (``like x``, an array of ``x``'s shape that holds
one number): :meth:`_Backprop.hoist_metadata` computes them in the forward pass."""

SPECIAL: dict[str, str] = {
    "stack": "let xs = map fst x1; y = stack xs in (y, \\(a : Tensor) -o sum_apply (map snd x1) (unstack a))",
    "concat": "let xs = map fst x2; y = concat x1 xs in "
              "(y, \\(a : Tensor) -o sum_apply (map snd x2) (split_like x1 xs a))",
    "unstack": "let (x, x') = x1; xs = unstack x in "
               "map (\\(i, xi). (xi, \\(a : Tensor) -o x' (embed i x a))) (zip (range (length xs)) xs)",
    "split_like": "let xs = map fst x2; (x, x') = x3; ys = split_like x1 xs x in "
                  "map (\\(i, y). (y, \\(a : Tensor) -o x' (pad_piece x1 xs i a))) (zip (range (length ys)) ys)",
}
"""Builtins whose arguments or results are lists of tensors: their ←D in full, in terms of
``x1 … xk``, ←D of their arguments (see :meth:`Transform.special`)."""


# --------------------------------------------------------------------- linearity


def is_zero(t: Term) -> bool:
    """The literal ``0`` (the zero of ``d``, or a numeric zero)."""
    return isinstance(t, Lit) and not isinstance(t.value, bool) and t.value == 0


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
    them, and ``let``s whose bound term is linear (its variable is then linear too)
    (SPEC §3)."""
    linear = frozenset([a]) if isinstance(a, str) else a
    if isinstance(t, Var):
        return t.name in linear
    if isinstance(t, Prim):
        if t.op in ("add", "sub"):
            return any(linear_in(x, linear) for x in t.args) and \
                all(linear_in(x, linear) or is_zero(x) for x in t.args)
        hits = [i for i, x in enumerate(t.args) if mentions(x, linear)]
        return len(hits) == 1 and hits[0] in BUILTINS[t.op].linear and linear_in(t.args[hits[0]], linear)
    if isinstance(t, App):
        return isinstance(t.fn.ty, LinType) and not mentions(t.fn, linear) and linear_in(t.arg, linear)
    if isinstance(t, Let):
        inner = linear - set(pattern_names(t.pattern))
        if not mentions(t.bound, linear):
            return linear_in(t.body, inner)
        return isinstance(t.pattern, PVar) and linear_in(t.bound, linear) and linear_in(t.body, inner | {t.pattern.name})
    if isinstance(t, If):
        return not mentions(t.cond, linear) and linear_in(t.then, linear) and linear_in(t.orelse, linear)
    return False


# --------------------------------------------------------------------- the transform


class _Backprop(Transform):
    """One run of ←D: the clauses for literals and differentiable builtins; the others are
    shared with →D (:class:`lamad.transform.Transform`)."""

    mark, letter, partner = "←D", "r", "'"

    def type_of(self, t: Type) -> Type:
        return backprop_type(t)

    def literal(self, t: Lit) -> Term:
        """←D(r) = (r, λa ⊸ 0) for a numeric literal; other literals are discrete."""
        if t.ty in (REAL, TENSOR):
            return Tuple((Lit(t.value, span=t.span), self.zero_backprop(t.ty)), span=t.span)
        return Lit(t.value, span=t.span)

    def zero_backprop(self, t: Type) -> Term:
        return LinLam(PVar(self.fresh("a"), t), Lit(0))

    def builtin(self, t: Prim) -> Term:
        """``←D(f t1 … tk) = let (xi, xi') = ←D ti; y = f x1 … xk in (y, λa ⊸ Σ xi' (∂if* a))``."""
        op, span = t.op, t.span
        if op in SPECIAL:
            return self.special(SPECIAL[op], t)
        bindings, primals, backprops = self.operands(t)
        value = Prim(op, tuple(primals), span=span)
        if not _has_leaves(t.ty):
            return lets(bindings, value)
        y = self.fresh("y")
        bindings.append((PVar(y), value))
        if op in CONSTANT:
            return lets(bindings, Tuple((Var(y), self.zero_backprop(t.ty))))
        if op not in VJP:
            raise LamTypeError(f"lamad cannot differentiate '{op}'", span)
        a = self.fresh("a")
        names = {f"x{i + 1}": p for i, p in enumerate(primals)} | {"y": Var(y), "a": Var(a)}
        summands = []
        for i, (rule, bp) in enumerate(zip(VJP[op], backprops)):
            if rule is None or bp is None:
                continue
            ct = self.rule(rule, names, span)
            if _is_unbroadcast(ct) and not _broadcasts(t.args, i):
                ct = ct.arg  # the summand's shape is already the argument's
            summands.append(App(Var(bp), ct))
        body: Term = Lit(0)
        for s in summands:
            body = s if is_zero(body) else Prim("add", (body, s))
        body = self.hoist_metadata(body, bindings, {})
        return lets(bindings, Tuple((Var(y), LinLam(PVar(a, t.ty), body)), span=span))

    def hoist_metadata(self, t: Term, bindings: list[tuple[PVar, Term]], names: dict[tuple[str, str], str]) -> Term:
        """A rule's ``like xi`` (``shape xi``, ``count xi``) bound in the forward pass, before the
        backpropagator: it then captures the shape, not the array (``x + b`` kept ``x`` alive
        until the backward pass only for ``unbroadcast`` to read its shape)."""
        if isinstance(t, App) and isinstance(t.fn, Var) and t.fn.name in METADATA and isinstance(t.arg, Var):
            key = (t.fn.name, t.arg.name)
            if key not in names:
                names[key] = self.fresh("n" if t.fn.name == "count" else "s")
                bindings.append((PVar(names[key]), t))
            return Var(names[key], span=t.span)
        return map_children(t, lambda c: self.hoist_metadata(c, bindings, names))


def _is_unbroadcast(t: Term) -> bool:
    """Whether a (parsed) template instance is ``unbroadcast x g``."""
    return isinstance(t, App) and isinstance(t.fn, App) and t.fn.fn == Var("unbroadcast")


def _broadcasts(args: tuple[Term, ...], i: int) -> bool:
    """Whether argument ``i`` of an elementwise operation may have been broadcast: only
    when another argument is a tensor (a Real is 0-d, so it never widens a shape)."""
    return any(a.ty == TENSOR for j, a in enumerate(args) if j != i)


def backprop(term: Term) -> Term:
    """←D(term) for an elaborated (type-checked) term (SPEC §3)."""
    return _Backprop(term).term(term)


__all__ = ["backprop", "backprop_type", "cotangent_type", "linear_in", "is_zero", "mentions", "VJP"]
