"""Loops whose steps chain (lamad/chains.py ``chained_step``, lamad/gradient.py ``chain``):
under ←D, ``iterate``, ``while`` and ``fold`` of a step whose one backpropagator sends to
the state it was given make one backpropagator for all their steps, whose body runs the
steps' backward code in a loop.  Every gradient is the one the loop gives with a
backpropagator per step, and finite differences'; a loop of any other step makes one a
step, as before."""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest

import lamad
import lamad.eval
from lamad.chains import chained_step
from lamad.fuse import fuse_backward
from lamad.gradient import Stats
from lamad.parser import parse_program
from lamad.reverse import backprop
from lamad.syntax import Lam, Prim, children
from lamad.types import typecheck
from numeric import assert_same_gradient, numeric_gradient


@contextmanager
def unchained():
    """Programs loaded inside make a backpropagator per step of every loop."""
    with mock.patch.object(lamad.eval, "chained_step", lambda step: None):
        yield


def gradient(source: str, args: tuple, argnums=0, name: str = "f"):
    """The gradient of ``name`` at ``args`` on its second call (the first compiles), and
    the backpropagators that call ran and made."""
    df = lamad.grad(getattr(lamad.loads(source), name), argnums)
    df(*args)
    Stats.reset()
    g = df(*args)
    return g, Stats.backprop_runs, Stats.backprops_made()


def check(source: str, args: tuple, argnums=0, rtol: float = 1e-6, atol: float = 1e-8) -> tuple[int, int]:
    """The gradient is the one with a backpropagator per step (up to the order of
    floating-point additions) and finite differences' (in each argument of ``argnums``);
    returns the runs of the chained gradient and of the unchained one."""
    g, runs, _ = gradient(source, args, argnums)
    with unchained():
        g0, runs0, _ = gradient(source, args, argnums)
    assert_same_gradient(g, g0, rtol=1e-12, atol=0.0)
    f = lamad.loads(source).f
    for i in (argnums if isinstance(argnums, tuple) else (argnums,)):
        def along(x, i=i):
            return f(*args[:i], x, *args[i + 1:])
        want = numeric_gradient(along, args[i])
        assert_same_gradient(g[argnums.index(i)] if isinstance(argnums, tuple) else g, want, rtol, atol)
    return runs, runs0


def outer_step(source: str):
    """What :func:`chained_step` finds in the step of the outermost loop of ←D of ``f``,
    fused as the driver fuses it: the backpropagator of a step that chains, ``None`` for
    another."""
    level = [fuse_backward(backprop(typecheck(parse_program(source)).terms["f"]))]
    while level:
        loops = [t for t in level if isinstance(t, Prim) and t.op in ("iterate", "while", "fold")]
        if loops:
            (loop,) = loops
            step = loop.args[0 if loop.op == "fold" else 1]
            assert isinstance(step, Lam)
            return chained_step(step)
        level = [child for t in level for child in children(t)]
    raise AssertionError("no loop")


SCALAR_CHAIN = "def f (x0 : Real) : Real = iterate 1000 (\\x. sin x * x + x) x0"


def test_an_iterate_of_1000_steps_makes_and_runs_one_backpropagator():
    """The scalar chain: one backpropagator for the loop (and the input's), run once,
    where a backpropagator per step made 1,000 and ran them one by one; the same gradient,
    bit for bit (the same operations in the same order), the hand-derived one."""
    g, runs, made = gradient(SCALAR_CHAIN, (-1.0,))
    with unchained():
        g0, runs0, made0 = gradient(SCALAR_CHAIN, (-1.0,))
    assert (runs, made) == (1, 2)
    assert (runs0, made0) == (1000, 1001)
    assert float(g) == float(g0)
    x, d = np.float64(-1.0), np.float64(1.0)
    for _ in range(1000):
        x, d = np.sin(x) * x + x, d * (np.cos(x) * x + np.sin(x) + 1.0)
    assert float(g) == pytest.approx(float(d), rel=1e-12)


def test_which_steps_chain():
    """A step chains when its one backpropagator sends to the state's alone, once; a
    step on a tuple, one whose backpropagator sits in a list, or whose result is an
    ``if``, does not (and ``scan``, which returns every state, is no candidate)."""
    head = "def f (w : Real) (x0 : Real) : Real = "
    chains = [
        "iterate 3 (\\x. sin (w * x) + x * w) x0",
        "while (\\x. x < 10.0) (\\x. x * w + 1.0) x0",
        "fold (\\acc e. acc * w + sin e) x0 [w, x0]",
        "iterate 3 (\\x. w * 2.0) x0",  # sends to the state nothing
    ]
    falls_back = [
        "fst (iterate 3 (\\(x, y). (x * y, sin x)) (x0, w))",
        "iterate 3 (\\x. fold (\\a b. a + b) 0.0 [x, sin x]) x0",
        "iterate 3 (\\x. if x > 0.0 then x * w else sin x) x0",
        "iterate 3 (\\x. x) x0",
    ]
    for body in chains:
        assert outer_step(head + body) is not None, body
    for body in falls_back:
        assert outer_step(head + body) is None, body


WEIGHTS = [
    "def f (w : Real) (x0 : Real) : Real = iterate 30 (\\x. sin (w * x) + x * w) x0",
    "def f (w : Real) (x0 : Real) : Real = while (\\x. x < 30.0) (\\x. x * (1.0 + w) + 1.0) x0",
    "def f (w : Real) (x0 : Real) : Real = fold (\\acc e. acc * w + sin (e * acc)) x0 [w, x0, 0.5, w * x0]",
    "def f (w : Real) (x0 : Real) : Real = fold (\\a b. a + b) 0.0 (scan (\\acc e. acc * w + e) x0 [w, x0, 1.5])",
]


@pytest.mark.parametrize("source", WEIGHTS)
def test_a_loop_whose_steps_capture_weights_sends_them_their_cotangents(source):
    """The cotangents the steps send to what they capture from outside the loop (``w``),
    and to the elements of ``fold``'s list, are sent on and summed: the gradient in both
    arguments is the unchained one and finite differences'.  Each loop runs one
    backpropagator where it made one a step (``scan``'s states, each its own, are summed by
    a ``fold`` that chains)."""
    runs, runs0 = check(source, (0.9, 0.3), argnums=(0, 1))
    assert runs < runs0


def test_a_loop_over_tensors_with_a_matrix_of_weights():
    """An RNN ``tanh (w @ h1 + x)`` folded over three inputs: one backpropagator for the
    loop, the outer products ``w`` receives still summed as one matrix product; the
    gradient the unchained one and finite differences'."""
    source = """
def f (w : Tensor) (h : Tensor) : Real =
    sum (fold (\\h1 x. tanh (w @ h1 + x)) h [h, h * 0.5, h * -2.0])
"""
    w, h = np.array([[0.5, -0.3], [0.2, 0.8]]), np.array([0.3, -0.6])
    runs, runs0 = check(source, (w, h), argnums=(0, 1))
    assert runs0 - runs == 2


def test_a_loop_over_tuples_falls_back():
    """A state of two Reals makes a backpropagator a step, as before, and is right."""
    source = "def f (x0 : Real) (y0 : Real) : Real = fst (iterate 6 (\\(x, y). (x * y + 0.5, sin x)) (x0, y0))"
    runs, runs0 = check(source, (0.7, 1.2), argnums=(0, 1))
    assert runs == runs0 > 6


def test_a_step_that_does_not_chain_falls_back():
    """A step whose result is an ``if`` makes a backpropagator a step, as before."""
    source = "def f (w : Real) (x0 : Real) : Real = iterate 8 (\\x. if x > 0.0 then x * w else sin x) x0"
    runs, runs0 = check(source, (0.9, 0.4), argnums=(0, 1))
    assert runs == runs0 == 8


def test_nested_loops():
    """An inner loop in each step of an outer one: each inner loop chains (the outer
    step, whose state reaches the inner loop, does not), and the inner steps capture the
    outer state, whose cotangents the inner loop's backpropagator sends on."""
    source = """
def f (w : Real) (x0 : Real) : Real =
    iterate 4 (\\x. iterate 3 (\\y. sin y * x + w) x * w) x0
"""
    runs, runs0 = check(source, (0.8, 0.6), argnums=(0, 1))
    assert (runs, runs0) == (4 + 4, 4 + 4 * 3)


def test_second_derivatives_of_a_loop():
    """``hvp`` and ``grad`` of a gradient of a loop, whose derivatives of derivatives make
    a backpropagator a step: the Hessian's finite differences of the gradient, and
    ``grad`` inside the program, a loop's gradient at depth 0 that chains, differentiated
    again."""
    source = """
def f (w : Real) (x0 : Real) : Real = iterate 5 (\\x. sin (w * x) + x * w) x0
def g (x0 : Real) : Real = grad (\\y. iterate 5 (\\x. sin x * x + y * x) y) x0
"""
    prog = lamad.loads(source)
    point = (0.9, 0.3)
    hv = lamad.hvp(prog.f, point, (1.0, -0.5))
    df = lamad.grad(prog.f, (0, 1))
    h = 1e-5
    plus = df(*(p + h * d for p, d in zip(point, (1.0, -0.5))))
    minus = df(*(p - h * d for p, d in zip(point, (1.0, -0.5))))
    want = tuple((float(a) - float(b)) / (2 * h) for a, b in zip(plus, minus))
    assert_same_gradient(tuple(float(v) for v in hv), want, rtol=1e-6, atol=1e-8)
    assert float(lamad.grad(prog.g)(0.4)) == pytest.approx(float(numeric_gradient(prog.g, 0.4)), rel=1e-6)
    assert float(prog.g(0.4)) == pytest.approx(float(numeric_gradient(
        lambda y: lamad.loads("def k (y : Real) : Real = iterate 5 (\\x. sin x * x + y * x) y").k(y), 0.4)), rel=1e-6)


def test_a_pullback_forced_twice_runs_the_steps_again():
    """A pullback's graph is forced once per cotangent: the loop's backpropagator keeps
    its steps' residuals, and is linear in the cotangent."""
    prog = lamad.loads("def f (x0 : Real) : Real = iterate 20 (\\x. sin x * x + x) x0")
    value, pullback = lamad.vjp(prog.f, 0.3)
    one, three = float(pullback(1.0)), float(pullback(3.0))
    assert three == pytest.approx(3.0 * one, rel=1e-14)
    assert one == float(lamad.grad(prog.f)(0.3))


def test_an_overflowing_backward_pass_gives_the_same_value_and_warning():
    """``x ↦ x · x`` from 1, 1,100 times: the gradient 2^1100 overflows in the steps'
    backward code, inf with NumPy's warning at the operation, as with a backpropagator
    per step."""
    source = "def f (x0 : Real) : Real = iterate 1100 (\\x. x * x) x0"

    def run() -> tuple[float, set[str]]:
        df = lamad.grad(lamad.loads(source).f)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            value = float(df(1.0))
        return value, {str(w.message) for w in seen}

    value, seen = run()
    with unchained():
        value0, seen0 = run()
    assert value == value0 == math.inf
    assert seen == seen0 and any("overflow" in message for message in seen), seen


def test_the_gradient_of_100000_steps_holds_little_memory():
    """The scalar chain of 100,000 steps: its gradient's peak of traced memory (the
    residuals of every step, a small tuple each) stays under 30 MB."""
    import tracemalloc

    df = lamad.grad(lamad.loads("def f (x0 : Real) (n : Int) : Real = iterate n (\\x. sin x * x + x) x0").f)
    df(-1.0, 10)  # compiles
    tracemalloc.start()
    try:
        df(-1.0, 100000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30e6, peak


def test_an_error_in_a_chained_step_is_located_as_before():
    """A step compiled again to keep its residuals fails where the step fails: at the
    application, with the same message."""
    source = "def f (w : Tensor) (h : Tensor) : Real =\n    sum (iterate 2 (\\h1. tanh (w @ h1)) h)\n"

    def error() -> str:
        with pytest.raises(lamad.LamRuntimeError) as caught:
            lamad.grad(lamad.loads(source).f)(np.ones((2, 3)), np.ones(3))
        return str(caught.value)

    message = error()
    with unchained():
        assert error() == message
    assert message.startswith("<string>:2:32: runtime error: '@'"), message
