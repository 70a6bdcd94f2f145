"""Deep programs: a chain of 10,000 nested ``let``s and 10,000 nested
applications parse, type-check and evaluate without a ``RecursionError``; deeper nesting
is a clear error from the CLI, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import lamad
from lamad.deep import RECURSION_LIMIT, deep
from lamad.syntax import REAL

ROOT = Path(__file__).resolve().parent.parent


def let_chain(n: int) -> str:
    """``let x1 = 1.0 in let x2 = x1 * 1.0 + 1.0 in … xn``, whose value is ``n``."""
    bindings = ["let x1 = 1.0 in "] + [f"let x{i + 1} = x{i} * 1.0 + 1.0 in " for i in range(1, n)]
    return "def main = " + "".join(bindings) + f"x{n}\n"


def nested_negations(n: int) -> str:
    """``-(-(…-(2.0)…))``: ``n`` applications, each inside the argument of the next."""
    return "def main = " + "-(" * n + "2.0" + ")" * n + "\n"


def test_ten_thousand_nested_lets_parse_check_and_evaluate():
    prog = lamad.loads(let_chain(10_000))
    assert prog.types["main"] == REAL
    assert float(prog.main) == 10_000.0


def test_ten_thousand_nested_applications_evaluate():
    prog = lamad.loads(nested_negations(10_001))
    assert float(prog.main) == -2.0


def test_nesting_too_deep_for_the_stack_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.lam"
    path.write_text(nested_negations(40_000))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "lamad.cli", "run", str(path)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert proc.stderr.startswith(f"{path}: error: the program is nested too deeply"), proc.stderr[:300]


def test_free_variables_of_a_long_chain_take_linear_memory():
    """``grad`` finds the free variables of the function it differentiates; on a chain of
    ``let``s that must not build a set of bound names per binding (quadratic memory)."""
    import tracemalloc

    from lamad.syntax import free_variables

    def peak(n: int) -> int:
        term = lamad.loads(let_chain(n).replace("1.0 in", "y in", 1).replace("def main =", "def f (y : Real) : Real =")
                           ).typed.terms["f"].body
        tracemalloc.start()
        free = free_variables(term)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert free == {"y": REAL}
        return size

    for n in (1_000, 4_000):  # linear: about 110 bytes a link (its stack entries, the bound names' dict);
        assert peak(n) < 250 * n  # a set of the bound names per binding: n² / 2 names, megabytes


def test_passes_run_with_the_cyclic_collector_paused_and_resume_it():
    import gc

    from lamad.deep import collector_paused

    seen = []

    @collector_paused
    def failing_pass():
        seen.append(gc.isenabled())
        raise ValueError("bad program")

    assert gc.isenabled()
    try:
        failing_pass()
    except ValueError:
        pass
    assert seen == [False] and gc.isenabled()
    gc.disable()  # a caller that paused it itself keeps it paused
    try:
        collector_paused(lambda: None)()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_ctrl_c_during_a_deep_pass_waits_for_it_to_unwind_before_lowering_the_limit():
    """A KeyboardInterrupt that reaches the caller while the pass runs deep on its worker
    is handed to the worker; the recursion limit goes back down only once the pass has
    unwound (lowered under it, Python aborts: "Cannot recover from stack overflow")."""
    deepest, limits = threading.Event(), []
    main = threading.get_ident()

    @deep
    def dive(n: int) -> int:
        if n == 0:
            deepest.set()
            while True:  # until interrupted
                time.sleep(0.01)
        try:
            return dive(n - 1)
        except KeyboardInterrupt:  # builtins only: the caller's frames unwind at its recursion limit
            limits.append((threading.get_ident(), sys.getrecursionlimit()))
            raise

    old = sys.getrecursionlimit()
    interrupter = threading.Thread(target=lambda: deepest.wait(30) and signal.pthread_kill(main, signal.SIGINT))
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        dive(5_000)
    interrupter.join()
    in_worker = [limit for thread, limit in limits if thread != main]
    assert len(in_worker) > 1_000 and set(in_worker) == {max(old, RECURSION_LIMIT)}  # all under the high limit
    assert sys.getrecursionlimit() == old
