"""Jupyter notebooks (README.md, "Notebooks"): ``%load_ext lamad``.

The extension registers the magic ``lamad``: ``%%lamad`` runs a cell of lamad, and
``%lamad`` one input on its line.  A cell holds what the REPL takes (lamad/repl.py):
``def``s, expressions and ``:commands``, run by one REPL session per notebook,
:class:`NotebookRepl`, so that a definition made in one cell is there in the next, and
commands mean what they mean at the prompt.  The session shows what the REPL prints,
richer where a notebook can:

- a value holding arrays (:class:`Value`) as HTML tables, elided like the REPL's text;
- a derivative program (:class:`Derivative`) highlighted by the Pygments lexer of
  :mod:`lamad.highlight`;
- a computational graph (:class:`Drawing`) as SVG rendered by Graphviz's ``dot``, or its
  DOT text where ``dot`` is missing.

An error stops the cell, as an exception stops a Python cell, and shows as the REPL
prints it, located in the cell (``In[3]:2:5``, the line counted from the ``%%lamad``
line), never as a Python traceback.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import pygments
from IPython.core.error import UsageError
from IPython.display import display
from pygments.formatters import HtmlFormatter

from lamad.errors import LamError, format_error
from lamad.graph import dot_available
from lamad.highlight import LamadLexer
from lamad.pretty import ARRAY_TYPES, SHORT_THRESHOLD, array_label, host_array
from lamad.repl import Repl
from lamad.syntax import ListType, RecordType, TupleType, Type

EDGE = 5
"""The rows (columns, items) a table shows at each end of a long axis or list, the middle
elided, where the REPL's text elides an array's (``:print short``)."""


# --------------------------------------------------------------------- rich display


@dataclass(frozen=True)
class Value:
    """A value as a cell shows it: the REPL's text, and an HTML table for an array (one per
    array inside a tuple, record or list).  ``text`` prints a value as the session does;
    ``elide``: whether long axes are elided (``:print short``)."""

    value: Any
    ty: Type
    text: Callable[[Any, Type], str]
    elide: bool

    def __repr__(self) -> str:
        return self.text(self.value, self.ty)

    def _repr_html_(self) -> str | None:
        """The HTML, or ``None`` (the text alone) for a value without arrays."""
        return _html(self.value, self.ty, self.text, self.elide) if _holds_array(self.ty) else None


def _holds_array(ty: Type) -> bool:
    if ty in ARRAY_TYPES:
        return True
    if isinstance(ty, (TupleType, RecordType)):
        return any(_holds_array(t) for t in ty.items)
    return isinstance(ty, ListType) and _holds_array(ty.elem)


def _html(value: Any, ty: Type, text: Callable[[Any, Type], str], elide: bool) -> str:
    """An array as a table; a tuple, record or list as a table of its items, labelled by
    position or field; anything else as its text."""
    if ty in ARRAY_TYPES:
        return _array_table(host_array(value), elide)
    if isinstance(ty, (TupleType, RecordType)):
        labels = ty.fields if isinstance(ty, RecordType) else [str(i) for i in range(len(ty.items))]
        rows = [(label, _html(v, t, text, elide)) for label, v, t in zip(labels, value, ty.items)]
    elif isinstance(ty, ListType):
        rows = [(str(i), _html(value[i], ty.elem, text, elide)) if i is not None else ("⋮", "⋮")
                for i in _kept(len(value), elide)]
    else:
        return f"<code>{html.escape(text(value, ty))}</code>"
    body = "".join(f'<tr><th>{html.escape(label)}</th><td style="text-align: left">{item}</td></tr>'
                   for label, item in rows)
    return f"<table>{body}</table>"


def _kept(n: int, elide: bool) -> list[int | None]:
    """The indices of an axis of length ``n`` a table shows, ``None`` where the middle is
    elided: all of them, or ``EDGE`` at each end."""
    if not elide or n <= 2 * EDGE:
        return list(range(n))
    return [*range(EDGE), None, *range(n - EDGE, n)]


def _array_table(host: np.ndarray, elide: bool) -> str:
    """An array as a table captioned with its dtype and shape (``f64[3,2]``): a vector
    as one row, a matrix as rows and columns headed by their indices, an array of more
    axes as a row per index of the leading axes (``0, 1``); long axes of an array of
    over :data:`lamad.pretty.SHORT_THRESHOLD` entries elided, as the REPL elides them."""
    elide = elide and host.size > SHORT_THRESHOLD
    caption = f"<caption>{array_label(host)}</caption>"
    if host.ndim == 0:
        return f"<table>{caption}{_row(None, [_entry(host)])}</table>"
    matrix = host.reshape(1, -1) if host.ndim == 1 else host
    labelled = host.ndim > 1  # rows headed by their index
    columns = _kept(matrix.shape[-1], elide)
    rows = [_row("" if labelled else None, ["…" if j is None else str(j) for j in columns], "th")]
    for index in itertools.product(*(_kept(n, elide) for n in matrix.shape[:-1])):
        if None not in index:
            rows.append(_row(", ".join(map(str, index)) if labelled else None,
                             ["…" if j is None else _entry(matrix[index + (j,)]) for j in columns]))
        elif not rows[-1].startswith("<tr><th>⋮"):  # one row of ⋮ for a run of elided rows
            rows.append(_row("⋮", ["⋮"] * len(columns)))
    return f"<table>{caption}{''.join(rows)}</table>"


def _row(label: str | None, cells: list[str], tag: str = "td") -> str:
    """A table's row: its ``label`` as a header cell (none if ``None``), then its cells."""
    head = f"<th>{label}</th>" if label is not None else ""
    return f"<tr>{head}{''.join(f'<{tag}>{cell}</{tag}>' for cell in cells)}</tr>"


def _entry(x: Any) -> str:
    """An entry as NumPy prints it in the REPL's text (``1.``, ``0.63970001``), a boolean
    as lamad writes it."""
    x = np.asarray(x)
    if x.dtype == bool:
        return "true" if x else "false"
    return html.escape(np.array2string(x))


@dataclass(frozen=True)
class Derivative:
    """A derivative program as lamad prints it, highlighted in HTML."""

    text: str

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return pygments.highlight(self.text, LamadLexer(), HtmlFormatter(noclasses=True))


@dataclass(frozen=True)
class Drawing:
    """A computational graph (a ``graphviz.Digraph``, lamad/graph.py): SVG rendered by
    Graphviz's ``dot``, or the DOT text alone where ``dot`` is not installed."""

    dot: Any

    def __repr__(self) -> str:
        return self.dot.source

    def _repr_svg_(self) -> str | None:
        return self.dot.pipe(format="svg", encoding="utf-8") if dot_available() else None


# --------------------------------------------------------------------- the session


@dataclass(frozen=True)
class Cell:
    """What a magic ran: its ``name`` (``In[3]``), its ``text`` as written, ``first`` the
    number of lines the session had typed before it, and ``shift`` the number of lines of
    ``text`` above the lamad (1, the ``%%lamad`` line, for a cell)."""

    name: str
    text: str
    first: int
    shift: int


class LamCellError(Exception):
    """An input of a cell failed: IPython shows the located error the REPL printed, not
    a Python traceback (``_render_traceback_``)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def _render_traceback_(self) -> list[str]:
        return self.text.split("\n")


class NotebookRepl(Repl):
    """The REPL's session for a notebook: the REPL's inputs and commands, its values,
    derivatives and graphs displayed richly, its errors raised located in their cell."""

    def __init__(self, shell: Any):
        super().__init__()
        self.shell = shell
        self.cells: list[Cell] = []
        self.errors: list[str] = []  # those the input running printed

    def run(self, text: str, cell: bool) -> None:
        """Run a cell (below its ``%%lamad`` line) or the text of a ``%lamad`` line, input
        by input; raise :class:`LamCellError` at the first that fails."""
        source, shift = (f"%%lamad\n{text}", 1) if cell else (text, 0)
        self.cells.append(Cell(f"In[{self.count()}]", source, len(self.lines), shift))
        for piece in self.inputs(text):
            if not self.execute(piece):
                errors, self.errors = self.errors, []
                raise LamCellError("\n".join(errors))

    def count(self) -> int:
        """The number of the cell running, as its ``In[n]`` prompt shows it (the shell's
        count moves before the cell runs in some versions of IPython, after in others)."""
        running = self.shell.displayhook.exec_result
        return running.execution_count if running is not None else self.shell.execution_count

    def inputs(self, text: str) -> Iterator[str]:
        """The inputs of a cell: an input goes on over the lines that are indented, or while
        it is unfinished (:meth:`Repl.unfinished`); a line at the margin starts the next.
        Blank lines and comments go with the input after them, so that the lines the
        session counts are the cell's."""
        current: list[str] = []
        between: list[str] = []  # blank lines and comments
        for line in text.split("\n"):
            if not line.strip() or line.lstrip().startswith("--"):
                between.append(line)
                continue
            if current and not line[0].isspace() and not self.unfinished("\n".join(current)):
                yield "\n".join(current)
                current = []
            current += between + [line]
            between = []
        if current:
            yield "\n".join(current)

    def locate(self, err: LamError) -> str:
        """An error in a cell's text is located in the cell, at its line there."""
        span = err.span
        cell = None
        if span is not None and span.source is None:
            typed = span.line - self.file_lines  # the line among those typed
            cell = next((c for c in reversed(self.cells) if c.first < typed), None)
        if cell is None:
            return super().locate(err)
        moved = cell.first - cell.shift + self.file_lines
        err.source, err.filename = cell.text, cell.name
        err.span = span._replace(line=span.line - moved, end_line=span.end_line - moved)
        return format_error(err)

    def print(self, text: str) -> None:
        print(text, flush=True)  # to the stream of the cell running, which the kernel sets

    def print_error(self, text: str) -> None:
        self.errors.append(text)

    def print_value(self, value: Any, ty: Any) -> None:
        display(Value(value, ty, self.value, self.arrays == "short"))

    def print_code(self, text: str) -> None:
        display(Derivative(text))

    def print_graph(self, dot: Any) -> None:
        display(Drawing(dot))


def register(shell: Any) -> None:
    """Register the magic ``lamad`` (line and cell) with the IPython ``shell``, with a
    session of its own."""
    session = NotebookRepl(shell)

    def lamad(line: str, cell: str | None = None) -> None:
        """Run lamad: ``%%lamad`` a cell of definitions, expressions and REPL commands
        (``:type``, ``:d``, ``:grad``, ``:jvp``, ``:vjp``, ``:graph``, ``:load`` ...; ``:help``
        lists them), ``%lamad`` one input on its line.  Definitions persist across cells."""
        if cell is not None and line.strip():
            raise UsageError(f"%%lamad takes no arguments (the lamad goes in the cell below it), found '{line.strip()}'")
        session.run(line if cell is None else cell, cell is not None)

    shell.register_magic_function(lamad, "line_cell")
