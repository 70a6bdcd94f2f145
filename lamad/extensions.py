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
    return Extensions(to_host=lambda x: np.asarray(x.compute()), from_host=xp.asarray)


def _strict(xp: Any) -> Extensions:
    return Extensions(to_host=np.from_dlpack, from_host=xp.asarray)


_MAKERS: dict[str, Callable[[Any], Extensions]] = {
    "numpy": _numpy, "cupy": _cupy, "torch": _torch, "jax": _jax, "dask": _dask, "array-api-strict": _strict,
}
