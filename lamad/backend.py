"""Array backends (docs/architecture.md): the evaluator reaches arrays only through a
:class:`Backend`'s namespace ``xp`` (NumPy or CuPy) and its float ``dtype``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

from lamad.errors import LamError

BACKENDS = ("numpy", "cupy")
DTYPES = ("float64", "float32")


class BackendError(LamError):
    kind = "backend error"


@dataclass(frozen=True)
class Backend:
    """An array namespace and the float dtype of every ``Real`` and ``Tensor``."""

    name: str
    xp: ModuleType
    dtype: Any

    def asarray(self, value: Any) -> Any:
        """Move host data (Python numbers, NumPy arrays, nested lists) onto this backend
        as an array of its dtype: the one place values enter the backend.  Data this
        dtype cannot hold is a ``ValueError``, never a value changed in silence: complex
        numbers (NumPy would drop their imaginary parts), Python objects (``None`` would
        become NaN), strings, dates, and finite numbers too large for it (float64 data
        on the float32 backend)."""
        dtype = getattr(value, "dtype", None)
        if isinstance(value, (int, float)) or (dtype is not None and dtype == self.dtype):
            return self.xp.asarray(value, dtype=self.dtype)  # nothing this dtype cannot hold
        import numpy as np

        if getattr(value, "dtype", None) is None:
            value = np.asarray(value)
        kind = value.dtype.kind
        if kind not in "fiub":
            what = {"c": "complex numbers", "O": "Python objects"}.get(kind, "no numbers")
            raise ValueError(f"{value.dtype} data holds {what}: it cannot be a tensor of {self.dtype}")
        if kind == "f" and value.dtype.itemsize > self.dtype.itemsize and isinstance(value, np.ndarray):
            with np.errstate(over="ignore"):  # on the host, before the transfer
                narrowed = value.astype(self.dtype)
            if np.count_nonzero(np.isfinite(narrowed)) != np.count_nonzero(np.isfinite(value)):
                raise ValueError(f"{value.dtype} data holds numbers too large for {self.dtype}")
            value = narrowed
        return self.xp.asarray(value, dtype=self.dtype)

    def ints(self, value: Any) -> Any:
        """Host data (a list of Python ints, an integer or boolean array, or an array of
        floats that are whole numbers: a ``.csv`` of labels) as an ``IntTensor`` on this
        backend: 64-bit integers.  A number that is not a whole number, or too large for
        64 bits, is a ``ValueError``, never a value changed in silence."""
        import numpy as np

        if not hasattr(value, "dtype"):
            try:
                value = np.asarray(value, dtype=np.int64) if isinstance(value, list) else np.asarray(value)
            except OverflowError:
                raise ValueError("an integer is too large for 64 bits") from None
        kind = value.dtype.kind
        if kind == "f" and isinstance(value, np.ndarray):
            whole = np.isfinite(value) & (np.trunc(value) == value) & (np.abs(value) < 2.0 ** 63)
            if not whole.all():
                raise ValueError(f"{float(value[~whole].flat[0])!r} is not an integer: an IntTensor holds integers")
        elif kind not in "iub":
            raise ValueError(f"{value.dtype} data cannot be an IntTensor, which holds integers")
        if kind == "u" and value.dtype.itemsize == 8 and value.size and int(value.max()) >= 2 ** 63:
            raise ValueError("an integer is too large for 64 bits")
        return self.xp.asarray(value, dtype=self.xp.int64)

    def bools(self, value: Any) -> Any:
        """Host data of truth values (Python bools, a boolean array) as a ``BoolTensor``
        on this backend; numbers are a ``ValueError`` (compare them to make a mask)."""
        import numpy as np

        host = value if hasattr(value, "dtype") else np.asarray(value)
        if host.dtype.kind != "b":
            raise ValueError(f"{host.dtype} data cannot be a BoolTensor, which holds true and false "
                             "(compare numbers to make one: x > 0.0)")
        return self.xp.asarray(host)

    def scalar(self, value: float) -> Any:
        """A ``Real``: a 0-d array of the backend's dtype (NumPy gives its scalar type,
        which behaves as one and is cheaper to compute with)."""
        return self.xp.asarray(value, dtype=self.dtype)[()]

    def to_host(self, value: Any) -> Any:
        """A NumPy copy of a backend array, for user-visible output only (the one place
        values leave the backend)."""
        asnumpy = getattr(self.xp, "asnumpy", None)
        return asnumpy(value) if asnumpy is not None else value


@lru_cache(maxsize=None)
def get_backend(name: str | None = None, dtype: str | None = None) -> Backend:
    """The backend ``name`` (default: ``$LAMAD_BACKEND`` or ``numpy``) with float ``dtype``
    (default: ``$LAMAD_DTYPE`` or ``float64``)."""
    name = name or os.environ.get("LAMAD_BACKEND") or "numpy"
    dtype = dtype or os.environ.get("LAMAD_DTYPE") or "float64"
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise BackendError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
    if name == "numpy":
        import numpy as xp
    else:
        try:
            import cupy as xp
        except ImportError:
            raise BackendError("the cupy backend needs CuPy: pip install 'lamad[cuda]'") from None
    return Backend(name, xp, xp.dtype(dtype))
