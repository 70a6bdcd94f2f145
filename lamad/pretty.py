"""Printing terms, types and programs (docs/differentiation.md, Names in derivative
programs): Unicode by default, ASCII on request, with the fewest parentheses the
precedences of the operators (their records, docs/primitives.md) allow, so that
``parse(pretty(t))`` gives ``t`` back.  Types are printed by
:func:`lamad.syntax.pretty_type` (available here too), which ``str`` of a type uses."""

from __future__ import annotations

from lamad.prims import PRIMITIVES, Operator
from lamad.syntax import (
    Ann, App, Base, DAdd, DZero, Def, FunType, If, Import, Lam, Let, LinLam, LinType, ListLit, ListType, Lit, Param,
    ELLIPSIS, Pattern, Prim, Program, Proj, PRecord, PTuple, PVar, PWild, Record, RecordType, Slice, Term, Tuple,
    TupleType, Type, Var, part_count, UPDATES, parse_spec, pattern_names, pretty_type, record_type,
)

_UNICODE = {"lambda": "λ", "-o": "⊸", "*": "·"}
_ASCII = {"lambda": "\\", "-o": "-o", "*": "*"}


def _sym(key: str, ascii: bool) -> str:
    return (_ASCII if ascii else _UNICODE)[key]


# --------------------------------------------------------------------- terms

_CONNECTIVES = {"or": Operator("||", 1, "left"), "and": Operator("&&", 2, "left")}
"""``&&`` and ``||``, which the parser reads as applications and the checker makes ``if``s."""
_ADD = PRIMITIVES["add"].operator
_NEG, _APP, _ATOM = PRIMITIVES["neg"].operator.precedence, 8, 9
_INDEXING = {"index", "index_list", *UPDATES}
"""The primitives written with brackets (lamad/prims/indexing.py)."""
_LONG_LET = 3
"""A ``let`` with at least this many bindings is printed one binding per line."""
_WIDTH = 80
"""Lines longer than this are broken at ``let`` bindings and lambda bodies."""


def pretty(term: Term | Def | Program, ascii: bool = False, width: int = 80,
           shadowed: frozenset[str] = frozenset()) -> str:
    """Print a term, a definition or a whole program so that it parses back.  A primitive
    that is not public, or whose name a binding in scope shadows (among them the names in
    ``shadowed``, bound outside the term), is printed ``%name``, as are marked AD
    operators (``%grad'rf``)."""
    if isinstance(term, Program):
        texts = ["\n".join(_import(i) for i in term.imports)] if term.imports else []
        texts += [f"type {a.name} = {pretty_type(a.body, ascii)}" for a in term.aliases]
        for d in term.defs:
            texts.append(pretty(d, ascii, width, shadowed))
            shadowed = shadowed | {d.name}
        return "\n\n".join(texts) + "\n"
    if isinstance(term, Def):
        return _def(term, ascii, shadowed)
    return _Printer(ascii, shadowed).term(term, 0, 0)


def _import(i: Import) -> str:
    """``import nn``, ``import "layers.lam" as L``."""
    path = i.path if i.library else _literal(i.path)
    return f"import {path}" + (f" as {i.alias}" if i.alias is not None else "")


def _def(d: Def, ascii: bool, shadowed: frozenset[str]) -> str:
    params = "".join(f" ({p.name} : {pretty_type(p.annot, ascii)})" for p in d.params)
    result = f" : {pretty_type(d.result, ascii)}" if d.result is not None else ""
    body = _Printer(ascii, shadowed | {p.name for p in d.params}).term(d.body, 0, 4)
    sep = "\n    " if "\n" in body else " "
    return f"def {d.name}{params}{result} ={sep}{body}"


class _Printer:
    def __init__(self, ascii: bool, shadowed: frozenset[str] = frozenset()):
        self.ascii = ascii
        self.bound = dict.fromkeys(shadowed, 1)  # name -> how many enclosing binders bind it

    def enter(self, p: Pattern) -> list[str]:
        names = list(pattern_names(p))
        for n in names:
            self.bound[n] = self.bound.get(n, 0) + 1
        return names

    def leave(self, names: list[str]) -> None:
        for n in names:
            self.bound[n] -= 1

    def primitive(self, t: Prim) -> str:
        """How a primitive is named: plainly when that names it, else ``%name``."""
        prim = PRIMITIVES.get(t.op)
        if t.marks:
            return f"%{t.op}'{t.marks}"
        if prim is not None and (not prim.public or self.bound.get(t.op)):
            return f"%{t.op}"
        return t.op

    def pattern(self, p: Pattern) -> str:
        if isinstance(p, PVar):
            return p.name if p.annot is None else f"({p.name} : {pretty_type(p.annot, self.ascii)})"
        if isinstance(p, PWild):
            return "_" if p.annot is None else f"(_ : {pretty_type(p.annot, self.ascii)})"
        annot = _pattern_type(p)
        if annot is not None:
            return f"({_bare(p)} : {pretty_type(annot, self.ascii)})"
        if isinstance(p, PRecord):
            return "{" + ", ".join(_field(f, self.pattern(i)) for f, i in zip(p.fields, p.items)) + "}"
        assert isinstance(p, PTuple)
        return "(" + ", ".join(self.pattern(i) for i in p.items) + ")"

    def binder(self, p: Pattern) -> str:
        """A lambda binder: an annotated variable already carries its parentheses."""
        return self.pattern(p)

    def term(self, t: Term, level: int, indent: int) -> str:
        text, prec = self._term(t, indent)
        return f"({text})" if prec < level else text

    def _term(self, t: Term, indent: int) -> tuple[str, int]:
        if isinstance(t, Var):
            return t.name, _ATOM
        if isinstance(t, Lit):
            return _literal(t.value), _ATOM if not _literal(t.value).startswith("-") else _NEG
        if isinstance(t, Tuple):
            return "(" + ", ".join(self.term(i, 0, indent) for i in t.items) + ")", _ATOM
        if isinstance(t, ListLit):
            return "[" + ", ".join(self.term(i, 0, indent) for i in t.items) + "]", _ATOM
        if isinstance(t, Record):
            items = [_field(f, self.term(i, 0, indent)) for f, i in zip(t.fields, t.items)]
            return "{" + ", ".join(items) + "}", _ATOM
        if isinstance(t, Proj):
            return f"{self.term(t.term, _ATOM, indent)}.{t.field}", _ATOM
        if isinstance(t, App):
            return f"{self.term(t.fn, _APP, indent)} {self.term(t.arg, _ATOM, indent)}", _APP
        if isinstance(t, Prim):
            return self._prim(t, indent)
        if isinstance(t, Ann):
            return f"{self.term(t.term, 1, indent)} : {pretty_type(t.annot, self.ascii)}", 0
        if isinstance(t, DZero):
            return "0", _ATOM
        if isinstance(t, DAdd):
            return self._infix(_ADD, _ADD.symbol, t.left, t.right, indent)
        if isinstance(t, Lam):
            binders, body, names = [], t, []
            while isinstance(body, Lam):
                binders.append(self.binder(body.param))
                names += self.enter(body.param)
                body = body.body
            text = self._binder_body(f"{_sym('lambda', self.ascii)}{' '.join(binders)}.", body, indent)
            self.leave(names)
            return text, 0
        if isinstance(t, LinLam):
            head = f"{_sym('lambda', self.ascii)}{self.binder(t.param)} {_sym('-o', self.ascii)}"
            names = self.enter(t.param)
            text = self._binder_body(head, t.body, indent)
            self.leave(names)
            return text, 0
        if isinstance(t, Let):
            return self._let(t, indent), 0
        if isinstance(t, If):
            return (f"if {self.term(t.cond, 0, indent)} then {self.term(t.then, 0, indent)} "
                    f"else {self.term(t.orelse, 0, indent)}"), 0
        raise TypeError(f"cannot print {type(t).__name__}")  # pragma: no cover

    def _prim(self, t: Prim, indent: int) -> tuple[str, int]:
        if t.op in _INDEXING:
            written = self._index(t, indent)
            if written is not None:
                return written
        prim = PRIMITIVES.get(t.op)
        operator = prim.operator if prim is not None else _CONNECTIVES[t.op]
        if operator is not None and operator.assoc == "prefix":
            operand = self.term(t.args[0], operator.precedence, indent)
            if operand.startswith("-"):  # '--' would begin a comment: -(-x), -(-1.0)
                operand = f"({operand})"
            return operator.symbol + operand, operator.precedence
        if operator is not None:
            symbol = _sym("*", self.ascii) if t.op == "mul" else operator.symbol
            return self._infix(operator, symbol, *t.args, indent)
        text = self.primitive(t) + "".join(" " + self.term(a, _ATOM, indent) for a in t.args)
        if prim is not None and prim.typing == "context" and t.ty is not None:  # what it gives, said
            return f"{text} : {pretty_type(t.ty, self.ascii)}", 0
        return text, _APP

    def _index(self, t: Prim, indent: int) -> tuple[str, int] | None:
        """``x[i, a:b, ...]``, ``x[…] := v`` and ``x[…] += v``, as the parser reads them
        (lamad/prims/indexing.py); ``None`` where the parts are not written out (bound to a
        variable: ``%index "_,_" x p``), and the application is printed as any other."""
        spec, target, parts = t.args[:3]
        try:
            items = parse_spec(spec.value) if isinstance(spec, Lit) and isinstance(spec.value, str) else None
        except ValueError:
            items = None
        if items is None:
            return None
        count = part_count(items)
        if count == 1:
            values = [parts]
        elif count == 0 and parts == Lit(()):
            values = []
        elif count > 1 and isinstance(parts, Tuple) and len(parts.items) == count:
            values = list(parts.items)
        else:
            return None
        it = iter(values)
        texts = []
        for item in items:
            if item == ELLIPSIS:
                texts.append(ELLIPSIS)
            elif isinstance(item, Slice):
                present = (item.start, item.stop, item.step)
                bounds = [self.term(next(it), 1, indent) if p else "" for p in present]
                texts.append(":".join(bounds if item.step else bounds[:2]))
            else:
                texts.append(self.block(next(it), indent))
        indexed = isinstance(target, Prim) and t.op in UPDATES and target.op in _INDEXING
        head = f"({self.term(target, 0, indent)})" if indexed else self.term(target, _ATOM, indent)
        text = f"{head}[{', '.join(texts)}]"
        if t.op in UPDATES:
            return f"{text} {UPDATES[t.op]} {self.block(t.args[3], indent)}", 0
        return text, _ATOM

    def block(self, t: Term, indent: int) -> str:
        """A term where the grammar takes a block, as the items of an index and the value
        of an update do: anything but an ascription, which is parenthesised."""
        return self.term(t, 1 if isinstance(t, Ann) else 0, indent)

    def _infix(self, operator: Operator, symbol: str, left: Term, right: Term, indent: int) -> tuple[str, int]:
        prec, assoc = operator.precedence, operator.assoc
        left_text = self.term(left, prec + (assoc != "left"), indent)
        return f"{left_text} {symbol} {self.term(right, prec + (assoc != 'right'), indent)}", prec

    def _binder_body(self, head: str, body: Term, indent: int) -> str:
        """``λx. body``, the body on the next line, indented, when it spans several."""
        text = self.term(body, 0, indent)
        if "\n" not in text and indent + len(head) + len(text) < _WIDTH:
            return f"{head} {text}"
        return f"{head}\n{' ' * (indent + 4)}{self.term(body, 0, indent + 4)}"

    def _binding(self, b: Let, indent: int) -> str:
        """``p = t``; a bound term spanning several lines starts on a line of its own."""
        bound = self.term(b.bound, 0, indent)
        if "\n" in bound:
            return f"{self.pattern(b.pattern)} =\n{' ' * (indent + 4)}{self.term(b.bound, 0, indent + 4)}"
        return f"{self.pattern(b.pattern)} = {bound}"

    def _let(self, t: Let, indent: int) -> str:
        bindings = []
        body: Term = t
        while isinstance(body, Let):
            bindings.append(body)
            body = body.body
        lines, names = [], []
        for b in bindings:
            lines.append(self._binding(b, indent + 4))
            names += self.enter(b.pattern)
        rest = self.term(body, 0, indent)
        self.leave(names)
        one_line = f"let {'; '.join(lines)} in {rest}"
        if len(bindings) < _LONG_LET and "\n" not in one_line and indent + len(one_line) <= _WIDTH:
            return one_line
        pad = " " * (indent + 4)
        return "let " + (";\n" + pad).join(lines) + "\n" + " " * indent + "in " + rest


def _pattern_type(p: Pattern) -> Type | None:
    """The type of a pattern all of whose variables are annotated, else ``None``."""
    if isinstance(p, (PVar, PWild)):
        return p.annot
    if isinstance(p, (PTuple, PRecord)):
        if p.annot is not None:  # a type alias's name, as written
            return p.annot
        items = [_pattern_type(i) for i in p.items]
        if any(i is None for i in items):
            return None
        return TupleType(tuple(items)) if isinstance(p, PTuple) else record_type(zip(p.fields, items))
    return None


def _bare(p: Pattern) -> str:
    if isinstance(p, PVar):
        return p.name
    if isinstance(p, PWild):
        return "_"
    if isinstance(p, PRecord):
        return "{" + ", ".join(_field(f, _bare(i)) for f, i in zip(p.fields, p.items)) + "}"
    return "(" + ", ".join(_bare(i) for i in p.items) + ")"


def _field(name: str, text: str) -> str:
    """A field of a record or of its pattern: ``w = t``, or ``w`` alone for ``w = w``."""
    return name if text == name else f"{name} = {text}"


def _literal(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value == ():
        return "()"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "n" in text) else text + ".0"
    return str(value)



# --------------------------------------------------------------------- values

ARRAY_TYPES = (Base("Tensor"), Base("IntTensor"), Base("BoolTensor"))
"""The types whose values are arrays."""
_BOOLS = {"bool": lambda b: "true" if b else "false"}  # as lamad writes them


PRINT_MODES = ("short", "full")
"""How arrays are printed: ``short`` elides the middle of an array of over
:data:`SHORT_THRESHOLD` entries with ``...``, as NumPy does; ``full`` prints every entry."""
SHORT_THRESHOLD = 200


def format_value(value, t: Type, ascii: bool = False, shapes: bool = False, full: bool = False) -> str:
    """Print a value of type ``t``: numbers plainly, tensors as NumPy prints them (after
    their dtype and shape, JAX-style ``f64[2,3]``, with ``shapes``; whole with ``full``,
    else with the middle of a large one elided), functions as ``<fun : A -> B>``; a tuple
    or list with an item on several lines has one item a line."""
    if t == Base("Real"):
        return repr(float(value))
    if t in ARRAY_TYPES:
        import sys

        import numpy as np

        host = host_array(value)
        head = array_label(host) + " " if shapes else ""
        threshold = sys.maxsize if full else SHORT_THRESHOLD
        return head + np.array2string(host, separator=", ", threshold=threshold, prefix=head, formatter=_BOOLS)
    if t == Base("Bool"):
        return "true" if value else "false"
    if t == Base("Int"):
        return str(int(value))
    if t == Base("Unit"):
        return "()"
    if t == Base("String"):
        return _literal(value)
    if isinstance(t, TupleType):
        return _items("(", [format_value(v, i, ascii, shapes, full) for v, i in zip(value, t.items)], ")")
    if isinstance(t, ListType):
        return _items("[", [format_value(v, t.elem, ascii, shapes, full) for v in value], "]")
    if isinstance(t, RecordType):
        return _items("{", [f"{f} = {format_value(v, i, ascii, shapes, full)}"
                            for f, v, i in zip(t.fields, value, t.items)], "}")
    if isinstance(t, (FunType, LinType)):
        return f"<fun : {pretty_type(t, ascii)}>"
    return str(value)


def host_array(value):
    """An array value as a NumPy array on the host (a CuPy array copied: for display only)."""
    import numpy as np

    return np.asarray(value.get() if hasattr(value, "get") else value)


def array_label(host) -> str:
    """A host array's dtype and shape, JAX-style, as printed before its entries: ``f64[2,3]``."""
    return f"{host.dtype.kind}{8 * host.dtype.itemsize}[{','.join(map(str, host.shape))}]"


def _items(open_: str, items: list[str], close: str) -> str:
    text = ", ".join(items)
    if "\n" in text:
        text = ",\n ".join(item.replace("\n", "\n ") for item in items)
    return open_ + text + close


# --------------------------------------------------------------------- derivatives

def pretty_derivative(label: str, ty: Type, term: Term, ascii: bool = False, definition: bool = False,
                      forward: bool = False, shadowed: frozenset[str] = frozenset()) -> str:
    """``-- ←D(label) : ←D(A)`` (``→D`` for the ``forward`` transform) and the transformed
    term below it, as ``lamad grad`` and the REPL print it; a ``definition`` is printed as
    ``def label``, its leading annotated lambdas as parameters (``def dense`` for an imported
    definition ``nn.dense``: a definition's name has no dot).  ``shadowed`` are the names
    of the program's definitions: a primitive of one of those names prints ``%name``."""
    mark = ("JD" if forward else "D") if ascii else ("→D" if forward else "←D")
    head = f"-- {mark}({label}) : {pretty_type(ty, ascii)}"
    if not definition:
        return f"{head}\n{pretty(term, ascii, shadowed=shadowed)}"
    params = []
    while isinstance(term, Lam) and isinstance(term.param, PVar) and term.param.annot is not None:
        params.append(Param(term.param.name, term.param.annot))
        term = term.body
    name = label.rpartition(".")[2]
    return f"{head}\n{pretty(Def(name, tuple(params), None, term), ascii, shadowed=shadowed)}"
