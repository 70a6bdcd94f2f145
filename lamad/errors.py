"""User-facing errors: every syntax, type and run-time error in a lamad program is a
:class:`LamError` carrying the source span it concerns, printed as

    file.lam:LINE:COL: kind: message
        the source line
        ^^^^^

(docs/language.md, Errors).  Anything else escaping lamad is a bug in lamad, not in the
program."""

from __future__ import annotations

import os
from pathlib import Path

from lamad.syntax import Span


class LamError(Exception):
    """An error in a user's program, located by ``span`` when it is known."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source: str | None = None
        self.filename: str = "<input>"

    def locate(self, source: str, filename: str) -> LamError:
        """Attach the program text, so that ``str(self)`` shows the source line."""
        if self.source is None:
            self.source, self.filename = source, filename
        return self

    def __str__(self) -> str:
        return format_error(self)


class LamSyntaxError(LamError):
    kind = "syntax error"


class LamTypeError(LamError):
    kind = "type error"


class LamRuntimeError(LamError):
    kind = "runtime error"


class LamImportError(LamError):
    """An import that cannot be made: a missing file or module, a cycle (docs/language.md,
    "Modules"), located at the import."""

    kind = "import error"


class LamWarning(UserWarning):
    """A warning about a value a program computed (NumPy's overflow in ``exp``, division
    by zero, invalid value), issued from Python with its located text as the message:

        file.lam:LINE:COL: warning: overflow in 'exp'
            the source line
            ^^^^^
    """


def format_warning(message: str, span: Span | None, source: str, filename: str) -> str:
    """A warning located as an error is: ``file:line:col: warning: message``, the source
    line and the caret (``file: warning: message`` where the operation is not known)."""
    err = LamError(message, span).locate(source, filename)
    err.kind = "warning"
    return format_error(err)


def format_error(err: LamError) -> str:
    """``file:line:col: kind: message``, then the source line and a caret under the span —
    in the file the span says it is in, if it says (an imported module's), else in the
    text the error was located in."""
    span, source, filename = err.span, err.source, err.filename
    if span is not None and span.source is not None:
        source, filename = span.source.text, span.source.filename
    if span is None or source is None:
        where = f"{filename}: " if source is not None else ""
        return f"{where}{err.kind}: {err.message}"
    head = f"{filename}:{span.line}:{span.column}: {err.kind}: {err.message}"
    lines = source.split("\n")  # as the lexer counts lines: only "\n" ends one (not \r, \f, \u2028...)
    text = lines[span.line - 1].rstrip("\r") if span.line - 1 < len(lines) else ""
    start = span.column - 1
    end = max(start + 1, span.end_column - 1 if span.end_line == span.line else len(text))
    # a line longer than 2 * CONTEXT is cut to CONTEXT characters either side of the span
    # (which is cut to CONTEXT), marked with '…'; tabs are expanded, the caret's too
    left, right = 0, len(text)
    if len(text) > 2 * CONTEXT:
        left, end = max(0, start - CONTEXT), min(end, start + CONTEXT)
        right = min(len(text), end + CONTEXT)
    before = ("…" if left else "") + text[left:start]
    column = len(before.expandtabs(TAB)) + max(0, start - len(text))  # past the end (a stripped '\r')
    width = len((before + text[start:end]).expandtabs(TAB)) - len(before.expandtabs(TAB))
    shown = (before + text[start:right]).expandtabs(TAB) + ("…" if right < len(text) else "")
    return f"{head}\n    {shown}\n    {' ' * column}{'^' * max(1, width)}"


CONTEXT = 100
"""Characters of a long source line shown either side of an error's position."""
TAB = 8
"""The tab stops of the source line an error shows (expanded, so the caret lines up)."""


def cannot_read(path: str | os.PathLike, name: str | None = None) -> str | None:
    """Why ``path`` is not a program file that can be read (``cannot read 'name': ...``,
    the path as the user wrote it), or ``None`` if it is one."""
    name, path = os.fspath(path) if name is None else name, Path(path)
    if path.is_dir():
        return f"cannot read '{name}': it is a directory, not a file"
    if not path.exists():
        return f"cannot read '{name}': no such file"
    if not path.is_file():
        return f"cannot read '{name}': not a regular file"
    if not os.access(path, os.R_OK):
        return f"cannot read '{name}': permission denied"
    return None


def read_source(path: str | os.PathLike) -> str:
    """The text of a program file.  It must be UTF-8: other bytes are a :class:`LamError`
    naming the file, the line and column, and the offset of the first byte that is not."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[:e.start].decode("utf-8")  # the bytes before the first bad one are UTF-8
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        span = Span(len(before), len(before) + 1, line, column, line, column + 1)
        err = LamError(f"the file is not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} "
                       f"({e.reason}); save it as UTF-8", span)
        raise err.locate(data.decode("utf-8", errors="replace"), str(path)) from None
