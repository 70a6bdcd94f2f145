"""A two-layer tanh network (the wine MLP of seeds/003): loss and gradient in lamad
against a hand-written NumPy forward and backward pass, measured in the same run.
Run: ``python benchmarks/mlp.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import lamad

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_times, write_table  # noqa: E402

SOURCE = """
def loss (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Real =
    sum ((w2 @ tanh (w1 @ x) - y) ** 2) / real (dim 1 x)
"""


def numpy_loss(w1, w2, x, y):
    return np.sum((w2 @ np.tanh(w1 @ x) - y) ** 2) / x.shape[1]


def numpy_grad(w1, w2, x, y):
    """The hand-derived gradient: Y1 = tanh(W1 X), J2 = 2 (W2 Y1 - y) / n,
    ∂W1 = ((1 - Y1²) ⊙ (W2ᵀ J2)) Xᵀ, ∂W2 = J2 Y1ᵀ."""
    y1 = np.tanh(w1 @ x)
    j2 = 2 * (w2 @ y1 - y) / x.shape[1]
    return ((1 - y1 ** 2) * (w2.T @ j2)) @ x.T, j2 @ y1.T


def main(hidden=(16, 256)) -> None:
    rng = np.random.default_rng(0)
    prog = lamad.loads(SOURCE)
    dloss = lamad.grad(prog.loss, argnums=(0, 1))
    rows = []
    for h in hidden:
        x, y = rng.normal(size=(13, 178)), rng.integers(0, 3, size=(1, 178)).astype(float)
        w1, w2 = rng.normal(size=(h, 13)) / 4, rng.normal(size=(1, h)) / 4
        for mine, ref in zip(dloss(w1, w2, x, y), numpy_grad(w1, w2, x, y)):
            np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-12)
        t = median_times({
            "numpy forward": lambda: numpy_loss(w1, w2, x, y),
            "numpy grad": lambda: numpy_grad(w1, w2, x, y),
            "lamad forward": lambda: prog.loss(w1, w2, x, y),
            "lamad grad": lambda: dloss(w1, w2, x, y),
        })
        rows.append([f"h = {h}", f"{t['numpy forward'] * 1e6:.0f}", f"{t['numpy grad'] * 1e6:.0f}",
                     f"{t['lamad forward'] * 1e6:.0f}", f"{t['lamad grad'] * 1e6:.0f}",
                     f"{t['lamad grad'] / t['lamad forward']:.1f}", f"{t['lamad grad'] / t['numpy grad']:.2f}"])
    write_table("mlp", ["wine MLP (13×178)", "NumPy loss (µs)", "NumPy grad (µs)", "lamad loss (µs)",
                        "lamad grad (µs)", "lamad grad / loss", "lamad grad / NumPy grad"], rows,
                note="Loss and gradient (w.r.t. W1, W2) per call, median of interleaved repetitions; "
                     "gradients checked against the hand-derived NumPy ones first.")


if __name__ == "__main__":
    main()
