"""Syntax highlighting of lamad (README.md, "The REPL"; docs/design.md): a Pygments lexer.

:class:`LamadLexer` follows the tokens of ``grammar/lam.lark``: ``--`` comments,
numbers (``REAL`` before ``INT``), strings, ``%name`` primitives, the operators and
Unicode symbols with their ASCII spellings, and names.  A name is told apart by what the
language makes of it: a keyword (:data:`lamad.parser.KEYWORDS`), a type
(:data:`lamad.syntax.BASE_TYPES` and ``List``), a builtin (a public primitive of
:data:`lamad.prims.PRIMITIVES`) or a user's name.  Those tables are read from lamad
itself, on the first name lexed, so that they never fall behind the language and so that
Pygments, which imports every plugin lexer to look one up, does not load lamad for
another language.

The lexer is a Pygments plugin (``pyproject.toml``, entry point ``pygments.lexers``):
``pygmentize -l lamad file.lam``.  :class:`LamadReplLexer` adds the REPL's ``:commands``;
:mod:`lamad.repl` highlights what is typed with it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Iterator

from pygments.lexer import RegexLexer, bygroups, inherit
from pygments.token import (Comment, Keyword, Name, Number, Operator, Punctuation, String, Whitespace,
                            _TokenType)

NAME = r"[A-Za-z_][A-Za-z0-9_']*"
"""``NAME`` of the grammar."""

OPERATORS = ("**", "//", "==", "!=", "<=", ">=", "&&", "||", ":=", "+=", "->", "→", "⊸", "×", "·", "⊥", "~",
             "+", "-", "*", "/", "@", "%", "<", ">", "=", ":", "λ", "\\")
"""The operators and symbols of the grammar, a longer spelling before its prefix."""


@cache
def name_kinds() -> dict[str, _TokenType]:
    """The token of each name lamad gives a meaning: keywords, types, builtins."""
    from lamad.parser import KEYWORDS
    from lamad.prims import PRIMITIVES, public
    from lamad.syntax import BASE_TYPES

    kinds: dict[str, _TokenType] = {name: Name.Builtin for name in PRIMITIVES if public(name)}
    types = [name for name in BASE_TYPES if name[0].isupper()] + ["List"]  # "d" is internal, no user writes it
    kinds.update((name, Keyword.Type) for name in types)
    kinds.update((name, Keyword.Constant if name in ("true", "false") else Keyword) for name in KEYWORDS)
    return kinds


def _name(lexer: RegexLexer, match) -> Iterator[tuple[int, _TokenType, str]]:
    """A name, as a keyword, type, builtin or plain name (:func:`name_kinds`)."""
    yield match.start(), name_kinds().get(match[0], Name), match[0]


class LamadLexer(RegexLexer):
    """lamad's ``.lam`` programs (``grammar/lam.lark``)."""

    name = "lamad"
    aliases = ["lamad", "lam"]
    filenames = ["*.lam"]
    mimetypes = ["text/x-lamad"]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"--[^\n]*", Comment.Single),
            (rf"(def)(\s+)({NAME})", bygroups(Keyword, Whitespace, Name.Function)),
            (rf"(type)(\s+)({NAME})", bygroups(Keyword, Whitespace, Name.Class)),  # a type alias
            (r"%[A-Za-z_][A-Za-z0-9_]*('[rf]+)?", Name.Builtin.Pseudo),  # PRIM, before the operator %
            (r"([0-9]+\.[0-9]+|(?<![A-Za-z0-9_'])\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r'"', String.Double, "string"),
            (r"-o(?![A-Za-z0-9_'])", Operator),  # LOLLI, not '-' before a name 'o...'
            (r"'[A-Za-z_][A-Za-z0-9_]*", Name.Variable),  # TYVAR, a generic definition's type variable
            (NAME, _name),
            (r"\.\.\.", Punctuation),  # the ellipsis of an index
            ("|".join(map(re.escape, OPERATORS)), Operator),
            (r"[(){}\[\],;.]", Punctuation),  # '.' also a record's field and a module's name
        ],
        "string": [
            (r'\\.', String.Escape),
            (r'[^"\\\n]+', String.Double),
            (r'"', String.Double, "#pop"),
            (r"\n", Whitespace, "#pop"),  # an unterminated string (which the parser rejects) ends with its line
        ],
    }


class LamadReplLexer(LamadLexer):
    """What is typed at the REPL: a ``:command`` at the start of an input, then lamad."""

    name = "lamad REPL"
    aliases = ["lamad-repl"]
    filenames = []
    mimetypes = []

    tokens = {
        "root": [
            (r"\A(\s*)(:[A-Za-z]*)", bygroups(Whitespace, Keyword.Pseudo)),
            inherit,
        ],
    }


__all__ = ["LamadLexer", "LamadReplLexer", "name_kinds"]
