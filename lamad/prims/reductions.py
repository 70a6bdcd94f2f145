"""Reductions of a Tensor, whole or along an axis (the axis first).

``max_axis`` splits the cotangent equally among tied maxima, as JAX does.
"""

from __future__ import annotations

from lamad.prims.base import define
from lamad.syntax import INT, REAL, TENSOR


def _xp(fn_name: str):
    return lambda rt: getattr(rt.backend.xp, fn_name)


def _along(fn_name: str):
    def impl(rt):
        from lamad.prims.shape import axis_of  # defined after this module's primitives

        fn = getattr(rt.backend.xp, fn_name)
        return lambda axis, x: fn(x, axis=axis_of(axis, x))
    return impl


def logsumexp(xp, x, axis: int, keepdims: bool = False):
    """``log (sum_axis (exp x))``, computed with the maximum along ``axis`` subtracted."""
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def softmax(xp, x, axis: int):
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


define("sum", (TENSOR,), REAL, lambda rt: rt.backend.ext.total or rt.backend.xp.sum, linear=(0,), jvp=("sum dx1",), vjp=("broadcast (like x1) a",),
       example=("sum x1", ((2, 3),)))
define("mean", (TENSOR,), REAL, _xp("mean"), linear=(0,),
       jvp=("mean dx1",), vjp=("broadcast (like x1) (a / count x1)",), example=("mean x1", ((2, 3),)))
define("sum_axis", (INT, TENSOR), TENSOR, _along("sum"), linear=(1,),
       jvp=(None, "sum_axis x1 dx2"), vjp=(None, "broadcast (like x2) (expand_dims x1 a)"),
       example=("sum_axis 1 x1", ((2, 3),)))
define("mean_axis", (INT, TENSOR), TENSOR, _along("mean"), linear=(1,),
       jvp=(None, "mean_axis x1 dx2"), vjp=(None, "broadcast (like x2) (expand_dims x1 a / real (dim x1 x2))"),
       example=("mean_axis 0 x1", ((2, 3),)))
define("max_axis", (INT, TENSOR), TENSOR, _along("max"),
       jvp=(None, "sum_axis x1 (dx2 * max_mask x1 x2)"), vjp=(None, "expand_dims x1 a * max_mask x1 x2"),
       example=("max_axis 1 x1", ((2, 3),)))
define("logsumexp_axis", (INT, TENSOR), TENSOR, lambda rt: (lambda axis, x: logsumexp(rt.backend.xp, x, axis)),
       jvp=(None, "sum_axis x1 (dx2 * softmax_axis x1 x2)"), vjp=(None, "expand_dims x1 a * exp (x2 - expand_dims x1 y)"),
       example=("logsumexp_axis (-1) x1", ((2, 3),)))
define("softmax_axis", (INT, TENSOR), TENSOR, lambda rt: (lambda axis, x: softmax(rt.backend.xp, x, axis)),
       jvp=(None, "y * (dx2 - expand_dims x1 (sum_axis x1 (dx2 * y)))"),
       vjp=(None, "y * (a - expand_dims x1 (sum_axis x1 (a * y)))"),
       example=("softmax_axis 0 x1", ((2, 3),)))


def _argmax_mask(rt):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def argmax_mask(axis, x):
        index = xp.expand_dims(xp.argmax(x, axis=axis), axis=axis)
        positions = xp.reshape(xp.arange(x.shape[axis]), tuple(-1 if i == axis % x.ndim else 1 for i in range(x.ndim)))
        return xp.astype(positions == index, dtype)
    return argmax_mask


def _max_mask(rt):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def max_mask(axis, x):
        hit = xp.astype(x == xp.max(x, axis=axis, keepdims=True), dtype)
        return hit / xp.sum(hit, axis=axis, keepdims=True)
    return max_mask


define("argmax_mask", (INT, TENSOR), TENSOR, _argmax_mask, derivative="constant",
       doc="1 at the first maximum along the axis, 0 elsewhere", example=("argmax_mask 0 x1", ((3, 2),)))
define("max_mask", (INT, TENSOR), TENSOR, _max_mask, derivative="constant", public=False,
       doc="the maxima along the axis, each weighted 1 / (how many there are)",
       example=("%max_mask 1 x1", ((2, 3),)))

