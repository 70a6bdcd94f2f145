"""The reverse-mode transform ←D (SPEC §3, §4; issue 3): its results type-check at ←D(A),
its gradients are the published numbers of the seeds and agree with central finite
differences (float64) for every differentiable builtin and for programs with
higher-order functions, lists, ``map``, ``fold`` and ``if``; the efficiency theorem is
checked by counting backpropagator runs, and the errors of ``grad`` are located."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import lamad

# ------------------------------------------------------------------ finite differences

STEP = 1e-6


def _leaves(x: Any) -> list:
    """The real leaves of a point (floats, arrays) in order; ints and bools are discrete."""
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in _leaves(item)]
    if isinstance(x, (bool, int, np.integer)):
        return []
    return [np.array(x, dtype=np.float64)]


def _rebuild(like: Any, leaves: list) -> Any:
    """``like`` with its real leaves replaced, in order, by ``leaves`` (consumed)."""
    if isinstance(like, tuple):
        return tuple(_rebuild(item, leaves) for item in like)
    if isinstance(like, list):
        return [_rebuild(item, leaves) for item in like]
    if isinstance(like, (bool, int, np.integer)):
        return like
    leaf = leaves.pop(0)
    return float(leaf) if isinstance(like, float) else leaf


def numeric_gradient(f: Callable[[Any], Any], x: Any, step: float = STEP) -> Any:
    """Central differences ``(f(x + h e) - f(x - h e)) / 2h`` for every real component of
    the point ``x``, in the structure of lamad's cotangent of ``x`` (``()`` for discrete
    leaves)."""
    leaves = _leaves(x)
    grads = []
    for i, leaf in enumerate(leaves):
        g = np.zeros_like(leaf)
        for index in np.ndindex(leaf.shape):
            values = []
            for sign in (1, -1):
                moved = [l.copy() for l in leaves]
                moved[i][index] += sign * step
                values.append(float(f(_rebuild(x, moved))))
            g[index] = (values[0] - values[1]) / (2 * step)
        grads.append(g)
    return _cotangent(x, grads)


def _cotangent(like: Any, grads: list) -> Any:
    if isinstance(like, tuple):
        return tuple(_cotangent(item, grads) for item in like)
    if isinstance(like, list):
        return [_cotangent(item, grads) for item in like]
    if isinstance(like, (bool, int, np.integer)):
        return ()
    return grads.pop(0)


def assert_same_gradient(got: Any, want: Any, rtol: float = 1e-6, atol: float = 1e-6, where: str = "gradient"):
    """Structural comparison of two cotangents: tuples and lists item by item, leaves
    elementwise with equal shapes (a Real's cotangent is 0-d)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_gradient(g, w, rtol, atol, f"{where}[{i}]")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_gradient(g, w, rtol, atol, f"{where}[{i}]")
    else:
        got, want = np.asarray(got), np.asarray(want)
        assert got.shape == want.shape, f"{where}: shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=where)


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
    # and through the Python API
    with pytest.raises(lamad.LamRuntimeError, match="needs a scalar result"):
        lamad.grad(prog.vector)(np.ones(3))
