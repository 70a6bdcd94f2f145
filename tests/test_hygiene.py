"""Derivative rules are hygienic: a program's bindings never reach the names in a rule.

Rules are resolved once, into nodes that hold primitives (lamad/prims/rules.py), so a
local or a definition named like a builtin shadows it for the code after it and every
derivative stays right.  Each program here type-checks and runs, and its derivatives are
checked against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import lamad
from lamad.syntax import alpha_key
from lamad.types import infer_term

H = 1e-6


def central(f, x: float) -> float:
    return (float(f(x + H)) - float(f(x - H))) / (2 * H)


def test_a_local_named_range_does_not_change_the_gradient_of_unstack():
    prog = lamad.loads(
        "def f (x : Tensor) : Real =\n"
        "  let range = \\(n : Int). [0, 0, 0]\n"
        "  in fold (\\(acc : Real) (t : Tensor). acc + sum (t * t)) 0.0 (unstack x)\n"
        "def main = grad f (stack [1.0, 2.0, 3.0])\n")
    np.testing.assert_array_equal(prog.main, [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(lamad.grad(prog.f)(np.array([1.0, 2.0, 3.0])), [2.0, 4.0, 6.0])


SHADOWING = {
    "cos": "def f (x : Real) : Real = let cos = 2.0 in sin x * cos",
    "step": "def f (x : Real) : Real = let step = 2.0 in relu x * step",
    "fst": "def f (x : Real) : Real = let fst = 1 in sum (stack [x, x]) * real fst",
    "like": "def f (x : Real) : Real = let like = 2.0 in sum (x + ones [3]) * like",
    "count": "def loss (count : Real) (w : Real) : Real = mean (fill w [3] * fill w [3]) * count\n"
             "def f (x : Real) : Real = loss 3.0 x",
    "unbroadcast": "def f (x : Real) : Real = let unbroadcast = 3.0; a = 2.0; y = x in x * y * a + unbroadcast",
    "sin": "def sin (x : Real) : Real = x\ndef f (x : Real) : Real = exp x * sin x",
    "grad": "def f (x : Real) : Real = let grad = \\(u : Real). u in grad (x * x) + hvp (\\(z : Real). z * z * z) x 1.0",
}
"""Programs whose locals or definitions are named like builtins or like the variables of
rules; each one used to fail or be wrong only in its derivative."""


@pytest.mark.parametrize("name", sorted(SHADOWING))
def test_shadowing_a_builtin_keeps_grad_jvp_and_hvp_right(name):
    prog = lamad.loads(SHADOWING[name])
    f = prog.f
    for x in (0.7, 1.3):
        slope = central(f, x)
        assert np.isclose(float(lamad.grad(f)(x)), slope, rtol=1e-6, atol=1e-8)
        _, tangent = lamad.jvp(f, (x,), (1.0,))
        assert np.isclose(float(tangent), slope, rtol=1e-6, atol=1e-8)
        curvature = (float(lamad.grad(f)(x + 1e-4)) - float(lamad.grad(f)(x - 1e-4))) / 2e-4
        assert np.isclose(float(lamad.hvp(f, (x,), (1.0,))), curvature, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["step", "count", "shape", "like", "size", "take", "sign", "sin", "map"])
def test_a_definition_may_have_the_name_of_a_builtin(name):
    prog = lamad.loads(f"def {name} (x : Real) : Real = x * x + 1.0\n"
                       f"def main : Real = {name} 3.0 + grad {name} 2.0\n")
    assert float(prog.main) == 14.0


def test_derivatives_of_shadowing_programs_print_and_parse_back():
    """A primitive that a binding shadows, and every private helper, prints as ``%name``,
    so that the printed derivative reads back as the same term."""
    prog = lamad.loads("def f (x : Tensor) : Real = let cos = 2.0; like = x in mean (sin like * x) * cos\n")
    for simplified in (False, True):
        _, ty, term = prog.backprop("f", simplified=simplified)
        text = lamad.pretty(term)
        assert "%like " in text and "%broadcast " in text
        kept = "cos =" in text or "(cos, cos') =" in text  # the binding, of the pair taken apart or not
        assert ("%cos " in text) == kept  # shadowed where the binding is kept
        again = infer_term(lamad.parse(text), {})
        assert alpha_key(again) == alpha_key(infer_term(term, {})) and again.ty == ty


def test_unknown_and_misused_primitive_references_are_errors():
    with pytest.raises(lamad.LamTypeError, match="no primitive named 'nothing'"):
        lamad.loads("def f = %nothing 1.0")
    with pytest.raises(lamad.LamTypeError, match="only the AD operators"):
        lamad.loads("def f = %sin'r 1.0")


def test_helpers_are_not_in_the_users_scope():
    for name in ("like", "unbroadcast", "matmul_dx", "piece", "step", "count"):
        with pytest.raises(lamad.LamTypeError, match=f"unbound name '{name}'"):
            lamad.loads(f"def f (x : Tensor) = {name} x")
    assert float(lamad.loads("def f = %count (ones [2, 3])").f) == 6.0


def test_stable_softplus_has_derivative_one_half_at_zero():
    """Ties split the derivative equally (as in JAX and PyTorch): ``max z 0.0`` at 0 sends
    half of it to ``z``, so the stable softplus has its true derivative 0.5 at 0."""
    prog = lamad.loads("def sp (z : Real) : Real = log1p (exp (-(abs z))) + max z 0.0\n"
                       "def both (x : Real) : Real = max x x\n"
                       "def lowest (x : Real) : Real = min x x\n")
    assert float(lamad.grad(prog.sp)(0.0)) == 0.5
    assert float(lamad.jvp(prog.sp, (0.0,), (1.0,))[1]) == 0.5
    assert float(lamad.grad(prog.both)(1.5)) == 1.0
    _, pullback = lamad.vjp(lamad.loads("def m (p : Real * Real) : Real = let (x, y) = p in max x y").m, (2.0, 2.0))
    assert tuple(map(float, pullback(1.0))) == (0.5, 0.5)
    assert float(lamad.grad(prog.lowest)(-1.0)) == 1.0


def test_a_derivative_prints_a_primitive_that_a_definition_shadows_with_a_percent(tmp_path, capsys):
    """``lamad grad`` of a program with its own ``cos``: the derivative of ``sin`` calls the
    primitive, printed ``%cos`` so that it does not read back as the definition."""
    from lamad import cli

    path = tmp_path / "p.lam"
    path.write_text("def cos (x : Real) : Real = x\ndef f (x : Real) : Real = sin x * cos x\n")
    assert cli.main(["grad", str(path), "--entry", "f", "--raw"]) == 0
    text = capsys.readouterr().out
    assert "%cos " in text
    term = lamad.load(path).backprop("f", simplified=False)[2]
    globals_ = {"cos": lamad.parse_type("Real * ~Real -> Real * ~Real")}
    again = infer_term(lamad.parse_program(text)["f"].as_term(), globals_)
    assert alpha_key(again) == alpha_key(infer_term(term, globals_))
