"""Property tests of the parser: whatever the input, it gives an AST or a located
LamSyntaxError, never another exception; sentences of the grammar parse."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from lamad.errors import LamSyntaxError
from lamad.parser import KEYWORDS, _parser, parse_program, parse_term, parse_type
from lamad.syntax import Program, Span

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_HEAD = re.compile(r"f\.lam:(\d+):(\d+): syntax error: .+")


def check_error(err: LamSyntaxError, text: str) -> None:
    """A syntax error is located inside the text and prints as file:line:col with the line
    and a caret under the column."""
    assert err.message
    span = err.span
    assert isinstance(span, Span), f"no span in {err.message!r} for {text!r}"
    assert 0 <= span.start <= span.end <= len(text)
    lines = text.split("\n")
    assert 1 <= span.line <= len(lines)
    assert span.line == text.count("\n", 0, span.start) + 1
    assert span.column == span.start - (text.rfind("\n", 0, span.start) + 1) + 1
    shown = str(err.locate(text, "f.lam")).split("\n")
    match = _HEAD.fullmatch(shown[0])
    assert match and (int(match[1]), int(match[2])) == (span.line, span.column), shown[0]
    assert shown[1] == "    " + lines[span.line - 1].rstrip("\r")
    caret = shown[2]
    assert caret.startswith("    ") and caret[4:].lstrip(" ").startswith("^")
    assert caret.index("^") - 4 == span.column - 1


def parses_or_syntax_error(parse, text: str):
    try:
        return parse(text)
    except LamSyntaxError as err:
        check_error(err, text)
        return err


# ----------------------------------------------------------------------------- (a) arbitrary text

TOKENS = [
    "def", "let", "in", "if", "then", "else", "true", "false", "\\", "λ", ".", "(", ")", "[", "]", ",", ";",
    ":", "=", "_", "->", "→", "-o", "⊸", "*", "×", "·", "~", "⊥", "+", "-", "/", "@", "**", "<", "<=", ">",
    ">=", "==", "!=", "&&", "||", "--", "\n", " ", "\t", "\r", "x", "y'", "f", "Real", "Tensor", "List",
    "Int", "Bool", "Unit", "d", "0", "3", "3.0", ".5", "1e-3", "e", '"', '"s"', "\\n", "'", "$", "é",
]

token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
spaced_token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)


@SETTINGS
@given(st.text())
@example("")
@example("def")
@example('def f = "\\x"')
@example("def f = " + "9" * 5000)
@example("-- a\u2028b\ndef f = )")
def test_arbitrary_text_only_raises_syntax_errors(text):
    result = parses_or_syntax_error(parse_program, text)
    assert isinstance(result, (Program, LamSyntaxError))


@SETTINGS
@given(st.text())
def test_arbitrary_text_as_term_or_type(text):
    parses_or_syntax_error(parse_term, text)
    parses_or_syntax_error(parse_type, text)


@SETTINGS
@given(token_soup)
def test_token_soup_only_raises_syntax_errors(text):
    parses_or_syntax_error(parse_program, text)
    parses_or_syntax_error(parse_program, "def main = " + text)
    parses_or_syntax_error(parse_term, text)
    parses_or_syntax_error(parse_type, text)


@SETTINGS
@given(spaced_token_soup)
def test_spaced_token_soup_only_raises_syntax_errors(text):
    parses_or_syntax_error(parse_program, "def main = " + text)
    parses_or_syntax_error(parse_term, text)
    parses_or_syntax_error(parse_type, text)


# ----------------------------------------------------------------------------- (b) the grammar itself

GRAMMAR = _parser()


@pytest.mark.parametrize("start", ["start", "expr", "type"])
def test_grammar_sentences_parse_or_raise_syntax_errors(start):
    """Strings generated from the grammar as it is (names may be keywords, strings may hold
    bad escapes, adjacent tokens may run together): only LamSyntaxError may come out."""
    parse = {"start": parse_program, "expr": parse_term, "type": parse_type}[start]

    @SETTINGS
    @given(from_lark(GRAMMAR, start=start))
    def check(text):
        parses_or_syntax_error(parse, text)

    check()


# With every token followed by a space (comments by a newline), keywords kept out of NAME
# and only well-formed escapes in strings, a sentence of the grammar must parse; the only
# errors left are the ones the tree transformer adds on purpose (type names that are not
# types).  This catches lexer conflicts (`*` as TIMES or MUL, `-o`, `**`, `.5`) and
# grammar/transformer mismatches.

NAMES = st.one_of(
    st.sampled_from(["x", "y'", "f", "_x", "in_", "letter", "Real", "Tensor", "Int", "Bool", "Unit", "d",
                     "List", "String", "o", "e"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_']{0,6}", fullmatch=True).filter(lambda s: s not in KEYWORDS),
)
STRINGS = st.from_regex(r'"([^"\\\n]|\\[nt"\\])*"', fullmatch=True)


def _spaced_terminals(start):
    explicit = {}
    terminals, _, _ = GRAMMAR.grammar.compile([start], ())
    for term in terminals:
        if term.name in ("WS",):
            continue
        if term.name == "COMMENT":
            strategy = st.from_regex(r"--[^\n]*", fullmatch=True).map(lambda s: s + "\n")
        elif term.name == "NAME":
            strategy = NAMES.map(lambda s: s + " ")
        elif term.name == "STRING":
            strategy = STRINGS.map(lambda s: s + " ")
        elif term.pattern.type == "str":
            strategy = st.just(term.pattern.value + " ")
        else:
            pattern = re.compile(term.pattern.to_regexp())
            strategy = st.from_regex(pattern, fullmatch=True).filter(
                lambda s, p=pattern: p.match(s).end() == len(s)).map(lambda s: s + " ")
        explicit[term.name] = strategy
    return explicit


_TRANSFORMER_ERRORS = re.compile(r"unknown type '.*'|type '.*' takes no argument.*")


@pytest.mark.parametrize("start", ["start", "expr", "type"])
def test_well_spaced_grammar_sentences_parse(start):
    parse = {"start": parse_program, "expr": parse_term, "type": parse_type}[start]
    strategy = from_lark(GRAMMAR, start=start, explicit=_spaced_terminals(start))
    outcomes = {"parsed": 0, "type names": 0}

    @SETTINGS
    @given(strategy)
    def check(text):
        try:
            parse(text)
        except LamSyntaxError as err:
            check_error(err, text)
            assert _TRANSFORMER_ERRORS.match(err.message), f"{text!r} does not parse: {err.message}"
            outcomes["type names"] += 1
        else:
            outcomes["parsed"] += 1

    check()
    assert outcomes["parsed"] > 0
