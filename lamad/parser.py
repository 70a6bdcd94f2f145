"""Source text to AST (docs/language.md), with the LALR grammar of ``grammar/lam.lark``.

``parse_program`` reads a whole ``.lam`` file, ``parse_term`` one expression and
``parse_type`` one type.  Every failure is a :class:`LamSyntaxError` that says
what was expected and where.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator

import lark
from lark import Lark, Token

from lamad.errors import LamSyntaxError
from lamad.syntax import (
    ELLIPSIS, PART, Ann, App, BASE_TYPES, Def, FunType, If, Import, IndexItem, Lam, Let, LinLam, LinType, ListLit,
    ListType, Lit, Param, Pattern, Prim, Program, Proj, PRecord, PTuple, PVar, PWild, Record, Slice, Source,
    Span, Term, Tuple, TupleType, Type, TypeDef, TypeName, TypeParam, Var, annotated, perp, record_type, spec_text,
)

KEYWORDS = frozenset({"def", "type", "import", "let", "in", "if", "then", "else", "true", "false"})
_NOT_TERMS = KEYWORDS - {"true", "false"}
"""The keywords that are no expression."""

_TERMINAL_NAMES = {
    "NAME": "a name", "PRIM": "a primitive", "INT": "an integer", "REAL": "a real number", "STRING": "a string",
    "LAMBDA": "'\\'", "INDEX_OPEN": "'[' (an index)", "ARROW": "'->'", "LOLLI": "'-o'", "TIMES": "'*'", "MUL": "'*'",
    "$END": "end of input",
}


_PARSING = threading.Lock()
"""Parses take turns: the parser's callbacks are shared."""

_source: Source | None = None
"""The file the parse under way reads, when its spans should say so (an imported
module's): set under :data:`_PARSING`, for :func:`_between` and :func:`_token_span`."""


def _grammar_text() -> str:
    """The grammar ships inside the package (``lamad/grammar/lam.lark``, put there by the
    wheel build); in a source checkout it is read from the top-level ``grammar/``."""
    shipped = resources.files("lamad") / "grammar" / "lam.lark"
    if shipped.is_file():
        return shipped.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "grammar" / "lam.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _parser() -> Lark:
    """The LALR parser, which builds the AST as it reduces (no parse tree is made)."""
    return Lark(_grammar_text(), parser="lalr", start=["start", "expr", "type"], maybe_placeholders=True,
                keep_all_tokens=True, transformer=_Builder())


def _between(first: Token, last: Token) -> Span:
    """The span from the start of token ``first`` to the end of token ``last``."""
    return Span(first.start_pos, last.end_pos, first.line, first.column, last.end_line, last.end_column, _source)


def _token_span(tok: Token) -> Span:
    return Span(tok.start_pos, tok.end_pos, tok.line, tok.column, tok.end_line, tok.end_column, _source)


def _name(tok: Token) -> str:
    if str(tok) in KEYWORDS:
        raise LamSyntaxError(f"'{tok}' is a keyword and cannot be used as a name", _token_span(tok))
    return str(tok)


def _annotate(p: Pattern, t: Type, span: Span | None) -> Pattern:
    """``(p : A)``: an annotated tuple or record pattern annotates its components."""
    done = annotated(p, t)
    if done is None:
        raise LamSyntaxError(f"this pattern cannot have type {t}", span)
    return replace(done, span=span)


def _string(tok: Token) -> str:
    """The text a string literal stands for: Python's escapes, non-ASCII text going
    through as ``\\uXXXX`` so that it is not mangled."""
    text = str(tok)[1:-1]
    if "\\" in text:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # unknown escapes (\\d) stay as written
                text = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError as e:
            raise LamSyntaxError(f"bad escape sequence in string literal: {e.reason}", _token_span(tok)) from None
    return text


def _fields(ch, what: str, pun=None) -> list[tuple[str, object]]:
    """The fields of a record, its pattern or its type, ``(name, value)`` in the order
    written; a field named twice is an error at the second.  A field written without a
    value (``{w, b}``) is punned: ``pun(name)``, a variable or a pattern of its name."""
    seen: set[str] = set()
    out = []
    for c in ch[1:-1:2]:
        name, value, span = c[0]
        if name in seen:
            raise LamSyntaxError(f"the field '{name}' is given twice in this {what}", span)
        seen.add(name)
        out.append((name, value if value is not None else pun(name, span=span)))
    return out


# What the parser's stack holds for a reduced rule: ``(value, first, last)``, the AST
# node (or type, binding, ...) with the first and last tokens of the text it was reduced
# from.  A node's span runs from ``first`` to ``last``; for a parenthesised term the node
# keeps the span of its inside while the triple's tokens take in the parentheses, so an
# enclosing node's span covers them (as a parse tree's positions would).  Tokens are on
# the stack as they are (every token is kept: ``keep_all_tokens``).


def _built(rule):
    """The parser callback of a rule method: the method's value, between the tokens that
    begin and end the rule's children.  Once a method has raised a syntax error the
    parse goes on to its end (a later error in the grammar is reported first, as a
    parse tree transformed afterwards would) and builds nothing more."""

    def callback(self, ch):
        first, last = ch[0], ch[-1]
        if first is None or last is None:  # an optional part left out at an end: a slice's bound
            present = [c for c in ch if c is not None]
            first, last = present[0], present[-1]
        if first.__class__ is not Token:
            first = first[1]
        if last.__class__ is not Token:
            last = last[2]
        if self.error is None:
            try:
                return rule(ch, first, last), first, last
            except LamSyntaxError as e:
                self.error = e
        return None, first, last

    callback.__name__ = rule.__name__
    return callback


def _binary(op: str):
    """The method for a binary operator: a two-argument :class:`Prim`."""

    def method(ch, first, last):
        return Prim(op, (ch[0][0], ch[-1][0]), span=_between(first, last))

    method.__name__ = op
    return _built(method)


def _items(ch) -> tuple:
    """The values between brackets and after separators: ``( a , b , c )``."""
    return tuple([c[0] for c in ch[1:-1:2]])


@dataclass(frozen=True)
class _Slice:
    """A slice ``start:stop:step`` of an index while it is parsed; an absent bound is ``None``."""

    bounds: tuple[Term | None, ...]


_ELLIPSIS = object()
"""The ``...`` of an index while it is parsed."""


def _index(target: Term, items: list[tuple], span: Span, brackets: Span) -> Prim:
    """``target[items]`` as ``index spec target parts`` (lamad/prims/indexing.py): the spec
    says what each position holds, and the parts are the values written in it."""
    positions: list[IndexItem] = []
    parts: list[Term] = []
    for value, first, _ in items:
        if value is _ELLIPSIS:
            if ELLIPSIS in positions:
                raise LamSyntaxError("an index has at most one '...'", _token_span(first))
            positions.append(ELLIPSIS)
        elif isinstance(value, _Slice):
            bounds = value.bounds + (None,) * (3 - len(value.bounds))
            positions.append(Slice(*(b is not None for b in bounds)))
            parts += [b for b in bounds if b is not None]
        else:
            positions.append(PART)
            parts.append(value)
    if not parts:
        packed: Term = Lit((), span=brackets)
    elif len(parts) == 1:
        packed = parts[0]
    else:
        packed = Tuple(tuple(parts), span=parts[0].span.to(parts[-1].span))
    return Prim("index", (Lit(spec_text(tuple(positions)), span=brackets), target, packed), span=span)


def _update(op: str, ch, first: Token, last: Token) -> Prim:
    """``x[…] := v`` and ``x[…] += v``: the index's arguments and the value.  The indexed
    value may not be an index itself unless it is parenthesised: ``x[0][1] := v`` would be
    the row ``x[0]`` updated, not ``x``, which ``x[0, 1] := v`` is."""
    index, value = ch[0][0], ch[2][0]
    target = index.args[1]
    if isinstance(target, Prim) and target.op == "index" and target.span.start <= first.start_pos:
        raise LamSyntaxError(f"'{ch[1]}' updates the value indexed last: write x[i, j] {ch[1]} v to update x "
                             f"(or (x[i])[j] {ch[1]} v for the row x[i])", _between(first, ch[0][2]))
    return Prim(op, index.args + (value,), span=_between(first, last))


class _Builder:
    """The parser's callbacks, one per rule (by name or alias): each builds the AST node
    of a reduction from the values on the stack, bottom-up, so that no parse tree is
    built and deep programs parse without recursion.  ``error`` is the first syntax
    error a callback met in the current parse."""

    def __init__(self):
        self.error: LamSyntaxError | None = None

    # -- programs
    def start(self, ch):
        items = [c[0] for c in ch]
        return Program(tuple([i for i in items if isinstance(i, Def)]),
                       tuple([i for i in items if isinstance(i, Import)]),
                       tuple([i for i in items if isinstance(i, TypeDef)])), None, None

    @_built
    def import_(ch, first, last):
        target, alias = ch[1], ch[3]
        library = target.type == "NAME"
        path = str(target) if library else _string(target)
        return Import(path, library, _name(alias) if alias is not None else None, span=_between(first, last))

    @_built
    def type_alias(ch, first, last):
        name = str(ch[1])
        if name in BASE_TYPES or name == "List":
            raise LamSyntaxError(f"'{name}' is a base type; an alias needs a name of its own", _token_span(ch[1]))
        param = None if ch[2] is None else str(ch[2])
        return TypeDef(_name(ch[1]), ch[4][0], param, span=_between(first, last))

    @_built
    def definition(ch, first, last):
        name, mid = ch[1], ch[2:-2]
        result = None
        if mid and mid[-1] is None:  # placeholders of the missing ': type'
            mid = mid[:-2]
        elif len(mid) >= 2 and mid[-2].__class__ is Token:  # ':' type
            result, mid = mid[-1][0], mid[:-2]
        return Def(_name(name), tuple([p[0] for p in mid]), result, ch[-1][0], span=_between(first, last),
                   name_span=_token_span(name))

    @_built
    def param(ch, first, last):
        return Param(_name(ch[1]), ch[3][0], span=_between(first, last))

    # -- patterns
    @_built
    def pvar(ch, first, last):
        return PVar(_name(ch[0]), span=_between(first, last))

    @_built
    def pwild(ch, first, last):
        return PWild(span=_between(first, last))

    @_built
    def pann(ch, first, last):
        return _annotate(ch[1][0], ch[3][0], _between(first, last))

    @_built
    def ptuple(ch, first, last):
        return PTuple(_items(ch), span=_between(first, last))

    @_built
    def precord(ch, first, last):
        names, patterns = zip(*_fields(ch, "pattern", PVar))
        return PRecord(names, patterns, span=_between(first, last))

    @_built
    def pfield(ch, first, last):
        return _name(ch[0]), ch[2][0] if ch[2] is not None else None, _token_span(ch[0])

    @_built
    def pattern(ch, first, last):  # ( pattern )
        return ch[1][0]

    @_built
    def binding(ch, first, last):
        return ch[0][0], ch[2][0]

    # -- binders
    @_built
    def lam(ch, first, last):
        span, body = _between(first, last), ch[-1][0]
        for p in reversed(ch[1:-2]):
            body = Lam(p[0], body, span=span)
        return body

    @_built
    def linlam(ch, first, last):
        return LinLam(ch[1][0], ch[3][0], span=_between(first, last))

    @_built
    def let(ch, first, last):
        span, body = _between(first, last), ch[-1][0]
        for binding in reversed(ch[1:-2:2]):
            pattern, bound = binding[0]
            body = Let(pattern, bound, body, span=span)
        return body

    @_built
    def cond(ch, first, last):
        return If(ch[1][0], ch[3][0], ch[5][0], span=_between(first, last))

    @_built
    def ascribe(ch, first, last):
        return Ann(ch[0][0], ch[2][0], span=_between(first, last))

    # -- operators
    add, sub, mul, div = _binary("add"), _binary("sub"), _binary("mul"), _binary("div")
    matmul, pow, and_, or_ = _binary("matmul"), _binary("pow"), _binary("and"), _binary("or")
    floordiv, mod = _binary("floordiv"), _binary("mod")
    lt, le, gt, ge, eq, ne = (_binary(op) for op in ("lt", "le", "gt", "ge", "eq", "ne"))

    @_built
    def neg(ch, first, last):
        return Prim("neg", (ch[1][0],), span=_between(first, last))

    @_built
    def apply(ch, first, last):
        return App(ch[0][0], ch[1][0], span=_between(first, last))

    # -- atoms
    @_built
    def var(ch, first, last):
        if first in _NOT_TERMS:  # the lexer reads a keyword where a name may be
            hint = {"def": "; the definition before it has no body",
                    "import": "; a program's imports come first, before its aliases and definitions"}.get(str(first), "")
            raise LamSyntaxError(f"unexpected '{first}'; expected an expression{hint}", _token_span(first))
        return Var(_name(first), span=_between(first, last))

    @_built
    def prim_ref(ch, first, last):
        return Var(str(first), span=_between(first, last))

    @_built
    def int_lit(ch, first, last):
        try:
            value = int(first)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise LamSyntaxError(f"integer literal too long ({len(first)} digits)", _between(first, last)) from None
        return Lit(value, span=_between(first, last))

    @_built
    def real_lit(ch, first, last):
        return Lit(float(first), span=_between(first, last))

    @_built
    def string_lit(ch, first, last):
        return Lit(_string(first), span=_between(first, last))

    @_built
    def true_lit(ch, first, last):
        return Lit(True, span=_between(first, last))

    @_built
    def false_lit(ch, first, last):
        return Lit(False, span=_between(first, last))

    @_built
    def unit_lit(ch, first, last):
        return Lit((), span=_between(first, last))

    @_built
    def tuple(ch, first, last):
        return Tuple(_items(ch), span=_between(first, last))

    @_built
    def list(ch, first, last):
        items = () if ch[1] is None else _items(ch)
        return ListLit(items, span=_between(first, last))

    @_built
    def record(ch, first, last):
        names, values = zip(*_fields(ch, "record", Var))
        return Record(names, values, span=_between(first, last))

    field = pfield  # name = term, or a name alone, as a pattern's field is written

    @_built
    def proj(ch, first, last):
        target = ch[0][0]
        if isinstance(target, Lit) and type(target.value) in (int, float):  # 1.e3
            raise LamSyntaxError("a number has no fields: a real number has digits after its point (1.0e3)",
                                 _between(first, last))
        return Proj(target, _name(ch[2]), span=_between(first, last))

    @_built
    def atom(ch, first, last):  # ( expr )
        return ch[1][0]

    # -- indexing
    @_built
    def index(ch, first, last):
        return _index(ch[0][0], ch[2:-1:2], _between(first, last), _between(ch[1], last))

    @_built
    def slice(ch, first, last):
        return _Slice(tuple([c[0] if c is not None else None for c in ch[0::2]]))

    @_built
    def ellipsis(ch, first, last):
        return _ELLIPSIS

    @_built
    def index_set(ch, first, last):
        return _update("index_set", ch, first, last)

    @_built
    def index_add(ch, first, last):
        return _update("index_add", ch, first, last)

    # -- types
    @_built
    def fun_type(ch, first, last):
        return FunType(ch[0][0], ch[2][0])

    @_built
    def lin_type(ch, first, last):
        return LinType(ch[0][0], ch[2][0])

    @_built
    def tuple_type(ch, first, last):
        return TupleType(tuple([t[0] for t in ch[0::2]]))

    @_built
    def neg_type(ch, first, last):
        return perp(ch[1][0])

    @_built
    def perp_type(ch, first, last):
        return perp(ch[0][0])

    @_built
    def con_type(ch, first, last):
        name, arg = ch
        if str(name) in BASE_TYPES:
            raise LamSyntaxError(f"type '{name}' takes no argument (List and the aliases of one type variable "
                                 "do)", _token_span(name))
        return ListType(arg[0]) if str(name) == "List" else TypeName(str(name), _between(first, last), arg[0])

    @_built
    def qualified_con_type(ch, first, last):
        return TypeName(".".join(str(c) for c in ch[:-1:2]), _between(first, last), ch[-1][0])

    @_built
    def base_type(ch, first, last):
        name = str(first)
        if name == "List":
            known = ", ".join(sorted(BASE_TYPES))
            raise LamSyntaxError(f"unknown type 'List' (List needs an element type: List Real); the base types "
                                 f"are {known}", _token_span(first))
        return BASE_TYPES[name] if name in BASE_TYPES else TypeName(name, _token_span(first))

    @_built
    def type_param(ch, first, last):
        return TypeParam(str(first), _token_span(first))

    @_built
    def qualified_type(ch, first, last):
        return TypeName(".".join(str(c) for c in ch[0::2]), _between(first, last))

    @_built
    def record_type(ch, first, last):
        return record_type(_fields(ch, "record type"))

    @_built
    def tfield(ch, first, last):
        return _name(ch[0]), ch[2][0], _token_span(ch[0])

    @_built
    def type_atom(ch, first, last):  # ( type )
        return ch[1][0]


def _describe(terminals) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, None) or _literal(t) for t in terminals})
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1] if names else "nothing"


def _literal(terminal: str) -> str:
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"'{pattern.value}'" if pattern.type == "str" else terminal


class _Unsure(Exception):
    """The fast loop met input it does not take (a syntax error, most often): Lark's own
    parse runs instead, and reports it."""


class _Loop:
    """Lark's LALR tables and contextual lexers, run by a loop of lamad's own: the parse
    Lark's ``parse`` makes — the same tokens, reductions and callbacks, so the same AST —
    at about half the cost, as it goes through no generator, no lexer state objects and
    no per-token method calls.  On any input it does not take (a character no token
    starts, a token the state does not expect) it raises :class:`_Unsure`, and Lark's
    parse, which says what went wrong, runs instead."""

    def __init__(self, parser: Lark):
        from lark.parse_tree_builder import ExpandSingleChild
        from lark.parsers.lalr_analysis import Shift

        lalr = parser.parser.parser.parser
        table = lalr.parse_table
        self.starts, self.ends = table.start_states, table.end_states
        # Lark's symbol names are its grammar's tokens, whose __eq__ is a Python method:
        # plain strings here, compared in C.
        self.callbacks = {str(term): f for term, f in lalr.callbacks.items() if isinstance(term, str)}
        # a rule of one symbol that Lark's ``?rule`` inlines keeps its child's value: no callback
        rules = {rule: (len(rule.expansion), str(rule.origin.name),
                        None if len(rule.expansion) == 1 and isinstance(f, ExpandSingleChild) else f)
                 for rule, f in lalr.callbacks.items() if not isinstance(rule, str)}
        self.states = {state: {str(term): (action is Shift, arg if action is Shift else rules[arg])
                               for term, (action, arg) in actions.items()}
                       for state, actions in table.states.items()}
        lexers = parser.parser.lexer.lexers
        self.lexers = {state: (tuple([r.match for r in lexer.scanner._mres]),
                               {str(k): f for k, f in lexer.callback.items()},
                               frozenset(map(str, lexer.ignore_types)), frozenset(map(str, lexer.newline_types)))
                       for state, lexer in lexers.items()}
        # Lark's Token(...) takes its deprecated keywords apart, then makes the token with this
        self.token = Token._future_new
        self.through: dict[tuple[int, str, str], int] = {}  # see :meth:`unit_rules`

    def unit_rules(self, below: int, origin: str, kind: str) -> int:
        """The state a reduction by a rule of one child (``origin``, its value its child's)
        leads to above the state ``below``, then each further such reduction the token
        ``kind`` calls for (``atom`` to ``term`` to ``expr``…): they change only the top of
        the stack, so where they end depends on these three alone, and is kept."""
        states, key = self.states, (below, origin, kind)
        while True:
            top = states[below][origin][1]
            action = states[top].get(kind)
            if action is None or action[0] or action[1][2] is not None:
                self.through[key] = top
                return top
            origin = action[1][1]

    def parse(self, text: str, start: str):
        """The value of the start rule ``start`` on ``text``."""
        states, lexers, callbacks, new_token, through = self.states, self.lexers, self.callbacks, self.token, \
            self.through
        state_stack, value_stack = [self.starts[start]], []
        end_state = self.ends[start]
        pos, line, line_start, size = 0, 1, 0, len(text)
        token = None
        while True:
            state = state_stack[-1]
            if pos < size:
                matchers, on_token, ignored, newlines = lexers[state]
                for match in matchers:  # Lark's scanner: its terminals in one regular expression or a few
                    found = match(text, pos)
                    if found:
                        break
                else:
                    raise _Unsure
                value, kind = found.group(0), found.lastgroup
                end, end_line, end_start = pos + len(value), line, line_start
                if kind in newlines and "\n" in value:
                    end_line += value.count("\n")
                    end_start = pos + value.rindex("\n") + 1
                if kind in ignored:
                    pos, line, line_start = end, end_line, end_start
                    continue
                token = new_token(kind, value, pos, line, pos - line_start + 1, end_line, end - end_start + 1, end)
                if kind in on_token:
                    token = on_token[kind](token)
                pos, line, line_start = end, end_line, end_start
                is_end = False
            else:
                token = Token.new_borrow_pos("$END", "", token) if token is not None else Token("$END", "", 0, 1, 1)
                is_end = True
            kind = token.type
            while True:
                action = states[state_stack[-1]].get(kind)
                if action is None:
                    raise _Unsure
                shift, arg = action
                if shift:
                    if is_end:  # pragma: no cover - the end of input is never shifted
                        raise _Unsure
                    state_stack.append(arg)
                    value_stack.append(callbacks[kind](token) if kind in callbacks else token)
                    break
                length, origin, callback = arg
                if callback is None:  # the child's value, in the state its rule goes to
                    if is_end:
                        state_stack[-1] = states[state_stack[-2]][origin][1]
                    else:  # and past the rules of one child that the token reduces next, at once
                        key = (state_stack[-2], origin, kind)
                        top = through.get(key)
                        state_stack[-1] = top if top is not None else self.unit_rules(*key)
                else:
                    if length:
                        children = value_stack[-length:]
                        del state_stack[-length:]
                        del value_stack[-length:]
                    else:
                        children = []
                    value_stack.append(callback(children))
                    state_stack.append(states[state_stack[-1]][origin][1])
                if is_end and state_stack[-1] == end_state:
                    return value_stack[-1]


@lru_cache(maxsize=None)
def _loop() -> _Loop | None:
    """The fast loop, or ``None`` where this Lark's tables are not laid out as the loop
    reads them (its internals are not Lark's API): its own parse then does all the work."""
    try:
        return _Loop(_parser())
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return None


def _parse(text: str, start: str, source: Source | None = None):
    global _source
    parser = _parser()
    builder = parser.options.transformer
    with _PARSING:  # the builder's error is the current parse's
        builder.error, _source = None, source
        try:
            try:
                loop = _loop()
                if loop is None:
                    raise _Unsure
                value = loop.parse(text, start)[0]
            except _Unsure:
                builder.error = None
                value = parser.parse(text, start=start)[0]
            if builder.error is not None:
                raise builder.error
            return value
        except lark.exceptions.LarkError:
            if builder.error is not None:  # met before the parse failed, so earlier in the text
                raise builder.error from None
            raise
        finally:
            builder.error, _source = None, None


def _parse_or_explain(text: str, start: str, source: Source | None = None):
    try:
        return _parse(text, start, source)
    except lark.exceptions.UnexpectedCharacters as e:
        error = _unexpected_character(e, text)
        error.span = error.span._replace(source=source)
        raise error from None
    except lark.exceptions.UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            line = text.count("\n") + 1
            column = len(text) - (text.rfind("\n") + 1) + 1
            span = Span(len(text), len(text), line, column, line, column, source)
            found = "end of input"
        else:
            span = _token_span(tok)._replace(source=source)
            found = f"'{tok}'"
        raise LamSyntaxError(f"unexpected {found}; expected {_describe(e.expected)}", span) from None
    except lark.exceptions.UnexpectedEOF as e:  # pragma: no cover - LALR reports UnexpectedToken
        raise LamSyntaxError(f"unexpected end of input; expected {_describe(e.expected)}") from None


def _unexpected_character(e: lark.exceptions.UnexpectedCharacters, text: str) -> LamSyntaxError:
    span = Span(e.pos_in_stream, e.pos_in_stream + 1, e.line, e.column, e.line, e.column + 1)
    return LamSyntaxError(f"unexpected character {text[e.pos_in_stream]!r}", span)


def parse_program(text: str, source: Source | None = None) -> Program:
    """Parse a whole program: its imports, type aliases and ``def``s (docs/language.md).
    The spans of a program read from an imported file carry its ``source``."""
    return _parse_or_explain(text, "start", source)


def parse_term(text: str) -> Term:
    """Parse one expression."""
    return _parse_or_explain(text, "expr")


def parse_type(text: str) -> Type:
    """Parse one type."""
    return _parse_or_explain(text, "type")


def tokens(text: str) -> Iterator[Token]:
    """The tokens of ``text``, spaces and comments skipped, lazily: for tools that look at
    input before parsing it (the REPL splits ``:grad e at v`` at a token); a character
    that starts no token is a :class:`LamSyntaxError` when the tokens reach it."""
    try:
        yield from _parser().lex(text)
    except lark.exceptions.UnexpectedCharacters as e:
        raise _unexpected_character(e, text) from None


__all__ = ["parse_program", "parse_term", "parse_type", "tokens", "KEYWORDS", "Pattern"]
