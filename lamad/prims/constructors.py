"""Tensors made from shapes and files, and conversions between Ints, Bools and
reals: their derivative is zero (``fill``'s in its value excepted)."""

from __future__ import annotations

import math

import numpy as np

from lamad import archive
from lamad.prims.arithmetic import INT_MAX, INT_MIN, int_in_range
from lamad.prims.base import SHAPE, A, B, define, lifted
from lamad.syntax import BOOL, INT, INT_TENSOR, REAL, STRING, TENSOR


def dimensions(shape: list[int]) -> tuple[int, ...]:
    """A shape written as a list of Ints, as a tuple; a negative dimension is a ``ValueError``."""
    if any(n < 0 for n in shape):
        raise ValueError(f"negative dimension in shape {list(shape)}")
    return tuple(shape)


def _constant(fn_name: str):
    def impl(rt):
        fn, dtype = getattr(rt.backend.xp, fn_name), rt.backend.dtype
        return lambda shape: fn(dimensions(shape), dtype=dtype)
    return impl


def _onehot(rt):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def onehot(n, labels):
        if n < 0:
            raise ValueError(f"the number of classes is negative: {n}")
        bad = xp.logical_or(xp.logical_or(labels < 0, labels >= n), labels != xp.floor(labels))  # NaN too
        if bool(xp.any(bad)):
            label = float(rt.backend.to_host(labels[bad])[0])
            raise ValueError(f"label {label:g} is not an integer in 0 … {n - 1}")
        return xp.astype(labels[..., None] == xp.arange(n, dtype=dtype), dtype)
    return onehot


_NPY_MAGIC = b"\x93NUMPY"


def read_npy(path, name: str, mmap_mode: str | None = None) -> np.ndarray:
    """The array of the ``.npy`` file ``path`` (``name`` in messages), read without
    pickles (memory-mapped with ``mmap_mode``); a file of another format, or one holding
    Python objects, is a ``ValueError`` that says so."""
    with open(path, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        kind = "a .npz archive (read it with load_params)" if head.startswith(b"PK") else "a file of another format"
        raise ValueError(f"'{name}' is not a .npy file: it is {kind} (NumPy's np.save writes .npy)")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Python objects" in str(e):  # read, or memory-mapped
            raise ValueError(f"'{name}' holds Python objects (dtype object), not numbers: lamad never unpickles") from None
        raise ValueError(f"'{name}' is not a valid .npy file: {e}") from None


def read_data(rt, path: str) -> np.ndarray:
    """The array of the ``.npy`` or ``.csv`` file ``path``, relative to the program's directory."""
    full = rt.base_dir / path
    if full.suffix == ".npy":
        return read_npy(full, path, rt.backend.ext.mmap_mode)
    if full.suffix == ".csv":
        return np.loadtxt(full, delimiter=",", ndmin=1)
    hint = " (read a .npz archive with load_params)" if full.suffix == ".npz" else ""
    raise ValueError(f"cannot load '{path}': only .npy and .csv files are supported{hint}")


def _load(rt):
    return lambda path: rt.backend.asarray(read_data(rt, path))


def _load_ints(rt):
    return lambda path: rt.backend.ints(read_data(rt, path))


def _load_params(rt):
    """``load_params path``: the value of the type its context gives (``typing="context"``:
    the evaluator passes that type first) read from a ``.npz`` archive (lamad/archive.py)."""
    def load_params(ty, path):
        return archive.value(archive.read(rt.base_dir / path, path), ty, rt.backend, path)
    return load_params


define("zeros", (SHAPE,), TENSOR, _constant("zeros"), derivative="constant", example=("zeros (shape x1)", ((2, 3),)))
define("ones", (SHAPE,), TENSOR, _constant("ones"), derivative="constant", example=("ones (shape x1)", ((2, 3),)))
define("fill", (REAL, SHAPE), TENSOR,
       lambda rt: (lambda r, shape: r * rt.backend.xp.ones(dimensions(shape), dtype=rt.backend.dtype)),  # -0.0 kept
       linear=(0,), jvp=("fill dx1 x2", None), vjp=("sum a", None), example=("fill x1 [2, 2]", ((),)))
define("eye", (INT,), TENSOR, lambda rt: (lambda n: rt.backend.xp.eye(n, dtype=rt.backend.dtype)),
       derivative="constant", example=("eye (size x1)", ((3,),)))
define("onehot", (INT, TENSOR), TENSOR, _onehot, derivative="constant", example=("onehot 3 (mask_ge x1 0.0)", ((2,),)))
def _real(rt):
    backend = rt.backend
    float64 = np.float64 if backend.floats else None  # what array_scalar makes of an Int there, in one call

    def real(n):
        if type(n) is int:
            if float64 is not None and INT_MIN <= n <= INT_MAX:
                return float64(n)
            return backend.array_scalar(int_in_range(n, f"the Int {n}"))  # as NumPy's scalar: cheaper to divide by
        if type(n) is bool:
            return backend.array_scalar(float(n))
        return backend.xp.astype(n, backend.dtype)
    return real


def _int(rt):
    backend = rt.backend

    xp = backend.xp

    def int_(x):
        if getattr(x, "ndim", 0) == 0:
            if not math.isfinite(x):
                raise ValueError(f"{float(x)} is not a finite number: it has no Int")
            return int_in_range(int(x), f"int {float(x)!r}")
        bad = xp.logical_not(xp.isfinite(x)) | (xp.abs(x) >= 2.0 ** 63)
        if bool(xp.any(bad)):
            raise ValueError(f"{float(backend.to_host(x[bad])[0])} has no Int (Ints are 64-bit)")
        return xp.astype(xp.trunc(x), xp.int64)
    return int_


define("real", (A,), B, _real, typing="overloaded", signatures=lifted((INT,), REAL) + lifted((BOOL,), REAL),
       derivative="constant", doc="an Int as a Real, a Bool as 1.0 or 0.0; elementwise on arrays",
       example=("real (size x1)", ((2, 3),)))
define("int", (A,), B, _int, typing="overloaded", signatures=lifted((REAL,), INT), derivative="discrete",
       doc="a Real rounded toward zero to an Int (as C, NumPy and JAX convert); elementwise on a Tensor")
define("arange", (INT,), INT_TENSOR, lambda rt: (lambda n: rt.backend.xp.arange(max(n, 0), dtype=rt.backend.xp.int64)),
       derivative="discrete", doc="the IntTensor [0, 1, …, n - 1]")
define("ints", (SHAPE,), INT_TENSOR, lambda rt: rt.backend.ints, derivative="discrete",
       doc="a list of Ints as an IntTensor")
define("load_ints", (STRING,), INT_TENSOR, _load_ints, derivative="discrete",
       doc="an IntTensor read from a .npy or .csv file of integers (labels, indices)")
define("load", (STRING,), TENSOR, _load, derivative="constant",
       example=("load \"data/measurements.csv\"", ((),)))
define("load_params", (STRING,), A, _load_params, typing="context", derivative="constant",
       doc="a value (tuples, lists, arrays) read from a .npz archive that lamad run --output wrote; "
           "its type is the one an annotation gives",
       example=("(load_params \"data/measurements.npz\" : Tensor)", ((),)))
