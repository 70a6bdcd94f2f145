"""Single-threaded BLAS (and XLA) for the benchmarks' figures.  OpenBLAS reads these
variables when NumPy loads it, so :func:`one_thread` is called before anything imports
NumPy, by a benchmark run as a script."""

from __future__ import annotations

import os
import sys

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS")


def one_thread() -> None:
    """One BLAS thread, and XLA on one thread, for this process and its children."""
    assert "numpy" not in sys.modules, "the BLAS thread count must be set before NumPy loads"
    for variable in VARIABLES:
        os.environ[variable] = "1"
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
