"""The abstract syntax of lamad: types, patterns, terms and programs (docs/language.md).

One set of immutable node classes serves source terms and the target terms that
the AD transforms produce.  Every node carries the source ``span`` it came from
(``None`` for synthesised nodes) and, once elaborated by the type checker, its
type ``ty``; both are ignored by equality so that structurally equal terms
compare equal.
"""

from __future__ import annotations

import itertools
import re
from operator import attrgetter
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import lru_cache
from typing import Callable, Container, Iterable, Iterator, Mapping, NamedTuple, Union

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_']*")
"""What a name of the language is (the grammar's ``NAME``): a variable's, a field's, a module's."""


# --------------------------------------------------------------------- nodes


def immutable(repr: bool = True, eq: bool = True) -> Callable[[type], type]:
    """``@dataclass(frozen=True, slots=True)``, with an ``__init__`` that sets each field
    through its slot's own setter: a frozen dataclass's ``__init__`` sets each with
    ``object.__setattr__``, a lookup by name and a call per field, and the passes make a
    node for every node of every term they transform (a third less time per node)."""

    def wrap(cls: type) -> type:
        cls = dataclass(frozen=True, slots=True, repr=repr, eq=eq)(cls)
        cls.__init__ = _init(cls)
        if cls.__new__ is object.__new__:  # not Base, whose one object per name its __new__ gives
            cls.make = staticmethod(_init(cls, made=True))
        return cls

    return wrap


def _init(cls: type, made: bool = False) -> Callable[..., None]:
    """The ``__init__`` of a slotted dataclass: the dataclass's signature (positional
    fields, then keyword-only ones, with their defaults), each field set by its slot;
    or, ``made``, a function of the same parameters that makes the node (``Var.make(x,
    ty=Real)``): a function's keyword arguments reach it without a dict, a class's do not
    (a quarter less time per node, for the passes that make them by the thousand)."""
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": cls}
    positional, keyword, body = ([], [], ["    self = _new(_cls)"]) if made else (["self"], [], [])
    for f in fields(cls):
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        param = f.name
        if f.default is not MISSING:
            namespace[f"_default_{f.name}"] = f.default
            param += f"=_default_{f.name}"
        (keyword if f.kw_only else positional).append(param)
        body.append(f"    _set_{f.name}(self, {f.name})")
    params = positional + (["*", *keyword] if keyword else [])
    if made:
        body.append("    return self")
    exec(f"def __init__({', '.join(params)}):\n" + "\n".join(body or ["    pass"]) + "\n", namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.{'make' if made else '__init__'}"
    return init


# --------------------------------------------------------------------- spans


@dataclass(frozen=True, eq=False)
class Source:
    """A file's text, for the spans of a program read from a file other than the one an
    error is reported against (an imported module, docs/language.md, "Modules").  Equal
    only to itself: a span's equality and hash do not read the text."""

    filename: str
    text: str = field(repr=False)


class Span(NamedTuple):
    """A region of the source text: 0-based offsets, 1-based lines and columns; ``source``
    is the text the span is in when it is not the text of the program being run (the
    spans of an imported module).  A named tuple: the parser makes one per node, and a
    tuple is made at a third of the cost of a frozen dataclass."""

    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int
    source: Source | None = None

    def to(self, other: Span | None) -> Span:
        """The span from the start of ``self`` to the end of ``other``."""
        if other is None:
            return self
        return Span(self.start, other.end, self.line, self.column, other.end_line, other.end_column, self.source)


# --------------------------------------------------------------------- types


class Type:
    """Base class of types."""

    __slots__ = ()

    def __str__(self) -> str:
        return pretty_type(self, ascii=True)

    def __repr__(self) -> str:
        return str(self)


@immutable(repr=False, eq=False)
class Base(Type):
    """A base type: ``Real``, ``Tensor``, ``Int``, ``Bool``, ``Unit``, ``String``, the
    arrays of integers and of truth values ``IntTensor`` and ``BoolTensor``
    (docs/language.md, "Integer arrays and masks"), and ``d``, the abstract gradient
    module of target terms (docs/differentiation.md).

    There is one object per name (``Base("Real") is REAL``), so that base types are equal
    when they are the same object, and compare and hash as fast as Python's objects do:
    every pass compares types at nearly every node."""

    name: str

    def __new__(cls, name: str) -> Base:
        known = _BASES.get(name)
        if known is None:
            known = _BASES[name] = object.__new__(cls)
        return known

    def __reduce__(self) -> tuple:
        return Base, (self.name,)  # a copy is the one object of its name

    def __repr__(self) -> str:
        return self.name


_BASES: dict[str, Base] = {}


REAL = Base("Real")
TENSOR = Base("Tensor")
INT = Base("Int")
BOOL = Base("Bool")
UNIT = Base("Unit")
STRING = Base("String")
INT_TENSOR = Base("IntTensor")
BOOL_TENSOR = Base("BoolTensor")
GRAD = Base("d")

BASE_TYPES = {t.name: t for t in (REAL, TENSOR, INT, BOOL, UNIT, STRING, INT_TENSOR, BOOL_TENSOR, GRAD)}
ARRAY_OF = {REAL: TENSOR, INT: INT_TENSOR, BOOL: BOOL_TENSOR}
"""The array type of each scalar type: a comparison of tensors is a ``BoolTensor``."""


@immutable(repr=False)
class TupleType(Type):
    items: tuple[Type, ...]


@immutable(repr=False)
class RecordType(Type):
    """A record ``{b : A, w : B}``: its fields in alphabetical order and their types.
    Records are structural, and a record type is the same whatever order its fields are
    written in (:func:`record_type` sorts them); its values are tuples in this order."""

    fields: tuple[str, ...]
    items: tuple[Type, ...]

    def field_type(self, name: str) -> Type | None:
        """The type of field ``name``, ``None`` if the record has no such field."""
        for f, t in zip(self.fields, self.items):
            if f == name:
                return t
        return None


def record_type(pairs: Iterable[tuple[str, Type]]) -> RecordType:
    """The record type of these fields and types, in any order."""
    ordered = sorted(pairs, key=lambda p: p[0])
    return RecordType(tuple(f for f, _ in ordered), tuple(t for _, t in ordered))


PRODUCTS = (TupleType, RecordType)
"""The types whose values are tuples: tuples, and records (their fields in order)."""


def with_items(t: TupleType | RecordType, items: Iterable[Type]) -> TupleType | RecordType:
    """A tuple or record type like ``t`` with these component types."""
    items = tuple(items)
    return TupleType(items) if isinstance(t, TupleType) else RecordType(t.fields, items)


def same_shape(a: Type, b: Type) -> bool:
    """Whether ``a`` and ``b`` are both tuples of one length, or both records of the same
    fields: types whose components correspond one to one."""
    if isinstance(a, TupleType):
        return isinstance(b, TupleType) and len(a.items) == len(b.items)
    return isinstance(a, RecordType) and isinstance(b, RecordType) and a.fields == b.fields


@immutable(repr=False)
class TypeName(Type):
    """A type written by a name that is not a base type: a type alias (``Layer``, or
    ``nn.Layer`` from a module), as the parser reads it.  The checker replaces it by the
    type the alias stands for; a program printed back keeps it."""

    name: str
    span: Span | None = field(default=None, compare=False)
    arg: Type | None = None
    """The type an alias of a type variable is applied to (``Adam 'p``, ``nn.Adam Net``)."""


@immutable(repr=False)
class TypeParam(Type):
    """A type variable written in a definition's annotations, ``'p`` (docs/language.md,
    "Generic definitions and structures"): the definition is a template, which the checker
    specialises at each use to the types the variables stand for there."""

    name: str
    span: Span | None = field(default=None, compare=False)


@immutable(repr=False)
class FunType(Type):
    dom: Type
    cod: Type


@immutable(repr=False)
class LinType(Type):
    """A linear function ``A ⊸ B``; ``A⊥`` is ``A ⊸ d``."""

    dom: Type
    cod: Type


@immutable(repr=False)
class ListType(Type):
    elem: Type


@immutable(repr=False)
class TVar(Type):
    """A unification variable.  ``kind`` restricts what it may stand for:
    ``"any"``, ``"num"`` (Int, Real, Tensor or IntTensor) or ``"float"`` (Real or Tensor)."""

    id: int
    kind: str = "any"


def map_type(t: Type, part: Callable[[Type], Type | None]) -> Type:
    """``t`` with each part for which ``part`` gives a type replaced by that type, and rebuilt
    around them (tuples, lists, functions and linear functions)."""
    new = part(t)
    if new is not None:
        return new
    if isinstance(t, PRODUCTS):
        return with_items(t, (map_type(i, part) for i in t.items))
    if isinstance(t, ListType):
        return ListType(map_type(t.elem, part))
    if isinstance(t, (FunType, LinType)):
        return type(t)(map_type(t.dom, part), map_type(t.cod, part))
    if isinstance(t, TypeName) and t.arg is not None:
        return TypeName(t.name, t.span, map_type(t.arg, part))
    return t


def has_names(t: Type) -> bool:
    """Whether a type (an annotation as written) names an alias or a type variable anywhere."""
    if isinstance(t, (TypeName, TypeParam)):
        return True
    if isinstance(t, PRODUCTS):
        return any(has_names(i) for i in t.items)
    if isinstance(t, ListType):
        return has_names(t.elem)
    if isinstance(t, (FunType, LinType)):
        return has_names(t.dom) or has_names(t.cod)
    return False


def type_params(t: Type) -> list[str]:
    """The names of the type variables a type (an annotation as written) mentions, in order."""
    found: list[str] = []

    def collect(u: Type) -> Type | None:
        if isinstance(u, TypeParam) and u.name not in found:
            found.append(u.name)
        return None
    map_type(t, collect)
    return found


@lru_cache(maxsize=None)
def perp(t: Type) -> LinType:
    """Linear negation ``A⊥ = A ⊸ d``: made once per type, as ←D asks for it at every
    primitive it differentiates."""
    return LinType(t, GRAD)


# --------------------------------------------------------------------- printing types

_TYPE_SYMBOLS = {False: {"->": "→", "-o": "⊸", "*": "×"}, True: {"->": "->", "-o": "-o", "*": "*"}}


def pretty_type(t: Type, ascii: bool = False) -> str:
    """Print a type, Unicode or ASCII; ``A ⊸ d`` is shown as ``A⊥`` (ASCII
    ``~A``), and unification variables as ``'a``, ``'b``, … in order of appearance.
    Types print here, with their classes, so that ``str`` of a type needs nothing else;
    :mod:`lamad.pretty` prints terms and programs."""
    names: dict[int, str] = {}
    return _type(t, 0, ascii, names)


def _tvar_name(v: TVar, names: dict[int, str]) -> str:
    if v.id not in names:
        n = len(names)
        names[v.id] = "'" + chr(ord("a") + n % 26) + (str(n // 26) if n >= 26 else "")
    return names[v.id]


def _type(t: Type, level: int, ascii: bool, names: dict[int, str]) -> str:
    """Levels: 0 arrows, 1 tuples, 2 prefix forms (List, ~), 3 atoms and postfix ⊥."""
    if isinstance(t, Base):
        return t.name
    if isinstance(t, TVar):
        return _tvar_name(t, names)
    if isinstance(t, LinType) and t.cod == GRAD:
        if ascii:
            text, prec = "~" + _type(t.dom, 2, ascii, names), 2
        else:
            text, prec = _type(t.dom, 3, ascii, names) + "⊥", 3
    elif isinstance(t, (FunType, LinType)):
        arrow = _TYPE_SYMBOLS[ascii]["->" if isinstance(t, FunType) else "-o"]
        text, prec = f"{_type(t.dom, 1, ascii, names)} {arrow} {_type(t.cod, 0, ascii, names)}", 0
    elif isinstance(t, TupleType):
        sep = f" {_TYPE_SYMBOLS[ascii]['*']} "
        text, prec = sep.join(_type(i, 2, ascii, names) for i in t.items), 1
    elif isinstance(t, RecordType):
        text = ", ".join(f"{f} : {_type(i, 0, ascii, names)}" for f, i in zip(t.fields, t.items))
        text, prec = "{" + text + "}", 3
    elif isinstance(t, TypeName) and t.arg is not None:
        text, prec = f"{t.name} {_type(t.arg, 2, ascii, names)}", 2
    elif isinstance(t, (TypeName, TypeParam)):
        text, prec = t.name, 3
    elif isinstance(t, ListType):
        depth = 0  # List List … A: a loop, not a recursion per level (lists nested 10,000 deep)
        while isinstance(t, ListType):
            t, depth = t.elem, depth + 1
        text, prec = "List " * depth + _type(t, 2, ascii, names), 2
    else:  # pragma: no cover - every Type subclass is handled above
        raise TypeError(f"not a type: {t!r}")
    return f"({text})" if prec < level else text


# --------------------------------------------------------------------- patterns


@immutable()
class Pattern:
    span: Span | None = field(default=None, compare=False, kw_only=True)


@immutable()
class PVar(Pattern):
    name: str
    annot: Type | None = None


@immutable()
class PWild(Pattern):
    annot: Type | None = None


@immutable()
class PTuple(Pattern):
    items: tuple[Pattern, ...]
    annot: TypeName | None = None
    """``((x, y) : Pair)``: a tuple pattern annotated by a type alias, until the checker,
    which knows what the alias stands for, annotates the items instead (:func:`annotated`)."""


@immutable()
class PRecord(Pattern):
    """``{w, b = (x, y)}``: a record taken apart, one pattern per field, in the order
    written; it names every field of the record (``{w}`` is ``{w = w}``)."""

    fields: tuple[str, ...]
    items: tuple[Pattern, ...]
    annot: TypeName | None = None
    """As :attr:`PTuple.annot`: ``({w, b} : Layer)``, until the checker expands ``Layer``."""


def annotated(p: Pattern, t: Type) -> Pattern | None:
    """``(p : t)``: the pattern with its variables annotated by the parts of ``t`` (a tuple
    pattern's items by a tuple type's, a record pattern's by a record type's fields), or by
    ``t`` whole where it is a type alias's name, which is expanded later; ``None`` where
    ``p`` cannot have type ``t``."""
    if isinstance(p, PVar) and p.annot is None:
        return PVar(p.name, t, span=p.span)
    if isinstance(p, PWild) and p.annot is None:
        return PWild(t, span=p.span)
    if isinstance(p, (PTuple, PRecord)) and p.annot is None and isinstance(t, TypeName):
        return replace(p, annot=t)
    if isinstance(p, PTuple) and isinstance(t, TupleType) and len(t.items) == len(p.items):
        items = [annotated(i, it) for i, it in zip(p.items, t.items)]
    elif isinstance(p, PRecord) and isinstance(t, RecordType) and sorted(p.fields) == list(t.fields):
        items = [annotated(i, t.field_type(f)) for f, i in zip(p.fields, p.items)]
    else:
        return None
    return None if any(i is None for i in items) else replace(p, items=tuple(items), annot=None)


def pattern_names(p: Pattern) -> tuple[str, ...]:
    """The variables a pattern binds, left to right."""
    if p.__class__ is PVar:
        return (p.name,)
    if p.__class__ is PTuple:  # (x, x') of ←D, most often: a tuple of variables
        names = tuple([i.name for i in p.items if i.__class__ is PVar])
        if len(names) == len(p.items):
            return names
    found: list[str] = []
    stack = [p]
    while stack:
        p = stack.pop()
        if p.__class__ is PVar:
            found.append(p.name)
        elif p.__class__ is PTuple or p.__class__ is PRecord:
            stack += p.items[::-1]
    return tuple(found)


def record_order(fields: tuple[str, ...]) -> list[int]:
    """The positions of fields written in this order, taken in alphabetical order: where
    each component of a record's value (a tuple, :class:`RecordType`) is written."""
    return sorted(range(len(fields)), key=fields.__getitem__)


# --------------------------------------------------------------------- terms


@immutable()
class Term:
    span: Span | None = field(default=None, compare=False, kw_only=True)
    ty: Type | None = field(default=None, compare=False, kw_only=True)


@immutable()
class Var(Term):
    name: str


@immutable()
class Lit(Term):
    """A literal: ``int``, ``float``, ``bool``, ``()`` (unit) or ``str``."""

    value: Union[int, float, bool, tuple, str]


@immutable()
class Tuple(Term):
    items: tuple[Term, ...]


@immutable()
class ListLit(Term):
    items: tuple[Term, ...]


@immutable()
class Record(Term):
    """``{w = t, b = u}``: a record, its fields in the order written (which is the order
    they are evaluated in); its value is the tuple of its fields in alphabetical order."""

    fields: tuple[str, ...]
    items: tuple[Term, ...]


@immutable()
class Proj(Term):
    """``t.w``: the field ``w`` of the record ``t``.  Where ``t`` is the name of an imported
    module, ``M.x`` is its definition ``x`` instead, which the checker makes the variable
    ``M.x`` (docs/language.md, "Modules")."""

    term: Term
    field: str


@immutable()
class Lam(Term):
    """``λp. t``.  A lambda that an AD transform made from a lambda of its input records
    that one and the transform (``origin = ("←D", λ)`` or ``("→D", λ)``), so that a
    closure of the transformed program can be traced back to the source it came from
    when it is differentiated again (docs/differentiation.md, nesting; see
    :mod:`lamad.autodiff`)."""

    param: Pattern
    body: Term
    origin: tuple[str, Term] | None = field(default=None, compare=False, kw_only=True, repr=False)


@immutable()
class LinLam(Term):
    """A linear function ``λa ⊸ t`` (ASCII ``\\a -o t``): a backpropagator when its
    body has the gradient type ``d``.  ``origin`` as for :class:`Lam`."""

    param: Pattern
    body: Term
    origin: tuple[str, Term] | None = field(default=None, compare=False, kw_only=True, repr=False)


@immutable()
class App(Term):
    fn: Term
    arg: Term


@immutable()
class Let(Term):
    pattern: Pattern
    bound: Term
    body: Term


@immutable()
class If(Term):
    cond: Term
    then: Term
    orelse: Term


@immutable()
class Prim(Term):
    """A saturated application of a builtin (operators included), ``op t1 ... tk``.

    The parser produces these for operators; the type checker turns applications of
    builtin names into them, eta-expanding partial applications."""

    op: str
    args: tuple[Term, ...]
    marks: str = ""
    """For an AD operator inside a term that transforms differentiated: the transforms,
    innermost first (``"rf"``: →D of ←D), see :mod:`lamad.prims.ad`."""


@immutable()
class DZero(Term):
    """``0``, the zero of the gradient module ``d``: nothing sent anywhere."""


@immutable()
class DAdd(Term):
    """``u + v`` in the gradient module ``d``: both sums of cotangents sent."""

    left: Term
    right: Term


@immutable()
class Ann(Term):
    """A type ascription ``t : A``."""

    term: Term
    annot: Type


# --------------------------------------------------------------------- index specs

# ``x[i, a:b, ..., idx]`` is the application ``index spec x parts`` of a primitive
# (lamad/prims/indexing.py): the *spec*, a string, says what each position of the index
# holds — ``_`` a value, ``...``, or a slice whose written bounds are ``_`` (``_:``,
# ``::_``) — and the *parts* are the values of its ``_``s, in order.


UPDATES = {"index_set": ":=", "index_add": "+="}
"""The primitives of the updates ``x[…] := v`` and ``x[…] += v``, and their symbols."""

PART = "_"
"""A position of an index that holds a value: an Int, an IntTensor or a BoolTensor."""
ELLIPSIS = "..."


@dataclass(frozen=True)
class Slice:
    """A slice ``start:stop:step`` of an index; each flag says whether that bound is
    written (it is then one of the parts)."""

    start: bool
    stop: bool
    step: bool

    def __str__(self) -> str:
        text = f"{PART * self.start}:{PART * self.stop}"
        return text + f":{PART}" if self.step else text


IndexItem = Union[str, Slice]
"""A position of an index: :data:`PART`, :data:`ELLIPSIS` or a :class:`Slice`."""

_SLICE = re.compile(r"(_?):(_?)(?::(_?))?")


@lru_cache(maxsize=None)
def parse_spec(spec: str) -> tuple[IndexItem, ...]:
    """The positions an index spec describes; a ``ValueError`` if it is not one (a spec
    has one position or more, separated by commas, and at most one ``...``)."""
    items: list[IndexItem] = []
    for text in spec.split(","):
        match = _SLICE.fullmatch(text)
        if text in (PART, ELLIPSIS):
            items.append(text)
        elif match:
            items.append(Slice(*(bool(g) for g in match.groups())))
        else:
            raise ValueError(f"{spec!r} is not an index spec (positions such as _, ..., _:_:_, separated by commas)")
    if items.count(ELLIPSIS) > 1:
        raise ValueError(f"the index spec {spec!r} has more than one '...'")
    return tuple(items)


def spec_text(items: tuple[IndexItem, ...]) -> str:
    """The spec of these positions: the inverse of :func:`parse_spec`."""
    return ",".join(map(str, items))


def part_count(items: tuple[IndexItem, ...]) -> int:
    """How many values the positions hold."""
    return sum(1 if i == PART else (i.start + i.stop + i.step if isinstance(i, Slice) else 0) for i in items)


# --------------------------------------------------------------------- programs


@immutable()
class Param:
    name: str
    annot: Type
    span: Span | None = field(default=None, compare=False, kw_only=True)


@immutable()
class Def:
    """``def name (x1 : A1) ... (xn : An) : B = body``."""

    name: str
    params: tuple[Param, ...]
    result: Type | None
    body: Term
    span: Span | None = field(default=None, compare=False, kw_only=True)
    name_span: Span | None = field(default=None, compare=False, kw_only=True)

    def as_term(self) -> Term:
        """The definition as one term: ``\\(x1 : A1). ... \\(xn : An). (body : B)``."""
        term = self.body if self.result is None else Ann(self.body, self.result, span=self.body.span)
        for p in reversed(self.params):
            term = Lam(PVar(p.name, p.annot, span=p.span), term, span=p.span.to(term.span) if p.span else None)
        return term


@immutable()
class TypeDef:
    """``type Name = A``: a type alias (docs/language.md, "Records"); ``type Name 'p = A``
    one of a type variable, ``param`` (``Name B`` is ``A`` with ``B`` for ``'p``)."""

    name: str
    body: Type
    param: str | None = None
    span: Span | None = field(default=None, compare=False, kw_only=True)


@immutable()
class Import:
    """``import "path.lam"``, ``import nn`` (the standard library's ``nn``), either
    followed by ``as M``: the module's definitions are then ``M.name``, ``M`` being the
    file's stem unless ``as`` names it (docs/language.md, "Modules")."""

    path: str
    library: bool
    alias: str | None = None
    span: Span | None = field(default=None, compare=False, kw_only=True)

    @property
    def name(self) -> str:
        """The qualifier of the module's names."""
        if self.alias is not None:
            return self.alias
        return self.path if self.library else self.path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".lam")


@immutable()
class Program:
    """A program: its imports, its type aliases and its definitions, each in order."""

    defs: tuple[Def, ...]
    imports: tuple[Import, ...] = ()
    aliases: tuple[TypeDef, ...] = ()

    def __getitem__(self, name: str) -> Def:
        for d in self.defs:
            if d.name == name:
                return d
        raise KeyError(name)


def lets(bindings: Iterable[tuple[Pattern, Term]], body: Term) -> Term:
    """``let p1 = t1; …; pn = tn in body``, of the type of ``body``, each ``let`` spanning
    its bound term."""
    for pattern, bound in reversed(list(bindings)):
        body = Let.make(pattern, bound, body, ty=body.ty, span=bound.span)
    return body


# --------------------------------------------------------------------- sums in d


def summands(t: Term) -> Iterator[Term]:
    """The summands of a sum in ``d`` (``u + v``), left to right, without recursion (the
    sum of a long chain is deep)."""
    stack = [t]
    while stack:
        node = stack.pop()
        if node.__class__ is DAdd:
            stack += (node.right, node.left)
        else:
            yield node


def gradient_sum(terms: list[Term]) -> Term:
    """``t1 + … + tn`` in ``d``, associated to the left; ``0`` for none."""
    if not terms:
        return DZero(ty=GRAD)
    total = terms[0]
    for t in terms[1:]:
        total = DAdd(total, t, ty=GRAD)
    return total


def cotangent_sum(terms: list[Term]) -> Term:
    """``t1 + … + tn`` of cotangents (at least one), of the type of the first."""
    total = terms[0]
    for t in terms[1:]:
        total = Prim("add", (total, t), ty=total.ty)
    return total


def factored(sums: list[Term], target: Callable[[str], str] = lambda name: name) -> Term:
    """Linear factoring, ``x' u + x' v → x' (u + v)``: the gradient value ``Σ sums`` with
    the cotangents sent to one backpropagator summed first, in the order the
    backpropagators are first sent to, the other summands after them; ``target`` says
    which backpropagator a variable names (by default itself)."""
    sends: dict[str, list[App]] = {}
    others: list[Term] = []
    for s in sums:
        if s.__class__ is App and s.fn.__class__ is Var:
            sends.setdefault(target(s.fn.name), []).append(s)
        else:
            others.append(s)
    return gradient_sum([App(apps[0].fn, cotangent_sum([a.arg for a in apps]), ty=GRAD) for apps in sends.values()]
                        + others)


# --------------------------------------------------------------------- traversal


def term_names(term: Term, inner: list[Term] | None = None) -> set[str]:
    """Every name a term mentions or binds: fresh names are chosen outside this set.  With
    ``inner``, the lambdas inside ``term`` (but ``term`` itself) are put there instead, and
    their names left out."""
    names: set[str] = set()
    stack = [term]
    while stack:
        node = stack.pop()
        kind = node.__class__
        if kind is Var:
            names.add(node.name)
            continue
        if kind is Let or kind is Lam or kind is LinLam:
            if kind is not Let and inner is not None and node is not term:
                inner.append(node)
                continue
            p = node.pattern if kind is Let else node.param
            if p.__class__ is PVar:
                names.add(p.name)
            else:
                names.update(pattern_names(p))
        stack += children(node)
    return names


def free_variables(term: Term) -> dict[str, Type]:
    """The free variables of an elaborated term, with their types.  One walk with an
    explicit stack; binders push and pop their names, so that a chain of ``n`` ``let``s
    costs O(n), not a set of the bound names per binding (O(n²))."""
    free: dict[str, Type] = {}
    bound: dict[str, int] = {}  # name -> how many enclosing binders bind it
    stack: list = [term]
    while stack:
        t = stack.pop()
        if isinstance(t, tuple):  # a scope's (+1 or -1, names): entered or left
            step, names = t
            for name in names:
                bound[name] = bound.get(name, 0) + step
        elif isinstance(t, Var):
            if not bound.get(t.name):
                free.setdefault(t.name, t.ty)
        elif isinstance(t, (Lam, LinLam, Let)):
            names = tuple(pattern_names(t.param if isinstance(t, (Lam, LinLam)) else t.pattern))
            stack += [(-1, names), t.body, (1, names)]
            if isinstance(t, Let):
                stack.append(t.bound)  # outside the scope of its own pattern
        else:
            stack.extend(reversed(list(children(t))))
    return free


def rename_free(term: Term, names: Mapping[str, str]) -> Term:
    """``term`` with each free variable named in ``names`` renamed (an imported module's
    definitions, ``dense`` ↦ ``nn.dense``); a binder of the same name shadows it."""
    return _replace_free(term, names, lambda v: update(v, name=names[v.name]), frozenset(names.values()))


def substitute(term: Term, values: Mapping[str, Term]) -> Term:
    """``term[values]``: each free variable named in ``values`` replaced by its term,
    avoiding capture — a binder of ``term`` that would capture a free variable of a value
    is renamed apart (``x`` to ``x_1``) in its scope first."""
    avoid: set[str] = set()
    for value in values.values():
        avoid.update(free_variables(value))
    return _replace_free(term, values, lambda v: values[v.name], frozenset(avoid))


def _replace_free(term: Term, names: Mapping[str, object], replace: Callable[[Var], Term],
                  avoid: frozenset[str]) -> Term:
    """``term`` with each free variable named in ``names`` replaced by ``replace`` of it;
    the binders named in ``avoid`` (the free variables of what comes in) are renamed apart
    where something is replaced under them.  Chains of ``let``s are walked in a loop."""
    if not names:
        return term
    if isinstance(term, Var):
        return replace(term) if term.name in names else term
    if isinstance(term, (Lam, LinLam)):
        inner = _unshadowed(names, term.param)
        if not inner:
            return term
        param, body = _apart(term.param, term.body, avoid)
        return update(term, param=param, body=_replace_free(body, inner, replace, avoid))
    if isinstance(term, Let):
        chain, body = let_chain(term)
        parts = []
        for let in chain:
            bound = _replace_free(let.bound, names, replace, avoid)
            names = _unshadowed(names, let.pattern)
            pattern, rest = _apart(let.pattern, let.body, avoid) if names else (let.pattern, let.body)
            parts.append((let, pattern, bound))
            if rest is not let.body:  # the rest of the chain was renamed: walk it as renamed
                body = rest
                break
        result = _replace_free(body, names, replace, avoid)
        for let, pattern, bound in reversed(parts):
            result = update(let, pattern=pattern, bound=bound, body=result)
        return result
    return map_children(term, lambda c: _replace_free(c, names, replace, avoid))


def _apart(p: Pattern, body: Term, avoid: frozenset[str]) -> tuple[Pattern, Term]:
    """The binding of ``p`` in ``body`` with the names of ``p`` that are in ``avoid``
    renamed to names that occur in neither (alpha-conversion)."""
    clashes = [n for n in pattern_names(p) if n in avoid]
    if not clashes:
        return p, body
    taken = term_names(body) | avoid
    renaming: dict[str, str] = {}
    for name in clashes:
        new = next(f"{name}_{i}" for i in itertools.count(1) if f"{name}_{i}" not in taken)
        renaming[name] = new
        taken.add(new)
    return _renamed_pattern(p, renaming), rename_free(body, renaming)


def _renamed_pattern(p: Pattern, renaming: Mapping[str, str]) -> Pattern:
    """``p`` with the variables named in ``renaming`` renamed."""
    if isinstance(p, PVar):
        return replace(p, name=renaming.get(p.name, p.name))
    if isinstance(p, (PTuple, PRecord)):
        return replace(p, items=tuple(_renamed_pattern(i, renaming) for i in p.items))
    return p


def map_annotations(term: Term, fn: Callable[[Type], Type]) -> Term:
    """``term`` with ``fn`` applied to each type annotation in it: those of its lambdas'
    and lets' patterns and of its ascriptions (a template's, renamed or inspected)."""
    if isinstance(term, Ann):
        return update(term, term=map_annotations(term.term, fn), annot=fn(term.annot))
    term = map_children(term, lambda c: map_annotations(c, fn))
    if isinstance(term, (Lam, LinLam)):
        return update(term, param=_annotate_pattern(term.param, fn))
    if isinstance(term, Let):
        return update(term, pattern=_annotate_pattern(term.pattern, fn))
    return term


def _annotate_pattern(p: Pattern, fn: Callable[[Type], Type]) -> Pattern:
    """A pattern with ``fn`` applied to each of its annotations."""
    annot = None if p.annot is None else fn(p.annot)  # type: ignore[union-attr]
    if isinstance(p, (PTuple, PRecord)):
        return replace(p, items=tuple(_annotate_pattern(i, fn) for i in p.items), annot=annot)
    return replace(p, annot=annot) if isinstance(p, (PVar, PWild)) else p


def _unshadowed(names: Mapping[str, str], p: Pattern) -> Mapping[str, str]:
    """``names`` without those the pattern ``p`` binds."""
    bound = set(pattern_names(p)) & names.keys()
    return {k: v for k, v in names.items() if k not in bound} if bound else names


def alpha_key(term: Term, typed: Container[str] = ()) -> tuple:
    """A hashable summary of ``term`` that two terms share exactly when they are equal up
    to the names of bound variables (alpha-equivalence), and the applications of the
    primitives named in ``typed`` have the same types too (``load_params``, whose type is
    not its arguments' but its context's)."""
    counter = iter(range(1 << 62))

    def pattern(p: Pattern, env: dict[str, int]) -> tuple:
        if isinstance(p, PVar):
            env[p.name] = next(counter)
            return ("var", env[p.name], str(p.annot) if p.annot is not None else None)
        if isinstance(p, PTuple):
            return ("tuple",) + tuple(pattern(i, env) for i in p.items)
        if isinstance(p, PRecord):
            return ("record", p.fields) + tuple(pattern(i, env) for i in p.items)
        return ("_", str(p.annot) if p.annot is not None else None)

    def key(t: Term, env: dict[str, int]) -> tuple:
        if isinstance(t, Var):
            return ("bound", env[t.name]) if t.name in env else ("free", t.name)
        if isinstance(t, Lit):
            return ("lit", type(t.value).__name__, t.value)
        if isinstance(t, (Lam, LinLam)):
            inner = dict(env)
            return (type(t).__name__, pattern(t.param, inner), key(t.body, inner))
        if isinstance(t, Let):
            chain, body = let_chain(t)
            inner = dict(env)
            parts = []
            for let in chain:
                bound = key(let.bound, inner)
                parts.append((pattern(let.pattern, inner), bound))
            return ("let", tuple(parts), key(body, inner))
        if isinstance(t, Prim):
            extra = (t.op, t.marks, t.ty) if t.op in typed else (t.op, t.marks)
        elif isinstance(t, (Record, Proj)):
            extra = t.fields if isinstance(t, Record) else t.field
        else:
            extra = str(t.annot) if isinstance(t, Ann) else None
        return (type(t).__name__, extra) + tuple(key(c, env) for c in children(t))

    return key(term, {})


def let_chain(term: Term) -> tuple[list[Let], Term]:
    """``let p1 = t1 in … let pn = tn in u`` as ``([let1, …, letn], u)``.  Passes walk
    chains of bindings with this, in a loop, so that long chains stay shallow."""
    chain = []
    while isinstance(term, Let):
        chain.append(term)
        term = term.body
    return chain, term


@lru_cache(maxsize=None)
def _subterm_fields(cls: type) -> tuple[str, ...]:
    """The fields of a node class that may hold subterms (all but span, type, patterns)."""
    return tuple(f.name for f in fields(cls) if f.name not in ("span", "ty", "param", "pattern", "annot", "op",
                                                               "name", "value", "origin", "marks", "fields",
                                                               "field"))


def subterms(term: Term) -> Iterator[Term]:
    """Every node of ``term``, itself included (in no particular order)."""
    stack = [term]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(children(node))


def size(term: Term) -> int:
    """The number of nodes of ``term``."""
    return sum(1 for _ in subterms(term))


def size_above(term: Term, most: int) -> bool:
    """Whether ``term`` has more than ``most`` nodes: at most ``most + 1`` of them are walked."""
    stack, seen = [term], 0
    while stack:
        seen += 1
        if seen > most:
            return True
        stack.extend(children(stack.pop()))
    return False


def children(term: Term) -> tuple[Term, ...]:
    """The immediate subterms of ``term``, in source order."""
    get = _CHILDREN.get(term.__class__)
    if get is None:
        get = _CHILDREN[term.__class__] = _children_getter(term.__class__)
    return get(term)


_CHILDREN: dict[type, Callable[[Term], tuple[Term, ...]]] = {}
""":func:`children` of each node class: every pass walks terms with it."""


def _children_getter(cls: type) -> Callable[[Term], tuple[Term, ...]]:
    """:func:`children` for the nodes of class ``cls``, read from the types of its fields: the
    tuple of its subterms (``App``'s ``fn`` and ``arg``), or its one tuple of them (``Prim``'s
    ``args``), taken by :func:`operator.attrgetter` without a loop in Python."""
    names = _subterm_fields(cls)
    kinds = [f.type for f in fields(cls) if f.name in names]
    if not names:
        return lambda term: ()
    if kinds == ["tuple[Term, ...]"]:
        return attrgetter(names[0])
    if kinds == ["Term"]:
        get = attrgetter(names[0])
        return lambda term: (get(term),)
    if set(kinds) == {"Term"}:
        return attrgetter(*names)
    raise TypeError(f"the subterms of a {cls.__name__} are neither terms nor one tuple of them")


def map_children(term: Term, fn: Callable[[Term], Term]) -> Term:
    """``term`` with ``fn`` applied to each immediate subterm: ``term`` itself when ``fn``
    gives back every subterm as it is, so that a pass that changes little builds little."""
    names = _subterm_fields(term.__class__)
    if not names:  # a variable, a literal: most nodes of a term
        return term
    changes = {}
    changed = False
    for name in names:
        value = getattr(term, name)
        if isinstance(value, Term):
            new = changes[name] = fn(value)
            changed = changed or new is not value
        else:
            items = changes[name] = tuple([fn(v) for v in value])
            changed = changed or any(a is not b for a, b in zip(items, value))
    return update(term, **changes) if changed else term


def update(node: Term, **changes) -> Term:
    """``dataclasses.replace`` for term nodes, without re-running ``__init__``: the passes
    rebuild every node of large target terms, and this is their hottest operation."""
    cls = node.__class__
    setters = _SETTERS.get(cls) or _SETTERS.setdefault(cls, tuple((f.name, getattr(cls, f.name).__set__)
                                                                  for f in fields(cls)))
    new = object.__new__(cls)
    for name, set_ in setters:
        set_(new, changes[name] if name in changes else getattr(node, name))
    return new


_SETTERS: dict[type, tuple[tuple[str, Callable[[object, object], None]], ...]] = {}
"""Each node class's fields, and the setters of their slots."""
