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

from dataclasses import dataclass
import math
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

    # --- the evaluator and the elementwise, reduction, shape and order primitives
    errors: tuple[type[Exception], ...]
    """What the library raises for bad input besides Python's ``ValueError``, ``TypeError``
    and ``IndexError`` (PyTorch's ``RuntimeError``: operands that do not broadcast), which
    the evaluator locates as it locates those."""
    erf: Callable[[Any], Any]
    """The error function of each entry (of a 0-d array too): the standard has no special
    functions."""
    add_at: Callable[[Any, tuple, Any], Any]
    """``out`` with ``values`` added at the integer-array ``index`` (a sum where it repeats
    a place), NumPy's ``np.add.at``: the standard's ``__setitem__`` writes, it does not
    accumulate.  It may update ``out`` in place (a fresh array the caller made) and returns
    the result, as JAX's arrays cannot be written to."""
    take_along_axis: Callable[..., Any]
    """``take_along_axis(x, indices, axis=a)``, the standard's (2024.12), which Dask's
    namespace lacks: there, a map of NumPy's over blocks whole along the axis."""
    broadcast: Callable[[Any, Any], Any]
    """``g`` broadcast to the shape of ``x`` as an array nothing else refers to (``g`` itself
    where the shapes agree): the transpose of summing down to a shape.  The standard's
    ``broadcast_to`` is a view (read-only in NumPy), and its copy through ``asarray(copy=True)``
    costs NumPy several times an assignment into ``empty`` on small arrays; immutable arrays
    (JAX's, Dask's graphs) keep the view."""


def extensions(name: str, xp: Any) -> Extensions:
    """The extensions of the backend ``name``, whose namespace is ``xp``."""
    return _MAKERS[name](xp)


def _numpy(xp: Any) -> Extensions:
    return Extensions(errors=(), to_host=np.asarray, from_host=np.asarray, erf=_host_erf, add_at=_numpy_add_at,
                      take_along_axis=xp.take_along_axis, broadcast=_assigned(xp))


def _cupy(xp: Any) -> Extensions:
    import cupy
    import cupyx
    from cupyx.scipy.special import erf

    def add_at(out, index, values):
        cupyx.scatter_add(out, index, values)
        return out

    return Extensions(errors=(), to_host=cupy.asnumpy, from_host=cupy.asarray, erf=erf, add_at=add_at,
                      take_along_axis=cupy.take_along_axis, broadcast=_assigned(xp))


def _torch(xp: Any) -> Extensions:
    import torch

    def add_at(out, index, values):
        return out.index_put_(index, torch.broadcast_to(values, torch.broadcast_shapes(*(i.shape for i in index))),
                              accumulate=True)

    return Extensions(errors=(RuntimeError,), to_host=lambda x: x.detach().cpu().numpy(), from_host=torch.from_numpy,
                      erf=torch.special.erf, add_at=add_at, take_along_axis=xp.take_along_axis,
                      broadcast=_assigned(xp))


def _jax(xp: Any) -> Extensions:
    import jax

    return Extensions(errors=(), to_host=np.asarray, from_host=xp.asarray, erf=jax.scipy.special.erf,
                      add_at=lambda out, index, values: out.at[index].add(values), take_along_axis=xp.take_along_axis,
                      broadcast=_viewed(xp))


def _dask(xp: Any) -> Extensions:
    import dask.array as da

    def add_at(out, index, values):
        """Through the host: Dask has no scatter-add."""
        host = np.asarray(out.compute())
        np.add.at(host, tuple(_computed(i) for i in index), _computed(values))
        return da.from_array(host, chunks=out.chunks)

    def take_along_axis(x, indices, axis=-1):
        """NumPy's over pairs of blocks of ``x`` and ``indices`` that are whole along ``axis``
        and alike along the others."""
        axis %= x.ndim
        x = x.rechunk({axis: -1})
        indices = indices.rechunk(tuple(-1 if d == axis else c for d, c in enumerate(x.chunks)))
        return da.map_blocks(np.take_along_axis, x, indices, axis=axis, dtype=x.dtype, chunks=indices.chunks)

    return Extensions(errors=(), to_host=lambda x: np.asarray(x.compute()), from_host=xp.asarray,
                      erf=lambda x: da.map_blocks(_host_erf, x, dtype=x.dtype), add_at=add_at,
                      take_along_axis=take_along_axis, broadcast=_viewed(xp))


def _strict(xp: Any) -> Extensions:
    def erf(x):
        return xp.asarray(_host_erf(np.from_dlpack(x)))

    def add_at(out, index, values):
        host = np.from_dlpack(out).copy()
        np.add.at(host, tuple(_on_host(i) for i in index), _on_host(values))
        return xp.asarray(host)

    return Extensions(errors=(), to_host=np.from_dlpack, from_host=xp.asarray, erf=erf, add_at=add_at,
                      take_along_axis=xp.take_along_axis, broadcast=_assigned(xp))


# --- the evaluator and the elementwise, reduction, shape and order primitives: NumPy's ways


def _host_erf(x: np.ndarray) -> np.ndarray:
    """The error function of each entry by the C library's ``erf`` (correctly rounded or
    within an ulp on glibc and macOS; NumPy has none), of NumPy's dtype of ``x``."""
    if x.ndim == 0:
        return x.dtype.type(math.erf(x))
    return np.fromiter(map(math.erf, x.ravel().tolist()), dtype=x.dtype, count=x.size).reshape(x.shape)


def _numpy_add_at(out: np.ndarray, index: tuple, values: Any) -> np.ndarray:
    np.add.at(out, index, values)
    return out


def _assigned(xp: Any) -> Callable[[Any, Any], Any]:
    """``broadcast`` of a namespace whose arrays can be written to: an assignment into a
    new array."""
    def broadcast(x, g):
        if tuple(g.shape) == tuple(x.shape):
            return g
        out = xp.empty(x.shape, dtype=g.dtype)
        out[...] = g
        return out
    return broadcast


def _viewed(xp: Any) -> Callable[[Any, Any], Any]:
    """``broadcast`` of a namespace whose arrays are never written to: the view."""
    return lambda x, g: g if tuple(g.shape) == tuple(x.shape) else xp.broadcast_to(g, tuple(x.shape))


def _computed(x: Any) -> Any:
    """A Dask array as NumPy's; anything else as it is."""
    return np.asarray(x.compute()) if hasattr(x, "compute") else x


def _on_host(x: Any) -> Any:
    """An array-api-strict array as NumPy's; anything else as it is."""
    return np.from_dlpack(x) if hasattr(x, "__dlpack__") else x


_MAKERS: dict[str, Callable[[Any], Extensions]] = {
    "numpy": _numpy, "cupy": _cupy, "torch": _torch, "jax": _jax, "dask": _dask, "array-api-strict": _strict,
}
