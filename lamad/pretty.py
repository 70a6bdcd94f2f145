"""Printing terms, types and programs (docs/differentiation.md, Names in derivative
programs): Unicode by default, ASCII on request, with the fewest parentheses the
precedences of the operators (their records, docs/primitives.md) allow, so that
``parse(pretty(t))`` gives ``t`` back.  Types are printed by
:func:`lamad.syntax.pretty_type` (available here too), which ``str`` of a type uses."""

from __future__ import annotations

import re
from functools import partial
from typing import Callable

from lamad.gradient import ZERO, Backpropagator, gradient_records
from lamad.prims import PRIMITIVES, Operator
from lamad.syntax import (
    GRAD, Ann, App, Base, DAdd, DZero, Def, FunType, If, Import, Lam, Let, LinLam, LinType, ListLit, ListType, Lit, Param,
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
_OPENINGS = (".", "⊸", "-o", "(", "[", "{")
"""How the first line of a term that goes on below ends: a lambda's head, its body below,
or a bracket, its items below."""
_LONG_LET = 3
"""A ``let`` with at least this many bindings is printed one binding per line."""
WIDTH = 88
"""Lines longer than this are broken (at ``let`` bindings, lambda bodies, the branches of an
``if``, the arguments of an application, the items of a tuple, list or record), unless
``pretty`` is given another width: the REPL gives its terminal's."""


def pretty(term: Term | Def | Program, ascii: bool = False, width: int = WIDTH,
           shadowed: frozenset[str] = frozenset()) -> str:
    """Print a term, a definition or a whole program so that it parses back, in lines of at
    most ``width`` characters where the layout allows it (a name or literal longer than
    that is not broken).  A primitive that is not public, or whose name a binding in scope
    shadows (among them the names in ``shadowed``, bound outside the term), is printed
    ``%name``, as are marked AD operators (``%grad'rf``).

    Each term is printed once, at the indentation its broken layout would give it; its
    parent puts it on one line when it has no line break and the line fits, else breaks
    it (so printing is linear in the size of the term, not exponential in its depth)."""
    if isinstance(term, Program):
        texts = ["\n".join(_import(i) for i in term.imports)] if term.imports else []
        texts += [f"type {a.name}{' ' + a.param if a.param else ''} = {pretty_type(a.body, ascii)}"
                  for a in term.aliases]
        for d in term.defs:
            texts.append(pretty(d, ascii, width, shadowed))
            shadowed = shadowed | {d.name}
        return "\n\n".join(texts) + "\n"
    if isinstance(term, Def):
        return _def(term, ascii, width, shadowed)
    return _Printer(ascii, width, shadowed).term(term, 0, 0)


def _import(i: Import) -> str:
    """``import nn``, ``import "layers.lam" as L``."""
    path = i.path if i.library else _literal(i.path)
    return f"import {path}" + (f" as {i.alias}" if i.alias is not None else "")


def _def(d: Def, ascii: bool, width: int, shadowed: frozenset[str]) -> str:
    params = "".join(f" ({p.name} : {pretty_type(p.annot, ascii)})" for p in d.params)
    result = f" : {pretty_type(d.result, ascii)}" if d.result is not None else ""
    body = _Printer(ascii, width, shadowed | {p.name for p in d.params}).term(d.body, 0, 4)
    head = f"def {d.name}{params}{result} ="
    sep = "\n    " if "\n" in body or len(head) + 1 + len(body) > width else " "
    return f"{head}{sep}{body}"


class _Printer:
    def __init__(self, ascii: bool, width: int = WIDTH, shadowed: frozenset[str] = frozenset()):
        self.ascii = ascii
        self.width = width
        self.taken = 0  # columns before the lambda printed next, on its first line: see narrowed
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
        if isinstance(t, (Tuple, ListLit)):
            open_, close = "()" if isinstance(t, Tuple) else "[]"
            items = [self.term(i, 0, indent) for i in t.items]
            again = partial(self.narrowed, t.items[-1], 0, indent) if t.items else None
            return self.bracketed(open_, items, close, indent, again), _ATOM
        if isinstance(t, Record):
            items = [_field(f, self.term(i, 0, indent)) for f, i in zip(t.fields, t.items)]
            return self.bracketed("{", items, "}", indent), _ATOM
        if isinstance(t, Proj):
            return f"{self.term(t.term, _ATOM, indent)}.{t.field}", _ATOM
        if isinstance(t, App):
            args = []
            while isinstance(t, App):
                args.append(t.arg)
                t = t.fn
            args.reverse()
            if isinstance(t, Prim) and _written_applied(t):  # one application: %grad'r f x
                return self._application(self.primitive(t), [*t.args, *args], indent), _APP
            return self._application(self.term(t, _APP, indent), args, indent), _APP
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
            return self._if(t, indent), 0
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
        text = self._application(self.primitive(t), list(t.args), indent)
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
        """``a + b`` on one line where it fits; else a chain of operators of one precedence,
        ``a + b - c`` (a sum of backpropagators applied, most often), broken before each
        operator, indented by four."""
        prec, assoc = operator.precedence, operator.assoc
        operands, symbols = [right], [symbol]
        while assoc == "left" and (parts := self._binary(left)) is not None and parts[0] == operator.precedence:
            _, more, left, right = parts
            operands.append(right)
            symbols.append(more)
        texts = [self.term(left, prec + (assoc != "left"), indent)]
        texts += [self.term(o, prec + (assoc != "right"), indent + 4) for o in reversed(operands)]
        pairs = [f"{s} {o}" for s, o in zip(reversed(symbols), texts[1:])]
        if self.fits(indent, " ".join([texts[0], *pairs])):
            return " ".join([texts[0], *pairs]), prec
        return texts[0] + "".join(f"\n{' ' * (indent + 4)}{p}" for p in pairs), prec

    def _binary(self, t: Term) -> tuple[int, str, Term, Term] | None:
        """The precedence, symbol and operands of a term printed as a binary operator."""
        if isinstance(t, DAdd):
            return _ADD.precedence, _ADD.symbol, t.left, t.right
        if not isinstance(t, Prim) or len(t.args) != 2 or t.op in _INDEXING:
            return None
        prim = PRIMITIVES.get(t.op)
        operator = prim.operator if prim is not None else _CONNECTIVES.get(t.op)
        if operator is None or operator.assoc == "prefix":
            return None
        return operator.precedence, _sym("*", self.ascii) if t.op == "mul" else operator.symbol, *t.args

    def fits(self, indent: int, *texts: str) -> bool:
        """Whether ``texts`` make one line that fits, after ``indent`` columns."""
        return all("\n" not in t for t in texts) and indent + sum(map(len, texts)) <= self.width

    def bracketed(self, open_: str, items: list[str], close: str, indent: int,
                  last: Callable[[int], str] | None = None) -> str:
        """``(a, b, c)`` (the items printed at ``indent``) on one line where it fits, or with
        its last item alone spanning lines (``(y, λa ⊸`` and the body below) where the
        first line fits; else one item a line, indented by four, and the bracket closed on
        a line of its own.  ``last`` prints the last item again in a line shorter by the
        columns it is given: a lambda that fit alone, broken after its head to follow the
        others."""
        text = open_ + ", ".join(items) + close
        if not items or self.fits(indent, text) or self.hugs(indent, open_, items):
            return text
        if last is not None and _one_line_lambda(items[-1]):
            again = [*items[:-1], last(len(open_) + sum(len(i) + 2 for i in items[:-1]))]
            if self.hugs(indent, open_, again):
                return open_ + ", ".join(again) + close
        pad = " " * (indent + 4)
        return f"{open_}\n{pad}" + f",\n{pad}".join(map(_shifted, items)) + f"\n{' ' * indent}{close}"

    def _application(self, head: str, args: list[Term], indent: int) -> str:
        """``head`` applied to ``args``, laid out by :meth:`applied`."""
        again = partial(self.narrowed, args[-1], _ATOM, indent) if args else None
        return self.applied(head, [self.term(a, _ATOM, indent) for a in args], indent, again)

    def applied(self, head: str, args: list[str], indent: int, last: Callable[[int], str] | None = None) -> str:
        """``f a b c`` (the arguments printed at ``indent``) on one line where it fits, or
        with its last argument alone spanning lines where the first line fits (``last``
        prints it again, as :meth:`bracketed` says); else as many arguments as fit after
        the function, and each of the others on a line of its own, indented by four."""
        if self.fits(indent, head, *(" " + a for a in args)) or self.hugs(indent, head + " ", args, " "):
            return " ".join([head, *args])
        if last is not None and _one_line_lambda(args[-1]):
            again = [*args[:-1], last(len(head) + sum(len(a) + 1 for a in args[:-1]) + 1)]
            if self.hugs(indent, head + " ", again, " "):
                return " ".join([head, *again])
        line, rest = head, list(args)
        while rest and self.fits(indent, line, " ", rest[0]):
            line = f"{line} {rest.pop(0)}"
        return line + "".join(f"\n{' ' * (indent + 4)}{_shifted(a)}" for a in rest)

    def narrowed(self, t: Term, level: int, indent: int, taken: int) -> str:
        """A lambda ``t`` printed again, its first line after ``taken`` columns of others:
        its body on the next lines unless it fits there too (:meth:`_binder_body`)."""
        self.taken = taken
        try:
            return self.term(t, level, indent)
        finally:
            self.taken = 0

    def hugs(self, indent: int, head: str, items: list[str], sep: str = ", ") -> bool:
        """Whether ``items`` after ``head`` may keep the line: all but the last on one line,
        and the first line of the last, a lambda whose body or a bracket whose items are on
        the lines below, fit."""
        *first, last = items
        opening, _, below = last.partition("\n")
        return bool(below) and opening.endswith(_OPENINGS) and self.fits(indent, head, *(i + sep for i in first), opening)

    def _if(self, t: If, indent: int) -> str:
        """``if c then a else b`` on one line where it fits, else each branch on lines of
        its own, indented by four; a chain of ``if``s in ``else`` branches is one chain,
        ``else if c' then``, broken all alike."""
        branches = []
        while isinstance(t, If):
            branches.append((self.term(t.cond, 0, indent + 8), self.term(t.then, 0, indent + 4)))
            t = t.orelse
        orelse = self.term(t, 0, indent + 4)
        one_line = " else ".join(f"if {c} then {a}" for c, a in branches) + f" else {orelse}"
        if self.fits(indent, one_line):
            return one_line
        pad, here = " " * (indent + 4), " " * indent
        chain = f"\n{here}else ".join(f"if {c} then\n{pad}{a}" for c, a in branches)
        return f"{chain}\n{here}else\n{pad}{orelse}"

    def _binder_body(self, head: str, body: Term, indent: int) -> str:
        """``λx. body``, the body on the next line, indented, when it spans several or
        does not fit."""
        taken, self.taken = self.taken, 0  # the columns before it on its line (:meth:`narrowed`)
        text = self.term(body, 0, indent + 4)
        if self.fits(indent + taken, head, " ", text):
            return f"{head} {text}"
        return f"{head}\n{' ' * (indent + 4)}{text}"

    def _binding(self, b: Let, indent: int) -> str:
        """``p = t``; a bound term spanning several lines starts on a line of its own."""
        pattern = self.pattern(b.pattern)
        bound = self.term(b.bound, 0, indent + 4)
        if "\n" in bound:
            return f"{pattern} =\n{' ' * (indent + 4)}{bound}"
        return f"{pattern} = {bound}"

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
        if len(bindings) < _LONG_LET and self.fits(indent, one_line):
            return one_line
        pad = " " * (indent + 4)
        return "let " + (";\n" + pad).join(lines) + "\n" + " " * indent + "in " + rest


def _written_applied(t: Prim) -> bool:
    """Whether a primitive's application is printed as an application, ``f x y`` (not as an
    operator, an indexing, or with the type it gives)."""
    prim = PRIMITIVES.get(t.op)
    return (prim is not None and prim.operator is None and t.op not in _INDEXING
            and not (prim.typing == "context" and t.ty is not None))


def _one_line_lambda(text: str) -> bool:
    """Whether a printed term is a lambda (in parentheses or not) on one line."""
    return "\n" not in text and text.lstrip("(").startswith(("λ", "\\"))


def _shifted(text: str) -> str:
    """A printed term moved four columns right: its lines after the first, printed at an
    indentation, are at that indentation or deeper (a string literal holds no line break:
    :func:`_literal`)."""
    return text.replace("\n", "\n    ")


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
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
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
    else with the middle of a large one elided), functions as ``<fun : A -> B>`` (a
    backpropagator with its number, ``<backpropagator #3 : Real⊥>``), a gradient value
    (type ``d``) as its sum of cotangents sent (:func:`format_gradient`); a tuple or list
    with an item on several lines has one item a line."""
    if t == Base("Real"):
        return repr(float(value))
    if t in ARRAY_TYPES:
        return _array(value, shapes, full)
    if t == GRAD:
        return format_gradient(value, ascii, shapes, full)
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
        if isinstance(value, Backpropagator):
            return f"<backpropagator #{value.id} : {pretty_type(t, ascii)}>"
        return f"<fun : {pretty_type(t, ascii)}>"
    return _untyped(value, ascii, shapes, full)


def _array(value, shapes: bool, full: bool) -> str:
    """An array as NumPy prints it, after its dtype and shape with ``shapes``."""
    import sys

    import numpy as np

    host = host_array(value)
    head = array_label(host) + " " if shapes else ""
    threshold = sys.maxsize if full else SHORT_THRESHOLD
    return head + np.array2string(host, separator=", ", threshold=threshold, prefix=head, formatter=_BOOLS)


def format_gradient(value, ascii: bool = False, shapes: bool = False, full: bool = False) -> str:
    """A gradient value, an element of the module ``d`` (docs/differentiation.md, "At run
    time"): the lazy sum of the cotangents sent to backpropagators and not yet
    backpropagated, each ``#n ← v`` (``v`` sent to the backpropagator numbered ``n``, as
    ``<backpropagator #n : A⊥>`` prints it), in the order of the sum; ``0`` for none.
    Over :data:`SHORT_THRESHOLD` of them, the middle is elided unless ``full``."""
    records = list(gradient_records(value))
    arrow = "<-" if ascii else "←"
    texts = [f"#{bp.id} {arrow} {_untyped(ct, ascii, shapes, full)}" for bp, ct in records]
    if not full and len(texts) > SHORT_THRESHOLD:
        texts = [*texts[:3], "...", *texts[-3:]]
    return " + ".join(texts) if texts else "0"


def _untyped(value, ascii: bool, shapes: bool, full: bool) -> str:
    """A run-time value whose type is not at hand, as :func:`format_value` prints its type's:
    the cotangent a backpropagator was sent (its type is the backpropagator's domain,
    which run time does not keep)."""
    if isinstance(value, Backpropagator):
        return f"<backpropagator #{value.id}>"
    if isinstance(value, (bool, str)) or (isinstance(value, tuple) and not value):
        return _literal(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) or type(value).__module__ in ("numpy", "cupy"):
        is_array = getattr(value, "ndim", 0) > 0 or hasattr(value, "get")
        return _array(value, shapes, full) if is_array else format_value(value, _scalar_type(value))
    if isinstance(value, tuple):
        return _items("(", [_untyped(v, ascii, shapes, full) for v in value], ")")
    if isinstance(value, list):
        return _items("[", [_untyped(v, ascii, shapes, full) for v in value], "]")
    if value is ZERO:
        return "0"
    return "<fun>" if callable(value) else f"<{type(value).__name__}>"


def _scalar_type(value) -> Type:
    """The lamad type of a number held by NumPy or Python."""
    kind = getattr(getattr(value, "dtype", None), "kind", "f")
    return {"b": Base("Bool"), "i": Base("Int"), "u": Base("Int")}.get(kind, Base("Real"))


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
                      forward: bool = False, shadowed: frozenset[str] = frozenset(), width: int = WIDTH) -> str:
    """``-- ←D(label) : ←D(A)`` (``→D`` for the ``forward`` transform) and the transformed
    term below it, in lines of ``width``, as ``lamad grad`` and the REPL print it; the
    label on the one line of the comment, however long; a ``definition`` is printed as
    ``def label``, its leading annotated lambdas as parameters (``def dense`` for an imported
    definition ``nn.dense``: a definition's name has no dot).  ``shadowed`` are the names
    of the program's definitions: a primitive of one of those names prints ``%name``."""
    mark = ("JD" if forward else "D") if ascii else ("→D" if forward else "←D")
    label = re.sub(r"\n *", " ", label)
    head = f"-- {mark}({label}) : {pretty_type(ty, ascii)}"
    if not definition:
        return f"{head}\n{pretty(term, ascii, width, shadowed)}"
    params = []
    while isinstance(term, Lam) and isinstance(term.param, PVar) and term.param.annot is not None:
        params.append(Param(term.param.name, term.param.annot))
        term = term.body
    name = label.rpartition(".")[2]
    return f"{head}\n{pretty(Def(name, tuple(params), None, term), ascii, width, shadowed)}"
