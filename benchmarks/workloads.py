"""The five reference workloads of the benchmark, each as a lamad program, its
inputs, its forward pass written once for NumPy-like namespaces (NumPy, autograd, JAX),
a PyTorch forward pass, and a hand-written NumPy forward *and* backward pass: the
baseline every other system is measured against.

A :class:`Workload` is differentiated with respect to the arguments ``argnums`` of its
``loss``; the others are data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import data

HERE = Path(__file__).resolve().parent
DIGITS_DECAY = 1e-4


@dataclass(frozen=True)
class Workload:
    """One benchmark: ``loss(*args)`` in lamad and in every system, its gradient with
    respect to ``args[i]`` for ``i`` in ``argnums``."""

    name: str
    program: str  # lamad source defining `loss`
    args: tuple
    argnums: tuple[int, ...]
    loss: Callable[..., Any]  # loss(xp, *args) for xp = numpy, autograd.numpy, jax.numpy
    torch_loss: Callable[..., Any]  # loss(torch, *args) on torch tensors
    value_and_grad: Callable[..., tuple[Any, tuple]]  # the hand-written NumPy baseline
    target: float | None = None  # the target for lamad loss+gradient / hand NumPy
    data: str = ""  # where the data came from
    peers: bool = True  # whether to time the peers too (they are compared on workloads 1-4)


def _source(name: str) -> str:
    return (HERE / f"{name}.lam").read_text()


# --------------------------------------------------------------------- 1. wine MLP (examples/wine.lam)


def wine_loss(xp, w1, w2, x, y):
    return xp.sum((w2 @ xp.tanh(w1 @ x) - y) ** 2) / x.shape[1]


def wine_value_and_grad(w1, w2, x, y):
    """Y1 = tanh(W1 X), J2 = 2 (W2 Y1 − y) / n, ∂W2 = J2 Y1ᵀ, ∂W1 = ((1 − Y1²) ⊙ W2ᵀ J2) Xᵀ."""
    n = x.shape[1]
    y1 = np.tanh(w1 @ x)
    r = w2 @ y1 - y
    j2 = (2 / n) * r
    return np.sum(r * r) / n, (((1 - y1 * y1) * (w2.T @ j2)) @ x.T, j2 @ y1.T)


def wine_mlp(hidden: int, samples: int | None = None) -> Workload:
    d = data.wine()
    x, y = d.x[:, :samples], d.labels[None, :samples]
    rng = np.random.default_rng(hidden)
    w1, w2 = rng.normal(size=(hidden, 13)) / np.sqrt(13), rng.normal(size=(1, hidden)) / np.sqrt(hidden)
    return Workload(f"wine_mlp h={hidden}", _source("wine_mlp"), (w1, w2, x, y), (0, 1), wine_loss, wine_loss,
                    wine_value_and_grad, target=1.3 if hidden >= 256 else 3.0, data=d.source)


# --------------------------------------------------------------------- 2. digits MLP (examples/digits.lam)


def digits_loss(xp, w1, b1, w2, b2, x, t):
    z = xp.maximum(x @ w1 + b1, 0.0) @ w2 + b2
    m = xp.max(z, axis=1, keepdims=True)
    lse = xp.log(xp.sum(xp.exp(z - m), axis=1)) + m[:, 0]
    return xp.mean(lse - xp.sum(t * z, axis=1)) + DIGITS_DECAY / 2 * (xp.sum(w1 * w1) + xp.sum(w2 * w2))


def digits_torch_loss(torch, w1, b1, w2, b2, x, t):
    z = torch.relu(x @ w1 + b1) @ w2 + b2
    return torch.mean(torch.logsumexp(z, 1) - torch.sum(t * z, 1)) + \
        DIGITS_DECAY / 2 * (torch.sum(w1 * w1) + torch.sum(w2 * w2))


def digits_value_and_grad(w1, b1, w2, b2, x, t):
    """A1 = X W1 + b1, Z = max(0, A1), A2 = Z W2 + b2, Y = softmax(A2);
    ∂A2 = (Y − T)/m, ∂W2 = Zᵀ ∂A2 + λ W2, ∂b2 = Σ₀ ∂A2, ∂A1 = ∂A2 W2ᵀ ⊙ (A1 > 0),
    ∂W1 = Xᵀ ∂A1 + λ W1, ∂b1 = Σ₀ ∂A1."""
    m = x.shape[0]
    a1 = x @ w1 + b1
    z = np.maximum(a1, 0.0)
    a2 = z @ w2 + b2
    shifted = a2 - np.max(a2, axis=1, keepdims=True)
    e = np.exp(shifted)
    s = np.sum(e, axis=1, keepdims=True)
    # log-sum-exp minus the target's logit; the rows of T sum to 1, so the maximum cancels
    loss = np.mean(np.log(s[:, 0]) - np.sum(t * shifted, axis=1)) + \
        DIGITS_DECAY / 2 * (np.sum(w1 * w1) + np.sum(w2 * w2))
    da2 = (e / s - t) / m
    da1 = (da2 @ w2.T) * (a1 > 0)
    return loss, (x.T @ da1 + DIGITS_DECAY * w1, np.sum(da1, axis=0), z.T @ da2 + DIGITS_DECAY * w2,
                  np.sum(da2, axis=0))


def digits_mlp(samples: int | None = None, hidden: int = 128) -> Workload:
    d = data.digits()
    x, labels = d.x[:samples], d.labels[:samples]
    t = np.eye(10)[labels]
    rng = np.random.default_rng(64)
    w1, w2 = rng.normal(size=(64, hidden)) / 8, rng.normal(size=(hidden, 10)) / np.sqrt(hidden)
    b1, b2 = rng.normal(size=hidden) / 10, rng.normal(size=10) / 10
    return Workload("digits_mlp", _source("digits_mlp"), (w1, b1, w2, b2, x, t), (0, 1, 2, 3), digits_loss,
                    digits_torch_loss, digits_value_and_grad, target=1.15, data=d.source)


# --------------------------------------------------------------------- 3. scalar chain


def scalar_chain_loss(xp, x0, n):
    x = x0
    for _ in range(n):
        x = xp.sin(x) * x + x
    return x


def scalar_chain_value_and_grad(x0, n):
    """x ← sin x · x + x, so dx_{i+1}/dx_i = cos x_i · x_i + sin x_i + 1."""
    xs, x = [], x0
    for _ in range(n):
        xs.append(x)
        x = np.sin(x) * x + x
    g = np.float64(1.0)
    for xi in reversed(xs):
        g = g * (np.cos(xi) * xi + np.sin(xi) + 1.0)
    return x, (g,)


def scalar_chain(n: int = 1000) -> Workload:
    return Workload("scalar_chain", _source("scalar_chain"), (np.float64(-1.0), n), (0,), scalar_chain_loss,
                    scalar_chain_loss, scalar_chain_value_and_grad, target=25.0)


# --------------------------------------------------------------------- 4. RNN fold


def rnn_loss(xp, w, u, b, h0, xs):
    h = h0
    for x in xs:
        h = xp.tanh(w @ h + u @ x + b)
    return xp.sum(h * h)


def rnn_value_and_grad(w, u, b, h0, xs):
    """Backpropagation through time: ∂a_t = ∂h_t ⊙ (1 − h_t²), ∂W += ∂a_t h_{t−1}ᵀ,
    ∂U += ∂a_t x_tᵀ, ∂b += ∂a_t, ∂h_{t−1} = Wᵀ ∂a_t, from ∂h_T = 2 h_T."""
    hs = [h0]
    for x in xs:
        hs.append(np.tanh(w @ hs[-1] + u @ x + b))
    dw, du, db = np.zeros_like(w), np.zeros_like(u), np.zeros_like(b)
    dh = 2 * hs[-1]
    for t in range(len(xs), 0, -1):
        da = dh * (1 - hs[t] * hs[t])
        dw += np.outer(da, hs[t - 1])
        du += np.outer(da, xs[t - 1])
        db += da
        dh = w.T @ da
    return np.sum(hs[-1] * hs[-1]), (dw, du, db)


def rnn_value_and_grad_one_matmul(w, u, b, h0, xs):
    """Backpropagation through time with ∂W and ∂U each one matrix product over the steps:
    ∂W = ∂A Hᵀ and ∂U = ∂A Xᵀ, where the columns of ∂A are the ∂a_t, those of H the
    h_(t−1) and those of X the x_t; ∂b = ∂A 1."""
    hs = [h0]
    for x in xs:
        hs.append(np.tanh(w @ hs[-1] + u @ x + b))
    da = np.empty((len(b), len(xs)))
    dh = 2 * hs[-1]
    for t in range(len(xs), 0, -1):
        da[:, t - 1] = da_t = dh * (1 - hs[t] * hs[t])
        dh = w.T @ da_t
    return np.sum(hs[-1] * hs[-1]), (da @ np.stack(hs[:-1]), da @ np.stack(xs), np.sum(da, axis=1))


def rnn_fold(steps: int = 50, hidden: int = 64, inputs: int = 32, one_matmul: bool = False) -> Workload:
    """The RNN against the hand-written backward pass that adds an outer product per step
    to ∂W and ∂U, or (``one_matmul``) the one that forms each with one matrix product."""
    rng = np.random.default_rng(50)
    w = rng.normal(size=(hidden, hidden)) / np.sqrt(hidden)
    u = rng.normal(size=(hidden, inputs)) / np.sqrt(inputs)
    b, h0 = rng.normal(size=hidden) / 10, np.zeros(hidden)
    xs = list(rng.normal(size=(steps, inputs)))
    if one_matmul:
        return Workload("rnn_fold, NumPy by one matmul", _source("rnn_fold"), (w, u, b, h0, xs), (0, 1, 2), rnn_loss,
                        rnn_loss, rnn_value_and_grad_one_matmul, target=1.5, peers=False)
    return Workload("rnn_fold", _source("rnn_fold"), (w, u, b, h0, xs), (0, 1, 2), rnn_loss, rnn_loss,
                    rnn_value_and_grad, target=3.0)


# --------------------------------------------------------------------- 5. the shared chain


def chain_program(n: int) -> str:
    """``x1 = x0 * x0; …; xn = x(n−1) * x(n−1)``: 2^n backpropagator calls if they ran
    eagerly, n when forced (docs/differentiation.md)."""
    lets = "; ".join(f"x{i} = x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    return f"def loss (x0 : Real) : Real = let {lets} in x{n}\n"


def chain_loss(xp, x0, n):
    x = x0
    for _ in range(n):
        x = x * x
    return x


def chain_value_and_grad(x0, n):
    xs, x = [], x0
    for _ in range(n):
        xs.append(x)
        x = x * x
    g = np.float64(1.0)
    for xi in reversed(xs):
        g = g * (2.0 * xi)
    return x, (g,)


def chain(n: int, x0: float = 1.0) -> Workload:
    """At x0 = 1 every x_i is 1 and the gradient is 2^n (inf in float64 from n = 1024)."""
    return Workload(f"chain n={n:,}", chain_program(n), (np.float64(x0),), (0,),
                    lambda xp, x0: chain_loss(xp, x0, n), lambda torch, x0: chain_loss(torch, x0, n),
                    lambda x0: chain_value_and_grad(x0, n), peers=False)


def workloads(quick: bool = False) -> list[Workload]:
    """The reference workloads (tiny versions of them when ``quick``)."""
    if quick:
        return [wine_mlp(4, samples=20), digits_mlp(samples=30, hidden=8), scalar_chain(20),
                rnn_fold(steps=4, hidden=5, inputs=3), rnn_fold(steps=4, hidden=5, inputs=3, one_matmul=True),
                chain(50)]
    return [wine_mlp(16), wine_mlp(256), digits_mlp(), scalar_chain(1000), rnn_fold(), rnn_fold(one_matmul=True),
            chain(10_000)]
