"""What the AD transforms ←D (lamad/reverse.py) and →D (lamad/forward.py) share.

Both are compositional (docs/differentiation.md): one clause per term former, by
structural recursion, with no global analysis.  On every former but literals and builtins
they are the same — ``D(x) = x``, ``D(λx. t) = λx. D t``, ``D(t u) = D t D u``, ``let``,
tuples, records (``D({w = t}) = {w = D t}``, ``D(t.w) = (D t).w``), lists, ``if`` — so
:class:`Transform` implements those clauses once and a transform supplies its type map
(:meth:`Transform.type_of`), its literal clause and its primitive clause.  The chain rule of each differentiable primitive is a small lamad term
in its record (``a * y`` for ``exp``'s transposed derivative, ``dx1 * y`` for its
tangent), resolved once (:mod:`lamad.prims.rules`) and instantiated here.

Terms of the target calculus are transformed too, which is what makes nesting work
(docs/differentiation.md, nesting): a linear function ``λa ⊸ t`` is transformed like a
lambda, ``D(A ⊸ B) = D(A) ⊸ D(B)``; the gradient module ``d`` is left as it is,
``D(d) = d``, its ``0`` and ``+`` commute with the transform, and the cotangents sent
through it are the transformed ones.  An AD operator met inside a term is kept, marked
with the transform (:attr:`lamad.syntax.Prim.marks`), for the evaluator to apply to
transformed values.
"""

from __future__ import annotations

from dataclasses import replace

from lamad.adtypes import has_leaves
from lamad.errors import LamTypeError
from lamad.instances import instantiate
from lamad.prims import PRIMITIVES
from lamad.prims.rules import resolve
from lamad.syntax import (
    GRAD, REAL, TENSOR, App, DAdd, DZero, FunType, If, Lam, Let, LinLam, ListLit, ListType, Lit, Pattern, Prim,
    Proj, PRecord, PTuple, PVar, PWild, Record, RecordType, Span, Term, Tuple, TupleType, Type, Var, let_chain,
    lets, pattern_names, term_names,
)

_VALUES = resolve("map fst x1", frozenset({"x1"}))
"""The values of a list of transformed tensors."""


# --------------------------------------------------------------------- rules


def annotate(p: Pattern, t: Type) -> Pattern:
    """Give the variables of a parameter pattern their (transformed) types."""
    if isinstance(p, (PVar, PWild)):
        return replace(p, annot=t)
    if isinstance(p, PTuple) and isinstance(t, TupleType):
        return replace(p, items=tuple(annotate(i, it) for i, it in zip(p.items, t.items)))
    if isinstance(p, PRecord) and isinstance(t, RecordType):
        return replace(p, items=tuple(annotate(i, t.field_type(f)) for f, i in zip(p.fields, p.items)))
    return p


def built_from_literals(t: Term, memo: dict[int, bool]) -> bool:
    """Whether ``t`` is built from literals by builtins: a constant, which the transforms do
    not differentiate.  Memoised by node in ``memo``, so that a pass stays linear on
    deeply nested terms."""
    if id(t) not in memo:
        memo[id(t)] = isinstance(t, Lit) or (isinstance(t, Prim) and all(built_from_literals(a, memo) for a in t.args))
    return memo[id(t)]


# --------------------------------------------------------------------- the shared clauses


class Transform:
    """One run of a transform over an elaborated term: the clauses common to ←D and →D,
    and a supply of fresh names that avoids every name of the source.

    A subclass sets :attr:`mark` (``"←D"`` or ``"→D"``), :attr:`letter` (how its AD
    operators are marked, see :attr:`lamad.syntax.Prim.marks`) and :attr:`partner` (the
    suffix that names the second component of a pair: ``x'`` for a backpropagator, ``dx``
    for a tangent), and implements :meth:`type_of`, :meth:`literal`, :meth:`rules` and :meth:`applied`."""

    mark = letter = ""
    partner = "'"

    def __init__(self, term: Term):
        inner: list[Term] = []
        self.used = term_names(term, inner)
        self.captured: set[str] = set().union(*[term_names(lam) for lam in inner])  # what closures may capture
        self.used |= self.captured
        self.counter = 0
        self.constants: dict[int, bool] = {}
        self.split: dict[str, str] = {}  # a variable bound as a pair taken apart, in scope → its partner's name
        self.partners: set[str] = set()  # the names of the partners of the variables taken apart

    def type_of(self, t: Type) -> Type:
        raise NotImplementedError

    def literal(self, t: Lit) -> Term:
        raise NotImplementedError

    def rules(self, prim) -> tuple[Term | None, ...]:
        """The primitive's rules for this transform (``jvp_terms`` or ``vjp_terms``)."""
        raise NotImplementedError

    def applied(self, t: Prim) -> Term | tuple[list[tuple[Pattern, Term]], Var, Term]:
        """``D(t)`` of a differentiable primitive's application ``t`` by the chain rule: for a
        real or a tensor, its parts — the bindings of the operands and of the value ``y``,
        ``y`` and its partner (a backpropagator or a tangent), which :meth:`primitive`
        pairs and :meth:`operands` binds in its own chain —; else the term."""
        raise NotImplementedError

    def primitive(self, t: Prim) -> Term:
        """``D(t) = let bindings in (y, partner)``, from the parts :meth:`applied` makes."""
        made = self.applied(t)
        if made.__class__ is not tuple:
            return made
        bindings, y, partner = made
        return lets(bindings, Tuple.make((y, partner), span=t.span, ty=self.type_of(t.ty)))

    def zero_pair(self, y: Var, span: Span | None) -> Term:
        """``D(y)`` for a real or a tensor ``y`` whose derivative is zero: ``(y, λa ⊸ 0)``
        (←D) or ``(y, zeros_like y)`` (→D), made for the application at ``span``."""
        raise NotImplementedError

    def constant_value(self, y: Var, span: Span | None) -> Term:
        """``D(y)`` for a value ``y`` whose derivative is zero (the result of a primitive
        with a constant derivative) at any type: each real and tensor in it paired with
        its zero (:meth:`zero_pair`), through tuples (``let (c1, c2) = y in (D c1, D
        c2)``) and lists (``map (λc. D c) y``); a value without reals is its own ``D``."""
        t = y.ty
        if t in (REAL, TENSOR):
            return self.zero_pair(y, span)
        if not has_leaves(t):
            return y
        if isinstance(t, TupleType):
            parts = [Var.make(self.fresh("c"), ty=i) for i in t.items]
            body = Tuple.make(tuple(self.constant_value(c, span) for c in parts), ty=self.type_of(t))
            return Let.make(PTuple.make(tuple(PVar.make(c.name) for c in parts)), y, body, span=span, ty=body.ty)
        assert isinstance(t, ListType)  # has_leaves is true of no other type a constant may have
        c = Var.make(self.fresh("c"), ty=t.elem)
        elem = self.type_of(t.elem)
        f = Lam.make(PVar.make(c.name, t.elem), self.constant_value(c, span), span=span, ty=FunType(t.elem, elem))
        return Prim.make("map", (f, y), span=span, ty=ListType(elem))

    def pair_name(self, x: str) -> str:
        """The name of the second component of the pair that ``x`` is the first of."""
        return x + "'" if self.partner == "'" else self.partner + x

    def fresh(self, base: str) -> str:
        """A new name ``x`` such that neither ``x`` nor its partner's name is used: the
        source may itself have a variable called ``x1'`` or ``dx1``."""
        used, counter = self.used, self.counter
        while True:
            counter += 1
            name = base + str(counter)
            partner = self.pair_name(name)
            if name not in used and partner not in used:
                self.counter = counter
                used.add(name)
                used.add(partner)
                return name

    def pattern(self, p: Pattern) -> Pattern:
        if isinstance(p, (PVar, PWild)) and p.annot is not None:
            return replace(p, annot=self.type_of(p.annot))
        if isinstance(p, (PTuple, PRecord)):
            return replace(p, items=tuple(self.pattern(i) for i in p.items))
        return p

    def term(self, t: Term) -> Term:
        """``D(t)``, of type ``D(A)`` for ``t`` of type ``A``: every node it makes is typed."""
        if t.__class__ is Prim:
            return self.prim(t)
        span, ty = t.span, self.type_of(t.ty)
        if isinstance(t, Var):
            partner = self.split.get(t.name)
            if partner is not None:  # D(x) = (x, x') for a variable bound taken apart
                return Tuple.make((Var.make(t.name, span=span, ty=t.ty), Var.make(partner, span=span, ty=ty.items[1])),
                                  span=span, ty=ty)
            return Var.make(t.name, span=span, ty=ty)
        if isinstance(t, Lit):
            return self.literal(t)
        if isinstance(t, (Lam, LinLam)):
            param = annotate(self.pattern(t.param), self.type_of(t.ty.dom))
            saved = self.hide(pattern_names(t.param), {})
            body = self.term(t.body)
            self.restore(saved)
            return type(t)(param, body, span=span, ty=ty, origin=(self.mark, t))
        if isinstance(t, App):
            return App.make(self.term(t.fn), self.term(t.arg), span=span, ty=ty)
        if isinstance(t, Let):
            chain, body = let_chain(t)
            bindings: list[tuple[Pattern, Term, Span | None]] = []
            saved: dict[str, str | None] = {}
            for let in chain:
                bound = self.term(let.bound)
                self.hide(pattern_names(let.pattern), saved)
                partner = self.taken_apart(let.pattern, let.bound)
                if partner is None:
                    pattern = self.pattern(let.pattern)
                else:  # let (x, x') = D(t): the pair taken apart once, where it is bound
                    pattern = self.pair_pattern(let.pattern, partner)
                bindings.append((pattern, bound, let.span))
            result = self.term(body)
            self.restore(saved)
            for pattern, bound, let_span in reversed(bindings):
                result = Let.make(pattern, bound, result, span=let_span, ty=result.ty)
            return result
        if isinstance(t, If):
            return If.make(self.term(t.cond), self.term(t.then), self.term(t.orelse), span=span, ty=ty)
        if isinstance(t, Tuple):
            return Tuple.make(tuple(self.term(i) for i in t.items), span=span, ty=ty)
        if isinstance(t, ListLit):
            return ListLit.make(tuple(self.term(i) for i in t.items), span=span, ty=ty)
        if isinstance(t, Record):
            return Record.make(t.fields, tuple(self.term(i) for i in t.items), span=span, ty=ty)
        if isinstance(t, Proj):
            return Proj.make(self.term(t.term), t.field, span=span, ty=ty)
        if isinstance(t, DZero):
            return t
        if isinstance(t, DAdd):
            return DAdd.make(self.term(t.left), self.term(t.right), span=span, ty=GRAD)
        raise LamTypeError(f"{self.mark} of a {type(t).__name__} node", span)

    def taken_apart(self, p: Pattern, bound: Term) -> str | None:
        """Where the variable ``p`` is bound to ``D(bound)``, ``bound`` a real or a tensor, the
        pair is taken apart there, once: ``let (x, x') = D(u)`` rather than ``let x = D(u)``
        and ``let (x1, x1') = x`` at each use of ``x`` (:meth:`operands`), which each pass
        after this one would take apart again.  ``x`` then names the value, and ``x'``
        (``dx``), which this returns, its partner, until ``x`` is bound again.  ``None``
        (the variable bound to the pair) where ``p`` is no variable, where ``bound`` is
        one (``let z = x`` stays a name for ``x``), where the partner's name is the
        source's own, or where a lambda inside the term mentions the name: a closure of it
        captures ``D(x)`` by its name, and differentiating the closure again
        (:func:`lamad.autodiff.relift`) finds the pair there."""
        t = bound.ty
        if p.__class__ is not PVar or (t is not REAL and t is not TENSOR) or bound.__class__ is Var or \
                p.name in self.captured:
            return None
        partner = self.pair_name(p.name)
        if partner in self.used and partner not in self.partners:
            return None
        self.used.add(partner)
        self.partners.add(partner)
        self.split[p.name] = partner
        return partner

    def pair_pattern(self, p: PVar, partner: str) -> PTuple:
        """``(x, x')`` for the variable ``p`` taken apart, annotated as ``p`` is."""
        if p.annot is None:
            return PTuple.make((PVar.make(p.name), PVar.make(partner)), span=p.span)
        pair = self.type_of(p.annot)
        return PTuple.make((PVar.make(p.name, p.annot), PVar.make(partner, pair.items[1])), span=p.span)

    def hide(self, names: tuple[str, ...], saved: dict[str, str | None]) -> dict[str, str | None]:
        """Bind ``names`` again: none of them is taken apart in the new scope until said
        so (:meth:`taken_apart`); what the scope hides is kept in ``saved`` (the first time
        a name is hidden) for :meth:`restore`."""
        split = self.split
        for name in names:
            if name not in saved:
                saved[name] = split.get(name)
            split.pop(name, None)
        return saved

    def restore(self, saved: dict[str, str | None]) -> None:
        """Leave a scope that :meth:`hide` entered."""
        for name, partner in saved.items():
            if partner is None:
                self.split.pop(name, None)
            else:
                self.split[name] = partner

    def prim(self, t: Prim) -> Term:
        """AD operators are marked with this transform; structural primitives commute with
        it; the rest follow the transform's chain rule."""
        kind = PRIMITIVES[t.op].derivative
        if kind in ("ad", "structural"):
            marks = t.marks + self.letter if kind == "ad" else ""
            return Prim.make(t.op, tuple(self.term(a) for a in t.args), marks, span=t.span, ty=self.type_of(t.ty))
        if kind == "special":
            return self.special(self.rules(PRIMITIVES[t.op])[0], t)
        return self.primitive(t)

    def operands(self, t: Prim) -> tuple[list[tuple[Pattern, Term]], list[Term], list[str | None]]:
        """The arguments of a primitive, transformed and let-bound: ``(xi, xi')`` (←D) or
        ``(xi, dxi)`` (→D) for a real or a tensor; a list of tensors, which primitives use
        only for its shapes, by its values (``map fst``); a variable without reals as it
        is, and so a tuple of such variables and constants (the parts of an index); a
        constant (a literal, ``2.0 - 1.0``) untransformed: its derivative is
        zero and is not computed (``0 · log x`` would be NaN for ``x < 0``).  Returns the
        bindings, the value of each argument (typed) and the name of its second component
        (``None`` where there is none)."""
        bindings: list[tuple[Pattern, Term]] = []
        primals: list[Term] = []
        partners: list[str | None] = []
        for arg in t.args:
            partner = None
            ty = self.type_of(arg.ty)
            transformed = ty != arg.ty
            variable = arg.__class__ is Var
            if variable and not transformed:
                primal: Term = arg
            elif isinstance(arg, Tuple) and not transformed and \
                    all(isinstance(i, Var) or self.constant(i) for i in arg.items):
                primal = arg  # the parts of an index, (i, 1): atoms, kept where they are used
            elif self.constant(arg):
                primal = arg
            elif not transformed:
                primal = Var.make(self.fresh("n"), ty=arg.ty)
                bindings.append((PVar.make(primal.name), self.term(arg)))
            elif isinstance(arg.ty, ListType):
                primal = Var.make(self.fresh("xs"), ty=arg.ty)
                bindings.append((PVar.make(primal.name), self.rule(_VALUES, {"x1": self.term(arg)}, t.span)))
            elif variable and arg.name in self.split:  # bound taken apart (:meth:`taken_apart`)
                primal, partner = arg, self.split[arg.name]
            elif arg.__class__ is Prim and (arg.ty is REAL or arg.ty is TENSOR) and \
                    PRIMITIVES[arg.op].derivative == "rules" and (made := self.applied(arg)).__class__ is tuple:
                inner, primal, second = made  # its bindings in this chain, its pair taken apart as it is made
                partner = self.pair_name(primal.name)  # which fresh names keep free
                bindings += inner
                bindings.append((PVar.make(partner), second))
            else:
                primal = Var.make(self.fresh("x"), ty=arg.ty)
                partner = self.pair_name(primal.name)
                bound = Var.make(arg.name, span=arg.span, ty=ty) if variable else self.term(arg)  # D(x) = x
                bindings.append((PTuple.make((PVar.make(primal.name), PVar.make(partner))), bound))
            primals.append(primal)
            partners.append(partner)
        return bindings, primals, partners

    def constant(self, t: Term) -> bool:
        """Whether ``t`` is a constant (:func:`built_from_literals`); a variable never is."""
        return t.__class__ is not Var and built_from_literals(t, self.constants)

    def rule(self, rule: Term, names: dict[str, Term], span: Span | None, hoist=None) -> Term:
        """A resolved rule instantiated with ``names`` (typed terms), its own variables fresh,
        located at ``span`` and typed (:mod:`lamad.instances`); ``hoist`` as there."""
        return instantiate(rule, names, self.fresh, span, hoist=hoist)

    def special(self, rule: Term, t: Prim) -> Term:
        """A rule written for the whole transformed application (primitives over lists of
        tensors), in terms of ``x1 … xk``, the transforms of the arguments, let-bound."""
        bindings: list[tuple[Pattern, Term]] = []
        names: dict[str, Term] = {}
        for i, arg in enumerate(t.args):
            name = self.fresh("p")
            bound = self.term(arg)
            names[f"x{i + 1}"] = Var.make(name, ty=bound.ty)
            bindings.append((PVar.make(name), bound))
        return lets(bindings, self.rule(rule, names, t.span))
