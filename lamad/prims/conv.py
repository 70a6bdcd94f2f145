"""Convolutions and pooling over the last two axes of a tensor, in PyTorch's layout.

``conv2d stride padding x w`` is PyTorch's ``conv2d`` (without bias, groups or dilation):
the cross-correlation of the images ``x`` (N × C × H × W) with the kernels ``w``
(O × C × kh × kw), ``x`` padded with ``padding`` zeros on each side of its last two axes,
the kernels moved ``stride`` places at a time; the result is N × O × Ho × Wo with
``Ho = (H + 2 padding - kh) // stride + 1`` (and ``Wo`` alike): rows and columns that no
whole window reaches are not read.  ``max_pool2d k stride x`` and ``avg_pool2d k stride x``
take the maximum and the mean of each k × k window of the last two axes (no padding),
whatever the axes before them.

A convolution is one matrix product (im2col): the windows of the padded images, a strided
view (``sliding_window_view``, an extension of the array-API standard: ``ext.windows``),
are written out as a (C·kh·kw) × (N·Ho·Wo) matrix, which the kernels, an O × (C·kh·kw)
matrix, multiply.  That order of the axes keeps the copy's
inner loop along rows of the images.  Its transposes scatter the windows back: one
strided addition per kernel entry (``kh · kw`` of them) into zeros of the padded shape, so
entries shared by overlapping windows accumulate.  A pooling works on the ``k²`` strided
slices that hold one entry of every window: a maximum or a sum of ``k²`` of them, and its
transpose ``k²`` strided additions.  Both are far cheaper than a reduction over the short
last axes of a window view.

Derivatives:

* ``conv2d`` is bilinear.  Its tangent is ``conv2d dx w + conv2d x dw``; its transposed
  derivative in ``x`` is the transposed convolution ``conv2d_dx`` (the kernels' transpose
  times the cotangent, scattered back, the padding sliced off), in ``w`` the correlation
  ``conv2d_dw`` of ``x`` with the cotangent.  Each helper is linear in two arguments and
  the transpose of the others, so derivatives of every order are convolutions again.
* ``avg_pool2d`` is linear: its transpose ``avg_unpool`` spreads each entry over its
  window, divided by ``k²``.
* ``max_pool2d``'s tangent ``max_pool_select`` takes, in each window, the tangent at the
  window's maxima, and its transpose ``max_unpool`` sends each window's cotangent to its
  maxima: each of ``m`` tied maxima gets ``1/m`` of it, as ``max_axis`` splits a tie, and
  an entry that is the maximum of several overlapping windows receives from each.  The
  other entries get an exact zero (a ``where``, not a product with a mask).  Both helpers
  take ``x`` and the maxima ``y = max_pool2d k stride x`` (not computed again), on which
  they depend only through a choice that is locally constant: they have no derivative in
  them.

A tensor of the wrong rank, a channel count that the kernels do not take, a window larger
than the (padded) input, a stride or window size below 1 and a negative padding are
run-time errors, raised here and located by the evaluator at the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from lamad.prims.base import define
from lamad.syntax import INT, TENSOR


# ------------------------------------------------------------------ geometry


def window_entries(kh: int, kw: int, stride: int, ho: int, wo: int) -> list[tuple[int, int, tuple]]:
    """For each entry ``(i, j)`` of a ``kh`` × ``kw`` window, with ``ho`` × ``wo`` windows
    ``stride`` apart, the index ``(…, rows, columns)`` of the strided slice of the last two
    axes that holds that entry of every window."""
    return [(i, j, (Ellipsis, slice(i, i + stride * (ho - 1) + 1, stride), slice(j, j + stride * (wo - 1) + 1, stride)))
            for i in range(kh) for j in range(kw)]


def _at_least_one(n: int, what: str) -> int:
    if n < 1:
        raise ValueError(f"{what} is {n}: it must be at least 1")
    return n


def _positions(n: int, k: int, stride: int) -> int:
    """How many windows of length ``k``, ``stride`` apart, fit in a length ``n``."""
    return (n - k) // stride + 1


@dataclass(frozen=True)
class Pool:
    """The windows of a pooling: ``k`` × ``k``, ``stride`` apart, ``ho`` × ``wo`` of them."""

    k: int
    stride: int
    ho: int
    wo: int

    def pooled(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the pooling of a tensor of ``shape``."""
        return tuple(shape[:-2]) + (self.ho, self.wo)

    @property
    def entries(self) -> list[tuple]:
        """The index of each of the ``k²`` strided slices (row-major over the window)."""
        return [index for _, _, index in window_entries(self.k, self.k, self.stride, self.ho, self.wo)]


def pool_geometry(name: str, k: int, stride: int, shape: tuple[int, ...]) -> Pool:
    """The windows of ``name k stride`` over a tensor of ``shape``, checked."""
    if len(shape) < 2:
        raise ValueError(f"{name} pools the last two axes of a tensor of rank 2 or more, not of shape {tuple(shape)}")
    _at_least_one(k, f"the window size of {name}")
    _at_least_one(stride, f"the stride of {name}")
    h, w = shape[-2:]
    if k > h or k > w:
        raise ValueError(f"the {k} x {k} window of {name} is larger than the last two axes of a tensor of shape "
                         f"{tuple(shape)} ({h} x {w})")
    return Pool(k, stride, _positions(h, k, stride), _positions(w, k, stride))


@dataclass(frozen=True)
class Conv:
    """A convolution of an N × C × H × W input with O × C × kh × kw kernels, ``stride`` and
    ``padding`` given: an N × O × ho × wo result."""

    stride: int
    padding: int
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    ho: int
    wo: int

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.o, self.ho, self.wo)


def conv_geometry(stride: int, padding: int, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> Conv:
    """The convolution ``conv2d stride padding x w`` of an ``x`` and a ``w`` of these
    shapes, checked."""
    if len(x_shape) != 4:
        raise ValueError(f"conv2d takes images of rank 4 (N, C, H, W), not of shape {tuple(x_shape)}")
    if len(w_shape) != 4:
        raise ValueError(f"conv2d takes kernels of rank 4 (O, C, kh, kw), not of shape {tuple(w_shape)}")
    _at_least_one(stride, "the stride of conv2d")
    if padding < 0:
        raise ValueError(f"the padding of conv2d is negative: {padding}")
    n, c, h, w = x_shape
    o, kc, kh, kw = w_shape
    if c != kc:
        raise ValueError(f"the images have {c} channels (shape {tuple(x_shape)}) but the kernels take {kc} "
                         f"(shape {tuple(w_shape)})")
    hp, wp = h + 2 * padding, w + 2 * padding
    if kh > hp or kw > wp:
        raise ValueError(f"the {kh} x {kw} kernels are larger than the images padded to {hp} x {wp} "
                         f"(shape {tuple(x_shape)}, padding {padding})")
    return Conv(stride, padding, n, c, h, w, o, kh, kw, _positions(hp, kh, stride), _positions(wp, kw, stride))


def _expect_shape(what: str, value, shape: tuple[int, ...]) -> None:
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(value.shape)}, not {tuple(shape)}")


# ------------------------------------------------------------------ convolution


def _padded(xp, ext, x, padding: int):
    """``x`` with ``padding`` zeros on each side of its last two axes."""
    if padding == 0:
        return x
    h, w = x.shape[-2:]
    out = xp.zeros(tuple(x.shape[:-2]) + (h + 2 * padding, w + 2 * padding), dtype=x.dtype)
    return ext.set_at(out, (Ellipsis, slice(padding, padding + h), slice(padding, padding + w)), x)


def _columns(xp, ext, g: Conv, x):
    """im2col: the windows of the padded images ``x`` as a (C·kh·kw) × (N·Ho·Wo) matrix,
    written out from a strided view of them (``ext.windows``)."""
    view = ext.windows(_padded(xp, ext, x, g.padding), g.kh, g.kw, g.stride)   # N C Ho Wo kh kw
    return xp.reshape(xp.permute_dims(view, (1, 4, 5, 0, 2, 3)), (g.c * g.kh * g.kw, g.n * g.ho * g.wo))


def _rows(xp, g: Conv, a):
    """The cotangent ``a`` (N × O × Ho × Wo) as an O × (N·Ho·Wo) matrix."""
    _expect_shape("the cotangent of conv2d", a, g.out_shape)
    return xp.reshape(xp.permute_dims(a, (1, 0, 2, 3)), (g.o, g.n * g.ho * g.wo))


def _conv2d(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def conv2d(stride, padding, x, w):
        g = conv_geometry(stride, padding, x.shape, w.shape)
        y = xp.reshape(w, (g.o, -1)) @ _columns(xp, ext, g, x)                 # O × N·Ho·Wo
        return xp.permute_dims(xp.reshape(y, (g.o, g.n, g.ho, g.wo)), (1, 0, 2, 3))
    return conv2d


def transposed_convolution(xp, ext, g: Conv, w, a):
    """The transposed convolution of ``a`` with the kernels ``w``: the kernels' transpose
    times ``a`` gives the cotangent of each window, which is scattered back into the padded
    images, entries of overlapping windows accumulating; the padding is sliced off."""
    cols = xp.reshape(xp.reshape(w, (g.o, -1)).T @ _rows(xp, g, a), (g.c, g.kh, g.kw, g.n, g.ho, g.wo))
    p = g.padding
    out = xp.zeros((g.c, g.n, g.h + 2 * p, g.w + 2 * p), dtype=cols.dtype)
    for i, j, index in window_entries(g.kh, g.kw, g.stride, g.ho, g.wo):
        out = ext.add_at(out, index, cols[:, i, j, ...])
    return xp.permute_dims(out[:, :, p:p + g.h, p:p + g.w], (1, 0, 2, 3))


def _conv2d_dx(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def conv2d_dx(stride, padding, x, w, a):
        return transposed_convolution(xp, ext, conv_geometry(stride, padding, x.shape, w.shape), w, a)
    return conv2d_dx


def _conv2d_dw(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def conv2d_dw(stride, padding, x, w, a):
        """The correlation of the padded images with ``a``: for each kernel entry, the sum
        of ``a`` times the image entries it met."""
        g = conv_geometry(stride, padding, x.shape, w.shape)
        return xp.reshape(_rows(xp, g, a) @ _columns(xp, ext, g, x).T, tuple(w.shape))
    return conv2d_dw


define("conv2d", (INT, INT, TENSOR, TENSOR), TENSOR, _conv2d, linear=(2, 3),
       jvp=(None, None, "conv2d x1 x2 dx3 x4", "conv2d x1 x2 x3 dx4"),
       vjp=(None, None, "conv2d_dx x1 x2 (like x3) x4 a", "conv2d_dw x1 x2 x3 (like x4) a"),
       doc="the cross-correlation of N x C x H x W images with O x C x kh x kw kernels (PyTorch's conv2d)",
       example=("conv2d 2 1 x1 x2", ((2, 2, 4, 5), (3, 2, 3, 2))))
define("conv2d_dx", (INT, INT, TENSOR, TENSOR, TENSOR), TENSOR, _conv2d_dx, linear=(3, 4), public=False,
       jvp=(None, None, None, "conv2d_dx x1 x2 x3 dx4 x5", "conv2d_dx x1 x2 x3 x4 dx5"),
       vjp=(None, None, None, "conv2d_dw x1 x2 a (like x4) x5", "conv2d x1 x2 a x4"),
       doc="the transposed derivative of conv2d in the images, applied to a: a transposed convolution",
       example=("%conv2d_dx 2 1 x1 x2 x3", ((2, 2, 4, 5), (3, 2, 3, 2), (2, 3, 2, 3))))
define("conv2d_dw", (INT, INT, TENSOR, TENSOR, TENSOR), TENSOR, _conv2d_dw, linear=(2, 4), public=False,
       jvp=(None, None, "conv2d_dw x1 x2 dx3 x4 x5", None, "conv2d_dw x1 x2 x3 x4 dx5"),
       vjp=(None, None, "conv2d_dx x1 x2 (like x3) a x5", None, "conv2d x1 x2 x3 a"),
       doc="the transposed derivative of conv2d in the kernels, applied to a: the images correlated with a",
       example=("%conv2d_dw 2 1 x1 x2 x3", ((2, 2, 4, 5), (3, 2, 3, 2), (2, 3, 2, 3))))


# ------------------------------------------------------------------ pooling


def _max_pool2d(rt):
    xp = rt.backend.xp

    def max_pool2d(k, stride, x):
        g = pool_geometry("max_pool2d", k, stride, x.shape)
        return reduce(xp.maximum, [x[index] for index in g.entries])
    return max_pool2d


def _avg_pool2d(rt):
    def avg_pool2d(k, stride, x):
        g = pool_geometry("avg_pool2d", k, stride, x.shape)
        return reduce(lambda s, t: s + t, [x[index] for index in g.entries]) / (k * k)
    return avg_pool2d


def _avg_unpool(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def avg_unpool(k, stride, x, a):
        g = pool_geometry("avg_pool2d", k, stride, x.shape)
        _expect_shape("the cotangent of avg_pool2d", a, g.pooled(x.shape))
        share = a / (k * k)
        out = xp.zeros(x.shape, dtype=a.dtype)
        for index in g.entries:
            out = ext.add_at(out, index, share)
        return out
    return avg_unpool


def _maxima(xp, g: Pool, x, y) -> tuple[list, object]:
    """Whether each entry of each window of ``x`` is its window's maximum in ``y`` (a mask
    per entry of the window, in the order of ``g.entries``), and one over the number of
    maxima of each window.  No entry equals a maximum that is NaN: such a window gets
    nothing."""
    _expect_shape("the maxima of max_pool2d", y, g.pooled(x.shape))
    hits = [x[index] == y for index in g.entries]
    count = reduce(lambda s, h: s + xp.astype(h, y.dtype), hits[1:], xp.astype(hits[0], y.dtype))
    return hits, 1.0 / xp.maximum(count, 1.0)


def _max_pool_select(rt):
    xp = rt.backend.xp

    def max_pool_select(k, stride, x, y, t):
        """In each window, the mean of ``t`` at the maxima ``y`` of ``x``'s window."""
        g = pool_geometry("max_pool2d", k, stride, x.shape)
        _expect_shape("the tangent of max_pool2d", t, tuple(x.shape))
        hits, share = _maxima(xp, g, x, y)
        return reduce(lambda s, u: s + u, [xp.where(hit, t[index], 0.0) for hit, index in zip(hits, g.entries)]) * share
    return max_pool_select


def _max_unpool(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def max_unpool(k, stride, x, y, a):
        """Each window's cotangent sent to its maxima ``y``, shared equally among tied ones.
        Windows that do not overlap are written, not added, and where they tile ``x``
        exactly nothing is zeroed first."""
        g = pool_geometry("max_pool2d", k, stride, x.shape)
        _expect_shape("the cotangent of max_pool2d", a, g.pooled(x.shape))
        hits, share = _maxima(xp, g, x, y)
        part = a * share
        tiled = stride == k and x.shape[-2:] == (g.ho * k, g.wo * k)
        out = (xp.empty if tiled else xp.zeros)(x.shape, dtype=a.dtype)
        write = ext.set_at if stride >= k else ext.add_at
        for hit, index in zip(hits, g.entries):
            out = write(out, index, xp.where(hit, part, 0.0))
        return out
    return max_unpool


define("max_pool2d", (INT, INT, TENSOR), TENSOR, _max_pool2d,
       jvp=(None, None, "max_pool_select x1 x2 x3 y dx3"), vjp=(None, None, "max_unpool x1 x2 x3 y a"),
       doc="the maximum of each k x k window of the last two axes, stride apart (tied maxima share the derivative)",
       example=("max_pool2d 2 1 x1", ((2, 3, 4),)))
define("max_pool_select", (INT, INT, TENSOR, TENSOR, TENSOR), TENSOR, _max_pool_select, linear=(4,), public=False,
       jvp=(None, None, None, None, "max_pool_select x1 x2 x3 x4 dx5"),
       vjp=(None, None, None, None, "max_unpool x1 x2 x3 x4 a"),
       doc="in each k x k window, the mean of t at the maxima y of x's window: max_pool2d's tangent",
       example=("%max_pool_select 2 1 x1 (max_pool2d 2 1 x1) x2", ((2, 3, 4), (2, 3, 4))))
define("max_unpool", (INT, INT, TENSOR, TENSOR, TENSOR), TENSOR, _max_unpool, linear=(4,), public=False,
       jvp=(None, None, None, None, "max_unpool x1 x2 x3 x4 dx5"),
       vjp=(None, None, None, None, "max_pool_select x1 x2 x3 x4 a"),
       doc="each window's entry of a sent to the maxima y of x's window, shared among ties: max_pool2d's transpose",
       example=("%max_unpool 2 1 x1 (max_pool2d 2 1 x1) x2", ((2, 3, 4), (2, 2, 3))))
define("avg_pool2d", (INT, INT, TENSOR), TENSOR, _avg_pool2d, linear=(2,),
       jvp=(None, None, "avg_pool2d x1 x2 dx3"), vjp=(None, None, "avg_unpool x1 x2 (like x3) a"),
       doc="the mean of each k x k window of the last two axes, stride apart",
       example=("avg_pool2d 3 2 x1", ((2, 5, 6),)))
define("avg_unpool", (INT, INT, TENSOR, TENSOR), TENSOR, _avg_unpool, linear=(3,), public=False,
       jvp=(None, None, None, "avg_unpool x1 x2 x3 dx4"), vjp=(None, None, None, "avg_pool2d x1 x2 a"),
       doc="each entry of a spread over its k x k window of x's shape, divided by k²: the transpose of avg_pool2d",
       example=("%avg_unpool 3 2 x1 x2", ((2, 5, 6), (2, 2, 2))))
