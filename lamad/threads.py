"""How many threads the BLAS under NumPy uses (``lamad run --threads N``, ``lamad repl
--threads N``; docs/design.md, Threads).

One by default: lamad's programs multiply small matrices, where a second BLAS thread
gains little alone and costs much on a loaded machine (docs/design.md has the figures).
The environment variables that OpenBLAS, OpenMP and MKL read are set for libraries not
yet loaded, and, since the command line has imported NumPy already, the BLAS NumPy has
loaded is told directly: through threadpoolctl when it is installed, otherwise through
OpenBLAS's own ``openblas_set_num_threads``, found among the loaded libraries."""

from __future__ import annotations

import ctypes
import os

DEFAULT_THREADS = 1
_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads")
_limits = None  # threadpoolctl's limits, kept for the life of the process


def limit_threads(n: int) -> bool:
    """Use ``n`` BLAS threads from now on; returns whether a loaded BLAS was told."""
    global _limits
    for name in _VARIABLES:
        os.environ[name] = str(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return _openblas(n)
    _limits = threadpool_limits(limits=n, user_api="blas")
    return True


def _openblas(n: int) -> bool:
    """``openblas_set_num_threads(n)`` in every OpenBLAS this process has loaded (Linux)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return False
    told = False
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _SETTERS:
            setter = getattr(library, symbol, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                told = True
                break
    return told
