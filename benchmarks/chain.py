"""The shared chain of SPEC §4: ``x1 = x0 * x0; ...; xn = x(n-1) * x(n-1)``.

A naive evaluator that calls backpropagators eagerly makes 2^n calls on it; lamad's
forcing runs each backpropagator once, so the gradient's time grows linearly in n,
a small constant times the forward pass.  Run: ``python benchmarks/chain.py``."""

from __future__ import annotations

import sys
import time
import numpy as np

import lamad
from lamad.gradient import Stats

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import median_times, write_table  # noqa: E402


def chain_program(n: int) -> str:
    lets = "; ".join(f"x{i} = x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    return f"def f (x0 : Real) : Real = let {lets} in x{n}\n"


def main(sizes=(100, 1_000, 10_000)) -> None:
    np.seterr(over="ignore")  # the gradient 2^n overflows for large n: the time is what counts
    rows = []
    for n in sizes:
        start = time.perf_counter()
        prog = lamad.loads(chain_program(n))
        f, df = prog.f, lamad.grad(prog.f)
        df(1.0)
        setup = time.perf_counter() - start
        Stats.reset()
        df(1.0)
        runs = Stats.backprop_runs
        t = median_times({"forward": lambda: f(1.0), "grad": lambda: df(1.0)}, repeats=5)
        rows.append([f"{n:,}", f"{t['forward'] * 1e3:.2f}", f"{t['grad'] * 1e3:.2f}", f"{t['grad'] / t['forward']:.1f}",
                     f"{t['grad'] / n * 1e6:.1f}", f"{runs:,}", f"{setup:.1f}"])
    write_table("chain", ["n", "forward (ms)", "grad (ms)", "grad / forward", "grad per link (µs)",
                          "backpropagator runs", "parse + check + ←D + compile (s)"], rows,
                note="Shared chain x_i = x_(i-1) * x_(i-1): times per call (median of interleaved repetitions).")


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or (100, 1_000, 10_000))
