"""Every program in ``examples/`` runs through the CLI and prints the value that an
independent NumPy / plain-Python computation of the same thing gives: gradients by the
hand-derived formulas of the sources each example cites and by central finite
differences, training runs by a NumPy re-implementation step for step (at reduced size
through ``--entry train``), and the held-out accuracy digits.lam reaches."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lamad import api
import optimizers
from numeric import assert_same_gradient, numeric_gradient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def randn(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """lamad's ``randn seed shape``: standard normals from NumPy's PCG64 seeded with ``seed``."""
    return np.random.default_rng(seed).standard_normal(shape)


def lamad(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LAMAD_BACKEND", "LAMAD_DTYPE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "lamad.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def parse_output(text: str):
    """A printed lamad value as Python data: reals and ints as numbers, tensors as
    (nested) lists, tuples as tuples (format_value prints them all as Python literals)."""
    return ast.literal_eval(text.strip().replace("true", "True").replace("false", "False"))


# ------------------------------------------------------------ expected values

def expect_hello():
    x, y, z = -2.0, 5.0, -4.0
    return (x + y) * z


def expect_mlp_forward():
    w1, b1 = 0.5 * randn(1, (3, 4)), np.full(4, 0.1)
    w2, b2 = 0.5 * randn(2, (4, 1)), np.zeros(1)
    x, y = randn(3, (8, 3)), randn(4, (8, 1))
    hidden = np.tanh(x @ w1 + b1)
    prediction = hidden @ w2 + b2
    return float(np.mean((prediction - y) ** 2))


RNN_PARAMS = (0.5 * randn(1, (3, 3)), randn(2, (3, 2)), np.full(3, 0.1))
RNN_INPUTS = randn(7, (5, 2))


def rnn_energy(w, u, b):
    h, total = np.zeros(3), 0.0
    for x in RNN_INPUTS:
        h = np.tanh(w @ h + u @ x + b)
        total += float(np.sum(h ** 2))
    return h, total


def rnn_energy_gradient(w, u, b):
    """Backpropagation through time, by hand: the hidden states forward, then each step's
    cotangent (its own energy term plus what the next step sends back) backward."""
    hs = [np.zeros(3)]
    for x in RNN_INPUTS:
        hs.append(np.tanh(w @ hs[-1] + u @ x + b))
    gw, gu, gb, dh = np.zeros_like(w), np.zeros_like(u), np.zeros_like(b), np.zeros(3)
    for t in range(len(RNN_INPUTS), 0, -1):
        dh = dh + 2 * hs[t]
        dpre = dh * (1 - hs[t] ** 2)
        gw += np.outer(dpre, hs[t - 1])
        gu += np.outer(dpre, RNN_INPUTS[t - 1])
        gb += dpre
        dh = w.T @ dpre
    return gw, gu, gb


def expect_rnn():
    return (rnn_energy(*RNN_PARAMS), rnn_energy_gradient(*RNN_PARAMS))


def expect_higher_order():
    xs = [float(i) for i in range(5)]
    ys = [4 * x + 3 for x in xs]  # twice (compose inc double) = inc . double . inc . double
    fixpoint = 0.0
    for _ in range(20):
        fixpoint = fixpoint / 2 + 1
    eight = 0.0 + 2 ** 3  # twice applied 3 times to inc: inc 8 times
    slope = 2 * 1.5 * sum(x * x for x in xs)  # d/da of sum x (a a x)
    return (ys, sum(x * y for x, y in zip(xs, ys)), sum(1 for y in ys if y > 10), fixpoint, eight, slope)


def expect_data():
    table = np.genfromtxt(EXAMPLES / "data" / "measurements.csv", delimiter=",")
    assert table.shape == (5, 3)
    return (table.mean(axis=0), table.std(axis=0), table.shape[0])


def expect_gate():
    x, y, z = -2.0, 5.0, -4.0
    return ((x + y) * z, (z, z, x + y))  # the published -12 and (-4, -4, 3) of the CS231n lecture


def expect_neuron():
    w, x, b = 2.0, 3.0, -4.0
    e = np.exp(w * x + b)
    return (e, (x * e, w * e, e))  # the published 22.17, 14.78, 7.389


def expect_log_sin():
    x1, x2 = 2.0, 5.0
    return (np.log(x1) + x1 * x2 - np.sin(x2), (1 / x1 + x2, x1 - np.cos(x2)))  # 11.652, (5.5, 1.716)


def expect_symbolic():
    x1, x2 = 1.5, 0.5
    d = x1 - x2
    slope = 2 * d * np.cos(d * d)
    return (np.sin(d * d), (slope, -slope))


def newton_steps(a: float) -> tuple[float, int]:
    """Newton's method for √a from x = a, until |x² - a| ≤ 1e-12 a, and its step count."""
    x, n = a, 0
    while abs(x * x - a) > 1e-12 * a:
        x, n = 0.5 * (x + a / x), n + 1
    return x, n


# newton.lam's logistic regression: 40 points, labels of a noisy line, an L2 penalty λ/2 |θ|²
NEWTON_X = randn(1, (40, 2))
NEWTON_Y = (1.5 * NEWTON_X[:, 0] - 2.0 * NEWTON_X[:, 1] + 0.5 + randn(2, (40,)) > 0).astype(float)
NEWTON_PENALTY = 0.01


def newton_logistic_terms(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The loss of θ = (w, b), mean (log(1 + e^z) - y z) + λ/2 |θ|² with z = X̃ θ, X̃ = [X, 1],
    its gradient X̃ᵀ (σ(z) - y) / n + λ θ and Hessian X̃ᵀ diag(σ(z)(1 - σ(z))) X̃ / n + λ I."""
    xt = np.column_stack([NEWTON_X, np.ones(40)])
    z = xt @ theta
    s = 1 / (1 + np.exp(-z))
    loss = np.mean(np.logaddexp(0, z) - NEWTON_Y * z) + 0.5 * NEWTON_PENALTY * theta @ theta
    gradient = xt.T @ (s - NEWTON_Y) / 40 + NEWTON_PENALTY * theta
    hessian = xt.T @ (xt * (s * (1 - s))[:, None]) / 40 + NEWTON_PENALTY * np.eye(3)
    return float(loss), gradient, hessian


def newton_logistic() -> tuple[int, np.ndarray, float, float]:
    """Newton's method from θ = 0 until |gradient| ≤ 1e-10: the steps, w, b and the loss."""
    theta, steps = np.zeros(3), 0
    while np.linalg.norm(newton_logistic_terms(theta)[1]) > 1e-10:
        _, gradient, hessian = newton_logistic_terms(theta)
        theta, steps = theta - np.linalg.solve(hessian, gradient), steps + 1
    assert steps <= 8  # quadratic convergence
    return steps, theta[:2], float(theta[2]), newton_logistic_terms(theta)[0]


def expect_newton():
    root, steps = newton_steps(2.0)
    counts = [newton_steps(a)[1] for a in (0.25, 100.0, 1e6)]
    assert counts == sorted(counts) and len(set(counts)) == 3  # the loop's length depends on a
    return ((root, steps, counts, 1 / (2 * np.sqrt(2.0)), -1 / (4 * 2.0 * np.sqrt(2.0))), newton_logistic())


# network_as_fold.lam: x(i+1) = θi (Wi xi) for eight layers, then ∂x8 by hand
NETWORK_ACTIVATIONS = [  # (θ, θ' in terms of the pre-activation)
    (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    (np.sin, np.cos),
    (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    (lambda z: z, np.ones_like),
]
NETWORK_WEIGHTS = [randn(i, (3, 3)) for i in range(7)] + [randn(7, (1, 3))]
NETWORK_INPUT = np.array([0.5, -1.0, 2.0])


def network(ws, x0):
    x = x0
    for (theta, _), w in zip(NETWORK_ACTIVATIONS, ws):
        x = theta(w @ x)
    return float(x[0])


def network_gradient(ws, x0):
    xs, pre = [x0], []
    for (theta, _), w in zip(NETWORK_ACTIVATIONS, ws):
        pre.append(w @ xs[-1])
        xs.append(theta(pre[-1]))
    grads, dx = [None] * len(ws), np.ones(1)  # ∂x8/∂x8
    for i in reversed(range(len(ws))):
        dpre = dx * NETWORK_ACTIVATIONS[i][1](pre[i])
        grads[i] = np.outer(dpre, xs[i])
        dx = ws[i].T @ dpre
    return grads, dx


def expect_network_as_fold():
    return (network(NETWORK_WEIGHTS, NETWORK_INPUT), network_gradient(NETWORK_WEIGHTS, NETWORK_INPUT))


def wine_data():
    x = np.loadtxt(EXAMPLES / "data" / "wine.csv", delimiter=",")
    classes = np.loadtxt(EXAMPLES / "data" / "wine_classes.csv")
    assert x.shape == (178, 13) and sorted(set(classes)) == [1.0, 2.0, 3.0]
    return (x - x.mean(axis=0)) / x.std(axis=0, ddof=1), classes - 2


def net_init(seed_hidden: int, inputs: int, hidden: int, outputs: int) -> dict:
    """``{hidden = nn.init 1 inputs hidden, out = nn.init 2 hidden outputs}``: normal weights
    over √inputs, zero biases."""
    return {"hidden": {"w": randn(seed_hidden, (inputs, hidden)) / np.sqrt(inputs), "b": np.zeros(hidden)},
            "out": {"w": randn(seed_hidden + 1, (hidden, outputs)) / np.sqrt(hidden), "b": np.zeros(outputs)}}


def wine_loss_and_gradient(p):
    """The loss mean((tanh(X W1 + b1) W2 + b2 - y)²) and its backward pass by hand (Legat's
    notes', with biases): J2 = 2 (ŷ - y) / n, J1 = (1 - tanh²) ⊙ J2 W2ᵀ, ∂W1 = Xᵀ J1,
    ∂W2 = tanh(X W1 + b1)ᵀ J2, the biases' the columns' sums."""
    x, y = wine_data()
    hidden = np.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"])
    out = hidden @ p["out"]["w"] + p["out"]["b"]
    j2 = 2 * (out - y[:, None]) / len(y)
    j1 = (1 - hidden ** 2) * (j2 @ p["out"]["w"].T)
    grad = {"hidden": {"w": x.T @ j1, "b": j1.sum(axis=0)}, "out": {"w": hidden.T @ j2, "b": j2.sum(axis=0)}}
    return float(np.mean((out - y[:, None]) ** 2)), grad, out


def wine_reference(hidden, rounds, every, rate):
    """wine.lam's training in NumPy: PyTorch's Adam on the hand-derived gradient."""
    _, y = wine_data()
    p = net_init(1, 13, hidden, 1)
    state = optimizers.adam_init(p)
    history = [(0, wine_loss_and_gradient(p)[0])]
    for r in range(1, rounds + 1):
        for _ in range(every):
            p, state = optimizers.adam(rate, state, p, wine_loss_and_gradient(p)[1])
        history.append((r * every, wine_loss_and_gradient(p)[0]))
    return history, float(np.mean(np.abs(wine_loss_and_gradient(p)[2] - y[:, None]) <= 0.5))


def expect_wine():
    return wine_reference(16, 10, 20, 0.01)


EXPECTED = {
    "gate.lam": (expect_gate, "Real × (Real × Real × Real)"),
    "neuron.lam": (expect_neuron, "Real × (Real × Real × Real)"),
    "log_sin.lam": (expect_log_sin, "Real × (Real × Real)"),
    "symbolic.lam": (expect_symbolic, "Real × (Real × Real)"),
    "hello.lam": (expect_hello, "Real"),
    "mlp_forward.lam": (expect_mlp_forward, "Real"),
    "rnn.lam": (expect_rnn, "(Tensor × Real) × (Tensor × Tensor × Tensor)"),
    "higher_order.lam": (expect_higher_order, "List Real × Real × Int × Real × Real × Real"),
    "data.lam": (expect_data, "Tensor × Tensor × Int"),
    "newton.lam": (expect_newton, "(Real × Int × List Int × Real × Real) × (Int × Tensor × Real × Real)"),
    "network_as_fold.lam": (expect_network_as_fold, "Real × (List Tensor × Tensor)"),
    "wine.lam": (expect_wine, "List (Int × Real) × Real"),
    "digits.lam": (lambda: digits_reference(64, 10, 10, 0.01), "List Real × Real × Real"),
    "minibatch.lam": (lambda: minibatch_reference(128, 10, 32, 0.5), "List Real × Real × Real"),
    "attention.lam": (lambda: attention_reference(10, 100, 0.5), "List Real × IntTensor"),
    "gru.lam": (None, "List Real × Real"),  # test_gru_training_follows_numpy_at_reduced_size
    "gp.lam": (lambda: gp_reference(10, 20, 0.05), "List Real × Real × Real × Real × Real"),
    "cnn.lam": (None, "List Real × Real × Real"),  # test_cnn_reaches_97_percent_…_following_numpy_step_for_step
}


# gp.lam: twenty noisy samples of sin, a squared-exponential kernel, θ = (log ℓ, log σf², log σn²)
GP_X = 6.0 * np.random.default_rng(1).random(20) - 3.0
GP_Y = np.sin(GP_X) + 0.1 * randn(2, (20,))
GP_START = (0.0, 0.0, -2.0)


def gp_kernel(theta) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """K = σf² E + σn² I, E = exp(-(xᵢ - xⱼ)² / (2 ℓ²)), and ∂K/∂θ by hand."""
    log_l, log_f, log_n = theta
    gaps = (GP_X[:, None] - GP_X[None, :]) ** 2
    e = np.exp(-0.5 * gaps / np.exp(2 * log_l))
    signal, noise = np.exp(log_f) * e, np.exp(log_n) * np.eye(20)
    return signal + noise, (signal * gaps / np.exp(2 * log_l), signal, noise)


def gp_nll(theta) -> float:
    """-log p(y | X, θ) = ½ yᵀ K⁻¹ y + ½ log det K + (n / 2) log 2π, by LU (not Cholesky)."""
    k, _ = gp_kernel(theta)
    sign, log_det = np.linalg.slogdet(k)
    assert sign == 1.0
    return float(0.5 * GP_Y @ np.linalg.solve(k, GP_Y) + 0.5 * log_det + 10 * np.log(2 * np.pi))


def gp_gradient(theta) -> np.ndarray:
    """∂(-log p)/∂θⱼ = ½ tr((K⁻¹ - α αᵀ) ∂K/∂θⱼ), α = K⁻¹ y (Rasmussen & Williams, eq. 5.9,
    of the log likelihood, negated)."""
    k, dk = gp_kernel(theta)
    k_inv = np.linalg.inv(k)
    alpha = k_inv @ GP_Y
    return np.array([0.5 * np.trace((k_inv - np.outer(alpha, alpha)) @ d) for d in dk])


def gp_reference(rounds: int, every: int, rate: float):
    theta = np.array(GP_START)
    losses = [gp_nll(theta)]
    for _ in range(rounds):
        for _ in range(every):
            theta = theta - rate * gp_gradient(theta)
        losses.append(gp_nll(theta))
    return (losses, *np.exp(theta), losses[-1])


def assert_close(actual, expected, where: str = "result"):
    """Structural comparison: tuples and lists item by item, arrays elementwise, ints exactly."""
    if isinstance(expected, (tuple, list)):
        assert type(actual) is type(expected) and len(actual) == len(expected), f"{where}: {actual!r} vs {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
        assert actual == expected and isinstance(actual, int), f"{where}: {actual!r} != {expected!r}"
    else:
        a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
        assert a.shape == e.shape, f"{where}: shape {a.shape} != {e.shape}"
        # tensors are printed with NumPy's default 8 significant decimals
        np.testing.assert_allclose(a, e, rtol=1e-7, atol=1e-8, err_msg=where)


# ------------------------------------------------------------ tests

def example_files() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.lam"))


def test_every_example_has_an_expected_value():
    assert len(example_files()) >= 5
    assert set(example_files()) == set(EXPECTED), "add the new example's expected value to EXPECTED"


@pytest.mark.parametrize("name", [n for n in example_files() if EXPECTED.get(n, (None,))[0] is not None])
def test_example_runs_and_prints_the_expected_value(name):
    proc = lamad("run", f"examples/{name}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    expect, _ = EXPECTED[name]
    assert_close(parse_output(proc.stdout), expect())


@pytest.mark.parametrize("name", example_files())
def test_example_type_checks(name):
    proc = lamad("check", f"examples/{name}")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(" : " in line for line in lines)
    assert f"main : {EXPECTED[name][1]}" in lines


def test_examples_run_from_another_directory(tmp_path):
    """``load`` paths are relative to the program file, not to the working directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("LAMAD_BACKEND", "LAMAD_DTYPE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "lamad.cli", "run", str(EXAMPLES / "data.lam")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert_close(parse_output(proc.stdout), expect_data())


# ------------------------------------------------------------ gradients by finite differences


def numerical_gradient(f, *xs: np.ndarray, eps: float = 1e-6) -> list[np.ndarray]:
    """Central finite differences (float64) of the scalar ``f(*xs)`` in every coordinate."""
    xs = tuple(np.array(x, dtype=np.float64) for x in xs)
    grads = []
    for x in xs:
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + eps
            up = float(f(*xs))
            x[i] = old - eps
            down = float(f(*xs))
            x[i] = old
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


WORKED = {  # the worked examples from the literature: the function, and the point main differentiates at
    "gate.lam": ("f", (-2.0, 5.0, -4.0)),
    "neuron.lam": ("neuron", (2.0, 3.0, -4.0)),
    "log_sin.lam": ("f", (2.0, 5.0)),
    "symbolic.lam": ("f", (1.5, 0.5)),
}


@pytest.mark.parametrize("name", sorted(WORKED))
def test_worked_example_gradient_matches_finite_differences(name):
    prog = api.load(EXAMPLES / name)
    fname, point = WORKED[name]
    f = prog[fname]
    value, gradient = prog.main
    assert float(value) == pytest.approx(float(f(*point)), rel=1e-15)
    np.testing.assert_allclose([float(g) for g in gradient], numerical_gradient(f, *point), rtol=1e-8, atol=1e-9)


def test_network_as_fold_gradient_matches_finite_differences():
    prog = api.load(EXAMPLES / "network_as_fold.lam")
    value, (grad_ws, grad_x0) = prog.main

    def net(*args):
        *ws, x0 = args
        return scalar(prog.net(prog.thetas, list(ws), x0))
    numeric = numerical_gradient(net, *NETWORK_WEIGHTS, NETWORK_INPUT)
    for got, want in zip([*grad_ws, grad_x0], numeric):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert float(value) == pytest.approx(network(NETWORK_WEIGHTS, NETWORK_INPUT), rel=1e-14)


def test_rnn_gradient_matches_finite_differences():
    prog = api.load(EXAMPLES / "rnn.lam")
    got = api.grad(prog.energy)(RNN_PARAMS)
    numeric = numerical_gradient(lambda *p: prog.energy(p), *RNN_PARAMS)
    for g, n in zip(got, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-9)


def scalar(x) -> float:
    x = np.asarray(x)
    assert x.size == 1
    return float(x.reshape(()))


# ------------------------------------------------------------ training, at reduced size


def test_wine_gradient_is_the_hand_derived_one_and_finite_differences():
    prog = api.load(EXAMPLES / "wine.lam")
    p = net_init(5, 13, 4, 1)
    got = api.grad(prog.loss)(p)
    assert_same_gradient(got, wine_loss_and_gradient(p)[1], rtol=1e-12, atol=1e-14)
    assert_same_gradient(got, numeric_gradient(prog.loss, p), rtol=1e-6, atol=1e-8)


def test_wine_training_follows_numpy_adam_step_for_step():
    history, accuracy = api.load(EXAMPLES / "wine.lam").train(4, 40, 1, 0.05)
    history = [(n, float(loss)) for n, loss in history]
    assert_close((history, float(accuracy)), wine_reference(4, 40, 1, 0.05))
    assert history[-1][1] < history[0][1] / 10


DIGITS_PARTS = ("train_images", "train_labels", "test_images", "test_labels")


def digits_data():
    data = {name: np.load(EXAMPLES / "data" / f"digits_{name}.npy") for name in DIGITS_PARTS}
    assert data["train_images"].shape == (1437, 64) and data["test_images"].shape == (360, 64)
    assert data["train_images"].max() == 16 and set(np.unique(data["test_labels"])) == set(range(10))
    return data["train_images"] / 16.0, data["train_labels"], data["test_images"] / 16.0, data["test_labels"]


def digits_loss_and_gradient(decay, x, labels, w):
    """Seed 001's two-layer network and its backward pass, as the lecture derives it."""
    w1, b1, w2, b2 = w
    m, t = len(labels), np.eye(10)[labels.astype(int)]
    a1 = x @ w1 + b1
    z = np.maximum(a1, 0)
    a2 = z @ w2 + b2
    e = np.exp(a2 - a2.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    loss = -np.sum(t * np.log(y)) / m + decay / 2 * (np.sum(w1 ** 2) + np.sum(w2 ** 2))
    da2 = (y - t) / m
    dz = da2 @ w2.T
    da1 = dz * (z > 0)
    return loss, (x.T @ da1 + decay * w1, da1.sum(axis=0), z.T @ da2 + decay * w2, da2.sum(axis=0))


def digits_reference(hidden, rounds, every, rate):
    """digits.lam's training in NumPy: PyTorch's AdamW (weight decay 0.01) on the lecture's
    backward pass of the cross-entropy."""
    x, labels, x_test, labels_test = digits_data()
    p = net_init(1, 64, hidden, 10)
    state = optimizers.adam_init(p)

    def as_tuple(p):
        return p["hidden"]["w"], p["hidden"]["b"], p["out"]["w"], p["out"]["b"]

    def loss_and_gradient(p):
        loss, (g1, gb1, g2, gb2) = digits_loss_and_gradient(0.0, x, labels, as_tuple(p))
        return loss, {"hidden": {"w": g1, "b": gb1}, "out": {"w": g2, "b": gb2}}
    losses = [loss_and_gradient(p)[0]]
    for _ in range(rounds):
        for _ in range(every):
            p, state = optimizers.adam(rate, state, p, loss_and_gradient(p)[1], decay=0.01)
        losses.append(loss_and_gradient(p)[0])

    def accuracy(images, targets):
        w1, b1, w2, b2 = as_tuple(p)
        return float(np.mean(np.argmax(np.maximum(images @ w1 + b1, 0) @ w2 + b2, axis=1) == targets))
    return losses, accuracy(x, labels), accuracy(x_test, labels_test)


def test_digits_gradient_is_the_lectures_backward_pass_and_finite_differences():
    prog = api.load(EXAMPLES / "digits.lam")
    x, labels, _, _ = digits_data()
    x, labels = x[:30], labels[:30]
    p = net_init(11, 64, 5, 10)
    w = (p["hidden"]["w"], p["hidden"]["b"], p["out"]["w"], p["out"]["b"])
    loss, (g1, gb1, g2, gb2) = digits_loss_and_gradient(0.0, x, labels, w)
    assert float(prog.loss(x, labels, p)) == pytest.approx(loss, rel=1e-13)
    got = api.grad(prog.loss, argnums=2)(x, labels, p)
    assert_same_gradient(got, {"hidden": {"w": g1, "b": gb1}, "out": {"w": g2, "b": gb2}}, rtol=1e-10, atol=1e-14)
    assert_same_gradient(got, numeric_gradient(lambda q: prog.loss(x, labels, q), p), rtol=1e-6, atol=1e-8)


def test_digits_training_follows_numpy_at_reduced_size():
    losses, train_accuracy, test_accuracy = api.load(EXAMPLES / "digits.lam").train(16, 3, 4, 0.01)
    want = digits_reference(16, 3, 4, 0.01)
    assert_close(([float(v) for v in losses], float(train_accuracy), float(test_accuracy)), want)
    assert all(after < before for before, after in zip(losses, losses[1:]))


def split_seeds(seed: int, n: int) -> list[int]:
    """lamad's ``split seed n``: the first 64-bit word of each of the ``n`` children that
    NumPy's ``SeedSequence(seed)`` spawns, its top bit cleared."""
    return [int(child.generate_state(1, np.uint64)[0]) & (2 ** 63 - 1)
            for child in np.random.SeedSequence(seed).spawn(n)]


def minibatch_reference(hidden, epochs, size, rate):
    """minibatch.lam in NumPy: each epoch the rows in the order NumPy's PCG64 permutes them
    from the epoch's seed, one gradient step (the lecture's backward pass) per whole batch."""
    x, labels, x_test, labels_test = digits_data()
    w = (np.sqrt(2 / 64) * randn(1, (64, hidden)), np.zeros(hidden),
         np.sqrt(2 / hidden) * randn(2, (hidden, 10)), np.zeros(10))
    losses = [digits_loss_and_gradient(0.0, x, labels, w)[0]]
    for seed in split_seeds(3, epochs):
        order = np.random.default_rng(seed).permutation(len(x))
        for b in range(len(x) // size):
            rows = order[b * size:(b + 1) * size]
            grads = digits_loss_and_gradient(0.0, x[rows], labels[rows], w)[1]
            w = tuple(p - rate * g for p, g in zip(w, grads))
        losses.append(digits_loss_and_gradient(0.0, x, labels, w)[0])

    def accuracy(images, targets):
        return float(np.mean(np.argmax(np.maximum(images @ w[0] + w[1], 0) @ w[2] + w[3], axis=1) == targets))
    return losses, accuracy(x, labels), accuracy(x_test, labels_test)


def test_minibatch_reaches_97_percent_on_held_out_digits():
    """The last number main prints is the held-out accuracy (it is also compared with
    NumPy's, step for step, by test_example_runs_and_prints_the_expected_value)."""
    losses, train_accuracy, test_accuracy = api.load(EXAMPLES / "minibatch.lam").main
    assert float(test_accuracy) >= 0.97 and float(train_accuracy) >= float(test_accuracy)
    assert float(losses[-1]) < float(losses[0]) / 20  # stochastic steps: not every epoch need lower it


def test_minibatch_loss_gathers_each_rows_label_and_its_gradient_is_the_lectures():
    """``a[arange n, labels]`` takes row i's score for its own label: the loss and its
    gradient are the lecture's, and finite differences agree."""
    prog = api.load(EXAMPLES / "minibatch.lam")
    x, labels, _, _ = digits_data()
    x, labels = x[:30], labels[:30].astype(np.int64)
    w = (0.3 * randn(11, (64, 5)), 0.1 * randn(12, (5,)), 0.3 * randn(13, (5, 10)), 0.1 * randn(14, (10,)))
    loss, want = digits_loss_and_gradient(0.0, x, labels, w)
    assert float(prog.loss(x, labels, w)) == pytest.approx(loss, rel=1e-13)
    got = api.grad(prog.loss, argnums=2)(x, labels, w)
    for g, h in zip(got, want):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-14)
    numeric = numerical_gradient(lambda *p: prog.loss(x, labels, p), *w)
    for g, n in zip(got, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------ cnn.lam


SHIFTS = [(p, q) for p in range(3) for q in range(3)]
"""The entries of a 3 × 3 kernel, row by row."""


def conv3x3(x, w):
    """A 3 × 3 convolution with padding 1 (PyTorch's cross-correlation): each kernel entry
    times the images shifted by it, summed; and the shifted images (N × C × 9 × H × W),
    which the backward pass reads."""
    h, wd = x.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    shifted = np.stack([padded[:, :, p:p + h, q:q + wd] for p, q in SHIFTS], axis=2)
    return np.einsum("ncshw,ocs->nohw", shifted, w.reshape(w.shape[:2] + (9,)), optimize=True), shifted


def conv3x3_backward(shifted, w, g):
    """The gradients of :func:`conv3x3` in the kernels and the images, given the gradient
    ``g`` of its result: each kernel entry meets the images shifted by it, and the images'
    gradient is each shift's gradient shifted back."""
    n, c, _, h, wd = shifted.shape
    w9 = w.reshape(w.shape[:2] + (9,))
    dw = np.einsum("nohw,ncshw->ocs", g, shifted, optimize=True).reshape(w.shape)
    dshifted = np.einsum("nohw,ocs->ncshw", g, w9, optimize=True)
    dpadded = np.zeros((n, c, h + 2, wd + 2))
    for s, (p, q) in enumerate(SHIFTS):
        dpadded[:, :, p:p + h, q:q + wd] += dshifted[:, :, s]
    return dw, dpadded[:, :, 1:-1, 1:-1]


def max_pool_2x2(z):
    """2 × 2 max pooling, stride 2: the largest of each window's four corners."""
    return np.maximum(np.maximum(z[:, :, 0::2, 0::2], z[:, :, 0::2, 1::2]),
                      np.maximum(z[:, :, 1::2, 0::2], z[:, :, 1::2, 1::2]))


def max_unpool_2x2(z, out, g):
    """The gradient of :func:`max_pool_2x2`'s input ``z``, given that of its result ``out``:
    each window's gradient split equally among its maxima (lamad's tie rule)."""
    n, c, h, w = z.shape
    hit = (z.reshape(n, c, h // 2, 2, w // 2, 2) == out[:, :, :, None, :, None]).astype(float)
    count = hit[:, :, :, 0, :, 0] + hit[:, :, :, 0, :, 1] + hit[:, :, :, 1, :, 0] + hit[:, :, :, 1, :, 1]
    return (hit * (g / count)[:, :, :, None, :, None]).reshape(z.shape)


def cnn_forward(x, ps):
    """cnn.lam's scores, and what the backward pass reads."""
    k1, b1, k2, b2, w3, b3 = ps
    a1, shifted1 = conv3x3(x, k1)
    z1 = np.maximum(a1 + b1, 0)
    h1 = max_pool_2x2(z1)
    a2, shifted2 = conv3x3(h1, k2)
    z2 = np.maximum(a2 + b2, 0)
    h2 = max_pool_2x2(z2)
    flat = h2.reshape(len(x), -1)
    return flat @ w3 + b3, (shifted1, z1, h1, shifted2, z2, h2, flat)


def cross_entropy(s, labels):
    """The mean softmax cross-entropy of the scores ``s``, and its gradient in them."""
    n = len(labels)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    return float(np.mean(-np.log(y[np.arange(n), labels]))), (y - np.eye(10)[labels]) / n


def cnn_loss_and_gradient(x, labels, ps):
    """cnn.lam's network, forward and backward by hand: conv, relu, pool twice, dense layer,
    softmax cross-entropy."""
    k1, b1, k2, b2, w3, b3 = ps
    s, (shifted1, z1, h1, shifted2, z2, h2, flat) = cnn_forward(x, ps)
    loss, ds = cross_entropy(s, labels)
    dz2 = max_unpool_2x2(z2, h2, (ds @ w3.T).reshape(h2.shape)) * (z2 > 0)
    dk2, dh1 = conv3x3_backward(shifted2, k2, dz2)
    dz1 = max_unpool_2x2(z1, h1, dh1) * (z1 > 0)
    dk1, _ = conv3x3_backward(shifted1, k1, dz1)
    return loss, (dk1, dz1.sum(axis=(0, 2, 3))[:, None, None], dk2, dz2.sum(axis=(0, 2, 3))[:, None, None],
                  flat.T @ ds, ds.sum(axis=0))


def cnn_data():
    x, labels, x_test, labels_test = digits_data()
    return x.reshape(-1, 1, 8, 8), labels, x_test.reshape(-1, 1, 8, 8), labels_test


def cnn_reference(epochs, size, rate):
    """cnn.lam in NumPy: its initial parameters, then each epoch the rows in the order
    NumPy's PCG64 permutes them from the epoch's seed, one gradient step per whole batch."""
    x, labels, x_test, labels_test = cnn_data()
    ps = [np.sqrt(2 / 9) * randn(1, (8, 1, 3, 3)), np.zeros((8, 1, 1)), np.sqrt(2 / 72) * randn(2, (16, 8, 3, 3)),
          np.zeros((16, 1, 1)), np.sqrt(2 / 64) * randn(3, (64, 10)), np.zeros(10)]
    losses = [cross_entropy(cnn_forward(x, ps)[0], labels)[0]]
    for seed in split_seeds(4, epochs):
        order = np.random.default_rng(seed).permutation(len(x))
        for b in range(len(x) // size):
            rows = order[b * size:(b + 1) * size]
            grads = cnn_loss_and_gradient(x[rows], labels[rows], ps)[1]
            ps = [p - rate * g for p, g in zip(ps, grads)]
        losses.append(cross_entropy(cnn_forward(x, ps)[0], labels)[0])

    def accuracy(images, targets):
        return float(np.mean(np.argmax(cnn_forward(images, ps)[0], axis=1) == targets))
    return losses, accuracy(x, labels), accuracy(x_test, labels_test)


def test_cnn_gradient_is_the_hand_derived_backward_pass_and_finite_differences():
    """At small size (6 images, 2 and 3 channels), where finite differences are cheap."""
    prog = api.load(EXAMPLES / "cnn.lam")
    x, labels, _, _ = cnn_data()
    x, labels = x[:6], labels[:6].astype(np.int64)
    ps = [0.5 * randn(11, (2, 1, 3, 3)), 0.1 * randn(12, (2, 1, 1)), 0.5 * randn(13, (3, 2, 3, 3)),
          0.1 * randn(14, (3, 1, 1)), 0.5 * randn(15, (12, 10)), 0.1 * randn(16, (10,))]
    loss, want = cnn_loss_and_gradient(x, labels, ps)
    assert float(prog.loss(x, labels, ps)) == pytest.approx(loss, rel=1e-13)
    got = api.grad(prog.loss, argnums=2)(x, labels, ps)
    for g, h in zip(got, want):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-14)
    numeric = numerical_gradient(lambda *p: prog.loss(x, labels, list(p)), *ps)
    for g, n in zip(got, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)


def test_cnn_reaches_97_percent_on_held_out_digits_in_a_minute_following_numpy_step_for_step():
    """The command of the README, as a user runs it: every epoch's loss and both accuracies
    are NumPy's, step for step through the 660 steps, and the last number, the held-out
    accuracy, is at least 97%."""
    start = time.perf_counter()
    proc = lamad("run", "examples/cnn.lam")
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    losses, train_accuracy, test_accuracy = result = parse_output(proc.stdout)
    assert_close(result, cnn_reference(15, 32, 0.3))
    assert test_accuracy >= 0.97 and train_accuracy >= test_accuracy and losses[-1] < losses[0] / 100
    assert elapsed < 60


# ------------------------------------------------------------ attention.lam


def attention_data():
    features = randn(1, (32, 8, 4))
    x = np.concatenate([features, np.broadcast_to(np.eye(8), (32, 8, 8))], axis=2)
    target = np.concatenate([features[:, :1], features[:, :-1]], axis=1)
    return x, target


CAUSAL = np.tril(np.ones((8, 8), dtype=bool))


def attention_loss_and_gradient(w):
    """Causal self-attention and its backward pass by hand: softmax's Jacobian applied as
    p ⊙ (dp - Σ dp ⊙ p), the masked scores getting no cotangent."""
    (wq, wk, wv, wo), (x, target) = w, attention_data()
    q, k, v = x @ wq, x @ wk, x @ wv
    s = np.where(CAUSAL, q @ k.transpose(0, 2, 1) / np.sqrt(8.0), -1e9)
    e = np.exp(s - s.max(axis=2, keepdims=True))
    p = e / e.sum(axis=2, keepdims=True)
    o = p @ v
    y = o @ wo
    loss = np.mean((y - target) ** 2)
    dy = 2 * (y - target) / y.size
    do = dy @ wo.T
    dp, dv = do @ v.transpose(0, 2, 1), p.transpose(0, 2, 1) @ do
    ds = np.where(CAUSAL, p * (dp - np.sum(dp * p, axis=2, keepdims=True)), 0.0) / np.sqrt(8.0)
    dq, dk = ds @ k, ds.transpose(0, 2, 1) @ q
    def weight(d):
        return np.einsum("btx,bth->xh", x, d)
    return loss, p, (weight(dq), weight(dk), weight(dv), np.einsum("bth,btf->hf", o, dy))


def attention_reference(rounds, every, rate):
    w = (0.3 * randn(2, (12, 8)), 0.3 * randn(3, (12, 8)), 0.3 * randn(4, (12, 8)), 0.3 * randn(5, (8, 4)))
    losses = [attention_loss_and_gradient(w)[0]]
    for _ in range(rounds):
        for _ in range(every):
            w = tuple(p - rate * g for p, g in zip(w, attention_loss_and_gradient(w)[2]))
        losses.append(attention_loss_and_gradient(w)[0])
    return losses, np.argmax(attention_loss_and_gradient(w)[1][0], axis=1)


def test_attention_gradient_is_the_hand_derived_one_and_finite_differences():
    prog = api.load(EXAMPLES / "attention.lam")
    w = (0.5 * randn(21, (12, 8)), 0.5 * randn(22, (12, 8)), 0.5 * randn(23, (12, 8)), 0.5 * randn(24, (8, 4)))
    loss, _, want = attention_loss_and_gradient(w)
    assert float(prog.loss(w)) == pytest.approx(loss, rel=1e-13)
    got = api.grad(prog.loss)(w)
    for g, h in zip(got, want):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-14)
    numeric = numerical_gradient(lambda *p: prog.loss(p), *w)
    for g, n in zip(got, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)


def test_attention_learns_to_attend_to_the_step_before():
    losses, attends = api.load(EXAMPLES / "attention.lam").main
    assert float(losses[-1]) < float(losses[0]) / 100
    np.testing.assert_array_equal(attends, [0, 0, 1, 2, 3, 4, 5, 6])


# ------------------------------------------------------------ gru.lam


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def gru_loss_and_gradient(ps, xs):
    """The GRU of gru.lam and backpropagation through time by hand: the states forward,
    then each step's gates and their cotangents backward."""
    wz, uz, bz, wr, ur, br, wn, un, bn, wy, by = ps
    hs, gates = [np.zeros((xs.shape[1], wz.shape[1]))], []
    for x in xs:
        h = hs[-1]
        z, r = sigmoid(x @ wz + h @ uz + bz), sigmoid(x @ wr + h @ ur + br)
        n = np.tanh(x @ wn + (r * h) @ un + bn)
        gates.append((z, r, n))
        hs.append((1 - z) * n + z * h)
    y = hs[-1] @ wy + by
    loss = np.mean((y - xs[0]) ** 2)
    dy = 2 * (y - xs[0]) / y.size
    grads = [np.zeros_like(p) for p in ps]
    grads[9], grads[10] = hs[-1].T @ dy, dy.sum(axis=0)
    dh = dy @ wy.T
    for x, h, (z, r, n) in reversed(list(zip(xs, hs, gates))):
        dn, dz = dh * (1 - z), dh * (h - n)
        dan = dn * (1 - n ** 2)
        drh = dan @ un.T
        daz, dar = dz * z * (1 - z), drh * h * r * (1 - r)
        for i, (da, state) in enumerate(((daz, h), (dar, h), (dan, r * h))):
            grads[3 * i] += x.T @ da
            grads[3 * i + 1] += state.T @ da
            grads[3 * i + 2] += da.sum(axis=0)
        dh = dh * z + drh * r + daz @ uz.T + dar @ ur.T
    return loss, grads


def gru_init():
    return [randn(2, (1, 8)), 0.25 * randn(3, (8, 8)), np.zeros(8), randn(4, (1, 8)), 0.25 * randn(5, (8, 8)),
            np.zeros(8), randn(6, (1, 8)), 0.25 * randn(7, (8, 8)), np.zeros(8), 0.25 * randn(8, (8, 1)), np.zeros(1)]


def gru_reference(rounds, every, rate):
    inputs, unseen = randn(1, (8, 256, 1)), randn(9, (8, 256, 1))
    ps = gru_init()
    losses = [gru_loss_and_gradient(ps, inputs)[0]]
    for _ in range(rounds):
        for _ in range(every):
            ps = [p - rate * g for p, g in zip(ps, gru_loss_and_gradient(ps, inputs)[1])]
        losses.append(gru_loss_and_gradient(ps, inputs)[0])
    return losses, gru_loss_and_gradient(ps, unseen)[0]


def test_gru_gradient_is_backpropagation_through_time_and_finite_differences():
    prog = api.load(EXAMPLES / "gru.lam")
    xs = randn(31, (5, 6, 1))
    ps = [0.5 * randn(40 + i, p.shape) for i, p in enumerate(gru_init())]
    loss, want = gru_loss_and_gradient(ps, xs)
    assert float(prog.loss(xs, ps)) == pytest.approx(loss, rel=1e-13)
    got = api.grad(prog.loss, argnums=1)(xs, ps)
    for g, h in zip(got, want):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-14)
    numeric = numerical_gradient(lambda *p: prog.loss(xs, list(p)), *ps)
    for g, n in zip(got, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)


def test_gru_training_follows_numpy_at_reduced_size():
    """Step for step, as long as rounding cannot tell: over the whole run the loss jumps
    (0.49 to 0.11 in a round), and there the last bits of two summation orders part."""
    losses, held_out = api.load(EXAMPLES / "gru.lam").train(3, 50, 0.2)
    assert_close(([float(v) for v in losses], float(held_out)), gru_reference(3, 50, 0.2))


def test_gru_learns_to_keep_the_first_number_of_unseen_sequences():
    losses, held_out = api.load(EXAMPLES / "gru.lam").main
    assert float(losses[-1]) < float(losses[0]) / 50 and float(held_out) < float(losses[0]) / 20


# ------------------------------------------------------------ gp.lam


def test_gp_gradient_at_the_start_is_the_textbook_formula_and_finite_differences():
    """The negative log likelihood through cholesky and triangular_solve is the one NumPy
    computes by LU, and its gradient is ½ tr((K⁻¹ - α αᵀ) ∂K/∂θ) and the finite differences."""
    prog = api.load(EXAMPLES / "gp.lam")
    assert float(prog.nll(GP_START)) == pytest.approx(gp_nll(GP_START), rel=1e-13)
    got = [float(g) for g in api.grad(prog.nll)(GP_START)]
    np.testing.assert_allclose(got, gp_gradient(GP_START), rtol=1e-10)
    numeric = numerical_gradient(lambda *t: prog.nll(tuple(float(x) for x in t)), *GP_START)
    np.testing.assert_allclose(got, [float(n) for n in numeric], rtol=1e-7)


def test_gp_likelihood_falls_every_round_to_a_stationary_point():
    losses, length_scale, signal, noise, final = api.load(EXAMPLES / "gp.lam").main
    losses = [float(v) for v in losses]
    assert all(after < before for before, after in zip(losses, losses[1:])), losses
    assert float(final) == losses[-1] < losses[0] - 15
    theta = np.log([float(length_scale), float(signal), float(noise)])
    assert np.abs(gp_gradient(theta)).max() < 1e-3
    assert 0.005 < float(noise) < 0.02  # the data's noise variance is 0.01


def test_digits_reaches_95_percent_on_held_out_digits():
    """The command of the README, as a user runs it."""
    proc = lamad("run", "examples/digits.lam", timeout=120)
    assert proc.returncode == 0, proc.stderr
    losses, train_accuracy, test_accuracy = parse_output(proc.stdout)
    assert all(after < before for before, after in zip(losses, losses[1:])), losses
    assert test_accuracy >= 0.95 and train_accuracy >= test_accuracy


# ------------------------------------------------------------ newton.lam: Newton's method on a record


def test_newton_lays_the_records_hessian_out_as_the_flat_one():
    """``matrix (hessian loss p)``, the Hessian in the record laid out in ``ravel``'s
    coordinates, is the NumPy Hessian and JAX's ``ravel_pytree`` pattern, the Hessian of
    ``loss ∘ unravel`` at ``ravel p``; ``unravel`` undoes ``ravel``."""
    prog = api.load(EXAMPLES / "newton.lam")
    p = {"w": np.array([0.3, -0.7]), "b": 0.2}
    flat = np.array([0.3, -0.7, 0.2])
    np.testing.assert_array_equal(prog.ravel(p), flat)
    back = prog.unravel(flat)
    assert back.keys() == p.keys() and back["b"] == 0.2
    np.testing.assert_array_equal(back["w"], p["w"])
    want = newton_logistic_terms(flat)[2]
    np.testing.assert_allclose(prog.matrix(api.hessian(prog.loss)(p)), want, rtol=1e-12, atol=1e-15)
    flat_hessian = prog.evaluate("\\(v : Tensor). hessian (\\u. loss (unravel u)) v")
    np.testing.assert_allclose(flat_hessian(flat), want, rtol=1e-12, atol=1e-15)
    step = prog.step(p)
    np.testing.assert_allclose(prog.ravel(step), flat - np.linalg.solve(want, newton_logistic_terms(flat)[1]),
                               rtol=1e-12)
