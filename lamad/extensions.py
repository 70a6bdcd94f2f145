"""lamad's operations outside the array-API standard, one implementation per backend.

The primitives (:mod:`lamad.prims`) call only the standard namespace ``xp`` of their
backend, and ``ext``, an :class:`Extensions` of the few operations the standard has not
(docs/backends.md lists them with the reason for each).  Each field is a function on that
backend's arrays; a backend whose library has the operation uses it, and
``array-api-strict`` — the standard and nothing more — gets the same operation written
through the host (NumPy), which is what a test of the primitives there needs: every call
that is not an extension then has to be the standard's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Extensions:
    """A backend's extensions; ``host`` marks an array-API namespace whose extensions go
    through NumPy (array-api-strict)."""

    to_host: Callable[[Any], np.ndarray]
    """A NumPy copy of an array (for output, and for the values a program prints)."""
    from_host: Callable[[np.ndarray], Any]
    """A NumPy array as this backend's, of the same dtype."""

    # -- lazy backends (Dask): loop state persisted each step, files read chunk by chunk
    persist: Callable[[Any], Any] = field(default=lambda value: value, kw_only=True)
    """A loop's state after a step (a value: arrays, within tuples and lists), its lazy
    arrays computed and kept where they were computed, so that the next step's task graph
    starts from them and stays the size of one step; the standard evaluates eagerly and
    has no such operation.  The identity on eager backends."""
    mmap_mode: str | None = field(default=None, kw_only=True)
    """How ``load`` opens a ``.npy`` file: ``"r"`` memory-maps it, and ``from_host`` then
    reads its rows chunk by chunk when they are needed; ``None`` reads it whole."""


def extensions(name: str, xp: Any) -> Extensions:
    """The extensions of the backend ``name``, whose namespace is ``xp``."""
    return _MAKERS[name](xp)


def _numpy(xp: Any) -> Extensions:
    return Extensions(to_host=np.asarray, from_host=np.asarray)


def _cupy(xp: Any) -> Extensions:
    import cupy

    return Extensions(to_host=cupy.asnumpy, from_host=cupy.asarray)


def _torch(xp: Any) -> Extensions:
    import torch

    return Extensions(to_host=lambda x: x.detach().cpu().numpy(), from_host=torch.from_numpy)


def _jax(xp: Any) -> Extensions:
    return Extensions(to_host=np.asarray, from_host=xp.asarray)


def _dask(xp: Any) -> Extensions:
    return Extensions(to_host=lambda x: np.asarray(x.compute()), from_host=_dask_rows, persist=_dask_persist,
                      mmap_mode="r")


def _row_chunks(ndim: int) -> tuple:
    """Dask chunks by rows: whole rows, as many as fill Dask's ``array.chunk-size``."""
    return ("auto",) + (-1,) * (ndim - 1) if ndim else ()


def _dask_rows(value: np.ndarray) -> Any:
    """A NumPy array as a Dask array chunked by rows; a memory-mapped ``.npy`` file as
    one whose chunks read their rows from the file when they are computed, wherever
    that is (the file must be at the same path there), so that the data never passes
    through this process nor sits whole in memory."""
    import dask.array as da

    if not (isinstance(value, np.memmap) and value.filename is not None and value.flags.c_contiguous
            and value.size):
        return da.from_array(value, chunks=_row_chunks(value.ndim))
    import dask
    from dask.array.core import normalize_chunks

    rows, rest = normalize_chunks(_row_chunks(value.ndim), value.shape, dtype=value.dtype)[0], value.shape[1:]
    row_bytes, start, blocks = value.itemsize * prod(rest), 0, []
    for n in rows:
        block = dask.delayed(read_rows, pure=True)(value.filename, value.offset + start * row_bytes,
                                                   value.dtype.str, (n, *rest))
        blocks.append(da.from_delayed(block, shape=(n, *rest), dtype=value.dtype))
        start += n
    return da.concatenate(blocks)


def read_rows(filename: str, offset: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """The block of ``shape`` at byte ``offset`` of a file of C-ordered ``dtype`` data,
    read into memory (a chunk of a memory-mapped ``.npy``)."""
    return np.array(np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape))


def _dask_persist(value: Any) -> Any:
    """``value`` with its Dask arrays persisted together (on the cluster when there is
    one, where they stay: ``dask.persist``); closures and other values as they are."""
    import dask
    import dask.array as da

    arrays = [leaf for leaf in _leaves(value) if isinstance(leaf, da.Array)]
    if not arrays:
        return value
    persisted = iter(dask.persist(*arrays))
    return _replaced(value, lambda leaf: next(persisted) if isinstance(leaf, da.Array) else leaf)


def _leaves(value: Any):
    """The leaves of a value's tuples and lists (records are tuples), first to last."""
    if type(value) in (tuple, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _replaced(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """``value`` with each leaf replaced by ``leaf`` of it, in the order of :func:`_leaves`."""
    if type(value) in (tuple, list):
        return type(value)(_replaced(item, leaf) for item in value)
    return leaf(value)


def _strict(xp: Any) -> Extensions:
    return Extensions(to_host=np.from_dlpack, from_host=xp.asarray)


_MAKERS: dict[str, Callable[[Any], Extensions]] = {
    "numpy": _numpy, "cupy": _cupy, "torch": _torch, "jax": _jax, "dask": _dask, "array-api-strict": _strict,
}
