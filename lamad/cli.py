"""The ``lamad`` command (README.md, "The command line").

Exit status: 0 on success, 1 on an error in the user's program (syntax, type,
run time: a located message on stderr, never a traceback), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from lamad import __version__, api, archive, cluster, graph, trace
from lamad.backend import BACKENDS, DTYPES, BackendError, get_backend
from lamad.errors import LamError, LamWarning, cannot_read, read_source
from lamad.parser import parse_program
from lamad.driver import format_value, pretty, pretty_derivative, pretty_type  # with the big stack when deep
from lamad.pretty import PRINT_MODES
from lamad.adtypes import cotangent_type
from lamad.syntax import Var
from lamad.threads import DEFAULT_THREADS, limit_threads


class UsageError(Exception):
    """Bad use of the command line (exit status 2)."""


class OutputError(Exception):
    """A result that could not be written where ``--output`` says (exit status 1)."""


def _load(args: argparse.Namespace) -> api.LoadedProgram:
    path = Path(args.file)
    if (why := cannot_read(args.file)) is not None:
        raise UsageError(why)
    _backend(args)
    return api.load(path, backend=getattr(args, "backend", None), dtype=getattr(args, "dtype", None),
                    progress=getattr(args, "progress", False), scheduler=getattr(args, "scheduler", None))


def _backend(args: argparse.Namespace) -> None:
    """A bad $LAMAD_BACKEND / $LAMAD_DTYPE / $LAMAD_SCHEDULER is bad usage, not an error in the program."""
    try:
        backend = get_backend(getattr(args, "backend", None), getattr(args, "dtype", None))
    except BackendError as e:
        raise UsageError(f"{e.message} (set by --backend/--dtype or $LAMAD_BACKEND/$LAMAD_DTYPE)") from None
    try:
        cluster.use(backend, getattr(args, "scheduler", None))
    except BackendError as e:
        raise UsageError(f"{e.message} (set by --scheduler or $LAMAD_SCHEDULER)") from None


def _entry(prog: api.LoadedProgram, name: str | None) -> str:
    defined = ", ".join(prog.types) or "nothing"
    if name is None:
        if "main" not in prog:
            raise UsageError(f"{prog.filename} has no 'main'; choose a definition with --entry (defined: {defined})")
        return "main"
    if name not in prog:
        raise UsageError(f"{prog.filename} has no definition '{name}' (defined: {defined})")
    return name


def _arguments(prog: api.LoadedProgram, entry: str, given: list[str]) -> list:
    """The values of ``--arg NAME=VALUE`` (a lamad expression) or ``NAME=@file.npy``, in
    parameter order."""
    params = prog.typed.program[entry].params
    types = prog.function_types(entry)[:len(params)]  # with the type aliases the annotations name expanded
    pairs: dict[str, str] = {}
    for item in given:
        name, eq, text = item.partition("=")
        if not eq:
            raise UsageError(f"--arg expects NAME=VALUE, got '{item}'")
        if name not in {p.name for p in params}:
            expected = ", ".join(p.name for p in params) or "no parameters"
            raise UsageError(f"'{entry}' has no parameter '{name}' (it takes {expected})")
        if name in pairs:
            raise UsageError(f"--arg {name} is given twice ('{pairs[name]}' and '{text}')")
        pairs[name] = text
    missing = [f"{p.name} : {pretty_type(p.annot)}" for p in params if p.name not in pairs]
    if missing:
        raise UsageError(f"'{entry}' needs --arg for: {', '.join(missing)}")
    values = []
    for p, annot in zip(params, types):
        text = pairs[p.name]
        if text.startswith("@"):
            from lamad.prims.constructors import read_npy

            try:
                data = read_npy(text[1:], text[1:])
            except (OSError, ValueError) as e:
                raise UsageError(f"cannot load '{text[1:]}' for {p.name}: {e}") from None
            try:
                values.append(api.from_python(data, annot, prog.backend))
            except (TypeError, ValueError) as e:
                raise UsageError(f"'{text[1:]}' is not a value of type {pretty_type(annot)} for {p.name}: "
                                 f"{e}") from None
        else:
            values.append(prog.evaluate(text, annot, f"<--arg {p.name}>"))
    return values


def cmd_run(args: argparse.Namespace) -> int:
    prog = _load(args)
    entry = _entry(prog, args.entry)
    if args.output is not None:
        _storable(prog, entry, len(prog.typed.program[entry].params))
    values = _arguments(prog, entry, args.arg or [])
    result, ty = prog.call(entry, values)
    print(format_value(api.on_host(result, ty, prog.backend), ty, ascii=args.ascii, full=args.print == "full"))
    if args.output is not None:
        try:
            archive.write(args.output, result, ty, prog.backend.to_host)
        except OSError as e:
            raise OutputError(f"cannot write {args.output}: {e.strerror or e}") from None
    return 0


def _storable(prog: api.LoadedProgram, entry: str, arity: int) -> None:
    """That ``--output`` can hold the result of ``entry`` applied to its ``arity``
    parameters, checked before it runs: data, no function."""
    ty = prog.types[entry]
    for _ in range(arity):
        ty = ty.cod
    bad = archive.not_data(ty)
    if bad is not None:
        raise UsageError(f"--output saves data (numbers, arrays, text, and tuples and lists of them), but "
                         f"'{entry}' gives a {pretty_type(ty, ascii=True)}, which holds a function")


def cmd_check(args: argparse.Namespace) -> int:
    prog = _load(args)  # the imported modules are checked too; their definitions are not listed
    for d in prog.typed.program.defs:
        print(f"{d.name} : {pretty_type(prog.typed.type_of(d.name), ascii=args.ascii)}")
    return 0


def cmd_grad(args: argparse.Namespace) -> int:
    prog = _load(args)
    entry = _entry(prog, args.entry)
    transform = prog.forward if args.forward else prog.backprop
    name, ty, term = transform(entry, simplified=not args.raw, normalized=args.normalize)
    print(pretty_derivative(name, ty, term, args.ascii, definition=True, forward=args.forward,
                      shadowed=frozenset(prog.types)))
    return 0


def cmd_reduce(args: argparse.Namespace) -> int:
    from lamad import reduce

    prog = _load(args)
    entry = _entry(prog, args.entry)
    try:
        term = Var(entry, ty=prog.types[entry], span=prog.typed.program[entry].name_span)
        params = reduce.parameters(prog, term)
        values = prog.evaluate(args.at, reduce.point_type(params), "<--at>")
        cotangent = None
        if args.cotangent is not None:
            result = prog.types[entry]
            for _ in params:
                result = result.cod
            cotangent = prog.evaluate(args.cotangent, cotangent_type(result), "<--cotangent>")
        reduced = reduce.reduce_at(prog, term, params, [values] if len(params) == 1 else list(values), cotangent)
        width = args.width or max(40, shutil.get_terminal_size((120, 24)).columns - 16)
        for line in reduce.transcript(reduced, args.ascii, width, frozenset(prog.types)):
            print(line)
    except LamError as e:
        raise e.locate(prog.source, prog.filename) from None
    return 0


def _at_point(prog: api.LoadedProgram, entry: str, args: argparse.Namespace, show: Callable[[Any], Any]) -> Any:
    """``show(at)`` for the point ``--at`` where ``lamad graph`` and ``lamad trace`` take
    ``entry``: its errors are located in the text of ``--at``, the others in the program."""
    try:
        _, expected = graph.parameters(prog, entry)
        return show(prog.evaluate(args.at, expected, "<--at>"))
    except LamError as e:
        raise e.locate(prog.source, prog.filename) from None


def cmd_graph(args: argparse.Namespace) -> int:
    prog = _load(args)
    entry = _entry(prog, args.entry)
    if args.output is not None and args.output.rsplit(".", 1)[-1].lower() not in graph.FORMATS:
        raise UsageError(f"-o writes {', '.join('.' + f for f in graph.FORMATS)}, not '{args.output}'")
    dot = _at_point(prog, entry, args, lambda at: graph.to_dot(graph.of_program(prog, entry, at, args.grad),
                                                               args.grad, entry))
    if args.output is None:
        print(dot.source, end="")
        return 0
    try:
        graph.write(dot, args.output)
    except OSError as e:
        raise OutputError(f"cannot write {args.output}: {e.strerror or e}") from None
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    prog = _load(args)
    entry = _entry(prog, args.entry)
    try:
        print(_at_point(prog, entry, args, lambda at: trace.format_trace(
            trace.of_program(prog, entry, at, args.forward, args.seed), args.ascii, reverse=not args.forward)))
    except trace.UnknownInput as e:
        raise UsageError(f"--seed: {e.args[0]}") from None
    return 0


def cmd_repl(args: argparse.Namespace) -> int:
    if args.file is not None and (why := cannot_read(args.file)) is not None:
        raise UsageError(why)
    _backend(args)
    from lamad import repl  # prompt_toolkit is imported by the REPL only

    return repl.main(args.file and Path(args.file), args.backend, args.dtype)


def cmd_fmt(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if (why := cannot_read(args.file)) is not None:
        raise UsageError(why)
    source = read_source(path)
    try:
        program = parse_program(source)
    except LamError as e:
        raise e.locate(source, str(path)) from None
    print(pretty(program, ascii=args.ascii), end="")
    return 0


_THREADS_HELP = ("threads of the BLAS under NumPy (default: 1, or $OPENBLAS_NUM_THREADS / $OMP_NUM_THREADS "
                 "if set)")


def _positive(noun: str) -> Callable[[str], int]:
    """The argument type of a count of ``noun``: a number, 1 or more."""
    def count(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"expected a number of {noun} (1 or more), got '{text}'")
        return int(text)
    return count


_threads = _positive("threads")


def _set_threads(args: argparse.Namespace) -> None:
    """``--threads``, or one thread unless the environment chose (docs/design.md, Threads)."""
    n = getattr(args, "threads", None)
    if n is None and (os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")):
        return
    limit_threads(n or DEFAULT_THREADS)


def _function_at_point(command: argparse.ArgumentParser, verb: str, example: str = "(-2.0, 5.0, -4.0)") -> None:
    """The arguments of a command that takes a function of a program at a point."""
    command.add_argument("file")
    command.add_argument("--entry", metavar="NAME", help=f"the function to {verb} (default: main)")
    command.add_argument("--at", required=True, metavar="ARGS",
                         help="its arguments: a lamad expression, the tuple of the parameters' values "
                              f"('{example}') or the one parameter's")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamad", description="A typed lambda calculus with reverse-mode AD.")
    parser.add_argument("--version", action="version", version=f"lamad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="evaluate a definition of a program (main by default)")
    run.add_argument("file")
    run.add_argument("--entry", metavar="NAME", help="the definition to evaluate (default: main)")
    run.add_argument("--arg", action="append", metavar="NAME=VALUE",
                     help="a parameter of the entry: a lamad expression, or @file.npy")
    run.add_argument("--backend", choices=BACKENDS, help="array backend (default: $LAMAD_BACKEND or numpy)")
    run.add_argument("--dtype", choices=DTYPES, help="float dtype (default: float64)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="with --backend dask: the dask.distributed scheduler to compute on, e.g. "
                          "tcp://host:8786, or 'local' to start a cluster here (default: $LAMAD_SCHEDULER, "
                          "else Dask's threaded scheduler)")
    run.add_argument("--ascii", action="store_true", help="print ASCII instead of Unicode")
    run.add_argument("--print", choices=PRINT_MODES, default="short",
                     help="how arrays are printed: 'short' elides the middle of those of over 200 entries "
                          "with '...' (the default), 'full' prints every entry")
    run.add_argument("--output", metavar="FILE.npz",
                     help="also save the result to a NumPy .npz archive, which load_params reads back")
    run.add_argument("--quiet", action="store_true", help="no progress bar for long loops (shown on a terminal)")
    run.add_argument("--threads", type=_threads, metavar="N", help=_THREADS_HELP)
    run.set_defaults(handler=cmd_run)

    check = sub.add_parser("check", help="type-check a program and print the type of each definition")
    check.add_argument("file")
    check.add_argument("--ascii", action="store_true", help="print ASCII instead of Unicode")
    check.set_defaults(handler=cmd_check)

    grad = sub.add_parser("grad", help="print the reverse-mode transform ←D of a definition (→D with --forward), "
                                       "with its type")
    grad.add_argument("file")
    grad.add_argument("--entry", metavar="NAME", help="the definition to transform (default: main)")
    grad.add_argument("--forward", action="store_true", help="print the forward-mode transform →D instead")
    grad.add_argument("--raw", action="store_true", help="print the transform as it is, not simplified")
    grad.add_argument("--normalize", action="store_true",
                      help="inline and beta-reduce the definition's higher-order code first (within a budget)")
    grad.add_argument("--ascii", action="store_true", help="print ASCII instead of Unicode")
    grad.set_defaults(handler=cmd_grad)

    reducing = sub.add_parser("reduce", help="reduce ←D of a function at a point step by step, one rule a line, "
                                             "down to its gradient")
    _function_at_point(reducing, "reduce", "(1.5, 0.5)")
    reducing.add_argument("--cotangent", metavar="CT", help="the cotangent sent back from the result "
                                                            "(default: 1.0 for a Real)")
    reducing.add_argument("--width", type=_positive("columns"), metavar="N",
                          help="the width of a term on a line; longer ones are elided around the step "
                               "(default: the terminal's)")
    reducing.add_argument("--ascii", action="store_true", help="print ASCII instead of Unicode")
    reducing.set_defaults(handler=cmd_reduce)

    drawing = sub.add_parser("graph", help="draw the computational graph of one evaluation of a function, "
                                         "with its cotangents (--grad)")
    _function_at_point(drawing, "draw")
    drawing.add_argument("--grad", action="store_true", help="also show the cotangent each wire carries back")
    drawing.add_argument("-o", "--output", metavar="FILE",
                       help="write FILE.dot (DOT text), FILE.svg or FILE.png (rendered by Graphviz's dot); "
                            "default: the DOT text on stdout")
    drawing.set_defaults(handler=cmd_graph)

    tracing = sub.add_parser("trace", help="print the forward primal trace of one evaluation of a function and "
                                         "its reverse adjoint trace (the tangent trace with --forward)")
    _function_at_point(tracing, "trace")
    tracing.add_argument("--forward", action="store_true",
                         help="print the tangent trace beside the primal trace instead of the adjoint trace")
    tracing.add_argument("--seed", metavar="INPUT",
                         help="with --forward, the input whose tangent is 1, by name (x1, p.w; default: the first)")
    tracing.add_argument("--ascii", action="store_true", help="print ASCII instead of Unicode")
    tracing.set_defaults(handler=cmd_trace)

    repl = sub.add_parser("repl", help="an interactive session: evaluate, type, differentiate (:help)")
    repl.add_argument("file", nargs="?", help="a program whose definitions the session starts with")
    repl.add_argument("--backend", choices=BACKENDS, help="array backend (default: $LAMAD_BACKEND or numpy)")
    repl.add_argument("--dtype", choices=DTYPES, help="float dtype (default: float64)")
    repl.add_argument("--threads", type=_threads, metavar="N", help=_THREADS_HELP)
    repl.set_defaults(handler=cmd_repl)

    fmt = sub.add_parser("fmt", help="print a program in lamad's layout (comments are not kept)")
    fmt.add_argument("file")
    fmt.add_argument("--ascii", action="store_true", help="print ASCII instead of Unicode")
    fmt.set_defaults(handler=cmd_fmt)
    return parser


_DOING = {"run": "running", "check": "checking", "grad": "differentiating", "fmt": "formatting", "graph": "drawing",
          "reduce": "reducing", "trace": "tracing"}
"""What each command was doing, for the message of a MemoryError."""


def _show_warning(show: Callable[..., None]) -> Callable[..., None]:
    """How the command line shows a warning: a :class:`LamWarning` (NumPy's overflow or
    division by zero, located in the program) as its text on stderr, once each; another
    RuntimeWarning (NumPy's, outside the program's run) not at all; anything else as
    Python does."""
    shown: set[str] = set()

    def show_warning(message, category, *rest, **kwargs) -> None:
        if issubclass(category, LamWarning):
            if str(message) not in shown:
                shown.add(str(message))
                print(message, file=sys.stderr, flush=True)
        elif not issubclass(category, RuntimeWarning):
            show(message, category, *rest, **kwargs)
    return show_warning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.progress = args.command == "run" and not args.quiet and sys.stderr.isatty()
    if args.command in ("run", "repl"):
        _set_threads(args)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(warnings.showwarning)
            return args.handler(args)
    except LamError as e:
        print(e, file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"lamad: {e}", file=sys.stderr)
        return 2
    except OutputError as e:
        print(f"lamad: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UnicodeDecodeError as e:  # reading the file
        print(f"lamad: error: cannot read {args.file}: not UTF-8 text ({e.reason} at byte {e.start})",
              file=sys.stderr)
        return 1
    except MemoryError:
        print(f"lamad: error: out of memory while {_DOING.get(args.command, 'running')} {args.file or 'the REPL'}",
              file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
