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

import math
import operator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable

import numpy as np

Key = tuple
"""A NumPy index: integers, slices, ``...``, and integer arrays and masks of the backend."""


@dataclass(frozen=True)
class Extensions:
    """A backend's extensions; ``host`` marks an array-API namespace whose extensions go
    through NumPy (array-api-strict)."""

    to_host: Callable[[Any], np.ndarray]
    """A NumPy copy of an array (for output, and for the values a program prints)."""
    from_host: Callable[[np.ndarray], Any]
    """A NumPy array as this backend's, of the same dtype."""

    # ---- indexing, axes, convolutions and linear algebra (lamad/prims/indexing.py, axes.py,
    # conv.py, linalg.py)
    extrema: Callable[[Any], tuple[int, int]]
    """The least and the greatest entries of a non-empty integer array, as Python ints
    brought to the host together (one synchronisation, one pass of a lazy array; NumPy's
    methods, which skip its functions' dispatch): the standard's ``min`` and ``max`` are
    two reductions, each a transfer of its own."""
    getitem: Callable[[Any, Key], Any]
    """``x[key]`` for NumPy's keys, which mix integer arrays, masks and slices: the standard
    indexes with integer arrays only where every axis takes an integer or an integer array."""
    set_at: Callable[[Any, Key, Any], Any]
    """``x`` with ``v`` written at ``key``: in place where arrays are mutable (``x`` is then a
    fresh array its caller owns), a new array on JAX, whose arrays are immutable.  The
    standard's ``__setitem__`` mutates, and takes no integer arrays."""
    add_at: Callable[[Any, Key, Any], Any]
    """``x`` with ``v`` added at ``key``, a position the key repeats receiving every value
    sent to it (NumPy's ``np.add.at``), in place as ``set_at`` is: the standard has no
    scatter."""
    einsum: Callable[..., Any]
    """``einsum(subscripts, *operands, optimize=bool)``, NumPy's (``optimize``: contract
    pairwise along a planned path): the standard has ``tensordot`` and ``vecdot`` only."""
    windows: Callable[[Any, int, int, int], Any]
    """``windows(x, kh, kw, stride)``: the ``kh × kw`` windows, ``stride`` apart, of the last
    two axes of ``x``, of shape ``(…, Ho, Wo, kh, kw)``: a strided view where the library
    makes one, which the standard cannot."""
    solve_triangular: Callable[[Any, Any, bool], Any]
    """``solve_triangular(t, b, lower)``: ``t⁻¹ b`` for lower (``lower``) or upper triangular
    matrices ``t`` (``(…, n, n)``) and matrices ``b`` (``(…, n, k)``) of the same batch: the
    standard's ``linalg`` has only the general solver, which NumPy uses here too."""
    linalg: Any
    """The library's ``linalg``, the standard's extension of that name: Dask's through
    array-api-compat lacks ``det``, ``slogdet`` and ``eigh`` and gives the upper Cholesky
    factor, so it is completed and corrected here."""
    linalg_errors: tuple[type[BaseException], ...]
    """What the library's ``linalg`` raises for a singular matrix or one that is not
    positive definite (it may raise it only when a lazy array is computed)."""
    linalg_returns_nan: bool
    """Whether the library's ``linalg`` may instead return NaN or infinities for such a
    matrix (JAX; Dask, where the error comes when the result is computed), so that lamad
    checks the result."""

    # --- the evaluator and the elementwise, reduction, shape and order primitives
    errors: tuple[type[Exception], ...]
    """What the library raises for bad input besides Python's ``ValueError``, ``TypeError``
    and ``IndexError`` (PyTorch's ``RuntimeError``: operands that do not broadcast), which
    the evaluator locates as it locates those."""
    erf: Callable[[Any], Any]
    """The error function of each entry (of a 0-d array too): the standard has no special
    functions."""
    take_along_axis: Callable[..., Any]
    """``take_along_axis(x, indices, axis=a)``, the standard's (2024.12), which Dask's
    namespace lacks: there, a map of NumPy's over blocks whole along the axis."""
    broadcast: Callable[[Any, Any], Any]
    """``g`` broadcast to the shape of ``x`` as an array nothing else refers to (``g`` itself
    where the shapes agree): the transpose of summing down to a shape.  The standard's
    ``broadcast_to`` is a view (read-only in NumPy), and its copy through ``asarray(copy=True)``
    costs NumPy several times an assignment into ``empty`` on small arrays; immutable arrays
    (JAX's, Dask's graphs) keep the view."""

    # -- lazy backends (Dask): loop state persisted each step, files read chunk by chunk
    persist: Callable[[Any], Any] | None = field(default=None, kw_only=True)
    """A loop's state after a step (a value: arrays, within tuples and lists), its lazy
    arrays computed and kept where they were computed, so that the next step's task graph
    starts from them and stays the size of one step; the standard evaluates eagerly and
    has no such operation.  ``None`` on eager backends: a loop's state is kept as it is,
    with no call a step."""
    total: Callable[[Any], Any] | None = field(default=None, kw_only=True)
    """The sum of all the entries of an array, where the library has a cheaper call for it
    than its namespace's ``sum`` (NumPy's ``add.reduce``, the reduction ``np.sum`` reaches
    after about a microsecond of dispatch in Python); ``None``: the namespace's ``sum``."""
    dot: bool = field(default=False, kw_only=True)
    """Whether ``x.dot(y)`` is ``x @ y`` for a matrix and a vector, either way round, and
    cheaper than the namespace's ``matmul``: NumPy's, which gives the same numbers (both
    call BLAS's ``gemv``) without the dispatch of the gufunc, about 0.4 µs of a 64 × 64
    product's 1 µs (an RNN's step makes three).  A method, not a function: a cotangent
    kept factored (lamad/factored.py) that meets ``@`` inside a body has it too."""
    mmap_mode: str | None = field(default=None, kw_only=True)
    """How ``load`` opens a ``.npy`` file: ``"r"`` memory-maps it, and ``from_host`` then
    reads its rows chunk by chunk when they are needed; ``None`` reads it whole."""


def extensions(name: str, xp: Any) -> Extensions:
    """The extensions of the backend ``name``, whose namespace is ``xp``."""
    return _MAKERS[name](xp)


# ---------------------------------------------------------------------- shared implementations


def _advanced(key: Key) -> bool:
    """Whether a key holds an array (integer or mask): NumPy's advanced indexing (a loop,
    which costs half what ``any`` of a generator does, on the convolutions' hot path)."""
    for k in key:
        if hasattr(k, "dtype"):
            return True
    return False


def _write(x: Any, key: Key, v: Any) -> Any:
    x[key] = v
    return x


def _add_basic(x: Any, key: Key, v: Any) -> Any:
    """``x`` with ``v`` added in place at a key without arrays, which repeats nothing."""
    x[key] += v
    return x


def _windows_by_slices(xp: Any) -> Callable[[Any, int, int, int], Any]:
    """The windows of :attr:`Extensions.windows` in the standard alone: the ``kh · kw``
    strided slices that hold one entry of every window, stacked (a copy)."""
    def windows(x, kh: int, kw: int, stride: int):
        h, w = x.shape[-2:]
        ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
        rows = [xp.stack([x[..., i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                          for j in range(kw)], axis=-1) for i in range(kh)]
        return xp.stack(rows, axis=-2)
    return windows


def _sliding_windows(module: Any) -> Callable[[Any, int, int, int], Any]:
    """The windows of :attr:`Extensions.windows` as a strided view, by the library's
    ``sliding_window_view`` (NumPy's, CuPy's, Dask's)."""
    def windows(x, kh: int, kw: int, stride: int):
        view = module.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))
        return view[..., ::stride, ::stride, :, :]
    return windows


def numpy_like(module: Any, to_host: Callable[[Any], np.ndarray], from_host: Callable[[np.ndarray], Any],
               erf: Callable[[Any], Any], linalg_returns_nan: bool = False) -> Extensions:
    """The extensions of a library with NumPy's own API (NumPy, CuPy): its functions, and
    its arrays mutated in place."""
    def add_at(x, key, v):
        if not _advanced(key):
            return _add_basic(x, key, v)
        module.add.at(x, key, v)
        return x

    return Extensions(
        to_host=to_host, from_host=from_host, extrema=lambda x: (int(x.min()), int(x.max())),
        getitem=operator.getitem, set_at=_write, add_at=add_at, einsum=module.einsum, windows=_sliding_windows(module),
        solve_triangular=lambda t, b, lower: module.linalg.solve(t, b), linalg=module.linalg,
        linalg_errors=(np.linalg.LinAlgError,), linalg_returns_nan=linalg_returns_nan, errors=(), erf=erf,
        take_along_axis=module.take_along_axis, broadcast=_assigned(module))


# ---------------------------------------------------------------------- NumPy's ways, for the evaluator's families


def host_erf(x: np.ndarray) -> np.ndarray:
    """The error function of each entry by the C library's ``erf`` (correctly rounded or
    within an ulp on glibc and macOS; NumPy has none), of NumPy's dtype of ``x``."""
    if x.ndim == 0:
        return x.dtype.type(math.erf(x))
    return np.fromiter(map(math.erf, x.ravel().tolist()), dtype=x.dtype, count=x.size).reshape(x.shape)


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


# ---------------------------------------------------------------------- one maker per backend


def _numpy(xp: Any) -> Extensions:
    return replace(numpy_like(np, np.asarray, np.asarray, host_erf), total=partial(np.add.reduce, axis=None),
                   dot=True)


def _cupy(xp: Any) -> Extensions:
    import cupy
    from cupyx.scipy.special import erf

    # CuPy's linalg checks nothing unless told to (cupyx.errstate): a singular matrix gives NaN.
    return numpy_like(cupy, cupy.asnumpy, cupy.asarray, erf, linalg_returns_nan=True)


def _torch(xp: Any) -> Extensions:
    import torch

    def add_at(x, key, v):
        """A basic key in place; an advanced one as ``index_add`` at the flat positions it
        names (found by indexing the positions of ``x``), which accumulates repeats."""
        if not _advanced(key):
            return _add_basic(x, key, v)
        positions = torch.arange(x.numel(), device=x.device).reshape(x.shape)[key]
        values = torch.broadcast_to(torch.as_tensor(v, dtype=x.dtype, device=x.device), positions.shape)
        return x.reshape(-1).index_add(0, positions.reshape(-1), values.reshape(-1)).reshape(x.shape)

    def windows(x, kh, kw, stride):
        return x.unfold(x.ndim - 2, kh, stride).unfold(x.ndim - 1, kw, stride)

    return Extensions(
        to_host=lambda x: x.detach().cpu().numpy(), from_host=torch.from_numpy,
        extrema=lambda x: tuple(int(v) for v in torch.aminmax(x)), getitem=operator.getitem,
        set_at=_write, add_at=add_at, einsum=lambda spec, *xs, optimize=False: torch.einsum(spec, *xs),
        windows=windows,
        solve_triangular=lambda t, b, lower: torch.linalg.solve_triangular(t, b, upper=not lower),
        linalg=xp.linalg, linalg_errors=(torch.linalg.LinAlgError,), linalg_returns_nan=False,
        errors=(RuntimeError,), erf=torch.special.erf, take_along_axis=xp.take_along_axis, broadcast=_assigned(xp))


def _jax(xp: Any) -> Extensions:
    import jax.scipy.linalg
    import jax.scipy.special

    return Extensions(
        to_host=np.asarray, from_host=xp.asarray,
        extrema=lambda x: tuple(int(v) for v in np.asarray(xp.stack([xp.min(x), xp.max(x)]))), getitem=operator.getitem,
        set_at=lambda x, key, v: x.at[key].set(v), add_at=lambda x, key, v: x.at[key].add(v),
        einsum=xp.einsum, windows=_windows_by_slices(xp),
        solve_triangular=lambda t, b, lower: jax.scipy.linalg.solve_triangular(t, b, lower=lower),
        linalg=xp.linalg, linalg_errors=(), linalg_returns_nan=True,
        errors=(), erf=jax.scipy.special.erf, take_along_axis=xp.take_along_axis, broadcast=_viewed(xp))


def _dask(xp: Any) -> Extensions:
    import dask
    import dask.array as da

    def getitem(x, key):
        """``x[key]``; a mask makes an axis of unknown length, which is counted (computing
        the mask) since lamad's shapes are known."""
        try:
            taken = x[key]
        except NotImplementedError as e:  # several integer arrays at once
            raise ValueError(f"the Dask backend indexes with one integer array at a time (Dask: {e})") from None
        return taken.compute_chunk_sizes() if any(n != n for n in taken.shape) else taken

    def set_at(x, key, v):
        x[key[0] if len(key) == 1 else key] = v  # Dask takes a mask of rank 2 or more alone, not in a tuple
        return x

    def add_at(x, key, v):
        """A basic key as an assignment; an advanced one as a weighted ``bincount`` of the
        flat positions it names, which accumulates repeats and stays lazy; a key of several
        integer arrays (``put_along``'s), which Dask cannot index with, through the host."""
        if not _advanced(key):
            return _add_basic(x, key, v)
        if sum(hasattr(k, "dtype") for k in key) > 1:
            host = np.asarray(x.compute())
            np.add.at(host, tuple(np.asarray(k.compute()) if hasattr(k, "compute") else k for k in key),
                      np.asarray(v.compute()) if hasattr(v, "compute") else v)
            return da.from_array(host, chunks=x.chunks)
        positions = getitem(xp.reshape(xp.arange(x.size), x.shape), key)
        values = xp.broadcast_to(xp.asarray(v, dtype=x.dtype), positions.shape)
        added = da.bincount(xp.reshape(positions, (-1,)), weights=xp.reshape(values, (-1,)), minlength=x.size)
        return x + xp.reshape(added, x.shape)

    def take_along_axis(x, indices, axis=-1):
        """NumPy's over pairs of blocks of ``x`` and ``indices`` that are whole along ``axis``
        and alike along the others."""
        axis %= x.ndim
        x = x.rechunk({axis: -1})
        indices = indices.rechunk(tuple(-1 if d == axis else c for d, c in enumerate(x.chunks)))
        return da.map_blocks(np.take_along_axis, x, indices, axis=axis, dtype=x.dtype, chunks=indices.chunks)

    return Extensions(
        to_host=lambda x: np.asarray(x.compute()), from_host=_dask_rows, persist=_dask_persist, mmap_mode="r",
        extrema=lambda x: tuple(int(v) for v in dask.compute(x.min(), x.max())), getitem=getitem, set_at=set_at,
        add_at=add_at, einsum=da.einsum, windows=_sliding_windows(da), solve_triangular=_DaskLinalg.solve_triangular,
        linalg=_DaskLinalg(xp.linalg), linalg_errors=(np.linalg.LinAlgError,), linalg_returns_nan=True,
        errors=(), erf=lambda x: da.map_blocks(host_erf, x, dtype=x.dtype), take_along_axis=take_along_axis,
        broadcast=_viewed(xp))


class _DaskLinalg:
    """array-api-compat's ``linalg`` for Dask, completed and corrected: Dask's own
    factorizations and solvers take one matrix (blocked, for matrices that are large),
    and NumPy's are mapped over the matrices of a stack (lazily, each matrix in one
    block), as they are for ``det``, ``slogdet`` and ``eigh``, which Dask has not; and the
    Cholesky factor is the lower one, which the standard specifies (Dask's own gives the
    upper one, and array-api-compat passes it on as it is)."""

    def __init__(self, compat: Any):
        self._compat = compat

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compat, name)

    def solve(self, a, b):
        return self._compat.solve(a, b) if a.ndim == 2 else _per_matrix(np.linalg.solve, "(m,m),(m,k)->(m,k)", a, b)

    def inv(self, a):
        return self._compat.inv(a) if a.ndim == 2 else _per_matrix(np.linalg.inv, "(m,m)->(m,m)", a)

    def cholesky(self, a):
        import dask.array as da

        return da.linalg.cholesky(a, lower=True) if a.ndim == 2 else _per_matrix(np.linalg.cholesky, "(m,m)->(m,m)", a)

    def qr(self, a, mode: str = "reduced"):
        if a.ndim == 2:
            return self._compat.qr(a, mode=mode)
        return _per_matrix(lambda x: tuple(np.linalg.qr(x, mode=mode)), "(m,n)->(m,n),(n,n)", a, outputs=2)

    @staticmethod
    def solve_triangular(t, b, lower: bool):
        import dask.array as da

        if t.ndim == 2:
            return da.linalg.solve_triangular(t, b, lower=lower)
        return _per_matrix(np.linalg.solve, "(m,m),(m,k)->(m,k)", t, b)

    @staticmethod
    def det(a):
        return _per_matrix(np.linalg.det, "(m,m)->()", a)

    @staticmethod
    def slogdet(a):
        return _per_matrix(lambda x: tuple(np.linalg.slogdet(x)), "(m,m)->(),()", a, outputs=2)

    @staticmethod
    def eigh(a):
        return _per_matrix(lambda x: tuple(np.linalg.eigh(x)), "(m,m)->(m),(m,m)", a, outputs=2)


def _per_matrix(fn: Callable, signature: str, *xs: Any, outputs: int = 1) -> Any:
    """``fn`` (NumPy's) applied to the matrices of the Dask stacks ``xs`` as a generalized
    ufunc of ``signature``, lazily, with ``outputs`` results."""
    import dask.array as da

    dtype = xs[0].dtype
    return da.apply_gufunc(fn, signature, *xs, output_dtypes=(dtype,) * outputs if outputs > 1 else dtype,
                           allow_rechunk=True)


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
    row_bytes, start, blocks = value.itemsize * math.prod(rest), 0, []
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
    """The standard and nothing more: the extensions that need more go through NumPy on the
    host (for the tests only: array-api-strict exists to prove that lamad calls nothing else)."""
    Array = type(xp.asarray(0))

    def host_key(key):
        return tuple(np.from_dlpack(k) if isinstance(k, Array) else k for k in key)

    def updated(how):
        def update(x, key, v):
            out = np.array(np.from_dlpack(x))
            how(out, host_key(key), np.from_dlpack(v) if isinstance(v, Array) else v)
            return xp.asarray(out)
        return update

    def einsum(spec, *xs, optimize=False):
        return xp.asarray(np.einsum(spec, *(np.from_dlpack(x) for x in xs), optimize=optimize))

    return Extensions(
        to_host=np.from_dlpack, from_host=xp.asarray, extrema=lambda x: (int(xp.min(x)), int(xp.max(x))),
        getitem=lambda x, key: xp.asarray(np.from_dlpack(x)[host_key(key)]),
        set_at=updated(operator.setitem), add_at=updated(np.add.at), einsum=einsum, windows=_windows_by_slices(xp),
        solve_triangular=lambda t, b, lower: xp.linalg.solve(t, b),
        linalg=xp.linalg, linalg_errors=(np.linalg.LinAlgError,), linalg_returns_nan=False,
        errors=(), erf=lambda x: xp.asarray(host_erf(np.from_dlpack(x))), take_along_axis=xp.take_along_axis,
        broadcast=_assigned(xp))


_MAKERS: dict[str, Callable[[Any], Extensions]] = {
    "numpy": _numpy, "cupy": _cupy, "torch": _torch, "jax": _jax, "dask": _dask, "array-api-strict": _strict,
}
