"""Normal forms before ←D (lamad/normalize.py; docs/differentiation.md, "Normal forms"):
``lamad grad --normalize`` and the REPL's ``:grad`` inline and β-reduce higher-order code,
so that the symbolic backward pass sees straight-line code, and compute the same gradients."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, event, given, settings

import lamad
from lamad.adtypes import backprop_type
from lamad.api import from_python
from lamad.driver import derivative
from lamad.normalize import normalize
from lamad.repl import Repl
from lamad.syntax import Ann, App, Lam, Let, PVar, Term, Var, subterms
from lamad.types import infer_term

from programs import differentiable_programs
from test_cli import ROOT
from test_reduce import run_lamad
from test_simplify import _leaves, run_dual

HIGHER_ORDER = ROOT / "examples" / "higher_order.lam"


def function(t: Term) -> bool:
    while isinstance(t, Ann):
        t = t.term
    return isinstance(t, Lam)


def higher_order_redexes(t: Term) -> list[Term]:
    """The λ-applications and the let-bound functions left in ``t``."""
    return [n for n in subterms(t) if (isinstance(n, App) and function(n.fn))
            or (isinstance(n, Let) and isinstance(n.pattern, PVar) and function(n.bound))]


def test_grad_normalize_prints_x4_as_straight_line_backpropagation():
    plain = run_lamad("grad", str(HIGHER_ORDER), "--entry", "fourth")
    normal = run_lamad("grad", str(HIGHER_ORDER), "--entry", "fourth", "--normalize")
    assert plain.returncode == normal.returncode == 0, normal.stderr
    assert "sq" in plain.stdout and "sq" not in normal.stdout
    assert normal.stdout.count("λ") == 2  # the function's and its backpropagator's
    prog = lamad.load(HIGHER_ORDER)
    source = normalize(prog.typed.terms["fourth"], prog.typed.terms)
    assert source is not None and not higher_order_redexes(source)
    _, term = derivative(prog.typed.terms["fourth"], normalized=prog.typed.terms)
    checked = infer_term(term, {n: backprop_type(t) for n, t in prog.types.items()})
    y, g = run_dual(prog, checked, prog.types["fourth"], 1.5)
    assert (float(y), float(g)) == (1.5 ** 4, 4 * 1.5 ** 3)


def test_definitions_are_unfolded_where_applied():
    """``twice (compose inc double)``: every function a definition, none left."""
    prog = lamad.loads("def compose (f : Real -> Real) (g : Real -> Real) : Real -> Real = \\x. f (g x)\n"
                       "def twice (f : Real -> Real) : Real -> Real = compose f f\n"
                       "def inc (x : Real) : Real = x + 1\n"
                       "def h (x : Real) : Real = twice (compose inc sin) x\n")
    source = normalize(prog.typed.terms["h"], prog.typed.terms)
    assert source is not None and not higher_order_redexes(source)
    assert not {"compose", "twice", "inc"} & {n.name for n in subterms(source) if isinstance(n, Var)}


def repl_output(*inputs: str) -> str:
    out = io.StringIO()
    repl = Repl(out=out)
    for text in inputs:
        assert repl.execute(text)
    return out.getvalue()


def below_head(printed: str) -> str:
    """A derivative printed, without its head (which shows the term differentiated)."""
    return printed.split("\n", 1)[1]


def test_repl_grad_normalizes_by_default_and_normalize_off_shows_the_plain_transform():
    term = ":grad \\(x : Real). let sq = \\z. z * z in sq (sq x)"
    normal, _, plain = repl_output(term, ":normalize off", term).partition("normalize off\n")
    assert "sq" not in below_head(normal) and "sq" in below_head(plain)


def test_a_normal_form_over_the_budget_falls_back_to_the_plain_transform():
    """f_k = f_(k-1) ∘ f_(k-1): the normal form has 2^16 copies of f_0's body."""
    lets = "; ".join(f"f{k} = \\x. f{k - 1} (f{k - 1} x)" for k in range(1, 17))
    text = f"\\(x : Real). let f0 = \\x. x * x; {lets} in f16 x"
    prog = lamad.loads("")
    assert normalize(prog.check(lamad.parse_term(text))) is None
    assert "f16" in repl_output(f":grad {text}")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(differentiable_programs(smooth=False))
def test_normalized_derivatives_compute_what_the_plain_ones_do(sample):
    """On a generated program the normal form has no higher-order redex left (or is over
    the budget), and its simplified ←D type-checks and computes the plain ←D's value and
    gradient at a random point."""
    prog = lamad.loads(sample.source)
    fty = prog.types["f"]
    source = normalize(prog.typed.terms["f"], prog.typed.terms)
    event("over the budget" if source is None else "normalized")
    if source is not None:
        assert not higher_order_redexes(source)
    types = {n: backprop_type(t) for n, t in prog.types.items()}
    plain_ty, plain = derivative(prog.typed.terms["f"])
    ty, normal = derivative(prog.typed.terms["f"], normalized=prog.typed.terms)
    checked = infer_term(normal, types)
    assert ty == plain_ty == checked.ty
    (x,) = sample.point
    point = from_python(x, fty.dom, prog.backend)
    expected = _leaves(run_dual(prog, infer_term(plain, types), fty, point))
    got = _leaves(run_dual(prog, checked, fty, point))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
