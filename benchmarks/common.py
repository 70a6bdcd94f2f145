"""Shared timing helpers: medians of interleaved repetitions, the machine, Markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from lamad.allocator import POLICY

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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The machine and the software the figures were taken with, and the allocator as
    lamad's import left it (lamad/allocator.py): the figures are those of a default process."""
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    return (f"{_cpu_model()} ({platform.machine()}), {os.cpu_count()} cores (nproc), load average "
            f"{os.getloadavg()[0]:.1f} at the start; Python {platform.python_version()}, NumPy {np.__version__} "
            f"with {blas.get('name', '?')} {blas.get('version', '')}, BLAS threads {threads}; allocator: {POLICY}")


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
