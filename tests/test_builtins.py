"""Every builtin of docs/language.md, evaluated through lamad and compared with a NumPy reference
written here (never by calling ``lamad.builtins``), plus the run-time errors of builtins:
each is a :class:`lamad.LamRuntimeError` located at the primitive that failed."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import lamad
from lamad import LamRuntimeError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIGHT = dict(rtol=1e-12, atol=1e-14)


def close(got, want, **tol):
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.float64, got.dtype
    np.testing.assert_allclose(got, want, **(tol or TIGHT))


def value(src: str, name: str = "f"):
    return lamad.loads(src)[name]


def arrays(shape, lo, hi):
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


# ============================================================== elementwise

ELEMENTWISE = {
    # name: (reference, lowest input, highest input)
    "exp": (np.exp, -20.0, 20.0),
    "log": (np.log, 1e-3, 1e3),
    "sin": (np.sin, -10.0, 10.0),
    "cos": (np.cos, -10.0, 10.0),
    "tanh": (np.tanh, -10.0, 10.0),
    "sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), -30.0, 30.0),
    "relu": (lambda x: np.where(x > 0, x, 0.0), -10.0, 10.0),
    "sqrt": (np.sqrt, 0.0, 1e3),
    "abs": (lambda x: np.where(x < 0, -x, x), -10.0, 10.0),
    "square": (lambda x: x * x, -10.0, 10.0),
    "log1p": (np.log1p, -0.999, 1e3),
}

ELEMENTWISE_PROG = lamad.loads("\n".join(
    f"def t_{n} (x : Tensor) = {n} x\ndef r_{n} (x : Real) = {n} x" for n in ELEMENTWISE))


def test_elementwise_types():
    for n in ELEMENTWISE:
        assert str(ELEMENTWISE_PROG.types[f"t_{n}"]) == "Tensor -> Tensor"
        assert str(ELEMENTWISE_PROG.types[f"r_{n}"]) == "Real -> Real"


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(ELEMENTWISE)))
def test_elementwise_on_tensors(data, name):
    ref, lo, hi = ELEMENTWISE[name]
    x = data.draw(arrays(shapes(), lo, hi))
    close(ELEMENTWISE_PROG[f"t_{name}"](x), ref(x))


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(ELEMENTWISE)))
def test_elementwise_on_reals(data, name):
    ref, lo, hi = ELEMENTWISE[name]
    x = data.draw(st.floats(lo, hi))
    got = ELEMENTWISE_PROG[f"r_{name}"](x)
    assert np.ndim(got) == 0
    close(got, ref(np.float64(x)))


def test_elementwise_special_points():
    p = ELEMENTWISE_PROG
    assert float(p.r_relu(0.0)) == 0.0 and float(p.r_relu(-2.0)) == 0.0 and float(p.r_relu(2.0)) == 2.0
    assert float(p.r_abs(-3.0)) == 3.0
    assert float(p.r_sigmoid(0.0)) == 0.5
    # sigmoid stays finite and accurate far out
    assert float(p.r_sigmoid(-800.0)) == 0.0 and float(p.r_sigmoid(800.0)) == 1.0
    close(p.r_sigmoid(-40.0), np.exp(-40.0) / (1.0 + np.exp(-40.0)))
    close(p.r_log1p(1e-17), 1e-17)  # not log(1 + x), which would be 0
    close(p.t_exp(np.zeros((2, 0))), np.zeros((2, 0)))


# ============================================================== arithmetic and broadcasting

BINARY = {
    # name: (lamad expression, reference, left range, right range)
    "add": ("x + y", lambda a, b: a + b, (-10, 10), (-10, 10)),
    "sub": ("x - y", lambda a, b: a - b, (-10, 10), (-10, 10)),
    "mul": ("x * y", lambda a, b: a * b, (-10, 10), (-10, 10)),
    "div": ("x / y", lambda a, b: a / b, (-10, 10), (0.5, 5)),
    "pow": ("x ** y", lambda a, b: np.exp(b * np.log(a)), (0.1, 4), (-3, 3)),
    "max": ("max x y", lambda a, b: np.where(a >= b, a, b), (-10, 10), (-10, 10)),
    "min": ("min x y", lambda a, b: np.where(a <= b, a, b), (-10, 10), (-10, 10)),
}

_KINDS = {"tt": ("Tensor", "Tensor"), "rt": ("Real", "Tensor"), "tr": ("Tensor", "Real"), "rr": ("Real", "Real")}
BINARY_PROG = lamad.loads("\n".join(
    f"def {k}_{n} (x : {a}) (y : {b}) = {expr}"
    for n, (expr, *_rest) in BINARY.items() for k, (a, b) in _KINDS.items()))


def test_binary_types():
    for n in BINARY:
        assert str(BINARY_PROG.types[f"tt_{n}"]) == "Tensor -> Tensor -> Tensor"
        assert str(BINARY_PROG.types[f"rt_{n}"]) == "Real -> Tensor -> Tensor"
        assert str(BINARY_PROG.types[f"tr_{n}"]) == "Tensor -> Real -> Tensor"
        assert str(BINARY_PROG.types[f"rr_{n}"]) == "Real -> Real -> Real"


def _operand(draw, shape, lo, hi, name):
    x = draw(arrays(shape, lo, hi))
    if name == "div":  # a denominator of either sign, away from zero
        x = x * draw(st.sampled_from([1.0, -1.0]))
    return x


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(BINARY)))
def test_binary_broadcasting(data, name):
    _, ref, (lo1, hi1), (lo2, hi2) = BINARY[name]
    shape_x, shape_y = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4)).input_shapes
    x = data.draw(arrays(shape_x, lo1, hi1))
    y = _operand(data.draw, shape_y, lo2, hi2, name)
    want = ref(x, y)
    assert want.shape == np.broadcast_shapes(shape_x, shape_y)
    close(BINARY_PROG[f"tt_{name}"](x, y), want)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(BINARY)))
def test_binary_real_and_tensor(data, name):
    _, ref, (lo1, hi1), (lo2, hi2) = BINARY[name]
    r = data.draw(st.floats(lo1, hi1))
    t = _operand(data.draw, data.draw(shapes()), lo2, hi2, name)
    close(BINARY_PROG[f"rt_{name}"](r, t), ref(np.float64(r), t))
    t2 = data.draw(arrays(data.draw(shapes()), lo1, hi1))
    r2 = _operand(data.draw, (), lo2, hi2, name)[()]
    close(BINARY_PROG[f"tr_{name}"](t2, float(r2)), ref(t2, r2))
    got = BINARY_PROG[f"rr_{name}"](r, float(r2))
    assert np.ndim(got) == 0
    close(got, ref(np.float64(r), r2))


def test_broadcast_bias_over_rows():
    x = np.arange(12.0).reshape(3, 4)
    b = np.array([10.0, 20.0, 30.0, 40.0])
    got = value("def f (x : Tensor) (b : Tensor) = x + b")(x, b)
    close(got, [[x[i, j] + b[j] for j in range(4)] for i in range(3)])
    got = value("def f (x : Tensor) (b : Tensor) = b * x")(x, b)
    close(got, [[x[i, j] * b[j] for j in range(4)] for i in range(3)])


def test_unary_minus():
    p = lamad.loads("def t (x : Tensor) = -x\ndef r (x : Real) = -x\ndef i (n : Int) = -n\ndef c = - 2.5")
    close(p.t(np.array([1.0, -2.0, 0.0])), [-1.0, 2.0, 0.0])
    close(p.r(3.0), -3.0)
    assert p.i(4) == -4 and type(p.i(4)) is int
    assert float(p.c) == -2.5


def test_int_arithmetic():
    p = lamad.loads("def f (a : Int) (b : Int) = (a + b, a - b, a * b, a ** b, -a)")
    for a in (-3, 0, 7):
        for b in (0, 1, 5):
            got = p.f(a, b)
            assert got == (a + b, a - b, a * b, a ** b, -a)
            assert all(type(v) is int for v in got)


def test_int_to_negative_power_is_an_error():
    src = "def f (a : Int) (b : Int) =\n  a ** b"
    f = value(src)
    with pytest.raises(LamRuntimeError) as info:
        f(2, -1)
    err = info.value
    assert (err.span.line, err.span.column) == (2, 3)
    assert "'**'" in err.message and "convert with 'real'" in err.message


def test_operator_precedence_and_associativity():
    p = lamad.loads("def a = 2.0 ** 3.0 ** 2.0\ndef b = - 2.0 ** 2.0\ndef c = 1.0 - 2.0 - 3.0\n"
                    "def d = 8.0 / 4.0 / 2.0\ndef e = 1.0 + 2.0 * 3.0")
    assert float(p.a) == 2.0 ** 9.0
    assert float(p.b) == -4.0
    assert float(p.c) == -4.0
    assert float(p.d) == 1.0
    assert float(p.e) == 7.0


# ============================================================== matmul

MATMUL = value("def f (x : Tensor) (y : Tensor) = x @ y")


@SETTINGS
@given(data=st.data(), n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4))
def test_matmul_matrix_matrix(data, n, k, m):
    x = data.draw(arrays((n, k), -5, 5))
    y = data.draw(arrays((k, m), -5, 5))
    close(MATMUL(x, y), np.einsum("ij,jk->ik", x, y))


@SETTINGS
@given(data=st.data(), n=st.integers(1, 4), k=st.integers(1, 4))
def test_matmul_with_vectors(data, n, k):
    a = data.draw(arrays((n, k), -5, 5))
    v = data.draw(arrays((k,), -5, 5))
    w = data.draw(arrays((n,), -5, 5))
    close(MATMUL(a, v), [sum(a[i, j] * v[j] for j in range(k)) for i in range(n)])
    close(MATMUL(w, a), [sum(w[i] * a[i, j] for i in range(n)) for j in range(k)])
    got = MATMUL(v, v)  # 1-D @ 1-D is the inner product, a 0-d result
    assert np.ndim(got) == 0
    np.testing.assert_allclose(float(got), sum(v[j] * v[j] for j in range(k)), **TIGHT)


def test_matmul_batched():
    x = np.arange(24.0).reshape(2, 3, 4)
    y = np.arange(8.0).reshape(4, 2)
    close(MATMUL(x, y), np.einsum("bij,jk->bik", x, y))


# ============================================================== reductions

REDUCE = lamad.loads("""
def s (x : Tensor) = sum x
def m (x : Tensor) = mean x
def sa (a : Int) (x : Tensor) = sum_axis a x
def ma (a : Int) (x : Tensor) = mean_axis a x
def xa (a : Int) (x : Tensor) = max_axis a x
def la (a : Int) (x : Tensor) = logsumexp_axis a x
def sm (a : Int) (x : Tensor) = softmax_axis a x
""")


def test_reduction_types():
    t = {n: str(v) for n, v in REDUCE.types.items()}
    assert t["s"] == t["m"] == "Tensor -> Real"
    for n in ("sa", "ma", "xa", "la", "sm"):
        assert t[n] == "Int -> Tensor -> Tensor"


@SETTINGS
@given(x=arrays(shapes(), -10, 10))
def test_sum_and_mean(x):
    got = REDUCE.s(x)
    assert np.ndim(got) == 0
    np.testing.assert_allclose(float(got), float(np.add.reduce(x.ravel())), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(float(REDUCE.m(x)), float(np.add.reduce(x.ravel())) / x.size, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(data=st.data())
def test_axis_reductions(data):
    x = data.draw(arrays(shapes(min_dims=1), -10, 10))
    axis = data.draw(st.integers(0, x.ndim - 1))
    moved = np.moveaxis(x, axis, -1)  # reduce over the last axis of `moved`, by hand
    total = moved[..., 0].copy()
    biggest = moved[..., 0].copy()
    for i in range(1, moved.shape[-1]):
        total = total + moved[..., i]
        biggest = np.where(moved[..., i] > biggest, moved[..., i], biggest)
    close(REDUCE.sa(axis, x), total, rtol=1e-12, atol=1e-12)
    close(REDUCE.ma(axis, x), total / x.shape[axis], rtol=1e-12, atol=1e-12)
    close(REDUCE.xa(axis, x), biggest)
    exps = np.exp(x)
    close(REDUCE.la(axis, x), np.log(exps.sum(axis=axis)), rtol=1e-12, atol=1e-12)
    close(REDUCE.sm(axis, x), exps / exps.sum(axis=axis, keepdims=True), rtol=1e-12, atol=1e-15)


def test_axis_first_argument():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    close(REDUCE.sa(0, x), [5.0, 7.0, 9.0])
    close(REDUCE.sa(1, x), [6.0, 15.0])
    close(REDUCE.xa(1, x), [3.0, 6.0])
    close(REDUCE.ma(0, x), [2.5, 3.5, 4.5])
    # a negative axis counts from the end, as in NumPy and JAX
    close(value("def f (x : Tensor) = sum_axis (-1) x")(x), [6.0, 15.0])


def test_logsumexp_and_softmax_are_stable():
    x = np.array([[1000.0, 1000.0], [-1000.0, -1001.0]])
    close(REDUCE.la(1, x), [1000.0 + np.log(2.0), -1000.0 + np.log1p(np.exp(-1.0))])
    s = REDUCE.sm(1, x)
    close(s, [[0.5, 0.5], [1.0 / (1.0 + np.exp(-1.0)), np.exp(-1.0) / (1.0 + np.exp(-1.0))]])
    close(REDUCE.sm(0, x).sum(axis=0), [1.0, 1.0])


# ============================================================== shape

SHAPE = lamad.loads("""
def tr (x : Tensor) = transpose x
def rs (x : Tensor) (s : List Int) = reshape x s
def st (xs : List Tensor) = stack xs
def us (x : Tensor) = unstack x
def cc (a : Int) (xs : List Tensor) = concat a xs
def dt (x : Tensor) (y : Tensor) = dot x y
def ou (x : Tensor) (y : Tensor) = outer x y
""")


def test_shape_types():
    t = {n: str(v) for n, v in SHAPE.types.items()}
    assert t == {"tr": "Tensor -> Tensor", "rs": "Tensor -> List Int -> Tensor", "st": "List Tensor -> Tensor",
                 "us": "Tensor -> List Tensor", "cc": "Int -> List Tensor -> Tensor",
                 "dt": "Tensor -> Tensor -> Real", "ou": "Tensor -> Tensor -> Tensor"}


def test_transpose_reverses_axes():
    x = np.arange(24.0).reshape(2, 3, 4)
    got = SHAPE.tr(x)
    assert got.shape == (4, 3, 2)
    for i in range(2):
        for j in range(3):
            for k in range(4):
                assert got[k, j, i] == x[i, j, k]
    m = np.arange(6.0).reshape(2, 3)
    close(SHAPE.tr(m), [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]])
    close(SHAPE.tr(np.array([1.0, 2.0])), [1.0, 2.0])


def test_reshape():
    x = np.arange(6.0)
    close(SHAPE.rs(x, [2, 3]), [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    close(SHAPE.rs(x, [3, 2]), [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    close(SHAPE.rs(np.array([7.0]), []), 7.0)
    close(value("def f = reshape (ones [2, 3]) [6, 1]"), np.ones((6, 1)))


@SETTINGS
@given(data=st.data(), count=st.integers(1, 4))
def test_stack_unstack_concat(data, count):
    shape = data.draw(shapes(max_dims=2))
    xs = [data.draw(arrays(shape, -5, 5)) for _ in range(count)]
    stacked = SHAPE.st(xs)
    assert stacked.shape == (count, *shape)
    for i, x in enumerate(xs):
        close(stacked[i], x)
    parts = SHAPE.us(stacked)
    assert isinstance(parts, list) and len(parts) == count
    for p, x in zip(parts, xs):
        close(p, x)
    if shape:
        axis = data.draw(st.integers(0, len(shape) - 1))
        got = SHAPE.cc(axis, xs)
        want_shape = list(shape)
        want_shape[axis] *= count
        assert got.shape == tuple(want_shape)
        for i, x in enumerate(xs):
            index = [slice(None)] * len(shape)
            index[axis] = slice(i * shape[axis], (i + 1) * shape[axis])
            close(got[tuple(index)], x)


def test_concat_of_different_lengths():
    a, b = np.ones((2, 2)), np.zeros((2, 1))
    close(SHAPE.cc(1, [a, b]), [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    close(SHAPE.cc(0, [np.array([1.0]), np.array([2.0, 3.0])]), [1.0, 2.0, 3.0])


def test_gradient_through_stack_and_concat_of_promoted_reals():
    """A list of Reals given to ``stack`` (Real ≤ Tensor) is differentiable: ←D promotes the
    list of (Real × Real⊥) pairs as the checker promoted the list of Reals."""
    p = lamad.loads("""
def f (a : Real) : Real = sum (stack [a, 2.0 * a, sin a])
def g (a : Real) : Real = sum (square (concat 0 [stack [a], stack [3.0 * a, 1.0]]))
""")
    for a in (-0.7, 1.5):
        close(lamad.grad(p.f)(a), 3.0 + np.cos(a))
        close(lamad.grad(p.g)(a), 2 * a + 18 * a)


@SETTINGS
@given(data=st.data())
def test_dot_and_outer(data):
    n, m = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    x, y, z = (data.draw(arrays((k,), -5, 5)) for k in (n, n, m))
    got = SHAPE.dt(x, y)
    assert np.ndim(got) == 0
    np.testing.assert_allclose(float(got), sum(x[i] * y[i] for i in range(n)), rtol=1e-12, atol=1e-12)
    close(SHAPE.ou(x, z), [[x[i] * z[j] for j in range(m)] for i in range(n)])
    a, b = data.draw(arrays((n, m), -5, 5)), data.draw(arrays((n, m), -5, 5))
    np.testing.assert_allclose(float(SHAPE.dt(a, b)), float((a * b).ravel().sum()), rtol=1e-12, atol=1e-12)


# ============================================================== constructors


def test_zeros_ones_fill_eye():
    p = lamad.loads("def z = zeros [2, 3]\ndef o = ones [4]\ndef f = fill 2.5 [3, 1]\ndef e = eye 3\n"
                    "def s = ones []\ndef g (r : Real) (n : Int) = fill r [n, n]\ndef i = fill 3 [2]")
    close(p.z, np.zeros((2, 3)))
    close(p.o, [1.0, 1.0, 1.0, 1.0])
    close(p.f, [[2.5], [2.5], [2.5]])
    close(p.e, [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)])
    close(p.s, 1.0)
    close(p.g(-1.5, 2), [[-1.5, -1.5], [-1.5, -1.5]])
    close(p.i, [3.0, 3.0])


RANDOM = lamad.loads("def rn (s : Int) (sh : List Int) = randn s sh\ndef un (s : Int) (sh : List Int) = uniform s sh")


@pytest.mark.parametrize("name", ["rn", "un"])
def test_random_constructors_are_deterministic_in_their_seed(name):
    f = RANDOM[name]
    a, b, c = f(0, [3, 4]), f(0, [3, 4]), f(1, [3, 4])
    assert a.shape == (3, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.any(a == c)
    assert len(np.unique(a)) == 12  # the entries are not all the same draw
    assert f(5, [2, 0, 3]).shape == (2, 0, 3)
    assert f(5, []).shape == ()
    # the same seed in a different program gives the same values
    src = "def v = randn 0 [3, 4]" if name == "rn" else "def v = uniform 0 [3, 4]"
    np.testing.assert_array_equal(value(src, "v"), a)


def test_random_distributions():
    u = RANDOM.un(3, [20000])
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1.0 / 12.0) < 0.005
    z = RANDOM.rn(3, [20000])
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03
    assert z.min() < -2.0 and z.max() > 2.0


def test_onehot():
    f = value("def f (n : Int) (labels : Tensor) = onehot n labels")
    labels = np.array([0.0, 2.0, 1.0, 2.0])
    want = np.zeros((4, 3))
    for i, c in enumerate(labels):
        want[i, int(c)] = 1.0
    close(f(3, labels), want)
    grid = np.array([[1.0, 0.0], [3.0, 3.0]])
    got = f(4, grid)
    assert got.shape == (2, 2, 4)
    for i in range(2):
        for j in range(2):
            close(got[i, j], [1.0 if k == grid[i, j] else 0.0 for k in range(4)])


# ============================================================== lists


def test_map_fold_zip_length_range_iterate():
    p = lamad.loads("""
def m (xs : List Real) = map (\\x. x * x) xs
def mt (t : Tensor) = map (\\r. sum r) (unstack t)
def fl (xs : List Int) = fold (\\acc x. acc * 10 + x) 0 xs
def fs (xs : List Real) = fold (\\acc x. acc - x) 100.0 xs
def z (xs : List Int) (ys : List Bool) = zip xs ys
def l (xs : List Real) = length xs
def r (n : Int) = range n
def it (n : Int) (x : Real) = iterate n (\\y. y * 2.0 + 1.0) x
def pairs (n : Int) = map (\\(i, b). if b then i else 0 - i) (zip (range n) (map (\\i. i > 1) (range n)))
""")
    assert [float(v) for v in p.m([1.0, -2.0, 3.0])] == [1.0, 4.0, 9.0]
    assert p.m([]) == []
    t = np.arange(6.0).reshape(3, 2)
    assert [float(v) for v in p.mt(t)] == [1.0, 5.0, 9.0]
    assert p.fl([1, 2, 3]) == 123  # a left fold: ((0*10+1)*10+2)*10+3
    assert p.fl([]) == 0
    assert float(p.fs([1.0, 2.0, 3.0])) == 94.0
    assert p.z([1, 2], [True, False]) == [(1, True), (2, False)]
    assert p.l([1.0, 2.0, 3.0]) == 3 and p.l([]) == 0
    assert p.r(4) == [0, 1, 2, 3] and p.r(0) == []
    x = 0.5
    for _ in range(5):
        x = x * 2.0 + 1.0
    assert float(p.it(5, 0.5)) == x
    assert float(p.it(0, 0.5)) == 0.5
    assert p.pairs(4) == [0, -1, 2, 3]


def test_scan_returns_every_accumulator_of_the_left_fold():
    p = lamad.loads("""
def s (xs : List Real) = scan (\\acc x. acc - x) 100.0 xs
def digits (xs : List Int) = scan (\\acc x. acc * 10 + x) 0 xs
def last (xs : List Real) = fold (\\acc x. acc - x) 100.0 xs
""")
    assert p.types["s"] == lamad.parse_type("List Real -> List Real")
    assert [float(v) for v in p.s([1.0, 2.0, 3.0])] == [100.0, 99.0, 97.0, 94.0]
    assert [float(v) for v in p.s([])] == [100.0]
    assert p.digits([1, 2, 3]) == [0, 1, 12, 123]
    assert float(p.s([4.0, -1.5])[-1]) == float(p.last([4.0, -1.5]))


def test_gradient_through_scan_matches_finite_differences():
    """←D(scan) = scan: differentiating an unrolled recurrence through its history."""
    p = lamad.loads("""
def total (w : Real) : Real = fold (\\acc h. acc + h) 0.0 (scan (\\h x. tanh (w * h + x)) 0.5 [1.0, -2.0, 0.3])
""")

    def total(w):
        h = t = 0.5
        for x in (1.0, -2.0, 0.3):
            h = np.tanh(w * h + x)
            t += h
        return t
    eps = 1e-6
    for w in (-1.3, 0.0, 0.7):
        want = (total(w + eps) - total(w - eps)) / (2 * eps)
        np.testing.assert_allclose(float(lamad.grad(p.total)(w)), want, rtol=1e-7)


def test_zip_of_unequal_lengths_is_a_runtime_error():
    src = "def z (xs : List Int) (ys : List Int) =\n  zip xs ys"
    with pytest.raises(LamRuntimeError) as info:
        value(src, "z")([1, 2], [3])
    assert (info.value.span.line, info.value.span.column) == (2, 3)


# ============================================================== conversions, booleans, if


def test_conversions():
    p = lamad.loads("""
def r (n : Int) = real n
def s (t : Tensor) = scalar t
def a = fst (1, 2.5)
def b = snd (1, 2.5)
def n (v : Bool) = not v
def nested = fst (snd (1, (true, 2)))
""")
    got = p.r(-3)
    assert np.ndim(got) == 0 and got.dtype == np.float64 and float(got) == -3.0
    for shape in [(1,), (1, 1), ()]:
        got = p.s(np.full(shape, 4.5))
        assert np.ndim(got) == 0 and float(got) == 4.5
    assert p.a == 1 and float(p.b) == 2.5
    assert p.n(True) is False and p.n(False) is True
    assert p.nested is True


COMPARE = lamad.loads("\n".join(
    f"def r{i} (x : Real) (y : Real) = x {op} y\ndef i{i} (x : Int) (y : Int) = x {op} y"
    for i, op in enumerate(["<", "<=", ">", ">=", "==", "!="])))
COMPARE_REF = [lambda a, b: a < b, lambda a, b: a <= b, lambda a, b: a > b, lambda a, b: a >= b,
               lambda a, b: a == b, lambda a, b: a != b]


@SETTINGS
@given(x=st.floats(-5, 5), y=st.floats(-5, 5), ints=st.tuples(st.integers(-5, 5), st.integers(-5, 5)),
       tie=st.booleans())
def test_comparisons(x, y, ints, tie):
    if tie:
        y = x
    a, b = ints
    for i, ref in enumerate(COMPARE_REF):
        got = COMPARE[f"r{i}"](x, y)
        assert got is ref(x, y)
        assert COMPARE[f"i{i}"](a, b) is ref(a, b)


def test_boolean_operators():
    p = lamad.loads("def a (x : Bool) (y : Bool) = x && y\ndef o (x : Bool) (y : Bool) = x || y\n"
                    "def e (x : Bool) (y : Bool) = (x == y, x != y)")
    for x in (False, True):
        for y in (False, True):
            assert p.a(x, y) is (x and y)
            assert p.o(x, y) is (x or y)
            assert p.e(x, y) == (x == y, x != y)


def test_boolean_operators_short_circuit():
    p = lamad.loads("""
def a = false && (scalar (ones [2]) > 0.0)
def o = true || (scalar (ones [2]) > 0.0)
def fails = true && (scalar (ones [2]) > 0.0)
""")
    assert p.a is False
    assert p.o is True
    with pytest.raises(LamRuntimeError):  # the right operand really would fail
        p.fails


def test_if_evaluates_one_branch():
    p = lamad.loads("""
def f (x : Real) = if x > 0.0 then x * 2.0 else scalar (ones [2])
def g (b : Bool) (t : Tensor) = if b then t else 0.0 - t
""")
    assert float(p.f(1.5)) == 3.0
    with pytest.raises(LamRuntimeError):
        p.f(-1.0)
    t = np.array([1.0, -2.0])
    close(p.g(True, t), t)
    close(p.g(False, t), -t)


# ============================================================== load


def _program(tmp_path, body: str):
    folder = tmp_path / "prog"
    folder.mkdir(exist_ok=True)
    (folder / "main.lam").write_text(body)
    return folder


def test_load_npy_and_csv_relative_to_the_program(tmp_path, monkeypatch):
    folder = _program(tmp_path, 'def a = load "a.npy"\ndef b = load "data/b.csv"\ndef c = load "c.csv"\n'
                                'def i = load "i.npy"\ndef s = sum (load "a.npy")\n')
    (folder / "data").mkdir()
    a = np.arange(6.0).reshape(2, 3) / 4.0
    np.save(folder / "a.npy", a)
    (folder / "data" / "b.csv").write_text("1,2,3\n4.5,5,6\n")
    (folder / "c.csv").write_text("1.5\n-2.5\n")
    np.save(folder / "i.npy", np.array([1, 2, 3], dtype=np.int64))
    # decoys in the current directory: the paths are relative to the program file, not the cwd
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "a.npy", np.zeros(1))
    prog = lamad.load(folder / "main.lam")
    assert str(prog.types["a"]) == "Tensor"
    close(prog.a, a)
    close(prog.b, [[1.0, 2.0, 3.0], [4.5, 5.0, 6.0]])
    close(prog.c, [1.5, -2.5])
    close(prog.i, [1.0, 2.0, 3.0])  # integer data become float tensors
    assert float(prog.s) == pytest.approx(a.sum())


class _Trap:
    """Unpickling this would create a file: proof that a pickle was executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_refuses_pickles(tmp_path):
    folder = _program(tmp_path, 'def x = 1.0\ndef o = load "o.npy"\n')
    trap = tmp_path / "unpickled"
    np.save(folder / "o.npy", np.array([_Trap(str(trap)), 2], dtype=object), allow_pickle=True)
    assert pickle.loads(pickle.dumps(_Trap(str(tmp_path / "check")))) is not None  # the trap works
    (tmp_path / "check").unlink()
    prog = lamad.load(folder / "main.lam")
    with pytest.raises(LamRuntimeError) as info:
        prog.o
    assert not trap.exists()
    err = info.value
    assert (err.span.line, err.span.column) == (2, 9)
    assert "pickle" in err.message


def test_load_errors(tmp_path):
    src = 'def a = 1.0\ndef m =\n  load "missing.npy"\ndef t = load "x.txt"\n'
    prog = lamad.load(_program(tmp_path, src) / "main.lam")
    with pytest.raises(LamRuntimeError) as info:
        prog.m
    err = info.value
    assert (err.span.line, err.span.column) == (3, 3)
    assert "missing.npy" in err.message
    lines = str(err).split("\n")
    assert lines[0].startswith(f"{tmp_path / 'prog' / 'main.lam'}:3:3: runtime error: 'load'")
    assert lines[1] == '      load "missing.npy"'
    assert lines[2] == "      " + "^" * len('load "missing.npy"')
    with pytest.raises(LamRuntimeError) as info:
        prog.t
    assert (info.value.span.line, info.value.span.column) == (4, 9)
    assert ".npy" in info.value.message and ".csv" in info.value.message


# ============================================================== run-time errors point at the primitive

ERRORS_SRC = """def mm (x : Tensor) (y : Tensor) =
  let z = x @ y in
  sum z
def plus (x : Tensor) (y : Tensor) = 1.0 + sum (x + y)
def sc (t : Tensor) =
  2.0 * scalar t
def ax (a : Int) (t : Tensor) =
    exp (sum_axis a t)
def sm (t : Tensor) = softmax_axis 3 t
def rs (t : Tensor) = reshape t [4, 4]
def dt (x : Tensor) (y : Tensor) = dot x y
"""
ERRORS = lamad.loads(ERRORS_SRC, filename="errors.lam")


def runtime_error(fn, *args) -> LamRuntimeError:
    with pytest.raises(LamRuntimeError) as info:
        fn(*args)
    return info.value


@pytest.mark.parametrize("call, args, line, column, text, words", [
    ("mm", (np.ones((2, 3)), np.ones((2, 3))), 2, 11, "x @ y", ["'@'", "(2, 3)"]),
    ("mm", (np.ones(3), np.ones(4)), 2, 11, "x @ y", ["'@'", "(3,)", "(4,)"]),
    ("plus", (np.ones((3, 4)), np.ones(3)), 4, 49, "x + y", ["'+'", "broadcast"]),
    ("sc", (np.ones(2),), 6, 9, "scalar t", ["'scalar'", "(2,)"]),
    ("sc", (np.ones((1, 2)),), 6, 9, "scalar t", ["'scalar'", "(1, 2)"]),
    ("ax", (2, np.ones((3, 4))), 8, 10, "sum_axis a t", ["'sum_axis'", "axis 2"]),
    ("sm", (np.ones((3, 4)),), 9, 23, "softmax_axis 3 t", ["'softmax_axis'", "axis 3"]),
    ("rs", (np.ones(6),), 10, 23, "reshape t [4, 4]", ["'reshape'"]),
    ("dt", (np.ones(3), np.ones(2)), 11, 36, "dot x y", ["'dot'", "(3,)", "(2,)"]),
])
def test_runtime_errors_point_at_the_primitive(call, args, line, column, text, words):
    err = runtime_error(ERRORS[call], *args)
    assert (err.span.line, err.span.column) == (line, column)
    assert ERRORS_SRC[err.span.start:err.span.end] == text
    for w in words:
        assert w in err.message, (w, err.message)
    head, source_line, caret = str(err).split("\n")
    assert head.startswith(f"errors.lam:{line}:{column}: runtime error: ")
    assert source_line == "    " + ERRORS_SRC.splitlines()[line - 1]
    assert caret == "    " + " " * (column - 1) + "^" * len(text)


def test_runtime_error_in_a_value_definition():
    src = "def one = 1.0\ndef bad = scalar (ones [3])"
    prog = lamad.loads(src)
    err = runtime_error(lambda: prog.bad)
    assert (err.span.line, err.span.column) == (2, 11)
    assert str(err).split("\n")[1:] == ["    def bad = scalar (ones [3])", "              " + "^" * 17]


@pytest.mark.parametrize("src, text", [
    ("def f = stack [ones [2], zeros [3]]", "stack [ones [2], zeros [3]]"),
    ("def f = stack []", "stack []"),
    ("def f = unstack (fill 1.0 [])", "unstack (fill 1.0 [])"),
    ("def f = concat 0 [eye 2, ones [2, 1]]", "concat 0 [eye 2, ones [2, 1]]"),
    ("def f = zeros [2, -1]", "zeros [2, -1]"),
    ("def f = max_axis 0 (zeros [0])", "max_axis 0 (zeros [0])"),
])
def test_other_runtime_errors(src, text):
    err = runtime_error(lambda: value(src))
    assert src[err.span.start:err.span.end] == text
