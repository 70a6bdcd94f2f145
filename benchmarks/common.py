"""Shared timing helpers: medians of interleaved repetitions, and a results table."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def median_times(fns: dict[str, Callable[[], object]], repeats: int = 7, min_time: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each function, the functions interleaved so that drift
    in the machine's speed affects them alike; each sample loops until ``min_time``."""
    loops = {}
    for name, fn in fns.items():
        fn()  # warm up: compile, caches
        n, start = 1, time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        loops[name] = max(1, int(min_time / max(elapsed, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / loops[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def write_table(name: str, header: list[str], rows: list[list[str]], note: str = "") -> str:
    """A Markdown table, printed and written to ``benchmarks/results/NAME.md``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = f"{note}\n\n" + "\n".join(lines) + f"\n\nMachine: {machine()}\n" if note else "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return text
