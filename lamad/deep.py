"""Deeply nested programs (a chain of 10,000 ``let``s, say) recurse deeper than
Python's default limit in the passes that walk terms.  :func:`deep` runs a pass
normally and, only if it overflows, runs it again on a thread with a large stack
and a high recursion limit; past that, the program is reported as too deep."""

from __future__ import annotations

import ctypes
import functools
import gc
import sys
import threading
import time
from typing import Callable, TypeVar

from lamad.errors import LamError

STACK_BYTES = 1024 * 2**20
RECURSION_LIMIT = 100_000


class _State(threading.local):
    """Per thread: whether it is a worker with a big stack (a class default, so that the
    test on every call of a wrapped function is one attribute read, not a failed lookup)."""

    deep = False


_state = _State()
F = TypeVar("F", bound=Callable)

_raised = threading.Lock()
_running = 0  # workers running now: the recursion limit goes back down when the last one ends
_old_limit = 0


class TooDeepError(LamError):
    kind = "error"


def deep(fn: F) -> F:
    """Wrap a pure pass so that deep inputs get a big stack instead of a RecursionError."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if _state.deep:
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
    """``fn`` run on a worker thread with a big stack and a high recursion limit.  The
    limit stays high until the worker has finished: lowered under a deep worker, it
    would make the worker's next call overflow while it handles the error, and Python
    aborts ("Cannot recover from stack overflow").  So a Ctrl-C that arrives while the
    caller waits is handed to the worker, the caller waits for it to unwind, and then
    raises the KeyboardInterrupt itself."""
    global _running, _old_limit
    outcome: dict[str, object] = {}

    def target():
        _state.deep = True
        try:
            try:
                outcome["value"] = fn(*args, **kwargs)
            except RecursionError:
                outcome["error"] = TooDeepError(
                    "the program is nested too deeply for lamad (more than about 30,000 levels); "
                    "name inner parts with let, whose chains may be of any length")
            except BaseException as e:  # handed to the calling thread as is
                outcome["error"] = e
        except BaseException as e:  # the interrupt, handed over just as the pass ended
            outcome.setdefault("error", e)
        finally:
            outcome["finished"] = True

    with _raised:
        if _running == 0:
            _old_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_old_limit, RECURSION_LIMIT))
        _running += 1
    worker, interrupted = None, False
    try:
        old_size = threading.stack_size(STACK_BYTES)
        try:
            worker = threading.Thread(target=target, name="lamad-deep", daemon=True)
            worker.start()
        finally:
            threading.stack_size(old_size)
        interrupted = _wait(worker, outcome)
    except KeyboardInterrupt:  # before the wait began: the worker is interrupted and waited for
        interrupted = True
        if worker is not None and worker.ident is not None:
            _wait(worker, outcome, interrupted=True)
    finally:
        with _raised:
            _running -= 1
            if _running == 0:
                sys.setrecursionlimit(_old_limit)
    if interrupted:
        raise KeyboardInterrupt
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]


def _wait(worker: threading.Thread, outcome: dict[str, object], interrupted: bool = False) -> bool:
    """Wait until ``worker`` has finished its pass, handing it the first KeyboardInterrupt
    that arrives meanwhile (raised in it, it unwinds the pass); whether one arrived.  An
    interrupt may arrive between any two steps, so every step is inside the ``try``.

    The wait polls with ``time.sleep``, which an interrupt leaves in no state to repair:
    ``Thread.join`` interrupted by Ctrl-C may mark a running thread as stopped (CPython
    3.11), and a lock acquired just before the interrupt would stay held."""
    handed = False
    pause = 1e-4
    while True:
        try:
            if "finished" in outcome:
                return interrupted
            if interrupted and not handed:
                handed = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident),
                                                           ctypes.py_object(KeyboardInterrupt))
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        except KeyboardInterrupt:
            interrupted = True
