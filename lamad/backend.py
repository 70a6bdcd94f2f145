"""Array backends (docs/backends.md): the evaluator reaches arrays only through a
:class:`Backend`: its array-API namespace ``xp``, its float ``dtype``, and ``ext``, lamad's
few operations that the array-API standard does not have (:mod:`lamad.extensions`).

A backend is named by the library that computes: ``numpy`` (NumPy's own namespace, which
is the standard's since NumPy 2), ``cupy``, ``torch`` and ``dask`` (through
``array-api-compat``), ``jax`` (``jax.numpy``) and ``array-api-strict``, the standard and
nothing more, on which the tests prove that lamad calls nothing else."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from lamad.errors import LamError
from lamad.extensions import Extensions, extensions

BACKENDS = ("numpy", "cupy", "torch", "jax", "dask", "array-api-strict")
DTYPES = ("float64", "float32")


class BackendError(LamError):
    kind = "backend error"


@dataclass(frozen=True)
class Backend:
    """An array namespace, the float dtype of every ``Real`` and ``Tensor``, and lamad's
    extensions for that namespace."""

    name: str
    xp: Any
    dtype: Any
    ext: Extensions

    def asarray(self, value: Any) -> Any:
        """Move host data (Python numbers, NumPy arrays, nested lists) onto this backend
        as an array of its dtype: the one place values enter the backend.  Data this
        dtype cannot hold is a ``ValueError``, never a value changed in silence: complex
        numbers (NumPy would drop their imaginary parts), Python objects (``None`` would
        become NaN), strings, dates, and finite numbers too large for it (float64 data
        on the float32 backend)."""
        if isinstance(value, (int, float)):
            return self.xp.asarray(value, dtype=self.dtype)  # nothing this dtype cannot hold
        if type(value) is np.ndarray:
            if value.dtype == self.host_dtype:  # host data of this dtype: nothing to check
                return self.ext.from_host(value)
        elif self.owns(value) and not isinstance(value, np.ndarray):  # a subclass of NumPy's is host data
            if value.dtype == self.dtype:
                return value
            value = self.to_host(value)  # another dtype is checked as host data is
        value = value if isinstance(value, np.ndarray) else np.asarray(value)  # a memory map stays one
        kind = value.dtype.kind
        if kind not in "fiub":
            what = {"c": "complex numbers", "O": "Python objects"}.get(kind, "no numbers")
            raise ValueError(f"{value.dtype} data holds {what}: it cannot be a tensor of {self.dtype_name}")
        if kind == "f" and value.dtype.itemsize * 8 > self.xp.finfo(self.dtype).bits:
            with np.errstate(over="ignore"):  # on the host, before the transfer
                narrowed = value.astype(self.dtype_name)
            if np.count_nonzero(np.isfinite(narrowed)) != np.count_nonzero(np.isfinite(value)):
                raise ValueError(f"{value.dtype} data holds numbers too large for {self.dtype_name}")
            value = narrowed
        return self.from_host(value.astype(self.dtype_name, copy=False))

    def ints(self, value: Any) -> Any:
        """Host data (a list of Python ints, an integer or boolean array, or an array of
        floats that are whole numbers: a ``.csv`` of labels) as an ``IntTensor`` on this
        backend: 64-bit integers.  A number that is not a whole number, or too large for
        64 bits, is a ``ValueError``, never a value changed in silence."""
        if self.owns(value) and not isinstance(value, np.ndarray):
            if value.dtype == self.xp.int64:
                return value
            value = self.to_host(value)  # another dtype is checked as host data is
        if not hasattr(value, "dtype"):
            try:
                value = np.asarray(value, dtype=np.int64) if isinstance(value, list) else np.asarray(value)
            except OverflowError:
                raise ValueError("an integer is too large for 64 bits") from None
        kind = value.dtype.kind
        if kind == "f":
            whole = np.isfinite(value) & (np.trunc(value) == value) & (np.abs(value) < 2.0 ** 63)
            if not whole.all():
                raise ValueError(f"{float(value[~whole].flat[0])!r} is not an integer: an IntTensor holds integers")
        elif kind not in "iub":
            raise ValueError(f"{value.dtype} data cannot be an IntTensor, which holds integers")
        if kind == "u" and value.dtype.itemsize == 8 and value.size and int(value.max()) >= 2 ** 63:
            raise ValueError("an integer is too large for 64 bits")
        return self.from_host(np.asarray(value, dtype=np.int64))

    def bools(self, value: Any) -> Any:
        """Host data of truth values (Python bools, a boolean array) as a ``BoolTensor``
        on this backend; numbers are a ``ValueError`` (compare them to make a mask)."""
        if self.owns(value) and value.dtype == self.xp.bool:
            return value
        host = self.to_host(value) if self.owns(value) else np.asarray(value)
        if host.dtype.kind != "b":
            raise ValueError(f"{host.dtype} data cannot be a BoolTensor, which holds true and false "
                             "(compare numbers to make one: x > 0.0)")
        return self.from_host(host)

    def scalar(self, value: float) -> Any:
        """A ``Real``: a Python float where :attr:`floats`, else a 0-d array of the
        backend's dtype (NumPy gives its scalar type, which behaves as one and is cheaper
        to compute with)."""
        if self.floats:
            return float(value)
        return self.array_scalar(value)

    def array_scalar(self, value: float) -> Any:
        """A number as a 0-d array of the backend's dtype (NumPy's scalar type on NumPy):
        a ``Real`` a builtin makes where it may be a Tensor (``real``, ``count``)."""
        return self.xp.asarray(value, dtype=self.dtype)[()]

    @cached_property
    def floats(self) -> bool:
        """Whether a ``Real`` is a Python float, on which compiled code computes with
        Python's operators and :mod:`math` (lamad/eval.py, typed scalar code): NumPy in
        float64, whose scalar type is a subclass of float with the same IEEE arithmetic.
        Other backends and float32 keep 0-d arrays."""
        return self.xp is np and self.dtype == np.float64

    @property
    def dtype_name(self) -> str:
        """``"float64"`` or ``"float32"``."""
        return "float64" if self.xp.finfo(self.dtype).bits == 64 else "float32"

    def owns(self, value: Any) -> bool:
        """Whether ``value`` is already an array of this backend."""
        return isinstance(value, self.array_type)

    @cached_property
    def host_dtype(self) -> np.dtype:
        """NumPy's dtype of the same name as :attr:`dtype`."""
        return np.dtype(self.dtype_name)

    @cached_property
    def array_type(self) -> type:
        return type(self.xp.asarray(0.0))

    def from_host(self, value: np.ndarray) -> Any:
        """A NumPy array as an array of this backend, of the same dtype."""
        return self.ext.from_host(value)

    def to_host(self, value: Any) -> np.ndarray:
        """A NumPy copy of a backend array, for user-visible output only (the one place
        values leave the backend)."""
        return self.ext.to_host(value)


_NAMESPACES: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "NumPy"),
    "cupy": ("array_api_compat.cupy", "CuPy: pip install 'lamad[cuda]'"),
    "torch": ("array_api_compat.torch", "PyTorch: pip install 'lamad[torch]'"),
    "jax": ("jax.numpy", "JAX: pip install 'lamad[jax]'"),
    "dask": ("array_api_compat.dask.array", "Dask: pip install 'lamad[dask]'"),
    "array-api-strict": ("array_api_strict", "array-api-strict: pip install array-api-strict"),
}
"""Each backend's namespace (a module path) and what installs it."""


def get_backend(name: str | None = None, dtype: str | None = None) -> Backend:
    """The backend ``name`` (default: ``$LAMAD_BACKEND`` or ``numpy``) with float ``dtype``
    (default: ``$LAMAD_DTYPE`` or ``float64``), read from the environment at each call."""
    return _backend(name or os.environ.get("LAMAD_BACKEND") or "numpy",
                    dtype or os.environ.get("LAMAD_DTYPE") or "float64")


@lru_cache(maxsize=None)
def _backend(name: str, dtype: str) -> Backend:
    """The backend ``name`` with float ``dtype``, made once."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
    if dtype not in DTYPES:
        raise BackendError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
    module, needs = _NAMESPACES[name]
    if name == "jax":
        _enable_float64()
    try:
        xp = importlib.import_module(module)
    except ImportError:
        raise BackendError(f"the {name} backend needs {needs}") from None
    float_dtype = np.dtype(dtype) if name == "numpy" else getattr(xp, dtype)
    return Backend(name, xp, float_dtype, extensions(name, xp))


def _enable_float64() -> None:
    """JAX computes in float32 unless told otherwise, once per process: lamad's float64
    backend needs its 64-bit mode (which leaves float32 arrays float32)."""
    try:
        import jax
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)


def available(name: str) -> bool:
    """Whether the backend ``name`` can be made here (its library is installed)."""
    try:
        get_backend(name)
    except BackendError:
        return False
    return True
