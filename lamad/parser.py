"""Source text to AST (SPEC §2.1–2.3), with the LALR grammar of ``grammar/lam.lark``.

``parse_program`` reads a whole ``.lam`` file, ``parse_term`` one expression and
``parse_type`` one type.  Every failure is a :class:`LamSyntaxError` that says
what was expected and where.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator

import lark
from lark import Lark, Token, Transformer_NonRecursive, v_args

from lamad.errors import LamSyntaxError
from lamad.syntax import (
    Ann, App, BASE_TYPES, Def, FunType, If, Lam, Let, LinLam, LinType, ListLit, ListType, Lit, Param,
    Pattern, Prim, Program, PTuple, PVar, PWild, Span, Term, Tuple, TupleType, Type, Var, perp,
)

KEYWORDS = frozenset({"def", "let", "in", "if", "then", "else", "true", "false"})

BINARY_OPS = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "**",
    "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
    "and": "&&", "or": "||",
}
"""Primitive name of each binary operator, and its ASCII spelling."""



def surface_name(op: str) -> str:
    """How a user writes the builtin ``op``: ``+`` for ``add``, ``-`` for ``neg``."""
    return BINARY_OPS.get(op) or ("-" if op == "neg" else op)


_COMPARISONS = {sym: name for name, sym in BINARY_OPS.items() if name in ("lt", "le", "gt", "ge", "eq", "ne")}

_TERMINAL_NAMES = {
    "NAME": "a name", "INT": "an integer", "REAL": "a real number", "STRING": "a string",
    "LAMBDA": "'\\'", "ARROW": "'->'", "LOLLI": "'-o'", "TIMES": "'*'", "MUL": "'*'", "CMP": "a comparison",
    "$END": "end of input",
}


def _grammar_text() -> str:
    """The grammar ships inside the package (``lamad/grammar/lam.lark``, put there by the
    wheel build); in a source checkout it is read from the top-level ``grammar/``."""
    shipped = resources.files("lamad") / "grammar" / "lam.lark"
    if shipped.is_file():
        return shipped.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "grammar" / "lam.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _parser() -> Lark:
    return Lark(_grammar_text(), parser="lalr", start=["start", "expr", "type"], propagate_positions=True,
                maybe_placeholders=True)


def _span(meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.start_pos, meta.end_pos, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(tok: Token) -> Span:
    return Span(tok.start_pos, tok.end_pos, tok.line, tok.column, tok.end_line, tok.end_column)


def _name(tok: Token) -> str:
    if str(tok) in KEYWORDS:
        raise LamSyntaxError(f"'{tok}' is a keyword and cannot be used as a name", _token_span(tok))
    return str(tok)


def _annotate(p: Pattern, t: Type, span: Span | None) -> Pattern:
    """``(p : A)``: an annotated tuple pattern annotates its components."""
    if isinstance(p, PVar) and p.annot is None:
        return PVar(p.name, t, span=span)
    if isinstance(p, PTuple) and isinstance(t, TupleType) and len(t.items) == len(p.items):
        return PTuple(tuple(_annotate(i, it, i.span) for i, it in zip(p.items, t.items)), span=span)
    if isinstance(p, PWild) and p.annot is None:
        return PWild(t, span=span)
    raise LamSyntaxError(f"this pattern cannot have type {t}", span)


def _binary(op: str):
    """The transformer method for a binary operator: a two-argument :class:`Prim`."""

    def method(self, meta, ch):
        return Prim(op, (ch[0], ch[-1]), span=_span(meta))

    return method


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """Parse tree to AST, bottom-up and without recursion (deep programs parse)."""

    # -- programs
    def start(self, meta, defs):
        return Program(tuple(defs))

    def definition(self, meta, ch):
        name, *params, result, body = ch
        return Def(_name(name), tuple(params), result, body, span=_span(meta), name_span=_token_span(name))

    def param(self, meta, ch):
        name, annot = ch
        return Param(_name(name), annot, span=_span(meta))

    # -- patterns
    def pvar(self, meta, ch):
        return PVar(_name(ch[0]), span=_span(meta))

    def pwild(self, meta, ch):
        return PWild(span=_span(meta))

    def pann(self, meta, ch):
        return _annotate(ch[0], ch[1], _span(meta))

    def ptuple(self, meta, ch):
        return PTuple(tuple(ch), span=_span(meta))

    def binding(self, meta, ch):
        return ch[0], ch[1]

    # -- binders
    def lam(self, meta, ch):
        _, *params, body = ch
        span = _span(meta)
        for p in reversed(params):
            body = Lam(p, body, span=span)
        return body

    def linlam(self, meta, ch):
        _, param, _, body = ch
        return LinLam(param, body, span=_span(meta))

    def let(self, meta, ch):
        *bindings, body = ch
        span = _span(meta)
        for pattern, bound in reversed(bindings):
            body = Let(pattern, bound, body, span=span)
        return body

    def cond(self, meta, ch):
        return If(*ch, span=_span(meta))

    def ascribe(self, meta, ch):
        return Ann(ch[0], ch[1], span=_span(meta))

    # -- operators
    add, sub, mul, div = _binary("add"), _binary("sub"), _binary("mul"), _binary("div")
    matmul, pow, and_, or_ = _binary("matmul"), _binary("pow"), _binary("and"), _binary("or")

    def compare(self, meta, ch):
        left, op, right = ch
        return Prim(_COMPARISONS[str(op)], (left, right), span=_span(meta))

    def neg(self, meta, ch):
        return Prim("neg", (ch[0],), span=_span(meta))

    def apply(self, meta, ch):
        return App(ch[0], ch[1], span=_span(meta))

    # -- atoms
    def var(self, meta, ch):
        return Var(_name(ch[0]), span=_span(meta))

    def int_lit(self, meta, ch):
        try:
            value = int(ch[0])
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise LamSyntaxError(f"integer literal too long ({len(ch[0])} digits)", _span(meta)) from None
        return Lit(value, span=_span(meta))

    def real_lit(self, meta, ch):
        return Lit(float(ch[0]), span=_span(meta))

    def string_lit(self, meta, ch):
        text = str(ch[0])[1:-1]
        if "\\" in text:
            # Python escapes; non-ASCII text goes through as \uXXXX so that it is not mangled
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # unknown escapes (\d) stay as written
                    text = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
            except UnicodeDecodeError as e:
                raise LamSyntaxError(f"bad escape sequence in string literal: {e.reason}", _span(meta)) from None
        return Lit(text, span=_span(meta))

    def true_lit(self, meta, ch):
        return Lit(True, span=_span(meta))

    def false_lit(self, meta, ch):
        return Lit(False, span=_span(meta))

    def unit_lit(self, meta, ch):
        return Lit((), span=_span(meta))

    def tuple(self, meta, ch):
        return Tuple(tuple(ch), span=_span(meta))

    def list(self, meta, ch):
        items = () if ch == [None] else tuple(ch)
        return ListLit(items, span=_span(meta))

    # -- types
    def fun_type(self, meta, ch):
        return FunType(ch[0], ch[2])

    def lin_type(self, meta, ch):
        return LinType(ch[0], ch[2])

    def tuple_type(self, meta, ch):
        return TupleType(tuple(t for t in ch if isinstance(t, Type)))

    def neg_type(self, meta, ch):
        return perp(ch[0])

    perp_type = neg_type

    def con_type(self, meta, ch):
        name, arg = ch
        if str(name) != "List":
            raise LamSyntaxError(f"type '{name}' takes no argument (only List does)", _token_span(name))
        return ListType(arg)

    def base_type(self, meta, ch):
        name = str(ch[0])
        if name not in BASE_TYPES:
            hint = " (List needs an element type: List Real)" if name == "List" else ""
            known = ", ".join(sorted(BASE_TYPES))
            raise LamSyntaxError(f"unknown type '{name}'{hint}; the base types are {known}", _token_span(ch[0]))
        return BASE_TYPES[name]


def _describe(terminals) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, None) or _literal(t) for t in terminals})
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1] if names else "nothing"


def _literal(terminal: str) -> str:
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"'{pattern.value}'" if pattern.type == "str" else terminal


def _parse(text: str, start: str):
    try:
        tree = _parser().parse(text, start=start)
        return _ToAst().transform(tree)
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, LamSyntaxError):
            raise e.orig_exc from None
        raise
    except lark.exceptions.UnexpectedCharacters as e:
        raise _unexpected_character(e, text) from None
    except lark.exceptions.UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            line = text.count("\n") + 1
            column = len(text) - (text.rfind("\n") + 1) + 1
            span = Span(len(text), len(text), line, column, line, column)
            found = "end of input"
        else:
            span = _token_span(tok)
            found = f"'{tok}'"
        raise LamSyntaxError(f"unexpected {found}; expected {_describe(e.expected)}", span) from None
    except lark.exceptions.UnexpectedEOF as e:  # pragma: no cover - LALR reports UnexpectedToken
        raise LamSyntaxError(f"unexpected end of input; expected {_describe(e.expected)}") from None


def _unexpected_character(e: lark.exceptions.UnexpectedCharacters, text: str) -> LamSyntaxError:
    span = Span(e.pos_in_stream, e.pos_in_stream + 1, e.line, e.column, e.line, e.column + 1)
    return LamSyntaxError(f"unexpected character {text[e.pos_in_stream]!r}", span)


def parse_program(text: str) -> Program:
    """Parse a whole program: a sequence of ``def``s (SPEC §2.3)."""
    return _parse(text, "start")


def parse_term(text: str) -> Term:
    """Parse one expression."""
    return _parse(text, "expr")


def parse_type(text: str) -> Type:
    """Parse one type."""
    return _parse(text, "type")


def tokens(text: str) -> Iterator[Token]:
    """The tokens of ``text``, spaces and comments skipped, lazily: for tools that look at
    input before parsing it (the REPL splits ``:grad e at v`` at a token); a character
    that starts no token is a :class:`LamSyntaxError` when the tokens reach it."""
    try:
        yield from _parser().lex(text)
    except lark.exceptions.UnexpectedCharacters as e:
        raise _unexpected_character(e, text) from None


__all__ = ["parse_program", "parse_term", "parse_type", "tokens", "KEYWORDS", "BINARY_OPS", "Pattern"]
