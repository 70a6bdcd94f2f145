"""Forward mode →D, ``jvp``, and nested derivatives (docs/differentiation.md, "Forward
mode" and "Nesting and second order").  Each primitive's tangent rule is checked from
its record (tests/test_prims.py); here the conventions at kinks are compared with ←D's;
random programs check that ``jvp`` is the transpose of ``vjp``, that →D type-checks, and
that ``jacfwd`` and ``jacrev`` agree; Hessians are checked exactly on quadratic forms,
against analytic formulas and against finite differences of the gradient, the wine MLP
loss included; nesting is checked on every pair of modes, at third order, on closures
and loops, and by counting backpropagator runs."""

from __future__ import annotations

import os
import string
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamad
from lamad.adtypes import forward_type
from lamad.forward import forward
from lamad.gradient import Stats
from lamad.reverse import backprop
from lamad.syntax import REAL, FunType, alpha_key
from lamad.types import infer_term

from numeric import STEP, directional_difference, flat, gradient_difference, like
from programs import SHADOWING

ROOT = Path(__file__).resolve().parent.parent
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ conventions at kinks


def test_conventions_at_kinks_match_reverse_mode():
    """relu'(0) = abs'(0) = 0, max splits the tangent equally between tied arguments and
    max_axis among tied maxima, in forward mode as in reverse mode."""
    p = lamad.loads(textwrap.dedent("""\
        def k (x : Tensor) : Tensor = relu x + abs x
        def m (x : Tensor) (y : Tensor) : Tensor = max x y
        def ma (x : Tensor) : Tensor = max_axis 0 x
    """))
    _, t = lamad.jvp(p.k, (np.zeros(2),), (np.ones(2),))
    np.testing.assert_array_equal(t, [0.0, 0.0])
    _, t = lamad.jvp(p.m, (np.ones(2), np.ones(2)), (np.array([1.0, 2.0]), np.array([5.0, 7.0])))
    np.testing.assert_array_equal(t, [3.0, 4.5])
    _, t = lamad.jvp(p.ma, (np.array([3.0, 3.0, 1.0]),), (np.array([1.0, 2.0, 4.0]),))
    assert float(t) == 1.5


# ------------------------------------------------------------------ random programs

UNARY = ["{tanh} {0}", "{sin} {0}", "{cos} {0}", "{sigmoid} {0}", "{exp} (-({square} {0}))", "{log1p} ({square} {0})",
         "{sqrt} (1.0 + {square} {0})", "(-{0})", "{relu} {0}", "{softplus} {0}", "{log_sigmoid} {0}"]
BINARY = ["{0} + {1}", "{0} - {1}", "{0} * {1}", "{max} {0} {1}", "{0} / (1.0 + {square} {1})", "{logaddexp} {0} {1}"]
"""Templates: ``{0}``, ``{1}`` the operands, ``{sin}`` a builtin (``%sin`` where a local shadows it)."""


class _Builtins(dict):
    """A builtin's name as the text may call it: ``%name`` where a local of that name is in scope."""

    def __init__(self, scope: frozenset[str]):
        super().__init__()
        self.scope = scope

    def __missing__(self, name: str) -> str:
        return f"%{name}" if name in self.scope else name


def _node(template: str, *children, kind: str | None = None):
    """``template`` applied to subexpressions: (render, kind), where ``render`` writes the
    text in a scope of local names and ``kind`` is "T" for a tensor, "R" for a real (by
    default a tensor if an operand is one)."""
    kind = kind or ("T" if any(k == "T" for _, k in children) else "R")

    def render(scope: frozenset[str]) -> str:
        return string.Formatter().vformat(template, [f"({c(scope)})" for c, _ in children], _Builtins(scope))
    return render, kind


def _bind(name: str, template: str, bound, body, as_lambda: bool):
    """``let name = bound in template name body`` (or ``(\\(name : T). …) bound``): a local
    that may shadow a builtin, used as a value in the body while the builtin is called as
    ``%name``."""
    kind = "T" if "T" in (bound[1], body[1]) else "R"

    def render(scope: frozenset[str]) -> str:
        inner = scope | {name}
        text = string.Formatter().vformat(template, [name, f"({body[0](inner)})"], _Builtins(inner))
        if as_lambda:
            return f"(\\({name} : {'Tensor' if bound[1] == 'T' else 'Real'}). {text}) ({bound[0](scope)})"
        return f"let {name} = {bound[0](scope)} in {text}"
    return render, kind


def expressions():
    """Random compositions of differentiable builtins of ``x : Tensor`` (shape (3,)),
    ``r : Real`` and ``w : Tensor`` (3 × 3), with locals (``let`` and applied lambdas)
    named after primitives, as (lamad text, "T" or "R")."""
    leaves = st.sampled_from([(lambda scope, text=text: text, kind)
                              for text, kind in [("x", "T"), ("r", "R"), ("w @ x", "T"), ("2.0 * r", "R")]])

    def extend(children):
        tensors = children.filter(lambda c: c[1] == "T")
        return st.one_of(
            st.tuples(st.sampled_from(UNARY), children).map(lambda p: _node(*p)),
            st.tuples(st.sampled_from(BINARY), children, children).map(lambda p: _node(*p)),
            st.tuples(st.sampled_from(["{sum} {0}", "{mean} {0}"]), tensors).map(lambda p: _node(*p, kind="R")),
            tensors.map(lambda c: _node("w @ {0}", c)),
            tensors.map(lambda c: _node("{softmax_axis} 0 {0}", c)),
            st.tuples(tensors, tensors).map(lambda p: _node("{dot} {0} {1}", *p, kind="R")),
            st.tuples(st.sampled_from(SHADOWING), st.sampled_from(BINARY), children, children, st.booleans())
            .map(lambda p: _bind(*p)),
        )
    return st.recursive(leaves, extend, max_leaves=7).map(lambda node: (node[0](frozenset()), node[1]))


POINT = (np.array([0.31, -0.73, 1.13]), 0.47, np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [-0.4, 0.2, 0.7]]))
"""A point away from the kinks of relu and max (no component of w @ x is r or 0)."""


def _program(body: str) -> lamad.LoadedProgram:
    return lamad.loads(f"def f (x : Tensor) (r : Real) (w : Tensor) = {body}\n")


@PROPERTY
@given(expressions(), expressions(), st.integers(0, 2**32 - 1))
def test_jvp_is_the_transpose_of_vjp_on_random_programs(e1, e2, seed):
    """<jvp(dx), ct> = <dx, vjp(ct)> for random programs of two results; →D of the
    program type-checks at →D(A) and prints and parses back; jvp agrees with finite
    differences."""
    prog = _program(f"({e1[0]}, {e2[0]})")
    term, ty = prog.typed.terms["f"], prog.types["f"]
    transformed = forward(term)
    assert infer_term(transformed, {}).ty == forward_type(ty)
    again = infer_term(lamad.parse(lamad.pretty(transformed)), {})
    assert again.ty == forward_type(ty) and alpha_key(again) == alpha_key(infer_term(transformed, {}))
    rng = np.random.default_rng(seed)
    direction = (rng.standard_normal(3), rng.standard_normal(()), rng.standard_normal((3, 3)))
    y, tangent = lamad.jvp(prog.f, POINT, direction)
    ct = like(y, rng)
    _, pullback = lamad.vjp(prog.f, *POINT)
    back = pullback(ct)
    lhs, rhs = flat(tangent) @ flat(ct), flat(direction) @ flat(back)
    assert np.isclose(lhs, rhs, rtol=1e-9, atol=1e-12), (lhs, rhs)
    np.testing.assert_allclose(flat(tangent), directional_difference(prog.f, POINT, direction),
                               rtol=1e-5, atol=1e-6)


@PROPERTY
@given(expressions(), expressions())
def test_jacfwd_and_jacrev_agree_on_random_programs(e1, e2):
    """Random programs ``Tensor -> Tensor`` with several results (shape (2, 3), or (2,)):
    the Jacobians by columns (jvp) and by rows (pullbacks) agree, have shape out + in,
    and match finite differences."""
    def tensor(e):
        return e[0] if e[1] == "T" else f"({e[0]}) * x"
    prog = lamad.loads(textwrap.dedent(f"""\
        def w : Tensor = reshape (stack [0.5, -0.2, 0.1, 0.3, 0.8, -0.6, -0.4, 0.2, 0.7]) [3, 3]
        def f (x : Tensor) : Tensor = let r = 0.47 in stack [{tensor(e1)}, {tensor(e2)}]
    """))
    x = POINT[0]
    forward_jacobian, reverse_jacobian = lamad.jacfwd(prog.f)(x), lamad.jacrev(prog.f)(x)
    assert forward_jacobian.shape == reverse_jacobian.shape == (2, 3, 3)
    np.testing.assert_allclose(forward_jacobian, reverse_jacobian, rtol=1e-10, atol=1e-12)
    for i in range(3):
        e = np.eye(3)[i]
        np.testing.assert_allclose(forward_jacobian[..., i].ravel(), directional_difference(prog.f, (x,), (e,)),
                                   rtol=1e-5, atol=1e-6)


def test_jacobians_of_many_shapes():
    """out + in for matrix arguments and results, Real arguments and Real results."""
    p = lamad.loads(textwrap.dedent("""\
        def m (x : Tensor) : Tensor = transpose (x * x)          -- (2, 3) -> (3, 2)
        def s (x : Real) : Tensor = stack [x, x * x, sin x]      -- Real -> (3,)
        def v (x : Tensor) : Real = sum (exp x)                  -- (2,) -> Real
        def d (x : Tensor) : Tensor = jacfwd m x
        def e (x : Tensor) : Tensor = jacrev m x
    """))
    x = np.arange(6.0).reshape(2, 3) / 4
    jf, jr = lamad.jacfwd(p.m)(x), lamad.jacrev(p.m)(x)
    expected = np.zeros((3, 2, 2, 3))
    for i in range(2):
        for j in range(3):
            expected[j, i, i, j] = 2 * x[i, j]
    np.testing.assert_allclose(jf, expected, atol=1e-15)
    np.testing.assert_allclose(jr, expected, atol=1e-15)
    np.testing.assert_allclose(p.d(x), expected, atol=1e-15)
    np.testing.assert_allclose(p.e(x), expected, atol=1e-15)
    np.testing.assert_allclose(lamad.jacfwd(p.s)(0.5), [1.0, 1.0, np.cos(0.5)])
    np.testing.assert_allclose(lamad.jacrev(p.s)(0.5), [1.0, 1.0, np.cos(0.5)])
    np.testing.assert_allclose(lamad.jacfwd(p.v)(np.array([0.0, 1.0])), np.exp([0.0, 1.0]))
    np.testing.assert_allclose(lamad.jacrev(p.v)(np.array([0.0, 1.0])), np.exp([0.0, 1.0]))


# ------------------------------------------------------------------ Hessians

def test_hessian_of_a_quadratic_form_is_exact():
    """x ↦ xᵀAx/2 has Hessian (A + Aᵀ)/2: with integer A and x every operation is exact, so
    the Hessian (forward-over-reverse) is equal to it, not just close; so is every hvp."""
    p = lamad.loads(textwrap.dedent("""\
        def q (a : Tensor) (x : Tensor) : Real = dot x (a @ x) / 2.0
        def h (a : Tensor) (x : Tensor) : Tensor = hessian (\\x. q a x) x
        def hv (a : Tensor) (x : Tensor) (v : Tensor) : Tensor = hvp (\\x. q a x) x v
        def r = hessian (\\x. 3.0 * x * x - x) 7.0
    """))
    rng = np.random.default_rng(8)
    a = rng.integers(-5, 6, size=(4, 4)).astype(float)
    x = rng.integers(-3, 4, size=4).astype(float)
    v = rng.integers(-3, 4, size=4).astype(float)
    expected = (a + a.T) / 2
    np.testing.assert_array_equal(p.h(a, x), expected)
    np.testing.assert_array_equal(lamad.hessian(p.q, argnums=1)(a, x), expected)
    np.testing.assert_array_equal(p.hv(a, x, v), expected @ v)
    np.testing.assert_array_equal(lamad.hvp(p.q, (a, x), (np.zeros((4, 4)), v))[1], expected @ v)
    assert float(p.r) == 6.0


LOG_EXP_TANH = textwrap.dedent("""\
    def f (w : Tensor) (x : Tensor) : Real =
        sum (tanh (w @ x)) + log (sum (exp x)) + sum (log1p (exp (-x)))
""")


def _log_exp_tanh_hessian(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The Hessian in x of f above, by hand: Wᵀ diag(-2 t (1 - t²)) W for the tanh term,
    diag(p) - p pᵀ for log-sum-exp, diag(σ(x)(1 - σ(x))) for Σ log(1 + e^-x)."""
    t = np.tanh(w @ x)
    p = np.exp(x) / np.exp(x).sum()
    s = 1 / (1 + np.exp(-x))
    return w.T @ np.diag(-2 * t * (1 - t * t)) @ w + np.diag(p) - np.outer(p, p) + np.diag(s * (1 - s))


def test_hessian_and_hvp_of_log_exp_tanh_compositions():
    """Against the analytic Hessian, against finite differences of the gradient, and hvp
    against the Hessian times the vector; in the language and in the API."""
    p = lamad.loads(LOG_EXP_TANH + textwrap.dedent("""\
        def h (w : Tensor) (x : Tensor) : Tensor = hessian (\\x. f w x) x
        def hv (w : Tensor) (x : Tensor) (v : Tensor) : Tensor = hvp (\\x. f w x) x v
    """))
    rng = np.random.default_rng(3)
    w, x, v = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    expected = _log_exp_tanh_hessian(w, x)
    hessian = p.h(w, x)
    np.testing.assert_allclose(hessian, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lamad.hessian(p.f, argnums=1)(w, x), expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(p.hv(w, x, v), expected @ v, rtol=1e-12, atol=1e-13)
    grad_x = lamad.grad(p.f, argnums=1)
    np.testing.assert_allclose(p.hv(w, x, v), gradient_difference(lambda x: grad_x(w, x), (x,), (v,)),
                               rtol=1e-6, atol=1e-8)
    fd = np.stack([gradient_difference(lambda x: grad_x(w, x), (x,), (e,)) for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(hessian, fd, rtol=1e-6, atol=1e-8)


WINE = textwrap.dedent("""\
    -- the wine MLP of examples/wine.lam: a hidden layer of tanh units, squared error over n samples
    def loss (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Real =
        let n = real (length (unstack (transpose x))) in sum ((w2 @ tanh (w1 @ x) - y) ** 2) / n
    def hvp_w (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) (v1 : Tensor) (v2 : Tensor) : Tensor * Tensor =
        hvp (\\(a, b). loss a b x y) (w1, w2) (v1, v2)
    def hessian_w1 (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Tensor =
        hessian (\\a. loss a w2 x y) w1
""")


@pytest.fixture(scope="module")
def wine():
    """The MLP of examples/wine.lam on data shaped like the wine set (13 normalised features, labels
    ±1), smaller: 24 samples and 3 hidden units."""
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((13, 24))
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    y = np.sign(rng.standard_normal((1, 24)))
    w1, w2 = rng.uniform(size=(3, 13)) / 2, rng.uniform(size=(1, 3))
    return lamad.loads(WINE), w1, w2, x, y


def test_hvp_of_the_wine_mlp_loss_matches_finite_differences_of_the_gradient(wine):
    p, w1, w2, x, y = wine
    rng = np.random.default_rng(5)
    v1, v2 = rng.standard_normal(w1.shape), rng.standard_normal(w2.shape)
    h1, h2 = p.hvp_w(w1, w2, x, y, v1, v2)
    grad = lamad.grad(p.loss, argnums=(0, 1))
    fd = gradient_difference(lambda a, b: grad(a, b, x, y), (w1, w2), (v1, v2))
    np.testing.assert_allclose(np.concatenate([h1.ravel(), h2.ravel()]), fd, rtol=1e-6, atol=1e-8)
    api_h1, api_h2, _, _ = lamad.hvp(p.loss, (w1, w2, x, y), (v1, v2, np.zeros_like(x), np.zeros_like(y)))
    np.testing.assert_allclose(api_h1, h1, rtol=1e-13)
    np.testing.assert_allclose(api_h2, h2, rtol=1e-13)


def test_hessian_of_the_wine_mlp_loss_matches_finite_differences_of_the_gradient(wine):
    p, w1, w2, x, y = wine
    hessian = p.hessian_w1(w1, w2, x, y)
    assert hessian.shape == w1.shape + w1.shape
    np.testing.assert_allclose(hessian, hessian.transpose(2, 3, 0, 1), rtol=1e-10, atol=1e-13)
    grad_w1 = lamad.grad(p.loss)
    rows = [gradient_difference(lambda a: grad_w1(a, w2, x, y), (w1,), (e.reshape(w1.shape),)) for e in np.eye(w1.size)]
    fd = np.stack(rows, axis=1).reshape(hessian.shape)
    np.testing.assert_allclose(hessian, fd, rtol=1e-5, atol=1e-7)


def _power_hessian(x: float, y: float) -> np.ndarray:
    """The Hessian of ``x ** y`` in ``(x, y)``, for ``x > 0``."""
    dxx = y * (y - 1) * x ** (y - 2)
    dxy = x ** (y - 1) * (1 + y * np.log(x))
    dyy = x ** y * np.log(x) ** 2
    return np.array([[dxx, dxy], [dxy, dyy]])


def test_pow_where_a_factor_of_its_derivative_vanishes():
    """The tangents of ``x ** 0`` at 0 and of ``0 ** y`` at ``y > 0`` are 0, not NaN; the
    second derivatives of ``x ** y`` keep the terms that vanish only at one order (at
    ``y = 0`` the mixed derivative is ``1 / x``), against the analytic Hessian and finite
    differences of the gradient."""
    p = lamad.loads(textwrap.dedent("""\
        def zeroth (x : Real) : Real = x ** 0.0
        def of_zero (y : Real) : Real = 0.0 ** y
        def cube (x : Real) : Real = x ** 3.0
        def power (p : Tensor) : Real = sum (take 0 p ** take 1 p)
        def dpower (p : Tensor) : Tensor = grad power p
    """))
    assert float(lamad.jvp(p.zeroth, (0.0,), (1.0,))[1]) == 0.0
    assert float(lamad.jvp(p.of_zero, (0.5,), (1.0,))[1]) == 0.0
    assert float(lamad.hvp(p.zeroth, (0.0,), (1.0,))) == 0.0
    assert float(lamad.hvp(p.of_zero, (0.5,), (1.0,))) == 0.0
    assert float(lamad.hvp(p.cube, (2.0,), (1.0,))) == 12.0
    assert float(lamad.hessian(p.cube)(-1.5)) == -9.0
    for point in ([2.0, 0.0], [1.5, 3.0], [0.5, 1.0]):
        x = np.array(point)
        hessian = lamad.hessian(p.power)(x)
        np.testing.assert_allclose(hessian, _power_hessian(*point), rtol=1e-12, err_msg=str(point))
        fd = np.stack([gradient_difference(p.dpower, (x,), (d,)) for d in np.eye(2)], axis=1)
        np.testing.assert_allclose(hessian, fd, rtol=1e-6, atol=1e-8, err_msg=str(point))
    # at x = 0 (finite differences would leave the domain): 0 ** y is 0 near y = 2, x ** 2 is x²
    np.testing.assert_array_equal(lamad.hessian(p.power)(np.array([0.0, 2.0])), [[2.0, 0.0], [0.0, 0.0]])


PROMOTED = textwrap.dedent("""\
    def reshaped (x : Real) : Real = sum (reshape (x * x * x) [1])
    def branch (x : Real) : Real = sum (if x > 0.0 then ones [2] * x * x * x else 0.0)
    def zero_branch (x : Tensor) : Real = sum (if sum x > 0.0 then x * x * x else 0.0)
    def real_branch (x : Tensor) : Real = sum (if sum x > 0.0 then x * x * x else sum (x * x))
    def elements (x : Tensor) : Real = fold (\\acc t. acc + sum t) 0.0 [x * x * x, sum (sin x), x]
    def d_reshaped (x : Real) : Real = grad reshaped x
    def d_branch (x : Real) : Real = grad branch x
    def d_zero_branch (x : Tensor) : Tensor = grad zero_branch x
    def d_real_branch (x : Tensor) : Tensor = grad real_branch x
    def d_elements (x : Tensor) : Tensor = grad elements x
    def h_elements (x : Tensor) : Tensor = hessian elements x
""")


@pytest.mark.parametrize("name", ["reshaped", "branch"])
def test_second_derivatives_through_a_real_promoted_to_a_tensor(name):
    """A Real used as a Tensor (reshaped, in a branch of ``if`` whose other branch is a
    Tensor): hvp, hessian and jacfwd of grad, against the analytic 6x · (1 or 2) and
    finite differences of the gradient."""
    p = lamad.loads(PROMOTED)
    x, scale = 0.7, {"reshaped": 1.0, "branch": 2.0}[name]
    fd = gradient_difference(p["d_" + name], (x,), (1.0,))[0]
    for value in (lamad.hvp(p[name], (x,), (1.0,)), lamad.hessian(p[name])(x), lamad.jacfwd(p["d_" + name])(x)):
        np.testing.assert_allclose(float(value), 6.0 * x * scale, rtol=1e-12)
        np.testing.assert_allclose(float(value), fd, rtol=1e-6)


@pytest.mark.parametrize("name", ["zero_branch", "real_branch", "elements"])
def test_second_derivatives_of_tensors_joined_with_reals(name):
    """Branches of ``if`` and list elements that join a Real and a Tensor: hvp, hessian,
    jacfwd and jacrev of grad against finite differences of the gradient."""
    p = lamad.loads(PROMOTED)
    x, v = np.array([0.3, 0.5, -0.2]), np.array([1.0, -2.0, 0.5])
    dx = p["d_" + name]
    fd = np.stack([gradient_difference(dx, (x,), (d,)) for d in np.eye(3)], axis=1)
    hessian = lamad.hessian(p[name])(x)
    np.testing.assert_allclose(hessian, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lamad.jacfwd(dx)(x), hessian, rtol=1e-12)
    np.testing.assert_allclose(lamad.jacrev(dx)(x), hessian, rtol=1e-12)
    np.testing.assert_allclose(lamad.hvp(p[name], (x,), (v,)), hessian @ v, rtol=1e-12)


def test_third_derivatives_of_tensors_joined_with_reals():
    """jacfwd of a Hessian that joins a Real and a Tensor, against finite differences."""
    p = lamad.loads(PROMOTED)
    x = np.array([0.3, 0.5, -0.2])
    third = lamad.jacfwd(p.h_elements)(x)
    fd = np.stack([gradient_difference(p.h_elements, (x,), (d,)) for d in np.eye(3)], axis=-1).reshape(third.shape)
    np.testing.assert_allclose(third, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(third, np.diag(6.0 - np.cos(x))[:, :, None] * np.eye(3)[:, None, :], rtol=1e-12)


# ------------------------------------------------------------------ nesting

NESTED = textwrap.dedent("""\
    def s (x : Real) : Real = sin x
    def cube (x : Real) : Real = x * x * x
    def rrr = grad (grad (grad s)) 0.5                                -- reverse over reverse over reverse
    def frr = snd (jvp (grad (grad s)) 0.5 1.0)                       -- forward over reverse over reverse
    def fff = snd (jvp (\\x. snd (jvp (\\y. snd (jvp s y 1.0)) x 1.0)) 0.5 1.0)
    def rfr = grad (\\x. snd (jvp (grad s) x 1.0)) 0.5                -- reverse over forward over reverse
    def confusion = grad (\\x. x * grad (\\y. x + y) 2.0) 3.0         -- d/dx (x · 1) = 1, not 2
    def confusion_f = snd (jvp (\\x. x * snd (jvp (\\y. x * y) 5.0 1.0)) 3.0 1.0)  -- d/dx x² = 6
    def inner = grad (\\x. let g = \\y. x * y * y in grad g x) 3.0    -- a closure made inside: d/dx 2x² = 12
    def through_vjp = grad (\\x. let (y, pullback) = vjp (\\z. z * z * x) x in pullback 1.0) 2.0  -- d/dx 2x² = 8
    def through_fold = grad (\\x. fold (\\acc y. acc + grad (\\z. z * z * y) x) 0.0 [1.0, 2.0, x]) 3.0
    def through_map (x : Tensor) : Tensor = grad (\\v. fold (\\acc t. acc + grad cube (scalar t)) 0.0 (unstack v)) x
""")


def test_nested_derivatives_of_every_kind():
    p = lamad.loads(NESTED)
    for name in ("rrr", "frr", "fff", "rfr"):
        np.testing.assert_allclose(float(p[name]), -np.cos(0.5), rtol=1e-14, err_msg=name)
    assert float(p.confusion) == 1.0
    assert float(p.confusion_f) == 6.0
    assert float(p.inner) == 12.0
    assert float(p.through_vjp) == 8.0
    assert float(p.through_fold) == 18.0  # Σ 2xy over y = 1, 2, x: 2x(3 + x), derivative 6 + 4x
    np.testing.assert_allclose(p.through_map(np.array([1.0, -2.0])), [6.0, -12.0])


def test_nested_derivatives_of_tensor_programs():
    """grad of a function that takes a gradient, and the Hessian of a function of a matrix
    that uses a gradient inside, against finite differences."""
    p = lamad.loads(textwrap.dedent("""\
        def e (x : Tensor) : Real = sum (exp (x * x)) + sum (tanh x) * sum x
        def g (x : Tensor) : Tensor = grad (\\v. sum (grad e v * grad e v)) x
        def descent (x : Tensor) : Real = e (x - 0.1 * grad e x)       -- one gradient step, then the loss
        def meta (x : Tensor) : Tensor = grad descent x
    """))
    x = np.array([0.2, -0.4, 0.3])
    for name, inner in (("g", lambda v: float(np.sum(lamad.grad(p.e)(v) ** 2))), ("meta", lambda v: float(p.descent(v)))):
        fd = np.array([(inner(x + STEP * d) - inner(x - STEP * d)) / (2 * STEP) for d in np.eye(3)])
        np.testing.assert_allclose(p[name](x), fd, rtol=1e-6, atol=1e-8, err_msg=name)
    hessian = lamad.hessian(p.descent)(x)
    fd = np.stack([gradient_difference(p.meta, (x,), (d,)) for d in np.eye(3)], axis=1)
    np.testing.assert_allclose(hessian, fd, rtol=1e-5, atol=1e-7)


ZERO_D = textwrap.dedent("""\
    def g (x : Tensor) : Tensor = grad (\\y. y * y * y) (take 0 x)
    def v (x : Tensor) : Tensor = let (a, b) = value_and_grad (\\y. y * y * y) (take 0 x) in a + b
    def w (x : Tensor) : Tensor = grad (\\y. take 0 y * take 0 y * take 1 y) x
    def ww (x : Tensor) : Tensor = grad (\\z. sum (grad (\\y. take 0 y * take 0 y * take 1 y) z * z)) x
    def s (x : Tensor) : Real = sum (w x * w x)
    def ds (x : Tensor) : Tensor = grad s x
""")


@pytest.mark.parametrize("name", ["g", "v", "w", "ww"])
def test_derivatives_of_the_gradient_of_a_function_returning_a_0d_tensor(name):
    """``grad`` and ``value_and_grad`` of a function whose result is a 0-d Tensor (as in
    JAX) carried through →D and ←D: jacfwd and jacrev against finite differences."""
    p = lamad.loads(ZERO_D)
    x = np.array([0.3, 0.5])
    jacobian = lamad.jacfwd(p[name])(x)
    fd = np.stack([directional_difference(p[name], (x,), (d,)) for d in np.eye(2)], axis=-1).reshape(jacobian.shape)
    np.testing.assert_allclose(jacobian, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lamad.jacrev(p[name])(x), jacobian, rtol=1e-12)


def test_hessian_through_the_gradient_of_a_function_returning_a_0d_tensor():
    """s = |∇(x0² x1)|² = 4 x0² x1² + x0⁴: its Hessian and hvp, by formula and against
    finite differences of the gradient."""
    p = lamad.loads(ZERO_D)
    x0, x1 = x = np.array([0.3, 0.5])
    expected = np.array([[8 * x1 ** 2 + 12 * x0 ** 2, 16 * x0 * x1], [16 * x0 * x1, 8 * x0 ** 2]])
    hessian = lamad.hessian(p.s)(x)
    np.testing.assert_allclose(hessian, expected, rtol=1e-12)
    fd = np.stack([gradient_difference(p.ds, (x,), (d,)) for d in np.eye(2)], axis=1)
    np.testing.assert_allclose(hessian, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lamad.hvp(p.s, (x,), (np.array([1.0, -1.0]),)), expected @ [1.0, -1.0], rtol=1e-12)


def test_api_functions_nest():
    """The Python API differentiates lamad functions that use the AD operators."""
    p = lamad.loads(textwrap.dedent("""\
        def f (x : Tensor) : Real = sum (sin x) * sum (x * x)
        def df (x : Tensor) : Tensor = grad f x
        def hf (x : Tensor) : Tensor = hessian f x
    """))
    x = np.array([0.5, -1.0])
    np.testing.assert_allclose(lamad.jacfwd(p.df)(x), p.hf(x), rtol=1e-13)
    np.testing.assert_allclose(lamad.jacrev(p.df)(x), p.hf(x), rtol=1e-13)
    third = lamad.jacfwd(p.hf)(x)
    fd = np.stack([gradient_difference(p.hf, (x,), (d,)) for d in np.eye(2)], axis=-1).reshape(third.shape)
    np.testing.assert_allclose(third, fd, rtol=1e-6, atol=1e-8)


def _chain(n: int) -> lamad.LoadedProgram:
    """The shared chain x_i = x_(i-1) · x_(i-1), whose naive backward pass is 2^n calls."""
    links = "; ".join(f"x{i} = x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    return lamad.loads(f"def f (x0 : Real) : Real = let {links} in x{n}\n")


SECOND = lamad.loads(textwrap.dedent("""\
    def hvp_at (f : Real -> Real) (x : Real) : Real = hvp f x 1.0
    def grad_grad_at (f : Real -> Real) (x : Real) : Real = grad (grad f) x
"""))


@pytest.mark.parametrize("second", ["hvp_at", "grad_grad_at"])
def test_nested_derivatives_keep_forcing_linear(second):
    """On the shared chain, a second derivative (forward-over-reverse, reverse-over-reverse)
    runs a number of backpropagators proportional to n, where calling them eagerly would
    make 2^n calls: forcing stays linear at every level.  f = x^(2^n), f''(1) = k(k - 1)."""
    runs = {}
    for n in (8, 16):
        f = _chain(n).f
        Stats.reset()
        value = SECOND[second](f, 1.0)
        runs[n] = Stats.backprop_runs
        k = 2 ** n
        assert float(value) == k * (k - 1)
    assert runs[16] <= 2 * runs[8] + 8, runs
    assert runs[16] <= 8 * 16, runs


# ------------------------------------------------------------------ the transform itself

def test_forward_of_the_examples_type_checks_and_prints_back():
    """→D of every definition of every example has type →D(A), and its printed form (raw
    and simplified, Unicode and ASCII) parses back to a term of that type."""
    for path in sorted((ROOT / "examples").glob("*.lam")):
        prog = lamad.load(path)
        for name in prog.types:
            for simplified in (False, True):
                _, ty, term = prog.forward(name, simplified=simplified)
                assert ty == forward_type(prog.types[name]), (path.name, name)
                types = {n: forward_type(t) for n, t in prog.types.items()}
                for ascii in (False, True):
                    assert infer_term(lamad.parse(lamad.pretty(term, ascii=ascii)), types, prog.typed.scope).ty == ty


def test_forward_is_compositional_and_printable():
    """→D of a small term, as docs/differentiation.md writes it: a pair per real, the primal computed as
    before, the tangent by the rules."""
    prog = lamad.loads("def f (x : Real) (y : Real) : Real = exp (x * y)\n")
    _, ty, term = prog.forward("f")
    assert lamad.pretty_type(ty) == "Real × Real → Real × Real → Real × Real"
    assert lamad.pretty(term) == ("λ((x, dx) : Real × Real) ((y, dy) : Real × Real).\n"
                                  "    let z1 = exp (x · y) in (z1, (dx · y + x · dy) · z1)")


def test_nested_operators_are_marked_and_type_check():
    """An AD operator inside a transformed term is marked with the transform (%grad'f is
    grad under →D), prints, parses and type-checks at the transformed type."""
    prog = lamad.loads("def g (x : Real) : Real = grad (\\y. x * y * y) x\n")
    term = prog.typed.terms["g"]
    for transform, type_of, mark in ((forward, forward_type, "%grad'f"), (backprop, None, "%grad'r")):
        target = transform(term)
        text = lamad.pretty(target)
        assert mark in text
        checked = infer_term(lamad.parse(text), {})
        if type_of is not None:
            assert checked.ty == type_of(prog.types["g"])
    marked = infer_term(lamad.parse("%grad'f (\\(x : Real * Real). (sin (fst x), snd x * cos (fst x)))"), {})
    assert marked.ty == forward_type(FunType(REAL, REAL))


# ------------------------------------------------------------------ errors and the command line

@pytest.mark.parametrize("source, message", [
    ("def f = jvp (\\x. x * x) 1.0 (1.0, 2.0)", "the tangent of 'jvp'"),
    ("def f = jvp 1.0 1.0 1.0", "'jvp' differentiates a function"),
    ("def f = hessian (\\(x : Tensor). x) (ones [2])", "'hessian' needs a function from Real or Tensor \\(or records and tuples of them\\) to Real,"),
    ("def f = jacfwd (\\(x : Real * Int). fst x) (1.0, 2)", "'jacfwd' needs a function from Real or Tensor"),
    ("def f = hvp (\\(x : Real). x) 1.0 (ones [2])", "the tangent of 'jvp'"),
])
def test_type_errors(source, message):
    with pytest.raises(lamad.LamTypeError, match=message) as info:
        lamad.loads(source + "\n", filename="e.lam")
    assert str(info.value).startswith("e.lam:1:")


def test_a_tangent_of_the_wrong_shape_is_a_located_runtime_error():
    prog = lamad.loads("def f (x : Tensor) : Tensor = x * x\ndef main = jvp f (ones [3]) (ones [2])\n",
                       filename="t.lam")
    with pytest.raises(lamad.LamRuntimeError, match=r"t\.lam:2:12: .*tangent has shape \(2,\) where the point "
                                                    r"has shape \(3,\)"):
        prog.main


def test_api_tangents_of_the_wrong_shape_are_python_errors():
    p = lamad.loads("def f (x : Tensor) (y : Real) : Tensor = x * y\n")
    with pytest.raises(ValueError, match=r"jvp f: argument 0: the tangent has shape \(2,\) where the point has "
                                         r"shape \(3,\)"):
        lamad.jvp(p.f, (np.ones(3), 2.0), (np.ones(2), 1.0))
    with pytest.raises(TypeError, match="1 primals but 2 tangents"):
        lamad.hvp(p.f, (np.ones(3),), (np.ones(3), 1.0))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lamad.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)


def test_lamad_grad_forward_prints_the_forward_transform(tmp_path):
    out = _cli("grad", "examples/symbolic.lam", "--entry", "f", "--forward")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "-- →D(f) : Real × Real → Real × Real → Real × Real"
    assert [d.name for d in lamad.parse_program(out.stdout).defs] == ["f"]
    assert "dz1 = dx1 - dx2" in out.stdout
    ascii = _cli("grad", "examples/symbolic.lam", "--entry", "f", "--forward", "--ascii", "--raw")
    assert ascii.returncode == 0 and ascii.stdout.startswith("-- JD(f) : Real * Real -> ")
    bad = tmp_path / "bad.lam"
    bad.write_text("def f (x : Real) : Real = x\ndef main = jvp f 1.0 (2.0, 3.0)\n", encoding="utf-8")
    err = _cli("run", str(bad))
    assert err.returncode == 1 and "Traceback" not in err.stderr
    assert err.stderr.startswith(f"{bad}:2:") and "^" in err.stderr
