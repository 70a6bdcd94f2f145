"""The helpers that derivative rules are written with.  They are private: not in a
program's scope, printed with a ``%`` in derivative programs (``%unbroadcast``), and
they have rules of their own, so that derivatives can be differentiated again."""

from __future__ import annotations

from functools import reduce

import numpy as np

from lamad.factored import Outer, forcing, outer
from lamad.gradient import ZERO, add, sum_apply
from lamad.prims.base import A, F, define, tidy
from lamad.syntax import GRAD, INT, TENSOR, ListType, perp


def unbroadcast(xp, g, shape: tuple[int, ...]):
    """Sum ``g`` down to ``shape``: the transpose of broadcasting a value of that shape."""
    if tuple(g.shape) == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = xp.sum(g, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return xp.reshape(g, shape)


def _unbroadcast(rt):
    xp = rt.backend.xp

    def unbroadcast_like(x, g):
        """``g`` summed down to the shape of ``x``; ``g`` itself where the shapes agree
        (the common case, checked before anything else is called)."""
        shape = x.shape
        return g if g.shape == shape else unbroadcast(xp, g, shape)
    return unbroadcast_like


class _Zeros(dict):
    """Per shape, an array of that shape that holds one zero (a read-only view with zero
    strides), made when first asked for; at most :data:`_SHAPES_KEPT` shapes are kept."""

    def __init__(self, xp, dtype):
        super().__init__()
        self.xp, self.dtype = xp, dtype

    def __missing__(self, shape):
        if len(self) >= _SHAPES_KEPT:
            self.clear()
        made = self[shape] = self.xp.broadcast_to(self.xp.zeros((), dtype=self.dtype), shape)
        return made


def _like(rt):
    zeros = _Zeros(rt.backend.xp, rt.backend.dtype)  # per shape: a subscript, where an lru_cache would be one call more

    def like(x):
        """An array of the shape of ``x`` that holds one zero, one per shape: all a
        backpropagator needs of a primal it only broadcasts to or sums down to, as JAX's
        backward pass keeps an abstract value of it.  Compiled code subscripts ``zeros``
        itself (lamad/eval.py)."""
        return zeros[x.shape]
    like.zeros = zeros
    return like


_SHAPES_KEPT = 1024
"""How many shapes ``like`` keeps a zero of at most."""


def _matrix_operands(x, y):
    """``x`` and ``y`` as NumPy's ``matmul`` sees them: a 1-D ``x`` is a row, a 1-D ``y``
    a column."""
    return (x[None, :] if x.ndim == 1 else x), (y[:, None] if y.ndim == 1 else y)


def matmul_vjp(xp, x, y, a, wrt: int):
    """The transposed derivative of ``x @ y`` in ``x`` (``wrt=0``) or ``y`` (``wrt=1``),
    applied to the cotangent ``a``: ``a @ yᵀ`` and ``xᵀ @ a`` for matrices, with NumPy's
    treatment of 1-D operands and batch broadcasting.  The outer products of a matrix
    and a vector are kept as their factors while backpropagators run (lamad/factored.py).
    Two matrices, the common case, are taken by the impls before this is called."""
    if x.ndim == 2 and y.ndim == 1:  # matrix @ vector, as in an RNN cell: an outer product, kept factored
        return outer(xp, a, y) if wrt == 0 else x.T @ a
    if x.ndim == 1 and y.ndim == 2:
        return y @ a if wrt == 0 else outer(xp, x, a)
    if x.ndim == 1 and y.ndim == 1:  # a dot product: a is 0-d
        return a * y if wrt == 0 else x * a
    x2, y2 = _matrix_operands(x, y)
    batch = np.broadcast_shapes(x2.shape[:-2], y2.shape[:-2])
    a2 = xp.reshape(a, batch + (x2.shape[-2], y2.shape[-1]))
    if wrt == 0:
        return xp.reshape(unbroadcast(xp, a2 @ xp.matrix_transpose(y2), x2.shape), x.shape)
    return xp.reshape(unbroadcast(xp, xp.matrix_transpose(x2) @ a2, y2.shape), y.shape)


def _matmul_vjp(wrt: int):
    """The impl of ``matmul_dx`` (``wrt=0``) or ``matmul_dy`` (``wrt=1``): :func:`matmul_vjp`,
    with a matrix times a matrix or a vector, the common cases, taken at once.  For a
    vector ``y`` (an RNN's step, twice), the outer product ``a yᵀ`` of NumPy arrays is
    kept as its factors while forcing runs without a call of :func:`outer`, and ``xᵀ a``
    is ``a.dot(x)`` where the arrays' ``dot`` is cheaper (``Extensions.dot``)."""
    def impl(rt):
        xp = rt.backend.xp
        if wrt == 0:
            factored, ndarray = xp is np, np.ndarray

            def matmul_dx(x, y, a):
                if x.ndim == 2:
                    if y.ndim == 1:
                        if factored and forcing.depth and type(a) is ndarray and type(y) is ndarray:
                            return Outer(a, y)
                        return outer(xp, a, y)
                    if y.ndim == 2:
                        return a @ y.T
                return matmul_vjp(xp, x, y, a, 0)
            return matmul_dx

        dot = rt.backend.ext.dot

        def matmul_dy(x, y, a):
            if x.ndim == 2:
                if y.ndim == 1:
                    return a.dot(x) if dot else x.T @ a
                if y.ndim == 2:
                    return x.T @ a
            return matmul_vjp(xp, x, y, a, 1)
        return matmul_dy
    return impl


def _tie_weight(rt):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def tie_weight(x, y):
        return tidy(xp.astype(x > y, dtype) + xp.astype(x == y, dtype) * 0.5)  # 0.5 * a mask would be float64
    return tie_weight



_INFINITY = float("inf")


def _mul0(rt):
    xp = rt.backend.xp

    def mul0(x, y):
        """``x * y``, but 0 wherever ``x`` or ``y`` is 0, even where the other is infinite
        or NaN: the product of a vanishing factor of a derivative with a singular one
        (``y * x ** (y - 1)`` at ``y = 0``, ``x ** y * log x`` at ``x = 0``).  A factor that
        is one nonzero finite number (the exponent of ``x ** 2.0``) is a plain product."""
        for factor in (x, y):
            if getattr(factor, "ndim", 0) == 0 and 0 < abs(factor) < _INFINITY:
                return x * y
        zero = (x == 0) | (y == 0)  # where a factor is 0 both are, so nothing is 0 · ∞
        return tidy(xp.where(zero, 0.0, x) * xp.where(zero, 0.0, y))
    return mul0


def _private(name, params, result, impl, **fields) -> None:
    define(name, params, result, impl, public=False, **fields)


_private("unbroadcast", (F, TENSOR), F, _unbroadcast,
         linear=(1,), jvp=(None, "unbroadcast x1 dx2"), vjp=(None, "broadcast (like x2) a"),
         doc="g summed down to the shape of x", example=("%unbroadcast x1 x2", ((3,), (2, 3))))
# ``g`` broadcast to the shape of ``x``, the transpose of ``unbroadcast``: written out once
# (not a read-only view, which could reach the user as a gradient), by the backend.
_private("broadcast", (TENSOR, F), TENSOR, lambda rt: rt.backend.ext.broadcast, linear=(1,),
         jvp=(None, "broadcast x1 dx2"), vjp=(None, "unbroadcast (like x2) a"), doc="g broadcast to the shape of x",
         example=("%broadcast x1 x2", ((2, 3), (3,))))
_private("like", (F,), F, _like, derivative="constant", shape_only=True,
         doc="an array of the shape of x holding one zero, all a backpropagator keeps of x",
         example=("%like x1", ((3,),)))
_private("step", (F,), F, lambda rt: (lambda x: tidy(rt.backend.xp.astype(x > 0, rt.backend.dtype))),
         derivative="constant",
         doc="1.0 where x > 0, else 0.0", example=("%step x1", ((3,),)))
# ``a * step x`` in one expression: the mask's floats are a temporary (a product, where
# NumPy's ``where`` on a random mask is four times slower).
_private("where_pos", (F, F), F, lambda rt: (lambda x, a: a * rt.backend.xp.astype(x > 0, rt.backend.dtype)),
         typing="arith", linear=(1,),
         jvp=(None, "where_pos x1 dx2"), vjp=(None, "unbroadcast (like x2) (where_pos x1 a)"),
         doc="a where x > 0, else 0", example=("%where_pos x1 x2", ((3,), (2, 3))))
_private("tie_weight", (F, F), F, _tie_weight, typing="arith", derivative="constant",
         doc="1.0 where x > y, 0.5 where x = y, else 0.0: the share of max x y that is x's",
         example=("%tie_weight x1 x2", ((2, 3), (3,))))
_private("mul0", (F, F), F, _mul0, typing="arith", linear=(0, 1),
         jvp=("mul0 dx1 x2", "mul0 x1 dx2"),
         vjp=("unbroadcast (like x1) (mul0 a x2)", "unbroadcast (like x2) (mul0 x1 a)"),
         doc="x * y, but 0 wherever x or y is 0", example=("%mul0 x1 x2", ((2, 3), (3,))))
_private("matmul_dx", (TENSOR, TENSOR, TENSOR), TENSOR,
         _matmul_vjp(0), linear=(1, 2),
         jvp=(None, "matmul_dx x1 dx2 x3", "matmul_dx x1 x2 dx3"), vjp=(None, "matmul_dy a x2 x3", "a @ x2"),
         doc="the transposed derivative of x @ y in x, applied to a",
         example=("%matmul_dx x1 x2 x3", ((2, 3), (3, 4), (2, 4))))
_private("matmul_dy", (TENSOR, TENSOR, TENSOR), TENSOR,
         _matmul_vjp(1), linear=(0, 2),
         jvp=("matmul_dy dx1 x2 x3", None, "matmul_dy x1 x2 dx3"), vjp=("matmul_dx x1 a x3", None, "x1 @ a"),
         doc="the transposed derivative of x @ y in y, applied to a",
         example=("%matmul_dy x1 x2 x3", ((2, 3), (3, 4), (2, 4))))
_private("sum_apply", (ListType(perp(A)), ListType(A)), GRAD, lambda rt: sum_apply, typing="sum_apply",
         derivative="structural", linear=(1,), doc="the sum of each backpropagator applied to its cotangent")


def _replace_at(rt):
    def replace_at(i, v, xs):
        if not 0 <= i < len(xs):
            raise ValueError(f"index {i} is out of range for a list of length {len(xs)}")
        return xs[:i] + [v] + xs[i + 1:]
    return replace_at


_private("replace_at", (INT, A, ListType(A)), ListType(A), _replace_at, derivative="structural",
         doc="the list with its i-th element replaced by v (commutes with the transforms: it only moves values)")
_private("sum_grads", (ListType(GRAD),), GRAD, lambda rt: (lambda gs: reduce(add, gs, ZERO)),
         derivative="structural", linear=(0,), doc="the sum of a list of gradient values")
define("ones_like", (F,), F, lambda rt: rt.backend.xp.ones_like, derivative="constant",
       example=("ones_like x1", ((3,),)))
define("zeros_like", (F,), F, lambda rt: rt.backend.xp.zeros_like, derivative="constant",
       example=("zeros_like x1", ((3,),)))
