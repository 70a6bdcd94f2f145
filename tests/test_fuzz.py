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
from lamad.prims import PRIMITIVES
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
    line, start = lines[span.line - 1].rstrip("\r"), span.column - 1
    caret = shown[2]
    assert caret.startswith("    ") and caret[4:].lstrip(" ").startswith("^")
    assert shown[1].startswith("    ")
    if "\t" not in line and len(line) <= 200:  # shown as it is (a long line is cut, tabs expanded)
        assert shown[1] == "    " + line
        assert caret.index("^") - 4 == span.column - 1
    elif start < len(line) and line[start] != "\t":  # the caret under the span's first character
        assert shown[1][caret.index("^")] == line[start]


def parses_or_syntax_error(parse, text: str):
    try:
        return parse(text)
    except LamSyntaxError as err:
        check_error(err, text)
        return err


# ----------------------------------------------------------------------------- (a) arbitrary text

TOKENS = [
    "def", "let", "in", "if", "then", "else", "true", "false", "\\", "λ", ".", "(", ")", "[", "]", ",", ";",
    ":", "=", ":=", "+=", "...", "_", "->", "→", "-o", "⊸", "*", "×", "·", "~", "⊥", "+", "-", "/", "@", "**", "<", "<=", ">",
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

# Sentences come from the grammar's own rules in two ways.  ``from_lark`` expands every
# nonterminal by a uniformly chosen production; on the type grammar that terminates quickly,
# but on terms and programs most expansions outgrow hypothesis's buffer before they finish
# (about 12 s of drawing per valid example here), so terms and programs are drawn by
# ``grammar_sentences``: the same rules, walked with a depth budget past which only the
# productions that close off soonest may be chosen.


def _compiled(start: str):
    terminals, rules, _ = GRAMMAR.grammar.compile([start], ())
    return terminals, rules


def _heights(rules) -> dict[str, int]:
    """For each nonterminal, the least depth of a derivation tree that completes it."""
    height: dict[str, int] = {}
    changed = True
    while changed:
        changed = False
        for rule in rules:
            children = [0 if sym.is_term else height.get(sym.name) for sym in rule.expansion]
            if None in children:
                continue
            h = 1 + max(children, default=0)
            if h < height.get(rule.origin.name, 1 << 30):
                height[rule.origin.name] = h
                changed = True
    return height


def grammar_sentences(start: str, terminals: dict[str, st.SearchStrategy[str]], slack: int) -> st.SearchStrategy[str]:
    """Sentences derived from ``start`` by the grammar's rules, with terminals drawn from
    ``terminals``: at depth budget ``b`` a nonterminal may use only productions whose
    subtrees can complete within ``b - 1`` levels, so every draw finishes.  The root's budget
    is ``slack`` levels past its tallest production's least height."""
    _, rules = _compiled(start)
    height = _heights(rules)
    productions: dict[str, list[tuple[int, tuple]]] = {}
    for rule in rules:
        h = 1 + max((0 if sym.is_term else height[sym.name] for sym in rule.expansion), default=0)
        productions.setdefault(rule.origin.name, []).append((h, tuple(rule.expansion)))
    for options in productions.values():
        options.sort(key=lambda option: option[0])  # shrinks towards the shortest derivations

    @st.composite
    def sentence(draw):
        out: list[str] = []
        root = next(rule.origin for rule in rules if rule.origin.name == start)
        stack = [(root, productions[start][-1][0] + slack)]  # every production of the root is open
        while stack:
            symbol, budget = stack.pop()
            if symbol.is_term:
                out.append(draw(terminals[symbol.name]))
                continue
            allowed = [exp for h, exp in productions[symbol.name] if h <= max(budget, height[symbol.name])]
            expansion = draw(st.sampled_from(allowed))
            stack.extend((sym, budget - 1) for sym in reversed(expansion))
        return "".join(out).replace(" " + _GLUED, "").replace(_GLUED, "")

    return sentence()


_GLUED = "\x08"
"""Put before a terminal that follows the one before it with no space: the ``[`` of an index
(``INDEX_OPEN``, whose pattern looks behind it, which ``from_regex`` cannot draw)."""
INDEX_OPEN = st.just(_GLUED + "[")


def _raw_terminals(start: str) -> dict[str, st.SearchStrategy[str]]:
    """Each terminal as the grammar states it (names may be keywords, strings may hold bad
    escapes), as ``from_lark`` draws them."""
    terminals, _ = _compiled(start)
    explicit = {}
    for term in terminals:
        if term.name == "INDEX_OPEN":
            explicit[term.name] = INDEX_OPEN
            continue
        pattern = re.compile(term.pattern.to_regexp())
        explicit[term.name] = st.from_regex(pattern, fullmatch=True).filter(
            lambda s, p=pattern: p.match(s).end() == len(s))
    return explicit


PARSERS = {"start": parse_program, "expr": parse_term, "type": parse_type}
SLACK = {"start": 1, "expr": 3, "type": 3}  # programs nest terms and types: a little less room
GRAMMAR_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
TYPE_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("start", ["start", "expr"])
def test_grammar_sentences_parse_or_raise_syntax_errors(start):
    """Sentences of the grammar with adjacent tokens run together: only LamSyntaxError may
    come out."""

    @GRAMMAR_SETTINGS
    @given(grammar_sentences(start, _raw_terminals(start), SLACK[start]))
    def check(text):
        parses_or_syntax_error(PARSERS[start], text)

    check()


@TYPE_SETTINGS
@given(from_lark(GRAMMAR, start="type"))
def test_from_lark_type_sentences_parse_or_raise_syntax_errors(text):
    parses_or_syntax_error(parse_type, text)


# With every token followed by a space (comments by a newline; the '[' of an index glued to
# the token before it), keywords kept out of NAME and only well-formed escapes in strings, a
# sentence of the grammar must parse; the only errors left are the ones the tree transformer
# adds on purpose (type names that are not types, a tuple pattern ascribed a type that is not
# a tuple of its size, huge integers, two '...' in an index, an update of an index, an alias
# named like a base type, a field named twice, a field of a number).
# This catches lexer conflicts (`*` as TIMES or MUL, `-o`, `**`, `.5`) and grammar/transformer
# mismatches.

NAMES = st.one_of(
    st.sampled_from(["x", "y'", "f", "_x", "in_", "letter", "Real", "Tensor", "Int", "Bool", "Unit", "d",
                     "List", "String", "o", "e"]),
    st.sampled_from(sorted(PRIMITIVES)),  # variables named after primitives, which they shadow
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_']{0,6}", fullmatch=True).filter(lambda s: s not in KEYWORDS),
)
# In types, names stand for base types: mostly real ones, so that whole types come out valid.
TYPE_NAMES = st.sampled_from(["Real", "Tensor", "Int", "Bool", "Unit", "d", "String", "List", "Matrix"])
STRINGS = st.from_regex(r'"([^"\\\n]|\\[nt"\\])*"', fullmatch=True)


def _spaced_terminals(start):
    explicit = {}
    terminals, _ = _compiled(start)
    for term in terminals:
        if term.name == "INDEX_OPEN":
            strategy = INDEX_OPEN
        elif term.name == "WS":
            strategy = st.just(" ")
        elif term.name == "COMMENT":
            strategy = st.from_regex(r"--[^\n]*", fullmatch=True).map(lambda s: s + "\n")
        elif term.name == "NAME":
            strategy = (TYPE_NAMES if start == "type" else NAMES).map(lambda s: s + " ")
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


_TRANSFORMER_ERRORS = re.compile(r"unknown type '.*'|type '.*' takes no argument.*|this pattern cannot have type .*"
                                  r"|integer literal too long .*|an index has at most one '...'"
                                  r"|'(:=|\+=)' updates the value indexed last.*"
                                  r"|'.*' is a base type; an alias needs a name of its own"
                                  r"|the field '.*' is given twice in this .*"
                                  r"|a number has no fields.*")


def well_spaced_sentences_parse(start: str, strategy: st.SearchStrategy[str], settings_=None) -> None:
    outcomes = {"parsed": 0, "type names": 0}

    @(settings_ or GRAMMAR_SETTINGS)
    @given(strategy)
    def check(text):
        try:
            PARSERS[start](text)
        except LamSyntaxError as err:
            check_error(err, text)
            assert _TRANSFORMER_ERRORS.match(err.message), f"{text!r} does not parse: {err.message}"
            outcomes["type names"] += 1
        else:
            outcomes["parsed"] += 1

    check()
    assert outcomes["parsed"] > 0, outcomes


@pytest.mark.parametrize("start", ["start", "expr", "type"])
def test_well_spaced_grammar_sentences_parse(start):
    well_spaced_sentences_parse(start, grammar_sentences(start, _spaced_terminals(start), SLACK[start]))


def test_well_spaced_from_lark_type_sentences_parse():
    well_spaced_sentences_parse("type", from_lark(GRAMMAR, start="type", explicit=_spaced_terminals("type")),
                                TYPE_SETTINGS)


# ----------------------------------------------------------------------------- (d) the commands

# ``lamad check``, ``run`` and ``fmt`` (in process, through lamad.cli.main) and the REPL
# (lamad.repl.main reading a pipe) given garbage: random bytes, token soup, deep nesting,
# huge literals, text in other encodings.  Each ends with status 0 or 1 (2 for usage) and a
# message, never a Python traceback.

GARBAGE = st.one_of(
    st.binary(max_size=200),
    spaced_token_soup.map(lambda s: s.encode("utf-8")),
    st.text(max_size=100).map(lambda s: ("def main = " + s).encode("utf-8")),
    st.text(max_size=60).map(lambda s: ("def main = " + s).encode("utf-16")),
    st.text(alphabet="é€λ", max_size=30).map(lambda s: ("def main = " + s).encode("latin-1", "replace")),
    st.integers(1, 3000).map(lambda n: ("def main = " + "(" * n + "1.0" + ")" * n + "\n").encode()),
    st.integers(1, 3000).map(lambda n: ("def main = " + "[" * n + "]" * n + "\n").encode()),
    st.integers(1, 3000).map(lambda n: ("def main = " + "[" * n + "\n").encode()),
    st.integers(1, 2000).map(lambda n: ("def main = " + "\\x. " * n + "x\n").encode()),
    st.integers(1, 20000).map(lambda n: f"def main = {'9' * n}\ndef r = 1.{'5' * n}e{n}\n".encode()),
    st.sampled_from([b"def main = 1.0 / 0.0", b"def main = sum (ones [100000000000])", b"\xff\xfe\x00",
                     b"def main = grad (\\x. x) 1", b"def main = [1.0, true]", b"def main = load \"/nonexistent\""]),
)
FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "RecursionError" not in text, text[-2000:]


@FUZZ
@given(GARBAGE, st.sampled_from(["check", "run", "fmt"]))
@example(b"\x80", "check")  # not UTF-8: was a UnicodeDecodeError's traceback
@example(b"def main = " + b"[" * 3000 + b"1.0" + b"]" * 3000, "run")
def test_the_commands_given_garbage_answer_with_a_message(tmp_path_factory, capsys, data, command):
    from lamad import cli

    path = tmp_path_factory.mktemp("fuzz") / "garbage.lam"
    path.write_bytes(data)
    try:
        status = cli.main([command, str(path), "--quiet"] if command == "run" else [command, str(path)])
    except SystemExit as e:  # argparse: usage
        status = e.code
    out, err = capsys.readouterr()
    assert status in (0, 1, 2), (status, err[-2000:])
    _no_traceback(out + err)
    if status == 1:
        assert err.strip(), "an error with no message"


@FUZZ
@given(GARBAGE)
def test_the_repl_given_garbage_answers_with_a_message(capsys, monkeypatch, data):
    import io

    from lamad import repl

    text = data.decode("utf-8", "replace")
    monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n:type 1\n"))
    out = io.StringIO()
    status = repl.main(out=out)
    captured = capsys.readouterr()
    assert status in (0, 1)
    _no_traceback(out.getvalue() + captured.out + captured.err)
