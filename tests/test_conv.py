"""Convolutions and pooling (docs/language.md, "Convolutions"): values against loops
written out entry by entry, gradients and second derivatives against finite differences at
several strides and paddings, the tie rule of max pooling in both modes, located errors,
derivative programs that print and parse back, and no hidden host copies.
tests/test_prims.py checks every record's rules on its example."""

from __future__ import annotations

import numpy as np
import pytest

import lamad
from lamad import LamRuntimeError
from lamad.prims import conv
from lamad.prims.conv import transposed_convolution
from numeric import assert_derivatives_parse_back, assert_same_gradient, gradient_difference, numeric_gradient

RNG = np.random.default_rng(20240720)


def conv2d_loops(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """PyTorch's conv2d (a cross-correlation), one output entry at a time."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for b in range(n):
        for q in range(o):
            for i in range(ho):
                for j in range(wo):
                    out[b, q, i, j] = np.sum(xp[b, :, i * stride:i * stride + kh, j * stride:j * stride + kw] * w[q])
    return out


def pool_loops(x: np.ndarray, k: int, stride: int, reduce) -> np.ndarray:
    """``reduce`` of each k × k window of the last two axes, one window at a time."""
    h, w = x.shape[-2:]
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros(x.shape[:-2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[..., i, j] = reduce(x[..., i * stride:i * stride + k, j * stride:j * stride + k], axis=(-2, -1))
    return out


PROGRAM = lamad.loads("""
def conv (s : Int) (p : Int) (x : Tensor) (w : Tensor) : Tensor = conv2d s p x w
def maxpool (k : Int) (s : Int) (x : Tensor) : Tensor = max_pool2d k s x
def avgpool (k : Int) (s : Int) (x : Tensor) : Tensor = avg_pool2d k s x
def conv_loss (s : Int) (p : Int) (c : Tensor) (xw : Tensor * Tensor) : Real =
    let (x, w) = xw in sum (c * tanh (conv2d s p x w))
def pool_loss (k : Int) (s : Int) (c : Tensor) (x : Tensor) : Real =
    sum (c * max_pool2d k s (x * x)) + sum (c * avg_pool2d k s (sin x))
def conv_hvp (s : Int) (p : Int) (c : Tensor) (xw : Tensor * Tensor) (d : Tensor * Tensor) : Tensor * Tensor =
    hvp (conv_loss s p c) xw d
def pool_hvp (k : Int) (s : Int) (c : Tensor) (x : Tensor) (d : Tensor) : Tensor = hvp (pool_loss k s c) x d
""")

GEOMETRIES = [  # stride, padding, images, kernels
    (1, 0, (2, 3, 5, 5), (4, 3, 3, 3)),
    (1, 1, (1, 2, 4, 6), (3, 2, 3, 3)),
    (2, 1, (2, 2, 5, 4), (3, 2, 2, 3)),   # a column no whole window reaches
    (3, 2, (1, 1, 7, 5), (2, 1, 4, 2)),   # padding wider than a stride's leftover
    (2, 0, (1, 3, 4, 4), (1, 3, 1, 1)),   # 1 × 1 kernels
]


# ------------------------------------------------------------------ values


@pytest.mark.parametrize("stride, padding, xs, ws", GEOMETRIES)
def test_conv2d_is_the_cross_correlation_entry_by_entry(stride, padding, xs, ws):
    x, w = RNG.standard_normal(xs), RNG.standard_normal(ws)
    np.testing.assert_allclose(PROGRAM.conv(stride, padding, x, w), conv2d_loops(x, w, stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k, stride, shape", [(2, 2, (2, 3, 6, 6)), (2, 1, (3, 4, 5)), (3, 2, (1, 2, 7, 6)),
                                              (2, 3, (2, 8, 7)), (1, 1, (2, 3, 3)), (3, 1, (2, 1, 2, 3, 4))])
def test_pooling_is_the_maximum_and_mean_of_each_window(k, stride, shape):
    """Over the last two axes, whatever the axes before them (rank 2 or more)."""
    x = RNG.standard_normal(shape)
    np.testing.assert_array_equal(PROGRAM.maxpool(k, stride, x), pool_loops(x, k, stride, np.max))
    np.testing.assert_allclose(PROGRAM.avgpool(k, stride, x), pool_loops(x, k, stride, np.mean), rtol=1e-14)


# ------------------------------------------------------------------ derivatives


@pytest.mark.parametrize("stride, padding, xs, ws", GEOMETRIES)
def test_conv2d_gradient_and_second_derivative_match_finite_differences(stride, padding, xs, ws):
    """The gradient in the images and in the kernels (the transposed convolution and the
    correlation), and the Hessian-vector product (the gradient's own derivative, made of
    the same helpers), against central differences."""
    x, w = RNG.standard_normal(xs), RNG.standard_normal(ws)
    c = RNG.standard_normal(PROGRAM.conv(stride, padding, x, w).shape)
    loss = lambda xw: PROGRAM.conv_loss(stride, padding, c, xw)  # noqa: E731
    grad = lamad.grad(PROGRAM.conv_loss, argnums=3)
    assert_same_gradient(grad(stride, padding, c, (x, w)), numeric_gradient(loss, (x, w)))
    direction = (RNG.standard_normal(xs), RNG.standard_normal(ws))
    hvp = PROGRAM.conv_hvp(stride, padding, c, (x, w), direction)
    want = gradient_difference(lambda xw: grad(stride, padding, c, xw), ((x, w),), (direction,))
    np.testing.assert_allclose(np.concatenate([np.ravel(h) for h in hvp]), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("k, stride, shape", [(2, 2, (2, 2, 4, 5)), (2, 1, (3, 4, 4)), (3, 2, (1, 7, 6)),
                                              (2, 3, (1, 2, 7, 8))])
def test_pooling_gradient_and_second_derivative_match_finite_differences(k, stride, shape):
    """Away from ties (random entries): windows that tile, overlap, leave rows and columns
    over, or have gaps between them."""
    x = RNG.standard_normal(shape)
    c = RNG.standard_normal(PROGRAM.maxpool(k, stride, x).shape)
    loss = lambda x: PROGRAM.pool_loss(k, stride, c, x)  # noqa: E731
    grad = lamad.grad(PROGRAM.pool_loss, argnums=3)
    assert_same_gradient(grad(k, stride, c, x), numeric_gradient(loss, x))
    direction = RNG.standard_normal(shape)
    hvp = PROGRAM.pool_hvp(k, stride, c, x, direction)
    want = gradient_difference(lambda x: grad(k, stride, c, x), (x,), (direction,))
    np.testing.assert_allclose(np.ravel(hvp), want, rtol=1e-5, atol=1e-7)


TIES = lamad.loads("""
def pooled (k : Int) (s : Int) (x : Tensor) : Real = sum (max_pool2d k s x)
def back (k : Int) (s : Int) (x : Tensor) : Tensor = grad (pooled k s) x
def forth (k : Int) (s : Int) (x : Tensor) (dx : Tensor) : Tensor = snd (jvp (max_pool2d k s) x dx)
""")


@pytest.mark.parametrize("x, k, stride, expected", [
    # one window, all four tied: a quarter each
    ([[1.0, 1.0], [1.0, 1.0]], 2, 2, [[0.25, 0.25], [0.25, 0.25]]),
    # two of four tied (a relu's zeros beside a positive entry take nothing)
    ([[0.0, 2.0], [2.0, 0.0]], 2, 2, [[0.0, 0.5], [0.5, 0.0]]),
    ([[0.0, 0.0], [0.0, 5.0]], 2, 2, [[0.0, 0.0], [0.0, 1.0]]),
    # overlapping windows: the 3 is the maximum of both, and takes from each
    ([[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]], 2, 1, [[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]),
    # overlapping windows, ties within each: the left window has four 1s, the right one
    # three, and the two 1s they share take from both
    ([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], 2, 1, [[1 / 4, 1 / 4 + 1 / 3, 0.0], [1 / 4, 1 / 4 + 1 / 3, 1 / 3]]),
])
def test_max_pool2d_splits_the_derivative_equally_among_tied_maxima(x, k, stride, expected):
    """As ``max_axis``: each window's cotangent (and its tangent's weights) split equally
    among its maxima; an entry that is the maximum of several windows takes from each."""
    x, expected = np.array(x), np.array(expected)
    np.testing.assert_allclose(TIES.back(k, stride, x), expected, rtol=1e-15)
    # forward mode: the tangent along each unit vector is that entry's weight, summed over windows
    for index in np.ndindex(x.shape):
        dx = np.zeros_like(x)
        dx[index] = 1.0
        assert np.sum(TIES.forth(k, stride, x, dx)) == pytest.approx(expected[index], rel=1e-15)


def test_max_pool2d_sends_nothing_to_entries_that_are_not_maxima_even_if_the_cotangent_is_infinite():
    p = lamad.loads("def f (x : Tensor) (c : Tensor) = snd (vjp (max_pool2d 2 2) x) c")
    got = p.f(np.array([[1.0, 2.0], [0.0, -1.0]]), np.array([[np.inf]]))
    np.testing.assert_array_equal(got, [[0.0, np.inf], [0.0, 0.0]])


def test_the_gradient_of_a_constant_image_is_not_computed(monkeypatch):
    """The images of a model are data: the transposed convolution in them is never run."""
    calls = []

    def counted(*args):
        calls.append(args)
        return transposed_convolution(*args)
    monkeypatch.setattr(conv, "transposed_convolution", counted)
    p = lamad.loads("def f (x : Tensor) (w : Tensor) : Tensor = grad (\\w. sum (conv2d 1 1 x w)) w")
    x, w = RNG.standard_normal((2, 1, 4, 4)), RNG.standard_normal((3, 1, 3, 3))
    np.testing.assert_allclose(p.f(x, w), np.broadcast_to(conv2d_loops(x, np.ones((1, 1, 4, 4)), 1, 1).sum(axis=0),
                                                        (3, 1, 3, 3)), rtol=1e-12)
    assert calls == []


# ------------------------------------------------------------------ located errors


@pytest.mark.parametrize("term, message", [
    ("conv2d 1 0 x (zeros [4, 2, 3, 3])",
     "the images have 3 channels (shape (2, 3, 5, 5)) but the kernels take 2 (shape (4, 2, 3, 3))"),
    ("conv2d 1 0 x (zeros [4, 3, 6, 3])",
     "the 6 x 3 kernels are larger than the images padded to 5 x 5 (shape (2, 3, 5, 5), padding 0)"),
    ("conv2d 0 1 x (zeros [4, 3, 3, 3])", "the stride of conv2d is 0: it must be at least 1"),
    ("conv2d 1 (-1) x (zeros [4, 3, 3, 3])", "the padding of conv2d is negative: -1"),
    ("conv2d 1 0 (sum_axis 0 x) (zeros [4, 3, 3, 3])",
     "conv2d takes images of rank 4 (N, C, H, W), not of shape (3, 5, 5)"),
    ("conv2d 1 0 x (zeros [3, 3, 3])", "conv2d takes kernels of rank 4 (O, C, kh, kw), not of shape (3, 3, 3)"),
    ("max_pool2d 6 1 x", "the 6 x 6 window of max_pool2d is larger than the last two axes of a tensor of shape "
                         "(2, 3, 5, 5) (5 x 5)"),
    ("max_pool2d 2 0 x", "the stride of max_pool2d is 0: it must be at least 1"),
    ("avg_pool2d 0 1 x", "the window size of avg_pool2d is 0: it must be at least 1"),
    ("avg_pool2d 2 2 (sum x * ones [3])", "avg_pool2d pools the last two axes of a tensor of rank 2 or more, "
                                          "not of shape (3,)"),
])
def test_bad_shapes_strides_and_windows_are_located_errors(term, message):
    source = f"def f (x : Tensor) : Tensor =\n    {term}\n"
    with pytest.raises(LamRuntimeError) as info:
        lamad.loads(source).f(np.zeros((2, 3, 5, 5)))
    assert message in info.value.message
    assert info.value.span is not None and info.value.span.line == 2 and info.value.span.column == 5


# ------------------------------------------------------------------ derivative programs, backends


@pytest.mark.parametrize("term", ["conv2d 2 1 x (reshape (sin x) [2, 2, 3, 3])", "max_pool2d 2 1 x",
                                  "avg_pool2d 2 2 (x * x)"])
def test_derivative_programs_print_and_parse_back(term):
    """←D and →D of a function that uses each primitive, raw and simplified, print in
    Unicode and ASCII and parse back to a term of the transformed type."""
    assert_derivatives_parse_back(f"def f (x : Tensor) : Real = sum ({term})")


GUARDED = """
def f (x : Tensor) : Real =
    let k = reshape (x[0:2, 0:2, 0:3, 0:3]) [2, 2, 3, 3];
        h = relu (conv2d 1 1 x k)
    in sum (max_pool2d 2 2 h) + sum (max_pool2d 2 1 (h * h) * max_pool2d 2 1 h) + sum (avg_pool2d 2 1 (conv2d 2 0 x k))
def run = let x = randn 5 [2, 2, 5, 6] in (f x, grad f x, hvp f x (ones [2, 2, 5, 6]))
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_convolutions_make_no_hidden_host_copies_and_keep_the_dtype(dtype):
    """On a namespace that refuses every implicit copy to the host (CuPy's shape, see
    tests/test_backend.py), values, gradients and Hessian-vector products of convolutions
    and poolings are NumPy's, of the run's dtype."""
    from test_backend import guarded, to_numpy

    result = to_numpy(guarded(GUARDED, dtype).value("run"))
    expected = lamad.loads(GUARDED).value("run")
    for got, want in zip(result, expected):
        assert np.asarray(got).dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == "float64" else 1e-4)
