"""Inputs lamad cannot give a right answer for are errors, never wrong values that run:
cotangents of the wrong shape, data a float cannot hold, counts and labels out of range,
gradients with respect to Ints, Int overflow."""

from __future__ import annotations

import numpy as np
import pytest

import lamad


def error(source: str) -> str:
    """The message of the error running ``main`` gives, as printed (with its caret)."""
    with pytest.raises(lamad.LamError) as info:
        lamad.loads(source, "t.lam").main
    return str(info.value)


# --------------------------------------------------------------------- vjp's cotangents


def test_a_pullback_refuses_a_cotangent_of_another_shape():
    msg = error("def main = snd (vjp (\\(x : Tensor). x * 2.0) (ones [3])) (ones [2])")
    assert "t.lam:1:17: runtime error: vjp: the cotangent has shape (2,) where the result has shape (3,)" in msg
    assert "\n                    ^^^^" in msg


def test_a_pullback_of_matmul_refuses_a_cotangent_that_does_not_fit_the_product():
    msg = error("def main = snd (vjp (\\(x : Tensor). x @ ones [3, 2]) (ones [4, 3])) (ones [7, 2])")
    assert "vjp: the cotangent has shape (7, 2) where the result has shape (4, 2)" in msg
    ok = lamad.loads("def main = snd (vjp (\\(x : Tensor). x @ ones [3, 2]) (ones [4, 3])) (ones [4, 2])").main
    assert np.array_equal(ok, np.full((4, 3), 2.0))


def test_a_pullback_checks_lists_and_the_parts_of_tuples():
    assert "vjp: a list of 2 elements has a cotangent of 1" in error(
        "def main = snd (vjp (\\(x : Tensor). [x, x]) (ones [3])) [ones [3]]")
    assert "the cotangent has shape (1,) where the result has shape (3,)" in error(
        "def main = snd (vjp (\\(x : Tensor). (x, 2)) (ones [3])) (ones [1], ())")


@pytest.mark.parametrize("outer", ["grad (\\(x : Tensor). {}) (ones [3])",
                                   "snd (jvp (\\(x : Tensor). {}) (ones [3]) (ones [3]))"])
def test_a_nested_pullback_checks_its_cotangent_under_the_outer_transform(outer):
    inner = "sum (snd (vjp (\\(z : Tensor). z * x) x) (ones {}))"
    msg = error("def main = " + outer.format(inner.format("[2]")))
    assert "runtime error: vjp: the cotangent has shape (2,) where the result has shape (3,)" in msg
    assert "^" * len("vjp (\\(z : Tensor). z * x) x") in msg
    lamad.loads("def main = " + outer.format(inner.format("[3]"))).main


def test_a_pullback_from_python_refuses_a_cotangent_of_another_shape():
    prog = lamad.loads("def f (x : Tensor) : Tensor = x * 2.0")
    y, pullback = lamad.vjp(prog.f, np.ones(3))
    with pytest.raises(lamad.LamError, match=r"vjp: the cotangent has shape \(2,\) where the result has shape \(3,\)"):
        pullback(np.ones(2))
    assert np.array_equal(pullback(np.ones(3)), np.full(3, 2.0))
