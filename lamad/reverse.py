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

from dataclasses import replace
from functools import lru_cache

from lamad.builtins import AD_OPERATORS, BUILTINS
from lamad.errors import LamTypeError
from lamad.parser import parse_term
from lamad.syntax import (
    BOOL, GRAD, INT, REAL, STRING, TENSOR, UNIT, App, FunType, If, Lam, Let, LinLam, LinType, ListLit,
    ListType, Lit, Pattern, Prim, PTuple, PVar, PWild, Span, Term, Tuple, TupleType, TVar, Type, Var, children,
    let_chain, map_children, pattern_names, perp, term_names,
)

# --------------------------------------------------------------------- types


def backprop_type(t: Type) -> Type:
    """←D(A): ``Real ↦ Real × Real⊥``, ``Tensor ↦ Tensor × Tensor⊥``, structural elsewhere."""
    if t in (REAL, TENSOR):
        return TupleType((t, perp(t)))
    if isinstance(t, TupleType):
        return TupleType(tuple(backprop_type(i) for i in t.items))
    if isinstance(t, ListType):
        return ListType(backprop_type(t.elem))
    if isinstance(t, FunType):
        return FunType(backprop_type(t.dom), backprop_type(t.cod))
    if isinstance(t, (LinType, TVar)) or t == GRAD:
        raise ValueError(f"←D is not defined on {t} (nested differentiation is not supported yet)")
    return t


def cotangent_type(t: Type) -> Type:
    """ct(A): the type of gradients with respect to a value of type ``A`` (SPEC §3)."""
    if t in (REAL, TENSOR):
        return t
    if t in (INT, BOOL, UNIT, STRING):
        return UNIT
    if isinstance(t, TupleType):
        return TupleType(tuple(cotangent_type(i) for i in t.items))
    if isinstance(t, ListType):
        return ListType(cotangent_type(t.elem))
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
    "add": ("unbroadcast x1 a", "unbroadcast x2 a"),
    "sub": ("unbroadcast x1 a", "unbroadcast x2 (-a)"),
    "mul": ("unbroadcast x1 (a * x2)", "unbroadcast x2 (x1 * a)"),
    "div": ("unbroadcast x1 (a / x2)", "unbroadcast x2 (-(a * y) / x2)"),
    "pow": ("unbroadcast x1 (a * x2 * x1 ** (x2 - 1.0))", "unbroadcast x2 (a * y * log x1)"),
    "neg": ("-a",),
    "max": ("unbroadcast x1 (a * mask_ge x1 x2)", "unbroadcast x2 (a * (1.0 - mask_ge x1 x2))"),
    "min": ("unbroadcast x1 (a * mask_le x1 x2)", "unbroadcast x2 (a * (1.0 - mask_le x1 x2))"),
    "matmul": ("matmul_dx x1 x2 a", "matmul_dy x1 x2 a"),
    "exp": ("a * y",),
    "log": ("a / x1",),
    "sin": ("a * cos x1",),
    "cos": ("-(a * sin x1)",),
    "tanh": ("a * (1.0 - y * y)",),
    "sigmoid": ("a * (y * (1.0 - y))",),
    "relu": ("a * step x1",),
    "sqrt": ("a / (2.0 * y)",),
    "abs": ("a * sign x1",),
    "square": ("a * (2.0 * x1)",),
    "log1p": ("a / (1.0 + x1)",),
    "sum": ("a * ones_like x1",),
    "mean": ("a * ones_like x1 / count x1",),
    "sum_axis": (None, "expand_dims x1 a * ones_like x2"),
    "mean_axis": (None, "expand_dims x1 a * ones_like x2 / real (dim x1 x2)"),
    "max_axis": (None, "expand_dims x1 a * argmax_mask x1 x2"),
    "logsumexp_axis": (None, "expand_dims x1 a * softmax_axis x1 x2"),
    "softmax_axis": (None, "y * (a - expand_dims x1 (sum_axis x1 (a * y)))"),
    "transpose": ("transpose a",),
    "reshape": ("reshape a (shape x1)", None),
    "dot": ("a * x2", "x1 * a"),
    "outer": ("reshape (a @ reshape x2 [-1]) (shape x1)", "reshape (transpose a @ reshape x1 [-1]) (shape x2)"),
    "scalar": ("reshape a (shape x1)",),
    "fill": ("sum a", None),
    "expand_dims": (None, "sum_axis x1 a"),
    "unbroadcast": (None, "a * ones_like x2"),
}
"""The transposed partial derivatives ``∂if* a`` of each differentiable builtin, one
per argument (``None`` for a discrete argument), in terms of the arguments ``x1 …
xk``, the result ``y`` and the cotangent ``a``.  Conventions at kinks (SPEC §2.4):
``relu'(0) = 0``, ``abs'(0) = 0``; ``max``/``min`` send the whole cotangent to the
first argument on ties, and ``max_axis`` to the first maximum."""

SPECIAL: dict[str, str] = {
    "stack": "let xs = map fst p; y = stack xs in (y, \\(a : Tensor) -o sum_apply (map snd p) (unstack a))",
    "concat": "let xs = map fst p; y = concat k xs in (y, \\(a : Tensor) -o sum_apply (map snd p) (split_like k xs a))",
    "unstack": "let (x, x') = p; xs = unstack x in "
               "map (\\(i, xi). (xi, \\(a : Tensor) -o x' (embed i x a))) (zip (range (length xs)) xs)",
}
"""Builtins whose arguments or results are lists of tensors: their ←D in full, in terms
of ``p`` (←D of the list or tensor argument) and ``k`` (the axis)."""

STRUCTURAL = frozenset({"map", "fold", "scan", "zip", "iterate", "fst", "snd", "length", "range"})
"""Builtins that commute with ←D: ``←D(map) = map`` and so on (SPEC §3)."""

CONSTANT = frozenset({"zeros", "ones", "eye", "randn", "uniform", "load", "real", "onehot", "step", "sign",
                      "mask_ge", "mask_le", "argmax_mask", "ones_like", "count"})
"""Builtins whose derivative is zero (where it exists): their backpropagator is ``λa ⊸ 0``."""


@lru_cache(maxsize=None)
def _template(text: str) -> Term:
    return parse_term(text)


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


def _rename(t: Term, mapping: dict[str, str]) -> Term:
    """A template with its variables renamed (templates bind only names in ``mapping``)."""
    if isinstance(t, Var):
        return replace(t, name=mapping.get(t.name, t.name))
    if isinstance(t, (Lam, LinLam)):
        return replace(t, param=_rename_pattern(t.param, mapping), body=_rename(t.body, mapping))
    if isinstance(t, Let):
        return replace(t, pattern=_rename_pattern(t.pattern, mapping), bound=_rename(t.bound, mapping),
                       body=_rename(t.body, mapping))
    return map_children(t, lambda c: _rename(c, mapping))


def _rename_pattern(p: Pattern, mapping: dict[str, str]) -> Pattern:
    if isinstance(p, PVar):
        return replace(p, name=mapping.get(p.name, p.name))
    if isinstance(p, PTuple):
        return replace(p, items=tuple(_rename_pattern(i, mapping) for i in p.items))
    return p


class _Backprop:
    """One run of ←D: a supply of fresh names that avoids every name of the source."""

    def __init__(self, term: Term):
        self.used = term_names(term)
        self.counter = 0

    def fresh(self, base: str) -> str:
        """A new name ``x`` such that neither ``x`` nor its backpropagator's name ``x'`` is
        used: the source may itself have a variable called ``x1'``."""
        while True:
            self.counter += 1
            name = f"{base}{self.counter}"
            if name not in self.used and name + "'" not in self.used:
                self.used.update((name, name + "'"))
                return name

    def pattern(self, p: Pattern) -> Pattern:
        if isinstance(p, (PVar, PWild)) and p.annot is not None:
            return replace(p, annot=backprop_type(p.annot))
        if isinstance(p, PTuple):
            return replace(p, items=tuple(self.pattern(i) for i in p.items))
        return p

    def term(self, t: Term) -> Term:
        span = t.span
        if isinstance(t, Var):
            return Var(t.name, span=span)
        if isinstance(t, Lit):
            if t.ty in (REAL, TENSOR):
                return Tuple((Lit(t.value, span=span), self.zero_backprop(t.ty)), span=span)
            return Lit(t.value, span=span)
        if isinstance(t, Lam):
            return Lam(_annotate(self.pattern(t.param), backprop_type(t.ty.dom)), self.term(t.body), span=span)
        if isinstance(t, App):
            return App(self.term(t.fn), self.term(t.arg), span=span)
        if isinstance(t, Let):
            chain, body = let_chain(t)
            result = self.term(body)
            for let in reversed(chain):
                result = Let(self.pattern(let.pattern), self.term(let.bound), result, span=let.span)
            return result
        if isinstance(t, If):
            return If(self.term(t.cond), self.term(t.then), self.term(t.orelse), span=span)
        if isinstance(t, Tuple):
            return Tuple(tuple(self.term(i) for i in t.items), span=span)
        if isinstance(t, ListLit):
            return ListLit(tuple(self.term(i) for i in t.items), span=span)
        if isinstance(t, Prim):
            return self.prim(t)
        raise LamTypeError("←D of a linear function: nested differentiation is not supported yet", span)

    def zero_backprop(self, t: Type) -> Term:
        return LinLam(PVar(self.fresh("a"), t), Lit(0))

    def prim(self, t: Prim) -> Term:
        op, span = t.op, t.span
        if op in AD_OPERATORS:
            raise LamTypeError(f"differentiating a term that uses '{op}' (nested differentiation) is not "
                               "supported yet", span)
        if op in STRUCTURAL:
            return Prim(op, tuple(self.term(a) for a in t.args), span=span)
        if op in SPECIAL:
            return self.special(t)
        bindings: list[tuple[Pattern, Term]] = []
        primals: list[Term] = []
        backprops: list[str | None] = []
        for arg in t.args:
            if isinstance(arg, Lit) or not _has_leaves(arg.ty):
                primals.append(Lit(arg.value, span=arg.span) if isinstance(arg, Lit) else self.bind(arg, bindings))
                backprops.append(None)
            else:
                x = self.fresh("x")
                bindings.append((PTuple((PVar(x), PVar(x + "'"))), self.term(arg)))
                primals.append(Var(x))
                backprops.append(x + "'")
        value = Prim(op, tuple(primals), span=span)
        if not _has_leaves(t.ty):
            return _lets(bindings, value)
        y = self.fresh("y")
        bindings.append((PVar(y), value))
        if op in CONSTANT:
            return _lets(bindings, Tuple((Var(y), self.zero_backprop(t.ty))))
        if op not in VJP:
            raise LamTypeError(f"lamad cannot differentiate '{op}'", span)
        a = self.fresh("a")
        names = {f"x{i + 1}": p for i, p in enumerate(primals)} | {"y": Var(y), "a": Var(a)}
        summands = []
        for i, (rule, bp) in enumerate(zip(VJP[op], backprops)):
            if rule is None or bp is None:
                continue
            ct = _respan(_substitute(_template(rule), names), span)
            if _is_unbroadcast(ct) and not _broadcasts(t.args, i):
                ct = ct.arg  # the summand's shape is already the argument's
            summands.append(App(Var(bp), ct))
        body: Term = Lit(0)
        for s in summands:
            body = s if is_zero(body) else Prim("add", (body, s))
        return _lets(bindings, Tuple((Var(y), LinLam(PVar(a, t.ty), body)), span=span))

    def bind(self, arg: Term, bindings: list) -> Term:
        """←D of a discrete argument: used as is if it is a variable, else let-bound."""
        if isinstance(arg, Var):
            return Var(arg.name, span=arg.span)
        x = self.fresh("n")
        bindings.append((PVar(x), self.term(arg)))
        return Var(x)

    def special(self, t: Prim) -> Term:
        """``p`` is bound at ←D of the builtin's parameter type, so that a promoted
        argument (a list of Reals given to ``stack``) is promoted in the target too."""
        template = _template(SPECIAL[t.op])
        bindings: list[tuple[Pattern, Term]] = []
        mapping: dict[str, str] = {}
        for arg, param in zip(t.args, BUILTINS[t.op].params):
            meta = "k" if arg.ty == INT else "p"
            mapping[meta] = self.fresh(meta)
            bindings.append((PVar(mapping[meta], backprop_type(param)), self.term(arg)))
        for name in sorted(term_names(template) - set(BUILTINS) - set(mapping)):
            mapping[name] = self.fresh(name.rstrip("'")) + ("'" if name.endswith("'") else "")
        return _lets(bindings, _respan(_rename(template, mapping), t.span))


def _substitute(t: Term, names: dict[str, Term]) -> Term:
    """A binder-free template with its variables replaced by terms."""
    if isinstance(t, Var):
        return names.get(t.name, t)
    return map_children(t, lambda c: _substitute(c, names))


def _respan(t: Term, span: Span | None) -> Term:
    """A term made from a template, located at the primitive it differentiates."""
    return replace(map_children(t, lambda c: _respan(c, span)), span=span)


def _is_unbroadcast(t: Term) -> bool:
    """Whether a (parsed) template instance is ``unbroadcast x g``."""
    return isinstance(t, App) and isinstance(t.fn, App) and t.fn.fn == Var("unbroadcast")


def _broadcasts(args: tuple[Term, ...], i: int) -> bool:
    """Whether argument ``i`` of an elementwise operation may have been broadcast: only
    when another argument is a tensor (a Real is 0-d, so it never widens a shape)."""
    return any(a.ty == TENSOR for j, a in enumerate(args) if j != i)


def _annotate(p: Pattern, t: Type) -> Pattern:
    """Give the variables of a parameter pattern their (transformed) types."""
    if isinstance(p, (PVar, PWild)):
        return replace(p, annot=t)
    if isinstance(p, PTuple) and isinstance(t, TupleType):
        return replace(p, items=tuple(_annotate(i, it) for i, it in zip(p.items, t.items)))
    return p


def _lets(bindings: list[tuple[Pattern, Term]], body: Term) -> Term:
    for pattern, bound in reversed(bindings):
        body = Let(pattern, bound, body)
    return body


def backprop(term: Term) -> Term:
    """←D(term) for an elaborated (type-checked) term (SPEC §3)."""
    return _Backprop(term).term(term)


__all__ = ["backprop", "backprop_type", "cotangent_type", "linear_in", "is_zero", "mentions", "VJP"]
