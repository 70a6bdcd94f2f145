"""The axis operations, einsum, and the elementwise functions beside them
(docs/language.md, "Axes"): values against NumPy's, located errors, the derivatives that
need care (cumprod at zeros, einsum with traces and indices summed in one operand, clip at
its bounds, stop_gradient under nested differentiation), and derivative programs that print
and parse back.  tests/test_prims.py checks every record's rules on its example."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lamad
from lamad import LamRuntimeError
from lamad.prims import axes
from lamad.prims.axes import dual, einsum
from lamad.parser import parse_term
from lamad.types import infer_type
from numeric import assert_derivatives_parse_back, assert_same_gradient, flat, gradient_difference, numeric_gradient

RNG = np.random.default_rng(20240611)
X = RNG.standard_normal((2, 3, 4))
I = np.arange(24).reshape(2, 3, 4)


def run(source: str, *args):
    """``f`` of a one-definition program ``def f … = source`` applied to ``args``."""
    return lamad.loads(source).f(*args)


# ------------------------------------------------------------------ values against NumPy


@pytest.mark.parametrize("term, expected", [
    ("swapaxes 0 2 x", np.swapaxes(X, 0, 2)),
    ("swapaxes (-1) 1 x", np.swapaxes(X, -1, 1)),
    ("moveaxis 0 (-1) x", np.moveaxis(X, 0, -1)),
    ("moveaxis 2 0 x", np.moveaxis(X, 2, 0)),
    ("permute [1, 2, 0] x", np.transpose(X, (1, 2, 0))),
    ("permute [-1, 0, 1] x", np.transpose(X, (2, 0, 1))),
    ("squeeze 1 (expand_dims 1 x)", X),
    ("squeeze (-1) (reshape x [2, 12, 1])", X.reshape(2, 12)),
    ("flip 1 x", np.flip(X, 1)),
    ("flip (-1) x", np.flip(X, -1)),
    ("tile [2, 1, 3] x", np.tile(X, (2, 1, 3))),
    ("tile [2] x", np.tile(X, 2)),
    ("tile [2, 1, 1, 2] x", np.tile(X, (2, 1, 1, 2))),
    ("tile [0, 1, 1] x", np.tile(X, (0, 1, 1))),
    ("repeat 3 1 x", np.repeat(X, 3, axis=1)),
    ("repeat 0 (-1) x", np.repeat(X, 0, axis=-1)),
    ("pad [(1, 0), (0, 2), (1, 1)] x", np.pad(X, [(1, 0), (0, 2), (1, 1)])),
    ("cumsum 1 x", np.cumsum(X, axis=1)),
    ("cumprod (-1) x", np.cumprod(X, axis=-1)),
    ("einsum \"ijk->kji\" [x]", np.einsum("ijk->kji", X)),
    ("einsum \"ijk,ikl->ijl\" [x, swapaxes 1 2 x]", X @ np.swapaxes(X, 1, 2)),
    ("einsum \"ijk,ijk\" [x, x]", np.einsum("ijk,ijk", X, X)),
    ("einsum \"ijk\" [x]", X),
    ("einsum \"kji\" [x]", np.einsum("kji", X)),
    ("einsum \"ijk,l->ikl\" [x, stack [1.0, 2.0]]", np.einsum("ijk,l->ikl", X, [1.0, 2.0])),
])
def test_values_are_numpys(term, expected):
    got = run(f"def f (x : Tensor) : Tensor = {term}", X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("term, expected", [
    ("flip 0 i", np.flip(I, 0)),
    ("swapaxes 0 2 i", np.swapaxes(I, 0, 2)),
    ("moveaxis 0 2 i", np.moveaxis(I, 0, 2)),
    ("permute [2, 0, 1] i", np.transpose(I, (2, 0, 1))),
    ("tile [1, 2, 1] i", np.tile(I, (1, 2, 1))),
    ("repeat 2 0 i", np.repeat(I, 2, axis=0)),
    ("squeeze 0 (tile [1, 1, 1, 1] i > 3)", I > 3),
    ("flip 2 (moveaxis 0 1 (i > 3))", np.flip(np.moveaxis(I > 3, 0, 1), 2)),
])
def test_moving_entries_keeps_integer_arrays_and_masks(term, expected):
    got = run(f"def f (i : IntTensor) = {term}", I)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_elementwise_values_are_numpys_and_erf_is_the_c_librarys():
    x = np.array([-3.5, -1.0, -0.4, 0.0, 0.3, 0.99, 2.0, 6.0])
    p = lamad.loads("def f (x : Tensor) = (sinh x, cosh x, atan x, floor x, ceil x, round x, stop_gradient x, erf x)\n"
                    "def g (x : Tensor) = (asin (x / 7.0), acos (x / 7.0))\n"
                    "def h (y : Tensor) (x : Tensor) = atan2 y x\n"
                    "def c (x : Tensor) = clip (-1.0) 0.5 x\n")
    for got, want in zip(p.f(x), (np.sinh(x), np.cosh(x), np.arctan(x), np.floor(x), np.ceil(x), np.round(x), x,
                                  [math.erf(v) for v in x])):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(p.g(x), (np.arcsin(x / 7), np.arccos(x / 7))):
        np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_array_equal(p.h(x[:, None], x), np.arctan2(x[:, None], x))
    np.testing.assert_array_equal(p.c(x), np.clip(x, -1.0, 0.5))
    np.testing.assert_array_equal(run("def f (x : Tensor) = round x", np.array([0.5, 1.5, 2.5, -0.5])), [0, 2, 2, -0])
    assert run("def f (x : Real) : Real = erf x", 0.5) == math.erf(0.5)


# ------------------------------------------------------------------ located errors


@pytest.mark.parametrize("term, message", [
    ("swapaxes 0 3 x", "axis 3 is out of range for a tensor of rank 3 (shape (2, 3, 4)): its axes are 0 to 2"),
    ("moveaxis (-4) 0 x", "axis -4 is out of range for a tensor of rank 3"),
    ("permute [0, 0, 1] x", "[0, 0, 1] is not a permutation of the axes of a tensor of rank 3"),
    ("permute [1, 0] x", "[1, 0] is not a permutation of the axes of a tensor of rank 3"),
    ("squeeze 1 x", "cannot squeeze axis 1 of a tensor of shape (2, 3, 4): its length is 3, not 1"),
    ("flip 3 x", "axis 3 is out of range"),
    ("tile [2, -1] x", "a repetition count of tile is negative: -1"),
    ("repeat (-2) 0 x", "the repetition count of repeat is negative: -2"),
    ("repeat 2 5 x", "axis 5 is out of range"),
    ("pad [(1, 1)] x", "1 pair of widths for a tensor of rank 3 (shape (2, 3, 4)): pad takes one (before, after) "
                       "pair per axis"),
    ("pad [(1, 1), (0, -1), (0, 0)] x", "a width of pad is negative: -1"),
    ("cumsum 3 x", "axis 3 is out of range"),
    ("cumprod (-4) x", "axis -4 is out of range"),
    ("einsum \"ij,jk->ik\" [x]", "subscripts 'ij,jk->ik' name 2 operands, but the list holds 1 tensor"),
    ("einsum \"ij->i\" [x]", "operand 1 has shape (2, 3, 4), but its subscripts 'ij' name 2 axes"),
    ("einsum \"ijk,ijk->i\" [x, swapaxes 0 1 x]", "the index 'i' has length 2 in operand 1 and 3 in operand 2"),
    ("einsum \"...k->k\" [x]", "'...' is not supported; name every axis with a letter"),
    ("einsum \"ijk->ii\" [x]", "the index 'i' occurs twice in the output"),
    ("einsum \"ijk->l\" [x]", "the output index 'l' occurs in no operand"),
    ("einsum \"ij1->i\" [x]", "unexpected '1'"),
    ("einsum \"ijk->i->j\" [x]", "more than one '->'"),
])
def test_bad_axes_shapes_counts_and_subscripts_are_located_errors(term, message):
    source = f"def f (x : Tensor) : Tensor =\n    {term}\n"
    with pytest.raises(LamRuntimeError) as info:
        run(source, X)
    assert message in info.value.message
    assert info.value.span is not None and info.value.span.line == 2 and info.value.span.column == 5


def test_an_error_in_a_derivative_is_located_at_the_primitive():
    """A bad axis found while the gradient runs (the axis is an argument of the function) is
    an error at the application, not a traceback."""
    p = lamad.loads("def f (x : Tensor) (k : Int) : Real =\n    sum (cumprod k x)\n"
                    "def g (x : Tensor) (k : Int) = grad (\\y. f y k) x\n")
    with pytest.raises(LamRuntimeError) as info:
        p.g(X, 7)
    assert "axis 7 is out of range" in info.value.message and info.value.span.line == 2


# ------------------------------------------------------------------ cumprod where entries are 0


ZEROS = [np.array([2.0, 0.0, 3.0, -1.5, 0.5]), np.array([0.0, 0.0, 1.5, 2.0, -1.0]),
         np.array([1.5, -2.0, 0.7, 1.2, 0.0]), np.array([0.0, 1.3, -0.8, 2.0, 0.9])]


def _cumprod_jacobian(x: np.ndarray) -> np.ndarray:
    """``∂y_k/∂x_j = Π_(l≤k, l≠j) x_l`` for ``j ≤ k``: the exact derivative, JAX's."""
    n = len(x)
    return np.array([[np.prod(np.delete(x[:k + 1], j)) if j <= k else 0.0 for j in range(n)] for k in range(n)])


@pytest.mark.parametrize("x", ZEROS, ids=["one zero", "two zeros", "last zero", "first zero"])
def test_cumprod_derivatives_are_exact_where_entries_are_zero(x):
    """The gradient and the tangents equal the exact Jacobian's (no 0/0 from dividing by x),
    and the gradient equals finite differences; the Hessian-vector product too."""
    weights = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
    p = lamad.loads("def f (w : Tensor) (x : Tensor) : Real = sum (w * sin (cumprod 0 x))\n"
                    "def g (w : Tensor) (x : Tensor) = grad (f w) x\n"
                    "def h (w : Tensor) (x : Tensor) (v : Tensor) = hvp (f w) x v\n"
                    "def c (x : Tensor) = cumprod 0 x\n")
    jacobian = _cumprod_jacobian(x)
    np.testing.assert_allclose(p.g(weights, x), jacobian.T @ (weights * np.cos(np.cumprod(x))), rtol=1e-13, atol=1e-15)
    assert_same_gradient(p.g(weights, x), numeric_gradient(lambda z: p.f(weights, z), x))
    for j in range(len(x)):
        _, tangent = lamad.jvp(p.c, (x,), (np.eye(len(x))[j],))
        np.testing.assert_allclose(tangent, jacobian[:, j], rtol=1e-13, atol=1e-15)
    v = RNG.standard_normal(len(x))
    np.testing.assert_allclose(p.h(weights, x, v), gradient_difference(lambda z: p.g(weights, z), (x,), (v,)),
                               rtol=1e-6, atol=1e-7)


def test_cumprod_of_a_long_axis_matches_the_exact_jacobian_along_a_matrix():
    """The associative scan of a length that is no power of two, along axis 1 of a matrix."""
    x = RNG.uniform(0.5, 1.5, size=(3, 37))
    x[1, 5] = x[2, 0] = x[2, 36] = 0.0
    a = RNG.standard_normal(x.shape)
    got = lamad.grad(lamad.loads("def f (x : Tensor) (a : Tensor) : Real = sum (a * cumprod 1 x)").f)(x, a)
    for row in range(3):
        np.testing.assert_allclose(got[row], _cumprod_jacobian(x[row]).T @ a[row], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ einsum


EINSUMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),  # matrix product
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),  # batched
    ("ii->", [(3, 3)]),  # trace: a repeated index
    ("ii->i", [(3, 3)]),  # diagonal
    ("iii->i", [(2, 2, 2)]),
    ("ij,ji->", [(2, 3), (3, 2)]),  # trace of a product
    ("ij->", [(2, 3)]),  # every index summed in the one operand
    ("ij,k->ik", [(2, 3), (4,)]),  # j summed in operand 1 alone, k in operand 2 alone
    ("iij,j->i", [(3, 3, 2), (2,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]),  # three operands
    ("ij,jk", [(2, 3), (3, 2)]),  # implicit output
    ("i,i", [(3,), (3,)]),
    (",i->i", [(), (3,)]),  # a Real operand
]


def _einsum_program(spec: str, k: int) -> lamad.LoadedProgram:
    names = [f"x{i}" for i in range(k)]
    tuple_type = " * ".join(["Tensor"] * k)
    pattern = f"({', '.join(names)})" if k > 1 else names[0]
    return lamad.loads(
        f"def f (xs : {tuple_type}) : Real = let {pattern} = xs; y = einsum \"{spec}\" [{', '.join(names)}] "
        "in sum (y * y * y)\n"
        f"def g (xs : {tuple_type}) = grad f xs\n"
        f"def h (xs : {tuple_type}) (v : {tuple_type}) = hvp f xs v\n"
        f"def rf (xs : {tuple_type}) (v : {tuple_type}) = grad (\\z. snd (jvp f z v)) xs\n")


@pytest.mark.parametrize("spec, shapes", EINSUMS, ids=[s for s, _ in EINSUMS])
def test_einsum_gradients_and_second_derivatives_match_finite_differences(spec, shapes):
    """grad, forward-over-reverse (hvp) and reverse-over-forward of ``sum (einsum …)³``
    against finite differences: the derivatives of einsums (themselves einsums, with the
    identity masks of repeated and lone indices) are right at first and second order."""
    p = _einsum_program(spec, len(shapes))
    xs = tuple(RNG.standard_normal(s) for s in shapes)
    v = tuple(RNG.standard_normal(s) for s in shapes)
    if len(shapes) == 1:
        xs, v = xs[0], v[0]
    assert_same_gradient(p.g(xs), numeric_gradient(p.f, xs), rtol=1e-5, where=spec)
    hessian_v = gradient_difference(p.g, (xs,), (v,))
    np.testing.assert_allclose(flat(p.h(xs, v)), hessian_v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flat(p.rf(xs, v)), hessian_v, rtol=1e-5, atol=1e-6)


def test_einsum_values_match_numpy_on_the_cases_differentiated():
    for spec, shapes in EINSUMS:
        xs = [RNG.standard_normal(s) for s in shapes]
        names = ", ".join(f"x{i}" for i in range(len(xs)))
        params = " ".join(f"(x{i} : Tensor)" for i in range(len(xs)))
        got = run(f"def f {params} = einsum \"{spec}\" [{names}]", *xs)
        np.testing.assert_allclose(got, np.einsum(spec, *xs), rtol=1e-13, err_msg=spec)


@pytest.mark.parametrize("spec, i, subscripts, masks", [
    ("ij,jk->ik", 0, "ik,jk->ij", ()),
    ("ij,jk->ik", 1, "ij,ik->jk", ()),
    ("ii->", 0, ",ia->ia", ((0, "ia"),)),
    ("ij->i", 0, "i,j->ij", ((1, "j"),)),
    ("iij,j->i", 0, "i,j,ia->iaj", ((0, "ia"),)),
])
def test_the_dual_of_an_einsum_is_an_einsum_with_identity_masks(spec, i, subscripts, masks):
    """The transposed derivative in operand ``i``: the cotangent in its place, an identity
    over the copies of a repeated index, ones over an index summed in that operand alone."""
    d = dual(spec, i)
    assert str(d.subscripts) == subscripts and d.masks == masks


def test_einsum_is_the_matrix_product_with_its_gradients():
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 5))
    c = RNG.standard_normal((4, 5))
    p = lamad.loads("def f (a : Tensor) (b : Tensor) (c : Tensor) : Real = sum (c * einsum \"ij,jk->ik\" [a, b])\n"
                    "def m (a : Tensor) (b : Tensor) (c : Tensor) : Real = sum (c * (a @ b))\n")
    got = lamad.grad(p.f, argnums=(0, 1))(a, b, c)
    np.testing.assert_allclose(got[0], c @ b.T, rtol=1e-13)
    np.testing.assert_allclose(got[1], a.T @ c, rtol=1e-13)
    assert_same_gradient(got, lamad.grad(p.m, argnums=(0, 1))(a, b, c), rtol=1e-13, atol=1e-15)


def test_einsum_over_a_list_argument():
    """The operands need not be a list literal: a list the function takes, mapped."""
    p = lamad.loads("def f (xs : List Tensor) : Real = scalar (einsum \"i,i->\" (map (\\x. x * x) xs))")
    xs = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    gradient = lamad.grad(p.f)(xs)
    np.testing.assert_array_equal(gradient[0], 2 * xs[0] * xs[1] ** 2)
    np.testing.assert_array_equal(gradient[1], 2 * xs[1] * xs[0] ** 2)
    assert lamad.jvp(p.f, (xs,), ([np.ones(2), np.zeros(2)],))[1] == np.sum(2 * xs[0] * xs[1] ** 2)


def test_einsum_of_one_tensor_twice_sums_both_cotangents():
    x = RNG.standard_normal(4)
    np.testing.assert_allclose(lamad.grad(lamad.loads("def f (x : Tensor) : Real = scalar (einsum \"i,i->\" [x, x])").f)(x),
                               2 * x, rtol=1e-14)


def test_einsum_does_not_compute_the_cotangent_of_a_constant_operand(monkeypatch):
    """The gradient in ``v`` of an einsum of data and ``v`` computes two einsums, the value
    and ``v``'s cotangent: the cotangent of the data (a free variable of the function
    differentiated, a constant) is never computed, as for ``@``."""
    calls = []

    def counted(ext, spec, xs):
        calls.append(spec)
        return einsum(ext, spec, xs)
    monkeypatch.setattr(axes, "einsum", counted)
    p = lamad.loads("def f (w : Tensor) (data : Tensor) = grad (\\v. sum (einsum \"ij,jk->ik\" [data, v])) w")
    w, data = RNG.standard_normal((3, 2)), RNG.standard_normal((4, 3))
    np.testing.assert_allclose(p.f(w, data), np.repeat(data.sum(axis=0)[:, None], 2, axis=1), rtol=1e-13)
    assert calls == ["ij,jk->ik", "ij,ik->jk"]


# ------------------------------------------------------------------ clip at its bounds, stop_gradient


@pytest.mark.parametrize("x, lo, hi, expected", [
    (0.3, 0.0, 1.0, (0.0, 0.0, 1.0)),  # strictly inside: the derivative is x's
    (-0.5, 0.0, 1.0, (1.0, 0.0, 0.0)),  # below: lo's
    (1.5, 0.0, 1.0, (0.0, 1.0, 0.0)),  # above: hi's
    (0.0, 0.0, 1.0, (0.5, 0.0, 0.5)),  # at lo: max x lo ties, split equally, as JAX
    (1.0, 0.0, 1.0, (0.0, 0.5, 0.5)),  # at hi: min ties
    (0.5, 0.5, 0.5, (0.25, 0.5, 0.25)),  # lo = hi = x: both tie
])
def test_clip_derivative_inside_outside_and_at_the_bounds(x, lo, hi, expected):
    p = lamad.loads("def f (lo : Real) (hi : Real) (x : Real) : Real = clip lo hi x")
    assert lamad.grad(p.f, argnums=(0, 1, 2))(lo, hi, x) == pytest.approx(expected, abs=0)
    tangents = [lamad.jvp(p.f, (lo, hi, x), tuple(float(i == j) for j in range(3)))[1] for i in range(3)]
    assert tangents == pytest.approx(list(expected), abs=0)


def test_clip_of_a_tensor_sums_the_derivative_of_its_bounds():
    x = np.array([-2.0, -0.5, 0.2, 0.9, 3.0])
    grads = lamad.grad(lamad.loads("def f (lo : Real) (hi : Real) (x : Tensor) : Real = sum (clip lo hi x)").f,
                       argnums=(0, 1, 2))(-1.0, 1.0, x)
    assert float(grads[0]) == 1.0 and float(grads[1]) == 1.0
    np.testing.assert_array_equal(grads[2], [0.0, 1.0, 1.0, 1.0, 0.0])


def test_stop_gradient_is_a_constant_at_every_order():
    """``f x = x² · stop_gradient x``: the value is x³, the derivatives see x² · c, so
    f' = 2x · x, and the Hessian (by hvp, forward over reverse, and by reverse over
    reverse) is 2x: the stopped factor never contributes."""
    p = lamad.loads("def f (x : Real) : Real = x * x * stop_gradient x\n"
                    "def g (x : Real) = grad f x\n"
                    "def h (x : Real) = hvp f x 1.0\n"
                    "def rr (x : Real) = grad (grad f) x\n"
                    "def t (x : Real) = snd (jvp f x 1.0)\n"
                    "def k (x : Tensor) = grad (\\z. sum (stop_gradient (z * z) * z)) x\n")
    assert p.f(3.0) == 27.0
    assert p.g(3.0) == 18.0 and p.t(3.0) == 18.0
    assert p.h(3.0) == 6.0 and p.rr(3.0) == 6.0
    np.testing.assert_array_equal(p.k(np.array([1.0, -2.0])), [1.0, 4.0])


# ------------------------------------------------------------------ derivative programs


NEW = ["swapaxes 0 2 x", "moveaxis 0 2 x", "permute [2, 0, 1] x", "squeeze 1 (expand_dims 1 x)", "flip 1 x",
       "tile [1, 2, 1] x", "repeat 2 1 x", "pad [(0, 1), (1, 1), (0, 0)] x", "cumsum 2 x", "cumprod 2 x",
       "einsum \"ijk,ijl->kl\" [x, x]", "einsum \"iij->j\" [take 0 (reshape x [1, 2, 2, 6])]", "clip (-0.5) 0.5 x",
       "erf x", "atan2 x (x * x + 1.0)", "asin (tanh x)", "acos (tanh x)", "sinh x + cosh x + atan x",
       "floor x + ceil x + round x + stop_gradient x"]


@pytest.mark.parametrize("term", NEW)
def test_derivative_programs_print_and_parse_back(term):
    """←D and →D of a function that uses each primitive, raw and simplified, print in
    Unicode and ASCII and parse back to a term of the transformed type."""
    assert_derivatives_parse_back(f"def f (x : Tensor) : Real = sum ({term})")



@pytest.mark.parametrize("source, expected", [
    ("\\(i : IntTensor). permute [1, 0] i", "IntTensor -> IntTensor"),
    ("\\(x : Tensor). permute [1, 0] x + 1.0", "Tensor -> Tensor"),
    ("map (tile [2]) [arange 2]", "List IntTensor"),
    ("pad [(1, 0)] (stack [1.0])", "Tensor"),
    ("einsum \"i,i\" [stack [1.0], 2.0]", "Tensor"),
])
def test_types_with_lists_of_ints_and_overloads(source, expected):
    """The list literals of axes, repetitions and widths type-check where an overloaded
    primitive takes them, before and after the array's type is known."""
    assert str(infer_type(parse_term(source))) == expected


GUARDED = """
def f (x : Tensor) : Real =
    let m = reshape x [2, 3];
        e = einsum "ij,kj->ik" [m, m] + einsum "ii->i" [einsum "ij,kj->ik" [m, m]]
    in sum (cumprod 1 (tile [1, 2] m)) + sum (cumsum 0 (repeat 2 1 (flip 0 m))) + sum (e * e)
       + sum (pad [(1, 0), (0, 2)] (swapaxes 0 1 m) * moveaxis 0 1 (pad [(1, 1), (0, 1)] m))
       + sum (permute [1, 0] (squeeze 0 (expand_dims 0 m))) + sum (clip (-0.5) 0.5 x * atan2 x 2.0)
       + sum (asin (0.5 * tanh x) + acos (0.5 * tanh x) + atan x + sinh x + cosh x + round x * stop_gradient x)
def run = let x = stack [0.3, 0.0, -1.2, 0.7, 0.5, 2.0] in (f x, grad f x, hvp f x (ones [6]))
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_new_primitives_make_no_hidden_host_copies_and_keep_the_dtype(dtype):
    """On a namespace that refuses every implicit copy to the host (CuPy's shape, see
    tests/test_backend.py), values, gradients and Hessian-vector products of the new
    primitives are NumPy's, of the run's dtype (erf is CuPy's own there, not checked)."""
    from test_backend import guarded, to_numpy

    result = to_numpy(guarded(GUARDED, dtype).value("run"))
    expected = lamad.loads(GUARDED).value("run")
    for got, want in zip(result, expected):
        assert np.asarray(got).dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == "float64" else 1e-4)
