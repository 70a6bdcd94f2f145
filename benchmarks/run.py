"""The benchmark in one command:

    python benchmarks/run.py            # the five reference workloads, a few minutes
    python benchmarks/run.py --quick    # tiny sizes: a smoke run of the harness
    python benchmarks/run.py --backend dask   # lamad on another backend, against hand NumPy still

For each workload (benchmarks/workloads.py) it checks the gradients of lamad and of every
installed peer (benchmarks/peers.py) against the hand-written NumPy baseline, then times
loss + gradient — medians of interleaved repetitions, single-threaded BLAS — and prints
the ratios to hand NumPy and lamad's own gradient / forward ratio, and each workload's
first-call cost: parse, check, and the first gradient call that makes the gradient.  The
shared chain ``x_i = x_(i-1) · x_(i-1)`` also gets a table of its growth in n.  Tables go
to benchmarks/results/.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    import blas
    blas.one_thread()

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lamad  # noqa: E402
from common import CLOCKS, RESULTS, machine, markdown_table, median_times, write_results  # noqa: E402
from lamad.fuse import FUSED_MOST  # noqa: E402
from lamad.gradient import Stats  # noqa: E402
from lamad.parser import parse_program  # noqa: E402
from lamad.backend import BACKENDS, Backend, get_backend  # noqa: E402
from lamad.types import typecheck  # noqa: E402
from peers import convert, installed, peers  # noqa: E402
from workloads import Workload, chain, workloads  # noqa: E402

GRAD_OVER_FORWARD = 3.0
"""The target bound on lamad's loss + gradient time over its forward time, everywhere."""


def lamad_functions(w: Workload, backend: Backend) -> tuple:
    """The workload's loss and its value and gradient, from lamad's Python API, on
    ``backend``, each a function of no arguments: the workload's arguments are on the
    backend already, and what the function returns is on the host, computed (a lazy
    backend's time is that of the computation, not of the task graph alone)."""
    loss = lamad.loads(w.program, backend=backend.name).loss
    argnums = w.argnums[0] if len(w.argnums) == 1 else w.argnums
    value_and_grad = lamad.value_and_grad(loss, argnums=argnums)
    if backend.name == "numpy":
        return lambda: loss(*w.args), lambda: value_and_grad(*w.args)
    args = convert(w.args, lambda a: backend.asarray(a) if a.ndim else backend.scalar(float(a)))
    return (lambda: on_host(loss(*args), backend)), (lambda: on_host(value_and_grad(*args), backend))


def on_host(value: object, backend: Backend) -> object:
    """A result's arrays (in tuples and lists) as NumPy arrays, computed."""
    if isinstance(value, (tuple, list)):
        return type(value)(on_host(v, backend) for v in value)
    return backend.to_host(value) if backend.owns(value) else value


def first_call_cost(w: Workload, backend: Backend) -> dict[str, float]:
    """Seconds from the workload's text to its first gradient: its parse
    (``parse_program``) and check (``typecheck``) apart, then ``lamad.loads``, which does
    both, and the first call of ``value_and_grad`` on the loss (its ←D, compile
    and run, with the compile of the loss itself)."""
    now = time.perf_counter
    start = now()
    parsed = parse_program(w.program)
    parse = now() - start
    start = now()
    typecheck(parsed)
    check = now() - start
    start = now()
    program = lamad.loads(w.program, backend=backend.name)
    loads = now() - start
    start = now()
    argnums = w.argnums[0] if len(w.argnums) == 1 else w.argnums
    on_host(lamad.value_and_grad(program.loss, argnums=argnums)(*w.args), backend)
    first = now() - start
    return {"parse": parse, "check": check, "loads": loads, "first call": first, "total": loads + first}


def check(name: str, result: tuple, reference: tuple, rtol: float = 1e-9) -> None:
    """``result`` = (loss, gradients) against the hand-written NumPy ``reference``."""
    value, grads = result
    grads = grads if isinstance(grads, (tuple, list)) else (grads,)
    assert len(grads) == len(reference[1]), f"{name}: {len(grads)} gradients, expected {len(reference[1])}"
    np.testing.assert_allclose(np.asarray(value), reference[0], rtol=rtol, err_msg=f"{name}: loss")
    for i, (g, ref) in enumerate(zip(grads, reference[1])):
        np.testing.assert_allclose(np.asarray(g), ref, rtol=rtol, atol=1e-12 * max(1.0, float(np.max(np.abs(ref)))),
                                   err_msg=f"{name}: gradient {i}")


def measure(w: Workload, backend: Backend, systems: list[str], repeats: int, min_time: float,
            clock: str) -> dict[str, float]:
    """Seconds per call of every contender on ``w``, lamad on ``backend``, after checking their gradients."""
    loss, value_and_grad = lamad_functions(w, backend)
    reference = w.value_and_grad(*w.args)
    check(f"{w.name}: NumPy forward", (w.loss(np, *w.args), reference[1]), reference)
    others = peers(w, systems) if w.peers else {}
    contenders = {"NumPy forward": lambda: w.loss(np, *w.args), "NumPy": lambda: w.value_and_grad(*w.args),
                  "lamad forward": loss, "lamad": value_and_grad, **others}
    check(f"{w.name}: lamad forward", (loss(), reference[1]), reference)
    for name in ["lamad", *others]:
        check(f"{w.name}: {name}", contenders[name](), reference, rtol=1e-9 if name == "lamad" else 1e-7)
    return median_times(contenders, repeats=repeats, min_time=min_time, clock=clock)


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def workload_row(w: Workload, t: dict[str, float], systems: list[str]) -> tuple[list[str], list[str]]:
    """A table row, and the targets it misses."""
    ratio, own = t["lamad"] / t["NumPy"], t["lamad"] / t["lamad forward"]
    missed = []
    if w.target is not None and ratio > w.target:
        missed.append(f"{w.name}: lamad / NumPy {ratio:.2f} > {w.target}")
    if own > GRAD_OVER_FORWARD:
        missed.append(f"{w.name}: lamad grad / forward {own:.2f} > {GRAD_OVER_FORWARD}")
    row = [w.name, f"{t['NumPy'] * 1e6:,.0f}", f"{t['lamad'] * 1e6:,.0f}", f"**{_ratio(ratio)}**",
           f"≤ {w.target:g}" if w.target is not None else "", f"{own:.2f}", f"{t['NumPy'] / t['NumPy forward']:.2f}"]
    row += [_ratio(t[s] / t["NumPy"]) if s in t else "–" for s in systems]
    return row, missed


def chain_growth(sizes: list[int], backend: Backend, repeats: int, min_time: float, clock: str) -> list[list[str]]:
    """The shared chain ``x_i = x_(i-1) · x_(i-1)`` at growing n: time per link and backpropagator runs."""
    rows = []
    for n in sizes:
        w = chain(n)
        start = time.perf_counter()
        loss, value_and_grad = lamad_functions(w, backend)
        value_and_grad()
        setup = time.perf_counter() - start
        reference = w.value_and_grad(*w.args)
        check(w.name, value_and_grad(), reference)
        Stats.reset()
        value_and_grad()
        runs = Stats.backprop_runs
        fused = math.ceil(n / (FUSED_MOST + 1))  # lamad/fuse.py
        assert runs == fused, f"{w.name}: {runs} backpropagator runs, expected {fused}"
        t = median_times({"forward": loss, "grad": value_and_grad,
                          "NumPy": lambda: w.value_and_grad(*w.args)}, repeats=repeats, min_time=min_time,
                         clock=clock)
        rows.append([f"{n:,}", f"{t['forward'] * 1e3:.2f}", f"{t['grad'] * 1e3:.2f}", f"{t['grad'] / t['forward']:.2f}",
                     f"{t['grad'] / n * 1e6:.2f}", f"{t['grad'] / t['NumPy']:.1f}", f"{runs:,}", f"{setup:.1f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions: a smoke run")
    parser.add_argument("--no-peers", action="store_true", help="lamad and hand NumPy only")
    parser.add_argument("--only", metavar="TEXT", help="only the workloads whose name contains TEXT")
    parser.add_argument("--repeats", type=int, help="interleaved repetitions per median (default 7; 3 with --quick)")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall (default), or cpu: this process's CPU time, steadier on a machine shared with "
                             "other jobs but only fair with --no-peers (JAX and PyTorch keep threads of their own)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help="chain lengths for the growth table (default 100 1000 10000 100000)")
    parser.add_argument("--backend", choices=BACKENDS, default="numpy",
                        help="lamad's array backend (default numpy); the baseline stays hand-written NumPy")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the tables")
    args = parser.parse_args(argv)
    backend = get_backend(args.backend)
    np.seterr(over="ignore")  # the chain's gradient 2^n overflows from n = 1024: the time is what counts
    repeats = args.repeats or (3 if args.quick else 7)
    min_time = 0.002 if args.quick else 0.05
    systems = [] if args.no_peers else installed()
    header = machine()

    rows, missed, sources, first_rows = [], [], set(), []
    for w in workloads(args.quick):
        if args.only and args.only not in w.name:
            continue
        print(f"{w.name} ...", file=sys.stderr, flush=True)
        cost = first_call_cost(w, backend)
        row, misses = workload_row(w, measure(w, backend, systems, repeats, min_time, args.clock), systems)
        rows.append(row)
        first_rows.append([w.name, *(f"{cost[k] * 1e3:,.1f}" for k in ("parse", "check", "loads", "first call",
                                                                        "total"))])
        missed += misses
        if w.data:
            sources.add(w.data)
    chain_rows = [] if args.only and args.only not in "chain" else \
        chain_growth(args.sizes or ([10, 100] if args.quick else [100, 1_000, 10_000, 100_000]), backend, repeats,
                     min_time, args.clock)

    on = "" if backend.name == "numpy" else f" on {backend.name}"
    text = ["# lamad benchmark" + on + (" (quick: tiny sizes)" if args.quick else ""), "",
            f"Loss + gradient per call ({args.clock} time), median of interleaved repetitions; every gradient "
            "checked against the hand-written NumPy one first. Ratios are times relative to hand NumPy's loss + gradient, except "
            "*grad / fwd*: loss + gradient over the forward pass of the same system." +
            (f" lamad runs on the {backend.name} backend, its results computed and brought to the host in "
             "each call; hand NumPy is NumPy." if on else ""), ""]
    if rows:
        text += [markdown_table(["workload", "NumPy (µs)", "lamad (µs)", "lamad / NumPy", "target",
                                 "lamad grad / fwd", "NumPy grad / fwd", *systems], rows), ""]
        text += [f"Data: {', '.join(sorted(sources))}.", ""] if sources else []
        text += ["Targets missed: " + "; ".join(missed) + "." if missed else "All targets met.", ""]
        text += ["First-call cost (ms, wall time, one run each, before any timing): parse and check apart "
                 "(`parse_program`, `typecheck`), then `lamad.loads` (both) and the first `value_and_grad` call on "
                 "the loss, which makes the gradient (←D and compile) and runs it once; total = loads + first "
                 "call.", "",
                 markdown_table(["workload", "parse", "check", "loads", "first call", "total"], first_rows), ""]
    if chain_rows:
        text += ["The shared chain x_i = x_(i-1) · x_(i-1): the gradient's time grows linearly in n "
                 "and runs one backpropagator per FUSED_MOST + 1 links, into which the links' backpropagators are "
                 "fused when ←D is compiled again for the gradient's second call (lamad/fuse.py).", "",
                 markdown_table(["n", "lamad forward (ms)", "lamad loss + grad (ms)", "grad / fwd",
                                 "µs per link", "lamad / NumPy", "backpropagator runs",
                                 "parse + check + ←D + compile (s)"], chain_rows), ""]
    text += [f"Machine: {header}.", ""]
    name = "benchmarks" + ("-" + backend.name if on else "") + ("-quick" if args.quick else "")
    write_results(name, "\n".join(text), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
