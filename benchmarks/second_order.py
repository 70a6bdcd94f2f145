"""Second derivatives: what nesting costs.

    python benchmarks/second_order.py            # chains of 100 and 1,000 links, wine h = 16
    python benchmarks/second_order.py --quick    # tiny sizes: a smoke run

On the shared chain ``x_i = x_(i-1) * x_(i-1)`` (benchmarks/workloads.py), hvp
(forward-over-reverse) and grad of grad (reverse-over-reverse) against grad, with the
number of backpropagator runs of each; on the wine MLP (benchmarks/wine_mlp.lam, on the
data of benchmarks/data.py), hvp and the Hessian in each weight matrix (one hvp per
weight) against the gradient.  Times are medians of interleaved repetitions, per call after
the first (which transforms and compiles); the tables go to
benchmarks/results/second-order.md."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    import blas
    blas.one_thread()

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402
import lamad  # noqa: E402
from common import RESULTS, machine, markdown_table, median_times, write_results  # noqa: E402
from lamad.gradient import Stats  # noqa: E402
from workloads import _source, chain_program  # noqa: E402

SECOND = """
def grad_at (f : Real -> Real) (x : Real) : Real = grad f x
def hvp_at (f : Real -> Real) (x : Real) : Real = hvp f x 1.0
def grad_grad_at (f : Real -> Real) (x : Real) : Real = grad (grad f) x
"""

WINE = _source("wine_mlp") + """
def hvp_w (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) (v1 : Tensor) (v2 : Tensor) : Tensor * Tensor =
    hvp (\\(a, b). loss a b x y) (w1, w2) (v1, v2)
def hessian_w1 (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Tensor = hessian (\\a. loss a w2 x y) w1
def hessian_w2 (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Tensor = hessian (\\b. loss w1 b x y) w2
"""

OPS = ("grad_at", "hvp_at", "grad_grad_at")


def chain(sizes: list[int], repeats: int) -> str:
    """The table of the shared chain at each length in ``sizes``."""
    second = lamad.loads(SECOND)
    rows = []
    with np.errstate(over="ignore"):  # f''(1) = 2^n (2^n - 1) overflows for large n: the time is what counts
        for n in sizes:
            f = lamad.loads(chain_program(n)).loss
            runs = {}
            for op in OPS:
                second[op](f, 1.0)
                Stats.reset()
                second[op](f, 1.0)
                runs[op] = Stats.backprop_runs
            t = median_times({op: (lambda op=op: second[op](f, 1.0)) for op in OPS}, repeats=repeats)
            rows.append([f"{n:,}", f"{t['grad_at'] * 1e3:.2f}", f"{t['hvp_at'] * 1e3:.2f}",
                         f"{t['hvp_at'] / t['grad_at']:.1f}", f"{t['grad_grad_at'] * 1e3:.2f}",
                         f"{t['grad_grad_at'] / t['grad_at']:.1f}", " / ".join(f"{runs[op]:,}" for op in OPS)])
    return markdown_table(["n", "grad (ms)", "hvp (ms)", "hvp / grad", "grad of grad (ms)", "grad of grad / grad",
                           "backpropagator runs (grad / hvp / grad of grad)"], rows)


def wine(hidden: int, samples: int | None, repeats: int) -> tuple[str, str]:
    """The table of the wine MLP with ``hidden`` units, and a line saying what it ran on."""
    d = data.wine()
    x, y = d.x[:, :samples], d.labels[None, :samples]
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(hidden, 13)) / 4, rng.normal(size=(1, hidden)) / 4
    v1, v2 = rng.normal(size=w1.shape), rng.normal(size=w2.shape)
    prog = lamad.loads(WINE)
    dloss = lamad.grad(prog.loss, argnums=(0, 1))
    t = median_times({
        "loss": lambda: prog.loss(w1, w2, x, y),
        "grad": lambda: dloss(w1, w2, x, y),
        "hvp": lambda: prog.hvp_w(w1, w2, x, y, v1, v2),
        "hessian in w2": lambda: prog.hessian_w2(w1, w2, x, y),
        "hessian in w1": lambda: prog.hessian_w1(w1, w2, x, y),
    }, repeats=repeats)
    rows = [[name, f"{t[name] * 1e3:.2f}", f"{t[name] / t['grad']:.1f}"] for name in t]
    note = (f"Wine MLP, 13 features, {x.shape[1]} samples ({d.source}), {hidden} hidden units "
            f"({w1.size} weights in w1, {w2.size} in w2).")
    return markdown_table(["", "time (ms)", "/ grad"], rows), note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N", help="chain lengths (default 100 1000)")
    parser.add_argument("--hidden", type=int, help="hidden units of the wine MLP (default 16)")
    parser.add_argument("--repeats", type=int, help="interleaved repetitions per median (default 5)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the tables")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([5, 10] if args.quick else [100, 1_000])
    hidden = args.hidden or (3 if args.quick else 16)
    repeats = args.repeats or (1 if args.quick else 5)
    samples = 10 if args.quick else None
    about = machine()  # the load average is the one at the start
    wine_table, wine_note = wine(hidden, samples, repeats)
    text = ["# Second order", "",
            "Shared chain x_i = x_(i-1) * x_(i-1) at x = 1: ms per call after the first "
            "(which transforms and compiles), and the backpropagators each call runs.", "",
            chain(sizes, repeats), "", wine_note + " ms per call after the first.", "", wine_table, "",
            f"Machine: {about}.", ""]
    write_results("second-order-quick" if args.quick else "second-order", "\n".join(text), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
