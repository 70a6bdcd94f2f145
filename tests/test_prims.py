"""Every primitive checked from its record (:mod:`lamad.prims`), with no test written for
it: the record's ``example`` — an application over real arguments ``x1 … xk`` of given
shapes — is compiled, and at a random point its tangent rule (→D, ``lamad.jvp``) is
compared with central finite differences (float64), its transposed rule (←D,
``lamad.vjp``) with the tangent rule (⟨J·dx, ct⟩ = ⟨dx, Jᵀ·ct⟩), the gradient of
⟨f x, c⟩ (``lamad.grad``) with finite differences, and a constant derivative with zero.
A primitive that takes a Real or a Tensor (``F`` in its scheme) is checked again with
Reals there.  A differentiable primitive added without an example fails here, and so
does a record whose rules do not match its arguments.

The checks of values run on every array backend installed (:data:`BACKENDS`):
NumPy, array-api-strict (the array-API standard and nothing more, so a primitive that
calls anything else fails there), Dask, and PyTorch and JAX where they are installed."""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lamad
from lamad.backend import available
from lamad.adtypes import forward_type
from lamad.forward import forward
from lamad.prims import PRIMITIVES, Positive, Primitive
from lamad.prims.base import F
from lamad.reverse import backprop, backprop_type
from lamad.syntax import INT, REAL, TENSOR, FunType, ListType, Prim, Type, children
from lamad.types import infer_term

from numeric import assert_same_gradient, host, directional_difference, flat, like, numeric_gradient

ROOT = Path(__file__).resolve().parent.parent
DIFFERENTIABLE = ("rules", "special", "constant")
"""The kinds of derivative that the transforms take from a record (rules or zero)."""
EXAMPLES = [p for p in PRIMITIVES.values() if p.example is not None]
CASES = [(p.name, False) for p in EXAMPLES] + [(p.name, True) for p in EXAMPLES if F in p.params]
"""Each example as written, and with Reals for the arguments of type ``F`` where there are some."""
CASE_IDS = [name + (":real" if reals else "") for name, reals in CASES]
UNLIKE_VALUE = {"stop_gradient"}
"""The primitives whose derivative is, by definition, not that of their value (zero for
``stop_gradient``, the identity): finite differences do not apply to them, and
:func:`test_constant_derivative_is_zero` checks them."""
VALUE_CASES = [(name, reals) for name, reals in CASES if name not in UNLIKE_VALUE]
VALUE_IDS = [name + (":real" if reals else "") for name, reals in VALUE_CASES]
BACKENDS = [b for b in ("numpy", "array-api-strict", "dask", "torch", "jax") if available(b)]
"""The backends the values are checked on: each one installed here."""


def _on_backends(cases: list[tuple[str, bool]], ids: list[str]):
    """Parametrize a test by ``name, reals`` of ``cases`` and by ``backend``."""
    return pytest.mark.parametrize("name, reals, backend", [c + (b,) for b in BACKENDS for c in cases],
                                   ids=[f"{i}-{b}" for b in BACKENDS for i in ids])


def _ids(prims: list[Primitive]) -> list[str]:
    return [p.name for p in prims]


# ------------------------------------------------------------------ an example, compiled


def _pairing(t: Type, y: str, c: str) -> tuple[str, str]:
    """The type of a cotangent of a result of type ``t``, and ⟨y, c⟩ written in lamad."""
    if t == REAL:
        return "Real", f"{y} * {c}"
    if t == TENSOR:
        return "Tensor", f"sum ({y} * {c})"
    if isinstance(t, ListType) and t.elem in (REAL, TENSOR):
        elem, inner = _pairing(t.elem, "u", "v")
        return (f"List {elem}",
                f"fold (\\(acc : Real) ((u, v) : {elem} * {elem}). acc + {inner}) 0.0 (zip ({y}) {c})")
    raise AssertionError(f"no pairing for results of type {t}")


@dataclass(frozen=True)
class Example:
    """A record's example as lamad functions: ``f x1 … xk`` (the application) and
    ``loss x1 … xk c = ⟨f x1 … xk, c⟩``, a point, a direction at it and a cotangent of
    the result."""

    prim: Primitive
    program: lamad.LoadedProgram
    point: tuple
    direction: tuple
    cotangent: Any

    @property
    def f(self) -> lamad.Function:
        return self.program.f

    @property
    def term(self):
        return self.program.typed.terms["f"]


@functools.cache
def example(name: str, reals: bool = False, backend: str = "numpy") -> Example:
    """The example of the primitive ``name`` — with Reals for its arguments of type ``F``
    if ``reals`` — compiled once on ``backend``; its random numbers are drawn from a seed
    of the name (so each run checks the same point, on every backend)."""
    prim = PRIMITIVES[name]
    body, shapes = prim.example
    if reals:
        shapes = tuple((Positive(()) if isinstance(s, Positive) else ()) if param == F else s
                       for s, param in zip(shapes, prim.params))
    params = "".join(f" (x{i + 1} : {'Real' if s == () else 'Tensor'})" for i, s in enumerate(shapes))
    names = " ".join(f"x{i + 1}" for i in range(len(shapes)))
    base = ROOT / "examples"
    result = lamad.loads(f"def f{params} = {body}\n", base_dir=base, backend=backend).types["f"]
    for _ in shapes:
        assert isinstance(result, FunType)
        result = result.cod
    cotangent_type, pairing = _pairing(result, f"f {names}", "c")
    program = lamad.loads(f"def f{params} = {body}\n"
                          f"def loss{params} (c : {cotangent_type}) : Real = {pairing}\n", base_dir=base,
                          backend=backend)
    rng = np.random.default_rng(zlib.crc32(name.encode()) + reals)
    point = []
    for s in shapes:
        if isinstance(s, Positive):
            value = rng.uniform(0.5, 2.0, size=s.shape)
            point.append(float(value) if s.shape == () else value)
        else:
            value = rng.standard_normal(s)
            point.append(float(value) if s == () else value)
    point = tuple(point)
    direction = tuple(like(x, rng) for x in point)
    return Example(prim, program, point, direction, like(host(program.f(*point)), rng))


def _applies(term, name: str) -> bool:
    """Whether the primitive ``name`` occurs in ``term``."""
    stack = [term]
    while stack:
        t = stack.pop()
        if isinstance(t, Prim) and t.op == name:
            return True
        stack.extend(children(t))
    return False


# ------------------------------------------------------------------ the records' fields


def test_every_differentiable_primitive_has_an_example():
    """A primitive whose derivative the transforms take from its record (rules, a special
    rule, zero) has an example, so that the checks below reach it."""
    missing = [n for n, p in PRIMITIVES.items() if p.derivative in DIFFERENTIABLE and p.example is None]
    assert not missing, f"no example for {missing}"


@pytest.mark.parametrize("prim", list(PRIMITIVES.values()), ids=_ids(list(PRIMITIVES.values())))
def test_rules_are_one_per_argument(prim):
    """``"rules"``: one tangent and one transposed rule per argument, none for an argument
    that holds no reals (an axis, a shape) and both present or both absent; ``"special"``:
    one of each for the whole application; any other kind: none."""
    if prim.derivative == "rules":
        assert len(prim.jvp) == len(prim.vjp) == prim.arity
        assert len(prim.jvp_terms) == len(prim.vjp_terms) == prim.arity
        for i, (param, jvp, vjp) in enumerate(zip(prim.params, prim.jvp, prim.vjp)):
            assert (jvp is None) == (vjp is None), f"argument {i + 1}: a rule in one mode only"
            if param in (INT, ListType(INT)):
                assert jvp is None, f"argument {i + 1} ({param}) holds no reals but has a rule"
    elif prim.derivative == "special":
        assert len(prim.jvp) == len(prim.vjp) == 1 and None not in prim.jvp + prim.vjp
    else:
        assert prim.jvp == prim.vjp == ()


@pytest.mark.parametrize("name, reals", CASES, ids=CASE_IDS)
def test_example_applies_its_primitive(name, reals):
    """The example is an application of its own primitive, over arguments of the shapes
    it states, and its transforms type-check at →D and ←D of its type."""
    ex = example(name, reals)
    prim = ex.prim
    assert _applies(ex.term, prim.name), f"{prim.example[0]!r} does not apply {prim.name}"
    assert len(ex.point) == len(prim.example[1])
    ty = ex.program.types["f"]
    assert infer_term(forward(ex.term), {}).ty == forward_type(ty)
    assert infer_term(backprop(ex.term), {}).ty == backprop_type(ty)


# ------------------------------------------------------------------ the rules against finite differences


@_on_backends(VALUE_CASES, VALUE_IDS)
def test_tangent_rule_matches_finite_differences(name, reals, backend):
    """jvp of the example at a random point along a random direction: the primal is the
    value, and the tangent the central finite difference."""
    ex = example(name, reals, backend)
    y, tangent = lamad.jvp(ex.f, ex.point, ex.direction)
    np.testing.assert_allclose(flat(y), flat(ex.f(*ex.point)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(flat(tangent), directional_difference(ex.f, ex.point, ex.direction),
                               rtol=1e-6, atol=1e-8)


@_on_backends(CASES, CASE_IDS)
def test_transposed_rule_is_the_transpose_of_the_tangent_rule(name, reals, backend):
    """⟨jvp dx, ct⟩ = ⟨dx, vjp ct⟩ for a random tangent ``dx`` and cotangent ``ct``."""
    ex = example(name, reals, backend)
    _, tangent = lamad.jvp(ex.f, ex.point, ex.direction)
    y, pullback = lamad.vjp(ex.f, *ex.point)
    np.testing.assert_allclose(flat(y), flat(ex.f(*ex.point)), rtol=1e-12, atol=1e-14)
    back = pullback(ex.cotangent)
    back = back if len(ex.point) > 1 else (back,)
    lhs, rhs = flat(tangent) @ flat(ex.cotangent), flat(ex.direction) @ flat(back)
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-12), (lhs, rhs)


@_on_backends(VALUE_CASES, VALUE_IDS)
def test_gradient_matches_finite_differences(name, reals, backend):
    """The gradient of ``loss x1 … xk c = ⟨f x1 … xk, c⟩`` in every argument (the
    transposed rule applied to ``c``) equals central differences component by component."""
    ex = example(name, reals, backend)
    prim = ex.prim
    k = len(ex.point)
    grads = lamad.grad(ex.program.loss, argnums=tuple(range(k)))(*ex.point, ex.cotangent)
    for i, got in enumerate(grads):
        def loss(x, i=i):
            return ex.program.loss(*ex.point[:i], x, *ex.point[i + 1:], ex.cotangent)
        assert_same_gradient(got, numeric_gradient(loss, ex.point[i]), where=f"{prim.example[0]}: ∂x{i + 1}")


CONSTANTS = [(name, reals) for name, reals in CASES if PRIMITIVES[name].derivative == "constant"]
CONSTANT_IDS = [name + (":real" if reals else "") for name, reals in CONSTANTS]


@_on_backends(CONSTANTS, CONSTANT_IDS)
def test_constant_derivative_is_zero(name, reals, backend):
    """A primitive with a constant derivative has a zero tangent and a zero gradient,
    whatever the direction and the cotangent."""
    ex = example(name, reals, backend)
    _, tangent = lamad.jvp(ex.f, ex.point, ex.direction)
    assert not flat(tangent).any()
    grads = lamad.grad(ex.program.loss, argnums=tuple(range(len(ex.point))))(*ex.point, ex.cotangent)
    assert not flat(grads).any()
