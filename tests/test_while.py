"""``while p f x`` (docs/language.md, "Loops that stop on a condition"): its values, and its
derivatives — grad, jvp, hvp and grad of grad — against finite differences and the
analytic ones, on loops whose number of steps depends on the input, and on loops that run
zero times; the name ``while`` is an ordinary primitive's."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lamad
from numeric import assert_same_gradient, directional_difference, gradient_difference, numeric_gradient

# Each loop also counts its steps, so that a test can check that the finite differences
# are taken where the count does not change (a difference across a change of count
# measures a jump, not a derivative).
PROGRAM = lamad.loads(r"""
-- Newton's method for √a from x = a: the residual decides when to stop
def newton (a : Real) : Real × Int =
  while (\(x, _). abs (x * x - a) > 1e-12 * a) (\(x, n). (0.5 * (x + a / x), n + 1)) (a, 0)
def root (a : Real) : Real = fst (newton a)

-- halving until below 1.0: x / 2^n, with n = ⌊log2 x⌋ + 1 for x ≥ 1, and 0 steps below
def halving (x : Real) : Real × Int = while (\(y, _). y >= 1.0) (\(y, n). (y * 0.5, n + 1)) (x, 0)
def halve (x : Real) : Real = fst (halving x)

-- the fixed point of x = cos x / 2 + t, iterated from t until it moves less than 1e-14
def settling (t : Real) : Real × Int =
  let g = \x. 0.5 * cos x + t in
  while (\(x, _). abs (g x - x) > 1e-14) (\(x, n). (g x, n + 1)) (t, 0)
def fixed (t : Real) : Real = fst (settling t)

-- second derivatives, reverse over reverse
def root'' (a : Real) : Real = grad (grad root) a
def fixed'' (t : Real) : Real = grad (grad fixed) t

-- a tensor scaled by 0.9 until its squared norm is at most 1: the count depends on all of it
def shrinking (v : Tensor) : Tensor × Int =
  while (\(x, _). sum (x * x) > 1.0) (\(x, n). (x * 0.9, n + 1)) (v, 0)
def shrink (v : Tensor) : Tensor = fst (shrinking v)
def energy (v : Tensor) : Real = sum (shrink v * v)

-- several loop variables, one of them captured from outside the loop
def scaled (p : Real × Tensor) : Real =
  let (s, v) = p in sum (shrink (v * s)) * s
""")

STEP = 1e-5


def steps(name: str, x) -> int:
    return PROGRAM[name](x)[1]


def assert_count_fixed_near(name: str, x: float, step: float = STEP):
    """The loop takes as many steps at ``x ± step`` as at ``x``."""
    assert steps(name, x - step) == steps(name, x) == steps(name, x + step)


# ---------------------------------------------------------------------- values


def test_values_and_step_counts_depend_on_the_input():
    for a in (0.25, 2.0, 1e6):
        x, n = PROGRAM.newton(a)
        assert abs(x * x - a) <= 1e-12 * a and x == pytest.approx(math.sqrt(a), rel=1e-12)
    assert steps("newton", 2.0) < steps("newton", 100.0) < steps("newton", 1e6)
    for x, n in ((5.0, 3), (100.0, 7), (1.0, 1), (0.999, 0)):
        assert PROGRAM.halving(x) == (x / 2 ** n, n)
    t = 0.3
    x = PROGRAM.fixed(t)
    assert abs(0.5 * math.cos(x) + t - x) <= 1e-14
    v = np.array([3.0, -4.0])
    got, n = PROGRAM.shrinking(v)
    np.testing.assert_allclose(got, v * 0.9 ** n, rtol=1e-14)  # n products by 0.9 round as 0.9 ** n does not
    assert np.sum(got ** 2) <= 1.0 < np.sum((got / 0.9) ** 2)


def test_a_loop_that_runs_zero_times_returns_its_start_and_never_calls_f():
    assert lamad.loads(r"def main = while (\x. false) (\x. x / 0.0) 3.0").main == 3.0
    assert lamad.loads(r"def main = while (\x. x < 5) (\x. x + 1) 7").main == 7
    assert PROGRAM.halving(0.5) == (0.5, 0)


def test_an_error_in_a_step_is_located_at_its_application():
    with pytest.raises(lamad.LamRuntimeError) as info:
        lamad.loads("def main =\n  while (\\x. x < 3) (\\x. x + length (split (-1) 2)) 0", "t.lam").main
    assert "t.lam:2:38: runtime error: 'split': the seed is negative: -1" in str(info.value)


@pytest.mark.parametrize("source, message", [
    (r"while (\x. x) (\x. x + 1.0) 0.0", "Bool"),
    (r"while (\x. x > 0.0) (\x. x > 1.0) 1.0", "Bool"),
    (r"while (\x. x > 0.0) (\x. x - 1.0) (arange 2)", "IntTensor"),
])
def test_type_errors(source, message):
    with pytest.raises(lamad.LamTypeError, match=message):
        lamad.loads(f"def main = {source}")


def test_while_is_a_name_a_program_may_bind():
    prog = lamad.loads(r"""
def while (x : Real) : Real = x + 1.0
def main = (while 1.0, let while = 2.0 in while * 3.0, %while (\x. x < 10.0) (\x. x * 2.0) 1.0)
""")
    assert prog.main == (2.0, 6.0, 16.0)


# ---------------------------------------------------------------------- first order


@pytest.mark.parametrize("name, x, exact", [
    ("root", 2.0, 1 / (2 * math.sqrt(2.0))),
    ("root", 1e6, 1 / (2 * 1e3)),
    ("halve", 5.0, 1 / 8),
    ("halve", 100.0, 1 / 128),
    ("halve", 0.5, 1.0),  # zero steps: the identity
])
def test_grad_and_jvp_of_a_loop_of_data_dependent_length(name, x, exact):
    counter = {"root": "newton", "halve": "halving"}[name]
    assert_count_fixed_near(counter, x, STEP * x)
    f = PROGRAM[name]
    numeric = numeric_gradient(f, x, step=STEP * x)
    for got in (lamad.grad(f)(x), lamad.jvp(f, (x,), (1.0,))[1]):
        assert_same_gradient(got, numeric, rtol=1e-6, atol=1e-9)
        assert float(got) == pytest.approx(exact, rel=1e-9)


def test_one_compiled_derivative_runs_loops_of_every_length():
    """The reverse pass of each call has the steps its forward pass took: 3, 7, 0 and 3 again."""
    grad = lamad.grad(PROGRAM.halve)
    assert [float(grad(x)) for x in (5.0, 100.0, 0.5, 7.9)] == [1 / 8, 1 / 128, 1.0, 1 / 8]


def test_grad_of_a_fixed_point_is_the_implicit_functions():
    """x = cos x / 2 + t gives dx/dt = 1 / (1 + sin x / 2) at the fixed point."""
    t = 0.3
    assert_count_fixed_near("settling", t)
    x = PROGRAM.fixed(t)
    numeric = numeric_gradient(PROGRAM.fixed, t, step=STEP)
    got = lamad.grad(PROGRAM.fixed)(t)
    assert_same_gradient(got, numeric, rtol=1e-6, atol=1e-9)
    assert float(got) == pytest.approx(1 / (1 + 0.5 * math.sin(x)), rel=1e-12)


def test_grad_and_jvp_of_a_tensor_loop():
    v = np.array([3.0, -4.0, 1.5])
    assert_count_fixed_near("shrinking", v, STEP)  # v ± STEP in every entry
    rng = np.random.default_rng(0)
    for direction in rng.standard_normal((3, 3)):
        assert steps("shrinking", v + STEP * direction) == steps("shrinking", v) == steps("shrinking", v - STEP * direction)
        _, tangent = lamad.jvp(PROGRAM.energy, (v,), (direction,))
        assert float(tangent) == pytest.approx(float(directional_difference(PROGRAM.energy, (v,), (direction,))[0]),
                                               rel=1e-6)
    got = lamad.grad(PROGRAM.energy)(v)
    assert_same_gradient(got, numeric_gradient(PROGRAM.energy, v), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got, 2 * 0.9 ** steps("shrinking", v) * v, rtol=1e-12)


def test_grad_reaches_a_variable_captured_by_the_step_and_the_loop_state():
    point = (1.5, np.array([0.5, -0.25]))
    got = lamad.grad(PROGRAM.scaled)(point)
    assert_same_gradient(got, numeric_gradient(PROGRAM.scaled, point), rtol=1e-6, atol=1e-9)


def test_a_long_loop_differentiates_without_recursion():
    """The backward pass of 100,000 steps runs on the work list, as a short one does."""
    prog = lamad.loads(r"""
def f (x : Real) : Real = fst (while (\(_, n). n < 100000) (\(y, n). (y * 1.00001, n + 1)) (x, 0))
""")
    assert float(lamad.grad(prog.f)(2.0)) == pytest.approx(1.00001 ** 100000, rel=1e-9)


# ---------------------------------------------------------------------- second order


@pytest.mark.parametrize("name, x, exact", [
    ("root", 2.0, -1 / (4 * 2.0 * math.sqrt(2.0))),
    ("root", 10.0, -1 / (4 * 10.0 * math.sqrt(10.0))),
    ("fixed", 0.3, None),
])
def test_hvp_and_grad_of_grad_against_finite_differences_of_the_gradient(name, x, exact):
    counter = {"root": "newton", "fixed": "settling"}[name]
    assert_count_fixed_near(counter, x)
    f = PROGRAM[name]
    numeric = float(gradient_difference(lamad.grad(f), (x,), (1.0,))[0])
    for got in (lamad.hvp(f, (x,), (1.0,)), PROGRAM[name + "''"](x), lamad.hessian(f)(x)):
        assert float(got) == pytest.approx(numeric, rel=1e-6)
        if exact is not None:
            assert float(got) == pytest.approx(exact, rel=1e-9)


def test_hvp_of_a_tensor_loop_and_of_a_loop_that_runs_zero_times():
    v = np.array([3.0, -4.0, 1.5])
    direction = np.array([0.5, 1.0, -2.0])
    got = lamad.hvp(PROGRAM.energy, (v,), (direction,))
    numeric = gradient_difference(lamad.grad(PROGRAM.energy), (v,), (direction,))
    np.testing.assert_allclose(got, numeric, rtol=1e-6)
    np.testing.assert_allclose(got, 2 * 0.9 ** steps("shrinking", v) * direction, rtol=1e-12)
    square_of_halve = lamad.loads(r"def f (x : Real) : Real = square (while (\y. y >= 1.0) (\y. y * 0.5) x)").f
    assert float(lamad.hvp(square_of_halve, (0.5,), (1.0,))) == 2.0  # no step: (x²)'' = 2
    assert float(lamad.hvp(square_of_halve, (5.0,), (1.0,))) == 2.0 / 64  # three steps: (x / 8)²
