"""Shared timing helpers: medians of interleaved repetitions, the machine, Markdown tables."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
"""``cpu`` is the CPU time of this process (all its threads): on a machine shared with
other jobs it counts the work done, not the time spent waiting for a core."""


def median_times(fns: dict[str, Callable[[], object]], repeats: int = 7, min_time: float = 0.05,
                 clock: str = "cpu") -> dict[str, float]:
    """Median seconds per call of each function, the functions interleaved so that drift
    in the machine's speed affects them alike; each sample loops until ``min_time``."""
    now = CLOCKS[clock]
    loops = {}
    for name, fn in fns.items():
        fn()  # warm up: compile, caches
        start = now()
        fn()
        elapsed = now() - start
        loops[name] = max(1, int(min_time / max(elapsed, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = now()
            for _ in range(loops[name]):
                fn()
            samples[name].append((now() - start) / loops[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def steady_allocator() -> str:
    """Keep freed memory in the process (glibc's ``mallopt``): no heap trimming, and arrays
    up to 32 MiB from the heap rather than fresh ``mmap``s.  Otherwise glibc hands the
    arrays of a call back to the system and the next call faults every page in again, for
    NumPy and lamad alike, and how much depends on what else the process imported
    (importing PyTorch ends it).  Returns how the allocator is set, for the results."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return "the system's allocator as it is"
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    if mallopt(m_trim_threshold, 2**30) == 1 and mallopt(m_mmap_threshold, 2**25) == 1:
        return "glibc's heap kept (mallopt: no trimming, mmap above 32 MiB only)"
    return "the system's allocator as it is (mallopt refused)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The machine and the software the figures were taken with."""
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    return (f"{_cpu_model()} ({platform.machine()}), {os.cpu_count()} cores (nproc), load average "
            f"{os.getloadavg()[0]:.1f} at the start; Python {platform.python_version()}, NumPy {np.__version__} "
            f"with {blas.get('name', '?')} {blas.get('version', '')}, BLAS threads {threads}")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def write_results(name: str, text: str, directory: Path = RESULTS) -> Path:
    """Print ``text`` and write it to ``DIRECTORY/NAME.md``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.md"
    path.write_text(text)
    print(text)
    return path
