"""Masks and order: choosing with a mask (``where``), reducing masks (``any``, ``all``),
and the order of a tensor's entries (``argmax_axis``, ``argsort``, ``sort``, ``top_k``).

``where c a b`` is NaN-safe: its rules send the unselected branch an exact zero built
with ``where`` itself, never ``mask * a``, so a NaN or an infinity of the other branch
or of the cotangent does not become ``NaN · 0`` (docs/language.md, "Masks and order").

``sort`` and ``top_k`` are differentiable through the permutation that orders their
argument: a stable ``argsort``, so tied entries keep their order, as JAX's do.  Their
rules compute that permutation once, in the forward pass, gather with it
(``take_along``) and send each cotangent back to where its entry came from
(``put_along``, the transpose); they are written for the whole transformed application
(``derivative="special"``) because ``top_k`` returns a pair.
"""

from __future__ import annotations

import numpy as np

from lamad.prims.base import A, F, define, tidy
from lamad.prims.shape import axis_of
from lamad.syntax import BOOL, BOOL_TENSOR, INT, INT_TENSOR, REAL, TENSOR, TupleType


# ------------------------------------------------------------------ where


def _where(rt):
    xp = rt.backend.xp

    def where(c, a, b):
        """``a`` where ``c`` holds, else ``b``, broadcast as NumPy's ``where``."""
        try:
            return tidy(xp.where(c, a, b))
        except (ValueError, TypeError, RuntimeError):  # NumPy's, JAX's and PyTorch's kinds of error
            shapes = [tuple(getattr(v, "shape", ())) for v in (c, a, b)]
            try:
                np.broadcast_shapes(*shapes)
            except ValueError:
                raise ValueError(f"the mask and the branches have shapes {', '.join(map(str, shapes))}, "
                                 "which do not broadcast") from None
            raise
    return where


define("where", (A, F, F), F, _where, typing="overloaded",
       signatures=(((BOOL, REAL, REAL), REAL), ((BOOL, TENSOR, TENSOR), TENSOR),
                   ((BOOL_TENSOR, TENSOR, TENSOR), TENSOR)),
       linear=(1, 2),
       jvp=(None, "where x1 dx2 0.0", "where x1 0.0 dx3"),
       vjp=(None, "unbroadcast (like x2) (where x1 a 0.0)", "unbroadcast (like x3) (where x1 0.0 a)"),
       doc="a where the mask holds, else b (broadcast); the unselected branch's derivative is an exact zero",
       example=("where (x1 > 0.0) x2 x3", ((2, 3), (2, 3), (3,))))


# ------------------------------------------------------------------ reducing masks


def _reduce_mask(fn_name: str):
    def impl(rt):
        fn = getattr(rt.backend.xp, fn_name)
        return lambda c: bool(fn(c))
    return impl


def _reduce_mask_along(fn_name: str):
    def impl(rt):
        fn = getattr(rt.backend.xp, fn_name)
        return lambda axis, c: fn(c, axis=axis_of(axis, c))
    return impl


define("any", (BOOL_TENSOR,), BOOL, _reduce_mask("any"), derivative="discrete",
       doc="whether the mask holds anywhere (false for an empty mask)")
define("all", (BOOL_TENSOR,), BOOL, _reduce_mask("all"), derivative="discrete",
       doc="whether the mask holds everywhere (true for an empty mask)")
define("any_axis", (INT, BOOL_TENSOR), BOOL_TENSOR, _reduce_mask_along("any"), derivative="discrete",
       doc="whether the mask holds anywhere along the axis, which is dropped")
define("all_axis", (INT, BOOL_TENSOR), BOOL_TENSOR, _reduce_mask_along("all"), derivative="discrete",
       doc="whether the mask holds everywhere along the axis, which is dropped")


# ------------------------------------------------------------------ order


def _arg_extreme(fn_name: str, extreme: str):
    def impl(rt):
        xp = rt.backend.xp
        fn = getattr(xp, fn_name)

        def arg_extreme(axis, x):
            if x.shape[axis_of(axis, x)] == 0:
                raise ValueError(f"axis {axis} of a tensor of shape {tuple(x.shape)} is empty: it has no {extreme}")
            return xp.astype(fn(x, axis=axis), xp.int64)
        return arg_extreme
    return impl


def _argsort(rt):
    xp = rt.backend.xp
    return lambda axis, x: xp.astype(xp.argsort(x, axis=axis_of(axis, x), stable=True), xp.int64, copy=False)


def _sort(rt):
    xp = rt.backend.xp
    return lambda axis, x: xp.sort(x, axis=axis_of(axis, x))


def along_index(xp, i, axis: int) -> tuple:
    """The index that picks, at each position of ``i``, the entry that ``i`` names along
    ``axis``, the other axes running along (NumPy's ``take_along_axis``):
    ``x[along_index(xp, i, axis)]`` has ``i``'s shape."""
    axis = axis_of(axis, i)
    return tuple(i if d == axis else xp.reshape(xp.arange(n), tuple(-1 if e == d else 1 for e in range(i.ndim)))
                 for d, n in enumerate(i.shape))


def _take_along(rt):
    take_along_axis = rt.backend.ext.take_along_axis
    return lambda axis, x, i: take_along_axis(x, i, axis=axis_of(axis, x))


def _put_along(rt):
    xp, dtype, add_at = rt.backend.xp, rt.backend.dtype, rt.backend.ext.add_at

    def put_along(axis, s, i, a):
        """Zeros of the shape of ``s`` with each entry of ``a`` added at the place ``i``
        names along ``axis``: the transpose of ``take_along`` (a sum where ``i`` repeats
        an index)."""
        return add_at(xp.zeros(s.shape, dtype=dtype), along_index(xp, i, axis), a)
    return put_along


def _top_k(rt):
    xp = rt.backend.xp

    def top_k(k, x):
        """The ``k`` largest entries along the last axis, largest first, and their
        indices: a stable descending order (ties: the lower index first; NaN above
        every number, as in ``sort``)."""
        if x.ndim == 0:
            raise ValueError("top_k needs a tensor of rank 1 or more: a 0-d tensor has no last axis")
        n = x.shape[-1]
        if not 0 <= k <= n:
            raise ValueError(f"k = {k} is {'negative' if k < 0 else 'larger than the last axis'}: "
                             f"top_k takes 0 to {n} entries along the last axis of a tensor of shape {tuple(x.shape)}")
        # a stable ascending sort of the reversed axis, reversed: descending, ties in index order
        ascending = xp.argsort(xp.flip(x, axis=-1), axis=-1, stable=True)
        i = xp.astype(n - 1 - xp.flip(ascending, axis=-1)[..., :k], xp.int64, copy=False)
        return rt.backend.ext.take_along_axis(x, i, axis=-1), i
    return top_k


define("argmax_axis", (INT, TENSOR), INT_TENSOR, _arg_extreme("argmax", "maximum"), derivative="discrete",
       doc="the index of the first maximum along the axis, which is dropped (a NaN counts as the maximum)")
define("argmin_axis", (INT, TENSOR), INT_TENSOR, _arg_extreme("argmin", "minimum"), derivative="discrete",
       doc="the index of the first minimum along the axis, which is dropped (a NaN counts as the minimum)")
define("argsort", (INT, TENSOR), INT_TENSOR, _argsort, derivative="discrete",
       doc="the indices that sort the tensor along the axis, stably (ties keep their order; NaN last)")
define("sort", (INT, TENSOR), TENSOR, _sort, derivative="special",
       jvp=("let (x, dx) = x2; i = argsort x1 x in (take_along x1 x i, take_along x1 dx i)",),
       vjp=("let (x, x') = x2; i = argsort x1 x; s = like x in "
            "(take_along x1 x i, \\(a : Tensor) -o x' (put_along x1 s i a))",),
       doc="the tensor sorted along the axis, ascending (NaN last); the derivative follows the stable argsort",
       example=("sort 1 x1", ((3, 4),)))
define("top_k", (INT, TENSOR), TupleType((TENSOR, INT_TENSOR)), _top_k, derivative="special",
       jvp=("let (x, dx) = x2; (v, i) = top_k x1 x in ((v, take_along (-1) dx i), i)",),
       vjp=("let (x, x') = x2; (v, i) = top_k x1 x; s = like x in "
            "((v, \\(a : Tensor) -o x' (put_along (-1) s i a)), i)",),
       doc="the k largest entries along the last axis, largest first, and their indices (ties: lower index first)",
       example=("fst (top_k 2 x1)", ((3, 4),)))
define("take_along", (INT, TENSOR, INT_TENSOR), TENSOR, _take_along, linear=(1,), public=False,
       jvp=(None, "take_along x1 dx2 x3", None), vjp=(None, "put_along x1 (like x2) x3 a", None),
       doc="the entries of x that the indices name along the axis (NumPy's take_along_axis)",
       example=("%take_along 1 x1 (argsort 1 x2)", ((2, 3), (2, 2))))
define("put_along", (INT, TENSOR, INT_TENSOR, TENSOR), TENSOR, _put_along, linear=(3,), public=False,
       jvp=(None, None, None, "put_along x1 x2 x3 dx4"), vjp=(None, None, None, "take_along x1 a x3"),
       doc="zeros of the shape of s with a added where the indices point along the axis: the transpose of take_along",
       example=("%put_along 1 x1 (argsort 1 x2) x3", ((2, 3), (2, 2), (2, 2))))
