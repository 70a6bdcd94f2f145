"""Linear algebra: solving linear systems (``solve``, ``triangular_solve``), the inverse
and the determinant (``inv``, ``det``, ``slogdet``), the Cholesky, symmetric eigen- and QR
decompositions (``cholesky``, ``eigh``, ``qr``), and the matrix operations their rules are
written with (``matrix_transpose``, ``diag``, ``diag_embed``, ``tril``, ``triu``).

Everything is computed by the array namespace's ``linalg`` (the standard's extension of
that name) but triangular solves (``ext.solve_triangular``: NumPy solves the triangle by
LU), and every
operation but ``det`` and ``slogdet`` takes a stack of matrices as well as a matrix: the
matrices are the last two axes, the leading ones are a batch, broadcast between the
operands of ``solve`` and ``triangular_solve`` as NumPy's ``matmul`` broadcasts them.
The right-hand side ``b`` of a system is a vector when it is 1-D (NumPy 2's rule) and a
stack of matrices ``(..., n, k)`` otherwise.

The derivatives are those of docs/language.md, "Linear algebra", written with these
primitives, so that they are differentiated again for higher orders:

* ``solve a b = a⁻¹ b``: ``dy = a⁻¹ (db - da y)``, ``b̄ = a⁻ᵀ ȳ``, ``ā = -b̄ yᵀ``; the
  private ``columns`` and ``uncolumns`` make a vector ``b`` a column and back, so that one
  rule serves both kinds of right-hand side, batched or not.  ``triangular_solve`` is the
  same with ``a`` replaced by its triangle (``ā`` is kept to it).
* ``inv``: ``dy = -y da y``; ``det``: ``dy = y tr(a⁻¹ da)``; ``slogdet``: ``d log|det a| =
  tr(a⁻¹ da)``, and the sign has none.
* ``cholesky`` and ``eigh`` read only the lower triangle of their argument, as a symmetric
  matrix ``S = sym_lower a``: their values and derivatives are those of functions of the
  lower triangle, so a direction or a gradient above the diagonal does nothing.  With
  ``dS = sym_lower da``, ``dL = L Φ(L⁻¹ dS L⁻ᵀ)`` (``Φ``: the lower triangle, its diagonal
  halved: ``tril_half``) and ``S̄ = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹`` (Murray, 2016); ``dw = diag(Vᵀ dS
  V)``, ``dV = V (F ∘ Vᵀ dS V)`` with ``F_ij = 1 / (w_j - w_i)`` off the diagonal
  (``inverse_gaps``), which holds for distinct eigenvalues, and ``S̄ = V (diag w̄ + F ∘
  Vᵀ V̄) Vᵀ``; ``ā = unsym_lower S̄``, the transpose of ``sym_lower``.
* ``qr`` (a square or tall ``a`` of full rank, reduced): with ``C = Qᵀ da R⁻¹`` and ``K =
  tril C - (tril C)ᵀ - C`` (``qr_skew``), ``dQ = Q K + da R⁻¹`` and ``dR = -K R`` (as JAX's
  ``qr_jvp_rule``); its transpose is ``ā = (Q̄ + Q N) R⁻ᵀ`` with ``M = Qᵀ Q̄ - R̄ Rᵀ`` and
  ``N = tril(M - Mᵀ) - M`` (``qr_skew_t``, the transpose of ``qr_skew``).

A matrix that is not square where one must be, a wide one in ``qr``, a right-hand side
that does not fit, stacks that do not broadcast, a singular matrix and one that is not
positive definite are run-time errors raised here and located by the evaluator at the
application, on every backend: where the library returns NaN or infinities for such a
matrix instead of raising (JAX, CuPy), or raises only when a lazy result is computed
(Dask), the result of ``solve``, ``inv`` and ``cholesky`` is checked.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np

from lamad.prims.base import define
from lamad.syntax import BOOL, REAL, TENSOR, TupleType

SINGULAR = "the matrix is singular: its LU factorization has a zero pivot"


# ------------------------------------------------------------------ shapes


def _shape(x) -> tuple[int, ...]:
    return tuple(x.shape)


def matrices(x) -> None:
    """``x`` is a matrix or a stack of them, of rank 2 or more; else a ``ValueError``."""
    if x.ndim < 2:
        raise ValueError(f"expected a matrix or a stack of matrices (rank 2 or more): found shape {_shape(x)}")


def square(x) -> int:
    """The order ``n`` of ``x``, of shape ``(..., n, n)``; else a ``ValueError``."""
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError("expected a square matrix or a stack of them, of shape (..., n, n): "
                         f"found shape {_shape(x)}")
    return x.shape[-1]


def _one_square(x) -> int:
    """The order ``n`` of ``x``, a matrix of shape ``(n, n)``; else a ``ValueError``."""
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"expected a square matrix of shape (n, n): found shape {_shape(x)} "
                         "(for a stack of matrices, map over unstack)")
    return x.shape[0]


def _system(a, b) -> None:
    """``a`` square, of shape ``(..., n, n)``, and ``b`` a right-hand side for it: a vector
    ``(n,)`` or a stack ``(..., n, k)`` whose leading axes broadcast with ``a``'s."""
    n = square(a)
    rows = b.shape[0] if b.ndim == 1 else b.shape[-2] if b.ndim >= 2 else None
    if rows != n:
        raise ValueError(f"the right-hand side of shape {_shape(b)} does not fit a matrix of shape {_shape(a)}: "
                         f"it is a vector of shape ({n},) or a stack of matrices of shape (..., {n}, k)")
    if b.ndim >= 2:
        try:
            np.broadcast_shapes(_shape(a)[:-2], _shape(b)[:-2])
        except ValueError:
            raise ValueError(f"the stacks of shapes {_shape(a)} and {_shape(b)} do not broadcast: their leading axes "
                             f"{_shape(a)[:-2]} and {_shape(b)[:-2]} differ") from None


def _finite(xp, x) -> bool:
    return bool(xp.all(xp.isfinite(x)))


def _checked(xp, ext, compute: Callable[[], Any], inputs: tuple, failure: str):
    """``compute()``, which factors or solves with the matrices ``inputs``: a singular
    matrix, or one that is not positive definite, is the ``ValueError`` ``failure``
    whether the library raises its own error or (``ext.linalg_returns_nan``) returns NaN
    or infinities from finite inputs (checking the result computes a lazy one, whose error
    then comes here)."""
    try:
        out = compute()
        if ext.linalg_returns_nan and not _finite(xp, out) and all(_finite(xp, x) for x in inputs):
            raise ValueError(failure)
    except ext.linalg_errors:
        raise ValueError(failure) from None
    return out


def _solved(xp, ext, a, b, solver: Callable[[Any, Any], Any]):
    """``a⁻¹ b`` by ``solver`` (the namespace's LU solver, or a triangular one), ``b`` a
    vector or a stack of matrices (:func:`_system`), the batches broadcast explicitly so
    that no convention of the namespace about a ``b`` of rank ``a.ndim - 1`` is relied on."""
    if b.ndim == 1:
        return _solved(xp, ext, a, b[..., None], solver)[..., 0]
    batch = np.broadcast_shapes(_shape(a)[:-2], _shape(b)[:-2])
    a = xp.broadcast_to(a, batch + _shape(a)[-2:])
    b = xp.broadcast_to(b, batch + _shape(b)[-2:])
    return _checked(xp, ext, lambda: solver(a, b), (a, b), SINGULAR)


def _band(xp, x, k: int, lower: bool):
    """The entries of the matrices ``x`` on and below (``lower``) or on and above the
    ``k``-th diagonal, zeros elsewhere: NumPy's ``tril`` and ``triu``, which the standard
    has not."""
    m, n = x.shape[-2:]
    offset = xp.arange(n)[None, :] - xp.arange(m)[:, None]  # column - row
    return xp.where(offset <= k if lower else offset >= k, x, 0.0)


def tril(xp, x, k: int = 0):
    return _band(xp, x, k, True)


def sym_lower(xp, a):
    """The symmetric matrices whose lower triangles are ``a``'s (the upper ones ignored)."""
    return tril(xp, a) + xp.matrix_transpose(tril(xp, a, -1))


def unsym_lower(xp, s):
    """The transpose of :func:`sym_lower`: ``s``'s lower triangle plus its upper one
    reflected below the diagonal, zeros above."""
    return tril(xp, s) + tril(xp, xp.matrix_transpose(s), -1)


def triangle(xp, lower: bool, x):
    """The lower (``lower``) or upper triangles of the matrices ``x``, the diagonal
    included, zeros elsewhere."""
    matrices(x)
    return _band(xp, x, 0, lower)


def _diagonal(xp, ext, x):
    """The diagonals of the square matrices ``x`` (a new array, not a read-only view)."""
    square(x)
    return xp.asarray(ext.linalg.diagonal(x), copy=True)


def _eye_mask(xp, n: int):
    """The ``n × n`` mask that is true on the diagonal."""
    return xp.arange(n)[:, None] == xp.arange(n)[None, :]


# ------------------------------------------------------------------ implementations


def _solve(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def solve(a, b):
        """``x`` with ``a x = b``."""
        _system(a, b)
        return _solved(xp, ext, a, b, ext.linalg.solve)
    return solve


def _triangular_solve(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def triangular_solve(lower, a, b):
        """``x`` with ``t x = b``, ``t`` the lower (``lower``) or upper triangle of ``a``, by
        the library's triangular solver (NumPy has none: its LU solver solves the triangle,
        in O(n³))."""
        _system(a, b)
        t = triangle(xp, lower, a)
        if bool(xp.any(ext.linalg.diagonal(t) == 0)):
            raise ValueError("the triangular matrix is singular: its diagonal holds a zero")
        return _solved(xp, ext, t, b, partial(_solve_triangular, ext, lower))
    return triangular_solve


def _solve_triangular(ext, lower: bool, t, b):
    return ext.solve_triangular(t, b, lower)


def _inv(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def inv(a):
        square(a)
        return _checked(xp, ext, lambda: ext.linalg.inv(a), (a,), SINGULAR)
    return inv


def _det(rt):
    ext = rt.backend.ext

    def det(a):
        _one_square(a)
        return ext.linalg.det(a)
    return det


def _slogdet(rt):
    ext = rt.backend.ext

    def slogdet(a):
        """The sign of the determinant and the log of its absolute value (0 and -inf for a
        singular matrix)."""
        _one_square(a)
        sign, log_abs = ext.linalg.slogdet(a)
        return sign, log_abs
    return slogdet


def _cholesky(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def cholesky(a):
        """The lower factor ``L`` of ``S = L Lᵀ``, ``S`` the symmetric matrix of ``a``'s lower
        triangle."""
        square(a)
        s = sym_lower(xp, a)
        return _checked(xp, ext, lambda: ext.linalg.cholesky(s), (s,),
                        "the matrix is not positive definite (cholesky reads its lower triangle as a symmetric matrix)")
    return cholesky


def _eigh(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def eigh(a):
        """The eigenvalues (ascending) and the eigenvectors (columns) of the symmetric matrix of
        ``a``'s lower triangle."""
        square(a)
        w, v = ext.linalg.eigh(sym_lower(xp, a))
        return w, v
    return eigh


def _qr(rt):
    ext = rt.backend.ext

    def qr(a):
        """The reduced QR decomposition of a square or tall matrix: ``Q`` with orthonormal
        columns and ``R`` upper triangular."""
        matrices(a)
        m, n = a.shape[-2:]
        if m < n:
            raise ValueError(f"qr takes a square or tall matrix (rows ≥ columns): found shape {_shape(a)}")
        q, r = ext.linalg.qr(a, mode="reduced")
        return q, r
    return qr


def _matrix_transpose(rt):
    xp = rt.backend.xp

    def matrix_transpose(x):
        matrices(x)
        return xp.matrix_transpose(x)
    return matrix_transpose


def _diag_embed(rt):
    xp = rt.backend.xp

    def diag_embed(v):
        """Square matrices with ``v``'s last axis on their diagonals, zeros elsewhere."""
        if v.ndim == 0:
            raise ValueError("diag_embed takes a vector or a stack of them (rank 1 or more): found a 0-d tensor")
        return xp.where(_eye_mask(xp, v.shape[-1]), v[..., :, None], 0.0)
    return diag_embed


def _columns(rt):
    return lambda b, x: x[..., None] if b.ndim == 1 else x


def _uncolumns(rt):
    return lambda b, x: x[..., 0] if b.ndim == 1 else x


def _tril_half(rt):
    xp = rt.backend.xp

    def tril_half(x):
        """Φ(x): the lower triangle of ``x`` with its diagonal halved."""
        return 0.5 * (tril(xp, x) + tril(xp, x, -1))
    return tril_half


def qr_skew(xp, c):
    """``K(C) = tril C - (tril C)ᵀ - C``: the skew-symmetric part that keeps ``Q``
    orthonormal, less ``C`` (``dQ = Q K + da R⁻¹``, ``dR = -K R``)."""
    t = tril(xp, c)
    return t - xp.matrix_transpose(t) - c


def qr_skew_t(xp, m):
    """The transpose of :func:`qr_skew`: ``tril (M - Mᵀ) - M``."""
    return tril(xp, m - xp.matrix_transpose(m)) - m


def _inverse_gaps(rt):
    xp = rt.backend.xp

    def inverse_gaps(w):
        """``F_ij = 1 / (w_j - w_i)`` off the diagonal, 0 on it: infinite where two
        eigenvalues are equal, where the derivative of the eigenvectors does not exist."""
        gaps = w[..., None, :] - w[..., :, None]
        on = _eye_mask(xp, w.shape[-1])
        return xp.where(on, 0.0, 1.0 / xp.where(on, 1.0, gaps))
    return inverse_gaps


# ------------------------------------------------------------------ records

def _system_rules(solve: str, solve_transposed: str, a: str, b: str,
                  triangle: str = "") -> tuple[tuple[str, str], tuple[str, str]]:
    """The rules of ``y = solve a b`` in ``a`` and ``b`` — ``dy = a⁻¹ (db - da y)``, ``b̄ =
    a⁻ᵀ ȳ``, ``ā = -b̄ yᵀ`` — in matrix form (``columns``), summed down to the shapes of
    broadcast operands.  ``solve`` applies ``a⁻¹`` and ``solve_transposed`` applies the
    inverse of a transposed ``a``; ``triangle`` is applied to what concerns ``a`` (its
    triangle, for ``triangular_solve``)."""
    column_y = f"columns (like {b}) y"
    transposed = f"{solve_transposed} (matrix_transpose {a}) (columns (like {b}) a)"
    outer = f"-({transposed} @ matrix_transpose ({column_y}))"
    jvp = (f"uncolumns (like {b}) (-({solve} {a} ({triangle}d{a} @ {column_y})))", f"{solve} {a} d{b}")
    vjp = (f"unbroadcast (like {a}) ({triangle}({outer}))" if triangle else f"unbroadcast (like {a}) ({outer})",
           f"unbroadcast (like {b}) (uncolumns (like {b}) ({transposed}))")
    return jvp, vjp


_SOLVE_JVP, _SOLVE_VJP = _system_rules("solve", "solve", "x1", "x2")
define("solve", (TENSOR, TENSOR), TENSOR, _solve, linear=(1,), jvp=_SOLVE_JVP, vjp=_SOLVE_VJP,
       doc="x with a x = b: b a vector (n,) or matrices (..., n, k); a square, or a stack of them",
       example=("solve (x1 + 3.0 * eye 3) x2", ((3, 3), (3, 2))))
_TRIANGULAR_JVP, _TRIANGULAR_VJP = _system_rules("triangular_solve x1", "triangular_solve (not x1)", "x2", "x3",
                                                 "triangle x1 ")
define("triangular_solve", (BOOL, TENSOR, TENSOR), TENSOR, _triangular_solve, linear=(2,),
       jvp=(None,) + _TRIANGULAR_JVP, vjp=(None,) + _TRIANGULAR_VJP,
       doc="x with t x = b, t the lower (true) or upper (false) triangle of a, whose other triangle is not read",
       example=("triangular_solve true (x1 + 3.0 * eye 3) x2", ((3, 3), (3, 2))))
define("inv", (TENSOR,), TENSOR, _inv, jvp=("-(y @ dx1 @ y)",), vjp=("-(matrix_transpose y @ a @ matrix_transpose y)",),
       doc="the inverse of a square matrix, or of each of a stack",
       example=("inv (x1 + 3.0 * eye 3)", ((3, 3),)))
define("det", (TENSOR,), REAL, _det, jvp=("y * sum (diag (solve x1 dx1))",),
       vjp=("a * y * matrix_transpose (inv x1)",),
       doc="the determinant of a square matrix (its derivative, y a⁻ᵀ, needs a nonsingular one)",
       example=("det (x1 + 3.0 * eye 3)", ((3, 3),)))
define("slogdet", (TENSOR,), TupleType((REAL, REAL)), _slogdet, derivative="special",
       jvp=("let (x, dx) = x1; (s, l) = slogdet x in ((s, 0.0), (l, sum (diag (solve x dx))))",),
       vjp=("let (x, x') = x1; (s, l) = slogdet x in "
            "((s, \\(c : Real) -o 0), (l, \\(c : Real) -o x' (c * matrix_transpose (inv x))))",),
       doc="the sign of the determinant (no derivative) and the log of its absolute value",
       example=("let (s, l) = slogdet x1 in s * l", ((3, 3),)))
define("cholesky", (TENSOR,), TENSOR, _cholesky,
       jvp=("y @ tril_half (triangular_solve true y (matrix_transpose (triangular_solve true y (sym_lower dx1))))",),
       vjp=("let u = matrix_transpose y in unsym_lower (matrix_transpose (triangular_solve false u "
            "(matrix_transpose (triangular_solve false u (tril_half (u @ a))))))",),
       doc="the lower L with L Lᵀ = a, a symmetric positive definite: only its lower triangle is read",
       example=("cholesky (x1 @ transpose x1 + 3.0 * eye 3 + 0.5 * x2)", ((3, 3), (3, 3))))
define("eigh", (TENSOR,), TupleType((TENSOR, TENSOR)), _eigh, derivative="special",
       jvp=("let (x, dx) = x1; (w, v) = eigh x; m = matrix_transpose v @ sym_lower dx @ v in "
            "((w, diag m), (v, v @ (inverse_gaps w * m)))",),
       vjp=("let (x, x') = x1; (w, v) = eigh x in "
            "((w, \\(c : Tensor) -o x' (unsym_lower (v @ diag_embed c @ matrix_transpose v))), "
            "(v, \\(c : Tensor) -o x' (unsym_lower (v @ (inverse_gaps w * (matrix_transpose v @ c)) "
            "@ matrix_transpose v))))",),
       doc="the eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix, read from its lower triangle",
       example=("let (w, v) = eigh (x1 + 4.0 * diag_embed (real (arange 3))) in w + sum_axis 0 (square v * x2)",
                ((3, 3), (3, 3))))
_QR_BACK = "\\(c : Tensor) -o x' (matrix_transpose (triangular_solve false r (matrix_transpose ({}))))"
"""A backpropagator of ``qr``: ``ā = z R⁻ᵀ``, with ``z = Q̄ + Q N(Qᵀ Q̄)`` for the
cotangent ``c`` of ``Q`` and ``z = Q N(-R̄ Rᵀ)`` for that of ``R``."""
define("qr", (TENSOR,), TupleType((TENSOR, TENSOR)), _qr, derivative="special",
       jvp=("let (x, dx) = x1; (q, r) = qr x; "
            "e = matrix_transpose (triangular_solve true (matrix_transpose r) (matrix_transpose dx)); "
            "k = qr_skew (matrix_transpose q @ e) in ((q, q @ k + e), (r, -(k @ r)))",),
       vjp=("let (x, x') = x1; (q, r) = qr x in "
            f"((q, {_QR_BACK.format('c + q @ qr_skew_t (matrix_transpose q @ c)')}), "
            f"(r, {_QR_BACK.format('q @ qr_skew_t (-(c @ matrix_transpose r))')}))",),
       doc="the reduced QR decomposition of a square or tall matrix of full rank: Q (orthonormal columns) and R",
       example=("let (q, r) = qr x1 in concat 0 [q, r]", ((4, 3),)))

# ------------------------------------------------------------------ matrix operations

define("matrix_transpose", (TENSOR,), TENSOR, _matrix_transpose, linear=(0,),
       jvp=("matrix_transpose dx1",), vjp=("matrix_transpose a",),
       doc="the matrices transposed: the last two axes swapped", example=("matrix_transpose x1", ((2, 3, 4),)))
define("diag", (TENSOR,), TENSOR, lambda rt: partial(_diagonal, rt.backend.xp, rt.backend.ext), linear=(0,),
       jvp=("diag dx1",), vjp=("diag_embed a",),
       doc="the diagonal of a square matrix, or of each of a stack", example=("diag x1", ((3, 3),)))
define("diag_embed", (TENSOR,), TENSOR, _diag_embed, linear=(0,), jvp=("diag_embed dx1",), vjp=("diag a",),
       doc="the square matrix with the vector on its diagonal (of each vector of a stack)",
       example=("diag_embed x1", ((2, 3),)))
define("tril", (TENSOR,), TENSOR, lambda rt: partial(triangle, rt.backend.xp, True), linear=(0,),
       jvp=("tril dx1",), vjp=("tril a",),
       doc="the lower triangle of a matrix (the diagonal included), zeros above", example=("tril x1", ((3, 4),)))
define("triu", (TENSOR,), TENSOR, lambda rt: partial(triangle, rt.backend.xp, False), linear=(0,),
       jvp=("triu dx1",), vjp=("triu a",),
       doc="the upper triangle of a matrix (the diagonal included), zeros below", example=("triu x1", ((4, 3),)))

# ------------------------------------------------------------------ the helpers of the rules


def _private(name, params, result, impl, **fields) -> None:
    define(name, params, result, impl, public=False, **fields)


_private("triangle", (BOOL, TENSOR), TENSOR, lambda rt: partial(triangle, rt.backend.xp), linear=(1,),
         jvp=(None, "triangle x1 dx2"), vjp=(None, "triangle x1 a"),
         doc="the lower (true) or upper (false) triangle", example=("%triangle false x1", ((3, 3),)))
_private("columns", (TENSOR, TENSOR), TENSOR, _columns, linear=(1,),
         jvp=(None, "columns x1 dx2"), vjp=(None, "uncolumns x1 a"),
         doc="x as matrices: a column where b is a vector, else x", example=("%columns x1 x2", ((3,), (2, 3))))
_private("uncolumns", (TENSOR, TENSOR), TENSOR, _uncolumns, linear=(1,),
         jvp=(None, "uncolumns x1 dx2"), vjp=(None, "columns x1 a"),
         doc="the inverse of columns: x's columns as vectors where b is a vector, else x",
         example=("%uncolumns x1 x2", ((3,), (2, 3, 1))))
_private("sym_lower", (TENSOR,), TENSOR, lambda rt: (lambda x: sym_lower(rt.backend.xp, x)), linear=(0,),
         jvp=("sym_lower dx1",), vjp=("unsym_lower a",),
         doc="the symmetric matrix whose lower triangle is x's", example=("%sym_lower x1", ((3, 3),)))
_private("unsym_lower", (TENSOR,), TENSOR, lambda rt: (lambda x: unsym_lower(rt.backend.xp, x)), linear=(0,),
         jvp=("unsym_lower dx1",), vjp=("sym_lower a",),
         doc="the transpose of sym_lower: the lower triangle plus the upper one reflected, zeros above",
         example=("%unsym_lower x1", ((3, 3),)))
_private("tril_half", (TENSOR,), TENSOR, _tril_half, linear=(0,), jvp=("tril_half dx1",), vjp=("tril_half a",),
         doc="the lower triangle with the diagonal halved (Φ of the Cholesky derivative)",
         example=("%tril_half x1", ((3, 3),)))
_private("qr_skew", (TENSOR,), TENSOR, lambda rt: partial(qr_skew, rt.backend.xp), linear=(0,),
         jvp=("qr_skew dx1",), vjp=("qr_skew_t a",),
         doc="K(c) = tril c - (tril c)ᵀ - c, of the QR tangent dQ = Q K + da R⁻¹, dR = -K R",
         example=("%qr_skew x1", ((3, 3),)))
_private("qr_skew_t", (TENSOR,), TENSOR, lambda rt: partial(qr_skew_t, rt.backend.xp), linear=(0,),
         jvp=("qr_skew_t dx1",), vjp=("qr_skew a",),
         doc="the transpose of qr_skew: tril (m - mᵀ) - m", example=("%qr_skew_t x1", ((3, 3),)))
_private("inverse_gaps", (TENSOR,), TENSOR, _inverse_gaps,
         jvp=("-(square y * (expand_dims (-2) dx1 - expand_dims (-1) dx1))",),
         vjp=("let g = -(a * square y) in sum_axis (-2) g - sum_axis (-1) g",),
         doc="1 / (w_j - w_i) off the diagonal, 0 on it (F of the eigenvector derivative)",
         example=("%inverse_gaps x1", ((4,),)))
