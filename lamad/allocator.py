"""The heap policy lamad sets for its process when imported (docs/performance.md, "Memory").

A gradient allocates the arrays of one call and frees them all when it returns.  By
default glibc hands freed blocks above its mmap threshold (dynamic, from 128 KiB) and the
free top of its heap back to the system, so the next call faults every page of its
arrays in again (the digits network's loss + gradient takes 1.4 times as long), and
whether it happens depends on what else the process imported.  So on glibc lamad keeps what it frees (``mallopt``): the heap is trimmed only
above 1 GiB of free memory at its top (``M_TRIM_THRESHOLD``), and blocks come from fresh
``mmap``s only above 32 MiB (``M_MMAP_THRESHOLD``).  A process's memory then stays at
its peak until it exits rather than shrinking after each call, as PyTorch's and JAX's
caching allocators keep theirs.

``LAMAD_ALLOCATOR=system`` in the environment leaves the allocator as the process found
it.  Where the C library is not glibc (macOS, Windows, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import IO, Mapping

TRIM_THRESHOLD = 2**30
"""Free memory at the top of the heap above which glibc gives it back (1 GiB)."""

MMAP_THRESHOLD = 2**25
"""Blocks above this size (32 MiB) get an ``mmap`` of their own, returned when freed."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h

VARIABLE = "LAMAD_ALLOCATOR"
CHOICES = ("keep", "system")


def _glibc() -> bool:
    """Whether this process runs on glibc (its version string is glibc's alone)."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False


def _choice(environ: Mapping[str, str], stream: IO[str]) -> str:
    """``$LAMAD_ALLOCATOR``: ``keep`` (the default) or ``system``; another value is reported
    on ``stream`` and the default used."""
    text = environ.get(VARIABLE, "keep")
    if text not in CHOICES:
        print(f"lamad: warning: {VARIABLE}={text!r} is not one of {', '.join(CHOICES)}; using keep", file=stream)
        return "keep"
    return text


def keep_freed_memory(environ: Mapping[str, str] = os.environ, stream: IO[str] = sys.stderr) -> str:
    """Apply the policy above unless the environment opts out; returns what the process's
    allocator now does, in words (the benchmarks print it with their figures)."""
    if _choice(environ, stream) == "system":
        return f"the system's allocator as it is (${VARIABLE}=system)"
    if not _glibc():
        return "the system's allocator as it is (not glibc)"
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1:
        return "glibc's freed memory kept by lamad (trimmed above 1 GiB, mmap above 32 MiB)"
    return "the system's allocator as it is (mallopt refused)"


POLICY = keep_freed_memory()
"""What importing lamad did to the process's allocator."""
