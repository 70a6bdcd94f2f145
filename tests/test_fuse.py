"""Backward passes fused at compile time (lamad/fuse.py): a straight-line body makes one
backpropagator per call, and every gradient is the one the unfused program gives and
the one finite differences give."""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import lamad
from lamad import driver, trace
from lamad.fuse import FUSED_MOST, fuse_backward
from lamad.eval import FIRST_TIER_NODES
from lamad.gradient import Stats, observed
from lamad.parser import parse_program
from lamad.pretty import pretty
from lamad.reverse import backprop
from lamad.syntax import size_above
from lamad.types import typecheck
from numeric import assert_same_gradient, numeric_gradient
from programs import differentiable_programs

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def unfused():
    """Programs loaded inside differentiate without fusion (as lamad did before it)."""
    with mock.patch.object(driver, "fuse_backward", lambda term, free=None: term):
        yield


@contextmanager
def unchained():
    """Programs loaded inside make a backpropagator per step of a loop whose steps chain,
    as lamad did before it ran their backward passes as one loop (lamad/gradient.py,
    ``chain``): the fused backpropagators of the steps are then counted one by one."""
    with mock.patch.object(lamad.eval, "chained_step", lambda step: None):
        yield


def grad_and_runs(source: str, *args, name: str = "f"):
    """The gradient of ``name`` at ``args`` (in the first argument), and how many
    backpropagators forcing it ran."""
    df = lamad.grad(getattr(lamad.loads(source), name))
    df(*args)  # the first call transforms and compiles
    Stats.reset()
    g = df(*args)
    return g, Stats.backprop_runs


STEP = "def f (x0 : Real) : Real = iterate 100 (\\x. sin x * x + x) x0"


def test_one_call_of_a_straight_line_body_runs_one_backpropagator():
    """``\\x. sin x * x + x`` made three backpropagators per call (sin, ·, +); fused, it
    makes one, whose body is the backward code of all three; and the loop's steps, which
    chain, run as the one backpropagator of the loop."""
    with unchained():
        g, runs = grad_and_runs(STEP, 0.001)
    with unfused():
        g0, runs0 = grad_and_runs(STEP, 0.001)
    g1, runs1 = grad_and_runs(STEP, 0.001)
    assert (runs, runs0, runs1) == (100, 300, 1)
    np.testing.assert_allclose(float(g), float(g0), rtol=1e-13)
    assert float(g1) == float(g)
    f = lamad.loads(STEP).f
    assert float(g) == pytest.approx(float(numeric_gradient(f, 0.001)), rel=1e-6)


def test_the_fused_body_is_the_backward_pass_of_the_chain():
    """←D of ``sin x * x + x`` fused: one linear function, which sends one cotangent to
    ``x'``, the sum of what the three primitives send it."""
    term = typecheck(parse_program("def f (x : Real) : Real = sin x * x + x")).terms["f"]
    text = pretty(fuse_backward(backprop(term)))
    assert text.count("⊸") == 1, text
    assert text.split("⊸")[1].count("' (") == 1, text


def chain(n: int) -> str:
    lets = "; ".join(f"x{i} = x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    return f"def f (x0 : Real) : Real = let {lets} in x{n}\n"


def test_fused_backpropagators_are_bounded_in_number_and_size():
    """A chain of n links: at most FUSED_MOST + 1 backpropagators run as one, so the
    gradient runs ⌈n / (FUSED_MOST + 1)⌉ of them (n unfused), exact in floating point."""
    for n in (10, 100, 1000):
        g, runs = grad_and_runs(chain(n), 1.0)
        assert float(g) == 2.0 ** n
        assert runs == math.ceil(n / (FUSED_MOST + 1))
    with unfused():
        assert grad_and_runs(chain(100), 1.0)[1] == 100


def test_a_fused_backpropagator_captures_each_value_once():
    """``x * x`` uses ``x`` twice, and ←D takes its pair apart once per use: a fused
    backpropagator of the chain captures each link's value once (two each before), beside
    the index of its closure and the backpropagator it sends to."""
    class Captures:
        def __init__(self):
            self.sizes = []

        def forcing(self, gradient) -> None:
            pass

        def ran(self, target, cotangent, sent) -> None:
            self.sizes.append(len(target.captured))
    n = 2 * (FUSED_MOST + 1)
    _, pullback = lamad.vjp(lamad.loads(chain(n)).f, 1.0)
    captures = Captures()
    with observed(captures):
        assert float(pullback(1.0)) == 2.0 ** n
    assert captures.sizes == [1 + (FUSED_MOST + 1) + 1] * 2


SHADOWING = """
def rebound (x : Real) : Real = let x = sin x in let y = (let x = x * 2.0 in x + 1.0) in x * y
def swapped (a : Real) : Real = let b = a * 3.0 in let (a, b) = (b * 2.0, a + b) in a * b
def reused (x : Real) : Real = let x1 = x * x in let x1' = (let x1 = x1 + x in x1 * x1) in x1 * x1'
"""


@pytest.mark.parametrize("name", ["rebound", "swapped", "reused"])
def test_flattening_renames_what_it_would_capture(name):
    """Flattening ``let p = (let q = u in v) in t`` and splitting ``let (a, b) = (u, v)``
    must not capture a variable of the same name: fused, unfused and finite differences
    agree."""
    f = getattr(lamad.loads(SHADOWING), name)
    g, _ = grad_and_runs(SHADOWING, 0.7, name=name)
    with unfused():
        g0, _ = grad_and_runs(SHADOWING, 0.7, name=name)
    np.testing.assert_allclose(float(g), float(g0), rtol=1e-13)
    assert float(g) == pytest.approx(float(numeric_gradient(f, 0.7)), rel=1e-6)


USED_OTHERWISE = """
def f (x : Real) : Real =
    let y = sin x * x in
    let h = \\z. z * y in
    let ys = [y, h x] in
    fst (y * 2.0, y) + sum (stack ys) + (if x > 0.0 then y else x)
"""


def test_a_backpropagator_used_otherwise_stays_one():
    """``y`` is captured, put in a list, in a tuple and a branch: its backpropagator is
    not fused away, and the gradient is still right."""
    f = lamad.loads(USED_OTHERWISE).f
    g, runs = grad_and_runs(USED_OTHERWISE, 0.4)
    with unfused():
        g0, runs0 = grad_and_runs(USED_OTHERWISE, 0.4)
    assert runs < runs0
    np.testing.assert_allclose(float(g), float(g0), rtol=1e-13)
    assert float(g) == pytest.approx(float(numeric_gradient(f, 0.4)), rel=1e-6)


WARNS = "def f (x : Real) : Real = let y = sqrt x in y * x + log x"


def test_fused_backward_code_warns_where_the_unfused_code_did():
    """The backward code of ``sqrt`` at 0 divides by zero: the warning, at the same span,
    whether or not the backpropagators are fused."""
    def caught():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            g = lamad.grad(lamad.loads(WARNS).f)(0.0)
        return float(g), sorted({str(w.message) for w in seen})

    fused = caught()
    with unfused():
        before = caught()
    assert fused[1] == before[1] and fused[1], fused
    np.testing.assert_equal(fused[0], before[0])


@PROPERTY
@given(differentiable_programs(max_depth=3))
def test_fused_gradients_equal_the_unfused_ones(sample):
    """Random smooth programs (lets, tuples, records, lists, lambdas, branches, loops):
    the fused gradient is the unfused one (up to the order of summation) and finite
    differences'."""
    source = sample.source
    (x,) = sample.point
    f = lamad.loads(source).f
    got = lamad.grad(f)(x)
    with unfused():
        want = lamad.grad(lamad.loads(source).f)(x)
    assert_same_gradient(got, want, rtol=1e-10, atol=1e-12)
    assert_same_gradient(got, numeric_gradient(f, x), rtol=1e-5, atol=1e-6)


LOCAL = "def f (x : Real) : Real = let g = \\y. sin y * y + y in g (g x)"


def test_a_lambda_inside_a_chain_without_backpropagators_is_fused():
    """``g``'s body is fused although the chain that binds ``g`` has no backpropagator of
    its own to fuse: one backpropagator per call of ``g``."""
    g, runs = grad_and_runs(LOCAL, 0.5)
    with unfused():
        g0, runs0 = grad_and_runs(LOCAL, 0.5)
    assert (runs, runs0) == (2, 6)
    np.testing.assert_allclose(float(g), float(g0), rtol=1e-13)


NESTED_TUPLES = """
def f (p : {w : Real}) : Real =
    let abs = p in fst (0.5, 0) + (let abs = (abs, 0.5) in (let (_, x) = abs in x)) + p.w * p.w
"""


def test_a_tuple_nested_in_a_tuple_goes_with_the_backpropagator_fused_out_of_it():
    """``(abs, (0.5, λa ⊸ 0))``: once the zero backpropagator is fused away, the inner pair
    and the outer one, only ever taken apart, go too (the outer one was left referring to
    the inner one, which no longer existed)."""
    f = lamad.loads(NESTED_TUPLES).f
    assert float(lamad.grad(f)({"w": 0.25})["w"]) == 0.5


def test_the_trace_runs_the_gradient_unfused_after_a_fused_one():
    """``lamad trace`` shows one backpropagator per primitive: after a (fused) gradient of
    the same function, whose derivative is cached, the trace still gets an unfused one."""
    prog = lamad.loads("def f (x : Real) (y : Real) : Real = let u = x * y in sin u + cos u")
    Stats.reset()
    lamad.grad(prog.f, (0, 1))(0.5, 3.0)
    assert Stats.backprop_runs == 1
    t = trace.of_program(prog, "f", prog.evaluate("(0.5, 3.0)"))
    assert [t.graph.nodes[r.node].op for r in t.runs] == ["add", "cos", "sin", "mul"]


def sin_chain(n: int) -> str:
    """The first-call benchmark's chain: ``x_i = sin x_(i-1) * x_(i-1) + x_(i-1)``."""
    lets = "; ".join(f"x{i} = sin x{i - 1} * x{i - 1} + x{i - 1}" for i in range(1, n + 1))
    return f"def f (x0 : Real) : Real = let {lets} in x{n}\n"


def runs_per_call(df, calls: int, *args) -> tuple[list[int], list[float]]:
    """The backpropagators each of ``calls`` calls of ``df`` runs, and the gradients."""
    runs, grads = [], []
    for _ in range(calls):
        Stats.reset()
        grads.append(float(df(*args)))
        runs.append(Stats.backprop_runs)
    return runs, grads


def test_a_big_gradient_runs_unfused_on_its_first_call_and_fused_from_its_second():
    """←D of a lambda of more than FIRST_TIER_NODES nodes is compiled in two tiers
    (lamad/eval.py, ``_LamSource``): unfused for the first call, which then does not pay
    for fusing, and fused for the second and every later one.  60 links of three
    primitives: 180 backpropagators, then ⌈180 / 33⌉.  The gradient is the same each time,
    and finite differences' (the chain's derivative is a product of 1 + sin x + x cos x)."""
    source = sin_chain(60)
    assert size_above(typecheck(parse_program(source)).terms["f"], FIRST_TIER_NODES)
    f = lamad.loads(source).f
    runs, grads = runs_per_call(lamad.grad(f), 3, 0.001)
    assert runs == [180, 6, 6]
    assert grads[1] == grads[2] == pytest.approx(grads[0], rel=1e-15)
    assert grads[0] == pytest.approx(float(numeric_gradient(f, 0.001)), rel=1e-6)


def test_a_function_differentiated_again_by_a_new_gradient_gets_the_fused_tier():
    """The tiers are the function's, not the gradient value's: a second ``grad f``, made
    anew, asks for ←D of ``f`` again and gets it fused."""
    f = lamad.loads(sin_chain(60)).f
    assert [runs_per_call(lamad.grad(f), 1, 0.001)[0][0] for _ in range(2)] == [180, 6]


def test_a_small_function_is_fused_from_its_first_call():
    """Fusing a small lambda costs little and saves most of the run of a body that a loop
    calls many times: ``\\x. sin x * x + x``, iterated, runs one backpropagator per step
    from the first call on."""
    assert not size_above(typecheck(parse_program(STEP)).terms["f"], FIRST_TIER_NODES)
    with unchained():
        runs, _ = runs_per_call(lamad.grad(lamad.loads(STEP).f), 2, 0.001)
    assert runs == [100, 100]


TENSOR_STEP = """
def f (p : Tensor * Tensor) : Real =
    let (w, h) = p in sum (fold (\\h1 x. tanh (w @ h1 + x)) h [h, h * 0.5, h * -2.0])
"""


def test_a_body_on_tensors_makes_one_backpropagator_per_call():
    """An RNN step ``tanh (w @ h1 + x)`` on tensors: one backpropagator per step instead of
    three (``@``, ``+``, ``tanh``), the outer products ``w`` receives still summed as one
    matrix product, and the gradient the unfused one and finite differences'."""
    w, h = np.array([[0.5, -0.3], [0.2, 0.8]]), np.array([0.3, -0.6])
    with unchained():
        g, runs = grad_and_runs(TENSOR_STEP, (w, h))
    with unfused():
        g0, runs0 = grad_and_runs(TENSOR_STEP, (w, h))
    assert runs0 - runs == 3 * 2
    assert_same_gradient(g, g0, rtol=1e-13, atol=0.0)
    assert_same_gradient(g, numeric_gradient(lamad.loads(TENSOR_STEP).f, (w, h)), rtol=1e-6, atol=1e-8)


def test_a_cotangent_sent_alone_outside_the_fused_body_is_sent_as_soon_as_it_is_known():
    """In the fused backward pass of ``sum (w2 @ tanh w1)``, ``w2'`` gets its one cotangent
    as soon as it is known, bound in the body's chain before ``w1``'s is computed, not in
    the body's final sum (the tensors it is computed from are then let go there).  The
    gradient is the unfused one."""
    from lamad.syntax import GRAD, App, LinLam, children, let_chain

    source = "def f (w1 : Tensor) (w2 : Tensor) : Real = sum (w2 @ tanh w1)"
    fused = fuse_backward(backprop(typecheck(parse_program(source)).terms["f"]))
    bodies, stack = [], [fused]
    while stack:
        node = stack.pop()
        if isinstance(node, LinLam) and node.ty.cod == GRAD:
            bodies.append(node.body)
        stack += children(node)
    (chain, _), = [let_chain(b) for b in bodies if len(let_chain(b)[0]) > 1]
    kinds = ["send" if isinstance(let.bound, App) and let.bound.ty == GRAD else "step" for let in chain]
    assert kinds == ["step", "send", "step", "send"], pretty(fused)  # ∂a, w2' ∂W2, ∂y, w1' ∂W1
    w1, w2 = np.array([[0.5, -0.3], [0.2, 0.8]]), np.array([[1.0, -2.0], [0.25, 0.5]])
    prog = lamad.loads(source)
    got = lamad.grad(prog.f, (0, 1))(w1, w2)
    with unfused():
        want = lamad.grad(lamad.loads(source).f, (0, 1))(w1, w2)
    assert_same_gradient(got, want, rtol=1e-13, atol=0.0)
