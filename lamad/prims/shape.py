"""Shapes: transposing, reshaping, stacking and splitting tensors, and reading shapes.

``stack``, ``unstack``, ``concat`` and ``split_like`` take or make lists of tensors:
their rules are written for the whole transformed application, in terms of the
transformed arguments ``x1 … xk`` (``derivative="special"``).
"""

from __future__ import annotations

import itertools
import math

from lamad.prims.base import SHAPE, A, define
from lamad.syntax import BOOL_TENSOR, INT, INT_TENSOR, REAL, TENSOR, ListType


def _transpose(xp):
    def transpose(x):
        """The axes of ``x`` in reverse order (a matrix's transpose)."""
        return xp.permute_dims(x, tuple(range(x.ndim - 1, -1, -1)))
    return transpose


def _outer(xp):
    def outer(x, y):
        """Each entry of ``x`` times each of ``y``, both flattened (NumPy's ``outer``)."""
        return xp.reshape(x, (-1, 1)) * xp.reshape(y, (1, -1))
    return outer


def in_range(i: int, n: int) -> int:
    """``i``, an index of an axis of length ``n`` (``-1`` is the last); one out of range is
    an ``IndexError`` on every backend (JAX would clamp it to the nearest)."""
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for an axis of length {n}")
    return i % n


def _take(i, x):
    """The ``i``-th slice of ``x`` along its first axis."""
    if x.ndim == 0:
        raise ValueError("cannot take a slice of a 0-d tensor")
    return x[in_range(i, x.shape[0]), ...]


def _dot(rt):
    xp = rt.backend.xp

    def dot(x, y):
        if x.shape != y.shape:
            raise ValueError(f"operands have shapes {tuple(x.shape)} and {tuple(y.shape)}; dot needs equal shapes")
        return xp.sum(x * y)
    return dot


def _unstack(rt):
    def unstack(x):
        if x.ndim == 0:
            raise ValueError("cannot unstack a 0-d tensor")
        return [x[i, ...] for i in range(x.shape[0])]
    return unstack


def _scalar(rt):
    xp = rt.backend.xp

    def scalar(x):
        if math.prod(x.shape) != 1:
            raise ValueError(f"expected a tensor of one element, found shape {tuple(x.shape)}")
        return xp.reshape(x, ())
    return scalar


def split_like(xp, axis, xs, a):
    """``a`` split along ``axis`` into pieces of the sizes of the tensors ``xs``."""
    n = a.shape[axis]
    ends = [min(end, n) for end in itertools.accumulate(x.shape[axis] for x in xs)]  # clipped, as NumPy's split
    before = (slice(None),) * (axis % a.ndim)
    return [a[before + (slice(start, end), ...)] for start, end in zip([0] + ends, ends)]


define("transpose", (TENSOR,), TENSOR, lambda rt: _transpose(rt.backend.xp), linear=(0,),
       jvp=("transpose dx1",), vjp=("transpose a",), example=("transpose x1", ((2, 3),)))
define("reshape", (TENSOR, SHAPE), TENSOR, lambda rt: (lambda x, shape: rt.backend.xp.reshape(x, tuple(shape))),
       linear=(0,), jvp=("reshape dx1 x2", None), vjp=("reshape a (shape x1)", None),
       example=("reshape x1 [3, 2]", ((2, 3),)))
define("stack", (ListType(TENSOR),), TENSOR, lambda rt: rt.backend.xp.stack, linear=(0,), derivative="special",
       jvp=("(stack (map fst x1), stack (map snd x1))",),
       vjp=("let xs = map fst x1; y = stack xs in (y, \\(a : Tensor) -o sum_apply (map snd x1) (unstack a))",),
       example=("stack [x1, x2, x1 * x2]", ((2,), (2,))))
define("unstack", (TENSOR,), ListType(TENSOR), _unstack, linear=(0,), derivative="special",
       jvp=("let (x, dx) = x1 in zip (unstack x) (unstack dx)",),
       vjp=("let (x, x') = x1; xs = unstack x in "
            "map (\\(i, xi). (xi, \\(a : Tensor) -o x' (embed i x a))) (zip (range (length xs)) xs)",),
       example=("unstack (x1 * x1)", ((3, 2),)))
define("concat", (INT, ListType(TENSOR)), TENSOR,
       lambda rt: (lambda axis, xs: rt.backend.xp.concat(xs, axis=axis)), linear=(1,), derivative="special",
       jvp=("(concat x1 (map fst x2), concat x1 (map snd x2))",),
       vjp=("let xs = map fst x2; y = concat x1 xs in "
            "(y, \\(a : Tensor) -o sum_apply (map snd x2) (split_like x1 xs a))",),
       example=("concat 1 [x1, x2]", ((2, 1), (2, 3))))
define("split_like", (INT, ListType(TENSOR), TENSOR), ListType(TENSOR),
       lambda rt: (lambda axis, xs, a: split_like(rt.backend.xp, axis, xs, a)), linear=(2,), derivative="special",
       public=False,
       jvp=("let xs = map fst x2; (a, da) = x3 in zip (split_like x1 xs a) (split_like x1 xs da)",),
       vjp=("let xs = map fst x2; (x, x') = x3; ys = split_like x1 xs x in "
            "map (\\(i, y). (y, \\(a : Tensor) -o x' (pad_piece x1 xs i a))) (zip (range (length ys)) ys)",),
       doc="a tensor split along the axis into pieces of the sizes of the tensors of the list",
       example=("%split_like 0 [x2, x2, x1] (x3 * x3)", ((4,), (1,), (6,))))
define("dot", (TENSOR, TENSOR), REAL, _dot, linear=(0, 1), jvp=("dot dx1 x2", "dot x1 dx2"), vjp=("a * x2", "x1 * a"),
       example=("dot x1 x2", ((2, 3), (2, 3))))
define("outer", (TENSOR, TENSOR), TENSOR, lambda rt: _outer(rt.backend.xp), linear=(0, 1),
       jvp=("outer dx1 x2", "outer x1 dx2"),
       vjp=("reshape (a @ reshape x2 [-1]) (shape x1)", "reshape (transpose a @ reshape x1 [-1]) (shape x2)"),
       example=("outer x1 x2", ((2,), (1, 3))))
define("scalar", (TENSOR,), REAL, _scalar, linear=(0,), jvp=("scalar dx1",), vjp=("reshape a (shape x1)",),
       example=("scalar x1", ((1, 1),)))
define("expand_dims", (INT, TENSOR), TENSOR, lambda rt: (lambda axis, x: rt.backend.xp.expand_dims(x, axis)),
       linear=(1,), jvp=(None, "expand_dims x1 dx2"), vjp=(None, "sum_axis x1 a"),
       example=("expand_dims 1 x1", ((2, 3),)))
define("take", (INT, TENSOR), TENSOR, lambda rt: _take, linear=(1,),
       jvp=(None, "take x1 dx2"), vjp=(None, "embed x1 x2 a"), doc="the i-th slice of a tensor along its first axis",
       example=("take 2 x1", ((3, 2),)))
def axis_of(axis: int, x) -> int:
    """``axis`` of the array ``x`` counted from 0 (``-1`` is the last); an axis that ``x``
    does not have is a ``ValueError`` that names its rank and shape."""
    if not -x.ndim <= axis < x.ndim:
        axes = f"its axes are 0 to {x.ndim - 1}" if x.ndim else "it has no axes"
        raise ValueError(f"axis {axis} is out of range for a tensor of rank {x.ndim} "
                         f"(shape {tuple(x.shape)}): {axes}")
    return axis % x.ndim


def _dim(rt):
    def dim(axis, x):
        """The length of axis ``axis`` (Python's index counts from the end as :func:`axis_of`
        does; one out of range is refused by it, with the rank and the shape)."""
        shape = x.shape
        if not -len(shape) <= axis < len(shape):
            axis = axis_of(axis, x)
        return int(shape[axis])
    return dim


ARRAYS = (TENSOR, INT_TENSOR, BOOL_TENSOR)
define("dim", (INT, A), INT, _dim, typing="overloaded", signatures=tuple(((INT, t), INT) for t in ARRAYS),
       derivative="discrete", shape_only=True, doc="the length of an axis of an array")
define("shape", (A,), SHAPE, lambda rt: (lambda x: [int(n) for n in x.shape]), typing="overloaded",
       signatures=tuple(((t,), SHAPE) for t in ARRAYS), derivative="discrete", shape_only=True,
       doc="the shape of an array")
define("size", (A,), INT, lambda rt: (lambda x: math.prod(x.shape)), typing="overloaded",
       signatures=tuple(((t,), INT) for t in ARRAYS), derivative="discrete", shape_only=True,
       doc="the number of elements of an array")
define("count", (TENSOR,), REAL, lambda rt: (lambda x: rt.backend.array_scalar(math.prod(x.shape))), derivative="constant",
       shape_only=True, public=False, doc="the number of elements, as a Real", example=("%count x1", ((2, 3),)))


def _embed(rt):
    xp = rt.backend.xp

    def embed(i, x, a):
        """Zeros of the shape of ``x`` with ``a`` at the slice ``i`` of the first axis: a
        choice between them, so that it is the same on arrays that cannot be written to."""
        n = x.shape[0]
        at = xp.reshape(xp.arange(n) == in_range(i, n), (n,) + (1,) * (x.ndim - 1))
        return xp.where(at, a, 0.0)
    return embed


def _pad_piece(rt):
    xp = rt.backend.xp

    def pad_piece(axis, xs, i, a):
        return xp.concat([a if j == i else xp.zeros_like(x) for j, x in enumerate(xs)], axis=axis)
    return pad_piece


define("embed", (INT, TENSOR, TENSOR), TENSOR, _embed, linear=(2,), public=False,
       jvp=(None, None, "embed x1 x2 dx3"), vjp=(None, None, "take x1 a"),
       doc="zeros of the shape of x with a at the i-th slice: the transpose of take",
       example=("%embed 1 x1 x2", ((3, 2), (2,))))
define("piece", (INT, ListType(TENSOR), INT, TENSOR), TENSOR,
       lambda rt: (lambda axis, xs, i, a: split_like(rt.backend.xp, axis, xs, a)[i]), linear=(3,), public=False,
       jvp=(None, None, None, "piece x1 x2 x3 dx4"), vjp=(None, None, None, "pad_piece x1 x2 x3 a"),
       doc="the i-th piece of split_like", example=("%piece 0 [x2, x1] 1 (x1 * x1)", ((3,), (2,))))
define("pad_piece", (INT, ListType(TENSOR), INT, TENSOR), TENSOR, _pad_piece, linear=(3,), public=False,
       jvp=(None, None, None, "pad_piece x1 x2 x3 dx4"), vjp=(None, None, None, "piece x1 x2 x3 a"),
       doc="a as the i-th piece of a concatenation of zeros: the transpose of piece",
       example=("%pad_piece 1 [x2, x1] 1 (x1 * x1)", ((2, 3), (2, 1))))
