"""Tensors made from shapes, seeds and files, and conversions: their derivative is zero
(``fill``'s in its value excepted)."""

from __future__ import annotations

import numpy as np

from lamad.prims.arithmetic import int_in_range
from lamad.prims.base import SHAPE, define
from lamad.syntax import INT, REAL, STRING, TENSOR


def _shape(shape: list[int]) -> tuple[int, ...]:
    if any(n < 0 for n in shape):
        raise ValueError(f"negative dimension in shape {list(shape)}")
    return tuple(shape)


def _constant(fn_name: str):
    def impl(rt):
        fn, dtype = getattr(rt.backend.xp, fn_name), rt.backend.dtype
        return lambda shape: fn(_shape(shape), dtype=dtype)
    return impl


def _random(method: str):
    """``randn``/``uniform``: drawn with NumPy's PCG64 from the seed, so that every backend
    sees the same numbers, then moved to the backend once."""
    def impl(rt):
        def draw(seed, shape):
            return rt.backend.asarray(getattr(np.random.default_rng(seed), method)(_shape(shape)))
        return draw
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
        return (labels[..., None] == xp.arange(n, dtype=dtype)).astype(dtype)
    return onehot


_NPY_MAGIC = b"\x93NUMPY"


def read_npy(path, name: str) -> np.ndarray:
    """The array of the ``.npy`` file ``path`` (``name`` in messages), read without
    pickles; a file of another format, or one holding Python objects, is a
    ``ValueError`` that says so."""
    with open(path, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        kind = "a .npz archive" if head.startswith(b"PK") else "a file of another format"
        raise ValueError(f"'{name}' is not a .npy file: it is {kind} (NumPy's np.save writes .npy)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"'{name}' holds Python objects (dtype object), not numbers: lamad never unpickles") from None
        raise ValueError(f"'{name}' is not a valid .npy file: {e}") from None


def _load(rt):
    def load(path: str):
        full = rt.base_dir / path
        if full.suffix == ".npy":
            data = read_npy(full, path)
        elif full.suffix == ".csv":
            data = np.loadtxt(full, delimiter=",", ndmin=1)
        else:
            raise ValueError(f"cannot load '{path}': only .npy and .csv files are supported")
        return rt.backend.asarray(data)
    return load


define("zeros", (SHAPE,), TENSOR, _constant("zeros"), derivative="constant", example=("zeros (shape x1)", ((2, 3),)))
define("ones", (SHAPE,), TENSOR, _constant("ones"), derivative="constant", example=("ones (shape x1)", ((2, 3),)))
define("fill", (REAL, SHAPE), TENSOR,
       lambda rt: (lambda r, shape: rt.backend.xp.full(_shape(shape), r, dtype=rt.backend.dtype)),
       linear=(0,), jvp=("fill dx1 x2", None), vjp=("sum a", None), example=("fill x1 [2, 2]", ((),)))
define("eye", (INT,), TENSOR, lambda rt: (lambda n: rt.backend.xp.eye(n, dtype=rt.backend.dtype)),
       derivative="constant", example=("eye (size x1)", ((3,),)))
define("randn", (INT, SHAPE), TENSOR, _random("standard_normal"), derivative="constant",
       example=("randn 4 (shape x1)", ((2, 3),)))
define("uniform", (INT, SHAPE), TENSOR, _random("random"), derivative="constant",
       example=("uniform 4 (shape x1)", ((2, 3),)))
define("onehot", (INT, TENSOR), TENSOR, _onehot, derivative="constant", example=("onehot 3 (mask_ge x1 0.0)", ((2,),)))
def _real(rt):
    asarray = rt.backend.asarray
    return lambda n: asarray(int_in_range(n, f"the Int {n}"))


define("real", (INT,), REAL, _real, derivative="constant", example=("real (size x1)", ((2, 3),)))
define("load", (STRING,), TENSOR, _load, derivative="constant",
       example=("load \"data/measurements.csv\"", ((),)))
