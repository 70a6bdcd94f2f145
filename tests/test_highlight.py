"""Syntax highlighting (README.md, "The REPL"; lamad/highlight.py): the Pygments lexer on
every example, token by token against lamad's own lexer, the token of each kind of word
and symbol, the plugin entry point that ``pygmentize -l lamad`` finds, and the REPL's
prompt highlighting what is typed."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from itertools import groupby
from pathlib import Path

import pygments.plugin
import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import DummyOutput
from pygments import cmdline, highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from lamad import repl
from lamad.highlight import OPERATORS, LamadLexer, LamadReplLexer
from lamad.parser import KEYWORDS, tokens
from lamad.prims import PRIMITIVES, public

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.lam"))


def lexed(text: str, lexer: type[LamadLexer] = LamadLexer) -> list[tuple]:
    """The tokens of ``text``, as Pygments gives them, without the spaces; Pygments's own
    newline handling off, so that the tokens are the text."""
    return [(t, v) for t, v in lexer(stripnl=False, ensurenl=False).get_tokens(text) if t not in Whitespace]


def kind(text: str, word: str) -> object:
    """The token type of ``word`` in ``text``."""
    types = {t for t, v in lexed(text) if v == word}
    assert len(types) == 1, (word, types)
    return types.pop()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_lexes_without_an_error_token_and_back_to_its_text(path):
    source = path.read_text(encoding="utf-8")
    toks = list(LamadLexer(stripnl=False, ensurenl=False).get_tokens(source))
    assert "".join(v for _, v in toks) == source
    assert [(t, v) for t, v in toks if t in Error] == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_splits_into_the_tokens_of_lamads_own_lexer(path):
    """The tokens of the grammar (lamad.parser.tokens, comments and spaces skipped) are
    those Pygments finds, a string's pieces (quotes, text, escapes) taken together."""
    source = path.read_text(encoding="utf-8")
    words: list[str] = []
    for is_string, run in groupby((tv for tv in lexed(source) if tv[0] not in Comment), key=lambda tv: tv[0] in String):
        values = [v for _, v in run]
        words += ["".join(values)] if is_string else values
    assert words == [str(tok) for tok in tokens(source)]


def test_records_and_modules_split_into_lamads_own_tokens():
    """Braces, fields, ``type`` aliases and imports (docs/language.md, "Records", "Modules")."""
    source = ('import nn\nimport "layers.lam" as L\ntype Layer = {w : Tensor, b : nn.Layer}\n'
              "def f (p : Layer) = let {w, b = c} = p in {w = p.w, b = nn.dense c w}\n")
    toks = list(LamadLexer(stripnl=False, ensurenl=False).get_tokens(source))
    assert "".join(v for _, v in toks) == source and [(t, v) for t, v in toks if t in Error] == []
    words: list[str] = []
    for is_string, run in groupby((tv for tv in lexed(source) if tv[0] not in Comment), key=lambda tv: tv[0] in String):
        values = [v for _, v in run]
        words += ["".join(values)] if is_string else values
    assert words == [str(tok) for tok in tokens(source)]
    assert (Name.Class, "Layer") in lexed(source)  # where the alias is defined
    assert {t for t, v in lexed(source) if v in ("import", "type", "{")} == {Keyword, Punctuation}


def test_keywords_types_builtins_and_names():
    text = ("def f (x : Real) (n : Int) (m : BoolTensor) (xs : List IntTensor) : Unit =\n"
            "  let y = if true then sin x else mean (ones [n]) in mine y false")
    assert kind(text, "def") == Keyword and kind(text, "f") == Name.Function
    for word in ("let", "in", "if", "then", "else"):
        assert kind(text, word) == Keyword, word
    assert kind(text, "true") == kind(text, "false") == Keyword.Constant
    for word in ("Real", "Int", "BoolTensor", "List", "IntTensor", "Unit"):
        assert kind(text, word) == Keyword.Type, word
    for word in ("sin", "mean", "ones"):
        assert kind(text, word) == Name.Builtin, word
    for word in ("x", "n", "y", "mine", "xs"):
        assert kind(text, word) == Name, word


def test_the_tables_are_lamads_own():
    """Every keyword of the parser is a keyword; every primitive a program may call is a
    builtin, and a helper of the rules that no program can call (add, the primitive of
    '+'; unbroadcast) is a plain name, which a user may take."""
    for word in KEYWORDS:
        assert kind(word, word) in Keyword, word
    callable_ = [name for name in PRIMITIVES if public(name)]
    assert len(callable_) > 100
    for name in callable_:
        assert kind(name, name) == Name.Builtin, name
    for name in ("add", "unbroadcast"):
        assert name in PRIMITIVES and not public(name)
        assert kind(name, name) == Name


def test_comments_numbers_strings_and_private_primitives():
    text = 'f 12 1.5 .25 1e3 2.5e-3 "a \\"b\\" c" %add %mul\'r x-- a comment: def 1.0\n-- and another'
    assert lexed(text)[1:] == [
        (Number.Integer, "12"), (Number.Float, "1.5"), (Number.Float, ".25"), (Number.Float, "1e3"),
        (Number.Float, "2.5e-3"),
        (String.Double, '"'), (String.Double, "a "), (String.Escape, '\\"'), (String.Double, "b"),
        (String.Escape, '\\"'), (String.Double, " c"), (String.Double, '"'),
        (Name.Builtin.Pseudo, "%add"), (Name.Builtin.Pseudo, "%mul'r"), (Name, "x"),
        (Comment.Single, "-- a comment: def 1.0"), (Comment.Single, "-- and another")]


def test_each_operator_is_one_token():
    for op in OPERATORS:
        assert lexed(f"a {op} b") == [(Name, "a"), (Operator, op), (Name, "b")], op
    assert lexed("a % b")[1] == (Operator, "%")  # the remainder; '%b' is a primitive's name


def test_a_lollipop_is_not_a_minus_before_a_name_starting_with_o():
    assert lexed(r"\x -o x") == [(Operator, "\\"), (Name, "x"), (Operator, "-o"), (Name, "x")]
    assert lexed("a -one") == [(Name, "a"), (Operator, "-"), (Name, "one")]


def test_index_brackets_slices_and_ellipsis():
    assert lexed("x'[i, 1:, ...] + f [2]") == [
        (Name, "x'"), (Punctuation, "["), (Name, "i"), (Punctuation, ","), (Number.Integer, "1"), (Operator, ":"),
        (Punctuation, ","), (Punctuation, "..."), (Punctuation, "]"), (Operator, "+"),
        (Name, "f"), (Punctuation, "["), (Number.Integer, "2"), (Punctuation, "]")]


def test_a_character_that_starts_no_token_is_an_error_token():
    assert (Error, "$") in lexed("x $ y")


def test_the_repl_lexer_marks_a_command_at_the_start_only():
    assert lexed(r" :grad \x. sin x at 1.0", LamadReplLexer)[:2] == [(Keyword.Pseudo, ":grad"), (Operator, "\\")]
    assert lexed("x : Real", LamadReplLexer) == [(Name, "x"), (Operator, ":"), (Keyword.Type, "Real")]


def pyproject_entry_point() -> EntryPoint:
    """The ``pygments.lexers`` entry point that pyproject.toml declares."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["entry-points"]["pygments.lexers"]
    assert list(declared) == ["lamad"]
    return EntryPoint("lamad", declared["lamad"], pygments.plugin.LEXER_ENTRY_POINT)


@pytest.fixture
def plugin(monkeypatch):
    """Pygments's plugins as they are once lamad is installed: the entry point of
    pyproject.toml (the installed metadata may predate it), loaded as Pygments loads one."""
    entry_point = pyproject_entry_point()
    monkeypatch.setattr(pygments.plugin, "iter_entry_points",
                        lambda group: [entry_point] if group == entry_point.group else [])


def test_the_entry_point_names_the_lexer_and_pygments_finds_it_by_name_and_file_name(plugin):
    assert pyproject_entry_point().load() is LamadLexer
    for alias in ("lamad", "lam"):
        assert isinstance(get_lexer_by_name(alias), LamadLexer)
    assert isinstance(get_lexer_for_filename("model.lam"), LamadLexer)


def test_pygmentize_formats_an_example_as_html(plugin, tmp_path):
    out = tmp_path / "hello.html"
    assert cmdline.main(["pygmentize", "-l", "lamad", "-f", "html", "-o", str(out), str(ROOT / "examples/hello.lam")]) == 0
    html = out.read_text(encoding="utf-8")
    for span in ('<span class="k">def</span>', '<span class="nf">f</span>', '<span class="kt">Real</span>',
                 '<span class="c1">-- The first worked example'):
        assert span in html, span
    assert html == highlight((ROOT / "examples/hello.lam").read_text(encoding="utf-8"), LamadLexer(), HtmlFormatter())


def test_the_repl_prompt_highlights_what_is_typed():
    with create_pipe_input() as pipe:
        prompt = repl.prompt_session(repl.Repl(), pipe, DummyOutput())
    assert isinstance(prompt.lexer, PygmentsLexer) and prompt.lexer.pygments_lexer_cls is LamadReplLexer
    line = prompt.lexer.lex_document(Document(":type let y = 2.0 in sin y -- sine"))(0)
    assert [(style, text) for style, text in line if text.strip()] == [
        ("class:pygments.keyword.pseudo", ":type"), ("class:pygments.keyword", "let"), ("class:pygments.name", "y"),
        ("class:pygments.operator", "="), ("class:pygments.literal.number.float", "2.0"),
        ("class:pygments.keyword", "in"), ("class:pygments.name.builtin", "sin"), ("class:pygments.name", "y"),
        ("class:pygments.comment.single", "-- sine")]


def test_a_type_variable_is_one_token_and_a_primed_name_another():
    assert lexed("(p : 'p) (p' : 'opt_1)") == [
        (Punctuation, "("), (Name, "p"), (Operator, ":"), (Name.Variable, "'p"), (Punctuation, ")"),
        (Punctuation, "("), (Name, "p'"), (Operator, ":"), (Name.Variable, "'opt_1"), (Punctuation, ")")]
