"""The evaluator's fast paths (issue 5) compute what the general ones do: each special case
of the gradient runtime is checked against central finite differences (float64) or an
independent formula, on the shapes that take it."""

from __future__ import annotations

import numpy as np
import pytest

import lamad

RNG = np.random.default_rng(5)


def central_differences(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (f(up) - f(down)) / (2 * eps)
    return g


MATMUL = lamad.loads("def f (x : Tensor) (y : Tensor) : Real = sum (tanh (x @ y))").f


@pytest.mark.parametrize("xs, ys", [((3, 4), (4,)), ((4,), (4, 2)), ((4,), (4,)), ((3, 4), (4, 2)),
                                    ((2, 3, 4), (4,)), ((4,), (2, 4, 3))])
def test_matmul_gradients_for_every_rank(xs, ys):
    x, y = RNG.normal(size=xs), RNG.normal(size=ys)
    dx, dy = lamad.grad(MATMUL, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(dx, central_differences(lambda v: np.sum(np.tanh(v @ y)), x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dy, central_differences(lambda v: np.sum(np.tanh(x @ v)), y), rtol=1e-6, atol=1e-9)
