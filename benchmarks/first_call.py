"""The first-call cost of a gradient, against CPython compiling the same program by hand:

    python benchmarks/first_call.py                 # n = 1000, 2000, 5000 links
    python benchmarks/first_call.py --sizes 200     # any lengths
    python benchmarks/first_call.py --profile 5000  # cProfile of each phase instead

The program is a straight-line scalar chain of ``n`` links,

    def f (x0 : Real) : Real =
      let x1 = sin x0 * x0 + x0;
          ...
      in xn

and the cost is everything between its text and the value of ``grad f`` at a point, phase
by phase, through lamad's own functions: parse (``parse_program``), check
(``typecheck``), ←D (``backprop``, which types what it makes: its output is not checked
again), compile (``compile_term``) and run (the ←D function on the point, then its
backpropagators).  That is the first tier of ←D, which a first call runs
(``lamad.eval._LamSource``); the second call of the gradient compiles its second tier,
whose backpropagators are fused: it collects the first tier's code, then ←D, fuse
(``fuse_backward``), compile and run again, timed apart as "second call".  The baseline is
CPython's ``compile`` + ``exec`` + call of the same program written in Python by hand
with its reverse sweep.  Times are CPU seconds of this process (on a machine shared
with other jobs they count the work done, which wall-clock time would not).  Peak memory is
traced (``tracemalloc``) in a separate run of the same phases, as tracing slows them down.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import pstats
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import lamad
from common import RESULTS, machine, markdown_table, write_results
from lamad.autodiff import pulled_back, walks
from lamad.deep import collector_paused
from lamad.driver import runtime as make_runtime
from lamad.eval import compile_term
from lamad.fuse import fuse_backward
from lamad.parser import parse_program
from lamad.reverse import backprop
from lamad.syntax import free_variables
from lamad.types import typecheck

POINT = 1e-4
"""Where the gradient is taken: the chain x ↦ x (1 + sin x) stays finite for n ≤ 9000."""

TARGET_RATIO = 10.0
TARGET_BYTES_PER_LINK = 20_000

PHASES = ("parse", "check", "←D", "compile", "run")
"""The phases of a first call."""


def lamad_source(n: int) -> str:
    """The chain of ``n`` links in lamad."""
    lines = ["def f (x0 : Real) : Real ="]
    for i in range(1, n + 1):
        head = "  let " if i == 1 else "      "
        lines.append(f"{head}x{i} = sin x{i - 1} * x{i - 1} + x{i - 1}" + (";" if i < n else ""))
    lines.append(f"  in x{n}")
    return "\n".join(lines) + "\n"


def python_source(n: int) -> str:
    """The chain in Python with its reverse sweep, as one writes it by hand:
    ``a{i}`` is the adjoint of ``x{i}``, ∂x_i/∂x_(i-1) = cos x · x + sin x + 1."""
    lines = ["def grad_f(x0):"]
    lines += [f"    x{i} = math.sin(x{i - 1}) * x{i - 1} + x{i - 1}" for i in range(1, n + 1)]
    lines.append(f"    a{n} = 1.0")
    lines += [f"    a{i - 1} = a{i} * (math.cos(x{i - 1}) * x{i - 1} + math.sin(x{i - 1}) + 1.0)"
              for i in range(n, 0, -1)]
    lines.append("    return a0")
    return "\n".join(lines) + "\n"


@collector_paused
def lamad_phases(src: str, x: float, profiles: dict[str, cProfile.Profile] | None = None
                 ) -> tuple[dict[str, float], float]:
    """Seconds per phase of ``grad f`` at ``x`` from the text ``src`` — those of the first
    call (:data:`PHASES`), then the whole of the second (``"second call"``: its phases
    ``"collect"`` (the first tier's code), ``"second ←D"``, ``"fuse"``, ``"second
    compile"`` and ``"second run"``) — and the gradient, which both calls must agree on,
    with the cyclic collector paused as lamad's API pauses it for these passes; with
    ``profiles``, each phase is profiled by a profiler of its own, put there by name."""
    runtime = make_runtime()
    t: dict[str, float] = {}

    def phase(name, fn, *args):
        profiler = None if profiles is None else profiles.setdefault(name, cProfile.Profile())
        start = time.process_time()
        if profiler is not None:
            profiler.enable()
        result = fn(*args)
        if profiler is not None:
            profiler.disable()
        t[name] = time.process_time() - start
        return result

    def run(code, fty):
        seed = runtime.backend.scalar(1.0)
        return float(pulled_back(code(), runtime.backend.scalar(x), walks(fty.dom), seed, False, runtime, None))

    program = phase("parse", parse_program, src)
    typed = phase("check", typecheck, program)
    term, fty = typed.terms["f"], typed.types["f"]
    names = list(free_variables(term))
    code = phase("compile", compile_term, phase("←D", backprop, term), runtime, typed.terms.__getitem__, names)
    g = phase("run", run, code, fty)
    del code  # as lamad.eval._LamSource lets the first tier go, and collects it, before it makes the second
    phase("collect", gc.collect)
    fused = phase("fuse", fuse_backward, phase("second ←D", backprop, term), names)
    code = phase("second compile", compile_term, fused, runtime, typed.terms.__getitem__, names)
    again = phase("second run", run, code, fty)
    assert again == g, (again, g)
    t["second call"] = sum(t[p] for p in ("collect", "second ←D", "fuse", "second compile", "second run"))
    return t, g


def python_first_call(src: str, x: float) -> tuple[float, float]:
    """CPython's compile + exec + call of the hand-written gradient: seconds and value."""
    start = time.process_time()
    namespace = {"math": math}
    exec(compile(src, "<chain>", "exec"), namespace)
    g = namespace["grad_f"](x)
    return time.process_time() - start, g


def peak_bytes(src: str, x: float) -> int:
    """Peak memory traced while lamad's phases run on ``src``."""
    gc.collect()
    tracemalloc.start()
    try:
        lamad_phases(src, x)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def row(n: int, repeats: int) -> list[str]:
    src, pysrc = lamad_source(n), python_source(n)
    runs = [lamad_phases(src, POINT) for _ in range(repeats)]
    phases, g = min(runs, key=lambda r: sum(r[0][p] for p in PHASES))
    python, reference = min(python_first_call(pysrc, POINT) for _ in range(repeats))
    assert math.isclose(g, reference, rel_tol=1e-9), (g, reference)
    total = sum(phases[p] for p in PHASES)
    peak = peak_bytes(src, POINT)
    return ([f"{n:,}"] + [f"{phases[p] * 1e3:,.0f}" for p in PHASES] +
            [f"{total * 1e3:,.0f}", f"{total / n * 1e6:,.0f}", f"{python * 1e3:,.1f}", f"**{total / python:.1f}**",
             f"{peak / n / 1e3:.1f}", f"{phases['second call'] * 1e3:,.0f}", f"{phases['fuse'] * 1e3:,.0f}"])


def profile(n: int, top: int) -> None:
    """cProfile of each phase on the chain of ``n`` links: the functions that take the most
    time of their own, phase by phase."""
    src = lamad_source(n)
    lamad_phases(src, POINT)  # warm: imports, the parser's tables
    profiles: dict[str, cProfile.Profile] = {}
    times, _ = lamad_phases(src, POINT, profiles)
    for name in (*PHASES, "second ←D", "fuse", "second compile"):
        out = io.StringIO()
        pstats.Stats(profiles[name], stream=out).sort_stats("tottime").print_stats(top)
        body = out.getvalue()
        print(f"==== {name}: {times[name] * 1e3:,.0f} ms under the profiler\n" + body[body.index("   ncalls"):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000], metavar="N")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size; the fastest is kept (default 3)")
    parser.add_argument("--profile", type=int, metavar="N", help="profile the phases on n links instead")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile (default 30)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the table")
    args = parser.parse_args(argv)
    lamad.loads(lamad_source(3))  # imports and the parser's tables, outside the figures
    if args.profile:
        profile(args.profile, args.top)
        return 0
    rows = [row(n, args.repeats) for n in args.sizes]
    text = ["# First-call cost of a gradient", "",
            "`grad f` at a point from the text of a straight-line chain of n links "
            "(`x_i = sin x_(i-1) * x_(i-1) + x_(i-1)`): the phases of lamad's first call in CPU ms (fastest of "
            f"{args.repeats} runs), against CPython's compile + exec + call of the same program written by hand in "
            "Python with its reverse sweep. Peak memory of the two calls traced by tracemalloc, per link. "
            f"Targets: lamad / CPython ≤ {TARGET_RATIO:g}, under {TARGET_BYTES_PER_LINK // 1000} KB per link. "
            "The second call compiles ←D again with its backpropagators fused (its ←D, fuse, compile and run).", "",
            markdown_table(["n", *(f"{p} (ms)" for p in PHASES), "lamad total (ms)", "µs per link",
                            "CPython (ms)", "lamad / CPython", "peak KB per link", "second call (ms)",
                            "of which fuse (ms)"], rows), "",
            f"Machine: {machine()}.", ""]
    write_results("first-call", "\n".join(text), args.results)
    return 0


def on_big_stack(fn):
    """``fn()`` in a thread with a big stack and a high recursion limit: the passes recurse
    once per link of the chain."""
    result = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 200_000))
    threading.stack_size(1 << 30)
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    thread.join()
    return result[0] if result else 1


if __name__ == "__main__":
    sys.exit(on_big_stack(main))
