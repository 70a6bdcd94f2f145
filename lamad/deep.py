"""Deeply nested programs (a chain of 10,000 ``let``s, say) recurse deeper than
Python's default limit in the passes that walk terms.  :func:`deep` runs a pass
normally and, only if it overflows, runs it again on a thread with a large stack
and a high recursion limit; past that, the program is reported as too deep."""

from __future__ import annotations

import functools
import gc
import sys
import threading
from typing import Callable, TypeVar

from lamad.errors import LamError

STACK_BYTES = 1024 * 2**20
RECURSION_LIMIT = 100_000

_state = threading.local()
F = TypeVar("F", bound=Callable)


class TooDeepError(LamError):
    kind = "error"


def deep(fn: F) -> F:
    """Wrap a pure pass so that deep inputs get a big stack instead of a RecursionError."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if getattr(_state, "deep", False):
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            return _on_big_stack(fn, args, kwargs)

    return run  # type: ignore[return-value]


def collector_paused(fn: F) -> F:
    """Run a pass over a program with Python's cyclic garbage collector paused.  A pass
    over a big program allocates millions of small acyclic nodes, and the collector
    would scan them all again and again as they survive (three quarters of the time
    of ←D and its compilation on a 10,000-link chain).  Reference counting still
    frees everything; the collector resumes when the pass returns."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return run  # type: ignore[return-value]


def _on_big_stack(fn, args, kwargs):
    outcome: dict[str, object] = {}

    def target():
        _state.deep = True
        try:
            outcome["value"] = fn(*args, **kwargs)
        except RecursionError:
            outcome["error"] = TooDeepError(
                "the program is nested too deeply for lamad (more than about 30,000 levels); "
                "name inner parts with let, whose chains may be of any length")
        except BaseException as e:  # handed to the calling thread as is
            outcome["error"] = e

    old_size, old_limit = threading.stack_size(), sys.getrecursionlimit()
    threading.stack_size(STACK_BYTES)
    sys.setrecursionlimit(max(old_limit, RECURSION_LIMIT))
    try:
        worker = threading.Thread(target=target, name="lamad-deep")
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]
