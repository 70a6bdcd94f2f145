"""Type checking and elaboration (docs/language.md: Typing, Numbers, Builtins).

``typecheck(program)`` infers the type of every definition by unification and
returns a :class:`TypedProgram` whose terms are *elaborated*: every node carries
its type ``ty``, applications of builtins are saturated :class:`Prim` nodes
(partial applications are eta-expanded), integer literals used as reals are real
literals, ``&&``/``||`` are ``if``s and ascriptions are gone.  The evaluator and
the AD transforms work on elaborated terms only.

Typing is monomorphic for user code, but for generic definitions (templates, whose
annotations name type variables ``'p``), which are specialised, checked once per
instantiation, at their uses; builtins are instantiated afresh at each use.
``Real`` may be used where ``Tensor`` is expected, and arithmetic joins the two
(docs/language.md, Numbers): the checker implements this as a subsumption ``coerce``
at argument positions and a ``join`` at branches and list elements; a Real given for a
builtin's type variable (``fold``'s initial accumulator) stays open to promotion by
the arguments after it.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Container, Iterator, Mapping

from lamad import jacobians
from lamad.adtypes import cotangent_type, marked_type
from lamad.archive import not_data
from lamad.jacobians import leaves
from lamad.errors import LamTypeError
from lamad.linearity import is_zero, linear_in
from lamad.instances import instantiate
from lamad.prims import MARKS, PRIMITIVES, Primitive, public
from lamad.prims.base import fits as signature_fits, signature_for
from lamad.prims.arithmetic import INT_MAX, INT_MIN
from lamad.syntax import (
    ARRAY_OF, BASE_TYPES, BOOL, BOOL_TENSOR, ELLIPSIS, GRAD, INT, INT_TENSOR, PART, PRODUCTS, REAL, STRING, TENSOR,
    UNIT, Ann, App, Base, DAdd, DZero, Def, FunType, If, IndexItem, Lam, Let, LinLam, LinType, ListLit, ListType,
    Lit, Pattern, Prim, Program, Proj, PRecord, PTuple, PVar, PWild, Record, RecordType, Slice, Span, Term, Tuple,
    TupleType, TVar, Type, TypeName, TypeParam, Var, annotated, children, free_variables, has_names, let_chain,
    UPDATES, map_annotations, map_children, map_type, part_count, parse_spec, record_type, rename_free, same_shape,
    term_names, type_params, update, with_items,
)

_NUMERIC = {"zero": (INT, REAL, TENSOR, INT_TENSOR, GRAD), "num": (INT, REAL, TENSOR, INT_TENSOR),
            "float": (REAL, TENSOR)}
"""What a kinded variable may stand for: ``zero`` is the kind of the literal ``0``,
which is also the zero of the gradient module ``d``; the kinds are nested."""
_KIND_RANK = {"any": 0, "zero": 1, "num": 2, "float": 3}
_KIND_TEXT = {"zero": "a number", "num": "a number (Int, Real, Tensor or IntTensor)", "float": "Real or Tensor"}
_ARRAYS = frozenset(ARRAY_OF.values())


class _Mismatch(Exception):
    """Raised inside unification; turned into a located LamTypeError by the caller."""


@dataclass(frozen=True)
class Template:
    """A generic definition (docs/language.md, "Generic definitions and structures"): its
    annotations name type variables (``'p``), and it is specialised at each use to the
    types they stand for there, checked and compiled once per instantiation.

    ``definition`` is the definition as written, its free names resolved where it was
    defined: a primitive is ``%name`` (no later binding captures it), and an imported
    template's names are qualified (``nn.sgd``).  ``scheme`` is its signature, the type
    variables ``variables`` being the type variables -1, -2, … in order; ``instances`` the
    names of its specialisations, by the types of its variables (a cache)."""

    definition: Def
    scheme: Type
    variables: tuple[str, ...]
    instances: dict[tuple[Type, ...], str] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def signature(self) -> Type:
        """The scheme with its type variables named as written (``'p → 'p``), to show."""
        names = {-i - 1: TypeParam(v) for i, v in enumerate(self.variables)}
        return map_type(self.scheme, lambda u: names.get(u.id) if isinstance(u, TVar) else None)

    def qualified(self, module: str, names: Container[str]) -> Template:
        """The template as a module named ``module`` exports it: its name and the names it
        uses from the module (its definitions, modules, templates and type aliases,
        ``names``) qualified by ``module``."""
        d = self.definition
        free = {n: f"{module}.{n}" for n in free_variables(d.as_term()) if n in names}

        def rename(t: Type) -> Type:
            return map_type(t, lambda u: TypeName(f"{module}.{u.name}", u.span, u.arg and rename(u.arg))
                            if isinstance(u, TypeName) and u.name in names else None)
        params = tuple(replace(p, annot=rename(p.annot)) for p in d.params)
        body = map_annotations(rename_free(d.body, free), rename)
        renamed = replace(d, name=f"{module}.{d.name}", params=params, result=rename(d.result), body=body)
        return Template(renamed, self.scheme, self.variables)


@dataclass
class Instances:
    """Where the specialisations of templates go while a program is checked: the types and
    terms of its definitions, each specialisation added before the definition that uses it."""

    types: dict[str, Type]
    terms: dict[str, Term]


@dataclass(frozen=True)
class Scope:
    """What names in a program may stand for besides its definitions and the builtins: its
    type aliases, by name, expanded (``Layer``, ``nn.Layer``), the qualifiers of the
    modules it imports (``nn``, and ``nn.M`` for a module ``nn`` imports as ``M``), and its
    generic definitions, its own and its modules' (``nn.sgd``)."""

    aliases: Mapping[str, Type] = field(default_factory=dict)
    modules: frozenset[str] = frozenset()
    templates: Mapping[str, Template] = field(default_factory=dict)
    alias_params: Mapping[str, str] = field(default_factory=dict)
    """The type variable of each alias that has one (``type Adam 'p = …``)."""


@dataclass(frozen=True)
class TypedProgram:
    """A checked program: each definition's type and elaborated term, in order — those of
    the modules it imports first, by their qualified names (``nn.dense``) — and the scope
    its definitions were checked in."""

    program: Program
    types: dict[str, Type]
    terms: dict[str, Term]
    scope: Scope = field(default_factory=lambda: Scope())

    def __iter__(self) -> Iterator[str]:
        return iter(self.types)

    def type_of(self, name: str) -> Type:
        """The type of a definition, or the signature of a generic one (``'p → 'p``)."""
        template = self.scope.templates.get(name)
        return template.signature if template is not None else self.types[name]


class Checker:
    """Inference state: the substitution and the typing environment."""

    def __init__(self, globals_: Mapping[str, Type] | None = None, later: Container[str] = frozenset(),
                 scope: Scope | None = None, sink: Instances | None = None,
                 type_params: Mapping[str, Type] | None = None, number: Type = INT):
        self.subst: dict[int, Type] = {}
        self.number = number  # what a number nothing determines is (docs/language.md, Numbers)
        self.sink = sink  # where specialisations of templates go; None: templates cannot be used
        self.type_params = type_params or {}  # what the type variables stand for, in a specialisation
        self.uses: dict[str, tuple[Template, dict[int, TVar], Span | None]] = {}  # templates used, by mark
        self.maps: list[_Map] = []  # structure maps whose structure's type was not known yet
        self.written: dict[str, Term] = {}  # each of those written out, by its mark
        self.settling = False  # whether the end of the definition is reached
        self.specialised: dict[str, str] = {}  # the specialisation each use's mark names
        self.scope = scope or Scope()  # the program's type aliases and imported modules
        self.counter = 0
        # read, never written: not copied, so that checking n definitions costs O(n), not O(n²)
        self.globals: Mapping[str, Type] = globals_ if globals_ is not None else {}
        self.later = later  # names of definitions below the one being checked
        self.defining: str | None = None  # the name of the definition being checked
        self.locals: dict[str, Type] = {}
        self.deferred: list[tuple[Type, TVar, Span | None, str, str, str]] = []  # pending ct(A) = v
        self.overloads: list[tuple[Primitive, list[Term], Type, list]] = []  # pending overloaded applications
        self.contextual: list[tuple[Primitive, Type, Span | None]] = []  # results the context must determine
        self.indexings: list[_Indexing] = []  # indexes of values whose type was not known yet
        self.index_parts: list[tuple[Type, Span | None]] = []  # indexes whose type was not known yet
        self.projections: list[tuple[Term, str, Span | None, Type]] = []  # fields of values not known yet
        self.used: set[str] = set()  # the names of the term being checked: see fresh_name
        # Types known to be ground (no unbound variable in them, under subst), by id, and
        # the zonked form of ground types, by id of the type zonked: a type stays ground,
        # so the nested types of a 10,000-level list literal are each walked once, not
        # once per level (O(n), not O(n²)).  The types are kept, so their ids stay theirs.
        self._ground: dict[int, Type] = {}
        self._zonked: dict[int, tuple[Type, Type]] = {}

    # ----------------------------------------------------------------- types

    def fresh(self, kind: str = "any") -> TVar:
        self.counter += 1
        return TVar(self.counter, kind)

    def resolve(self, t: Type) -> Type:
        """What ``t`` stands for now, at its outermost constructor (path-compressing)."""
        if t.__class__ is not TVar:
            return t
        path = []
        while isinstance(t, TVar) and t.id in self.subst:
            path.append(t.id)
            t = self.subst[t.id]
        for var in path[:-1]:
            self.subst[var] = t
        return t

    def zonk(self, t: Type) -> Type:
        """``t`` with every bound variable replaced by what it is bound to."""
        return self._zonk(t)[0]

    def _zonk(self, t: Type) -> tuple[Type, bool]:
        """:meth:`zonk`, and whether the result is ground (then remembered)."""
        t = self.resolve(t)
        known = self._zonked.get(id(t))
        if known is not None:
            return known[1], True
        if isinstance(t, PRODUCTS):
            parts = [self._zonk(i) for i in t.items]
            z: Type = with_items(t, (p for p, _ in parts))
            ground = all(g for _, g in parts)
        elif isinstance(t, (FunType, LinType)):
            (dom, g1), (cod, g2) = self._zonk(t.dom), self._zonk(t.cod)
            z, ground = type(t)(dom, cod), g1 and g2
        elif isinstance(t, ListType):
            elem, ground = self._zonk(t.elem)
            z = ListType(elem)
        else:
            return t, not isinstance(t, TVar)
        if ground:
            self._zonked[id(t)] = (t, z)
        return z, ground

    def ground(self, t: Type) -> bool:
        """Whether ``t`` has no unbound variable (a true answer is remembered)."""
        t = self.resolve(t)
        if id(t) in self._ground or id(t) in self._zonked:
            return True
        if isinstance(t, PRODUCTS):
            ground = all(self.ground(i) for i in t.items)
        elif isinstance(t, (FunType, LinType)):
            ground = self.ground(t.dom) and self.ground(t.cod)
        elif isinstance(t, ListType):
            ground = self.ground(t.elem)
        else:
            return not isinstance(t, TVar)
        if ground:
            self._ground[id(t)] = t
        return ground

    def instantiate(self, t: Type, fresh: dict[int, TVar]) -> Type:
        """A builtin's scheme type with its (negative-id) variables renamed apart."""
        if isinstance(t, TVar) and t.id < 0:
            if t.id not in fresh:
                fresh[t.id] = self.fresh(t.kind)
            return fresh[t.id]
        if isinstance(t, PRODUCTS):
            return with_items(t, (self.instantiate(i, fresh) for i in t.items))
        if isinstance(t, (FunType, LinType)):
            return type(t)(self.instantiate(t.dom, fresh), self.instantiate(t.cod, fresh))
        if isinstance(t, ListType):
            return ListType(self.instantiate(t.elem, fresh))
        return t

    def describe(self, t: Type) -> str:
        t = self.zonk(t)
        if isinstance(t, TVar) and t.kind in _KIND_TEXT:
            return _KIND_TEXT[t.kind]
        return str(t)

    def _occurs(self, v: TVar, t: Type) -> bool:
        t = self.resolve(t)
        if id(t) in self._ground or id(t) in self._zonked:
            return False
        if isinstance(t, TVar):
            return t.id == v.id
        if isinstance(t, PRODUCTS):
            return any(self._occurs(v, i) for i in t.items)
        if isinstance(t, (FunType, LinType)):
            return self._occurs(v, t.dom) or self._occurs(v, t.cod)
        if isinstance(t, ListType):
            return self._occurs(v, t.elem)
        return False

    def _bind(self, v: TVar, t: Type) -> None:
        if isinstance(t, TVar):
            if t.id == v.id:
                return
            kind = _meet(v.kind, t.kind)
            if kind != t.kind:
                self.subst[t.id] = target = self.fresh(kind)
                t = target
            self.subst[v.id] = t
            return
        if v.kind != "any" and t not in _NUMERIC[v.kind]:
            raise _Mismatch
        if not self.ground(t) and self._occurs(v, t):
            raise _Mismatch
        self.subst[v.id] = t

    def _unify(self, a: Type, b: Type) -> None:
        if a is b:
            return
        a, b = self.resolve(a), self.resolve(b)
        if isinstance(a, TVar):
            self._bind(a, b)
        elif isinstance(b, TVar):
            self._bind(b, a)
        elif isinstance(a, Base) and isinstance(b, Base):
            if a != b:
                raise _Mismatch
        elif same_shape(a, b):
            for x, y in zip(a.items, b.items):
                self._unify(x, y)
        elif isinstance(a, ListType) and isinstance(b, ListType):
            self._unify(a.elem, b.elem)
        elif type(a) is type(b) and isinstance(a, (FunType, LinType)):
            self._unify(a.dom, b.dom)
            self._unify(a.cod, b.cod)
        else:
            raise _Mismatch

    def _coerce(self, actual: Type, expected: Type) -> None:
        """``actual`` may be used where ``expected`` is wanted: equal up to ``Real ≤ Tensor``."""
        if actual is expected:
            return
        a, e = self.resolve(actual), self.resolve(expected)
        if a == REAL and e == TENSOR:
            return
        if same_shape(a, e):
            for x, y in zip(a.items, e.items):
                self._coerce(x, y)
        elif isinstance(a, ListType) and isinstance(e, ListType):
            self._coerce(a.elem, e.elem)
        elif isinstance(a, FunType) and isinstance(e, FunType):
            self._coerce(e.dom, a.dom)
            self._coerce(a.cod, e.cod)
        elif isinstance(a, LinType) and isinstance(e, LinType):
            if not self.promoted(a.dom, e.dom):
                self._coerce(e.dom, a.dom)
            self._coerce(a.cod, e.cod)
        else:
            self._unify(a, e)

    def promoted(self, a: Type, b: Type) -> bool:
        """Whether ``a`` and ``b`` differ, and only where one has ``Real`` and the other
        ``Tensor``.  As the domains of linear functions they make ``Real⊥`` and ``Tensor⊥``
        interconvertible, and likewise for their transforms (``(Real × Real)⊥`` and
        ``(Tensor × Tensor)⊥``): ←D and →D keep a promoted Real a Real, and the
        cotangents sent back to it are 0-d Tensors."""
        a, b = self.resolve(a), self.resolve(b)
        if {a, b} == {REAL, TENSOR}:
            return True
        pairs = component_pairs(a, b)
        if not pairs:
            return False
        same = [self.resolve(x) == self.resolve(y) for x, y in pairs]
        return not all(same) and all(s or self.promoted(x, y) for s, (x, y) in zip(same, pairs))

    def promotable(self, t: Type) -> Type:
        """``t`` with each ``Real`` in it (through tuples and lists) left open to promotion:
        a variable for Real or Tensor, which is Real unless something makes it a Tensor.
        A value of type ``t`` fits wherever a value of that type is wanted."""
        t = self.resolve(t)
        if t == REAL:
            return self.fresh("float")
        if isinstance(t, PRODUCTS):
            return with_items(t, (self.promotable(i) for i in t.items))
        if isinstance(t, ListType):
            return ListType(self.promotable(t.elem))
        return t

    def coerce(self, actual: Type, expected: Type, span: Span | None, context: str = "") -> None:
        """Check that a term of type ``actual`` fits where ``expected`` is wanted."""
        try:
            self._coerce(actual, expected)
        except _Mismatch:
            found = self.describe(actual)
            hint = " (convert with 'real')" if found in ("Int", "IntTensor") and self.describe(expected) in ("Real", "Tensor", _KIND_TEXT["float"]) else ""
            if self.resolve(expected) == TENSOR and isinstance(self.resolve(actual), ListType):
                hint = " (a list is not a Tensor: 'stack' makes one of a list of reals or tensors, stack [1.0, 2.0])"
            hint += _fields_differ(self.zonk(actual), self.zonk(expected))
            raise LamTypeError(f"{context}expected {self.describe(expected)}, found {found}{hint}", span) from None

    def _join(self, a: Type, b: Type) -> Type:
        a, b = self.resolve(a), self.resolve(b)
        if {a, b} == {REAL, TENSOR}:
            return TENSOR
        if isinstance(a, LinType) and isinstance(b, LinType) and self.promoted(a.dom, b.dom):
            return LinType(self._join(a.dom, b.dom), self._join(a.cod, b.cod))
        if isinstance(a, FunType) and isinstance(b, FunType):
            self._unify(a.dom, b.dom)
            return FunType(a.dom, self._join(a.cod, b.cod))
        if same_shape(a, b):
            return with_items(a, (self._join(x, y) for x, y in zip(a.items, b.items)))
        if isinstance(a, ListType) and isinstance(b, ListType):
            return ListType(self._join(a.elem, b.elem))
        self._unify(a, b)
        return a

    def join(self, a: Type, b: Type, span: Span | None, what: str) -> Type:
        """The least type of which both ``a`` and ``b`` are instances (Real promoted to Tensor)."""
        try:
            return self._join(a, b)
        except _Mismatch:
            raise LamTypeError(f"{what} have different types: {self.describe(a)} and {self.describe(b)}", span) from None

    # ----------------------------------------------------------------- environment

    def push(self, names: list[tuple[str, Type]]) -> list[tuple[str, Type | None]]:
        """Bind ``names`` in the local environment; returns what :meth:`pop` restores."""
        saved = [(name, self.locals.get(name)) for name, _ in names]
        for name, t in names:
            self.locals[name] = t
        return saved

    def pop(self, saved: list[tuple[str, Type | None]]) -> None:
        for name, old in reversed(saved):
            if old is None:
                del self.locals[name]
            else:
                self.locals[name] = old

    @contextmanager
    def bind(self, names: list[tuple[str, Type]]) -> Iterator[None]:
        saved = self.push(names)
        try:
            yield
        finally:
            self.pop(saved)

    def pattern(self, p: Pattern, t: Type) -> list[tuple[str, Type]]:
        """The variables bound by matching ``p`` against a value of type ``t``."""
        out: list[tuple[str, Type]] = []
        self._pattern(p, t, out)
        names = [n for n, _ in out]
        for n in names:
            if names.count(n) > 1:
                raise LamTypeError(f"'{n}' is bound twice in the same pattern", p.span)
        return out

    def _pattern(self, p: Pattern, t: Type, out: list) -> None:
        if isinstance(p, PVar):
            if p.annot is not None:
                self.coerce(t, p.annot, p.span, f"'{p.name}' is annotated {p.annot}: ")
                t = p.annot
            out.append((p.name, t))
        elif isinstance(p, PWild) and p.annot is not None:
            self.coerce(t, p.annot, p.span, f"'_' is annotated {p.annot}: ")
        elif isinstance(p, PTuple):
            r = self.resolve(t)
            if isinstance(r, TVar) and r.kind == "any":
                r = TupleType(tuple(self.fresh() for _ in p.items))
                self._unify(t, r)
            if not isinstance(r, TupleType) or len(r.items) != len(p.items):
                raise LamTypeError(
                    f"this pattern matches a tuple of {len(p.items)} components, but the value has type {self.describe(t)}",
                    p.span)
            for item, it in zip(p.items, r.items):
                self._pattern(item, it, out)
        elif isinstance(p, PRecord):
            for item, it in zip(p.items, self.record_pattern(p, t)):
                self._pattern(item, it, out)

    def record_pattern(self, p: PRecord, t: Type) -> list[Type]:
        """The types of the fields a record pattern names, in the order written: the
        pattern names every field of the record (docs/language.md, "Records"), and makes
        a value whose type is not known yet a record of those fields."""
        r = self.resolve(t)
        if isinstance(r, TVar) and r.kind == "any":
            r = record_type((f, self.fresh()) for f in p.fields)
            self._unify(t, r)
        if not isinstance(r, RecordType):
            raise LamTypeError(f"this pattern matches a record, but the value has type {self.describe(t)}", p.span)
        for f, item in zip(p.fields, p.items):
            if r.field_type(f) is None:
                raise LamTypeError(f"the record {self.describe(r)} has no field '{f}'{_close(f, r.fields)}",
                                   item.span)
        missing = [f for f in r.fields if f not in p.fields]
        if missing:
            names = ", ".join(f"'{f}'" for f in missing)
            raise LamTypeError(f"this pattern does not name the field{'s' * (len(missing) > 1)} {names} of "
                               f"{self.describe(r)}: a record pattern names every field ({missing[0]} = _ "
                               f"ignores one)", p.span)
        return [r.field_type(f) for f in p.fields]

    def param_type(self, p: Pattern) -> Type:
        """The type a lambda parameter is given before its body is checked."""
        if isinstance(p, (PVar, PWild)) and p.annot is not None:
            return p.annot
        if isinstance(p, PTuple):
            return TupleType(tuple(self.param_type(i) for i in p.items))
        if isinstance(p, PRecord):
            return record_type(zip(p.fields, (self.param_type(i) for i in p.items)))
        return self.fresh()

    # ----------------------------------------------------------------- type aliases

    def expand(self, t: Type) -> Type:
        """An annotation with the aliases it names expanded, and its type variables replaced
        by what they stand for in this specialisation; an unknown name is an error."""
        return map_type(t, self.named) if has_names(t) else t

    def named(self, t: Type) -> Type | None:
        """What a type alias or a type variable stands for; ``None`` for other types."""
        if isinstance(t, TypeName):
            found = self.scope.aliases.get(t.name)
            if found is None:
                return self.unknown_type(t)
            param = self.scope.alias_params.get(t.name)
            if param is None and t.arg is not None:
                raise LamTypeError(f"the type '{t.name}' takes no argument", t.span)
            if param is not None and t.arg is None:
                raise LamTypeError(f"the type '{t.name}' takes one, for its type variable {param} "
                                   f"({t.name} Real, {t.name} {param})", t.span)
            if param is None:
                return found
            arg = self.expand(t.arg)
            return map_type(found, lambda u: arg if isinstance(u, TypeParam) and u.name == param else None)
        if isinstance(t, TypeParam):
            found = self.type_params.get(t.name)
            if found is None:
                raise LamTypeError(f"the type variable {t.name} may only be written in a definition whose "
                                   f"parameters or result name it (def f (x : {t.name}) : {t.name} = …)", t.span)
            return found
        return None

    def unknown_type(self, t: TypeName) -> Type:
        known = [*BASE_TYPES, *self.scope.aliases]
        names = ", ".join(sorted(BASE_TYPES))
        aliases = f", and the aliases {', '.join(sorted(self.scope.aliases))}" if self.scope.aliases else ""
        module, _, _ = t.name.rpartition(".")
        if module and module not in self.scope.modules:
            raise LamTypeError(f"unknown type '{t.name}': no module '{module}' is imported", t.span)
        raise LamTypeError(f"unknown type '{t.name}'{_close(t.name, known)}; the base types are {names}{aliases}",
                           t.span)

    def expanded(self, p: Pattern) -> Pattern:
        """A pattern with the aliases its annotations name expanded."""
        if isinstance(p, (PVar, PWild)):
            return p if p.annot is None or not has_names(p.annot) else update(p, annot=self.expand(p.annot))
        if isinstance(p, (PTuple, PRecord)):
            if p.annot is not None:  # ((x, y) : Pair): the alias's parts annotate the items
                t = self.expand(p.annot)
                done = annotated(update(p, annot=None), t)
                if done is None:
                    raise LamTypeError(f"this pattern cannot have type {p.annot} ({t})", p.span)
                p = done
            items = tuple(self.expanded(i) for i in p.items)
            return p if all(a is b for a, b in zip(items, p.items)) else update(p, items=items)
        return p

    # ----------------------------------------------------------------- terms

    def infer(self, t: Term) -> Term:
        """Elaborate ``t``; the result's ``ty`` is its type (under the current substitution)."""
        if isinstance(t, Var):
            return self.var(t)
        if isinstance(t, Lit):
            return update(t, ty=self.literal_type(t.value))
        if isinstance(t, App):
            return self.app(t)
        if isinstance(t, Prim):
            elab = self.prim(t.op, list(t.args), t.span, arg_spans=[a.span for a in t.args], marks=t.marks)
            if t.ty is not None and getattr(PRIMITIVES.get(t.op), "typing", None) == "context":
                self.coerce(elab.ty, t.ty, t.span)  # elaborated: it carries its type, as its printed ascription does
            return elab
        if isinstance(t, DZero):
            return update(t, ty=GRAD)
        if isinstance(t, DAdd):
            left, right = self.infer(t.left), self.infer(t.right)
            for a in (left, right):
                self.coerce(a.ty, GRAD, a.span, "argument of '+' on gradients: ")
            return update(t, left=left, right=right, ty=GRAD)
        if isinstance(t, Lam):
            param = self.expanded(t.param)
            dom = self.param_type(param)
            with self.bind(self.pattern(param, dom)):
                body = self.infer(t.body)
            return update(t, param=param, body=body, ty=FunType(dom, body.ty))
        if isinstance(t, LinLam):
            return self.linear_lambda(t)
        if isinstance(t, Let):
            return self.let_chain(t)
        if isinstance(t, If):
            cond = self.infer(t.cond)
            self.coerce(cond.ty, BOOL, t.cond.span, "the condition of 'if': ")
            then, orelse = self.infer(t.then), self.infer(t.orelse)
            ty = self.join(then.ty, orelse.ty, t.span, "the branches of 'if'")
            return update(t, cond=cond, then=then, orelse=orelse, ty=ty)
        if isinstance(t, Tuple):
            items = tuple(self.infer(i) for i in t.items)
            return update(t, items=items, ty=TupleType(tuple(i.ty for i in items)))
        if isinstance(t, Record):
            items = tuple(self.infer(i) for i in t.items)
            return update(t, items=items, ty=record_type(zip(t.fields, (i.ty for i in items))))
        if isinstance(t, Proj):
            return self.projection(t)
        if isinstance(t, ListLit):
            items = tuple(self.infer(i) for i in t.items)
            elem: Type = self.fresh()
            for i in items:
                elem = self.join(elem, i.ty, i.span, "the elements of this list")
            return update(t, items=items, ty=ListType(elem))
        if isinstance(t, Ann):
            inner = self.infer(t.term)
            annot = self.expand(t.annot)
            self.coerce(inner.ty, annot, t.span, f"this term is annotated {t.annot}: ")
            return update(inner, ty=annot)
        raise LamTypeError(f"cannot type-check a {type(t).__name__} node", t.span)

    def linear_lambda(self, t: LinLam) -> Term:
        """``λa ⊸ u : A ⊸ B``, where ``u`` must be linear in ``a`` (lamad/linearity.py).
        A linear function that a transform made from one (``origin`` set) is linear by
        construction — the derivative of a linear map is linear — and is not checked again:
        its body is linear in the pair ``a`` stands for, which the syntactic test does not
        follow."""
        if not isinstance(t.param, PVar):
            raise LamTypeError("a linear function takes one variable, the cotangent", t.param.span)
        param = self.expanded(t.param)
        dom = self.param_type(param)
        with self.bind(self.pattern(param, dom)):
            body = self.infer(t.body)
        cod = self.resolve(body.ty)
        if isinstance(cod, TVar) and cod.kind == "zero":
            self._unify(cod, GRAD)  # λa ⊸ 0 is the zero backpropagator, not a function into Int
        if not (is_zero(body) or t.origin is not None or linear_in(body, t.param.name)):
            raise LamTypeError(f"the body of this linear function is not linear in '{t.param.name}': each summand "
                               f"must use '{t.param.name}' exactly once, through linear operations", t.span)
        return update(t, param=param, body=body, ty=LinType(dom, body.ty))

    def let_chain(self, t: Let) -> Term:
        """``let p1 = t1 in let p2 = t2 in ... u``, checked in a loop rather than by recursion
        so that long chains of bindings stay shallow."""
        chain: list[tuple[Let, Pattern, Term, list]] = []
        node: Term = t
        try:
            while isinstance(node, Let):
                bound = self.infer(node.bound)
                pattern = self.expanded(node.pattern)
                chain.append((node, pattern, bound, self.push(self.pattern(pattern, bound.ty))))
                node = node.body
            result = self.infer(node)
        finally:
            for _, _, _, saved in reversed(chain):
                self.pop(saved)
        for let, pattern, bound, _ in reversed(chain):
            result = Let.make(pattern, bound, result, span=let.span, ty=result.ty)
        return result

    def literal_type(self, value) -> Type:
        if isinstance(value, bool):
            return BOOL
        if isinstance(value, int):
            return self.fresh("zero" if value == 0 else "num")
        if isinstance(value, float):
            return REAL
        if isinstance(value, str):
            return STRING
        return UNIT

    def var(self, t: Var) -> Term:
        name = t.name
        if name in self.locals:  # a Var made, not updated: the checker makes one per use of a variable
            return Var.make(name, span=t.span, ty=self.locals[name])
        if name in self.globals:
            return Var.make(name, span=t.span, ty=self.globals[name])
        if name in self.scope.templates:
            return self.template_use(self.scope.templates[name], t)
        found = self.primitive_named(name, t.span)
        if found is not None:
            return self.apply_builtin(*found, [], t.span)
        if name in self.later:
            raise LamTypeError(f"'{name}' is defined further down; a definition may only use those above it", t.span)
        if name == self.defining:
            raise LamTypeError(f"'{name}' refers to itself, but a definition cannot be recursive; "
                               "loop with iterate, fold or scan (or map over a list)", t.span)
        if name in self.scope.modules:
            raise LamTypeError(f"'{name}' is a module, not a value: its definitions are {name}.name", t.span)
        known = [*self.locals, *self.globals, *self.scope.templates, *(n for n in PRIMITIVES if public(n))]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise LamTypeError(f"unbound name '{name}'{hint}", t.span)

    def template_use(self, template: Template, t: Var) -> Term:
        """A use of a template: its scheme with the type variables fresh, under a mark that
        :meth:`settle` replaces by the name of the specialisation to the types found."""
        if self.sink is None:
            raise LamTypeError(f"'{template.name}' is generic: it is specialised where a program's definitions or "
                               "expressions use it, not here", t.span)
        fresh: dict[int, TVar] = {}
        ty = self.instantiate(template.scheme, fresh)
        mark = self.fresh_name(f"{template.name}'")
        self.uses[mark] = (template, fresh, t.span)
        return update(t, name=mark, ty=ty)

    def specialise_uses(self) -> None:
        """Each use of a template named by the specialisation to the types its variables
        stand for there, which must be known by now."""
        for mark, (template, fresh, span) in self.uses.items():
            types = []
            for i, variable in enumerate(template.variables):
                t = self.zonk(fresh[-i - 1]) if -i - 1 in fresh else UNIT
                if _free_type_vars(t):
                    raise LamTypeError(f"what {variable} stands for in this use of '{template.name}' is not known "
                                       f"here ({self.describe(t)}): annotate its arguments", span)
                types.append(t)
            self.specialised[mark] = self.specialise(template, tuple(types), span)

    def specialise(self, template: Template, types: tuple[Type, ...], span: Span | None) -> str:
        """The name of the specialisation of ``template`` to ``types``, checked (and added
        to the program) at its first use: an error in it is located in the template, with
        the instantiation and the use named."""
        known = template.instances.get(types)
        if known is not None and known in self.globals:
            return known
        name = next(n for n in (f"{template.name}'{k}" for k in count(1)) if n not in self.globals)
        try:
            ty, term = check_def(template.definition, self.globals, scope=self.scope, sink=self.sink,
                                 type_params=dict(zip(template.variables, types)))
        except LamTypeError as e:
            at = "" if span is None else f", used at {span.source.filename}:{span.line}:{span.column}" \
                if span.source is not None else f", used at line {span.line}, column {span.column}"
            binding = ", ".join(f"{v} = {t}" for v, t in zip(template.variables, types))
            raise LamTypeError(f"{e.message} (in '{template.name}' with {binding}{at})", e.span) from None
        assert self.sink is not None
        self.sink.types[name], self.sink.terms[name] = ty, term
        template.instances[types] = name
        return name

    def projection(self, t: Proj) -> Term:
        """``t.w``, the field ``w`` of a record — or, where ``t`` names an imported module
        (:meth:`qualified`), its definition ``w``.  Where the type of ``t`` is not known
        yet (a lambda's parameter), the field is found at the end of the definition."""
        qualified = self.qualified(t)
        if qualified is not None:
            return qualified
        target = self.infer(t.term)
        r = self.resolve(target.ty)
        if isinstance(r, TVar) and r.kind == "any":
            result: Type = self.fresh()
            self.projections.append((target, t.field, t.span, result))
        else:
            result = self.field_of(target, t.field, t.span)
        return Proj(target, t.field, span=t.span, ty=result)

    def field_of(self, target: Term, name: str, span: Span | None) -> Type:
        """The type of field ``name`` of ``target``, a record."""
        r = self.resolve(target.ty)
        if not isinstance(r, RecordType):
            what = "a value whose type is not known here (annotate it)" if isinstance(r, TVar) and \
                r.kind == "any" else self.describe(r)
            raise LamTypeError(f"'.{name}' takes a field of a record, found {what}", target.span)
        found = r.field_type(name)
        if found is None:
            raise LamTypeError(f"the record {self.describe(r)} has no field '{name}'{_close(name, r.fields)}",
                               _last(span, len(name)))
        return found

    def settle_projections(self, final: bool) -> None:
        """The fields of values whose record type was not known when they were taken: those
        known now are typed; with ``final``, one still unknown is an error."""
        waiting, self.projections = self.projections, []
        for target, name, span, result in waiting:
            if final or not isinstance(self.resolve(target.ty), TVar):
                found = self.field_of(target, name, span)
                try:
                    self._unify(found, result)  # the field's own type (a Real is not promoted here)
                except _Mismatch:
                    raise LamTypeError(f"this field is {self.describe(found)}, but is used as "
                                       f"{self.describe(result)} (annotate the record it is taken from)",
                                       span) from None
            else:
                self.projections.append((target, name, span, result))

    def qualified(self, t: Proj) -> Term | None:
        """``M.x`` where ``M`` names an imported module that no local binding shadows: the
        module's definition ``x``, the variable ``M.x`` (``M.N.x`` through a module ``M``
        imports as ``N``), whose fields the rest of the chain takes; ``None`` for a
        projection of a value."""
        chain: list[Proj] = []
        node: Term = t
        while isinstance(node, Proj):
            chain.append(node)
            node = node.term
        if not (isinstance(node, Var) and node.name in self.scope.modules and node.name not in self.locals):
            return None
        path = node.name
        chain.reverse()
        for i, p in enumerate(chain):
            name = f"{path}.{p.field}"
            if name in self.scope.modules:
                path = name
                continue
            if name not in self.globals and name not in self.scope.templates:
                own = [n.rpartition(".")[2] for n in [*self.globals, *self.scope.templates]
                       if n.rpartition(".")[0] == path]
                raise LamTypeError(f"the module '{path}' has no definition '{p.field}'{_close(p.field, own)}",
                                   _last(p.span, len(p.field)))
            term: Term = Var(name, span=p.span)
            for outer in chain[i + 1:]:
                term = Proj(term, outer.field, span=outer.span)
            return self.infer(term)
        raise LamTypeError(f"'{path}' is a module, not a value: its definitions are {path}.name", t.span)

    def app(self, t: App) -> Term:
        head, args = t, []
        while isinstance(head, App):
            args.append(head.arg)
            head = head.fn
        args.reverse()
        if isinstance(head, Var) and head.name not in self.locals and head.name not in self.globals:
            found = self.primitive_named(head.name, head.span)
            if found is not None:
                return self.apply_builtin(*found, args, t.span)
        return self.apply(self.infer(head), args)

    def primitive_named(self, name: str, span: Span | None) -> tuple[Primitive, str] | None:
        """The primitive a name refers to where no variable of that name is in scope, and its
        marks: a public one by its name, any one by ``%name`` (how derivative programs print
        the helpers and the primitives a binding shadows), an AD operator marked by the
        transforms it went through by ``%grad'rf``."""
        if not name.startswith("%"):
            prim = public(name)
            return None if prim is None else (prim, "")
        base, _, marks = name[1:].partition("'")
        prim = PRIMITIVES.get(base)
        if prim is None or prim.operator is not None:
            raise LamTypeError(f"there is no primitive named '{base}'", span)
        if marks and (prim.typing != "ad" or not set(marks) <= set(MARKS)):
            raise LamTypeError(f"'{name}': only the AD operators grad, value_and_grad, vjp and jvp are marked, "
                               f"with the letters {' and '.join(MARKS)} of the transforms", span)
        return prim, marks

    def apply(self, fn: Term, args: list[Term], primitive: Primitive | None = None) -> Term:
        """Elaborate the application of an elaborated ``fn`` to source ``args`` (``fn`` is
        the ``primitive`` applied to as many arguments as it takes, if one is given)."""
        head, taken = fn, primitive.arity if primitive is not None else 0
        for i, arg in enumerate(args):
            fty = self.resolve(fn.ty)
            if isinstance(fty, TVar) and fty.kind == "any":
                fty = FunType(self.fresh(), self.fresh())
                self.coerce(fn.ty, fty, fn.span)
            if not isinstance(fty, (FunType, LinType)) and taken + i > 0:
                n = taken + i
                if primitive is not None:
                    name = f"'{primitive.surface}'"
                else:
                    shown = self.uses[head.name][0].name if isinstance(head, Var) and head.name in self.uses \
                        else getattr(head, "name", "")
                    name = f"'{shown}'" if isinstance(head, Var) else "this function"
                    name += f" (of type {self.describe(head.ty)})"
                extra = args[i].span.to(args[-1].span) if args[i].span else None
                raise LamTypeError(f"too many arguments: {name} takes {n} argument{'s' * (n > 1)}, "
                                   f"but is given {n + len(args) - i}", extra)
            if not isinstance(fty, (FunType, LinType)):
                raise LamTypeError(f"this is applied to an argument, but it has type {self.describe(fn.ty)}, "
                                   "not a function type", fn.span)
            a = self.infer(arg)
            if not (isinstance(fty, LinType) and self.promoted(a.ty, fty.dom)):
                self.coerce(a.ty, fty.dom, a.span)
            span = fn.span.to(a.span) if fn.span else a.span
            fn = App(fn, a, span=span, ty=fty.cod)
        return fn

    def apply_builtin(self, b: Primitive, marks: str, args: list[Term], span: Span | None) -> Term:
        """A primitive applied to ``args``: saturated as a Prim, eta-expanded if partial."""
        given = args[:b.arity]
        missing = b.arity - len(given)
        if b.typing == "structure":
            if missing:
                raise LamTypeError(f"'{b.name}' is applied to all its {b.arity} arguments here (it is written out "
                                   f"for the type of its structure): write \\s. {b.name} … s", span)
            return self.apply(self.structure(b, given, span), args[b.arity:], b)
        if missing == 0:
            prim = self.prim(b.name, given, span, arg_spans=[a.span for a in given], marks=marks)
            return self.apply(prim, args[b.arity:], b)
        # eta-expansion: let a1 = t1 ... in \p1 ... pk. b a1 ... p1 ... pk
        bound = [(self.fresh_name("u"), self.infer(a)) for a in given]
        params = [self.fresh_name("x") for _ in range(missing)]
        fresh: dict[int, TVar] = {}
        param_types = [self.fresh() if b.typing == "overloaded" else self.instantiate(p, fresh)
                       for p in b.params[len(given):]]
        names = [(n, a.ty) for n, a in bound] + list(zip(params, param_types))
        with self.bind(names):
            body = self.prim(b.name, [Var(n, span=span, ty=t) for n, t in names],
                             span, arg_spans=[a.span for a in given] + [span] * missing,
                             elaborated=True, marks=marks)
        term: Term = body
        for p, pt in reversed(list(zip(params, param_types))):
            term = Lam(PVar(p), term, span=span, ty=FunType(pt, term.ty))
        for n, a in reversed(bound):
            term = Let(PVar(n), a, term, span=span, ty=term.ty)
        return term

    def fresh_name(self, base: str) -> str:
        """A variable name used nowhere in the term being checked."""
        while True:
            self.counter += 1
            name = f"{base}{self.counter}"
            if name not in self.used:
                self.used.add(name)
                return name

    def prim(self, op: str, args: list[Term], span: Span | None, arg_spans: list, elaborated: bool = False,
             marks: str = "") -> Term:
        """Elaborate a saturated primitive application ``op args``, read from the
        primitive's record."""
        if op in ("and", "or"):
            left, right = (self.infer(a) for a in args)
            if BOOL_TENSOR in (self.resolve(left.ty), self.resolve(right.ty)):
                return self.prim("logical_" + op, [left, right], span, arg_spans, elaborated=True)
            for a in (left, right):
                self.coerce(a.ty, BOOL, a.span, f"the operands of '{'&&' if op == 'and' else '||'}': ")
            true, false = Lit(True, span=span, ty=BOOL), Lit(False, span=span, ty=BOOL)
            return If(left, right, false, span=span, ty=BOOL) if op == "and" else If(left, true, right, span=span, ty=BOOL)
        b = PRIMITIVES[op]
        elab = [a if elaborated else self.infer(a) for a in args]
        if b.typing == "derived":
            return self.derived(b, elab, span)
        if b.typing == "ad":
            ty = self.ad(op, marks, elab, arg_spans)
        elif b.typing == "arith":
            ty = self.arith(b, elab, arg_spans)
        elif b.typing == "compare":
            ty = self.compare(op, elab, span)
        elif b.typing == "sum_apply":
            ty = self.sum_apply(elab, arg_spans)
        elif b.typing == "overloaded":
            ty = self.overloaded(b, elab, arg_spans)
        elif b.typing == "index":
            ty = self.index(b, elab, arg_spans, span)
        elif b.typing == "context":
            ty = self.from_context(b, elab, arg_spans, span)
        else:
            fresh: dict[int, TVar] = {}
            for a, p, sp in zip(elab, b.params, arg_spans):
                expected = self.instantiate(p, fresh)
                if isinstance(p, TVar) and p.kind == "any" and isinstance(self.resolve(expected), TVar):
                    # fold's and scan's initial accumulator, iterate's start: a Real there may
                    # be promoted to a Tensor by the elements or the function seen after it
                    self._unify(expected, self.promotable(a.ty))
                else:
                    self.coerce(a.ty, expected, sp, f"argument of '{b.surface}': ")
            ty = self.resolve(self.instantiate(b.result, fresh))  # known by now, most often: final at once
        if op == "add" and ty == GRAD:
            return DAdd(*elab, span=span, ty=GRAD)
        return Prim(op, tuple(elab), marks, span=span, ty=ty)

    # ----------------------------------------------------------------- structure maps

    def structure(self, b: Primitive, args: list[Term], span: Span | None) -> Term:
        """``tmap f s``, ``tmap2 f s t``, ``tsum s``, ``tzeros_like s``, ``tfull_like c s``
        written out for the type of the structure ``s`` (its Real and Tensor leaves, through
        records and tuples): ``tmap f s`` of ``s : {b : Tensor, w : Tensor}`` is ``{b = f
        s.b, w = f s.w}``.  A function written as a lambda or a name is checked afresh at
        each leaf (``\\x. 0.9 * x`` on Real and Tensor leaves); another is bound once.  The
        result is an ordinary term: its derivatives are those of the construction.  Where
        the structure's type is not known yet (a lambda's parameter), the map is written at
        the end of the definition (:meth:`settle_maps`), under a mark that stands for it."""
        structures = args[1:] if b.name in ("tmap", "tmap2", "tfull_like") else args
        given = args[:len(args) - len(structures)]
        bound = [(self.fresh_name("s"), self.infer(s)) for s in structures]
        r = self.resolve(bound[0][1].ty)
        if isinstance(r, TVar) and r.kind == "any" and not self.settling:
            mark, result = self.fresh_name(f"{b.name}'"), self.fresh()
            self.maps.append(_Map(mark, b, given, bound, structures, dict(self.locals), span, result))
            return Var(mark, span=span, ty=result)
        return self.write_map(b, given, bound, structures, span)

    def write_map(self, b: Primitive, given: list[Term], bound: list[tuple[str, Term]], structures: list[Term],
                  span: Span | None) -> Term:
        """A structure map written out, its structures elaborated and bound to names."""
        bound = list(bound)  # its function or value is bound first, where it is bound
        shape = self.zonk(bound[0][1].ty)
        self.check_leaves(b.name, shape, structures[0].span, "")
        for (_, other), s in zip(bound[1:], structures[1:]):
            if not _alike(shape, self.zonk(other.ty)):
                raise LamTypeError(f"'{b.name}' maps structures of one shape, found {shape} and "
                                   f"{self.describe(other.ty)}{_fields_differ(self.zonk(other.ty), shape)}", s.span)
        if given:
            f = given[0]
            if not isinstance(f, (Lam, Var)):  # bound once, of one type
                name = self.fresh_name("f")
                bound.insert(0, (name, self.infer(f) if b.name != "tfull_like" else self.real_value(f)))
                f = Var(name, span=f.span)
            elif b.name == "tfull_like":
                bound.insert(0, (self.fresh_name("c"), self.real_value(f)))
                f = Var(bound[0][0], span=f.span)
        leaf = _LEAVES[b.name]
        parts = [Var(n, span=span) for n, _ in bound[len(bound) - len(structures):]]
        body = self.written_out(shape, parts, lambda xs, t: leaf(f if given else None, xs, t, span), b.name == "tsum",
                                span)
        with self.bind([(n, a.ty) for n, a in bound]):
            body = self.infer(body)
        for n, a in reversed(bound):
            body = Let(PVar(n, span=span), a, body, span=span, ty=body.ty)
        return body

    def settle_maps(self) -> None:
        """The structure maps that waited for the type of their structure, written out now
        (those they hold after them), each in the local scope of its place."""
        self.settling = True
        while self.maps:
            m = self.maps.pop(0)
            saved, self.locals = self.locals, dict(m.scope)
            try:
                term = self.write_map(m.prim, m.given, m.bound, m.structures, m.span)
            finally:
                self.locals = saved
            try:
                self._unify(m.result, term.ty)
            except _Mismatch:
                raise LamTypeError(f"'{m.prim.name}' gives {self.describe(term.ty)} here, but it is used as "
                                   f"{self.describe(m.result)}", m.span) from None
            self.written[m.mark] = term

    def real_value(self, t: Term) -> Term:
        """``t`` elaborated, checked to be a Real (the value of ``tfull_like``)."""
        e = self.infer(t)
        self.coerce(e.ty, REAL, t.span, "the value of 'tfull_like': ")
        return e

    def check_leaves(self, op: str, t: Type, span: Span | None, path: str) -> None:
        """A structure's leaves are Reals and Tensors, through records and tuples."""
        if t in (REAL, TENSOR) or (isinstance(t, TVar) and t.kind == "float"):
            return
        if isinstance(t, RecordType):
            for f, item in zip(t.fields, t.items):
                self.check_leaves(op, item, span, f"{path}.{f}")
            return
        if isinstance(t, TupleType):
            for i, item in enumerate(t.items):
                self.check_leaves(op, item, span, f"{path}[{i}]")
            return
        where = f"its leaf {path} is" if path else "it is"
        if isinstance(t, TVar):
            what = f"{where} of a type not known here (annotate it)"
        elif isinstance(t, ListType):
            what = f"{where} a list ({t}), whose length its type does not give (map over it)"
        else:
            what = f"{where} {_a(t)}"
        raise LamTypeError(f"'{op}' maps the Real and Tensor leaves of records and tuples, but {what}", span)

    def written_out(self, t: Type, parts: list[Term], leaf, summed: bool, span: Span | None) -> Term:
        """The source term that builds, or for ``summed`` adds up, ``leaf`` of the leaves
        of the structures ``parts`` (terms of the same shape ``t``)."""
        if isinstance(t, RecordType):
            items = [self.written_out(it, [Proj(p, f, span=span) for p in parts], leaf, summed, span)
                     for f, it in zip(t.fields, t.items)]
            return _summed(items, span) if summed else Record(t.fields, tuple(items), span=span)
        if isinstance(t, TupleType):
            names = [[self.fresh_name("x") for _ in t.items] for _ in parts]
            items = [self.written_out(it, [Var(ns[i], span=span) for ns in names], leaf, summed, span)
                     for i, it in enumerate(t.items)]
            body: Term = _summed(items, span) if summed else Tuple(tuple(items), span=span)
            for p, ns in reversed(list(zip(parts, names))):
                body = Let(PTuple(tuple(PVar(n, span=span) for n in ns), span=span), p, body, span=span)
            return body
        return leaf(parts, t)

    def arith(self, b: Primitive, args: list[Term], spans: list) -> Type:
        """Numeric operands joined: Int op Int is Int (if allowed), otherwise Real unless
        either side is a Tensor."""
        kind = "num" if b.ints else "float"
        if len(args) == 2:  # two operands of one known type: of that type (what the rest finds, sooner)
            left = self.resolve(args[0].ty)
            if left is self.resolve(args[1].ty) and left is not INT_TENSOR and left in _NUMERIC[kind]:
                return left
        if b.name == "add" and any(self.resolve(a.ty) == GRAD for a in args):
            for a, sp in zip(args, spans):
                self.coerce(a.ty, GRAD, sp, "argument of '+' on gradients: ")
            return GRAD
        types = []
        for a, sp in zip(args, spans):
            t = self.resolve(a.ty)
            try:
                if t.__class__ is not TVar:  # what unifying it with a fresh variable of the kind checks
                    if t not in _NUMERIC[kind]:
                        raise _Mismatch
                else:
                    self._unify(t, self.fresh(kind))
            except _Mismatch:
                found = self.describe(a.ty)
                hint = " (convert with 'real')" if found in ("Int", "IntTensor") else ""
                raise LamTypeError(f"argument of '{b.surface}': expected {_KIND_TEXT[kind]}, "
                                   f"found {found}{hint}", sp) from None
            types.append(self.resolve(t))
        if INT_TENSOR in types:
            return self.integer_arrays(b, types, spans)
        left, right = types
        if isinstance(left, TVar) and isinstance(right, TVar):
            self._unify(left, right)
            return self.resolve(left)
        if TENSOR in types:
            for t in types:
                if t == INT:
                    i = types.index(INT)
                    raise LamTypeError(f"argument of '{b.surface}': expected Real or Tensor, found Int "
                                       "(convert with 'real')", spans[i])
                if isinstance(t, TVar):
                    self._unify(t, TENSOR)
            return TENSOR
        known = left if not isinstance(left, TVar) else right
        other = right if known is left else left
        if known == REAL and isinstance(other, TVar):
            # Real op 'a is 'a for 'a in {Real, Tensor}: leave 'a open, it may still be a Tensor
            # (\x. x + 1.0 applied to a Tensor); it defaults to Real if nothing settles it.
            self._unify(other, self.fresh("float"))
            return self.resolve(other)
        try:
            self._unify(left, known)
            self._unify(right, known)
        except _Mismatch:
            i = types.index(INT)
            hint = " (convert with 'real')"
            raise LamTypeError(f"argument of '{b.surface}': expected Real, found Int{hint}", spans[i]) from None
        return known

    def integer_arrays(self, b: Primitive, types: list[Type], spans: list) -> Type:
        """Arithmetic with an ``IntTensor`` operand: the others are Ints (broadcast) or
        IntTensors, and so is the result; a number not yet known is an Int."""
        for t, sp in zip(types, spans):
            if isinstance(t, TVar):
                self._unify(t, INT)
            elif t not in (INT, INT_TENSOR):
                raise LamTypeError(f"argument of '{b.surface}': an IntTensor combines with Ints and IntTensors, "
                                   f"found {self.describe(t)} (convert with 'real' or 'int')", sp)
        return INT_TENSOR

    def overloaded(self, b: Primitive, args: list[Term], spans: list) -> Type:
        """The result of an overloaded primitive (``typing="overloaded"``): that of the first
        of its signatures the argument types fit.  While an argument's type is not known
        and several signatures remain, the choice waits for the end of the definition
        (:meth:`settle`), when numbers not known otherwise are defaulted; the result is known
        at once if those signatures agree on it (``i % 2`` for an IntTensor ``i``)."""
        types = [self.resolve(a.ty) for a in args]
        if not any(isinstance(t, TVar) for t in types):
            return self.signature(b, args, spans)[1]
        candidates = [(ps, r) for ps, r in b.signatures
                      if all(self.could_be(t, p) for t, p in zip(types, ps))]
        if len(candidates) == 1:
            params, result = candidates[0]
            for a, p, sp in zip(args, params, spans):
                self.coerce(a.ty, p, sp, f"argument of '{b.surface}': ")
            return result
        if not candidates:
            self.signature(b, args, spans)  # raises, saying what is accepted
        results = {r for _, r in candidates}
        result = results.pop() if len(results) == 1 else self.fresh()
        self.overloads.append((b, args, result, spans))
        return result

    def from_context(self, b: Primitive, args: list[Term], spans: list, span: Span | None) -> Type:
        """The result of a primitive typed by its context (``typing="context"``:
        ``load_params``, which reads a value of whatever type the program expects): its
        arguments are as its scheme says, and its result is a variable that what is
        around it must determine, an annotation most often, by the end of the definition
        (:meth:`settle_contextual`)."""
        for a, p, sp in zip(args, b.params, spans):
            self.coerce(a.ty, p, sp, f"argument of '{b.surface}': ")
        result = self.fresh()
        self.contextual.append((b, result, span))
        return result

    def settle_contextual(self) -> None:
        """Each result typed by its context is known now, before any number is defaulted
        (a result used as a number could be a Real or a Tensor: the program must say),
        and is data, which a file can hold: no function."""
        for b, t, span in self.contextual:
            t = self.zonk(t)
            if _free_type_vars(t):
                raise LamTypeError(f"'{b.surface}' reads a value of the type its context expects, and nothing here "
                                   f"says which ({self.describe(t)}): annotate it, as in ({b.surface} \"w.npz\" : Tensor * Tensor)",
                                   span)
            bad = not_data(t)
            if bad is not None:
                raise LamTypeError(f"'{b.surface}' reads data (numbers, arrays, text, and tuples and lists of "
                                   f"them), not functions: here it would give a {t}", span)

    # ----------------------------------------------------------------- indexing

    def index(self, b: Primitive, args: list[Term], spans: list, span: Span | None) -> Type:
        """``x[…]`` (``index``), ``x[…] := v`` (``index_set``) and ``x[…] += v``
        (``index_add``): what is indexed chooses the rule — an array, a list, a tuple
        (:meth:`indexed`).  While its type is not known (a lambda's parameter), the choice
        waits for the end of the definition (:meth:`settle`); the result of an update is
        the updated value's type, that of an index a variable until then."""
        if not (isinstance(args[0], Lit) and isinstance(args[0].value, str)):
            raise LamTypeError(f"'%{b.name}' takes its index as a literal string: write x[…]", spans[0])
        try:
            positions = parse_spec(args[0].value)
        except ValueError as e:
            raise LamTypeError(str(e), spans[0]) from None
        target = self.resolve(args[1].ty)
        if isinstance(target, TVar) and target.kind == "float":  # Real or Tensor: a Real has no index
            self._unify(target, TENSOR)
        result = args[1].ty if b.name in UPDATES else self.fresh()
        pending = _Indexing(b, positions, args, spans, span, result)
        if isinstance(self.resolve(args[1].ty), TVar):
            self.indexings.append(pending)
        else:
            self.indexed(pending)
        return result

    def indexed(self, ix: _Indexing) -> None:
        """Type an index of a value of known type: an array keeps its type (``x[i]`` of a
        vector is a 0-d Tensor: the rank is not part of the type), a list gives an
        element or a list, a tuple the component an integer literal names."""
        target = self.resolve(ix.args[1].ty)
        surface = UPDATES.get(ix.prim.name)
        if surface is not None and target not in _ARRAYS:
            raise LamTypeError(f"'{surface}' updates a Tensor, an IntTensor or a BoolTensor, found "
                               f"{self.describe(target)}", ix.args[1].span)
        if target in _ARRAYS:
            result = self.array_index(ix, target)
        elif isinstance(target, ListType):
            result = self.list_index(ix, target)
        elif isinstance(target, TupleType):
            result = self.tuple_index(ix, target)
        else:
            what = "a value whose type is not known here (annotate it)" if isinstance(target, TVar) and \
                target.kind == "any" else self.describe(target)
            hint = f" (a record's field is written r.{target.fields[0]})" if isinstance(target, RecordType) else ""
            raise LamTypeError(f"cannot index {what}: tensors, lists and tuples are indexed{hint}", ix.args[1].span)
        try:
            self._unify(ix.result, result)
        except _Mismatch:
            raise LamTypeError(f"this index is {self.describe(result)}, but is used as "
                               f"{self.describe(ix.result)}", ix.span) from None

    def index_part_types(self, ix: _Indexing) -> list[tuple[Type, Span | None]]:
        """The types of the values an index holds, with where each is written: one value
        is the parts argument itself, several a tuple of them."""
        parts, span = ix.args[2], ix.spans[2]
        count = part_count(ix.positions)
        if count == 1:
            return [(parts.ty, span)]
        if isinstance(parts, Tuple) and len(parts.items) == count:
            return [(i.ty, i.span) for i in parts.items]
        expected = TupleType(tuple(self.fresh() for _ in range(count))) if count else UNIT
        self.coerce(parts.ty, expected, span, f"the parts of '%{ix.prim.name}': ")
        return [(t, span) for t in self.resolve(expected).items] if count else []

    def array_index(self, ix: _Indexing, target: Type) -> Type:
        """An index into an array: each value an Int, an IntTensor (a gather) or a
        BoolTensor (a mask), each slice bound an Int; an update's value is of the array's
        type or its elements'.  The index is of the array's type."""
        parts = iter(self.index_part_types(ix))
        for position in ix.positions:
            if position == PART:
                self.index_value(*next(parts))
            elif isinstance(position, Slice):
                for _ in range(position.start + position.stop + position.step):
                    t, span = next(parts)
                    self.coerce(t, INT, span, "a slice bound: ")
        if ix.prim.name in UPDATES:
            self.update_value(ix, target)
        return target

    def index_value(self, t: Type, span: Span | None) -> None:
        """An index at one position: an Int (an integer literal is one), an IntTensor or
        a BoolTensor; a variable not known yet is checked at the end of the definition."""
        r = self.resolve(t)
        if isinstance(r, TVar) and r.kind in ("num", "zero"):
            self._unify(r, INT)
        elif isinstance(r, TVar) and r.kind == "any":
            self.index_parts.append((t, span))
        elif r not in (INT, INT_TENSOR, BOOL_TENSOR):
            hint = " (convert with 'int')" if self.describe(r) in ("Real", "Tensor", _KIND_TEXT["float"]) else ""
            raise LamTypeError(f"an index is an Int, an IntTensor or a BoolTensor, found {self.describe(r)}{hint}",
                               span)

    def update_value(self, ix: _Indexing, target: Type) -> None:
        """The value of ``x[…] := v`` or ``x[…] += v``: an array of ``x``'s type or one of
        its elements (a Real into a Tensor), broadcast to the indexed shape at run time;
        ``+=`` adds, so it takes no BoolTensor."""
        value, span, surface = ix.args[3], ix.spans[3], UPDATES[ix.prim.name]
        if target == BOOL_TENSOR and surface == "+=":
            raise LamTypeError("'+=' adds numbers, and a BoolTensor holds truth values: use ':='", ix.span)
        element = next(s for s, a in ARRAY_OF.items() if a == target)
        v = self.resolve(value.ty)
        if isinstance(v, TVar):
            self.coerce(v, element if target != TENSOR else TENSOR, span, f"the value of '{surface}': ")
        elif v not in (target, element):
            raise LamTypeError(f"the value of '{surface}' into {_a(target)} is {_a(target)} or {_a(element)}, "
                               f"found {self.describe(v)}", span)

    def list_index(self, ix: _Indexing, target: ListType) -> Type:
        """``xs[i]``, an element (Python's rules: a negative index counts from the end), or
        ``xs[a:b:s]``, a list."""
        if len(ix.positions) != 1 or ix.positions[0] == ELLIPSIS:
            raise LamTypeError("a list is indexed at one position: xs[i] or xs[a:b] "
                               "(xs[i][j] for a list of lists)", ix.spans[0])
        for t, span in self.index_part_types(ix):
            self.coerce(t, INT, span, "a list's index: ")
        return target.elem if ix.positions[0] == PART else target

    def tuple_index(self, ix: _Indexing, target: TupleType) -> Type:
        """``t[k]``, the component an integer literal ``k`` names (``-1`` the last)."""
        k = _integer_literal(ix.args[2])
        if ix.positions != (PART,) or k is None:
            raise LamTypeError("a tuple is indexed by an integer literal: t[0], t[-1]", ix.spans[0])
        n = len(target.items)
        if not -n <= k < n:
            raise LamTypeError(f"index {k} is out of range for a tuple of {n} components", ix.spans[2])
        self._unify(ix.args[2].ty, INT)
        return target.items[k]

    def settle_indexings(self, final: bool) -> None:
        """The indexes that waited for the type of what they index: those known now are
        typed; with ``final``, one still unknown is an error."""
        waiting, self.indexings = self.indexings, []
        for ix in waiting:
            if final or not isinstance(self.resolve(ix.args[1].ty), TVar):
                self.indexed(ix)
            else:
                self.indexings.append(ix)

    def could_be(self, t: Type, param: Type) -> bool:
        """Whether a value of the type ``t``, which may be a variable or hold some (the
        ``List 'n`` of ``[2, 0, 1]``), could be passed for ``param``."""
        t = self.resolve(t)
        if isinstance(t, TVar):
            return t.kind == "any" or param in _NUMERIC[t.kind]
        if isinstance(t, ListType) and isinstance(param, ListType):
            return self.could_be(t.elem, param.elem)
        if isinstance(t, PRODUCTS) and isinstance(param, PRODUCTS):
            return same_shape(t, param) and all(map(self.could_be, t.items, param.items))
        return signature_fits(param, t)

    def signature(self, b: Primitive, args: list[Term], spans: list) -> tuple[tuple[Type, ...], Type]:
        """The signature of ``b`` that arguments of known types fit (a number not known
        otherwise is defaulted: :meth:`default`, or an Int where only an Int fits, as in
        ``real (x + 1)`` with Real numbers), the arguments coerced to it; an error saying what
        ``b`` takes if none does."""
        for i, a in enumerate(args):
            t = self.resolve(a.ty)
            if (isinstance(t, TVar) and t.kind in ("num", "zero")
                    and not any(signature_fits(p, self.number) for p in accepted_types(b, i))):
                self.subst[t.id] = INT
            self.default(t)
        found = signature_for(b, tuple(self.zonk(a.ty) for a in args))
        if found is None:
            for i, (a, sp) in enumerate(zip(args, spans)):
                accepted = [str(t) for t in accepted_types(b, i)]
                if not any(signature_fits(p, self.zonk(a.ty)) for p in accepted_types(b, i)):
                    expected = ", ".join(accepted[:-1]) + " or " + accepted[-1] if len(accepted) > 1 else accepted[0]
                    raise LamTypeError(f"argument of '{b.surface}': expected {expected}, "
                                       f"found {self.describe(a.ty)}", sp)
            accepted = "; ".join(" -> ".join(map(str, ps + (r,))) for ps, r in b.signatures)
            given = ", ".join(self.describe(a.ty) for a in args)
            span = spans[0].to(spans[-1]) if spans[0] and spans[-1] else spans[0]
            raise LamTypeError(f"'{b.surface}' is not defined on {given}: it takes {accepted}", span)
        for a, p, sp in zip(args, found[0], spans):
            self.coerce(a.ty, p, sp, f"argument of '{b.surface}': ")
        return found

    def sum_apply(self, args: list[Term], spans: list) -> Type:
        """``sum_apply bps cts : d`` applies each linear function of ``bps : List (A ⊸ d)``
        to its cotangent in ``cts``.  As at an application of a linear function, the
        cotangents of a promoted Real may be 0-d Tensors: ``cts : List Tensor`` for
        ``A = Real`` (the rules for ``stack`` and ``concat`` of Reals send them)."""
        dom, elem = self.fresh(), self.fresh()
        self.coerce(args[0].ty, ListType(LinType(dom, GRAD)), spans[0], "argument of 'sum_apply': ")
        self.coerce(args[1].ty, ListType(elem), spans[1], "argument of 'sum_apply': ")
        if not self.promoted(elem, dom):
            self.coerce(args[1].ty, ListType(dom), spans[1], "argument of 'sum_apply': ")
        return GRAD

    def ad(self, op: str, marks: str, args: list[Term], spans: list) -> Type:
        """``grad f : A -> ct(A)``, ``value_and_grad f : A -> Real * ct(A)`` for
        ``f : A -> Real`` — or ``f : A -> Tensor``, whose result must then be 0-d at run
        time, as in JAX (a non-scalar loss is a checked run-time error, docs/differentiation.md);
        ``vjp f x : B * (ct(B) ⊸ ct(A))`` and ``jvp f x dx : B * ct(B)`` with ``dx : ct(A)``
        for ``f : A -> B``.  An operator marked by transforms (``grad'f``, see
        :attr:`lamad.syntax.Prim.marks`) has the transformed type: its function returns
        →D(Real) where ``grad``'s returns Real, →D(Tensor) where it returns a Tensor."""
        f = args[0]
        fty = self.resolve(f.ty)
        if not isinstance(fty, FunType):
            raise LamTypeError(f"'{op}' differentiates a function, found {self.describe(f.ty)}", spans[0])
        if op in ("vjp", "jvp"):
            self.coerce(args[1].ty, fty.dom, spans[1], f"the point of '{op}': ")
        dom, cod = fty.dom, self.resolve(fty.cod)
        ct_dom = self.cotangent(dom, spans[0], "argument", marks, op)
        if op == "vjp":
            return TupleType((cod, LinType(self.cotangent(cod, spans[0], "result", marks), ct_dom)))
        if op == "jvp":
            self.coerce(args[2].ty, ct_dom, spans[2], "the tangent of 'jvp': ")
            return TupleType((cod, self.cotangent(cod, spans[0], "result", marks)))
        if isinstance(cod, FunType):
            raise LamTypeError(f"'{op}' needs a function of one argument returning Real, found "
                               f"{self.describe(fty)}; for several arguments take a tuple: "
                               f"{op} (\\(x, y). f x y)", spans[0])
        real = marked_type(REAL, marks)
        try:
            if not marks:
                self._unify(cod, self.fresh("float"))
            elif self.zonk(cod) != marked_type(TENSOR, marks):  # a 0-d Tensor, transformed
                self._unify(cod, real)
        except _Mismatch:
            raise LamTypeError(f"'{op}' needs a function returning {real}, found {self.describe(fty)} "
                               "(use vjp for other results)", spans[0]) from None
        result = ct_dom if op == "grad" else TupleType((real, ct_dom))
        return FunType(dom, result)

    def derived(self, b: Primitive, args: list[Term], span: Span | None) -> Term:
        """``hvp``, ``hessian``, ``jacfwd`` and ``jacrev``, written with ``grad``, ``jvp`` and
        ``vjp`` (their records' ``derived`` rules): the rule for the function's argument and
        result types, its variables fresh, bound to the arguments by ``let``."""
        op = b.name
        fty = self.resolve(args[0].ty)
        if not isinstance(fty, FunType):
            raise LamTypeError(f"'{op}' differentiates a function, found {self.describe(args[0].ty)}", span)
        self.coerce(args[1].ty, fty.dom, args[1].span, f"the point of '{op}': ")
        dom, cod = self.zonk(fty.dom), self.zonk(fty.cod)
        rules = b.derived_terms
        if op != "hvp" and (leaves(dom) is None or leaves(cod) is None or (op == "hessian" and cod != REAL)):
            raise LamTypeError(f"'{op}' needs a function from Real or Tensor (or records and tuples of them) to "
                               f"{'Real' if op == 'hessian' else 'Real or Tensor (or records and tuples of them)'}, "
                               f"found {self.describe(fty)}", span)
        if op != "hvp" and not (dom in (REAL, TENSOR) and cod in (REAL, TENSOR)):
            return self.structured(op, args, dom, cod, span)
        rule = rules[0] if op == "hvp" else rules[(dom if op != "jacrev" else cod) == TENSOR]
        params = []
        while isinstance(rule, Lam):
            params.append(rule.param.name)
            rule = rule.body
        fresh = {p: self.fresh_name(p) for p in params}
        body = instantiate(rule, {p: Var(n, span=span) for p, n in fresh.items()}, self.fresh_name, span, typed=False)
        with self.bind([(fresh[p], a.ty) for p, a in zip(params, args)]):
            body = self.infer(body)
        for p, a in reversed(list(zip(params, args))):
            body = Let(PVar(fresh[p]), a, body, span=span, ty=body.ty)
        return body

    def structured(self, op: str, args: list[Term], dom: Type, cod: Type, span: Span | None) -> Term:
        """``jacfwd``, ``jacrev`` and ``hessian`` of a function of (or into) records and tuples:
        the structure of the result of structures of the argument (lamad/jacobians.py);
        the Hessian is ``jacfwd`` of ``grad``, as for a Tensor."""
        f, x = self.fresh_name("f"), self.fresh_name("x")
        if op == "hessian":
            body: Term = App(App(Var("%jacfwd", span=span), App(Var("%grad", span=span), Var(f, span=span),
                                                                span=span), span=span), Var(x, span=span), span=span)
        else:
            write = jacobians.jacfwd if op == "jacfwd" else jacobians.jacrev
            body = write(Var(f, span=span), Var(x, span=span), dom, cod, self.fresh_name, span)
        with self.bind([(f, args[0].ty), (x, args[1].ty)]):
            body = self.infer(body)
        for name, a in ((x, args[1]), (f, args[0])):
            body = Let(PVar(name), a, body, span=span, ty=body.ty)
        return body

    def cotangent(self, t: Type, span: Span | None, what: str, marks: str = "", op: str = "") -> Type:
        """``ct(t)``, or a variable standing for it until ``t`` is known, which
        :meth:`settle` then solves."""
        if _free_type_vars(self.zonk(t)):
            v = self.fresh()
            self.deferred.append((t, v, span, what, marks, op))
            return v
        return self._cotangent(t, span, what, marks, op)

    def _cotangent(self, t: Type, span: Span | None, what: str, marks: str = "", op: str = "") -> Type:
        try:
            ct = cotangent_type(self.zonk(t), marked=bool(marks))
        except ValueError as e:
            raise LamTypeError(f"cannot differentiate with respect to this function's {what}: {e}", span) from None
        if op in ("grad", "value_and_grad") and not marks and not _has_real(ct):
            # as JAX refuses integer inputs; () stays the cotangent of discrete parts beside reals
            raise LamTypeError(f"'{op}' differentiates with respect to reals, but this function's argument is "
                               f"{self.describe(t)}, which has no gradient: only Real and Tensor parts have one", span)
        return ct

    def compare(self, op: str, args: list[Term], span: Span | None) -> Type:
        left, right = args
        if _ARRAYS & {self.resolve(left.ty), self.resolve(right.ty)}:
            return self.compare_arrays(op, args, span)
        allowed = (INT, REAL, BOOL) if op in ("eq", "ne") else (INT, REAL)
        try:
            self._unify(left.ty, right.ty)
        except _Mismatch:
            raise LamTypeError(f"'{PRIMITIVES[op].surface}' compares values of one type, found {self.describe(left.ty)} "
                               f"and {self.describe(right.ty)}", span) from None
        t = self.resolve(left.ty)
        if isinstance(t, TVar):
            # a literal, or a value whose type is settled later: a number, defaulted as :meth:`default` says
            self._unify(t, self.fresh("num") if t.kind != "float" else REAL)
            return BOOL
        if t not in allowed:
            what = " or ".join(a.name for a in allowed)
            raise LamTypeError(f"'{PRIMITIVES[op].surface}' compares {what} values, found {self.describe(t)}", span)
        return BOOL

    def compare_arrays(self, op: str, args: list[Term], span: Span | None) -> Type:
        """A comparison of arrays, elementwise: the operands are arrays of one type or its
        scalars (broadcast), and the result a ``BoolTensor``; only ``==`` and ``!=`` compare
        ``BoolTensor``s."""
        types = [self.resolve(a.ty) for a in args]
        array = next(t for t in types if t in _ARRAYS)
        scalar = next(s for s, a in ARRAY_OF.items() if a == array)
        surface = PRIMITIVES[op].surface
        if array == BOOL_TENSOR and op not in ("eq", "ne"):
            raise LamTypeError(f"'{surface}' does not compare BoolTensors (only '==' and '!=' do)", span)
        for t, a in zip(types, args):
            if isinstance(t, TVar):
                try:
                    self._unify(t, scalar)
                except _Mismatch:
                    pass
                t = self.resolve(t)
            if t not in (array, scalar):
                raise LamTypeError(f"'{surface}' compares {array}s with {array}s or with their elements' type "
                                   f"{scalar}, found {self.describe(t)} (convert with 'real' or 'int')", a.span)
        return BOOL_TENSOR

    # ----------------------------------------------------------------- after inference

    def default(self, t: Type, unknown: Type | None = None) -> bool:
        """Settle the variables left in ``t``: numbers default to :attr:`number` (Int, or
        Real where the term is to be differentiated), floats to Real, and the others to
        ``unknown`` when it is given.  Returns whether ``t`` is ground now."""
        t = self.resolve(t)
        if t.__class__ is Base or id(t) in self._ground or id(t) in self._zonked:
            return True
        if isinstance(t, TVar):
            if t.kind in ("num", "zero"):
                self.subst[t.id] = self.number
            elif t.kind == "float":
                self.subst[t.id] = REAL
            elif unknown is not None:
                self.subst[t.id] = unknown
                return self.ground(unknown)
            else:
                return False
            return True
        if isinstance(t, PRODUCTS):
            ground = all([self.default(i, unknown) for i in t.items])
        elif isinstance(t, (FunType, LinType)):
            ground = self.default(t.dom, unknown) & self.default(t.cod, unknown)
        elif isinstance(t, ListType):
            ground = self.default(t.elem, unknown)
        else:
            return True
        if ground:
            self._ground[id(t)] = t
        return ground

    def settle(self, term: Term) -> None:
        """Choose the signatures of the overloaded applications that waited (before the
        numbers their results were used with are defaulted: ``real 1 < 2`` compares Reals),
        default the number variables left in an elaborated term, then solve the cotangent
        types that waited for them."""
        self.settle_indexings(final=False)
        self.settle_projections(final=False)
        self.settle_maps()
        self.settle_contextual()
        self.settle_overloads()
        stack = [term]
        while stack:
            node = stack.pop()
            self.default(node.ty)
            stack.extend(children(node))
        self.settle_indexings(final=True)
        self.settle_projections(final=True)
        for t, span in self.index_parts:
            if isinstance(self.resolve(t), TVar):  # nothing says what it is: an Int
                self._unify(t, INT)
            self.index_value(t, span)
        for t, v, span, what, marks, op in self.deferred:
            self.default(t)
            ct = self._cotangent(t, span, what, marks, op)
            try:
                self._unify(v, ct)
            except _Mismatch:
                raise LamTypeError(f"the gradient has type {ct} but is used as {self.describe(v)}", span) from None
        self.specialise_uses()

    def settle_overloads(self) -> None:
        """The signature of each overloaded application whose choice waited for the types of
        its arguments (a number not known otherwise defaulted: :meth:`default`), and its result's type."""
        for b, args, v, spans in self.overloads:
            result = self.signature(b, args, spans)[1]
            try:
                self._coerce(result, v)  # a Real result may have been used as a Tensor
            except _Mismatch:
                span = spans[0].to(spans[-1]) if spans[0] and spans[-1] else spans[0]
                raise LamTypeError(f"'{b.surface}' gives {result} here, but it is used as {self.describe(v)}",
                                   span) from None

    def finish(self, term: Term) -> Term:
        """Substitute every type in a settled term; integer literals typed Real or Tensor
        become real literals."""
        return self._zonk_term(term)

    def _zonk_term(self, t: Term) -> Term:
        if t.__class__ is not Let:
            return self._zonk_node(map_children(t, self._zonk_term))
        chain, body = let_chain(t)
        result = self._zonk_node(map_children(body, self._zonk_term))
        for let in reversed(chain):
            bound = self._zonk_term(let.bound)
            same = bound is let.bound and result is let.body
            result = self._zonk_node(let if same else update(let, bound=bound, body=result))
        return result

    def _zonk_node(self, t: Term) -> Term:
        # What is still unknown is observed by nothing: e.g. the element type of an unused [],
        # or of the pairs of '\acc (a, b). acc' folded over one.  The passes after the
        # checker (←D above all) need every type known, at every depth.
        if self.specialised and t.__class__ is Var and t.name in self.specialised:
            t = update(t, name=self.specialised[t.name])
        if self.written and t.__class__ is Var and t.name in self.written:
            return self._zonk_term(self.written[t.name])
        known = t.ty
        if known.__class__ is Base and t.__class__ is not Lit and not (known is GRAD and t.__class__ is Prim):
            return t  # final already, and no literal or sum of gradients to rewrite
        self.default(t.ty, unknown=UNIT)
        ty = self.zonk(t.ty)
        if isinstance(t, Lit) and isinstance(t.value, int) and not isinstance(t.value, bool) and ty in (REAL, TENSOR):
            try:
                return Lit(float(t.value), span=t.span, ty=ty)
            except OverflowError:
                size = abs(t.value)  # Python's str refuses ints of over 4,300 digits: estimate those
                digits = len(str(size)) if size.bit_length() < 14_000 else int(size.bit_length() * 0.30103) + 1
                raise LamTypeError(f"this integer is too large to be a {ty} ({digits} digits; "
                                   "the largest real is about 1.8e308)", t.span) from None
        if isinstance(t, Lit) and type(t.value) is int and ty == INT and not INT_MIN <= t.value <= INT_MAX:
            raise LamTypeError("this Int literal is outside Int's 64-bit range (-2**63 … 2**63 - 1); "
                               "write it with a decimal point for a Real", t.span)
        if isinstance(t, Prim) and t.op == "index" and isinstance(t.args[1].ty, (ListType, TupleType)):
            return self.elaborate_index(update(t, ty=ty))
        if ty == GRAD and isinstance(t, Lit):
            return DZero(span=t.span, ty=GRAD)
        if ty == GRAD and isinstance(t, Prim) and t.op == "add":
            return DAdd(*t.args, span=t.span, ty=GRAD)
        return t if ty is t.ty else update(t, ty=ty)


    def elaborate_index(self, t: Prim) -> Term:
        """An index of a list is ``index_list``; of a tuple, the pattern that takes the
        component out: ``t[1]`` of a triple is ``let (_, v, _) = t in v``."""
        target = t.args[1]
        if isinstance(target.ty, ListType):
            return update(t, op="index_list")
        n, k = len(target.ty.items), _integer_literal(t.args[2])
        name = self.fresh_name("x")
        pattern = PTuple(tuple(PVar(name, span=t.span) if i == k % n else PWild(span=t.span) for i in range(n)),
                         span=t.span)
        return Let(pattern, target, Var(name, span=t.span, ty=t.ty), span=t.span, ty=t.ty)


@dataclass(frozen=True)
class _Map:
    """A structure map waiting for its structure's type: its mark, the primitive, its
    function or value (source), its structures (elaborated, with the names they are bound
    to, and as written), the local scope at its place, its span and its result's type."""

    mark: str
    prim: Primitive
    given: list[Term]
    bound: list[tuple[str, Term]]
    structures: list[Term]
    scope: dict[str, Type]
    span: Span | None
    result: Type


@dataclass(frozen=True)
class _Indexing:
    """An index being typed: the primitive (``index``, ``index_set``, ``index_add``), the
    positions its spec describes, its elaborated arguments, their spans, its span, and
    the type its result was given."""

    prim: Primitive
    positions: tuple[IndexItem, ...]
    args: list[Term]
    spans: list
    span: Span | None
    result: Type


def _apply_to(f: Term, parts: list[Term], span: Span | None) -> Term:
    """``f x1 … xn``."""
    for p in parts:
        f = App(f, p, span=span)
    return f


def _summed(items: list[Term], span: Span | None) -> Term:
    """``t1 + … + tn``."""
    total = items[0]
    for item in items[1:]:
        total = Prim("add", (total, item), span=span)
    return total


_LEAVES = {
    "tmap": lambda f, xs, t, span: _apply_to(f, xs, span),
    "tmap2": lambda f, xs, t, span: _apply_to(f, xs, span),
    "tsum": lambda f, xs, t, span: xs[0] if t == REAL else Prim("sum", (xs[0],), span=span),
    "tzeros_like": lambda f, xs, t, span: Prim("zeros_like", (xs[0],), span=span),
    "tfull_like": lambda f, xs, t, span: f if t == REAL else Prim("mul", (f, Prim("ones_like", (xs[0],), span=span)),
                                                                  span=span),
}
"""What each structure map makes of a leaf of type ``t`` of its structures ``xs``, with its
function or value ``f``."""


def _alike(a: Type, b: Type) -> bool:
    """Whether two structures have the same shape: the same records and tuples, with a Real
    or Tensor at each leaf of both."""
    if same_shape(a, b):
        return all(_alike(x, y) for x, y in zip(a.items, b.items))
    leaf = (REAL, TENSOR)
    return (a in leaf or isinstance(a, TVar)) and (b in leaf or (isinstance(b, TVar) and b.kind == "float"))


def _last(span: Span | None, width: int) -> Span | None:
    """The last ``width`` characters of a span: the field of ``t.w``, which ends it."""
    if span is None:
        return None
    return Span(span.end - width, span.end, span.end_line, span.end_column - width, span.end_line, span.end_column,
                span.source)


def _close(name: str, known) -> str:
    """``; did you mean 'x'?`` for the known name closest to a misspelt one."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def component_pairs(a: Type, b: Type) -> list[tuple[Type, Type]]:
    """The components of two types built alike, side by side: the items of tuples or
    records of the same shape, the elements of lists, the domains and codomains of
    functions; none for other types."""
    if same_shape(a, b):
        return list(zip(a.items, b.items))
    if isinstance(a, ListType) and isinstance(b, ListType):
        return [(a.elem, b.elem)]
    if type(a) is type(b) and isinstance(a, (FunType, LinType)):
        return [(a.dom, b.dom), (a.cod, b.cod)]
    return []


def _fields_differ(actual: Type, expected: Type) -> str:
    """Where a record was given for another, the fields it lacks or has too many: the
    first pair of records with different fields at the same place in the two types."""
    if isinstance(actual, RecordType) and isinstance(expected, RecordType):
        if actual.fields != expected.fields:
            missing = [f for f in expected.fields if f not in actual.fields]
            extra = [f for f in actual.fields if f not in expected.fields]
            parts = [f"no field {', '.join(repr(f) for f in missing)}"] if missing else []
            parts += [f"a field {', '.join(repr(f) for f in extra)} it should not have"] if extra else []
            return f" (the record has {' and '.join(parts)})"
    for a, e in component_pairs(actual, expected):
        hint = _fields_differ(a, e)
        if hint:
            return hint
    return ""


def _a(t: Type) -> str:
    """A type's name with its article: ``a Tensor``, ``an Int``."""
    return ("an " if str(t)[0] in "AEIOU" else "a ") + str(t)


def _integer_literal(t: Term) -> int | None:
    """The value of an integer literal, negated or not (``2``, ``-1``)."""
    sign = 1
    while isinstance(t, Prim) and t.op == "neg" and len(t.args) == 1:
        t, sign = t.args[0], -sign
    return sign * t.value if isinstance(t, Lit) and type(t.value) is int else None


def accepted_types(b: Primitive, i: int) -> list[Type]:
    """The types an overloaded primitive takes as its argument ``i``, in order."""
    return list(dict.fromkeys(ps[i] for ps, _ in b.signatures))


def _meet(k1: str, k2: str) -> str:
    """The kind of a variable that must be of both kinds (they are nested)."""
    return k1 if _KIND_RANK[k1] >= _KIND_RANK[k2] else k2


def _has_real(t: Type) -> bool:
    """Whether a cotangent type has a Real or Tensor part."""
    if t in (REAL, TENSOR):
        return True
    if isinstance(t, PRODUCTS):
        return any(_has_real(i) for i in t.items)
    if isinstance(t, ListType):
        return _has_real(t.elem)
    return isinstance(t, LinType)


def _free_type_vars(t: Type) -> bool:
    if isinstance(t, TVar):
        return True
    if isinstance(t, PRODUCTS):
        return any(_free_type_vars(i) for i in t.items)
    if isinstance(t, (FunType, LinType)):
        return _free_type_vars(t.dom) or _free_type_vars(t.cod)
    if isinstance(t, ListType):
        return _free_type_vars(t.elem)
    return False


def check_def(d: Def, globals_: Mapping[str, Type], later: Container[str] = frozenset(),
              scope: Scope | None = None, sink: Instances | None = None,
              type_params: Mapping[str, Type] | None = None) -> tuple[Type, Term]:
    """Type-check one definition against the types of those above it, in ``scope``; the
    specialisations of the templates it uses go to ``sink``.  ``type_params`` are what a
    template's type variables stand for, when ``d`` is a template being specialised."""
    seen: set[str] = set()
    for p in d.params:
        if p.name in seen:
            raise LamTypeError(f"'{d.name}' has two parameters named '{p.name}'", p.span)
        seen.add(p.name)
    if scope is not None and d.name in scope.modules:
        raise LamTypeError(f"'{d.name}' is the name of an imported module; give the definition another name "
                           f"(or the module another, with 'as')", d.name_span or d.span)
    checker = Checker(globals_, later, scope, sink, type_params)
    checker.defining = d.name
    term = d.as_term()
    checker.used = term_names(term)
    term = checker.infer(term)
    checker.settle(term)
    ty = checker.zonk(term.ty)
    if _free_type_vars(ty):
        raise LamTypeError(f"the type of '{d.name}' is not fully determined ({ty}); add a type annotation",
                           d.name_span or d.span)
    return ty, checker.finish(term)


def typecheck(program: Program, globals_: Mapping[str, Type] | None = None, scope: Scope | None = None) -> TypedProgram:
    """Check every definition in order (each may use only those above it), in time linear
    in their number: nothing is copied or scanned per definition.  ``scope`` holds the
    modules the program's imports loaded (lamad/modules.py) and the aliases they give; the
    program's own aliases are added to it, each expanded in the scope of those above it."""
    scope = aliases(program, scope or Scope())
    for imp in program.imports:
        if imp.name not in scope.modules:
            raise LamTypeError(f"the module '{imp.name}' is not loaded here: lamad.load and lamad.loads load the "
                               "modules a program imports", imp.span)
    types: dict[str, Type] = dict(globals_ or {})
    terms: dict[str, Term] = {}
    sink = Instances(types, terms)
    last: dict[str, int] = {}  # each name's last position: a name is below i if last > i
    for i, d in enumerate(program.defs):
        last[d.name] = i
    for i, d in enumerate(program.defs):
        if d.name in terms or d.name in scope.templates:
            raise LamTypeError(f"'{d.name}' is already defined above", d.name_span or d.span)
        if is_generic(d):
            scope = replace(scope, templates={**scope.templates, d.name: template(d, types, _Below(last, i), scope)})
            continue
        ty, term = check_def(d, types, _Below(last, i), scope, sink)
        types[d.name], terms[d.name] = ty, term
    own = {name: types[name] for name in terms}  # its definitions and the specialisations they use, in order
    return TypedProgram(program, own, terms, scope)


def is_generic(d: Def) -> bool:
    """Whether a definition's parameters or result name a type variable: it is a template."""
    return any(type_params(t) for t in (*(p.annot for p in d.params), d.result) if t is not None)


def template(d: Def, known: Mapping[str, Type], later: Container[str], scope: Scope) -> Template:
    """A generic definition registered: its signature, complete, names every type variable
    it uses; its free names are those of definitions above it, modules, templates, or
    primitives (written ``%name`` in it, so that no later definition captures them).  Its
    body is checked at each specialisation."""
    if d.result is None:
        raise LamTypeError(f"the generic definition '{d.name}' must annotate its result type too (: 'p): its uses "
                           "are checked against its signature", d.name_span or d.span)
    signature = [p.annot for p in d.params] + [d.result]
    variables = list(dict.fromkeys(v for t in signature for v in type_params(t)))

    def undeclared(t: Type) -> Type:
        for u in _params_in(t):
            if u.name not in variables:
                raise LamTypeError(f"the type variable {u.name} is not named by the signature of '{d.name}'", u.span)
        return t
    map_annotations(d.body, undeclared)
    renamed: dict[str, str] = {}
    for name, _ in free_variables(d.as_term()).items():
        if name in known or name in scope.modules or name in scope.templates or name.startswith("%"):
            continue
        if public(name) is not None:  # as in a definition, a primitive before a definition further down
            renamed[name] = f"%{name}"
        elif name in later:
            raise LamTypeError(f"'{name}' is defined further down; a definition may only use those above it",
                               _first_use(d.body, name))
        elif name == d.name:
            raise LamTypeError(f"'{name}' refers to itself, but a definition cannot be recursive", _first_use(d.body, name))
        else:
            known_names = [*known, *scope.templates, *(n for n in PRIMITIVES if public(n))]
            raise LamTypeError(f"unbound name '{name}'{_close(name, known_names)}", _first_use(d.body, name))
    checker = Checker(scope=scope, type_params={v: TVar(-i - 1) for i, v in enumerate(variables)})
    scheme = checker.expand(signature[-1])
    for t in reversed(signature[:-1]):
        scheme = FunType(checker.expand(t), scheme)
    return Template(replace(d, body=rename_free(d.body, renamed)), scheme, tuple(variables))


def _params_in(t: Type) -> list[TypeParam]:
    """The type variables written in a type, each occurrence."""
    found: list[TypeParam] = []
    map_type(t, lambda u: found.append(u) if isinstance(u, TypeParam) else None)
    return found


def _first_use(term: Term, name: str) -> Span | None:
    """Where a term first names ``name`` (for an error about it)."""
    stack = [term]
    while stack:
        t = stack.pop()
        if isinstance(t, Var) and t.name == name:
            return t.span
        stack.extend(reversed(children(t)))
    return term.span


def aliases(program: Program, scope: Scope) -> Scope:
    """``scope`` with the type aliases of ``program``, each expanded in the scope of those
    above it (so that no alias refers to itself); an alias named twice is an error."""
    if not program.aliases:
        return scope
    known, params = dict(scope.aliases), dict(scope.alias_params)
    for alias in program.aliases:
        if alias.name in known:
            raise LamTypeError(f"the type '{alias.name}' is already defined", alias.span)
        variable = {alias.param: TypeParam(alias.param)} if alias.param else {}
        known[alias.name] = Checker(scope=replace(scope, aliases=known, alias_params=params),
                                    type_params=variable).expand(alias.body)
        if alias.param:
            params[alias.name] = alias.param
    return replace(scope, aliases=known, alias_params=params)


class _Below:
    """The names of the definitions below the ``i``-th, as a container (no set made per
    definition)."""

    def __init__(self, last: dict[str, int], i: int):
        self.last, self.i = last, i

    def __contains__(self, name: object) -> bool:
        return self.last.get(name, -1) > self.i  # type: ignore[arg-type]


def infer_term(term: Term, globals_: Mapping[str, Type] | None = None, scope: Scope | None = None,
               sink: Instances | None = None, number: Type = INT) -> Term:
    """Elaborate a lone term (the REPL's expressions) against the given definitions; the
    specialisations of the templates it uses go to ``sink`` (without one, a template is
    an error); the numbers nothing determines are ``number``s: Ints, or Reals in a term
    to be differentiated (the REPL's ``:d``, ``:grad``, ``:jvp``, ``:vjp``)."""
    checker, term = _infer(term, globals_, scope, sink, number)
    return checker.finish(term)


def infer_type(term: Term, globals_: Mapping[str, Type] | None = None, scope: Scope | None = None,
               number: Type = INT) -> Type:
    """The type of a lone term (the REPL's ``:type``): its number types defaulted as for
    evaluation, but the type variables nothing determines left as variables (``λx. x :
    'a → 'a``), where :func:`infer_term` makes them ``Unit`` to run the term."""
    if isinstance(term, Var) and scope is not None and term.name in scope.templates:
        return scope.templates[term.name].signature  # a generic definition named alone: its signature
    checker, term = _infer(term, globals_, scope, number=number)
    return checker.zonk(term.ty)


def _infer(term: Term, globals_: Mapping[str, Type] | None, scope: Scope | None,
           sink: Instances | None = None, number: Type = INT) -> tuple[Checker, Term]:
    checker = Checker(globals_, scope=scope, sink=sink, number=number)
    checker.used = term_names(term)
    term = checker.infer(term)
    checker.settle(term)
    return checker, term
