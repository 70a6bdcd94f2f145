"""User-facing errors: every syntax, type and run-time error in a lamad program is a
:class:`LamError` carrying the source span it concerns, printed as

    file.lam:LINE:COL: kind: message
        the source line
        ^^^^^

(docs/language.md, Errors).  Anything else escaping lamad is a bug in lamad, not in the
program."""

from __future__ import annotations

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


def format_error(err: LamError) -> str:
    """``file:line:col: kind: message``, then the source line and a caret under the span."""
    span, source = err.span, err.source
    if span is None or source is None:
        where = f"{err.filename}: " if source is not None else ""
        return f"{where}{err.kind}: {err.message}"
    head = f"{err.filename}:{span.line}:{span.column}: {err.kind}: {err.message}"
    lines = source.split("\n")  # as the lexer counts lines: only "\n" ends one (not \r, \f, \u2028...)
    text = lines[span.line - 1].rstrip("\r") if span.line - 1 < len(lines) else ""
    width = (span.end_column if span.end_line == span.line else len(text) + 1) - span.column
    caret = " " * (span.column - 1) + "^" * max(1, width)
    return f"{head}\n    {text}\n    {caret}"
