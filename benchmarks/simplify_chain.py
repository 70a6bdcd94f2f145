"""The simplifier's cost on long straight-line programs:

    python benchmarks/simplify_chain.py                 # n = 250, 500, 1000, 2000
    python benchmarks/simplify_chain.py 100 200         # other lengths
    python benchmarks/simplify_chain.py --tensor        # the Tensor variant

For each n it builds ``def f (x0 : Real) : Real = let x1 = sin x0 * x0 + x0; … in xn``
(``n`` bindings) and times the commands ``lamad grad`` and ``lamad grad --raw`` on it,
Python's start-up, reading, checking and printing included, and their ratio; then, in
this process, ←D alone (``backprop("f", simplified=False)``) and ←D simplified
(``simplified=True``), whose difference is the simplifier's.  Each pair is interleaved,
and each time the median of three.  Times are CPU seconds (of the command's process, or
of this one; ``--wall`` for wall-clock seconds): on a machine shared with other jobs they
count the work done.  A simplifier that is linear in the program keeps the simplifier's
time per line flat as n doubles.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lamad  # noqa: E402


def chain_source(n: int, tensor: bool = False) -> str:
    """The straight-line program of ``n`` links ``x_i = sin x_{i-1} * x_{i-1} + x_{i-1}``;
    a Tensor variant sums the last link."""
    lines = [f"def f (x0 : {'Tensor' if tensor else 'Real'}) : Real ="]
    for i in range(1, n + 1):
        lead = "  let " if i == 1 else "      "
        lines.append(f"{lead}x{i} = sin x{i - 1} * x{i - 1} + x{i - 1}{';' if i < n else ''}")
    lines.append(f"  in sum x{n}" if tensor else f"  in x{n}")
    return "\n".join(lines) + "\n"


def children_cpu() -> float:
    """CPU seconds (user and system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(path: Path, raw: bool, wall: bool) -> float:
    """Seconds of one ``lamad grad`` (``--raw``) on the program at ``path``."""
    args = [sys.executable, "-m", "lamad.cli", "grad", str(path), "--entry", "f"] + (["--raw"] if raw else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start if wall else children_cpu() - cpu


def medians(run: Callable[[bool], float], repeats: int) -> tuple[float, float]:
    """The median seconds of ``run(True)`` (raw) and ``run(False)`` (simplified), interleaved."""
    samples: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for raw in (True, False):
            samples[raw].append(run(raw))
    return statistics.median(samples[True]), statistics.median(samples[False])


def time_grad(n: int, tensor: bool = False, repeats: int = 3, wall: bool = False) -> tuple[float, ...]:
    """Median seconds of the commands ``lamad grad --raw`` and ``lamad grad``, then of
    ←D and ←D simplified in this process, on the chain of ``n`` links."""
    source = chain_source(n, tensor)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chain.lam"
        path.write_text(source)
        commands = medians(lambda raw: time_command(path, raw, wall), repeats)
    prog = lamad.loads(source)
    clock = time.perf_counter if wall else time.process_time

    def derivative(raw: bool) -> float:
        start = clock()
        prog.backprop("f", simplified=not raw)
        return clock() - start

    return commands + medians(derivative, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[250, 500, 1000, 2000])
    parser.add_argument("--tensor", action="store_true", help="x0 : Tensor, and sum xn at the end")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wall", action="store_true", help="wall-clock seconds instead of CPU seconds")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{'wall-clock' if args.wall else 'CPU'} seconds, median of {args.repeats}")
    print("| n | `lamad grad --raw` | `lamad grad` | ratio | ←D | ←D simplified | simplifier per line (ms) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        raw, simplified, d, d_simplified = time_grad(n, args.tensor, args.repeats, args.wall)
        print(f"| {n:,} | {raw:.2f} | {simplified:.2f} | {simplified / raw:.2f} | {d:.2f} | {d_simplified:.2f} "
              f"| {1000 * (d_simplified - d) / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
