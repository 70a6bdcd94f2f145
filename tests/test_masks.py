"""Masks and order (docs/language.md, "Masks and order"): ``where``, ``any``/``all``,
``argmax_axis``/``argmin_axis``, ``argsort``, ``sort`` and ``top_k`` — their types, their
values against NumPy's, their gradients against finite differences, ``where``'s NaN rule,
the conventions at ties, and located run-time errors.  Drawn shapes and axes are checked
by tests/test_reverse.py (``where``, ``sort``, ``top_k`` in ``GRADIENT_CASES``)."""

from __future__ import annotations

import numpy as np
import pytest

import lamad
from lamad import LamRuntimeError, LamTypeError, LamWarning
from lamad.parser import parse_term
from lamad.types import infer_type
from numeric import assert_same_gradient, numeric_gradient

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("source, expected", [
    ("where true 1.0 2.0", "Real"),
    ("where true (stack [1.0]) 2.0", "Tensor"),
    ("where (stack [1.0] > 0.0) 1.0 2.0", "Tensor"),
    ("\\(x : Tensor). where (x > 0.0) x 0.0", "Tensor -> Tensor"),
    ("any (arange 3 > 1)", "Bool"),
    ("all (arange 3 > 1)", "Bool"),
    ("any_axis 0 (arange 3 > 1)", "BoolTensor"),
    ("all_axis (-1) (arange 3 > 1)", "BoolTensor"),
    ("argmax_axis 0 (stack [1.0])", "IntTensor"),
    ("argmin_axis 0 (stack [1.0])", "IntTensor"),
    ("argsort 0 (stack [1.0])", "IntTensor"),
    ("sort 0 (stack [1.0])", "Tensor"),
    ("top_k 1 (stack [1.0])", "Tensor * IntTensor"),
])
def test_types(source, expected):
    assert str(infer_type(parse_term(source))) == expected


@pytest.mark.parametrize("source, message", [
    ("where 1.0 2.0 3.0", "argument of 'where': expected Bool or BoolTensor, found Real"),
    ("where true (arange 2) 1.0", "argument of 'where': expected Real or Tensor, found IntTensor"),
    ("any (arange 2)", "argument of 'any': expected BoolTensor, found IntTensor"),
    ("all true", "argument of 'all': expected BoolTensor, found Bool"),
    ("sort 0 (arange 3)", "expected Tensor, found IntTensor"),
    ("top_k 1.0 (stack [1.0])", "expected Int, found Real"),
])
def test_type_errors(source, message):
    with pytest.raises(LamTypeError) as info:
        infer_type(parse_term(source))
    assert message in info.value.message


# ------------------------------------------------------------------ values against NumPy


def test_where_selects_and_broadcasts_as_numpy():
    p = lamad.loads("def w (m : BoolTensor) (a : Tensor) (b : Tensor) = where m a b\n"
                    "def s (c : Bool) (a : Real) (b : Tensor) = (where c a 2.0, where c a b)")
    m = np.array([[True], [False]])
    a, b = np.array([1.0, 2.0, 3.0]), np.array([[10.0], [20.0]])
    np.testing.assert_array_equal(p.w(m, a, b), np.where(m, a, b))
    assert p.w(m, a, b).shape == (2, 3)
    for c in (True, False):
        scalar, tensor = p.s(c, 5.0, b)
        assert float(scalar) == (5.0 if c else 2.0) and np.shape(scalar) == ()
        np.testing.assert_array_equal(tensor, np.where(c, 5.0, b))


def test_any_and_all_reduce_masks_as_numpy():
    p = lamad.loads("def r (m : BoolTensor) = (any m, all m, any_axis 0 m, all_axis (-1) m)")
    m = np.array([[True, False, False], [True, True, False]])
    anything, everything, columns, rows = p.r(m)
    assert anything is True and everything is False
    np.testing.assert_array_equal(columns, m.any(axis=0))
    np.testing.assert_array_equal(rows, m.all(axis=-1))
    empty = np.zeros((0, 2), dtype=bool)
    anything, everything, columns, rows = p.r(empty)
    assert anything is False and everything is True
    np.testing.assert_array_equal(columns, [False, False])
    assert rows.shape == (0,)


def test_argmax_and_argmin_take_the_first_extreme_as_numpy():
    p = lamad.loads("def a (axis : Int) (x : Tensor) = (argmax_axis axis x, argmin_axis axis x)")
    x = np.array([[3.0, 7.0, 7.0, -1.0], [2.0, -1.0, 5.0, -1.0], [NAN, 0.0, NAN, 9.0]])
    for axis in (0, 1, -1):
        largest, smallest = p.a(axis, x)
        np.testing.assert_array_equal(largest, np.argmax(x, axis=axis))
        np.testing.assert_array_equal(smallest, np.argmin(x, axis=axis))
        assert largest.dtype == smallest.dtype == np.int64
    largest, smallest = p.a(1, x)
    assert list(largest) == [1, 2, 0] and list(smallest) == [3, 1, 0]  # ties: the first; NaN: the extreme


def test_sort_and_argsort_are_stable_with_nan_last():
    p = lamad.loads("def s (axis : Int) (x : Tensor) = (sort axis x, argsort axis x)")
    x = np.array([[2.0, NAN, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, -3.0, INF]])
    for axis in (0, 1, -1):
        values, order = p.s(axis, x)
        np.testing.assert_array_equal(values, np.sort(x, axis=axis))
        np.testing.assert_array_equal(order, np.argsort(x, axis=axis, kind="stable"))
        assert order.dtype == np.int64
    _, order = p.s(1, x)
    assert order.tolist() == [[2, 4, 0, 3, 1], [3, 0, 1, 2, 4]]


def test_top_k_is_the_largest_first_with_ties_in_index_order():
    p = lamad.loads("def t (k : Int) (x : Tensor) = top_k k x")
    x = np.array([[1.0, 5.0, 3.0, 5.0, -2.0], [0.0, NAN, 4.0, 4.0, 4.0]])
    values, indices = p.t(3, x)
    assert indices.tolist() == [[1, 3, 2], [1, 2, 3]] and indices.dtype == np.int64
    np.testing.assert_array_equal(values, np.take_along_axis(x, indices, axis=-1))
    stable = np.argsort(-x[0], kind="stable")  # without NaN, the stable descending order
    for k in range(6):
        values, indices = p.t(k, x[0])
        np.testing.assert_array_equal(indices, stable[:k])
        np.testing.assert_array_equal(values, x[0][stable[:k]])


def test_the_older_mask_primitives_are_written_with_the_new_ones():
    """As docs/language.md says: ``mask_ge``, ``mask_le`` and ``argmax_mask`` along the last
    axis say what comparisons, ``real`` and ``argmax_axis`` say."""
    p = lamad.loads("def old (x : Tensor) (y : Tensor) = (mask_ge x y, mask_le x y, argmax_mask (-1) x)\n"
                    "def new (x : Tensor) (y : Tensor) = "
                    "(real (x >= y), real (x <= y), onehot (dim (-1) x) (real (argmax_axis (-1) x)))")
    x = np.array([[1.0, 3.0, 3.0, -1.0], [0.5, 0.0, 2.0, 2.0], [-4.0, -5.0, -4.0, -6.0]])
    y = np.array([1.0, 2.0, 3.0, -1.0])
    for old, new in zip(p.old(x, y), p.new(x, y)):
        np.testing.assert_array_equal(old, new)


# ------------------------------------------------------------------ gradients against finite differences


GRADIENTS = """
def where_loss (x : Tensor) (a : Real) (b : Tensor) : Real = sum (where (x > 0.0) (a * x) (b * sin x) ** 2.0)
def scalar_where (x : Real) (a : Real) : Real = where (x > a) (x * a) (exp x) + where (a < 0.0) 0.5 (a * a)
def sort_loss (x : Tensor) : Real = sum (sort 0 x * stack [1.0, -2.0, 3.0]) + sum (sort (-1) (x * x) * x)
def top_k_loss (x : Tensor) : Real = let (v, i) = top_k 2 x in sum (v * v * real (i + 1))
"""


@pytest.fixture(scope="module")
def gradients():
    return lamad.loads(GRADIENTS)


@pytest.mark.parametrize("name, point", [
    ("where_loss", (np.array([[0.3, -1.1, 0.8], [-0.4, 1.9, -2.2]]), 0.7, np.array([1.5, -0.5, 2.0]))),
    ("scalar_where", (0.4, 1.3)),
    ("scalar_where", (1.7, -0.6)),
    ("sort_loss", (np.array([[0.3, -1.1, 0.8], [-0.4, 1.9, -2.2], [1.2, 0.1, -0.9]]),)),
    ("top_k_loss", (np.array([[0.3, -1.1, 0.8, 2.1], [-0.4, 1.9, -2.2, 0.6]]),)),
])
def test_gradients_match_finite_differences(gradients, name, point):
    f = getattr(gradients, name)
    got = lamad.grad(f, argnums=tuple(range(len(point))))(*point)
    for i, g in enumerate(got):
        def moved(x, i=i):
            return f(*point[:i], x, *point[i + 1:])
        assert_same_gradient(g, numeric_gradient(moved, point[i]), where=f"{name}: ∂x{i + 1}")
    direction = tuple(np.ones_like(x) if np.ndim(x) else 1.0 for x in point)
    _, tangent = lamad.jvp(f, point, direction)
    np.testing.assert_allclose(tangent, sum(np.sum(g) for g in got), rtol=1e-10)


@pytest.mark.parametrize("body", [
    "sum (where (x > 0.0) (x * x * x) (sin x))",
    "sum (sort 1 (x * x) * stack [1.0, 2.0, 3.0])",
    "let (v, i) = top_k 2 (x * x * x) in sum (v * v)",
])
def test_second_derivatives_agree_in_both_orders(body):
    """Reverse over reverse (jacrev of grad) and forward over reverse (hessian) give one
    Hessian, so the rules of the helpers the derivatives are written with (``where``,
    ``take_along``, ``put_along``) are right too."""
    p = lamad.loads(f"def f (x : Tensor) : Real = {body}\n"
                    "def by_reverse (x : Tensor) = jacrev (grad f) x\ndef by_forward (x : Tensor) = hessian f x")
    x = np.array([[0.3, -1.1, 0.8], [-0.4, 1.9, -2.2]])
    hessian = p.by_forward(x)
    np.testing.assert_allclose(p.by_reverse(x), hessian, rtol=1e-10, atol=1e-12)
    g = lamad.grad(p.f)
    step = 1e-5
    columns = [(g(x + step * e) - g(x - step * e)) / (2 * step) for e in np.eye(6).reshape(6, 2, 3)]
    np.testing.assert_allclose(hessian.reshape(6, 6), np.stack([c.ravel() for c in columns], axis=1),
                               rtol=1e-6, atol=1e-6)


def test_scatter_adds_where_indices_repeat():
    """``%put_along`` is the transpose of ``%take_along`` for any indices: repeated ones
    add up, so a gather's gradient is right even where it picks an entry twice."""
    p = lamad.loads("def f (x : Tensor) (i : IntTensor) : Real = sum (%take_along 1 x i * stack [1.0, 2.0, 4.0])")
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    i = np.array([[0, 0, 2], [1, 1, 1]])
    assert lamad.grad(p.f)(x, i).tolist() == [[3.0, 0.0, 4.0], [0.0, 7.0, 0.0]]
    assert_same_gradient(lamad.grad(p.f)(x, i), numeric_gradient(lambda x: p.f(x, i), x))


def test_sort_and_top_k_send_cotangents_along_the_stable_order_at_ties():
    """At a tie the derivative is that of the permutation the stable sort chose: the tied
    entry with the lower index gets the first position's cotangent (as JAX), where
    ``max_axis`` splits the cotangent equally."""
    p = lamad.loads("def s (x : Tensor) : Real = sum (sort 0 x * stack [1.0, 2.0, 3.0])\n"
                    "def t (x : Tensor) : Real = let (v, _) = top_k 2 x in sum (v * stack [1.0, 10.0])\n"
                    "def m (x : Tensor) : Real = sum (max_axis 0 x)")
    x = np.array([5.0, 2.0, 5.0])
    assert lamad.grad(p.s)(x).tolist() == [2.0, 1.0, 3.0]
    assert lamad.grad(p.t)(x).tolist() == [1.0, 0.0, 10.0]
    assert lamad.grad(p.m)(x).tolist() == [0.5, 0.0, 0.5]
    _, tangent = lamad.jvp(p.s, (x,), (np.array([1.0, 10.0, 100.0]),))
    assert float(tangent) == 2.0 * 1.0 + 1.0 * 10.0 + 3.0 * 100.0


# ------------------------------------------------------------------ where's NaN rule


def test_where_gives_finite_gradients_where_the_selected_branch_is_finite():
    """``log x`` is NaN at x < 0, where it is not selected: the zero cotangent it gets is
    exact, and ``0 / x`` is 0."""
    p = lamad.loads("def f (x : Tensor) : Real = sum (where (x > 0.0) (log x) (0.0 * x))")
    x = np.array([2.0, -1.0, 0.5, -3.0])
    with pytest.warns(LamWarning, match="invalid value in 'log'"):
        got = lamad.grad(p.f)(x)
    np.testing.assert_array_equal(got, [0.5, 0.0, 2.0, 0.0])
    with pytest.warns(LamWarning):
        _, tangent = lamad.jvp(p.f, (x,), (np.ones(4),))
    assert float(tangent) == 2.5


def test_nan_and_inf_in_the_cotangent_do_not_reach_the_unselected_branch():
    p = lamad.loads("def w (m : BoolTensor) (a : Tensor) (b : Real) = where m a b")
    m = np.array([True, False, False, True])
    _, pullback = lamad.vjp(p.w, m, np.ones(4), 1.0)
    _, ga, gb = pullback(np.array([1.0, NAN, INF, 2.0]))
    np.testing.assert_array_equal(ga, [1.0, 0.0, 0.0, 2.0])  # no NaN · 0 where a is not selected
    assert np.isnan(gb)  # b is selected where the cotangent is NaN
    _, pullback = lamad.vjp(p.w, m, np.ones(4), 1.0)
    _, ga, gb = pullback(np.array([NAN, 1.0, 2.0, INF]))
    np.testing.assert_array_equal(ga, [NAN, 0.0, 0.0, INF])
    assert float(gb) == 3.0


def test_a_branch_whose_own_derivative_is_nan_needs_the_double_where():
    """As in JAX: ``sqrt x`` at x <= 0 has the derivative ``a / (2 sqrt x)``, which is NaN
    for the zero cotangent (0 / 0, 0 / NaN), so the gradient is NaN there in reverse mode,
    while forward mode drops the unselected tangent; the inner ``where`` keeps ``sqrt``
    away from those points, and both modes are finite."""
    p = lamad.loads("def single (x : Tensor) : Real = sum (where (x > 0.0) (sqrt x) 0.0)\n"
                    "def double (x : Tensor) : Real = sum (where (x > 0.0) (sqrt (where (x > 0.0) x 1.0)) 0.0)")
    x = np.array([4.0, 0.0, -1.0])
    with pytest.warns(LamWarning) as caught:
        single = lamad.grad(p.single)(x)
    warned = " ".join(str(w.message) for w in caught)
    assert "invalid value in 'sqrt'" in warned and "invalid value in '/'" in warned  # the derivative's 0 / 0
    assert single[0] == 0.25 and np.isnan(single[1:]).all()
    with pytest.warns(LamWarning):
        _, tangent = lamad.jvp(p.single, (x,), (np.ones(3),))
    assert float(tangent) == 0.25
    np.testing.assert_array_equal(lamad.grad(p.double)(x), [0.25, 0.0, 0.0])
    assert float(lamad.jvp(p.double, (x,), (np.ones(3),))[1]) == 0.25


def test_an_unselected_branch_that_overflows_makes_a_nan_gradient():
    """``exp (1000.0 * x)`` overflows at x = 0.9, where it is not selected: its derivative
    ``a * y`` is 0 · ∞ there (the double where applies to it too)."""
    p = lamad.loads("def f (x : Tensor) : Real = sum (where (x < 1.0) x (exp (1000.0 * x)))")
    with pytest.warns(LamWarning) as caught:
        got = lamad.grad(p.f)(np.array([0.5, 0.9]))
    warned = " ".join(str(w.message) for w in caught)
    assert "overflow in 'exp'" in warned and "invalid value in '*'" in warned  # the derivative's 0 · ∞
    assert got[0] == 1.0 and np.isnan(got[1])


# ------------------------------------------------------------------ run-time errors


@pytest.mark.parametrize("source, message", [
    ("sort 2 (stack [1.0, 2.0])", "axis 2 is out of range for a tensor of rank 1 (shape (2,)): its axes are 0 to 0"),
    ("argsort (-2) (stack [1.0])", "axis -2 is out of range for a tensor of rank 1"),
    ("argmax_axis 0 (reshape (stack [1.0]) [])", "it has no axes"),
    ("argmin_axis 1 (zeros [2, 0])", "axis 1 of a tensor of shape (2, 0) is empty: it has no minimum"),
    ("any_axis 3 (arange 2 > 0)", "axis 3 is out of range"),
    ("all_axis 1 (arange 2 > 0)", "axis 1 is out of range"),
    ("top_k 3 (ones [4, 2])", "k = 3 is larger than the last axis: top_k takes 0 to 2 entries along the last axis "
                              "of a tensor of shape (4, 2)"),
    ("top_k (-1) (ones [2])", "k = -1 is negative"),
    ("top_k 1 (reshape (stack [1.0]) [])", "top_k needs a tensor of rank 1 or more"),
    ("where (arange 3 > 0) (ones [2]) 0.0", "the mask and the branches have shapes (3,), (2,), (), which do not broadcast"),
])
def test_run_time_errors_are_located(source, message):
    with pytest.raises(LamRuntimeError) as info:
        lamad.loads(f"def main = {source}").main
    assert message in info.value.message
    assert info.value.span is not None and info.value.span.line == 1


def test_errors_of_a_derivative_are_located_at_the_primitive():
    p = lamad.loads("def f (x : Tensor) : Real = sum (sort 1 x)")
    with pytest.raises(LamRuntimeError) as info:
        lamad.grad(p.f)(np.ones(3))
    assert "axis 1 is out of range" in info.value.message
    assert info.value.span is not None and info.value.span.column == 34
