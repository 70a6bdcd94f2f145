"""The simplifier's cost on long straight-line programs:

    python benchmarks/simplify_chain.py                 # n = 250, 500, 1000, 2000
    python benchmarks/simplify_chain.py 100 200         # other lengths
    python benchmarks/simplify_chain.py --tensor        # the Tensor variant

For each n it builds ``def f (x0 : Real) : Real = let x1 = sin x0 * x0 + x0; … in xn``
(``n`` bindings) and times ``lamad grad`` (``backprop("f", simplified=True)``) against
``lamad grad --raw`` (``simplified=False``) in-process: the two interleaved, the median
of three of each, and their ratio.  Times are CPU seconds of this process (``--wall`` for
wall-clock seconds): on a machine shared with other jobs they count the work done.  A simplifier that is linear in the program keeps the
ratio flat as n doubles.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def time_grad(n: int, tensor: bool = False, repeats: int = 3, clock=time.process_time) -> tuple[float, float]:
    """Median seconds of ``lamad grad --raw`` and of ``lamad grad`` on the chain of ``n``
    links, interleaved."""
    prog = lamad.loads(chain_source(n, tensor))
    samples: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for simplified in (False, True):
            start = clock()
            prog.backprop("f", simplified=simplified)
            samples[simplified].append(clock() - start)
    return statistics.median(samples[False]), statistics.median(samples[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[250, 500, 1000, 2000])
    parser.add_argument("--tensor", action="store_true", help="x0 : Tensor, and sum xn at the end")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wall", action="store_true", help="wall-clock seconds instead of CPU seconds")
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.process_time
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{'wall-clock' if args.wall else 'CPU'} seconds, median of {args.repeats}")
    print(f"| {'n':>5} | {'raw s':>8} | {'simplified s':>12} | {'ratio':>6} |")
    print(f"|{'-' * 7}|{'-' * 10}|{'-' * 14}|{'-' * 8}|")
    for n in args.sizes:
        raw, simplified = time_grad(n, args.tensor, args.repeats, clock)
        print(f"| {n:>5} | {raw:8.3f} | {simplified:12.3f} | {simplified / raw:6.2f} |", flush=True)


if __name__ == "__main__":
    main()
