"""``lamad trace``, the REPL's ``:trace`` and ``:stats`` and lamad/trace.py (README.md,
"Seeing a derivative"; docs/differentiation.md, "Reading a trace"): the primal, tangent
and adjoint traces of Baydin et al.'s survey of AD, the adjoint one recorded from the run
of ``grad`` by an observer of ``force``."""

from __future__ import annotations

import math
import re
import shlex
import sys

import numpy as np
import pytest

import lamad
from inprocess import ROOT, ok, run_lamad
from lamad import gradient, trace
from lamad.gradient import Stats
from lamad.prims.base import FUSED_BACKWARD
from test_repl import data_home, session  # noqa: F401 - data_home: each session's history apart

SURVEY = ("trace", "examples/log_sin.lam", "--entry", "steps", "--at", "(2.0, 5.0)")

PRINTED = 5e-4
"""Half a unit in the last place of a number the trace prints (three decimals)."""

X1, X2 = 2.0, 5.0
V = {-1: X1, 0: X2, 1: math.log(X1), 2: X1 * X2, 3: math.sin(X2)}
V[4] = V[1] + V[2]
V[5] = V[4] - V[3]
"""The survey's evaluation trace of f(x1, x2) = ln x1 + x1 x2 − sin x2 at (2, 5), step by step."""

_INDEX = str.maketrans("₋₀₁₂₃₄₅₆₇₈₉", "-0123456789")


def cells(line: str) -> list[str]:
    """A row of a trace's table: its cells, two spaces or more apart."""
    return re.split(r"\s{2,}", line.strip())


def index(name: str) -> int:
    """``i`` of ``vᵢ``, ``v̄ᵢ`` or ``v̇ᵢ``."""
    return int(name[1:].replace("\u0304", "").replace("\u0307", "").translate(_INDEX))


def primal_rows(text: str) -> dict[int, list[str]]:
    """The rows of the forward table by ``i`` of their ``vᵢ``: the cells after it."""
    block = text.split("\n\n")[0].splitlines()[1:]
    return {index(c[0]): c[1:] for c in map(cells, block) if c[0].startswith("v")}


def close(printed: str, expected: float) -> bool:
    return abs(float(printed) - expected) <= PRINTED


def test_the_forward_primal_trace_has_the_survey_numbers():
    rows = primal_rows(ok(run_lamad(*SURVEY)))
    assert sorted(rows) == [-1, 0, 1, 2, 3, 4, 5]
    expressions = {-1: "x1", 0: "x2", 1: "log v₋₁", 2: "v₋₁ * v₀", 3: "sin v₀", 4: "v₁ + v₂", 5: "v₄ - v₃"}
    for i, row in rows.items():
        assert row[:3] == ["=", expressions[i], "="]
        assert close(row[3], V[i]), (i, row)
    assert [row[4] for i, row in rows.items() if i > 0] == ["10:12", "10:25", "10:39", "10:52", "10:63"]
    assert [row[5] for i, row in rows.items() if i > 0] == ["log x1", "x1 * x2", "sin x2", "v1 + v2", "v4 - v3"]


@pytest.mark.parametrize("seed, dx1, dx2", [("x1", 1.0, 0.0), ("x2", 0.0, 1.0)])
def test_the_tangent_trace_has_the_survey_numbers(seed, dx1, dx2):
    """Figure 2 of the survey, seeded at either input: each tangent by the chain rule."""
    dots = {-1: dx1, 0: dx2, 1: dx1 / X1, 2: dx1 * X2 + X1 * dx2, 3: dx2 * math.cos(X2)}
    dots[4] = dots[1] + dots[2]
    dots[5] = dots[4] - dots[3]
    text = ok(run_lamad(*SURVEY, "--forward", "--seed", seed))
    assert "reverse" not in text
    rows = primal_rows(text)
    for i, row in rows.items():
        assert index(row[4]) == i and row[5] == "="
        assert close(row[6], dots[i]), (i, row)


def test_the_reverse_adjoint_trace_has_the_survey_numbers():
    """Figure 3 of the survey: each backpropagator once, largest id first, on the sum of
    what was sent to it; the inputs' cotangents are the gradient."""
    text = ok(run_lamad(*SURVEY))
    head, table = text.split("\n\n")[1].split("\n", 1)
    assert head == "reverse adjoint trace, from the seed v̄₅ ← 1 (backpropagators in the order forcing ran them):"
    runs, inputs = table.split("the inputs' cotangents, the gradient:\n")
    rows = [cells(line) for line in runs.splitlines()[1:]]
    bar = {5: 1.0, 4: 1.0, 3: -1.0, 2: 1.0, 1: 1.0}  # v̄₅ = 1, v̄₄ = v̄₅, v̄₃ = -v̄₅, v̄₂ = v̄₁ = v̄₄
    sends = {5: [(4, 1.0), (3, -1.0)], 4: [(1, 1.0), (2, 1.0)], 3: [(0, bar[3] * math.cos(X2))],
             2: [(-1, bar[2] * X2), (0, bar[2] * X1)], 1: [(-1, bar[1] / X1)]}
    assert [(r[0], r[1]) for r in rows] == [("1", "v̄₅ (-)"), ("2", "v̄₄ (+)"), ("3", "v̄₃ (sin)"),
                                            ("4", "v̄₂ (*)"), ("5", "v̄₁ (log)")]
    for row in rows:
        i = index(row[1].split()[0])
        assert close(row[2], bar[i]) and close(row[3], bar[i])
        sent = [s.split(" ← ") for s in row[4].split(", ")]
        assert [index(name) for name, _ in sent] == [j for j, _ in sends[i]]
        assert all(close(value, v) for (_, value), (_, v) in zip(sent, sends[i]))
    x1, x2 = [cells(line) for line in inputs.splitlines()]
    assert x1[0] == "x̄1 = v̄₋₁" and x2[0] == "x̄2 = v̄₀"
    assert [float(c) for c in x1[2].split(" + ")] == pytest.approx([X2, 1 / X1], abs=PRINTED)
    assert [float(c) for c in x2[2].split(" + ")] == pytest.approx([-math.cos(X2), X1], abs=PRINTED)
    assert close(x1[4], X2 + 1 / X1) and close(x2[4], X1 - math.cos(X2))


SHARED = """
def shared (x : Real) (y : Real) : Real = let u = x * y in sin u + cos u
"""


def test_a_shared_value_receives_two_cotangents_and_its_backpropagator_runs_once():
    prog = lamad.loads(SHARED)
    t = trace.of_program(prog, "shared", prog.evaluate("(0.5, 3.0)"))
    u = next(i for i, n in enumerate(t.graph.nodes) if n.op == "mul")
    uv = 0.5 * 3.0
    # cos u has the larger id, so its backpropagator runs before sin u's: -sin u, then cos u
    assert [float(c) for c in t.received[u]] == pytest.approx([-math.sin(uv), math.cos(uv)])
    (run,) = [r for r in t.runs if r.node == u]
    assert float(run.cotangent) == pytest.approx(math.cos(uv) - math.sin(uv))
    assert [t.graph.nodes[r.node].op for r in t.runs] == ["add", "cos", "sin", "mul"]
    row = cells(next(line for line in trace.format_trace(t).splitlines() if "(*)" in line))
    assert [float(c) for c in row[2].split(" + ")] == pytest.approx([-math.sin(uv), math.cos(uv)], abs=PRINTED)
    assert close(row[3], math.cos(uv) - math.sin(uv))


def test_a_value_used_twice_by_one_primitive_receives_both_shares():
    prog = lamad.loads("def sq (x : Real) : Real = let u = 2.0 * x in u * u")
    t = trace.of_program(prog, "sq", prog.evaluate("1.5"))
    u, square = [i for i, n in enumerate(t.graph.nodes) if n.op == "mul"]
    assert [(r.node, [(node, float(c)) for node, c in r.sent]) for r in t.runs] == [
        (square, [(u, 3.0), (u, 3.0)]),  # ∂(u u)/∂u is u, sent once per use: u = 2 · 1.5
        (u, [(0, 12.0)]),  # 2 · (3 + 3)
    ]


PROGRAMS = {
    "survey": ("def f (x1 : Real) (x2 : Real) : Real = log x1 + x1 * x2 - sin x2", "(2.0, 5.0)"),
    "shared": (SHARED.replace("shared", "f"), "(0.5, 3.0)"),
    "tensors": ("def f (w : Tensor) (b : Real) : Real = sum (tanh (w @ ones [3]) + b) * b",
                "(reshape (real (arange 9) / 4.0 - 1.0) [3, 3], 0.5)"),
    "record": ("def f (p : {w : Real, b : Real}) (x : Real) : Real = p.w * x * x + exp p.b",
               "({w = 2.0, b = -1.0}, 3.0)"),
    "constants": ("def c = exp 1.0\ndef f (x : Real) : Real = let k = 2.0 * 3.0; j = k * k; unused = x * x "
                  "in j * x + c * floor x + x * x", "0.7"),
}


def leaves(value) -> list:
    """The reals and tensors of a Python value of the API, records' fields in alphabetical order."""
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in leaves(v)]
    if isinstance(value, dict):
        return [leaf for k in sorted(value) for leaf in leaves(value[k])]
    return [np.asarray(value, dtype=float)]


def first_unit(value, first: list[bool]):
    """A tangent of a Python value: ones for its first real or tensor, zeros elsewhere."""
    if isinstance(value, tuple):
        return tuple(first_unit(v, first) for v in value)
    if isinstance(value, dict):
        return {k: first_unit(value[k], first) for k in sorted(value)}
    x = np.asarray(value, dtype=float)
    unit, first[0] = (np.ones_like(x) if first[0] else np.zeros_like(x)), False
    return unit if x.ndim else float(unit)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_final_cotangents_are_grad_and_the_final_tangent_is_jvp(name):
    source, point = PROGRAMS[name]
    prog = lamad.loads(source)
    at = prog.evaluate(point)
    t = trace.of_program(prog, "f", at, forward=True)
    types = prog.function_types("f")
    args = [lamad.api.to_python(a, ty, prog) for a, ty in zip([at] if len(types) == 1 else at, types)]
    expected = leaves(lamad.grad(prog.f, tuple(range(len(args))))(*args))
    assert len(t.real_inputs) == len(expected)
    for i, want in zip(t.real_inputs, expected):
        got = t.gradient(i)
        np.testing.assert_allclose(0.0 if got is None else got, want, rtol=1e-13, atol=1e-300)
    first = [True]
    value, tangent = lamad.jvp(prog.f, args, [first_unit(a, first) for a in args])
    (out,) = t.graph.outputs
    assert float(t.graph.nodes[out].value) == pytest.approx(value, rel=1e-15)
    assert float(t.tangents.get(out, 0.0)) == pytest.approx(tangent, rel=1e-13)


def test_tensors_are_shown_by_shape_and_a_summary():
    text = ok(run_lamad("trace", str(ROOT / "examples/log_sin.lam"), "--entry", "f", "--at", "(2.0, 5.0)"))
    assert "[" not in text  # reals are numbers
    prog = lamad.loads(PROGRAMS["tensors"][0])
    w = (np.arange(9.0) / 4.0 - 1.0).reshape(3, 3)
    text = trace.format_trace(trace.of_program(prog, "f", prog.evaluate(PROGRAMS["tensors"][1])))
    rows = primal_rows(text)
    for row, shape, value in [(rows[-1], "3×3", w), (rows[1], "3", w.sum(axis=1))]:  # w, and w @ ones [3]
        m = re.fullmatch(rf"\[{shape}\] mean (\S+), min (\S+), max (\S+)", row[3])
        assert m, row
        assert [float(x) for x in m.groups()] == pytest.approx([value.mean(), value.min(), value.max()],
                                                              abs=PRINTED)
    assert len(text.splitlines()) < 30 and "0.25" not in text  # no entries of the arrays


def test_a_bad_at_is_a_located_error_and_a_bad_seed_a_usage_error():
    proc = run_lamad(*SURVEY[:-1], "(2.0, true)")
    assert proc.returncode == 1 and not proc.stdout
    head, line, carets = proc.stderr.rstrip("\n").split("\n")
    assert head.startswith("<--at>:1:1: type error:") and line == "    (2.0, true)" and carets == "    " + "^" * 11
    proc = run_lamad(*SURVEY, "--forward", "--seed", "x3")
    assert proc.returncode == 2 and "'steps' has no real input 'x3' to seed (its inputs: x1, x2)" in proc.stderr
    proc = run_lamad("trace", "examples/log_sin.lam", "--entry", "main", "--at", "1.0")
    assert proc.returncode == 1 and "takes no arguments" in proc.stderr


def test_the_ascii_trace_has_no_unicode():
    text = ok(run_lamad(*SURVEY, "--ascii"))
    assert text.isascii() and "vbar[-1] <- 5, vbar[0] <- 2" in text
    assert ["v[5]", "=", "v[4] - v[3]"] in [cells(line)[:3] for line in text.splitlines()]


# --------------------------------------------------------------------- the observer costs nothing when off


def python_calls(run) -> dict[str, int]:
    """The calls of Python functions ``run()`` makes, counted by the file they are in."""
    counts: dict[str, int] = {}

    def profile(frame, event, arg):
        if event == "call":
            name = frame.f_code.co_filename
            counts[name] = counts.get(name, 0) + 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return counts


class Counting:
    """An observer that only counts what it is told."""

    def __init__(self) -> None:
        self.forced = self.runs = 0

    def forcing(self, g) -> None:
        self.forced += 1

    def ran(self, target, cotangent, sent) -> None:
        self.runs += 1


def test_forcing_without_an_observer_calls_nothing_but_the_backpropagators():
    """Forcing a chain of 300 backpropagators runs each body once, and those are the only
    Python functions called besides force: without an observer the hook costs no call;
    with one, one call per run and one at the start."""
    n = 300
    chain = [gradient.Backpropagator(None)]
    for _ in range(n):
        chain.append(gradient.Backpropagator(lambda _, a, previous=chain[-1]: (previous, a * 0.5)))
    seed = (chain[-1], 1.0)

    counts = python_calls(lambda: gradient.force(seed))
    assert counts == {gradient.__file__: 2, __file__: 1 + n}  # force and its loop; the lambda that calls it, the n bodies
    observer = Counting()
    with gradient.observed(observer):
        counts = python_calls(lambda: gradient.force(seed))
    assert counts == {gradient.__file__: 2, __file__: 1 + n + n + 1}
    assert (observer.forced, observer.runs) == (1, n)
    assert gradient.force(seed)[chain[0]] == 0.5 ** n


def test_stats_count_runs_sums_and_backpropagators_made():
    def work(fused: bool) -> tuple[int, int, int]:
        unfused = FUSED_BACKWARD.set(fused)
        try:
            prog = lamad.loads(SHARED)
            Stats.reset()
            lamad.grad(prog.shared, (0, 1))(0.5, 3.0)
            return Stats.backprop_runs, Stats.cotangents_summed, Stats.backprops_made()
        finally:
            FUSED_BACKWARD.reset(unfused)

    # x * y, sin u, cos u and their sum: a backpropagator each, and one per input
    assert work(fused=False) == (4, 1, 6)
    # fused when compiled (lamad/fuse.py): one for the body, which sends x and y one cotangent each
    assert work(fused=True) == (1, 0, 3)
    assert lamad.Stats is Stats


# --------------------------------------------------------------------- the REPL


def test_repl_trace_shows_the_forward_tables_and_the_reverse_one():
    out = session("def f (x1 : Real) (x2 : Real) : Real = log x1 + x1 * x2 - sin x2",
                  ":trace f at (2.0, 5.0) wrt x2", ":trace f at (2.0, 5.0) wrt y").split("\n")
    assert out[1] == "forward primal and tangent traces, seeded v̇₀ = 1 (x2; the other inputs' tangents 0):"
    rows = primal_rows("\n".join(out[1:10]))
    assert close(rows[5][3], V[5])
    assert close(rows[5][6], X1 - math.cos(X2))  # ∂f/∂x2
    assert rows[2][7:] == ["<repl>:1:49", "x1 * x2"]
    assert any(line.startswith("reverse adjoint trace, from the seed v̄₅ ← 1") for line in out)
    assert out[out.index("the inputs' cotangents, the gradient:") + 1].split()[-1] == "5.5"
    assert out[-4:-1] == ["<repl>:3:28: error: 'f' has no real input 'y' to seed (its inputs: x1, x2)",
                          "    :trace f at (2.0, 5.0) wrt y", " " * 31 + "^"]


def test_repl_stats_show_the_work_of_the_last_input():
    out = session("def f (x1 : Real) (x2 : Real) : Real = log x1 + x1 * x2 - sin x2",
                  "grad (\\(a, b). f a b) (2.0, 5.0)", ":stats", ":stats", "f 2.0 5.0", ":stats").split("\n")
    # five primitives, their backpropagators fused into one (lamad/fuse.py), which sends x1
    # and x2 one cotangent each; and one backpropagator per input
    work = ["backpropagators run: 1", "cotangents summed: 0", "backpropagators made: 3"]
    assert out[2:5] == work and out[5:8] == work  # :stats itself does no work
    assert out[-4:-1] == ["backpropagators run: 0", "cotangents summed: 0", "backpropagators made: 0"]


def test_the_readme_shows_the_real_output_of_lamad_trace():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n\$ (lamad trace .*?)\n(.*?)```", readme, re.S)
    assert len(blocks) == 2
    for command, output in blocks:
        assert ok(run_lamad(*shlex.split(command)[1:])) == output


def test_a_tensor_whose_entries_are_all_the_same_is_shown_by_its_value():
    prog = lamad.loads("def f (x : Tensor) : Real = sum (x * 2.0)")
    text = trace.format_trace(trace.of_program(prog, "f", prog.evaluate("ones [2, 3] * 0.25")))
    rows = primal_rows(text)
    assert rows[0][3] == "[2×3] all 0.25" and rows[1][3] == "[2×3] all 0.5"


def test_what_the_trace_cannot_take_is_a_located_error():
    out = session("def g (x : Real) : Real = if x > 0.0 then x else 0.0 - x", ":trace g at 1.0",
                  "def h (x : Real) : Real * Real = (x, x)", ":trace h at 1.0", ":trace k at 1.0").split("\n")
    assert out[1].startswith("<repl>:1:27: graph error: the graph draws straight-line code") and "'if'" in out[1]
    assert out[5] == ("<repl>:3:5: graph error: the trace needs a function to Real, as grad does; "
                      "'h' is Real -> Real * Real")
    assert out[8] == "<repl>:5:8: error: ':trace' traces a definition; 'k' is not one"


def test_repl_trace_says_where_each_value_is_as_its_errors_do():
    out = session(f":load {ROOT / 'examples/log_sin.lam'}", "def g (x : Real) : Real = steps x 1.0 + x", ":trace g at 2.0")
    places = [cells(line)[-2] for line in out.split("\n")[3:10]]
    assert places[1:] == [f"log_sin.lam:10:{c}" for c in (12, 25, 39, 52, 63)] + ["<repl>:2:27"]
