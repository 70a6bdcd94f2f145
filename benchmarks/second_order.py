"""Second derivatives: what nesting costs.  On the shared chain of SPEC §4, hvp
(forward-over-reverse) and grad of grad (reverse-over-reverse) against grad, with the
number of backpropagator runs; on the wine MLP of seeds/003, hvp and the Hessian in each
weight matrix (one hvp per weight) against the gradient.  Run:
``python benchmarks/second_order.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import lamad
from lamad.gradient import Stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chain import chain_program  # noqa: E402
from common import median_times, write_table  # noqa: E402
from mlp import SOURCE as MLP  # noqa: E402

SECOND = """
def grad_at (f : Real -> Real) (x : Real) : Real = grad f x
def hvp_at (f : Real -> Real) (x : Real) : Real = hvp f x 1.0
def grad_grad_at (f : Real -> Real) (x : Real) : Real = grad (grad f) x
"""

WINE = MLP + """
def hvp_w (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) (v1 : Tensor) (v2 : Tensor) : Tensor * Tensor =
    hvp (\\(a, b). loss a b x y) (w1, w2) (v1, v2)
def hessian_w1 (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Tensor = hessian (\\a. loss a w2 x y) w1
def hessian_w2 (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Tensor = hessian (\\b. loss w1 b x y) w2
"""


def chain(sizes=(100, 1_000)) -> None:
    np.seterr(over="ignore")  # f''(1) = 2^n (2^n - 1) overflows for large n: the time is what counts
    second = lamad.loads(SECOND)
    rows = []
    for n in sizes:
        f = lamad.loads(chain_program(n)).f
        runs = {}
        for op in ("grad_at", "hvp_at", "grad_grad_at"):
            second[op](f, 1.0)
            Stats.reset()
            second[op](f, 1.0)
            runs[op] = Stats.backprop_runs
        t = median_times({op: (lambda op=op: second[op](f, 1.0)) for op in runs}, repeats=5)
        rows.append([f"{n:,}", f"{t['grad_at'] * 1e3:.1f}", f"{t['hvp_at'] * 1e3:.1f}",
                     f"{t['hvp_at'] / t['grad_at']:.1f}", f"{t['grad_grad_at'] * 1e3:.1f}",
                     f"{t['grad_grad_at'] / t['grad_at']:.1f}",
                     " / ".join(f"{runs[op]:,}" for op in ("grad_at", "hvp_at", "grad_grad_at"))])
    write_table("second_order_chain", ["n", "grad (ms)", "hvp (ms)", "hvp / grad", "grad of grad (ms)",
                                       "grad of grad / grad", "backpropagator runs (grad / hvp / grad of grad)"],
                rows, note="Shared chain x_i = x_(i-1) * x_(i-1) at x = 1: times per call after the first "
                           "(which transforms and compiles).")


def wine(hidden: int = 16) -> None:
    rng = np.random.default_rng(0)
    prog = lamad.loads(WINE)
    x, y = rng.normal(size=(13, 178)), rng.integers(0, 3, size=(1, 178)).astype(float)
    w1, w2 = rng.normal(size=(hidden, 13)) / 4, rng.normal(size=(1, hidden)) / 4
    v1, v2 = rng.normal(size=w1.shape), rng.normal(size=w2.shape)
    dloss = lamad.grad(prog.loss, argnums=(0, 1))
    t = median_times({
        "loss": lambda: prog.loss(w1, w2, x, y),
        "grad": lambda: dloss(w1, w2, x, y),
        "hvp": lambda: prog.hvp_w(w1, w2, x, y, v1, v2),
        "hessian in w2": lambda: prog.hessian_w2(w1, w2, x, y),
        "hessian in w1": lambda: prog.hessian_w1(w1, w2, x, y),
    }, repeats=3)
    rows = [[name, f"{t[name] * 1e3:.1f}", f"{t[name] / t['grad']:.1f}"] for name in t]
    write_table("second_order_wine", ["", "time (ms)", "/ grad"], rows,
                note=f"Wine MLP of seeds/003, 13 features, 178 samples, {hidden} hidden units "
                     f"({w1.size} weights in w1, {w2.size} in w2): times per call after the first.")


if __name__ == "__main__":
    chain()
    wine()
