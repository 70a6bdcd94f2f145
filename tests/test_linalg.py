"""Linear algebra (docs/language.md, "Linear algebra"): values against NumPy's, on
matrices and on stacks of them; the conventions (cholesky and eigh read the lower
triangle, triangular_solve its triangle, slogdet's sign has no derivative, eigh's
eigenvectors are checked through functions that do not depend on their signs); gradients
and tangents of stacks and of broadcast systems against finite differences; second
derivatives (hvp) of solve, cholesky and det; located errors; no hidden host copies.
tests/test_prims.py checks every record's rules on its example."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import lamad
from lamad import LamRuntimeError
from numeric import (
    assert_derivatives_parse_back, assert_same_gradient, directional_difference, flat, gradient_difference, host,
    numeric_gradient,
)
from test_prims import BACKENDS

RNG = np.random.default_rng(20240612)


def well_conditioned(*shape: int) -> np.ndarray:
    """Random square matrices (the last two axes), 3 I added: far from singular."""
    return RNG.standard_normal(shape) + 3.0 * np.eye(shape[-1])


def positive_definite(*shape: int) -> np.ndarray:
    """Random symmetric positive definite matrices ``x xᵀ + I``."""
    x = RNG.standard_normal(shape)
    return x @ np.swapaxes(x, -1, -2) + np.eye(shape[-1])


def with_garbage_above(a: np.ndarray) -> np.ndarray:
    """``a``'s lower triangle, and random numbers above the diagonal."""
    return np.tril(a) + np.triu(RNG.standard_normal(a.shape), 1)


A, AS, A4 = well_conditioned(3, 3), well_conditioned(2, 3, 3), well_conditioned(2, 1, 3, 3)
V, B, BS, B4 = RNG.standard_normal(3), RNG.standard_normal((3, 2)), RNG.standard_normal((2, 3, 2)), \
    RNG.standard_normal((4, 3, 1))
S, SS = positive_definite(3, 3), positive_definite(2, 3, 3)
TALL, TALLS = RNG.standard_normal((5, 3)), RNG.standard_normal((2, 4, 3))


def run(source: str, *args):
    """``f`` of a one-definition program ``def f … = source`` applied to ``args``."""
    return lamad.loads(source).f(*args)


def apply(term: str, *args):
    """``term`` over the Tensors ``a`` (and ``b``), applied to ``args``."""
    params = " ".join(f"({n} : Tensor)" for n in "ab"[:len(args)])
    return run(f"def f {params} = {term}\n", *args)


# ------------------------------------------------------------------ values against NumPy


def _mT(x):
    return np.swapaxes(x, -1, -2)


@pytest.mark.parametrize("term, args, expected", [
    ("solve a b", (A, V), np.linalg.solve(A, V)),
    ("solve a b", (A, B), np.linalg.solve(A, B)),
    ("solve a b", (AS, V), np.linalg.solve(AS, V)),  # a vector b with a stack: NumPy 2's rule
    ("solve a b", (AS, BS), np.linalg.solve(AS, BS)),
    ("solve a b", (A, BS), np.linalg.solve(A, BS)),
    ("solve a b", (AS, B), np.linalg.solve(AS, B)),
    ("solve a b", (A4, B4), np.linalg.solve(A4, B4)),  # stacks (2, 1) and (4,) broadcast to (2, 4)
    ("triangular_solve true a b", (A, V), np.linalg.solve(np.tril(A), V)),
    ("triangular_solve false a b", (A, B), np.linalg.solve(np.triu(A), B)),
    ("triangular_solve true a b", (AS, BS), np.linalg.solve(np.tril(AS), BS)),
    ("triangular_solve false a b", (A4, B4), np.linalg.solve(np.triu(A4), B4)),
    ("inv a", (A,), np.linalg.inv(A)),
    ("inv a", (AS,), np.linalg.inv(AS)),
    ("det a", (A,), np.linalg.det(A)),
    ("slogdet a", (A,), tuple(np.linalg.slogdet(A))),
    ("slogdet a", (-A,), tuple(np.linalg.slogdet(-A))),  # a negative determinant: sign -1
    ("cholesky a", (S,), np.linalg.cholesky(S)),
    ("cholesky a", (SS,), np.linalg.cholesky(SS)),
    ("eigh a", (S,), tuple(np.linalg.eigh(S))),
    ("eigh a", (SS,), tuple(np.linalg.eigh(SS))),
    ("qr a", (A,), tuple(np.linalg.qr(A))),
    ("qr a", (TALL,), tuple(np.linalg.qr(TALL))),
    ("qr a", (TALLS,), tuple(np.linalg.qr(TALLS))),
    ("matrix_transpose a", (TALLS,), _mT(TALLS)),
    ("diag a", (AS,), np.diagonal(AS, axis1=-2, axis2=-1)),
    ("diag_embed a", (B,), np.stack([np.diag(row) for row in B])),
    ("tril a", (TALLS,), np.tril(TALLS)),
    ("triu a", (TALL,), np.triu(TALL)),
])
def test_values_are_numpys(term, args, expected):
    got = apply(term, *args)
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    else:
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_decompositions_reconstruct_their_matrix():
    """L Lᵀ = S, V diag(w) Vᵀ = S with orthonormal V and ascending w, Q R = A with
    orthonormal Q and upper triangular R; a singular matrix's slogdet is (0, -inf)."""
    l = apply("cholesky a", SS)
    np.testing.assert_allclose(l @ _mT(l), SS, rtol=1e-12)
    assert not np.triu(l, 1).any() and (np.diagonal(l, axis1=-2, axis2=-1) > 0).all()
    w, v = apply("eigh a", SS)
    np.testing.assert_allclose(v * w[..., None, :] @ _mT(v), SS, rtol=1e-12)
    np.testing.assert_allclose(_mT(v) @ v, np.broadcast_to(np.eye(3), SS.shape), atol=1e-14)
    assert (np.diff(w, axis=-1) > 0).all()
    q, r = apply("qr a", TALLS)
    assert q.shape == (2, 4, 3) and r.shape == (2, 3, 3)
    np.testing.assert_allclose(q @ r, TALLS, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_mT(q) @ q, np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-14)
    assert not np.tril(r, -1).any()
    sign, log_abs = apply("slogdet a", np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert sign == 0.0 and log_abs == -np.inf


# ------------------------------------------------------------------ which triangle is read


LOWER = np.tril(np.ones((3, 3), dtype=bool))


@pytest.mark.parametrize("term, a", [("cholesky a", SS), ("let (w, v) = eigh a in w + sum_axis 1 (square v)", SS),
                                     ("triangular_solve true a (ones [3])", AS)])
def test_only_the_lower_triangle_is_read(term, a):
    """Numbers above the diagonal change neither the value nor anything else: the
    gradient is zero there, and not on and below the diagonal."""
    np.testing.assert_array_equal(apply(term, with_garbage_above(a)), apply(term, a))
    gradient = lamad.grad(lamad.loads(f"def f (a : Tensor) : Real = sum (sin ({term}))\n").f)(a)
    assert not gradient[..., ~LOWER].any() and gradient[..., LOWER].all()


def test_triangular_solve_upper_reads_the_upper_triangle():
    garbage_below = np.triu(AS) + np.tril(RNG.standard_normal(AS.shape), -1)
    np.testing.assert_array_equal(apply("triangular_solve false a b", garbage_below, BS),
                                  apply("triangular_solve false a b", AS, BS))
    gradient = lamad.grad(lamad.loads("def f (a : Tensor) : Real = sum (triangular_solve false a (ones [3, 2]))").f)(AS)
    assert not gradient[..., ~LOWER.T].any() and gradient[..., LOWER.T].all()


def test_cholesky_of_a_symmetric_matrix_has_numpys_derivative_along_symmetric_directions():
    """For a symmetric S and a symmetric direction D, the tangent is the central
    difference of NumPy's own cholesky (which knows nothing of lamad's convention), and the
    gradient of a function of S built symmetric (x xᵀ + I) is the finite difference of the
    same function computed by NumPy."""
    d = RNG.standard_normal((3, 3))
    d = d + d.T
    p = lamad.loads("def f (s : Tensor) : Tensor = cholesky s\n"
                    "def g (x : Tensor) : Real = sum (sin (cholesky (x @ transpose x + eye 3)))\n")
    _, tangent = lamad.jvp(p.f, (S,), (d,))
    np.testing.assert_allclose(tangent, (np.linalg.cholesky(S + 1e-6 * d) - np.linalg.cholesky(S - 1e-6 * d)) / 2e-6,
                               rtol=1e-6, atol=1e-8)
    x = RNG.standard_normal((3, 3))
    numeric = numeric_gradient(lambda z: np.sin(np.linalg.cholesky(z @ z.T + np.eye(3))).sum(), x)
    assert_same_gradient(lamad.grad(p.g)(x), numeric)


# ------------------------------------------------------------------ eigh: functions independent of the signs


def _top_projection(s: np.ndarray, w: np.ndarray) -> float:
    """⟨v vᵀ, W⟩ for the eigenvector v of the largest eigenvalue of S, by NumPy."""
    v = np.linalg.eigh(s)[1][..., -1]
    return float(np.sum(v[..., :, None] * v[..., None, :] * w))


def test_eigenvector_derivatives_are_right_up_to_sign():
    """The projection on the top eigenvector and the squares of the eigenvectors' entries
    do not depend on the signs NumPy chooses: their gradients are the finite differences
    of the same functions computed by NumPy, for a matrix and a stack (the eigenvalues of
    these matrices are well apart)."""
    p = lamad.loads("def top (s : Tensor) (w : Tensor) : Real =\n"
                    "  let v = (snd (eigh s))[..., -1] in sum (expand_dims (-1) v * expand_dims (-2) v * w)\n"
                    "def squares (s : Tensor) (w : Tensor) : Real =\n"
                    "  let (e, v) = eigh s in sum (e * e) + sum (square v * w)\n")
    for s in (S, SS):
        w = RNG.standard_normal(s.shape)
        gaps = np.diff(np.linalg.eigvalsh(s), axis=-1)
        assert gaps.min() > 0.3, gaps
        assert_same_gradient(lamad.grad(p.top)(s, w), numeric_gradient(lambda z: _top_projection(z, w), s))
        e = lambda z: np.linalg.eigh(z)  # noqa: E731
        assert_same_gradient(lamad.grad(p.squares)(s, w),
                             numeric_gradient(lambda z: np.sum(e(z)[0] ** 2) + np.sum(e(z)[1] ** 2 * w), s))


def test_symmetric_functions_of_repeated_eigenvalues_differentiate_and_eigenvectors_are_nan_there():
    """The sum of the eigenvalues and of their squares do not tell equal eigenvalues apart:
    their gradients at S = Q diag(1, 1, 3) Qᵀ are those of tr S and of |S|² as functions
    of the lower triangle (``unsym_lower`` of I and of 2 S). The eigenvectors' derivative
    does not exist there: where the computed eigenvalues are equal (diag (1, 1, 3)) it is NaN,
    with a warning, as JAX's and PyTorch's."""
    q = np.linalg.qr(RNG.standard_normal((3, 3)))[0]
    s = q @ np.diag([1.0, 1.0, 3.0]) @ q.T
    p = lamad.loads("def trace (s : Tensor) : Real = sum (fst (eigh s))\n"
                    "def squares (s : Tensor) : Real = sum (square (fst (eigh s)))\n"
                    "def v (s : Tensor) : Real = sum ((snd (eigh s))[0])\n")
    np.testing.assert_allclose(lamad.grad(p.trace)(s), np.eye(3), atol=1e-14)
    np.testing.assert_allclose(lamad.grad(p.squares)(s), np.tril(4.0 * s) - np.diag(np.diag(2.0 * s)), atol=1e-13)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert np.isnan(lamad.grad(p.v)(np.diag([1.0, 1.0, 3.0]))).any()
    assert any("divide by zero in 'inverse_gaps'" in str(w.message) for w in caught)


# ------------------------------------------------------------------ slogdet and det


def test_slogdet_sign_has_no_derivative_and_log_abs_det_has_the_inverse_transposed():
    """∂ log |det A| / ∂A = A⁻ᵀ, at positive and negative determinants; the sign's
    gradient is zero."""
    p = lamad.loads("def logabs (a : Tensor) : Real = snd (slogdet a)\n"
                    "def sign (a : Tensor) : Real = fst (slogdet a)\n"
                    "def det_ (a : Tensor) : Real = det a\n")
    for a in (A, -A):
        np.testing.assert_allclose(lamad.grad(p.logabs)(a), np.linalg.inv(a).T, rtol=1e-12)
        np.testing.assert_allclose(lamad.grad(p.det_)(a), np.linalg.det(a) * np.linalg.inv(a).T, rtol=1e-12)
        assert not lamad.grad(p.sign)(a).any()


# ------------------------------------------------------------------ stacks and broadcasting, by finite differences


STACKS = [
    ("sum (sin (solve a b))", (AS, V)),
    ("sum (sin (solve a b))", (A, BS)),
    ("sum (sin (solve a b))", (A4, B4)),
    ("sum (sin (triangular_solve true a b))", (AS, V)),
    ("sum (sin (triangular_solve false a b))", (A, BS)),
    ("sum (sin (inv a))", (AS,)),
    ("sum (sin (cholesky (a @ matrix_transpose a + 3.0 * eye 3)))", (AS,)),
    ("let (w, v) = eigh (a + matrix_transpose a + 4.0 * diag_embed (real (arange 3))) in sum (sin w) + sum (v * v * b)",
     (AS, BS[..., :1] + np.zeros((2, 3, 3)))),
    ("let (q, r) = qr a in sum (sin q) + sum (sin r)", (TALLS,)),
    ("sum (sin (tril a + triu (matrix_transpose a) + diag_embed (diag a)))", (AS,)),
]


@pytest.mark.parametrize("term, args", STACKS, ids=[t for t, _ in STACKS])
def test_stacks_and_broadcast_systems_differentiate_as_finite_differences(term, args):
    """Gradients (←D) and tangents (→D) of functions of stacks of matrices, and of systems
    whose stacks broadcast (the gradient summed down to each operand's shape)."""
    params = " ".join(f"({n} : Tensor)" for n in "ab"[:len(args)])
    f = lamad.loads(f"def f {params} : Real = {term}\n").f
    gradients = lamad.grad(f, argnums=tuple(range(len(args))))(*args)
    for i, got in enumerate(gradients):
        numeric = numeric_gradient(lambda x, i=i: f(*args[:i], x, *args[i + 1:]), args[i])
        assert_same_gradient(got, numeric, where=f"∂{'ab'[i]}")
    direction = tuple(RNG.standard_normal(np.shape(x)) for x in args)
    _, tangent = lamad.jvp(f, args, direction)
    np.testing.assert_allclose(flat(tangent), directional_difference(f, args, direction), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ second order


SECOND = [
    "sum (sin (solve a (ones [3, 2])))",
    "sum (sin (solve (eye 3 + 0.1 * a) (diag a)))",
    "sum (sin (triangular_solve true a (matrix_transpose a)))",
    "sum (sin (inv a))",
    "sum (sin (cholesky (a @ matrix_transpose a + 3.0 * eye 3)))",
    "sum (log (diag (cholesky (a @ matrix_transpose a + eye 3))))",
    "let s = stack [a, matrix_transpose a] in sum (sin (cholesky (s @ matrix_transpose s + 3.0 * eye 3)))",
    "det a",
    "det (a @ a) * det a",
    "snd (slogdet a) * sum a",
    "let (w, v) = eigh (a + matrix_transpose a + 4.0 * diag_embed (real (arange 3))) in\n"
    "  sum (sin w) + sum (square v * a)",
    "let (q, r) = qr (stack [a, a @ a]) in sum (sin q) + sum (sin r)",
]


@pytest.mark.parametrize("term", SECOND)
def test_second_derivatives_are_finite_differences_of_the_gradient(term):
    """hvp (forward over reverse) and grad of grad's directional derivative (reverse over
    reverse, through the rules' own rules) are the central difference of the gradient."""
    p = lamad.loads(f"def f (a : Tensor) : Real = {term}\n"
                    "def g (a : Tensor) : Tensor = grad f a\n"
                    "def h (a : Tensor) (v : Tensor) : Tensor = hvp f a v\n"
                    "def rr (a : Tensor) (v : Tensor) : Tensor = grad (\\x. sum (grad f x * v)) a\n")
    v = RNG.standard_normal((3, 3))
    want = gradient_difference(p.g, (A,), (v,))
    np.testing.assert_allclose(flat(p.h(A, v)), want, rtol=1e-6, atol=1e-7)
    hessian = np.array([flat(p.rr(A, e.reshape(3, 3))) for e in np.eye(9)])  # the Hessian is symmetric
    np.testing.assert_allclose(hessian @ v.ravel(), want, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ located errors


SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])
INDEFINITE = np.array([[1.0, 2.0], [2.0, 1.0]])


@pytest.mark.parametrize("term, args, message", [
    ("solve a b", (SINGULAR, np.ones(2)), "the matrix is singular: its LU factorization has a zero pivot"),
    ("inv a", (SINGULAR,), "the matrix is singular"),
    ("inv a", (np.stack([A, np.zeros((3, 3))]),), "the matrix is singular"),
    ("triangular_solve true a b", (np.array([[1.0, 0.0], [3.0, 0.0]]), np.ones(2)),
     "the triangular matrix is singular: its diagonal holds a zero"),
    ("cholesky a", (INDEFINITE,), "the matrix is not positive definite (cholesky reads its lower triangle"),
    ("cholesky a", (np.array([[1.0, 5.0], [0.0, -1.0]]),), "not positive definite"),
    ("solve a b", (TALL, np.ones(5)), "expected a square matrix or a stack of them, of shape (..., n, n): "
                                      "found shape (5, 3)"),
    ("solve a b", (np.ones(3), np.ones(3)), "expected a square matrix or a stack of them"),
    ("solve a b", (A, np.ones(4)), "the right-hand side of shape (4,) does not fit a matrix of shape (3, 3): it is a "
                                   "vector of shape (3,) or a stack of matrices of shape (..., 3, k)"),
    ("solve a b", (A, np.ones((2, 3))), "the right-hand side of shape (2, 3) does not fit"),
    ("solve a b", (AS, np.ones((3, 3, 1))), "the stacks of shapes (2, 3, 3) and (3, 3, 1) do not broadcast: their "
                                            "leading axes (2,) and (3,) differ"),
    ("triangular_solve false a b", (A, np.ones(2)), "the right-hand side of shape (2,) does not fit"),
    ("inv a", (TALL,), "found shape (5, 3)"),
    ("det a", (AS,), "expected a square matrix of shape (n, n): found shape (2, 3, 3) (for a stack of matrices, "
                     "map over unstack)"),
    ("slogdet a", (TALL,), "expected a square matrix of shape (n, n)"),
    ("cholesky a", (TALL,), "found shape (5, 3)"),
    ("eigh a", (TALLS,), "found shape (2, 4, 3)"),
    ("qr a", (TALL.T,), "qr takes a square or tall matrix (rows ≥ columns): found shape (3, 5)"),
    ("qr a", (np.ones(3),), "expected a matrix or a stack of matrices (rank 2 or more): found shape (3,)"),
    ("diag a", (TALL,), "found shape (5, 3)"),
    ("tril a", (np.ones(3),), "expected a matrix or a stack of matrices"),
    ("matrix_transpose a", (np.ones(3),), "expected a matrix or a stack of matrices"),
])
def test_bad_matrices_are_located_errors(term, args, message):
    params = " ".join(f"({n} : Tensor)" for n in "ab"[:len(args)])
    with pytest.raises(LamRuntimeError) as info:
        run(f"def f {params} =\n    {term}\n", *args)
    assert message in info.value.message
    assert info.value.span is not None and info.value.span.line == 2 and info.value.span.column == 5


def test_diag_embed_of_a_number_is_a_located_error():
    with pytest.raises(LamRuntimeError) as info:
        run("def f (x : Real) : Tensor =\n    diag_embed (x : Tensor)\n", 1.0)
    assert "diag_embed takes a vector or a stack of them" in info.value.message and info.value.span.line == 2


def test_the_derivative_at_a_singular_matrix_is_a_located_error():
    """det has a value at a singular matrix, but its derivative rule inverts it: an error
    at the det, rather than an infinite or wrong gradient."""
    p = lamad.loads("def f (a : Tensor) : Real =\n    det a\n")
    assert p.f(SINGULAR) == 0.0
    with pytest.raises(LamRuntimeError) as info:
        lamad.grad(p.f)(SINGULAR)
    assert "the matrix is singular" in info.value.message and info.value.span.line == 2


STACKS = """
def values (a : Tensor) (b : Tensor) (s : Tensor) =
    (solve a b, triangular_solve true a b, triangular_solve false a b, inv a, cholesky s, fst (eigh s), qr a,
     det a[0], slogdet a[1], diag a, diag_embed (diag a), tril a, triu a)
def gradients (a : Tensor) (b : Tensor) (s : Tensor) =
    grad (\\(a, s). sum (solve a b) + sum (cholesky s) + sum (inv a) + sum (fst (eigh s))) (a, s)
"""
"""Stacks of matrices, whose batches each backend's linalg handles on its own (Dask's
through NumPy mapped over the matrices), and the failures it may report as NaN."""


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_stacks_of_matrices_on_every_backend_are_numpys(backend):
    program, on_numpy = lamad.loads(STACKS, backend=backend), lamad.loads(STACKS)
    for name in ("values", "gradients"):
        np.testing.assert_allclose(flat(host(getattr(program, name)(AS, BS, SS))),
                                   flat(getattr(on_numpy, name)(AS, BS, SS)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_singular_and_indefinite_matrices_are_located_errors_on_every_backend(backend):
    """Whether the library raises (NumPy, PyTorch; Dask when the result is computed) or
    returns NaN or infinities (JAX), the failure is lamad's located error."""
    for term, args, message in [
        ("solve a b", (SINGULAR, np.ones(2)), "the matrix is singular: its LU factorization has a zero pivot"),
        ("inv a", (np.stack([A, np.zeros((3, 3))]),), "the matrix is singular"),
        ("triangular_solve true a b", (np.array([[1.0, 0.0], [3.0, 0.0]]), np.ones(2)),
         "the triangular matrix is singular: its diagonal holds a zero"),
        ("cholesky a", (INDEFINITE,), "the matrix is not positive definite"),
    ]:
        params = " ".join(f"({n} : Tensor)" for n in "ab"[:len(args)])
        with pytest.raises(LamRuntimeError) as info:
            lamad.loads(f"def f {params} =\n    {term}\n", backend=backend).f(*args)
        assert message in info.value.message and info.value.span.line == 2 and info.value.span.column == 5, term


# ------------------------------------------------------------------ derivative programs, backends


TERMS = ["solve x (ones [3])", "triangular_solve false x (eye 3)", "inv x", "det x * snd (slogdet x) * fst (slogdet x)",
         "cholesky (x @ matrix_transpose x)", "fst (eigh x) + snd (eigh x)", "fst (qr x) + snd (qr x)",
         "diag_embed (diag (tril x + triu x))"]


@pytest.mark.parametrize("term", TERMS)
def test_derivative_programs_print_and_parse_back(term):
    """←D and →D of a function that uses each primitive, raw and simplified, print in
    Unicode and ASCII and parse back to a term of the transformed type."""
    assert_derivatives_parse_back(f"def f (x : Tensor) : Real = sum ({term})")


GUARDED = """
def f (x : Tensor) : Real =
    let m = reshape x [3, 3] + 3.0 * eye 3;
        s = m @ matrix_transpose m;
        (w, v) = eigh s;
        (q, r) = qr m
    in sum (solve m (diag m)) + sum (triangular_solve true (cholesky s) (stack [m, m])) + sum (inv m)
       + det m + snd (slogdet m) + sum (w) + sum (square v) + sum (q * r) + sum (tril m - triu m)
def run = let x = stack [0.3, 0.0, -1.2, 0.7, 0.5, 2.0, 1.0, -0.4, 0.2] in (f x, grad f x, hvp f x (ones [9]))
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_linear_algebra_makes_no_hidden_host_copies_and_keeps_the_dtype(dtype):
    """On a namespace that refuses every implicit copy to the host (CuPy's shape, see
    tests/test_backend.py), values, gradients and Hessian-vector products are NumPy's, of
    the run's dtype."""
    from test_backend import guarded, to_numpy

    result = to_numpy(guarded(GUARDED, dtype).value("run"))
    expected = lamad.loads(GUARDED).value("run")
    for got, want in zip(result, expected):
        assert np.asarray(got).dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == "float64" else 1e-4)
