"""The REPL (README.md, "The REPL"): ``lamad repl [FILE]``, on prompt_toolkit.

Each input is an expression (evaluated and printed), ``def``s (added to the session's
program, each checked against the definitions above it) or a command ``:name``
(:data:`COMMANDS`).  The session's program is a :class:`lamad.api.LoadedProgram`, the
file's definitions followed by those typed here; the REPL parses, checks, differentiates
and runs through it, and prints with :mod:`lamad.pretty`.

Errors are printed as the CLI prints them.  To locate them, every input is parsed at its
place in the session's text: the file's lines, then every line typed so far (the n-th
line typed is ``<repl>:n``), so that a span says where its text came from, even when the
error surfaces later (a run-time error inside a definition typed ten lines ago).

Entry point: :func:`main`.
"""

from __future__ import annotations

import difflib
import os
import io
import re
import sys
import traceback
import warnings
from dataclasses import dataclass, replace
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.filters import completion_is_selected
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import Output

from lamad import api, driver, reduce
from lamad.adtypes import cotangent_type, has_leaves
from lamad import graph as drawing
from lamad import trace as tracing
from lamad.backend import BackendError, get_backend
from lamad.errors import LamError, LamSyntaxError, cannot_read, format_error
from lamad.gradient import Stats
from lamad.highlight import LamadReplLexer
from lamad.parser import KEYWORDS, parse_program, parse_term, tokens
from lamad.prims import PRIMITIVES, public
from lamad.driver import format_value, pretty, pretty_derivative, pretty_type  # with the big stack when deep
from lamad.pretty import PRINT_MODES, WIDTH
from lamad.syntax import BASE_TYPES, INT, REAL, Ann, App, LinType, Program, Proj, Span, Term, TupleType, Type, Var
from lamad.version import __version__

PROMPT = "lamad> "
CONTINUATION = "   ... "

SYMBOLS = {"lambda": "λ", "to": "→", "times": "×", "multimap": "⊸", "perp": "⊥", "cdot": "·"}
"""``\\name`` completions to the Unicode symbols of the syntax (the ASCII spellings work too)."""


# --------------------------------------------------------------------- input


@dataclass(frozen=True)
class Piece:
    """A piece of input text and where it starts in the session's text (1-based line
    and column): parsed at that place, its spans locate it."""

    text: str
    line: int
    column: int

    def parse(self, parser: Callable[[str], Any]) -> Any:
        """``parser`` (``parse_term``, ``parse_program``) run on the text at its place."""
        return parser("\n" * (self.line - 1) + " " * (self.column - 1) + self.text)

    def at(self, start: int, end: int | None = None) -> Piece:
        """The piece ``text[start:end]``, where it stands."""
        before = self.text[:start]
        newlines = before.count("\n")
        column = start - before.rfind("\n") if newlines else self.column + start
        return Piece(self.text[start:end], self.line + newlines, column)

    def split(self, word: str) -> tuple[Piece, Piece | None]:
        """The pieces before and after the first token ``word`` outside brackets (``at``
        in ``:grad e at v``), or this piece and ``None``."""
        depth = 0
        try:
            for tok in tokens(self.text):
                depth += (tok in ("(", "[")) - (tok in (")", "]"))
                if depth == 0 and tok.type == "NAME" and tok == word:
                    return self.at(0, tok.start_pos), self.at(tok.end_pos)
        except LamSyntaxError:
            pass  # the parser will say so, located
        return self, None

    def strip(self) -> Piece:
        """The piece without the spaces around it."""
        start = len(self.text) - len(self.text.lstrip())
        return self.at(start, start + len(self.text.strip()))

    def span(self) -> Span:
        """The span of the piece's first line, for an error about the piece as a whole."""
        width = max(1, len(self.text.split("\n")[0].rstrip()))
        return Span(0, width, self.line, self.column, self.line, self.column + width)


def _nothing(arg: Piece) -> tuple:
    if arg.text.strip():
        raise LamError("this command takes no argument", arg.strip().span())
    return ()


def _word(arg: Piece) -> tuple[str | None, Piece]:
    arg = arg.strip()
    return arg.text or None, arg


def _term(arg: Piece) -> tuple[Term]:
    return (arg.parse(parse_term),)


def _term_at(arg: Piece) -> tuple[Term, Term | None]:
    """``e`` or ``e at v``."""
    term, point = arg.split("at")
    return term.parse(parse_term), point.parse(parse_term) if point is not None else None


def _term_at_with(arg: Piece) -> tuple[Term, Term, Term | None]:
    """``e at v`` or ``e at v with ct``."""
    term, rest = arg.split("at")
    if rest is None:
        raise LamError("expected 'e at v' (or 'e at v with ct'): a function and a point", arg.strip().span())
    point, extra = rest.split("with")
    return term.parse(parse_term), point.parse(parse_term), extra.parse(parse_term) if extra is not None else None


def _term_at_with_tangent(arg: Piece) -> tuple[Term, Term | None, Term | None]:
    """``e`` or ``e at v with dx``."""
    term, rest = arg.split("at")
    if rest is None:
        return term.parse(parse_term), None, None
    point, tangent = rest.split("with")
    if tangent is None:
        raise LamError("expected 'e at v with dx': a function, a point and a tangent", arg.strip().span())
    return term.parse(parse_term), point.parse(parse_term), tangent.parse(parse_term)


def _name_at(arg: Piece, usage: str) -> tuple[Piece, Piece]:
    """``f at REST``: the definition's name and the rest (``usage`` says what is expected)."""
    name, rest = arg.split("at")
    if rest is None:
        raise LamError(f"expected {usage}: a definition and its arguments", arg.strip().span())
    return name.strip(), rest


def _name_at_grad(arg: Piece) -> tuple[Piece, Term, bool]:
    """``f at v`` or ``f at v --grad`` (``--grad`` read before the term: it is a comment to
    lamad)."""
    name, rest = _name_at(arg, "'f at v' (or 'f at v --grad')")
    text = rest.text.rstrip()
    grad = text.endswith("--grad")
    point = rest.at(0, len(text) - len("--grad")) if grad else rest
    return name, point.parse(parse_term), grad


def _name_at_wrt(arg: Piece) -> tuple[Piece, Term, Piece | None]:
    """``f at v`` or ``f at v wrt x``."""
    name, rest = _name_at(arg, "'f at v' (or 'f at v wrt x')")
    point, wrt = rest.split("wrt")
    return name, point.parse(parse_term), wrt.strip() if wrt is not None else None


# --------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """``:name ARGUMENT``: ``parse`` reads the argument (a :class:`Piece`) into the
    arguments of ``run``, a method of :class:`Repl`; nothing runs until all of it parses.
    ``shortened``: whether a prefix of the name finds it (``:graph`` and ``:trace`` are
    written in full, so that ``:g`` and ``:gra`` still mean ``:grad``, ``:t`` ``:type``)."""

    name: str
    usage: str
    summary: str
    parse: Callable[[Piece], tuple]
    run: Callable[..., None]
    shortened: bool = True


COMMANDS: dict[str, Command] = {}
"""The REPL's commands, in ``:help`` order.  A new one is a :class:`Repl` method
decorated with :func:`command`."""


def command(name: str, usage: str, summary: str, parse: Callable[[Piece], tuple] = _nothing,
            shortened: bool = True):
    def register(method: Callable[..., None]) -> Callable[..., None]:
        COMMANDS[name] = Command(name, usage, summary, parse, method, shortened)
        return method
    return register


# --------------------------------------------------------------------- the REPL


class Repl:
    """A session: its program, its text (for locating errors) and its settings."""

    def __init__(self, backend: str | None = None, dtype: str | None = None, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.program = api.loads("", "<repl>", backend, dtype)  # :load replaces it by a file's
        self.file: Path | None = None  # the last file that loaded: what :reload loads
        self.tried: Path | None = None  # the last file asked for, which :reload tries while none has loaded
        self.lines: list[str] = []  # every line typed, in order
        self.ascii = False
        self.arrays = "short"  # how arrays are printed: one of PRINT_MODES
        self.done = False
        self.normalize = True  # :grad and :d inline higher-order code first (:normalize off: not)
        self.pause: Callable[[], bool] | None = None
        """How ``:step`` waits between steps (True to go on); ``None``: it does not wait."""

    # ----------------------------------------------------------------- one input

    def execute(self, text: str) -> bool:
        """Run one input; print its result or its error.  False if it failed."""
        text = text.rstrip()
        if not text:
            return True
        start = self.file_lines + len(self.lines) + 1
        self.lines.extend(text.split("\n"))
        try:
            run, args = self.parse(Piece(text, start, 1))
            if getattr(run, "func", None) is not Repl.stats:  # :stats shows the work of the input before it
                Stats.reset()
            if self.numpy_warnings(run, args) is False:  # it printed its error itself (a file that failed to :load)
                return False
        except LamError as e:
            self.print_error(self.locate(e))
        except KeyboardInterrupt:
            self.print_error("interrupted")
        except Exception:  # a bug in lamad: say so, and keep the session
            self.print_error(f"{traceback.format_exc()}internal error: this is a bug in lamad, please report it")
        else:
            return True
        return False

    def numpy_warnings(self, run: Callable[..., Any], args: tuple) -> Any:
        """``run(*args)``, NumPy's warnings (overflow, division by zero) shown as lamad's,
        located as errors are (``<repl>:1:1: warning: overflow in 'exp'``, the line and the
        caret), each printed as it comes, once per input, not Python's ``RuntimeWarning``
        with a file name and line of lamad's compiled code."""

        def report(message: str, span: Span | None) -> None:
            warning = LamError(message, span)
            warning.kind = "warning"
            self.print(self.locate(warning))

        with warnings.catch_warnings():
            warnings.simplefilter("always", RuntimeWarning)  # every input says what it met
            return driver.catching(run, *args, report=report)[0]

    def parse(self, piece: Piece) -> tuple[Callable[..., None], tuple]:
        """What an input asks for, and its arguments, parsed; nothing runs."""
        if m := re.match(r"\s*:(\S*)", piece.text):
            where = piece.at(m.start(1) - 1, m.end(1))
            cmd = self.find_command(m[1], where)
            arg = piece.at(m.end())
            if not arg.text.strip() and cmd.usage and not cmd.usage.startswith("["):
                raise LamError(f"':{cmd.name}' needs an argument: :{cmd.name} {cmd.usage}", piece.at(m.end(1)).span())
            return partial(cmd.run, self), cmd.parse(arg)
        first = next(tokens(piece.text), None)
        if first is None:  # only comments
            return (lambda: None), ()
        if first.type in ("DEF", "TYPE", "IMPORT"):
            return self.define, (piece.parse(parse_program),)
        return self.show, (piece.parse(parse_term),)

    def unfinished(self, text: str) -> bool:
        """Whether ``text`` is the start of an input: the parser ran out of input (an open
        bracket, a ``let`` without ``in``, a trailing operator, a missing ``at v``); a
        command alone is finished (``:type`` says what it needs, it does not wait)."""
        if re.fullmatch(r"\s*:\S*\s*", text):
            return False
        end = Piece(text, 1, 1).at(len(text))
        try:
            self.parse(Piece(text, 1, 1))
        except LamSyntaxError as e:
            return e.span is not None and (e.span.line, e.span.column) == (end.line, end.column)
        except LamError:
            return False
        return False

    def find_command(self, name: str, where: Piece) -> Command:
        """The command ``:name``, or the one command that may be shortened whose name
        starts with ``name``."""
        if name in COMMANDS:
            return COMMANDS[name]
        matches = [c for c in COMMANDS.values() if c.shortened and c.name.startswith(name)] if name else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise LamError(f"':{name}' is ambiguous: {' '.join(':' + c.name for c in matches)}", where.span())
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"did you mean :{close[0]}?" if close else "the commands are " + " ".join(f":{c}" for c in COMMANDS)
        raise LamError(f"unknown command ':{name}'; {hint}", where.span())

    @property
    def file_lines(self) -> int:
        """How many lines of the session's text the loaded file takes (those typed follow)."""
        return self.program.source.count("\n") + 1 if self.program.source else 0

    def locate(self, err: LamError) -> str:
        """The error as the CLI prints it: in the file, or in ``<repl>`` at the line typed
        (or in the file of an imported module, which its span names)."""
        span, offset = err.span, self.file_lines
        if span is not None and span.source is not None:
            return format_error(err)
        if span is not None and span.line <= offset:
            err.source, err.filename = self.program.source, self.program.filename
        else:
            err.source, err.filename = "\n".join(self.lines), "<repl>"
            if span is not None:
                err.span = span._replace(line=span.line - offset, end_line=span.end_line - offset)
        return format_error(err)

    # What an input prints goes through these methods, which a notebook's session
    # (lamad.notebook) overrides to display values, derivatives and graphs richly.

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def print_error(self, text: str) -> None:
        """An input's error, located (:meth:`locate`)."""
        self.print(text)

    def print_value(self, value: Any, ty: Any) -> None:
        self.print(self.value(value, ty))

    def print_code(self, text: str) -> None:
        """A program lamad printed: a derivative."""
        self.print(text)

    def print_graph(self, dot: Any) -> None:
        """A computational graph, a ``graphviz.Digraph``: its DOT text."""
        self.print(dot.source.rstrip("\n"))

    # ----------------------------------------------------------------- inputs

    def define(self, program: Program) -> None:
        self.program.define(program)
        for imp in program.imports:
            names = [*self.program.types, *self.program.typed.scope.templates]
            own = [n[len(imp.name) + 1:] for n in names if n.startswith(imp.name + ".") and "'" not in n]
            self.print(f"imported {imp.name}: {', '.join(n for n in own if '.' not in n) or 'no definitions'}")
        for a in program.aliases:
            self.print(f"type {a.name} = {pretty_type(self.program.typed.scope.aliases[a.name], self.ascii)}")
        for d in program.defs:
            self.print(f"{d.name} : {pretty_type(self.program.typed.type_of(d.name), self.ascii)}")

    def show(self, term: Term, number: Type = INT) -> None:
        """Evaluate an expression and print its value; the numbers nothing determines are
        ``number``s (Reals in the differentiation commands: docs/language.md, Numbers)."""
        checked = self.program.check(term, number)
        self.print_value(self.program.run(checked), checked.ty)

    def differentiable(self, term: Term, forward: bool = False) -> None:
        """That ``term``, to be differentiated, has a Real or Tensor in its type, read as
        the differentiation commands read it (numbers nothing determines are Reals)."""
        ty = driver.type_of(term, self.program.types, self.program.typed.scope, REAL)
        _differentiable(ty, term, forward)

    def value(self, value: Any, ty: Any) -> str:
        return format_value(api.on_host(value, ty, self.program.backend), ty, self.ascii, shapes=True,
                            full=self.arrays == "full")

    def derivative(self, term: Term, simplified: bool, forward: bool = False) -> None:
        """←D (or →D) of a term, or of a definition named alone, as ``lamad grad`` prints it."""
        self.differentiable(term, forward)
        named = pretty(term) if isinstance(term, (Var, Proj)) else None  # a definition, nn.dense among them
        if named in self.program:
            transform = self.program.forward if forward else self.program.backprop
            name, ty, target = transform(named, simplified, self.normalize)
            self.print_code(pretty_derivative(name, ty, target, self.ascii, definition=True, forward=forward,
                                              shadowed=frozenset(self.program.types), width=_terminal_width(self.out)))
            return
        checked = self.program.check(term, REAL)
        ty, target = self.program.derivative(checked, simplified, forward, self.normalize)
        label = pretty(term, self.ascii, width=sys.maxsize)  # the comment's one line
        self.print_code(pretty_derivative(label, ty, target, self.ascii, forward=forward,
                                          shadowed=frozenset(self.program.types), width=_terminal_width(self.out)))

    # ----------------------------------------------------------------- commands

    @command("type", "e", "the type of e", _term)
    def type_of(self, term: Term) -> None:
        ty = driver.type_of(term, self.program.types, self.program.typed.scope)
        self.print(f"{pretty(term, self.ascii)} : {pretty_type(ty, self.ascii)}")

    @command("d", "e", "←D e and its type: the reverse-mode transform as it comes", _term)
    def backprop(self, term: Term) -> None:
        self.derivative(term, simplified=False)

    @command("grad", "e [at v]", "←D e simplified, as `lamad grad` prints it; at v: the gradient there",
             _term_at)
    def grad(self, term: Term, point: Term | None) -> None:
        if point is None:
            self.derivative(term, simplified=True)
        else:
            self.differentiable(term)
            self.show(_apply("grad", term, point), REAL)

    @command("vjp", "e at v [with ct]", "e v and the type of its pullback; with ct: the pullback of ct",
             _term_at_with)
    def vjp(self, term: Term, point: Term, cotangent: Term | None) -> None:
        self.differentiable(term)
        checked = self.program.check(_apply("vjp", term, point), REAL)
        assert isinstance(checked.ty, TupleType)
        value_ty, pullback_ty = checked.ty.items
        assert isinstance(pullback_ty, LinType)
        value, pullback = self.program.run(checked)
        self.print(_labelled("value = ", self.value(value, value_ty)))
        self.print(f"pullback : {pretty_type(pullback_ty, self.ascii)}")
        if cotangent is not None:
            ct = self.program.run(self.program.check(Ann(cotangent, pullback_ty.dom, span=cotangent.span)))
            label = f"pullback {pretty(cotangent, self.ascii)} = "
            self.print(_labelled(label, self.value(pullback(ct), pullback_ty.cod)))

    @command("jvp", "e [at v with dx]", "→D e simplified, as `lamad grad --forward` prints it; "
             "at v with dx: e v and its derivative along dx", _term_at_with_tangent)
    def jvp(self, term: Term, point: Term | None, tangent: Term | None) -> None:
        if point is None:
            self.derivative(term, simplified=True, forward=True)
        else:
            self.differentiable(term, forward=True)
            self.show(App(_apply("jvp", term, point), tangent, span=term.span.to(tangent.span) if term.span else None),
                      REAL)

    @command("graph", "f at v [--grad]", "the computational graph of definition f at v, as DOT text "
             "(`lamad graph`); --grad: with the cotangents", _name_at_grad, shortened=False)
    def graph(self, name: Piece, point: Term, grad: bool) -> None:
        drawn = drawing.of_program(self.program, name.text, self.point("graph", "draws", name, point), grad)
        self.print_graph(drawing.to_dot(drawn, grad, name.text))

    @command("step", "e at v [with ct]", "←D e applied at v reduced by the paper's rules, one step a line "
             "(Enter: the next, q: stop), down to the gradient; with ct: the cotangent sent back", _term_at_with)
    def step(self, term: Term, point: Term, cotangent: Term | None) -> None:
        checked = self.program.check(term)
        params = reduce.parameters(self.program, checked)
        values = self.program.run(self.program.check(Ann(point, reduce.point_type(params), span=point.span)))
        ct = None
        if cotangent is not None:
            result = checked.ty
            for _ in params:
                result = result.cod
            ct = self.program.run(self.program.check(Ann(cotangent, cotangent_type(result), span=cotangent.span)))
        reduced = reduce.reduce_at(self.program, checked, params, [values] if len(params) == 1 else list(values), ct)
        for n, line in enumerate(reduce.transcript(reduced, self.ascii, shadowed=frozenset(self.program.types))):
            self.print(line)
            if n > 0 and self.pause is not None and not line.startswith("--") and not self.pause():
                return

    @command("normalize", "[on|off]", "whether :d, :grad and :jvp inline and beta-reduce higher-order code "
             "before differentiating (on by default)", _word)
    def normalizing(self, switch: str | None, where: Piece) -> None:
        if switch not in (None, "on", "off"):
            raise LamError(f"':normalize' takes 'on' or 'off', not '{switch}'", where.span())
        if switch is not None:
            self.normalize = switch == "on"
        self.print(f"normalize {'on' if self.normalize else 'off'}")

    def point(self, command: str, verb: str, name: Piece, point: Term) -> Any:
        """The value of ``point`` where ``:command`` takes the definition ``name``."""
        if name.text not in self.program:
            raise LamError(f"':{command}' {verb} a definition; '{name.text}' is not one", name.span())
        _, expected = drawing.parameters(self.program, name.text)
        return self.program.run(self.program.check(Ann(point, expected, span=point.span)))

    @command("trace", "f at v [wrt x]", "the forward primal and tangent traces of definition f at v (the "
             "tangent of input x, by default the first, 1) and its reverse adjoint trace (`lamad trace`)",
             _name_at_wrt, shortened=False)
    def trace(self, name: Piece, point: Term, wrt: Piece | None) -> None:
        at = self.point("trace", "traces", name, point)
        try:
            traced = tracing.of_program(self.program, name.text, at, True, wrt and wrt.text,
                                        "\n".join([*self.program.source.split("\n")[:self.file_lines], *self.lines]))
        except tracing.UnknownInput as e:
            raise LamError(e.args[0], wrt.span() if wrt else None) from None
        self.print(tracing.format_trace(traced, self.ascii, where=self.position))

    def position(self, span: Span) -> str:
        """Where a span of the session's text is, as its errors say: ``<repl>:LINE:COL`` in
        the lines typed, ``FILE:LINE:COL`` in the loaded file's."""
        if span.line > self.file_lines:
            return f"<repl>:{span.line - self.file_lines}:{span.column}"
        return f"{Path(self.program.filename).name}:{span.line}:{span.column}"

    @command("stats", "", "the work of the last input's gradients: backpropagators run, cotangents summed, "
             "backpropagators made")
    def stats(self) -> None:
        self.print(f"backpropagators run: {Stats.backprop_runs}\n"
                   f"cotangents summed: {Stats.cotangents_summed}\n"
                   f"backpropagators made: {Stats.backprops_made()}")

    @command("load", "FILE", "start again from the definitions of FILE", _word)
    def load(self, path: str | None, where: Piece | None) -> bool:
        """Whether the file loaded; an error in it is printed here, located in the file."""
        if path is None:
            raise LamError("which file? :load FILE", where.span() if where else None)
        file = Path(path).expanduser()
        if (why := cannot_read(file, path)) is not None:
            raise LamError(why, where.span() if where else None)
        backend = self.program.backend
        try:
            program = api.load(file, backend.name, backend.dtype_name)
        except LamError as e:  # located in the file already; the session stays as it was
            self.tried = file
            self.print_error(str(e))
            return False
        self.program, self.file = program, file
        self.print(f"loaded {path}: {', '.join(d.name for d in program.typed.program.defs) or 'no definitions'}")
        return True

    @command("reload", "", "load the last file that loaded again (after editing it)")
    def reload(self) -> bool:
        file = self.file or self.tried
        if file is None:
            raise LamError("no file to reload: :load FILE first")
        return self.load(str(file), None)

    @command("backend", "[NAME]", "evaluate on NAME (numpy, cupy, torch, jax, dask, array-api-strict); alone: show the backend", _word)
    def backend(self, name: str | None, where: Piece) -> None:
        current = self.program.runtime
        if name is not None:
            try:
                backend = get_backend(name, current.backend.dtype_name)
            except BackendError as e:
                raise BackendError(e.message, where.span()) from None
            self.program = api.LoadedProgram(self.program.typed, replace(current, backend=backend),
                                             self.program.source, self.program.filename)
        backend = self.program.backend
        self.print(f"backend: {backend.name} ({backend.dtype_name})")

    @command("ascii", "", "print terms and types in ASCII: \\ -> * -o ~A")
    def ascii_mode(self) -> None:
        self.ascii = True

    @command("unicode", "", "print terms and types in Unicode: λ → × ⊸ A⊥ (the default)")
    def unicode_mode(self) -> None:
        self.ascii = False

    @command("print", "[full|short]", "print arrays whole (full) or, as by default, with the middle of those of "
             "over 200 entries elided (short); alone: show which", _word)
    def print_arrays(self, mode: str | None, where: Piece) -> None:
        if mode is not None:
            if mode not in PRINT_MODES:
                raise LamError(f"':print' takes {' or '.join(PRINT_MODES)}, not '{mode}'", where.span())
            self.arrays = mode
        self.print(f"arrays: {self.arrays}")

    @command("help", "", "this list")
    def help(self) -> None:
        rows = [("e", "evaluate the expression e"),
                ("def f (x : A) ... = e", "define f; a new f replaces the old (what uses f is checked again)")]
        rows += [(f":{c.name} {c.usage}".rstrip(), c.summary) for c in COMMANDS.values()]
        width = max(len(usage) for usage, _ in rows)
        for usage, summary in rows:
            self.print(f"  {usage.ljust(width)}  {summary}")
        self.print("Commands may be shortened (:t, :g, :q). Enter continues an unfinished input on a new line.\n"
                   "Tab completes names, commands and \\lambda-style symbols. Ctrl-C interrupts; Ctrl-D quits.")

    @command("quit", "", "leave (Ctrl-D too)")
    def quit(self) -> None:
        self.done = True


def _apply(op: str, fn: Term, point: Term) -> Term:
    """``op fn point``: an AD operator applied, spanning its arguments."""
    return App(App(Var(op, span=fn.span), fn, span=fn.span), point, span=fn.span.to(point.span) if fn.span else None)


def _terminal_width(out: TextIO) -> int:
    """The width of the terminal the REPL prints on, which it prints terms in
    (:data:`lamad.pretty.WIDTH` on anything else: a pipe, a file)."""
    try:
        return os.get_terminal_size(out.fileno()).columns if out.isatty() else WIDTH
    except (OSError, ValueError, io.UnsupportedOperation):
        return WIDTH


def _differentiable(ty: Type, term: Term, forward: bool) -> None:
    """An error for a term with no Real or Tensor in its type, which ←D and →D leave as it
    is: an Int is discrete, it has no derivative (docs/language.md, Numbers).  A type not
    known yet (``λx. x : 'a → 'a``) may still be given reals: no error."""
    try:
        discrete = not has_leaves(ty)
    except ValueError:  # a type variable in it
        return
    if discrete:
        mark = "→D" if forward else "←D"
        raise LamError(f"nothing to differentiate: this term's type, {pretty_type(ty)}, has no Real or Tensor in it, "
                       f"so {mark} leaves it as it is; an Int is discrete and has no derivative (annotate Real, "
                       "or write 3.0, to differentiate)", term.span)


def _labelled(label: str, text: str) -> str:
    """``label`` before ``text``, whose further lines are indented under its first."""
    return label + text.replace("\n", "\n" + " " * len(label))


# --------------------------------------------------------------------- completion


class LamCompleter(Completer):
    """Tab completion: ``:commands``, file names after ``:load``, ``\\lambda``-style
    symbols, and names: the session's definitions (with their types), builtins,
    keywords and types."""

    def __init__(self, repl: Repl):
        self.repl = repl

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if m := re.fullmatch(r"\s*:(\w*)", text):
            for c in COMMANDS.values():
                if c.name.startswith(m[1]):
                    yield Completion(f":{c.name}", -len(m[1]) - 1, display_meta=c.summary)
            return
        if m := re.match(r"\s*:load\s+", text):
            yield from PathCompleter(expanduser=True).get_completions(Document(text[m.end():]), complete_event)
            return
        if m := re.search(r"\\([a-z]*)$", text):
            for name, symbol in SYMBOLS.items():
                if name.startswith(m[1]):
                    yield Completion(symbol, -len(m[0]), display=f"\\{name} {symbol}")
            return
        m = re.search(r"[A-Za-z_][A-Za-z0-9_'.]*$", text)  # a module's definitions too: nn.dense
        if m is None or "--" in document.current_line_before_cursor:
            return
        word = m[0]
        for name, meta in self.names():
            if name.startswith(word):
                yield Completion(name, -len(word), display_meta=meta)

    def names(self) -> Iterator[tuple[str, str]]:
        ascii = self.repl.ascii
        for name, ty in self.repl.program.types.items():
            yield name, pretty_type(ty, ascii)
        yield from ((name, PRIMITIVES[name].doc or "builtin") for name in sorted(n for n in PRIMITIVES if public(n)))
        yield from ((name, "keyword") for name in sorted(KEYWORDS))
        yield from ((name, "type") for name in [*sorted(BASE_TYPES), "List"])


# --------------------------------------------------------------------- the loop


def history_file() -> Path:
    """``$XDG_DATA_HOME/lamad/history`` (by default ``~/.local/share/lamad/history``)."""
    data = os.environ.get("XDG_DATA_HOME", "")
    root = Path(data) if os.path.isabs(data) else Path.home() / ".local" / "share"
    return root / "lamad" / "history"


def _history() -> History:
    path = history_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        return InMemoryHistory()  # a read-only home: this session's history only
    return FileHistory(str(path))


def _keys(repl: Repl) -> KeyBindings:
    """Enter runs the input, or starts a new line while it is unfinished (an empty last
    line runs it anyway, to show what is wrong); in the completion menu, it takes the
    completion chosen."""
    keys = KeyBindings()

    @keys.add("enter", filter=~completion_is_selected)
    @keys.add("c-j", filter=~completion_is_selected)
    def _(event) -> None:
        buffer = event.current_buffer
        last_line = buffer.document.lines[-1]
        if last_line.strip() and repl.unfinished(buffer.text):
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @keys.add("enter", filter=completion_is_selected)
    def _(event) -> None:
        event.current_buffer.complete_state = None
    return keys


def _continuation(width: int, line_number: int, is_soft_wrap: bool) -> str:
    return CONTINUATION.rjust(width)


def prompt_session(repl: Repl, input: Input | None = None, output: Output | None = None) -> PromptSession[str]:
    """The prompt: multi-line input, history, completion, and what is typed highlighted
    by :class:`lamad.highlight.LamadReplLexer` (in colour where the terminal has it:
    prompt_toolkit prints none under ``NO_COLOR`` or ``TERM=dumb``)."""
    return PromptSession(
        PROMPT, multiline=True, key_bindings=_keys(repl), prompt_continuation=_continuation,
        history=_history(), completer=LamCompleter(repl), complete_while_typing=False,
        lexer=PygmentsLexer(LamadReplLexer), input=input, output=output)


def _next_step(input: Input | None, output: Output | None) -> bool:
    """Wait for Enter (the next step) or ``q`` (stop), for ``:step``."""
    try:
        return PromptSession("", input=input, output=output).prompt().strip().lower() != "q"
    except (EOFError, KeyboardInterrupt):
        return False


def _prompts(repl: Repl, input: Input | None, output: Output | None) -> Iterator[str]:
    """The inputs typed at the prompt, until Ctrl-D; Ctrl-C at the prompt drops the line."""
    prompt = prompt_session(repl, input, output)
    while True:
        try:
            yield prompt.prompt()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return


def _lines(repl: Repl, stream: TextIO) -> Iterator[str]:
    """The inputs read from a file or pipe, each echoed after the prompt, as a transcript."""
    buffer: list[str] = []
    for line in chain(stream, [""]):  # the end of the stream ends an unfinished input
        buffer.append(line.rstrip("\n"))
        if line.strip() and repl.unfinished("\n".join(buffer)):
            continue
        text, buffer = "\n".join(buffer).rstrip("\n"), []
        if text.strip():
            repl.print(PROMPT + text.replace("\n", "\n" + CONTINUATION))
            yield text


def main(file: Path | None = None, backend: str | None = None, dtype: str | None = None, *,
         input: Input | None = None, output: Output | None = None, out: TextIO | None = None) -> int:
    """Run the REPL until ``:quit`` or Ctrl-D; ``input``/``output`` are
    prompt_toolkit's (a terminal by default).  Reading from a pipe instead, each input is
    echoed, and the exit status is 1 if one failed."""
    repl = Repl(backend, dtype, out)
    interactive = input is not None or sys.stdin.isatty()
    if interactive:
        repl.print(f"lamad {__version__}: :help lists the commands, Ctrl-D quits")
    if interactive:
        repl.pause = partial(_next_step, input, output)
    failed = file is not None and not repl.load(str(file), None)  # a file that fails to load is a failed input
    for text in _prompts(repl, input, output) if interactive else _lines(repl, sys.stdin):
        try:
            failed |= not repl.execute(text)
        except KeyboardInterrupt:  # between two inputs
            repl.print("interrupted")
        if repl.done:
            break
    return 1 if failed and not interactive else 0
