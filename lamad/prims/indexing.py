"""Indexing: ``x[i, a:b, ..., idx]`` on tensors, lists and tuples, functional updates
``x[i] := v`` and ``x[idx] += v``, and ``gather``/``scatter_add`` along an axis
(docs/language.md, "Indexing").

The parser writes an index as three arguments of a primitive: its *spec*, a string that
says what each position holds (``"_"`` a value, ``"..."``, or a slice such as ``"_:"`` or
``"::_"``, the present bounds written ``_``), the indexed value, and its *parts*, the
values of the ``_`` in order — ``()`` for none, the value itself for one, a tuple for
several.  ``x[i, 1:]`` is ``index "_,_:" x (i, 1)``.  The checker chooses the primitive by
the type of what is indexed (lamad/types.py): ``index`` for an array, ``index_list`` for
a list, a pattern for a tuple.

The derivatives are NumPy's indexing transposed: the cotangent of ``x[key]`` is written
into zeros of ``x``'s shape, repeated integer indices accumulating (``np.add.at``), so the
cost is that of the positions taken, with no one-hot matrix.

Indexing with NumPy's keys, writing into a copy and adding with repeats are extensions of
the array-API standard (lamad/extensions.py: ``getitem``, ``set_at``, ``add_at``); the
rank and range of every index are checked here, before any backend sees it, so that an
index out of range is an error on each (JAX would clamp it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lamad.prims.base import A, B, define
from lamad.syntax import (
    BOOL_TENSOR, ELLIPSIS, INT, INT_TENSOR, PART, STRING, TENSOR, IndexItem, ListType, Slice, parse_spec, part_count,
)


def parts_tuple(items: tuple[IndexItem, ...], parts: Any) -> tuple:
    """The runtime parts as a tuple: one part is passed as it is, several as a tuple."""
    return (parts,) if part_count(items) == 1 else tuple(parts)


def _key(items: tuple[IndexItem, ...], values: tuple) -> tuple:
    """The NumPy key of an index: its parts put at their positions."""
    it = iter(values)
    key: list[Any] = []
    for item in items:
        if item == PART:
            key.append(next(it))
        elif item == ELLIPSIS:
            key.append(Ellipsis)
        else:
            key.append(slice(*(next(it) if present else None for present in (item.start, item.stop, item.step))))
    return tuple(key)


def _check(xp, ext, items: tuple[IndexItem, ...], values: tuple, shape: tuple[int, ...]) -> None:
    """The rank and range checks of an index into an array of ``shape``, made by lamad so
    that every backend reports them alike (JAX would clamp an index out of range): an
    index may not name more axes than the array has, and an Int (or each entry of an
    IntTensor) at an axis of length ``n`` must be in ``-n … n - 1`` (negative indices
    count from the end)."""
    it = iter(values)
    placed: list[tuple[IndexItem, Any, int]] = []  # position, its part (if any), the axes it takes
    for item in items:
        value = next(it) if item == PART else None
        if isinstance(item, Slice):
            for _ in range(item.start + item.stop + item.step):
                next(it)
        width = 0 if item == ELLIPSIS else (value.ndim if _is_mask(xp, value) else 1)
        placed.append((item, value, width))
    taken = sum(width for _, _, width in placed)
    if taken > len(shape):
        raise ValueError(f"too many indices: a tensor of rank {len(shape)} (shape {tuple(shape)}) "
                         f"is indexed at {taken} axes")
    axis = 0
    for item, value, width in placed:
        if item == ELLIPSIS:
            axis += len(shape) - taken
        elif item == PART and not _is_mask(xp, value):
            _in_range(ext, value, axis, shape)
        axis += width


def _is_mask(xp, value: Any) -> bool:
    return getattr(value, "dtype", None) == xp.bool


def _in_range(ext, index: Any, axis: int, shape: tuple[int, ...]) -> None:
    """An Int or IntTensor index at ``axis`` is within the axis (negative from its end)."""
    n = shape[axis]
    if isinstance(index, int):
        low = high = index
    elif index.size == 0:
        return
    else:
        low, high = ext.extrema(index)
    for i in (low, high):
        if not -n <= i < n:
            raise ValueError(f"index {i} is out of range for axis {axis} of size {n} (shape {tuple(shape)})")


def array_key(xp, ext, spec: str, x: Any, parts: Any) -> tuple:
    """The NumPy key of ``x[spec parts]``, its rank and range checked."""
    items = parse_spec(spec)
    values = parts_tuple(items, parts)
    _check(xp, ext, items, values, tuple(x.shape))
    return _key(items, values)


def _indexed_shape(xp, ext, shape: tuple[int, ...], key: tuple) -> tuple[int, ...]:
    """The shape of ``x[key]`` for an ``x`` of ``shape``, found on a view of one Boolean
    (no array of ``x``'s size is made; an advanced key makes one of the result's size)."""
    return tuple(ext.getitem(xp.broadcast_to(xp.zeros((), dtype=xp.bool), shape), key).shape)


def _fits(xp, ext, value: Any, shape: tuple[int, ...], key: tuple, what: str) -> None:
    """The value written at ``key`` broadcasts to the indexed shape, without adding axes."""
    target = _indexed_shape(xp, ext, shape, key)
    given = tuple(getattr(value, "shape", ()))
    try:
        fits = len(given) <= len(target) and np.broadcast_shapes(given, target) == target
    except ValueError:  # shapes that do not broadcast together
        fits = False
    if not fits:
        raise ValueError(f"{what} of shape {given} does not fit the indexed shape {target}: "
                         "it must broadcast to it")


def added_at(xp, ext, out: Any, key: tuple, value: Any, what: str) -> Any:
    """``out``, a fresh array, with ``value`` added at ``key``, a position that the key
    repeats receiving every value sent to it (``ext.add_at``, NumPy's ``np.add.at``), once
    the value is checked to fit the indexed shape."""
    _fits(xp, ext, value, tuple(out.shape), key, what)
    return ext.add_at(out, key, value)


# --------------------------------------------------------------------- arrays


def _index(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def index(spec, x, parts):
        return ext.getitem(x, array_key(xp, ext, spec, x, parts))
    return index


def _embed_at(rt):
    xp, ext, dtype = rt.backend.xp, rt.backend.ext, rt.backend.dtype

    def embed_at(spec, x, parts, a):
        """Zeros of ``x``'s shape with ``a`` added at the index: the transpose of ``index``."""
        return added_at(xp, ext, xp.zeros(x.shape, dtype=dtype), array_key(xp, ext, spec, x, parts), a, "the cotangent")
    return embed_at


def _zero_at(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def zero_at(spec, a, parts):
        """``a`` with zeros at the index (its own transpose)."""
        return ext.set_at(xp.asarray(a, copy=True), array_key(xp, ext, spec, a, parts), 0.0)
    return zero_at


def _index_set(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def index_set(spec, x, parts, v):
        """``x[key] := v``: a copy of ``x`` with ``v`` at the index.  A position written
        twice (a repeated integer index) is an error: which value would win is not
        defined, and neither would the derivative be."""
        key = array_key(xp, ext, spec, x, parts)
        shape = tuple(x.shape)
        _fits(xp, ext, v, shape, key, "the value")
        if any(hasattr(k, "dtype") and not _is_mask(xp, k) for k in key):  # integer arrays may repeat
            written = ext.set_at(xp.zeros(shape, dtype=xp.bool), key, True)
            if int(xp.count_nonzero(written)) < math.prod(_indexed_shape(xp, ext, shape, key)):
                raise ValueError("the index names a position twice (a repeated index), so the value there would "
                                 "be undefined: give distinct indices, or add with +=")
        return ext.set_at(xp.asarray(x, copy=True), key, v)
    return index_set


def _index_add(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def index_add(spec, x, parts, v):
        """``x[key] += v``: a copy of ``x`` with ``v`` added at the index, a repeated
        position receiving each value sent to it."""
        return added_at(xp, ext, xp.asarray(x, copy=True), array_key(xp, ext, spec, x, parts), v, "the value")
    return index_add


# --------------------------------------------------------------------- lists


def _index_list(rt):
    def index_list(spec, xs, parts):
        """``xs[i]`` (an element) or ``xs[a:b:s]`` (a list), with Python's rules."""
        items = parse_spec(spec)
        values = parts_tuple(items, parts)
        (item,) = items
        if isinstance(item, Slice):
            return xs[_key(items, values)[0]]
        (i,) = values
        if not -len(xs) <= i < len(xs):
            raise ValueError(f"index {i} is out of range for a list of length {len(xs)}")
        return xs[i]
    return index_list


# --------------------------------------------------------------------- along an axis


def _along(axis: int, ndim: int, what: str) -> int:
    """``axis`` of an array of rank ``ndim``, counted from 0 (a negative one from the end)."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {what} of rank {ndim}")
    return axis % ndim


def _axis_key(ext, axis: int, idx: Any, shape: tuple[int, ...]) -> tuple:
    """The key that takes ``idx`` along ``axis`` of an array of ``shape``, checked."""
    axis = _along(axis, len(shape), "a tensor")
    _in_range(ext, idx, axis, shape)
    return (slice(None),) * axis + (idx,)


def _gather(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def gather(axis, idx, x):
        """``x[:, …, idx]``: the standard's ``take`` of the indices flattened (negative ones
        counted from the end first), reshaped."""
        k = len(_axis_key(ext, axis, idx, tuple(x.shape))) - 1
        flat = xp.reshape(idx, (-1,))
        taken = xp.take(x, xp.where(flat < 0, flat + x.shape[k], flat), axis=k)
        return xp.reshape(taken, tuple(x.shape[:k]) + tuple(idx.shape) + tuple(x.shape[k + 1:]))
    return gather


def _embed_along(rt):
    xp, ext, dtype = rt.backend.xp, rt.backend.ext, rt.backend.dtype

    def embed_along(axis, idx, x, a):
        """Zeros of ``x``'s shape with ``a`` added at ``idx`` along ``axis``: the transpose
        of ``gather``."""
        key = _axis_key(ext, axis, idx, tuple(x.shape))
        return added_at(xp, ext, xp.zeros(x.shape, dtype=dtype), key, a, "the cotangent")
    return embed_along


def _scatter_add(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def scatter_add(axis, idx, x, v):
        key = _axis_key(ext, axis, idx, tuple(x.shape))
        return added_at(xp, ext, xp.asarray(x, copy=True), key, v, "the value")
    return scatter_add


# --------------------------------------------------------------------- the records

define("index", (STRING, A, B), A, _index, typing="index", linear=(1,),
       jvp=(None, "index x1 dx2 x3", None), vjp=(None, "embed_at x1 (like x2) x3 a", None), public=False,
       doc="x[…]: an array indexed by the spec's positions (written with brackets)",
       example=("x1[ints [2, 0, 2], 1:]", ((3, 3),)))
define("embed_at", (STRING, TENSOR, A, TENSOR), TENSOR, _embed_at, linear=(3,), public=False,
       jvp=(None, None, None, "embed_at x1 x2 x3 dx4"), vjp=(None, None, None, "unbroadcast (like x4) (index x1 a x3)"),
       doc="zeros of the shape of x with a added at the index: the transpose of index",
       example=('%embed_at "_,_:" x1 (ints [2, 0, 2], 1) x2', ((3, 3), (3, 2))))
define("zero_at", (STRING, TENSOR, A), TENSOR, _zero_at, linear=(1,), public=False,
       jvp=(None, "zero_at x1 dx2 x3", None), vjp=(None, "zero_at x1 a x3", None),
       doc="a with zeros at the index",
       example=('%zero_at "_,_:" x1 (ints [2, 0, 2], 1)', ((3, 3),)))
define("index_set", (STRING, A, B, TENSOR), A, _index_set, typing="index", public=False,
       jvp=(None, "zero_at x1 dx2 x3", None, "embed_at x1 (like x2) x3 dx4"),
       vjp=(None, "zero_at x1 a x3", None, "unbroadcast (like x4) (index x1 a x3)"),
       doc="x[…] := v: a copy of x with v at the index",
       example=("x1[ints [2, 0], 1:] := x2", ((3, 3), (2,))))
define("index_add", (STRING, A, B, TENSOR), A, _index_add, typing="index", public=False,
       jvp=(None, "dx2", None, "embed_at x1 (like x2) x3 dx4"),
       vjp=(None, "a", None, "unbroadcast (like x4) (index x1 a x3)"),
       doc="x[…] += v: a copy of x with v added at the index, repeated positions accumulating",
       example=("x1[ints [2, 0, 2], 1:] += x2", ((3, 3), (2,))))
define("index_list", (STRING, ListType(A), B), A, _index_list, typing="index", derivative="structural",
       public=False, doc="xs[i], xs[a:b:s]: an element or a slice of a list (written with brackets)")

_ARRAYS = (TENSOR, INT_TENSOR, BOOL_TENSOR)
define("gather", (INT, INT_TENSOR, A), A, _gather, typing="overloaded",
       signatures=tuple(((INT, INT_TENSOR, t), t) for t in _ARRAYS), linear=(2,),
       jvp=(None, None, "gather x1 x2 dx3"), vjp=(None, None, "embed_along x1 x2 (like x3) a"),
       doc="the entries of x at the integer array idx along the axis: gather 0 idx x is x[idx]",
       example=("gather 1 (ints [2, 0, 2]) x1", ((2, 3),)))
define("embed_along", (INT, INT_TENSOR, TENSOR, TENSOR), TENSOR, _embed_along, linear=(3,), public=False,
       jvp=(None, None, None, "embed_along x1 x2 x3 dx4"),
       vjp=(None, None, None, "unbroadcast (like x4) (gather x1 x2 a)"),
       doc="zeros of the shape of x with a added at idx along the axis: the transpose of gather",
       example=("%embed_along 1 (ints [2, 0, 2]) x1 x2", ((2, 3), (2, 3))))
define("scatter_add", (INT, INT_TENSOR, TENSOR, TENSOR), TENSOR, _scatter_add,
       jvp=(None, None, "dx3", "embed_along x1 x2 (like x3) dx4"),
       vjp=(None, None, "a", "unbroadcast (like x4) (gather x1 x2 a)"),
       doc="x with v added at idx along the axis, repeated indices accumulating: the transpose of gather",
       example=("scatter_add 1 (ints [2, 0, 2]) x1 x2", ((2, 3), (2, 3))))
