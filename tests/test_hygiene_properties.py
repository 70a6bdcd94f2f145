"""Hygiene, as a property of generated programs: locals named after primitives (``sin``,
``sum``, ``map``, ``grad``, and the helpers the derivative rules call, ``like``,
``unbroadcast``, ``step`` …) shadow them in the user's code, and the derivatives, whose
rules call the primitives themselves, are still right: ``grad``, ``jvp`` and ``hvp``
equal finite differences, and every derivative term prints (a shadowed primitive as
``%name``) and parses back to an alpha-equivalent term."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamad
from lamad.adtypes import forward_type
from lamad.prims import PRIMITIVES
from lamad.reverse import backprop_type
from lamad.syntax import Ann, alpha_key
from lamad.types import infer_term

from numeric import assert_same_gradient, directional_difference, flat, gradient_difference, like, numeric_gradient
from programs import SHADOWING, differentiable_programs, programs

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_shadowing_names_cover_the_primitives():
    """The generator's shadowing names include every primitive a program may call and the
    private helpers the rules call."""
    assert {n for n, p in PRIMITIVES.items() if p.operator is None} <= set(SHADOWING)
    assert {"like", "step", "count", "unbroadcast", "sin", "sum", "map", "grad"} <= set(SHADOWING)


def test_a_shadowed_builtin_is_not_called_by_its_derivative():
    """Locals named after the primitives that sin's, relu's, sum's and broadcasting's
    rules call (``cos``, ``step``, ``like``, ``unbroadcast``, ``broadcast``) do not change
    the derivatives; the derivative prints the primitives as ``%name`` and parses back."""
    prog = lamad.loads(
        "def f (x : Tensor) (r : Real) : Real =\n"
        "    let cos = x * 2.0; step = r; like = sum cos; unbroadcast = x; broadcast = r in\n"
        "    sum (sin (cos + step) + relu unbroadcast * broadcast) * like\n")
    x, r = np.array([0.3, -0.7, 1.1]), 0.4
    gx, gr = lamad.grad(prog.f, argnums=(0, 1))(x, r)
    assert_same_gradient((gx, gr), numeric_gradient(lambda p: prog.f(*p), (x, r)), where="grad")
    v = (np.array([1.0, 0.5, -2.0]), 0.3)
    _, tangent = lamad.jvp(prog.f, (x, r), v)
    np.testing.assert_allclose(flat(tangent), directional_difference(prog.f, (x, r), v), rtol=1e-6, atol=1e-8)
    _, _, term = prog.forward("f", simplified=False)
    text = lamad.pretty(term)
    assert "%cos" in text and "%step" in text
    assert alpha_key(infer_term(lamad.parse(text), {})) == alpha_key(infer_term(term, {}))


@PROPERTY
@given(differentiable_programs(max_depth=3, names="shadowing"), st.integers(0, 2**32 - 1))
def test_derivatives_of_programs_whose_locals_shadow_builtins_match_finite_differences(sample, seed):
    """Random smooth programs ``f : A -> Real`` every local of which shadows a primitive:
    ``grad`` equals central differences, ``jvp`` the directional difference along a random
    direction, and ``hvp`` the difference of the gradient along it."""
    f = lamad.loads(sample.source).f
    (x,) = sample.point
    rng = np.random.default_rng(seed)
    v = like(x, rng)
    df = lamad.grad(f)
    assert_same_gradient(df(x), numeric_gradient(f, x), rtol=1e-5, atol=1e-6)
    _, tangent = lamad.jvp(f, (x,), (v,))
    np.testing.assert_allclose(flat(tangent), directional_difference(f, (x,), (v,)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flat(lamad.hvp(f, (x,), (v,))), gradient_difference(df, (x,), (v,)),
                               rtol=1e-4, atol=1e-5)


@PROPERTY
@given(programs(max_depth=3, names="shadowing"))
def test_derivative_terms_of_shadowing_programs_print_and_parse_back(sample):
    """For random programs every local of which shadows a primitive: each definition and
    its ←D and →D, raw and simplified, printed (Unicode and ASCII) and parsed again, is
    alpha-equivalent to the term, of the same type, and checks at the transformed type of
    the definition's."""
    prog = lamad.loads(sample.source)
    for name, term in prog.typed.terms.items():
        checked = infer_term(term, dict(prog.types))
        for ascii in (False, True):
            again = infer_term(lamad.parse(lamad.pretty(term, ascii=ascii)), dict(prog.types))
            assert alpha_key(again) == alpha_key(checked)
        for mode, type_of in ((prog.backprop, backprop_type), (prog.forward, forward_type)):
            types = {n: type_of(t) for n, t in prog.types.items()}
            for simplified in (False, True):
                _, _, derivative = mode(name, simplified=simplified)
                checked = infer_term(derivative, types)
                for ascii in (False, True):
                    text = lamad.pretty(derivative, ascii=ascii)
                    parsed = lamad.parse(text)
                    again = infer_term(parsed, types)
                    assert again.ty == checked.ty, f"{text}\nparsed: {again.ty}; checked: {checked.ty}"
                    assert alpha_key(again) == alpha_key(checked), text
                    infer_term(Ann(parsed, type_of(prog.types[name])), types)  # at the transformed type
