"""Instances of derivative rules, typed as they are made.

A resolved rule (:mod:`lamad.prims.rules`) is instantiated where a transform applies it:
its placeholders (``x1``, ``y``, ``a``, ``dx1`` …) replaced by terms, the variables it
binds renamed fresh, its nodes located at the primitive it differentiates.  For the
transforms the instance is also *typed*, in the same walk: the terms put in for the
placeholders are typed, so the type of every node of the instance follows bottom-up from
the type schemes of the primitives in it.  The types are the ones the checker would
infer (lamad/types.py): ``Real`` is used where a ``Tensor`` is expected, and arithmetic
joins the two.  So a transform knows the type of every term it makes, and its output is
never inferred again: ``D(t)`` has type ``D(A)`` when ``t`` has type ``A``
(docs/differentiation.md, "Typed as they are made").
"""

from __future__ import annotations

import math
from fractions import Fraction
from struct import pack, unpack
from typing import Callable

from lamad.linearity import is_zero
from lamad.prims import PRIMITIVES
from lamad.prims.base import signature_for
from lamad.prims.rules import RuleError, binders
from lamad.syntax import (
    ARRAY_OF, BOOL, BOOL_TENSOR, GRAD, INT, INT_TENSOR, REAL, STRING, TENSOR, UNIT, App, DZero, FunType, Lam, Let, LinLam, LinType, ListLit, ListType, Lit,
    Pattern, Prim, PTuple, PVar, PWild, Span, Term, Tuple, TupleType, TVar, Type, Var, map_type, same_shape,
    with_items,
)

_BINDERS: dict[int, tuple[Term, list[str], dict[str, str]]] = {}
"""For each rule instantiated so far (by identity: rules live as long as lamad), the rule,
the names it binds and those of them named after another (``x'`` after ``x``)."""


def instantiate(rule: Term, names: dict[str, Term], fresh: Callable[[str], str], span: Span | None = None,
                typed: bool = True, hoist: Callable[[Prim], Term] | None = None) -> Term:
    """The instance of a resolved rule with its placeholders replaced by ``names``, the
    variables it binds renamed by ``fresh`` (from a base name to an unused name), every
    node of its own located at ``span`` and, when ``typed``, typed (the terms in
    ``names`` are then typed).  A name ``x'`` or ``dx`` bound beside ``x`` is named after
    ``x``'s new name, so that a value and its backpropagator (tangent) keep names that go
    together.  ``hoist``, when given, replaces each application of a primitive that reads
    only the shape of a variable (``like x``) by what it returns.  One walk of the rule;
    the terms in ``names`` are not walked."""
    if rule.__class__ is Var:  # a placeholder: the rule of a sum, ``a`` (a rule binds no variable alone)
        return names[rule.name]
    known = _BINDERS.get(id(rule))
    if known is None or known[0] is not rule:
        own = binders(rule)
        partners = {n: n[:-1] if n.endswith("'") else n[1:] for n in own
                    if (n.endswith("'") and n[:-1] in own) or (n.startswith("d") and n[1:] in own)}
        known = _BINDERS[id(rule)] = (rule, own, partners)
    _, own, partners = known
    mapping: dict[str, str] = {}
    for n in own:
        if n not in partners:
            mapping[n] = fresh(n)
    for n, base in partners.items():
        mapping[n] = mapping[base] + "'" if n.endswith("'") else "d" + mapping[base]
    return _Instance(names, mapping, span, typed, hoist).term(rule)


def join(a: Type, b: Type) -> Type:
    """The least type of ``a`` and ``b`` under ``Real ≤ Tensor`` (as the checker joins the
    branches of an ``if``), componentwise."""
    if a == b:
        return a
    if {a, b} == {REAL, TENSOR}:
        return TENSOR
    if same_shape(a, b):
        return with_items(a, (join(x, y) for x, y in zip(a.items, b.items)))
    if isinstance(a, ListType) and isinstance(b, ListType):
        return ListType(join(a.elem, b.elem))
    if type(a) is type(b) and isinstance(a, (FunType, LinType)):
        return type(a)(join(a.dom, b.dom), join(a.cod, b.cod))
    raise RuleError(f"{a} and {b} do not join")


_ARRAYS = frozenset(ARRAY_OF.values())


def _arith(a: Type, b: Type) -> Type:
    """The type of arithmetic on ``a`` and ``b``, as the checker gives it: an Int with an
    IntTensor is an IntTensor, otherwise the join."""
    return INT_TENSOR if INT_TENSOR in (a, b) else join(a, b)


class _Instance:
    """One instantiation of a rule.  ``env`` holds the types of the rule's own variables,
    by their new names, while their scope is walked."""

    def __init__(self, names: dict[str, Term], mapping: dict[str, str], span: Span | None, typed: bool,
                 hoist: Callable[[Prim], Term] | None):
        self.names, self.mapping, self.span, self.typed, self.hoist = names, mapping, span, typed, hoist
        self.env: dict[str, Type] = {}

    def term(self, t: Term) -> Term:
        span = self.span
        if isinstance(t, Var):
            if t.name in self.mapping:
                name = self.mapping[t.name]
                return Var.make(name, span=span, ty=self.env[name] if self.typed else None)
            return self.names[t.name]
        if isinstance(t, Prim):
            return self.prim(t)
        if isinstance(t, App):
            fn, arg = self.term(t.fn), self.term(t.arg)
            return App.make(fn, arg, span=span, ty=fn.ty.cod if self.typed else None)
        if isinstance(t, Lit):
            return Lit.make(t.value, span=span, ty=_literal(t.value) if self.typed else None)
        if isinstance(t, (Lam, LinLam)):
            return self.function(t, None)
        if isinstance(t, Let):
            bound = self.term(t.bound)
            saved = dict(self.env)
            pattern = self.pattern(t.pattern, bound.ty)
            body = self.term(t.body)
            self.env = saved
            return Let.make(pattern, bound, body, span=span, ty=body.ty)
        if isinstance(t, Tuple):
            items = tuple([self.term(i) for i in t.items])
            return Tuple.make(items, span=span, ty=TupleType(tuple(i.ty for i in items)) if self.typed else None)
        if isinstance(t, ListLit):
            items = tuple([self.term(i) for i in t.items])
            ty = None
            if self.typed:
                ty = items[0].ty
                for i in items[1:]:
                    ty = join(ty, i.ty)
            return ListLit.make(items, span=span, ty=ListType(ty) if self.typed else None)
        raise RuleError(f"a {type(t).__name__} node in a rule")

    def function(self, t: Lam | LinLam, dom: Type | None) -> Term:
        """A lambda of the rule, its parameter of type ``dom`` unless annotated; ``λa ⊸ 0``
        is the zero backpropagator, as the checker reads it."""
        given = _pattern_type(t.param)
        dom = given if given is not None else dom
        if self.typed and dom is None:
            raise RuleError("a lambda whose parameter type is not known")
        saved = dict(self.env)
        param = self.pattern(t.param, dom)
        zero = isinstance(t, LinLam) and is_zero(t.body)
        body = DZero.make(span=self.span, ty=GRAD if self.typed else None) if zero else self.term(t.body)
        self.env = saved
        ty = (LinType if isinstance(t, LinLam) else FunType)(dom, body.ty) if self.typed else None
        return type(t)(param, body, span=self.span, ty=ty)

    def pattern(self, p: Pattern, t: Type | None) -> Pattern:
        """A pattern of the rule, its variables renamed and, when typing, bound to the parts
        of ``t``."""
        if isinstance(p, PVar):
            name = self.mapping.get(p.name, p.name)
            if self.typed:
                self.env[name] = p.annot if p.annot is not None else t
            return PVar.make(name, p.annot, span=self.span)
        if isinstance(p, PTuple):
            if self.typed and not (isinstance(t, TupleType) and len(t.items) == len(p.items)):
                raise RuleError(f"a pattern of {len(p.items)} components matched against {t}")
            parts = t.items if self.typed else [None] * len(p.items)
            return PTuple.make(tuple(self.pattern(i, it) for i, it in zip(p.items, parts)), span=self.span)
        return p

    def prim(self, t: Prim) -> Term:
        """A primitive's application: its result type from its record's type scheme; a
        lambda among its arguments gets its parameter type from the others (``map``)."""
        prim = PRIMITIVES[t.op]
        if not self.typed:
            return Prim.make(t.op, tuple([self.term(a) for a in t.args]), t.marks, span=self.span)
        args: list[Term | None] = [None if isinstance(a, (Lam, LinLam)) else self.term(a) for a in t.args]
        if prim.typing == "arith":
            ty = _arith(args[0].ty, args[1].ty) if len(args) == 2 else args[0].ty
        elif prim.typing == "compare":
            ty = BOOL_TENSOR if _ARRAYS & {a.ty for a in args} else BOOL
        elif prim.typing == "overloaded":
            found = signature_for(prim, tuple(a.ty for a in args))
            if found is None:
                raise RuleError(f"'{t.op}' is not defined on {', '.join(str(a.ty) for a in args)}")
            ty = found[1]
        elif prim.typing == "sum_apply":
            ty = GRAD
        elif prim.typing == "index":  # an index, or an update, of an array: of the array's type
            ty = args[1].ty
        elif prim.typing == "scheme":
            scheme: dict[int, Type] = {}
            later = [i for i, a in enumerate(args) if a is None]
            for p, a in zip(prim.params, args):
                if a is not None:
                    _match(p, a.ty, scheme)
            for i in later:
                param = prim.params[i]
                args[i] = self.function(t.args[i], _instance(param.dom, scheme) if isinstance(param, FunType) else None)
                _match(param, args[i].ty, scheme)
            ty = _instance(prim.result, scheme)
        else:
            raise RuleError(f"'{t.op}' in a rule that a transform instantiates")
        node = Prim.make(t.op, tuple(args), t.marks, span=self.span, ty=ty)
        folded = _folded(node)
        if folded is not node:
            return folded
        if self.hoist is not None and prim.shape_only and len(args) == 1 and isinstance(args[0], Var):
            return self.hoist(node)
        return node


def _folded(t: Prim) -> Term:
    """An instance's application with what its rule computes from constants done now, where
    the result is the same value, of the same dtype, as it would be at run time — the rules
    of ``**`` give ``x2 - 1.0`` and ``mul0 x2 (x1 ** …)`` with the exponent a literal:

    * arithmetic on two real literals (``2.0 - 1.0``, of the record's ``fold``), where the
      operands and the result are float32's numbers: then float32 and float64 compute it
      exactly alike, and the literal of the result's type is what the backend made of it
      (a negative one the negation of its magnitude, ``neg 0.5``, as the parser reads
      ``-0.5``: a printed derivative reads back as the same term);
    * ``mul0 c t → c * t`` for a literal ``c`` that is neither 0 nor infinite: that is what
      ``mul0`` computes then; and ``mul0 c (t ** 1.0) → c * t`` where the literals are of
      one type: ``t ** 1.0`` is ``t`` (IEEE ``pow``), and ``c *`` makes either of the dtype
      ``c *`` makes of the other.

    ``t`` itself where none applies."""
    args = t.args
    if t.op == "mul0" and _real_literal(args[0]) and 0.0 < abs(args[0].value) < math.inf:
        right = args[1]
        if right.__class__ is Prim and right.op == "pow" and _real_literal(exponent := right.args[1]) \
                and exponent.value == 1.0 and exponent.ty == args[0].ty and _arith(args[0].ty, right.args[0].ty) == t.ty:
            right = right.args[0]
        return Prim.make("mul", (args[0], right), span=t.span, ty=t.ty)
    fold = PRIMITIVES[t.op].fold
    if fold is None or not all(_real_literal(a) for a in args):
        return t
    values = [a.value for a in args]
    result = fold(*values)
    if not all(map(_float32, (*values, result))) or Fraction(result) != fold(*map(Fraction, values)):
        return t
    if math.copysign(1.0, result) < 0:  # as a program writes it, and the parser reads it: -0.5 is neg 0.5
        return Prim.make("neg", (Lit.make(-result, span=t.span, ty=t.ty),), span=t.span, ty=t.ty)
    return Lit.make(result, span=t.span, ty=t.ty)


def _real_literal(t: Term) -> bool:
    """Whether ``t`` is a literal of a real number (a float, of type Real or Tensor)."""
    return t.__class__ is Lit and type(t.value) is float


def _float32(x: float) -> bool:
    """Whether ``x`` is a finite number of float32 (and so of float64): kept as it is when
    rounded to float32."""
    try:
        return math.isfinite(x) and unpack("f", pack("f", x))[0] == x
    except OverflowError:
        return False


def _literal(value) -> Type:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return REAL
    return STRING if isinstance(value, str) else UNIT


def _pattern_type(p: Pattern) -> Type | None:
    """The type a parameter's annotations give it, if they give all of it."""
    if isinstance(p, (PVar, PWild)):
        return p.annot
    items = [_pattern_type(i) for i in p.items]
    return None if any(i is None for i in items) else TupleType(tuple(items))


def _match(p: Type, t: Type, scheme: dict[int, Type]) -> None:
    """Bind the scheme variables of ``p`` so that ``t`` fits it (``Real ≤ Tensor``)."""
    if isinstance(p, TVar):
        scheme[p.id] = join(scheme[p.id], t) if p.id in scheme else t
    elif same_shape(p, t):
        for x, y in zip(p.items, t.items):
            _match(x, y, scheme)
    elif isinstance(p, ListType) and isinstance(t, ListType):
        _match(p.elem, t.elem, scheme)
    elif type(p) is type(t) and isinstance(p, (FunType, LinType)):
        _match(p.dom, t.dom, scheme)
        _match(p.cod, t.cod, scheme)
    elif not (p == t or (p == TENSOR and t == REAL)):
        raise RuleError(f"{t} where {p} is expected")


def _instance(p: Type, scheme: dict[int, Type]) -> Type:
    """A primitive's scheme type with its variables replaced by what they were matched to."""
    def variable(t: Type) -> Type | None:
        if not isinstance(t, TVar):
            return None
        if t.id not in scheme:
            raise RuleError("a type variable of a primitive's result is not determined")
        return scheme[t.id]
    return map_type(p, variable)
