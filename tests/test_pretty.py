"""Printing values and terms (lamad/pretty.py): every kind of value in lamad's own notation,
gradient values (type ``d``) as sums of the cotangents sent, and long terms broken into
lines that parse back to the same term."""

from __future__ import annotations

import io
import re
import sys
import textwrap

import numpy as np
import pytest

import lamad
from lamad import cli, repl
from lamad.gradient import ZERO, Backpropagator
from lamad.pretty import format_gradient, format_value
from lamad.syntax import GRAD, REAL, LinType

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
    bp = Backpropagator(lambda c: ZERO)
    gradient = ZERO
    for i in range(1000):
        gradient = [gradient, (bp, np.float64(i))] if gradient is not ZERO else (bp, np.float64(i))
    short = format_gradient(gradient)
    assert short == f"#{bp.id} ← 0.0 + #{bp.id} ← 1.0 + #{bp.id} ← 2.0 + ... + " \
                    f"#{bp.id} ← 997.0 + #{bp.id} ← 998.0 + #{bp.id} ← 999.0"
    whole = format_gradient(gradient, full=True).split(" + ")
    assert whole == [f"#{bp.id} ← {float(i)}" for i in range(1000)]
