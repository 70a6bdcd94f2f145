"""The standard library's nn (lamad/std/nn.lam): each layer and loss against an independent
NumPy transcription and, where PyTorch is installed, against PyTorch; their gradients
against central differences; the initialisers' statistics over large draws; the
schedules against optax's formulas; and a description above every definition."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import lamad
from lamad.modules import LIBRARY
from numeric import assert_same_gradient, numeric_gradient

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional: its comparisons are skipped without it
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

STD = Path(lamad.__file__).resolve().parent / LIBRARY

PROGRAM = lamad.loads("""
import nn
def conv_loss (c : nn.Conv) (x : Tensor) : Real = sum (sin (nn.conv2d 2 1 c x))
def max_pool_loss (x : Tensor) : Real = sum (sin (nn.max_pool2d 2 x))
def avg_pool_loss (x : Tensor) : Real = sum (sin (nn.avg_pool2d 2 x))
def lstm_loss (p : nn.Lstm) (s : Tensor * Tensor) (x : Tensor) : Real =
    let (h, c) = nn.lstm_cell p s x in sum (sin h) + sum (cos c)
def gru_loss (p : nn.Gru) (h : Tensor) (x : Tensor) : Real = sum (sin (nn.gru_cell p h x))
def attention_loss (q : Tensor) (k : Tensor) (v : Tensor) : Real = sum (sin (nn.attention q k v))
def masked_loss (m : BoolTensor) (q : Tensor) (k : Tensor) (v : Tensor) : Real =
    sum (sin (nn.masked_attention m q k v))
def norm_loss (p : nn.Norm) (x : Tensor) : Real = sum (sin (nn.layer_norm p x))
def dropout_loss (seed : Int) (x : Tensor) : Real = sum (sin (nn.dropout seed 0.3 true x))
""")
NN = PROGRAM.nn


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_gradient(f, *args, fixed: tuple = (), rtol: float = 1e-6, atol: float = 1e-7) -> None:
    """lamad's gradient of ``f`` in its arguments ``args``, after the ``fixed`` ones, against
    central differences."""
    got = lamad.grad(f, argnums=tuple(range(len(fixed), len(fixed) + len(args))))(*fixed, *args)
    want = numeric_gradient(lambda a: f(*fixed, *a), tuple(args))
    assert_same_gradient(tuple(got), tuple(w for w in want), rtol=rtol, atol=atol)


# ------------------------------------------------------------------ NumPy transcriptions


def np_conv2d(x, w, b, stride, padding):
    """The cross-correlation y[n, o, i, j] = Σ x̂[n, c, i·s + p, j·s + q] w[o, c, p, q] + b[o]."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.einsum("ncpq,ocpq->no", window, w)
    return y + b[:, None, None]


def np_pool(x, k, reduce):
    """``reduce`` over each k × k window of the last two axes, windows k apart."""
    h, w = x.shape[-2] // k, x.shape[-1] // k
    windows = x[..., :h * k, :w * k].reshape(*x.shape[:-2], h, k, w, k)
    return reduce(reduce(windows, axis=-1), axis=-2)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def np_lstm(p, h, c, x):
    n = p["wh"].shape[0]
    z = x @ p["wi"] + h @ p["wh"] + p["b"]
    i, f, g, o = (z[:, k * n:(k + 1) * n] for k in range(4))
    c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c2), c2


def np_gru(p, h, x):
    n = p["wh"].shape[0]
    a, b = x @ p["wi"] + p["bi"], h @ p["wh"] + p["bh"]
    r = sigmoid(a[:, :n] + b[:, :n])
    z = sigmoid(a[:, n:2 * n] + b[:, n:2 * n])
    return (1 - z) * np.tanh(a[:, 2 * n:] + r * b[:, 2 * n:]) + z * h


def np_attention(q, k, v, mask=None):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True) @ v


def np_layer_norm(x, gain, bias):
    c = x - x.mean(-1, keepdims=True)
    return c / np.sqrt((c ** 2).mean(-1, keepdims=True) + 1e-5) * gain + bias


# ------------------------------------------------------------------ layers

CONV = {"w": rng(1).standard_normal((4, 3, 3, 3)), "b": rng(2).standard_normal(4)}
IMAGES = rng(3).standard_normal((2, 3, 7, 7))


def test_conv2d_is_the_cross_correlation_plus_the_bias():
    np.testing.assert_allclose(NN.conv2d(2, 1, CONV, IMAGES), np_conv2d(IMAGES, CONV["w"], CONV["b"], 2, 1),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool, reduce", [("max_pool2d", np.max), ("avg_pool2d", np.mean)])
def test_pools_take_windows_k_apart(pool, reduce):
    np.testing.assert_allclose(getattr(NN, pool)(2, IMAGES), np_pool(IMAGES, 2, reduce), rtol=1e-12)


LSTM = {"wi": rng(4).standard_normal((3, 20)), "wh": rng(5).standard_normal((5, 20)), "b": rng(6).standard_normal(20)}
GRU = {"wi": rng(7).standard_normal((3, 15)), "wh": rng(8).standard_normal((5, 15)),
       "bi": rng(9).standard_normal(15), "bh": rng(10).standard_normal(15)}
X, H, C = rng(11).standard_normal((2, 3)), rng(12).standard_normal((2, 5)), rng(13).standard_normal((2, 5))


def test_lstm_cell_follows_the_equations():
    got = NN.lstm_cell(LSTM, (H, C), X)
    for g, w in zip(got, np_lstm(LSTM, H, C, X)):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_gru_cell_follows_the_equations():
    np.testing.assert_allclose(NN.gru_cell(GRU, H, X), np_gru(GRU, H, X), rtol=1e-12)


Q, K, V = rng(14).standard_normal((2, 4, 3)), rng(15).standard_normal((2, 6, 3)), rng(16).standard_normal((2, 6, 5))
MASK = rng(17).random((2, 4, 6)) < 0.6
MASK[..., 0] = True  # every query sees a key


def test_attention_is_softmax_of_scaled_scores_times_values():
    np.testing.assert_allclose(NN.attention(Q, K, V), np_attention(Q, K, V), rtol=1e-12)
    np.testing.assert_allclose(NN.masked_attention(MASK, Q, K, V), np_attention(Q, K, V, MASK), rtol=1e-12)


def test_a_query_that_sees_no_key_averages_the_values_as_jax_does():
    blind = MASK.copy()
    blind[0, 1] = False
    np.testing.assert_allclose(NN.masked_attention(blind, Q, K, V)[0, 1], V[0].mean(0), rtol=1e-12)


NORM = {"gain": rng(18).standard_normal(6), "bias": rng(19).standard_normal(6)}
ROWS = rng(20).standard_normal((2, 3, 6))


def test_layer_norm_normalises_the_last_axis():
    np.testing.assert_allclose(NN.layer_norm(NORM, ROWS), np_layer_norm(ROWS, NORM["gain"], NORM["bias"]),
                               rtol=1e-12)


def test_dropout_zeroes_the_draws_above_the_keep_probability_and_scales_the_rest():
    x = rng(21).standard_normal((50, 40))
    keep = np.random.default_rng(5).random(x.shape) < 0.75
    np.testing.assert_allclose(NN.dropout(5, 0.25, True, x), np.where(keep, x / 0.75, 0.0), rtol=1e-15)
    np.testing.assert_array_equal(NN.dropout(5, 0.25, False, x), x)
    np.testing.assert_array_equal(NN.dropout(5, 1.0, True, x), np.zeros_like(x))
    big = np.ones((400, 500))
    dropped = NN.dropout(6, 0.25, True, big)
    assert abs((dropped == 0).mean() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / big.size)
    assert abs(dropped.mean() - 1.0) < 5 * math.sqrt(0.25 / 0.75 / big.size)


def test_dropout_rate_outside_zero_one_is_a_located_error():
    with pytest.raises(lamad.LamRuntimeError, match="not in"):
        NN.dropout(5, 1.5, True, np.ones(3))


@pytest.mark.parametrize("name, args", [
    ("conv_loss", (CONV, IMAGES[:1, :, :5, :5])),
    ("max_pool_loss", (IMAGES[:1, :2],)),
    ("avg_pool_loss", (IMAGES[:1, :2],)),
    ("lstm_loss", (LSTM, (H, C), X)),
    ("gru_loss", (GRU, H, X)),
    ("attention_loss", (Q[:1], K[:1], V[:1])),
    ("norm_loss", (NORM, ROWS[:1])),
])
def test_layer_gradients_match_central_differences(name, args):
    check_gradient(PROGRAM[name], *args)


def test_masked_attention_and_dropout_gradients_match_central_differences():
    check_gradient(PROGRAM.masked_loss, Q[:1], K[:1], V[:1], fixed=(MASK[:1],))
    check_gradient(PROGRAM.dropout_loss, rng(22).standard_normal((4, 5)), fixed=(3,))


@needs_torch
def test_layers_agree_with_pytorch():
    t = torch.from_numpy
    np.testing.assert_allclose(NN.conv2d(2, 1, CONV, IMAGES),
                               F.conv2d(t(IMAGES), t(CONV["w"]), t(CONV["b"]), stride=2, padding=1).numpy(),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(NN.max_pool2d(2, IMAGES), F.max_pool2d(t(IMAGES), 2).numpy(), rtol=1e-12)
    np.testing.assert_allclose(NN.avg_pool2d(2, IMAGES), F.avg_pool2d(t(IMAGES), 2).numpy(), rtol=1e-12)
    lstm = torch.nn.LSTMCell(3, 5).double()
    gru = torch.nn.GRUCell(3, 5).double()
    with torch.no_grad():
        lstm.weight_ih.copy_(t(LSTM["wi"].T)), lstm.weight_hh.copy_(t(LSTM["wh"].T))
        lstm.bias_ih.copy_(t(LSTM["b"])), lstm.bias_hh.zero_()
        gru.weight_ih.copy_(t(GRU["wi"].T)), gru.weight_hh.copy_(t(GRU["wh"].T))
        gru.bias_ih.copy_(t(GRU["bi"])), gru.bias_hh.copy_(t(GRU["bh"]))
        for g, w in zip(NN.lstm_cell(LSTM, (H, C), X), lstm(t(X), (t(H), t(C)))):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-10)
        np.testing.assert_allclose(NN.gru_cell(GRU, H, X), gru(t(X), t(H)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(NN.attention(Q, K, V), F.scaled_dot_product_attention(t(Q), t(K), t(V)).numpy(),
                               rtol=1e-10)
    np.testing.assert_allclose(NN.masked_attention(MASK, Q, K, V),
                               F.scaled_dot_product_attention(t(Q), t(K), t(V), attn_mask=t(MASK)).numpy(),
                               rtol=1e-10)
    np.testing.assert_allclose(NN.layer_norm(NORM, ROWS),
                               F.layer_norm(t(ROWS), (6,), t(NORM["gain"]), t(NORM["bias"])).numpy(), rtol=1e-10)


def test_the_initial_layers_have_their_shapes_and_bounds():
    conv = NN.init_conv2d(0, 3, 8, 5)
    assert conv["w"].shape == (8, 3, 5, 5) and not conv["b"].any()
    for init, gates in ((NN.init_lstm, 4), (NN.init_gru, 3)):
        cell = init(1, 3, 16)
        assert {k: v.shape for k, v in cell.items() if k.startswith("w")} == {"wi": (3, gates * 16),
                                                                             "wh": (16, gates * 16)}
        assert all(np.abs(v).max() <= 0.25 for v in cell.values())  # 1/√16
    assert {k: v.tolist() for k, v in NN.init_layer_norm(3).items()} == {"gain": [1, 1, 1], "bias": [0, 0, 0]}


# ------------------------------------------------------------------ initialisers


def test_fans_are_pytorchs_in_lamads_layouts():
    assert NN.fans([3, 7]) == (3, 7)                  # dense [inputs, outputs]
    assert NN.fans([16, 8, 3, 5]) == (8 * 15, 16 * 15)  # conv O × C × kh × kw
    with pytest.raises(lamad.LamRuntimeError, match="out of range"):
        NN.fans([5])


DRAW = [400, 50, 2, 5]  # 200,000 entries: fan_in 500, fan_out 4000


@pytest.mark.parametrize("name, variance, uniform", [
    ("kaiming_normal", 2 / 500, False), ("kaiming_uniform", 2 / 500, True),
    ("xavier_normal", 2 / 4500, False), ("xavier_uniform", 2 / 4500, True),
])
def test_initialisers_have_pytorchs_variance(name, variance, uniform):
    w = getattr(NN, name)(3, DRAW)
    n = w.size
    assert w.shape == tuple(DRAW)
    fourth = 9 / 5 if uniform else 3  # E[x⁴] / σ⁴: the variance of the sample variance is (that - 1) σ⁴ / n
    assert abs(w.mean()) < 5 * math.sqrt(variance / n)
    assert abs(w.var() - variance) < 5 * variance * math.sqrt((fourth - 1) / n)
    if uniform:
        bound = math.sqrt(3 * variance)
        assert np.abs(w).max() < bound and np.abs(w).max() > 0.999 * bound


@needs_torch
def test_initialisers_agree_with_pytorchs_bounds_and_gains():
    w = torch.empty(DRAW, dtype=torch.float64)
    bound = torch.nn.init.kaiming_uniform_(w, nonlinearity="relu").abs().max().item()
    assert abs(np.abs(NN.kaiming_uniform(0, DRAW)).max() - bound) < 1e-3 * bound
    bound = torch.nn.init.xavier_uniform_(w).abs().max().item()
    assert abs(np.abs(NN.xavier_uniform(0, DRAW)).max() - bound) < 1e-3 * bound


# ------------------------------------------------------------------ losses

LOGITS = rng(30).standard_normal((6, 4))
LABELS = np.array([0, 3, 1, 1, 2, 0])
PROBS = sigmoid(rng(31).standard_normal((3, 4)))
TARGETS = rng(32).random((3, 4))


def np_log_softmax(z):
    return z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)


def test_losses_follow_their_formulas():
    logp = np_log_softmax(LOGITS)
    want_ce = -logp[np.arange(6), LABELS].mean()
    assert NN.nll(logp, LABELS) == pytest.approx(want_ce, rel=1e-12)
    assert NN.cross_entropy_with_logits(LOGITS, LABELS) == pytest.approx(want_ce, rel=1e-12)
    assert NN.cross_entropy(LOGITS, np.eye(4)[LABELS]) == pytest.approx(want_ce, rel=1e-12)
    np.testing.assert_allclose(NN.log_softmax(LOGITS), logp, rtol=1e-12)
    want_bce = -(TARGETS * np.log(PROBS) + (1 - TARGETS) * np.log(1 - PROBS)).mean()
    assert NN.binary_cross_entropy(PROBS, TARGETS) == pytest.approx(want_bce, rel=1e-12)
    logits = np.log(PROBS / (1 - PROBS))
    assert NN.binary_cross_entropy_with_logits(logits, TARGETS) == pytest.approx(want_bce, rel=1e-10)
    assert NN.mse(PROBS, TARGETS) == pytest.approx(((PROBS - TARGETS) ** 2).mean(), rel=1e-12)


def test_binary_cross_entropy_with_logits_is_stable_far_out():
    z, y = np.array([1000.0, -1000.0, 800.0]), np.array([0.0, 1.0, 1.0])
    assert NN.binary_cross_entropy_with_logits(z, y) == pytest.approx(2000 / 3, rel=1e-12)
    g = lamad.grad(NN.binary_cross_entropy_with_logits)(z, y)
    np.testing.assert_allclose(g, np.array([1.0, -1.0, 0.0]) / 3, atol=1e-300)  # (σ(z) - y) / 3


@pytest.mark.parametrize("label", [4, -1])
def test_a_label_out_of_range_is_a_located_error(label):
    with pytest.raises(lamad.LamRuntimeError, match=f"label {label} is not an integer in 0 … 3"):
        NN.cross_entropy_with_logits(LOGITS, np.array([0, label, 1, 1, 2, 0]))


def test_nll_reads_only_the_labels_log_probabilities():
    logp = np.array([[-np.inf, 0.0], [-np.log(2), -np.log(2)]])  # a probability 0 off the label
    assert NN.nll(logp, np.array([1, 0])) == pytest.approx(np.log(2) / 2, rel=1e-12)


@pytest.mark.parametrize("name, args", [
    ("mse", (PROBS, TARGETS)),
    ("nll", (np_log_softmax(LOGITS), LABELS)),
    ("cross_entropy_with_logits", (LOGITS, LABELS)),
    ("cross_entropy", (LOGITS, np.eye(4)[LABELS])),
    ("binary_cross_entropy", (PROBS, TARGETS)),
    ("binary_cross_entropy_with_logits", (LOGITS[:3], TARGETS)),
])
def test_loss_gradients_match_central_differences(name, args):
    check_gradient(getattr(NN, name), *args)


@needs_torch
def test_losses_agree_with_pytorch():
    t = torch.from_numpy
    assert NN.cross_entropy_with_logits(LOGITS, LABELS) == pytest.approx(F.cross_entropy(t(LOGITS), t(LABELS)).item(),
                                                                          rel=1e-12)
    assert NN.nll(np_log_softmax(LOGITS), LABELS) == pytest.approx(
        F.nll_loss(t(np_log_softmax(LOGITS)), t(LABELS)).item(), rel=1e-12)
    assert NN.binary_cross_entropy(PROBS, TARGETS) == pytest.approx(
        F.binary_cross_entropy(t(PROBS), t(TARGETS)).item(), rel=1e-12)
    assert NN.binary_cross_entropy_with_logits(LOGITS[:3], TARGETS) == pytest.approx(
        F.binary_cross_entropy_with_logits(t(LOGITS[:3]), t(TARGETS)).item(), rel=1e-12)


# ------------------------------------------------------------------ schedules


def cosine(init, steps, alpha, step):
    """optax.cosine_decay_schedule."""
    return init * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)) + alpha)


def linear(init, end, steps, step):
    """optax.linear_schedule."""
    return (init - end) * (1 - min(max(step, 0), steps) / steps) + end


@pytest.mark.parametrize("step", [0, 1, 7, 10, 25, 99, 100, 150])
def test_schedules_follow_optax_formulas(step):
    assert NN.constant_schedule(0.3, step) == 0.3
    assert NN.exponential_decay(0.1, 10, 0.5, step) == pytest.approx(0.1 * 0.5 ** (step / 10), rel=1e-12)
    assert NN.step_decay(0.1, 10, 0.5, step) == pytest.approx(0.1 * 0.5 ** (step // 10), rel=1e-12)
    assert NN.cosine_decay_schedule(0.1, 100, 0.2, step) == pytest.approx(cosine(0.1, 100, 0.2, step), rel=1e-12)
    assert NN.linear_schedule(0.0, 0.1, 10, step) == pytest.approx(linear(0.0, 0.1, 10, step), rel=1e-12, abs=1e-15)
    want = linear(0.0, 1.0, 10, step) if step < 10 else cosine(1.0, 90, 0.1, step - 10)
    assert NN.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100, 0.1, step) == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------ descriptions

DEFINITION = re.compile(r"^(def|type) (\w+)")


@pytest.mark.parametrize("module", sorted(STD.glob("*.lam")), ids=lambda p: p.name)
def test_every_definition_has_a_description_above_it(module):
    lines = module.read_text(encoding="utf-8").splitlines()
    undescribed = [m.group(2) for i, line in enumerate(lines) if (m := DEFINITION.match(line))
                   and not (i > 0 and lines[i - 1].startswith("-- "))]
    assert undescribed == []
    assert sum(bool(DEFINITION.match(line)) for line in lines) >= 1

