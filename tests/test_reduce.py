"""←D reduced step by step by the paper's rules (lamad/reduce.py; docs/differentiation.md,
"Seeing a derivative step by step"): ``lamad reduce`` and the REPL's ``:step`` end at the
gradient ``grad`` computes, and show linear factoring on the way."""

from __future__ import annotations

import ast
import io
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace
import math
import re
import shlex

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings

import lamad
from lamad import cli
from lamad.api import from_python
from lamad.reduce import RULES, UnsupportedError, parameters, reduce_at
from lamad.repl import Repl
from lamad.reverse import backprop
from lamad.syntax import Var, size

from programs import differentiable_programs
from test_cli import ROOT
from test_repl import located, typed

SYMBOLIC = ROOT / "examples" / "symbolic.lam"
STEP = re.compile(r" *(\d+) (\S+) +(.*)")


def run_lamad(*args: str) -> SimpleNamespace:
    """The command line run in this process (faster than a process of its own): its exit
    status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main(list(args))
    return SimpleNamespace(returncode=status, stdout=out.getvalue(), stderr=err.getvalue())


def steps(output: str) -> list[tuple[int, str, str]]:
    """The numbered step lines of a transcript: number, rule, term."""
    return [(int(m[1]), m[2], m[3]) for m in map(STEP.fullmatch, output.splitlines()) if m]


def gradient(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("-- gradient")]
    return line.split(": ", 1)[1]


def stepped(text: str) -> str:
    """What the REPL prints for one input read from a pipe (``:step`` does not pause)."""
    out = io.StringIO()
    assert Repl(out=out).execute(text)
    return out.getvalue()


def test_reduce_takes_figure_8_to_the_gradient_of_grad_through_linear_factoring():
    """sin ((x1 - x2) · (x1 - x2)) at (1.5, 0.5): the two uses of x1 - x2 send their
    cotangents to one backpropagator, factored before it runs."""
    done = run_lamad("reduce", str(SYMBOLIC), "--entry", "f", "--at", "(1.5, 0.5)", "--width", "200")
    assert done.returncode == 0, done.stderr
    lines = steps(done.stdout)
    assert [n for n, _, _ in lines] == list(range(len(lines)))
    assert lines[0][1:] == ("start", "let (y, y') = f (1.5, x1') (0.5, x2') in y' 1.0")
    assert all(rule in RULES for _, rule, _ in lines[1:])
    factored = [term for _, rule, term in lines if rule == "factor"]
    assert factored and factored[0].startswith("(λ(a6 : Real) ⊸ x1' a6 + x2' (-a6)) (")
    g = 2 * (1.5 - 0.5) * math.cos((1.5 - 0.5) ** 2)
    expected = lamad.load(SYMBOLIC).evaluate("grad (\\(x1, x2). f x1 x2) (1.5, 0.5)")
    assert expected[0] == pytest.approx(g, rel=1e-15)
    got = tuple(float(v) for v in gradient(done.stdout).strip("()").split(", "))
    assert got == pytest.approx(expected, rel=1e-15)
    assert lines[-1][2] == f"x1' {got[0]!r} + x2' ({got[1]!r})"


def test_step_in_the_repl_reduces_a_higher_order_term_to_its_gradient():
    """``sq (sq x)``: x⁴, gradient 4 x³; the inner ``sq``'s backpropagator is applied once,
    to the sum of what the outer one sends it."""
    out = stepped(":step \\(x : Real). let sq = \\z. z * z in sq (sq x) at 1.5")
    lines = steps(out)
    rules = [rule for _, rule, _ in lines]
    assert rules.count("factor") >= 2 and "beta" in rules and "let" in rules
    assert float(gradient(out)) == pytest.approx(4 * 1.5 ** 3, rel=1e-15)
    assert lines[-1][2] == "x' 13.5"


def test_step_pauses_for_enter_and_stops_at_q():
    out = typed(":step \\(x : Real). x * x at 3.0\r\rq\r")
    assert [rule for _, rule, _ in steps(out)] == ["start", "beta"]
    assert "-- gradient" not in out


def test_step_sends_a_cotangent_to_a_result_of_several_reals():
    """(x, x²) at 2 with (1, 1): 1 + 2x = 5."""
    out = stepped(":step \\(x : Real). (x, x * x) at 2.0 with (1.0, 1.0)")
    assert gradient(out) == "5.0"


def test_reduce_gives_a_gradient_of_a_tuple_argument_and_zeros_for_unused_inputs(tmp_path):
    path = tmp_path / "p.lam"
    path.write_text("def f (p : Real * Real) (n : Int) (u : Real) : Real = fst p * real n\n")
    done = run_lamad("reduce", str(path), "--entry", "f", "--at", "((2.0, 5.0), 3, 7.0)")
    assert done.returncode == 0, done.stderr
    assert gradient(done.stdout) == "((3.0, 0.0), (), 0.0)"
    assert "p_1', p_2', u'" in done.stdout.splitlines()[0]


def test_bad_input_is_a_located_error(tmp_path):
    path = tmp_path / "t.lam"
    path.write_text("def f (x : Real) : Real = x * x\n"
                    "def h (x : Real) : Real * Real = (x, x)\n"
                    "def k (xs : List Real) : Real = fold (\\a x. a + x) 0.0 (scan (\\a x. a + x) 0.0 xs)\n")
    wrong = run_lamad("reduce", str(path), "--entry", "f", "--at", "true")
    assert wrong.returncode == 1
    located(wrong.stderr.rstrip("\n"), "<--at>:1", "type error", "true", 1, 4)
    pair = run_lamad("reduce", str(path), "--entry", "h", "--at", "1.0")
    assert pair.returncode == 1 and "give the cotangent to send back" in pair.stderr
    sent = run_lamad("reduce", str(path), "--entry", "h", "--at", "1.0", "--cotangent", "(1.0, 2.0)")
    assert sent.returncode == 0 and gradient(sent.stdout) == "3.0"
    loop = run_lamad("reduce", str(path), "--entry", "k", "--at", "[1.0, 2.0]")
    assert loop.returncode == 1 and "Traceback" not in loop.stderr
    assert re.search(r"t\.lam:3:\d+: reduce error: .*'scan' is applied to a function", loop.stderr)


def test_tensors_reduce_with_their_values_printed_shortly():
    """Arrays of a few entries print as their entries, larger ones as their dtype and shape."""
    out = stepped(":step \\(t : Tensor). sum (t * t) at stack [1.0, 2.0]")
    assert "([1., 2.], t')" in out and gradient(out) == "[2., 4.]"
    assert "factor" in [rule for _, rule, _ in steps(out)]
    big = stepped(":step \\(w : Tensor). sum (w @ ones [3]) at eye 3")
    assert "(f64[3,3], w')" in big
    assert np.array_equal(np.array(ast.literal_eval(gradient(big))), np.ones((3, 3)))


def test_loops_over_lists_are_written_out():
    """fold (+) over zip xs xs: Σ 2 x, gradient 2 for each x; iterate doubles three times."""
    folded = stepped(":step \\(xs : List Real). fold (\\a (x, y). a + x * y) 0.0 (zip xs xs) at [1.0, 2.0]")
    assert [rule for _, rule, _ in steps(folded)].count("unroll") == 2
    assert gradient(folded) == "[2.0, 4.0]"
    iterated = stepped(":step \\(x : Real). iterate 3 (\\y. 2.0 * y) x at 1.0")
    assert gradient(iterated) == "8.0"
    stopped = stepped(":step \\(x : Real). while (\\y. y < 10.0) (\\y. 3.0 * y) x at 1.0")
    assert gradient(stopped) == "27.0"



def test_a_fold_whose_accumulator_is_a_list_unrolls_over_its_list_argument():
    """``fold f [x] []`` is ``[x]``: the accumulator, a list too, is not what is folded over
    (found by generated programs: the reduction stepped into the function's body with the
    accumulator's item for its Bool argument)."""
    empty = stepped(":step \\(x : Real). let xs = fold (\\(acc : List Real) (b : Bool). [if b then 2.0 else 3.0]) "
                    "[x * x] ([] : List Bool) in fold (\\(a : Real) (y : Real). a + y) 0.0 xs at 1.5")
    assert gradient(empty) == "3.0"
    last = stepped(":step \\(x : Real). let xs = fold (\\(acc : List Real) (y : Real). [y * x]) [x] [2.0, 5.0] "
                   "in fold (\\(a : Real) (y : Real). a + y) 0.0 xs at 1.5")
    assert gradient(last) == "5.0"


def leaves(value) -> list[float]:
    """The reals of a gradient, a record's (a dict from Python) in the order of its fields."""
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value)]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in leaves(item)]
    return list(np.asarray(value, dtype=float).ravel())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(differentiable_programs(smooth=True))
def test_reductions_of_generated_programs_end_at_grads_gradient(sample):
    """On a generated program the reduction ends at what ``grad`` computes, in a number of
    steps bounded by the size of ←D(f) and its helper; or it says what it does not step
    through (``scan``, AD operators inside the term), as a located error."""
    prog = lamad.loads(sample.source)
    term = Var("f", ty=prog.types["f"], span=prog.typed.program["f"].name_span)
    params = parameters(prog, term)
    (x,) = sample.point
    try:
        reduced = reduce_at(prog, term, params, [from_python(x, params[0][1], prog.backend)])
        taken = sum(1 for _ in reduced.reduction.steps())
    except UnsupportedError as e:
        event("not stepped through")
        assert e.span is not None and e.message
        return
    event("reduced")
    bound = sum(size(backprop(t)) for t in prog.typed.terms.values())
    assert taken <= 10 * bound
    got, _ = reduced.gradient()
    expected = lamad.grad(prog["f"])(x)
    np.testing.assert_allclose(leaves(got), leaves(expected), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("command", ["lamad reduce", "lamad grad examples/higher_order.lam --entry fourth"])
def test_the_readme_shows_what_the_command_prints(command, monkeypatch):
    """The README's excerpt: each line it shows is printed, in order (``…`` stands for
    the lines left out)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(rf"```\n\$ ({re.escape(command)}.*?)```", readme, re.S)
    line, *shown = block.splitlines()
    monkeypatch.chdir(ROOT)
    done = run_lamad(*shlex.split(line)[1:])
    assert done.returncode == 0, done.stderr
    printed = iter(done.stdout.splitlines())
    for text in shown:
        if text.strip() != "…":
            assert text in printed, text


def test_a_reduction_past_its_step_limit_is_a_located_error():
    prog = lamad.loads("def f (x : Real) : Real = iterate 100 (\\y. y * 1.0) x\n")
    term = Var("f", ty=prog.types["f"], span=prog.typed.program["f"].name_span)
    reduced = reduce_at(prog, term, parameters(prog, term), [1.0])
    reduced.reduction.limit = 50
    with pytest.raises(UnsupportedError) as caught:
        list(reduced.reduction.steps())
    located(str(caught.value.locate(prog.source, "f.lam")), "f.lam:1", "reduce error", prog.source.rstrip(), 5)
    assert caught.value.message == "the reduction took more than 50 steps"
