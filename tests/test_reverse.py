"""The reverse-mode transform ←D (docs/differentiation.md): its results type-check at
←D(A), its gradients are the published numbers of the worked examples and agree with
central finite differences (float64) for the builtins at randomly drawn shapes
(broadcasting, axes, ``matmul``'s operands; each primitive's rules are checked from its
record in tests/test_prims.py) and for programs with higher-order functions, lists,
``map``, ``fold`` and ``if``; the efficiency theorem is checked by counting
backpropagator runs, and the errors of ``grad`` are located."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, NamedTuple
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import lamad
import lamad.eval
import lamad.instances
from lamad import driver
from lamad.autodiff import Gradient
from lamad.gradient import Backpropagator, Stats, force
from lamad.pretty import pretty
from lamad.reverse import backprop, backprop_type
from lamad.syntax import Ann, alpha_key
from lamad.types import infer_term

from numeric import assert_same_gradient, numeric_gradient
from programs import differentiable_programs, programs

ROOT = Path(__file__).resolve().parent.parent
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ regressions


def test_promoted_reals_differentiate():
    """A Real promoted to a Tensor (by an ascription, a result type, the branches of an
    ``if``) stays a Real under ←D: its backpropagator, Real⊥, receives the 0-d
    cotangents of the promoted value, and the checker treats Real⊥ and Tensor⊥ alike."""
    prog = lamad.loads("""
def as_tensor (x : Real) : Tensor = x * x
def ascribed (x : Real) (c : Tensor) : Real = sum ((exp x : Tensor) * c)
def result (x : Real) (c : Tensor) : Real = sum (as_tensor x * c)
def branches (x : Real) (c : Tensor) : Real = sum ((if sum c > 0.0 then x * x else c) * c)
def elements (x : Real) (c : Tensor) : Real = sum (stack [x * x, sum_axis 0 c] * c)
def stacked (x : Real) (c : Tensor) : Real = sum (stack [x * x, 2.0 * x] * c)
def functions (x : Real) (c : Tensor) : Real =
    sum ((if sum c > 0.0 then (\\(y : Real). y * x) else (\\(y : Real). c * y)) x * c)
""")
    x, c = 0.7, np.array([1.0, 2.0])
    for name in ("ascribed", "result", "branches", "elements", "stacked", "functions"):
        f = prog[name]
        got = lamad.grad(f)(x, c)
        assert np.shape(got) == ()
        assert_same_gradient(got, numeric_gradient(lambda x: f(x, c), x), where=name)


def test_backpropagator_names_do_not_capture_primed_user_names():
    """←D names the backpropagator of ``x1`` ``x1'``: a source variable called ``x1'``
    is not captured."""
    prog = lamad.loads("def f (x : Real) : Real = let x1' = x * 3.0; x2' = x1' * x in x2' + x1'")
    assert float(lamad.grad(prog.f)(2.0)) == pytest.approx(6 * 2.0 + 3.0)


PAIRS = """
def chain (x : Real) : Real = let y = sin x * x; z = y * y + y in z * y
def shadowed (x : Real) : Real = let y = x * x; y = sin y * y in y * y
def captured (x : Real) : Real = let z = x * x in grad (\\(w : Real). z * w * w) 2.0 + z
def primed (x : Real) : Real = let y = x * 3.0; y' = y * y in y' * y
def renamed (x : Real) : Real = let y = x * x; z = y in z * y
def tensor (x : Tensor) : Real = let y = tanh x; z = y * y in sum (z * y)
"""
"""Let-bound reals and tensors whose pairs ←D takes apart where they are bound, and the
names it leaves bound to their pairs (one that a lambda captures, one whose partner's name
the program uses, a name for another variable)."""


def test_a_let_bound_pair_is_taken_apart_where_it_is_bound():
    """``let (y, y') = ←D u`` once, instead of ``let (x1, x1') = y`` at each use of ``y``;
    the gradients agree with finite differences, and →D's with ←D's."""
    prog = lamad.loads(PAIRS)
    text = lamad.pretty(prog.backprop("chain", simplified=False)[2])
    assert "(y, y') =" in text and "(z, z') =" in text and "= y;" not in text and "= z;" not in text
    assert text.count("(y, y')") == 1  # bound once, used as its parts
    points = {"tensor": np.array([0.3, -1.2, 0.8])}
    for name in ("chain", "shadowed", "captured", "primed", "renamed", "tensor"):
        f, x = prog[name], points.get(name, 0.7)
        got = lamad.grad(f)(x)
        assert_same_gradient(got, numeric_gradient(f, x), where=name)
        if name != "tensor":
            assert float(lamad.jvp(f, (x,), (1.0,))[1]) == pytest.approx(float(got), rel=1e-12), name


def test_names_a_closure_captures_or_the_program_primes_stay_bound_to_pairs():
    """A variable a lambda mentions is captured as its pair (differentiating the closure
    again finds it by its name), and one whose partner's name ``y'`` is the program's own
    is not taken apart: both stay ``let y = ←D u``."""
    prog = lamad.loads(PAIRS)
    captured = lamad.pretty(prog.backprop("captured", simplified=False)[2])
    assert "(z, z') =" not in captured and "let z =" in captured
    assert float(lamad.grad(prog.captured)(3.0)) == pytest.approx(2 * 3.0 * (4.0 + 1.0))  # d/dx x²(w² + 1) at w = 2
    primed = lamad.pretty(prog.backprop("primed", simplified=False)[2])
    assert "(y, y') =" not in primed and "let y =" in primed
    assert float(lamad.grad(prog.primed)(2.0)) == pytest.approx(27 * 3 * 2.0 ** 2)  # (3x)³


def test_tuple_argnums_give_a_tuple_of_gradients_as_in_jax():
    prog = lamad.loads("def f (x : Real) (y : Real) : Real = x * y * y")
    (gx,) = lamad.grad(prog.f, argnums=(0,))(2.0, 3.0)
    assert float(gx) == 9.0
    value, (gy,) = lamad.value_and_grad(prog.f, argnums=(1,))(2.0, 3.0)
    assert (float(value), float(gy)) == (18.0, 12.0)
    assert float(lamad.grad(prog.f, argnums=1)(2.0, 3.0)) == 12.0


def test_outer_of_matrices_flattens_as_numpy_does():
    """``outer`` flattens its operands (NumPy, JAX); its transposed derivatives reshape
    the cotangents back to the operands' shapes."""
    prog = lamad.loads("def f (x : Tensor) (y : Tensor) (c : Tensor) : Real = sum (outer x y * c)")
    rng = np.random.default_rng(1)
    x, y, c = rng.standard_normal((2, 2)), rng.standard_normal((1, 3)), rng.standard_normal((4, 3))
    gx, gy = lamad.grad(prog.f, argnums=(0, 1))(x, y, c)
    assert_same_gradient(gx, (c @ y.ravel()).reshape(2, 2))
    assert_same_gradient(gy, (c.T @ x.ravel()).reshape(1, 3))


# ------------------------------------------------------------------ errors of grad


def type_error(source: str) -> lamad.LamTypeError:
    with pytest.raises(lamad.LamTypeError) as info:
        lamad.loads(source)
    return info.value


def spanned(source: str, error: lamad.LamError) -> str:
    return source[error.span.start:error.span.end]


def test_grad_with_respect_to_a_function_is_a_type_error():
    source = "def apply (g : Real -> Real) : Real = g 1.0\ndef h = grad apply"
    error = type_error(source)
    assert "function type" in error.message and "no gradient" in error.message
    assert spanned(source, error) == "apply" and error.span.line == 2
    # a function inside the argument too
    error = type_error("def h = grad (\\((x, g) : Real * (Real -> Real)). g x)")
    assert "function type" in error.message


def test_grad_of_a_curried_function_suggests_a_tuple():
    source = "def f (x : Real) (y : Real) : Real = x * y\ndef h = grad f"
    error = type_error(source)
    assert "for several arguments take a tuple: grad (\\(x, y). f x y)" in error.message
    assert spanned(source, error) == "f"
    fixed = lamad.loads("def f (x : Real) (y : Real) : Real = x * y\ndef h = grad (\\(x, y). f x y) (2.0, 5.0)")
    assert tuple(map(float, fixed.h)) == (5.0, 2.0)


def test_grad_of_a_function_with_a_non_numeric_result_is_a_type_error():
    error = type_error("def h = grad (\\(x : Real). (x, x))")
    assert "needs a function returning Real" in error.message and "use vjp" in error.message


def test_a_non_scalar_loss_is_a_located_run_time_error():
    """``grad`` also takes a function returning a Tensor, as JAX does, if the tensor is
    0-d when it runs; otherwise a run-time error points at the ``grad``."""
    source = ("def loss (x : Tensor) : Tensor = sum_axis 0 (x * x)\n"
              "def vector (x : Tensor) : Tensor = x * x\n"
              "def ok = grad loss (fill 3.0 [1])\n"
              "def bad = value_and_grad vector (fill 1.0 [2])\n")
    prog = lamad.loads(source)
    assert_same_gradient(prog.ok, np.array([6.0]))
    with pytest.raises(lamad.LamRuntimeError) as info:
        prog.bad
    error = info.value
    assert "needs a scalar result" in error.message and "shape (2,)" in error.message
    assert error.span.line == 4 and spanned(source, error).startswith("value_and_grad vector")
    assert str(error).splitlines()[0].startswith("<string>:4:11: runtime error:")
    # and through the Python API, located at the definition of the function
    for differentiate in (lamad.grad, lamad.value_and_grad):
        with pytest.raises(lamad.LamRuntimeError, match="needs a scalar result") as info:
            differentiate(prog.vector)(np.ones(3))
        assert str(info.value).splitlines()[0].startswith("<string>:2:5: runtime error:")


# ------------------------------------------------------------------ typing transformed terms


@PROPERTY
@given(programs(max_depth=3))
def test_backprop_of_every_generated_definition_type_checks_at_its_dual_type(sample):
    """If Γ ⊢ t : A then ←D(Γ) ⊢ ←D(t) : ←D(A), with ``d`` abstract, the
    linearity of every backpropagator checked, for random well-typed definitions
    (higher-order ones, lists, ``map``, ``fold``, tuple patterns, promotions …)."""
    typed = lamad.typecheck(lamad.parse_program(sample.source))
    assert typed.types["f"] == sample.type
    duals = {name: backprop_type(t) for name, t in typed.types.items()}
    for name, term in typed.terms.items():
        checked = infer_term(Ann(backprop(term), duals[name]), duals)
        assert checked.ty == duals[name]


def test_backpropagator_bodies_are_checked_for_linearity():
    """The checker accepts a hand-written ←D term only if each backpropagator is linear
    in its cotangent: used exactly once per summand, through linear operations."""
    good = "\\((x, x') : Real * Real⊥). (sin x, λ(a : Real) ⊸ x' (a * cos x) + 0)"
    assert str(infer_term(lamad.parse(good)).ty) == "Real * ~Real -> Real * ~Real"
    for body in ("x' (a * a)", "x' (cos a)", "x' a + x' (x * 2.0)", "x' (a + 1.0)"):
        with pytest.raises(lamad.LamTypeError, match="not linear in 'a'"):
            infer_term(lamad.parse(f"\\((x, x') : Real * Real⊥). λ(a : Real) ⊸ {body}"))


def test_a_function_mapped_over_a_list_is_linear_when_its_body_is():
    """``map (λb. b (2a)) bps`` is a list each element of which is linear in ``a`` (einsum's
    transposed rule sends one cotangent per operand so); a body that is not linear in ``a``,
    or a parameter that hides it, is refused."""
    head = "\\(bps : List ~Real) (xs : List Real) (x' : ~Real). λ(a : Real) ⊸ %sum_grads "
    good = head + "(map (\\(b : ~Real). b (a * 2.0)) bps)"
    assert str(infer_term(lamad.parse(good)).ty) == "List ~Real -> List Real -> ~Real -> ~Real"
    for mapped in ("(\\(b : ~Real). b (a * a)) bps", "(\\(a : Real). x' a) xs"):
        with pytest.raises(lamad.LamTypeError, match="not linear in 'a'"):
            infer_term(lamad.parse(head + f"(map {mapped})"))


# ------------------------------------------------------------------ worked examples from the literature

WORKED = """
def gate (x : Real) (y : Real) (z : Real) : Real = (x + y) * z
def neuron (w : Real) (x : Real) (b : Real) : Real = exp (w * x + b)
def survey (x1 : Real) (x2 : Real) : Real = log x1 + x1 * x2 - sin x2
def symbolic (x1 : Real) (x2 : Real) : Real = sin ((x1 - x2) * (x1 - x2))

def gate_vg = value_and_grad (\\(x, y, z). gate x y z) (-2.0, 5.0, -4.0)
def neuron_g = grad (\\(w, x, b). neuron w x b) (2.0, 3.0, -4.0)
def survey_vg = value_and_grad (\\(x1, x2). survey x1 x2) (2.0, 5.0)
def symbolic_g (x1 : Real) (x2 : Real) = grad (\\(x1, x2). symbolic x1 x2) (x1, x2)
"""


def floats(values) -> tuple:
    return tuple(float(v) for v in values)


def test_worked_examples_in_the_language():
    prog = lamad.loads(WORKED)
    value, gradient = prog.gate_vg  # the CS231n lecture's published -12 and (-4, -4, 3)
    assert float(value) == -12.0 and floats(gradient) == (-4.0, -4.0, 3.0)
    dw, dx, db = floats(prog.neuron_g)  # the exponential unit: ∂b ≈ 7.389, ∂x ≈ 14.78, ∂w ≈ 22.17
    assert (db, dx, dw) == (pytest.approx(7.389, abs=5e-4), pytest.approx(14.78, abs=5e-3),
                            pytest.approx(22.17, abs=5e-3))
    assert (db, dx, dw) == pytest.approx((np.e ** 2, 2 * np.e ** 2, 3 * np.e ** 2), rel=1e-14)
    value, gradient = prog.survey_vg  # the AD survey's 11.652 and (5.5, 1.716)
    assert float(value) == pytest.approx(11.652, abs=5e-4)
    assert floats(gradient) == (pytest.approx(5.5, abs=5e-4), pytest.approx(1.716, abs=5e-4))
    assert floats(gradient) == pytest.approx((1 / 2 + 5, 2 - np.cos(5.0)), rel=1e-14)
    for x1, x2 in [(1.5, 0.5), (-0.3, 2.0), (0.0, 0.0), (2.0, -1.25)]:  # examples/symbolic.lam
        slope = 2 * (x1 - x2) * np.cos((x1 - x2) ** 2)
        assert floats(prog.symbolic_g(x1, x2)) == pytest.approx((slope, -slope), rel=1e-13, abs=1e-15)


def test_worked_examples_through_the_python_api():
    prog = lamad.loads(WORKED)
    value, gradient = lamad.value_and_grad(prog.gate, argnums=(0, 1, 2))(-2.0, 5.0, -4.0)
    assert float(value) == -12.0 and floats(gradient) == (-4.0, -4.0, 3.0)
    dw, dx, db = floats(lamad.grad(prog.neuron, argnums=(0, 1, 2))(2.0, 3.0, -4.0))
    assert (db, dx, dw) == (pytest.approx(7.389, abs=5e-4), pytest.approx(14.78, abs=5e-3),
                            pytest.approx(22.17, abs=5e-3))
    value, gradient = lamad.value_and_grad(prog.survey, argnums=(0, 1))(2.0, 5.0)
    assert float(value) == pytest.approx(11.652, abs=5e-4)
    assert floats(gradient) == (pytest.approx(5.5, abs=5e-4), pytest.approx(1.716, abs=5e-4))
    assert float(lamad.grad(prog.survey, argnums=1)(2.0, 5.0)) == pytest.approx(2 - np.cos(5.0), rel=1e-14)
    x1, x2 = 1.5, 0.5
    slope = 2 * (x1 - x2) * np.cos((x1 - x2) ** 2)
    assert floats(lamad.grad(prog.symbolic, argnums=(0, 1))(x1, x2)) == pytest.approx((slope, -slope), rel=1e-13)
    # lamad.backprop is ←D itself: the transformed gate checks at ←D(Real → Real → Real → Real)
    dual = lamad.backprop(prog.typed.terms["gate"])
    assert str(infer_term(dual).ty) == "Real * ~Real -> Real * ~Real -> Real * ~Real -> Real * ~Real"


# ------------------------------------------------------------------ builtins at drawn shapes vs finite differences


class Case(NamedTuple):
    """A builtin applied to parameters ``x1 … xk`` of the given types and values."""

    expression: str
    args: list[tuple[str, Any]]


REALS = st.floats(-2.0, 2.0, allow_subnormal=False)
POSITIVE = st.floats(0.3, 3.0)
ODD_TENTHS = st.integers(-10, 9).map(lambda i: (2 * i + 1) / 10)
"""Values away from 0 and from EVEN_TENTHS by at least 0.1: no kink within a step."""
EVEN_TENTHS = st.integers(-10, 10).map(lambda i: i / 5)
DISTINCT = st.integers(-30, 30).map(lambda i: i / 10)
"""With ``unique=True``: no ties within 0.1 for ``max_axis``, ``argmax_mask``, ``sort``, ``top_k``."""
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
NONEMPTY_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)


def tensor(shape, elements=REALS, unique: bool = False) -> st.SearchStrategy:
    return hnp.arrays(np.float64, shape, elements=elements, unique=unique).map(lambda v: ("Tensor", v))


@st.composite
def number(draw, shape, elements=REALS) -> tuple[str, Any]:
    """An operand of an elementwise builtin: a Real (a float) or a Tensor of ``shape``."""
    value = draw(hnp.arrays(np.float64, shape, elements=elements))
    return ("Real", float(value)) if shape == () and draw(st.booleans()) else ("Tensor", value)


def broadcasting(expression: str, *elements) -> st.SearchStrategy:
    """Broadcasting operands, one drawn from each of ``elements``: shapes drawn to
    broadcast against each other (NumPy rules)."""
    shapes = hnp.mutually_broadcastable_shapes(num_shapes=len(elements), max_dims=3, max_side=3)
    return shapes.flatmap(lambda s: st.tuples(*(number(shape, e) for shape, e in zip(s.input_shapes, elements)))) \
        .map(lambda xs: Case(expression, list(xs)))


def binary(expression: str, left=REALS, right=REALS) -> st.SearchStrategy:
    return broadcasting(expression, left, right)


@st.composite
def signed(draw, elements) -> float:
    return draw(elements) * draw(st.sampled_from([1.0, -1.0]))


@st.composite
def axis_case(draw, op: str, elements=REALS, unique: bool = False) -> Case:
    """``op axis x1`` for an axis of ``x1``, negative axes included."""
    shape = draw(NONEMPTY_SHAPES)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return Case(f"{op} ({axis}) x1", [draw(tensor(shape, elements, unique))])


@st.composite
def top_k_case(draw) -> Case:
    """``top_k k x1`` for every ``k`` the last axis allows, 0 included."""
    shape = draw(NONEMPTY_SHAPES)
    return Case(f"fst (top_k {draw(st.integers(0, shape[-1]))} x1)", [draw(tensor(shape, DISTINCT, unique=True))])


@st.composite
def matmul_case(draw) -> Case:
    """NumPy ``matmul`` shapes: matrices, 1-D operands on either side, batches."""
    shapes = draw(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=2, max_side=3))
    return Case("x1 @ x2", [draw(tensor(s)) for s in shapes.input_shapes])


@st.composite
def reshape_case(draw) -> Case:
    shape = draw(SHAPES)
    target = draw(st.sampled_from([shape[::-1], (int(np.prod(shape)),), (1,) + shape, shape + (1,)]))
    return Case(f"reshape x1 {list(target)}", [draw(tensor(shape))])


@st.composite
def same_shapes(draw, expression: str, count: int, shapes=SHAPES) -> Case:
    shape = draw(shapes)
    return Case(expression, [draw(tensor(shape)) for _ in range(count)])


@st.composite
def outer_case(draw) -> Case:
    small = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)
    return Case("outer x1 x2", [draw(tensor(draw(small))), draw(tensor(draw(small)))])


@st.composite
def fill_case(draw) -> Case:
    return Case(f"fill x1 {list(draw(SHAPES))}", [("Real", draw(REALS))])


@st.composite
def expand_dims_case(draw) -> Case:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    return Case(f"expand_dims {draw(st.integers(0, len(shape)))} x1", [draw(tensor(shape))])


@st.composite
def unbroadcast_case(draw) -> Case:
    """``%unbroadcast x1 x2``: ``x2`` has the shape of ``x1`` broadcast against another."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    small = shapes.input_shapes[0]
    return Case("%unbroadcast x1 x2", [draw(number(small)), draw(tensor(shapes.result_shape))])


@st.composite
def broadcast_case(draw) -> Case:
    """``%broadcast x1 x2``: ``x1`` has the shape of ``x2`` broadcast against another."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    return Case("%broadcast x1 x2", [draw(tensor(shapes.result_shape)), draw(number(shapes.input_shapes[0]))])


@st.composite
def stack_case(draw) -> Case:
    """``stack`` of a list literal of parameters, or of a parameter of type List Tensor."""
    shape, count = draw(SHAPES), draw(st.integers(1, 3))
    if draw(st.booleans()):
        return Case(f"stack [{', '.join(f'x{i + 1}' for i in range(count))}]",
                    [draw(tensor(shape)) for _ in range(count)])
    arrays = [draw(tensor(shape))[1] for _ in range(count)]
    return Case("stack x1", [("List Tensor", arrays)])


@st.composite
def concat_case(draw) -> Case:
    shape = draw(NONEMPTY_SHAPES)
    axis = draw(st.integers(0, len(shape) - 1))
    parts = [shape[:axis] + (draw(st.integers(1, 3)),) + shape[axis + 1:] for _ in range(draw(st.integers(1, 3)))]
    names = ", ".join(f"x{i + 1}" for i in range(len(parts)))
    return Case(f"concat {axis} [{names}]", [draw(tensor(p)) for p in parts])


GRADIENT_CASES: dict[str, st.SearchStrategy] = {
    # arithmetic, with broadcasting (Real op Tensor, (2, 3) op (3,), (2, 1) op (1, 3), ...)
    "add": binary("x1 + x2"),
    "sub": binary("x1 - x2"),
    "mul": binary("x1 * x2"),
    "mul0": binary("%mul0 x1 x2"),
    "div": binary("x1 / x2", right=signed(st.floats(0.5, 2.0))),
    "pow": binary("x1 ** x2", left=POSITIVE),
    "max": binary("max x1 x2", ODD_TENTHS, EVEN_TENTHS),
    "min": binary("min x1 x2", ODD_TENTHS, EVEN_TENTHS),
    "logaddexp": binary("logaddexp x1 x2"),
    "where_pos": binary("%where_pos x1 x2", ODD_TENTHS, REALS),
    "where": broadcasting("where (x1 > 0.0) x2 x3", ODD_TENTHS, REALS, REALS),
    "matmul": matmul_case(),
    # reductions, along every axis (negative ones included)
    "sum": SHAPES.flatmap(tensor).map(lambda x: Case("sum x1", [x])),
    "mean": SHAPES.flatmap(tensor).map(lambda x: Case("mean x1", [x])),
    "sum_axis": axis_case("sum_axis"),
    "mean_axis": axis_case("mean_axis"),
    "max_axis": axis_case("max_axis", DISTINCT, unique=True),
    "logsumexp_axis": axis_case("logsumexp_axis"),
    "softmax_axis": axis_case("softmax_axis"),
    # order, at points without ties
    "sort": axis_case("sort", DISTINCT, unique=True),
    "top_k": top_k_case(),
    # shapes
    "transpose": SHAPES.flatmap(tensor).map(lambda x: Case("transpose x1", [x])),
    "reshape": reshape_case(),
    "dot": same_shapes("dot x1 x2", 2),
    "outer": outer_case(),
    "scalar": st.sampled_from([(), (1,), (1, 1)]).flatmap(tensor).map(lambda x: Case("scalar x1", [x])),
    "fill": fill_case(),
    "expand_dims": expand_dims_case(),
    "unbroadcast": unbroadcast_case(),
    "broadcast": broadcast_case(),
    "stack": stack_case(),
    "concat": concat_case(),
    "unstack": same_shapes("stack (map (\\(t : Tensor). t * t) (unstack x1))", 1, NONEMPTY_SHAPES),
}
"""Random applications of the builtins whose derivatives depend on the shapes of their
arguments, at randomly drawn shapes: broadcasting operands, axes, ``matmul``'s 1-D and
batched operands, reshapes, lists of several lengths."""


@functools.lru_cache(maxsize=None)
def _loss_program(expression: str, types: tuple[str, ...]) -> tuple[lamad.LoadedProgram, Callable]:
    """``primal x1 … xk = expression`` and ``loss x1 … xk c = sum (primal x1 … xk * c)``,
    with the gradient of ``loss`` in every ``xi`` (checked and compiled once)."""
    params = "".join(f" (x{i + 1} : {t})" for i, t in enumerate(types))
    names = " ".join(f"x{i + 1}" for i in range(len(types)))
    source = (f"def primal{params} = {expression}\n"
              f"def loss{params} (c : Tensor) : Real = sum (primal {names} * c)\n")
    prog = lamad.loads(source, base_dir=ROOT / "examples")
    return prog, lamad.grad(prog.loss, argnums=tuple(range(len(types))))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_builtin_gradient_at_drawn_shapes_matches_finite_differences(name, data):
    """The gradient of ``sum (builtin x1 … xk * c)`` at drawn shapes, with a random
    cotangent ``c`` of the result's shape, in every argument, against central differences
    (float64)."""
    case = data.draw(GRADIENT_CASES[name], label="case")
    prog, grad = _loss_program(case.expression, tuple(t for t, _ in case.args))
    args = [value for _, value in case.args]
    cotangent = data.draw(hnp.arrays(np.float64, np.shape(prog.primal(*args)), elements=REALS), label="c")
    gradients = grad(*args, cotangent)
    for i, got in enumerate(gradients):
        def moved(x, i=i):
            return prog.loss(*args[:i], x, *args[i + 1:], cotangent)
        assert_same_gradient(got, numeric_gradient(moved, args[i]), where=f"{case.expression}: ∂x{i + 1}")


# ------------------------------------------------------------------ conventions at kinks (docs/differentiation.md)

KINKS = """
def relu_at (x : Real) : Real = relu x
def abs_at (x : Real) : Real = abs x
def max_tie (p : Real * Real) : Real = let (x, y) = p in max x y
def min_tie (p : Real * Real) : Real = let (x, y) = p in min x y
def max_ties (p : Tensor * Real) : Real = let (x, y) = p in sum (max x y)
def min_ties (p : Real * Tensor) : Real = let (x, y) = p in sum (min x y)
def max_axis_ties (x : Tensor) : Real = sum (max_axis 1 x)
"""


def test_conventions_at_kinks():
    """relu'(0) = abs'(0) = 0; max and min split the cotangent equally between tied
    arguments (elementwise, after broadcasting), as JAX and PyTorch do; max_axis among its
    tied maxima."""
    prog = lamad.loads(KINKS)
    assert float(lamad.grad(prog.relu_at)(0.0)) == 0.0
    assert float(lamad.grad(prog.abs_at)(0.0)) == 0.0
    assert floats(lamad.grad(prog.max_tie)((1.5, 1.5))) == (0.5, 0.5)
    assert floats(lamad.grad(prog.min_tie)((-2.0, -2.0))) == (0.5, 0.5)
    dx, dy = lamad.grad(prog.max_ties)((np.array([0.0, 1.0, 2.0, 1.0]), 1.0))
    assert dx.tolist() == [0.0, 0.5, 1.0, 0.5] and float(dy) == 2.0  # ties at 1 are split
    dx, dy = lamad.grad(prog.min_ties)((1.0, np.array([0.0, 1.0, 2.0])))
    assert float(dx) == 1.5 and dy.tolist() == [1.0, 0.5, 0.0]
    x = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 2.0], [0.0, 5.0, 5.0]])
    third = 1 / 3
    assert lamad.grad(prog.max_axis_ties)(x).tolist() == [[0.5, 0, 0.5], [third, third, third], [0, 0.5, 0.5]]
    # and away from the kinks, the usual derivatives
    assert float(lamad.grad(prog.relu_at)(0.5)) == 1.0 and float(lamad.grad(prog.relu_at)(-0.5)) == 0.0
    assert float(lamad.grad(prog.abs_at)(-0.5)) == -1.0


POWERS = """
def zeroth (x : Real) : Real = x ** 0.0
def of_zero (y : Real) : Real = 0.0 ** y
def power (p : Tensor) : Real = sum (take 0 p ** take 1 p)
"""


def test_pow_where_a_factor_of_its_derivative_vanishes():
    """``x ** 0`` is constant, and so is ``0 ** y`` near ``y > 0``: their derivatives are 0
    (as in JAX), not the NaN of 0 · ∞ that ``y * x ** (y - 1)`` and ``x ** y * log x``
    make there.  At other points where a factor vanishes, finite differences agree."""
    prog = lamad.loads(POWERS)
    assert float(lamad.grad(prog.zeroth)(0.0)) == 0.0
    assert float(lamad.grad(prog.of_zero)(0.5)) == 0.0
    assert float(lamad.grad(prog.zeroth)(2.0)) == 0.0
    for point in ([0.0, 2.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.5]):
        p = np.array(point)
        got = lamad.grad(prog.power)(p)
        assert np.isfinite(got[1]), point
        if point[1] >= 1.0 or point[0] != 0.0:
            assert_same_gradient(got, numeric_gradient(lambda q: prog.power(q), p), where=str(point))
    np.testing.assert_array_equal(lamad.grad(prog.power)(np.array([0.0, 2.0])), [0.0, 0.0])
    np.testing.assert_allclose(lamad.grad(prog.power)(np.array([3.0, 0.0])), [0.0, np.log(3.0)])


FOLDED = """
def square (x : Tensor) : Real = sum (x ** 2.0)
def cube (x : Tensor) : Real = sum (0.5 * x ** 3.0)
def first (x : Tensor) : Real = sum (x ** 1.0)
def fractional (x : Tensor) : Real = sum ((x * x) ** 1.5)
def negative (x : Tensor) : Real = sum ((x * x + 1.0) ** -2.0)
def inexact (x : Tensor) : Real = sum ((x * x) ** 0.1)
def real_square (x : Tensor) : Real = sum x ** 2.0 + (3.0 * sum x) ** 2.0
"""

EDGES = [0.0, -0.0, 1.5, -2.25, 3.0e-310, 1.0e200, -1.0e-160, np.inf, -np.inf, np.nan]
"""Points where a factor of a derivative of ``**`` is 0, not finite, or overflows."""


def _derivatives(dtype: str) -> dict[str, list[np.ndarray]]:
    """The gradient, JVP and Hessian–vector product of each function of :data:`FOLDED`,
    in ``dtype``, at :data:`EDGES` and at a regular point."""
    prog = lamad.loads(FOLDED, dtype=dtype)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("square", "cube", "first", "fractional", "negative", "inexact", "real_square"):
            f, results = prog[name], []
            for point in (EDGES, [0.5, -1.25, 2.0]):
                x = np.array(point, dtype=dtype)
                dx = np.linspace(-1.0, 2.0, x.size).astype(dtype)
                results += [lamad.grad(f)(x), lamad.jvp(f, (x,), (dx,))[1], lamad.hvp(f, (x,), (dx,))]
            out[name] = [np.asarray(r) for r in results]
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("tier", ["typed", "untyped"])
def test_rules_folded_on_literals_give_the_same_bits(dtype, tier, monkeypatch):
    """The instances of ``**``'s rules with a literal exponent are folded as they are made
    (``2.0 - 1.0 → 1.0``, ``mul0 2.0 (x ** 1.0) → 2.0 * x``, lamad/instances.py): every
    derivative is the one the rules compute unfolded, bit for bit (a NaN as a NaN) and of
    the same dtype, where a factor is 0, infinite or a NaN and where a product overflows, in float64 and
    float32, in typed scalar code and in the code of a big function (whose Reals are
    NumPy's scalars), through ←D, →D and both."""
    if tier == "untyped":
        monkeypatch.setattr(lamad.eval, "FIRST_TIER_NODES", 0)
    folded = _derivatives(dtype)
    monkeypatch.setattr(lamad.instances, "_folded", lambda t: t)
    unfolded = _derivatives(dtype)
    for name, results in folded.items():
        for got, expected in zip(results, unfolded[name]):
            assert got.dtype == expected.dtype == dtype, name
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=name)
            bits = f"u{got.itemsize}"
            numbers = ~np.isnan(got)  # a NaN's sign and payload: IEEE 754 leaves them to each operation
            np.testing.assert_array_equal(got.view(bits)[numbers], expected.view(bits)[numbers], err_msg=name)


def test_rules_folded_on_literals():
    """←D of ``x ** 2.0`` computes ``2.0 · x``, no ``x ** 1.0`` nor ``mul0``, and needs no
    ``unbroadcast`` (a literal is 0-d); with an exponent whose ``c - 1.0`` float32 would not
    compute exactly (``0.1``), only ``mul0`` goes; and gradients agree with finite
    differences."""
    prog = lamad.loads(FOLDED)
    square = pretty(driver.derivative(prog.typed.terms["square"], simplified=False)[1])
    assert "2.0 · x" in square and "**" not in square.split("⊸")[1] and "mul0" not in square
    assert "unbroadcast" not in square
    inexact = pretty(driver.derivative(prog.typed.terms["inexact"], simplified=False)[1])
    assert "(0.1 - 1.0)" in inexact and "mul0" not in inexact  # 0.1 · x ** (0.1 - 1.0)
    root = driver.derivative(lamad.loads("def root (x : Real) : Real = x ** 0.5").typed.terms["root"],
                             simplified=False)[1]  # 0.5 - 1.0 folded: -0.5, as the parser reads it, neg 0.5
    assert "** (-0.5)" in pretty(root)
    assert alpha_key(infer_term(lamad.parse(pretty(root)), {})) == alpha_key(infer_term(root, {}))  # the same term
    x = np.array([0.5, -1.25, 2.0])
    for name in ("square", "cube", "first", "fractional", "negative", "inexact", "real_square"):
        f = prog[name]
        assert_same_gradient(lamad.grad(f)(x), numeric_gradient(f, x), where=name)


def test_gradients_through_an_accumulator_promoted_to_a_tensor():
    """fold and scan from a Real accumulator over Tensor elements, against finite
    differences and the product rule (∂/∂xi of Πx is Πx / xi)."""
    prog = lamad.loads("""
def p (x : Tensor) : Tensor = fold (\\acc e. acc * e) 1.0 (unstack x)
def loss (x : Tensor) : Real = sum (p x)
def prefixes (x : Tensor) : Real = fold (\\acc t. acc + sum t) 0.0 (scan (\\acc e. acc * e) 1.0 (unstack x))
""")
    x = np.array([1.5, -2.0, 0.5])
    assert_same_gradient(lamad.grad(prog.loss)(x), np.prod(x) / x)
    for name in ("loss", "prefixes"):
        f = prog[name]
        assert_same_gradient(lamad.grad(f)(x), numeric_gradient(lambda v: f(v), x), where=name)
    hessian = np.prod(x) / np.outer(x, x) * (1.0 - np.eye(3))  # ∂²Πx / ∂xi ∂xj, i ≠ j
    np.testing.assert_allclose(lamad.hessian(prog.loss)(x), hessian, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ programs vs finite differences

PROGRAMS = """
-- higher-order functions: lambdas passed, returned and composed, capturing what is differentiated
def compose (f : Real -> Real) (g : Real -> Real) : Real -> Real = \\x. f (g x)
def twice (f : Real -> Real) : Real -> Real = compose f f
def higher_order (p : Real * Real) : Real =
    let (a, b) = p;
        affine = \\(x : Real). a * x + sin (b * x);
        scale = \\(k : Real). \\(x : Real). k * x
    in twice affine 0.3 + compose (scale b) exp a + iterate 3 (scale a) 1.0

-- map over a list of tensors, and a list of functions built by map
def mapped (p : List Tensor * Tensor) : Real =
    let (ws, x) = p;
        layers = map (\\(w : Tensor). \\(h : Tensor). tanh (w @ h)) ws
    in sum (stack (map (\\(f : Tensor -> Tensor). f x) layers))

-- an Elman RNN folded over a list of inputs (as examples/rnn.lam)
def cell (w : Tensor) (u : Tensor) (b : Tensor) (h : Tensor) (x : Tensor) : Tensor = tanh (w @ h + u @ x + b)
def rnn (p : (Tensor * Tensor * Tensor) * Tensor * List Tensor) : Real =
    let ((w, u, b), h0, xs) = p;
        step = \\(h, total) x. let h' = cell w u b h x in (h', total + sum (square h'))
    in snd (fold step (h0, 0.0) xs)

-- "a neural network is a functional program", as in examples/network_as_fold.lam: a fold over its layers
def net (layers : List (Tensor * Tensor)) (x0 : Tensor) : Tensor =
    fold (\\x (w, b). tanh (w @ x + b)) x0 layers
def network (p : List (Tensor * Tensor) * Tensor) : Real =
    let (layers, x0) = p in sum (square (net layers x0 - 0.5))

-- if: on a discrete condition and on reals (away from the boundary), and zip
def branches (p : Tensor * Tensor * Int) : Real =
    let (x, y, n) = p;
        pairs = zip (unstack x) (unstack y);
        z = fold (\\(acc : Real) ((a, b) : Tensor * Tensor).
                if n > 1 then acc + sum (a * b) else acc - sum (exp a)) 0.0 pairs
    in if z > 0.0 then z * z else sin z

-- tuples and lists of tensors, with the same variable used many times
def shared (p : (Tensor * Real) * List Tensor) : Real =
    let ((v, s), xs) = p;
        total = fold (\\acc x. acc + x * v) (v * s) xs;
        again = concat 0 [total, v, total]
    in dot again again + sum (logsumexp_axis 0 again) + mean (softmax_axis 0 again * again)
"""


def _random_point(rng: np.random.Generator) -> dict[str, Any]:
    n = rng.standard_normal
    return {
        "higher_order": (0.7, -0.4),
        "mapped": ([n((3, 2)), n((3, 2)), n((3, 2))], n(2)),
        "rnn": ((0.5 * n((3, 3)), n((3, 2)), n(3)), n(3), [n(2) for _ in range(4)]),
        "network": ([(n((3, 2)), n(3)), (n((3, 3)), n(3)), (n((1, 3)), n(1))], n(2)),
        "branches": (n(4), n(4), 2),
        "shared": ((n(2), 0.8), [n(2), n(2)]),
    }


@functools.cache
def programs_prog() -> lamad.LoadedProgram:
    return lamad.loads(PROGRAMS)


@pytest.mark.parametrize("name", ["higher_order", "mapped", "rnn", "network", "branches", "shared"])
def test_program_gradients_match_finite_differences(name):
    prog = programs_prog()
    rng = np.random.default_rng(3)
    for _ in range(2):
        x = _random_point(rng)[name]
        f = prog[name]
        assert_same_gradient(lamad.grad(f)(x), numeric_gradient(f, x), where=name)


def test_branches_of_if_on_both_sides():
    """The ``if`` of ``branches`` takes each side for some points: both are checked."""
    f = programs_prog().branches
    for point, z in [((np.ones(3), np.ones(3), 2), 3.0),  # n > 1, z > 0: z * z
                     ((np.ones(3), np.ones(3), 0), -3 * np.e),  # n <= 1, z < 0: sin z
                     ((np.ones(3), -np.ones(3), 2), -3.0)]:
        assert float(f(point)) == pytest.approx(z * z if z > 0 else np.sin(z))
        assert_same_gradient(lamad.grad(f)(point), numeric_gradient(f, point), where=f"z = {z}")


def test_vjp_with_tuples_and_lists_of_tensors():
    """``vjp f x`` for ``f : List Tensor * Tensor -> Tensor * List Tensor``: the pullback
    of a cotangent (a tuple holding a list) is ``Jᵀ·ct``, a tuple holding a list; the same
    in the language and through the Python API."""
    source = """
def f (p : List Tensor * Tensor) : Tensor * List Tensor =
    let (xs, w) = p in (w @ stack xs, map (\\(x : Tensor). x * sum w) xs)
def pull (p : List Tensor * Tensor) (ct : Tensor * List Tensor) = let (y, back) = vjp f p in back ct
def inner (p : List Tensor * Tensor) (ct : Tensor * List Tensor) : Real =
    let (y, zs) = f p in dot y (fst ct) + fold (\\acc (z, c). acc + dot z c) 0.0 (zip zs (snd ct))
"""
    prog = lamad.loads(source)
    rng = np.random.default_rng(5)
    point = ([rng.standard_normal(3), rng.standard_normal(3)], rng.standard_normal((4, 2)))
    ct = (rng.standard_normal((4, 3)), [rng.standard_normal(3), rng.standard_normal(3)])
    want = numeric_gradient(lambda p: prog.inner(p, ct), point)  # Jᵀ·ct = ∇ ⟨f p, ct⟩
    assert_same_gradient(prog.pull(point, ct), want, where="vjp in the language")
    y, pullback = lamad.vjp(prog.f, point)
    assert_same_gradient(y, prog.f(point), rtol=0, atol=0)
    assert_same_gradient(pullback(ct), want, where="lamad.vjp")


@PROPERTY
@given(differentiable_programs(max_depth=3))
def test_gradients_of_generated_programs_match_finite_differences(sample):
    """Random smooth programs ``f : A -> Real`` (higher-order, lists, map, fold, if on
    discrete conditions, every smooth builtin), at random points."""
    f = lamad.loads(sample.source).f
    (x,) = sample.point
    assert_same_gradient(lamad.grad(f)(x), numeric_gradient(f, x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ efficiency, counted


def chain(n: int) -> str:
    """The shared chain: ``x1 = x0 * x0; …; xn = x(n-1) * x(n-1)``, 2^n paths."""
    lets = "; ".join(f"x{i} = x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    return f"def f (x0 : Real) : Real = let {lets} in x{n}\n"


def test_backpropagator_runs_are_linear_on_the_shared_chain():
    """Each backpropagator body runs once per force: n runs for n links, where calling
    backpropagators eagerly would make 2^n calls (←D's backpropagators as they are, not
    fused at compile time: tests/test_fuse.py counts those)."""
    runs = {}
    for n in (10, 100, 1000):
        with mock.patch.object(driver, "fuse_backward", lambda term, free=None: term):
            df = lamad.grad(lamad.loads(chain(n)).f)
            df(1.0)
            Stats.reset()
            gradient = df(1.0)
        runs[n] = Stats.backprop_runs
        assert float(gradient) == 2.0 ** n  # d/dx x^(2^n) at 1, exact in floating point
    assert runs == {10: 10, 100: 100, 1000: 1000}


def test_forcing_long_chains_of_backpropagators_needs_no_recursion():
    """Forcing works through an explicit work list: no Python recursion, however long
    the chain (``lamad.api`` would retry a RecursionError on a big stack, so the run-time
    chain is differentiated here without it, under the default recursion limit)."""
    assert sys.getrecursionlimit() < 20000
    with mock.patch.object(lamad.eval, "chained_step", lambda step: None):  # a backpropagator a step
        prog = lamad.loads("def f (x : Real) : Real = iterate 20000 (\\y. y * 1.0001) x")
        df = Gradient(prog.value("f"), prog.types["f"], "", prog.runtime, None, with_value=False)
        Stats.reset()
        assert float(df(prog.backend.scalar(2.0))) == pytest.approx(1.0001 ** 20000, rel=1e-9)
    assert Stats.backprop_runs == 20000  # iterate made one multiplication a step
    # and forcing 100,000 chained backpropagators made in Python
    source = Backpropagator(None)
    last = source
    for _ in range(100000):
        last = Backpropagator(lambda _, a, before=last: before(a * 1.00001))
    Stats.reset()
    arrived = force(last(1.0))
    assert list(arrived) == [source] and arrived[source] == pytest.approx(1.00001 ** 100000, rel=1e-9)
    assert Stats.backprop_runs == 100000


# ------------------------------------------------------------------ the wine MLP of examples/wine.lam


def test_wine_mlp_gradient_is_the_hand_derived_one():
    """``sum ((W2 @ tanh (W1 @ X) - y) ** 2) / n``: with Y1 = tanh(W1 X) and
    J2 = 2 (W2 Y1 - y) / n, ∂W1 = ((1 - Y1²) ⊙ (W2ᵀ J2)) Xᵀ and ∂W2 = J2 Y1ᵀ (by hand),
    on data of the wine set's shape (13 features, 178 samples, 3 classes)."""
    prog = lamad.loads("""
def loss (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Real =
    sum ((w2 @ tanh (w1 @ x) - y) ** 2) / real (dim 1 x)
""")
    rng = np.random.default_rng(2020)
    x, y = rng.standard_normal((13, 178)), rng.integers(-1, 2, size=(1, 178)).astype(float)
    w1, w2 = rng.standard_normal((8, 13)) / 4, rng.standard_normal((1, 8)) / 4
    y1 = np.tanh(w1 @ x)
    j2 = 2 * (w2 @ y1 - y) / x.shape[1]
    dw1, dw2 = ((1 - y1 ** 2) * (w2.T @ j2)) @ x.T, j2 @ y1.T
    value, (g1, g2) = lamad.value_and_grad(prog.loss, argnums=(0, 1))(w1, w2, x, y)
    assert float(value) == pytest.approx(np.sum((w2 @ y1 - y) ** 2) / 178, rel=1e-12)
    assert_same_gradient(g1, dw1, rtol=1e-10, atol=1e-13)
    assert_same_gradient(g2, dw2, rtol=1e-10, atol=1e-13)


def test_types_nothing_determines_are_unit_at_every_depth():
    """``fold (\\x (a, b). x) p []``: the pairs' components are never determined; the
    elaborated term calls them Unit (nothing observes them) and ←D accepts it (it used to
    fail with a Python ValueError)."""
    prog = lamad.loads("def f (p : Real) : Real = fold (\\x (a, b). x * x) p [] * p")
    assert float(lamad.grad(prog.f)(3.0)) == 6.0  # p * p
    assert str(infer_term(backprop(prog.typed.terms["f"])).ty) == "Real * ~Real -> Real * ~Real"


def test_annotated_wildcards_under_backprop():
    """An annotated wildcard parameter gets the ←D of its type, as a variable does."""
    prog = lamad.loads("def h (p : Real * Real) : Real = (\\((_, y) : Real * Real). y * y) p")
    assert floats(lamad.grad(prog.h)((1.0, 3.0))) == (0.0, 6.0)
    dual = infer_term(backprop(prog.typed.terms["h"]))
    assert str(dual.ty) == "(Real * ~Real) * (Real * ~Real) -> Real * ~Real"
