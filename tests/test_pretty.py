"""Printing values and terms (lamad/pretty.py): every kind of value in lamad's own notation,
gradient values (type ``d``) as sums of the cotangents sent, and long terms broken into
lines that parse back to the same term."""

from __future__ import annotations

import io
import re
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamad
from lamad import cli, repl
from lamad.adtypes import backprop_type
from lamad.gradient import ZERO, Backpropagator
from lamad.pretty import format_gradient, format_value, pretty, pretty_derivative
from lamad.syntax import GRAD, REAL, App, LinLam, LinType, PVar, Tuple, Var, alpha_key
from lamad.types import infer_term

from programs import programs

PYTHON_REPRS = re.compile(r"object at 0x|np\.\w+\(|array\(|dtype=|<function|<lambda>|<built-in|<lamad\.|"
                          r"<backpropagator \d|\bTrue\b|\bFalse\b|\bNone\b|Traceback")
"""What Python, not lamad, would print for a value."""

VALUES = [
    "3.0", "2", "true", '"text"', "()", "(1, 2.0)", "[1.0, 2.5]", "[]", "[[1], [2, 3]]",
    "{w = 1.0, b = [1, 2]}", "{inner = {x = true}, t = ones [2]}",
    "ones [2, 3]", "zeros [0]", "ints [1, 2, 3]", "arange 4", "ones [3] > 0.5", "[ints [1], ints [2]]",
    "sin", r"\x. x + 1", r"(\(x : Real) (y : Tensor). y, map)",
    r"vjp (\x. x * x) 2.0", r"snd (vjp (\x. x * x) 2.0) 1.0",
    r"grad (\(w : Tensor). sum (w * w)) (ones [2])", r"value_and_grad (\(x : Real). sin x) 1.0",
    r"jvp (\x. x * x) 2.0 1.0",
    r"let k = \(a : Real) -o 0 in let j = \(b : Real) -o k (b * 2.0) in (j, j 3.0 + j 1.0)",
    r"let k = \(a : Real * Tensor) -o 0 in let j = \(b : Real * Tensor) -o k b in [j (1.0, ones [2]), 0]",
    r"let k = \(a : List Int) -o 0 in let j = \(b : List Int) -o k b in (j [1, 2], j [])",
    r'let k = \(a : Bool * String) -o 0 in let j = \(b : Bool * String) -o k b in j (true, "s")',
    r"(\(a : Real) -o 0) 1.0",
]
COMMANDS = [r":grad \x. x * x at 3", r":jvp \x. sin x at 1 with 1", r":vjp \(w : Tensor). w * w at ones [2] with ones [2]",
            r":vjp \x. (x, ints [1]) at 2.0 with (1.0, ())"]


@pytest.mark.parametrize("ascii", [False, True])
def test_no_value_prints_as_python_prints_it(monkeypatch, ascii):
    """Every kind of value, at the REPL: numbers, strings, unit, tuples, lists, records,
    tensors, IntTensors, BoolTensors, functions, backpropagators and gradient values, and
    the values the AD operators and commands give."""
    inputs = [":ascii"] * ascii + VALUES + COMMANDS
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(inputs) + "\n"))
    out = io.StringIO()
    assert repl.main(out=out) == 0, out.getvalue()
    printed = out.getvalue()
    assert printed.count(repl.PROMPT) == len(inputs)
    assert "error" not in printed, printed
    assert PYTHON_REPRS.search(printed) is None, PYTHON_REPRS.search(printed)


def test_lamad_run_prints_no_python_reprs(tmp_path, capsys):
    program = tmp_path / "kinds.lam"
    program.write_text(textwrap.dedent(r"""
        def main =
            let k = \(a : Real) -o 0;
                j = \(b : Real) -o k b
            in (j, j 1.0, (ones [2] > 0.5, arange 2), {f = sin, s = "s"}, [true])
    """), encoding="utf-8")
    assert cli.main(["run", str(program)]) == 0
    printed = capsys.readouterr().out
    assert PYTHON_REPRS.search(printed) is None, printed
    m = re.fullmatch(r"\(<backpropagator #(\d+) : Real⊥>, #(\d+) ← 1\.0, \(\[true, true\], \[0, 1\]\), "
                     r"\{f = <fun : Real → Real>, s = \"s\"\}, \[true\]\)\n", printed)
    assert m and m[1] == m[2], printed


def test_a_gradient_value_is_the_sum_of_the_cotangents_sent_numbered_as_its_backpropagators():
    program = lamad.loads("")
    term = program.check(lamad.parse(r"let k = \(a : Real) -o 0 in let j = \(b : Real) -o k (b * 2.0) "
                                     r"in (j, j 3.0 + (j 1.0 + 0))"))
    j, gradient = program.run(term)
    assert isinstance(j, Backpropagator)
    assert format_value((j, gradient), term.ty) == f"(<backpropagator #{j.id} : Real⊥>, #{j.id} ← 3.0 + #{j.id} ← 1.0)"
    assert format_value(gradient, GRAD, ascii=True) == f"#{j.id} <- 3.0 + #{j.id} <- 1.0"
    assert format_value(ZERO, GRAD) == "0"
    assert format_value(j, LinType(REAL, GRAD), ascii=True) == f"<backpropagator #{j.id} : ~Real>"


def test_a_long_sum_is_elided_in_the_middle_unless_printed_whole():
    """A sum of 1,000 records, nested 1,000 deep as a loop makes it: no recursion, and the
    middle elided as NumPy elides a large array."""
    bp = Backpropagator(lambda _, c: ZERO)
    gradient = ZERO
    for i in range(1000):
        gradient = [gradient, (bp, np.float64(i))] if gradient is not ZERO else (bp, np.float64(i))
    short = format_gradient(gradient)
    assert short == f"#{bp.id} ← 0.0 + #{bp.id} ← 1.0 + #{bp.id} ← 2.0 + ... + " \
                    f"#{bp.id} ← 997.0 + #{bp.id} ← 998.0 + #{bp.id} ← 999.0"
    whole = format_gradient(gradient, full=True).split(" + ")
    assert whole == [f"#{bp.id} ← {float(i)}" for i in range(1000)]


# --------------------------------------------------------------------- long terms, broken into lines


def test_an_if_breaks_its_branches_onto_lines_of_their_own_and_else_if_chains_stay_flat():
    term = lamad.parse(r"\x. if x > 0.0 then sin x * cos x * exp x else if x < -1.0 then x * x * x else 0.0")
    assert pretty(term, width=88) == r"λx. if x > 0.0 then sin x · cos x · exp x else if x < -1.0 then x · x · x else 0.0"
    assert pretty(term, width=40) == textwrap.dedent("""\
        λx.
            if x > 0.0 then
                sin x · cos x · exp x
            else if x < -1.0 then
                x · x · x
            else
                0.0""")


def test_long_applications_tuples_and_sums_wrap_at_the_width():
    sums = lamad.parse("a' (x * y) + b' (x * z) + c' (y * z) + d' (x * x)")
    assert pretty(sums, width=30) == "a' (x · y)\n    + b' (x · z)\n    + c' (y · z)\n    + d' (x · x)"
    call = lamad.parse("fold (\\acc e. acc + e * weight) initial_value (zip left_list right_list)")
    assert pretty(call, width=40) == textwrap.dedent("""\
        fold (λacc e. acc + e · weight)
            initial_value
            (zip left_list right_list)""")
    assert pretty(call, width=30).startswith("fold\n    (λacc e. acc + e · weight)\n")
    pair = lamad.parse(r"(first_component, \(a : Real) -o x' (a * second) + y' (a * first))")
    assert pretty(pair, width=40) == "(first_component, λ(a : Real) ⊸\n    x' (a · second) + y' (a · first))"
    items = lamad.parse("[one_value, another_value, (a_pair, of_values), third_value]")
    assert pretty(items, width=30) == textwrap.dedent("""\
        [
            one_value,
            another_value,
            (a_pair, of_values),
            third_value
        ]""")
    assert pretty(items) == "[one_value, another_value, (a_pair, of_values), third_value]"  # 88 by default


def test_a_derivative_at_the_repl_is_printed_in_the_terminal_width_its_label_on_one_line():
    text = pretty_derivative("λx. if x > 0.0\n    then x else 0.0", REAL, lamad.parse("x"), width=20)
    assert text.split("\n")[0] == "-- ←D(λx. if x > 0.0 then x else 0.0) : Real"
    assert repl._terminal_width(io.StringIO()) == 88  # not a terminal: the default width


PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(programs(max_depth=4), st.sampled_from([12, 40, 88]), st.booleans())
def test_terms_and_derivatives_broken_into_lines_parse_back_to_the_same_terms(sample, width, ascii):
    """A generated program's definitions and their ←D, raw (long) and simplified, printed in
    lines of ``width`` (12: nearly every construct breaks), parse back to alpha-equivalent
    terms of the same type."""
    prog = lamad.loads(sample.source)
    types = {n: backprop_type(t) for n, t in prog.types.items()}
    for name, term in prog.typed.terms.items():
        terms = [(term, dict(prog.types))]
        terms += [(prog.backprop(name, simplified=s)[2], types) for s in (False, True)]
        for t, scope in terms:
            text = pretty(t, ascii=ascii, width=width)
            again = infer_term(lamad.parse(text), scope)
            checked = infer_term(t, scope)
            assert again.ty == checked.ty and alpha_key(again) == alpha_key(checked), text


def test_printing_is_linear_in_the_nesting_of_lambdas_in_tuples():
    """Each subterm is printed once (or twice, a lambda that follows others on a line): 60
    nested pairs of a value and a backpropagator print in well under a second."""
    term = lamad.parse("0.0")
    for i in range(60):
        term = Tuple((Var(f"y{i}"), LinLam(PVar(f"a{i}", REAL), App(Var(f"x{i}'"), term))))
    started = time.perf_counter()
    text = pretty(term, width=60)
    assert time.perf_counter() - started < 1.0
    assert alpha_key(lamad.parse(text)) == alpha_key(term)
