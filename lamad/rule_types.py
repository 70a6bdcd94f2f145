"""Types for the terms the AD transforms build, so that their output needs no inference.

A transform knows the type of every term it makes: ``D(t)`` has type ``D(A)`` when ``t``
has type ``A`` (SPEC §3).  Only the instances of a primitive's rules are new terms, and
their types follow, bottom-up, from the types of the rule's variables and the type
schemes of the primitives in them (:func:`typed`): every variable of an instance is
bound, in the instance or by the transform, to a term of known type.  The types are
the ones the checker would infer (lamad/types.py): ``Real`` is used where a ``Tensor``
is expected, and arithmetic joins the two.
"""

from __future__ import annotations

from typing import Mapping

from lamad.prims import PRIMITIVES
from lamad.syntax import (
    BOOL, GRAD, INT, REAL, STRING, TENSOR, UNIT, App, DAdd, DZero, FunType, Lam, Let, LinLam, LinType, ListLit,
    ListType, Lit, Pattern, Prim, PTuple, PVar, PWild, Term, Tuple, TupleType, TVar, Type, Var, let_chain, update,
)


class RuleTypeError(Exception):
    """A rule's instance that does not type: a bug in a primitive's record."""


def join(a: Type, b: Type) -> Type:
    """The least type of ``a`` and ``b`` under ``Real ≤ Tensor`` (as the checker joins the
    branches of an ``if``), componentwise."""
    if a == b:
        return a
    if {a, b} == {REAL, TENSOR}:
        return TENSOR
    if isinstance(a, TupleType) and isinstance(b, TupleType) and len(a.items) == len(b.items):
        return TupleType(tuple(join(x, y) for x, y in zip(a.items, b.items)))
    if isinstance(a, ListType) and isinstance(b, ListType):
        return ListType(join(a.elem, b.elem))
    if type(a) is type(b) and isinstance(a, (FunType, LinType)):
        return type(a)(join(a.dom, b.dom), join(a.cod, b.cod))
    raise RuleTypeError(f"{a} and {b} do not join")


def typed(t: Term, env: Mapping[str, Type]) -> Term:
    """``t`` with the type of every node set, the types of its free variables given by
    ``env``; nodes that already have a type keep it."""
    return _Typer(dict(env)).term(t)


class _Typer:
    def __init__(self, env: dict[str, Type]):
        self.env = env

    def term(self, t: Term) -> Term:
        if t.ty is not None:  # a term the transform made, or a typed term of the source
            return t
        if isinstance(t, Var):
            if t.name not in self.env:
                raise RuleTypeError(f"the type of '{t.name}' is not known")
            return update(t, ty=self.env[t.name])
        if isinstance(t, Lit):
            return update(t, ty=_literal(t.value))
        if isinstance(t, DZero):
            return update(t, ty=GRAD)
        if isinstance(t, DAdd):
            return update(t, left=self.term(t.left), right=self.term(t.right), ty=GRAD)
        if isinstance(t, Tuple):
            items = tuple(self.term(i) for i in t.items)
            return update(t, items=items, ty=TupleType(tuple(i.ty for i in items)))
        if isinstance(t, ListLit):
            items = tuple(self.term(i) for i in t.items)
            elem = items[0].ty
            for i in items[1:]:
                elem = join(elem, i.ty)
            return update(t, items=items, ty=ListType(elem))
        if isinstance(t, App):
            fn, arg = self.term(t.fn), self.term(t.arg)
            if not isinstance(fn.ty, (FunType, LinType)):
                raise RuleTypeError(f"an application of a {fn.ty}")
            return update(t, fn=fn, arg=arg, ty=fn.ty.cod)
        if isinstance(t, Let):
            chain, body = let_chain(t)
            saved = dict(self.env)
            bound = []
            for let in chain:
                b = self.term(let.bound)
                self.bind(let.pattern, b.ty)
                bound.append(b)
            result = self.term(body)
            self.env = saved
            for let, b in reversed(list(zip(chain, bound))):
                result = update(let, bound=b, body=result, ty=result.ty)
            return result
        if isinstance(t, (Lam, LinLam)):
            return self.function(t, _pattern_type(t.param))
        if isinstance(t, Prim):
            return self.prim(t)
        raise RuleTypeError(f"a {type(t).__name__} node in a rule")

    def function(self, t: Lam | LinLam, dom: Type | None) -> Term:
        """A lambda, its parameter of type ``dom`` (or of its annotation)."""
        if dom is None:
            dom = t.ty.dom if t.ty is not None else None
        if dom is None:
            raise RuleTypeError("a lambda whose parameter type is not known")
        saved = dict(self.env)
        self.bind(t.param, dom)
        body = self.term(t.body)
        self.env = saved
        kind = LinType if isinstance(t, LinLam) else FunType
        return update(t, body=body, ty=kind(dom, body.ty))

    def bind(self, p: Pattern, t: Type) -> None:
        if isinstance(p, PVar):
            self.env[p.name] = p.annot if p.annot is not None else t
        elif isinstance(p, PTuple):
            if not isinstance(t, TupleType) or len(t.items) != len(p.items):
                raise RuleTypeError(f"a pattern of {len(p.items)} components matched against {t}")
            for item, it in zip(p.items, t.items):
                self.bind(item, it)

    def prim(self, t: Prim) -> Term:
        """A primitive's application: its result type from its record's type scheme."""
        prim = PRIMITIVES[t.op]
        later = [i for i, a in enumerate(t.args) if isinstance(a, (Lam, LinLam)) and a.ty is None]
        args: list[Term | None] = [None if i in later else self.term(a) for i, a in enumerate(t.args)]
        if prim.typing == "arith":
            ty = args[0].ty
            for a in args[1:]:
                ty = join(ty, a.ty)
            return update(t, args=tuple(args), ty=ty)
        if prim.typing == "compare":
            return update(t, args=tuple(args), ty=BOOL)
        if prim.typing == "sum_apply":
            return update(t, args=tuple(args), ty=GRAD)
        if prim.typing != "scheme":
            raise RuleTypeError(f"'{t.op}' in a rule")
        scheme: dict[int, Type] = {}
        for p, a in zip(prim.params, args):
            if a is not None:
                _match(p, a.ty, scheme)
        for i in later:  # a lambda's parameter type comes from the other arguments
            param = prim.params[i]
            args[i] = self.function(t.args[i], _instance(param.dom, scheme) if isinstance(param, FunType) else None)
            _match(prim.params[i], args[i].ty, scheme)
        return update(t, args=tuple(args), ty=_instance(prim.result, scheme))


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
    elif isinstance(p, TupleType) and isinstance(t, TupleType) and len(p.items) == len(t.items):
        for x, y in zip(p.items, t.items):
            _match(x, y, scheme)
    elif isinstance(p, ListType) and isinstance(t, ListType):
        _match(p.elem, t.elem, scheme)
    elif type(p) is type(t) and isinstance(p, (FunType, LinType)):
        _match(p.dom, t.dom, scheme)
        _match(p.cod, t.cod, scheme)
    elif not (p == t or (p == TENSOR and t == REAL)):
        raise RuleTypeError(f"{t} where {p} is expected")


def _instance(p: Type, scheme: dict[int, Type]) -> Type:
    if isinstance(p, TVar):
        if p.id not in scheme:
            raise RuleTypeError("a type variable of a primitive's result is not determined")
        return scheme[p.id]
    if isinstance(p, TupleType):
        return TupleType(tuple(_instance(i, scheme) for i in p.items))
    if isinstance(p, ListType):
        return ListType(_instance(p.elem, scheme))
    if isinstance(p, (FunType, LinType)):
        return type(p)(_instance(p.dom, scheme), _instance(p.cod, scheme))
    return p
