"""The printer and the simplifier (docs/differentiation.md, "Reading derivative
programs"): golden derivative programs, sizes, and the simplified terms checked against
the raw ones by type and by value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import lamad
from lamad.api import from_python
from lamad.autodiff import collector, lift, wrapper
from lamad.deep import deep
from lamad.eval import compile_term
from lamad.gradient import force
from lamad.reverse import backprop, backprop_type
import lamad.simplify as simplify_module
from lamad.simplify import simplify
from lamad.syntax import (
    App, DAdd, FunType, Lam, LinLam, Prim, Term, alpha_key, free_variables, let_chain, size, term_names,
)
from lamad.types import infer_term

from programs import differentiable_programs, programs

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


def dual(prog: lamad.LoadedProgram, name: str, simplified: bool) -> tuple[Term, Term]:
    """←D of a definition, raw or simplified, and its elaborated (type-checked) form."""
    source = prog.typed.terms[name]
    term = backprop(source)
    if simplified:
        term = simplify(term, keep=term_names(source))
    types = {n: backprop_type(t) for n, t in prog.types.items()}
    return term, infer_term(term, types)


def assert_simplified_keeps_type(prog: lamad.LoadedProgram, name: str) -> None:
    """←D of a definition, simplified, checks to the type it checks to raw."""
    _, raw = dual(prog, name, simplified=False)
    _, simple = dual(prog, name, simplified=True)
    assert simple.ty == raw.ty


def run_dual(prog: lamad.LoadedProgram, checked: Term, fty: FunType, x):
    """Evaluate a ←D(f) term as lamad's grad does: wrap the input, force, collect."""
    (y, y_bp), gradient = run_dual_outputs(prog, checked, fty, x)
    return y, gradient(y_bp, prog.backend.scalar(1.0))


def run_dual_outputs(prog: lamad.LoadedProgram, checked: Term, fty: FunType, x):
    """←D(f) applied to the wrapped input ``x``, and the gradient with respect to ``x`` that
    a backpropagator of its result sends back from a cotangent."""
    free = list(free_variables(checked))
    code = compile_term(checked, prog.runtime, prog.value, free)
    f = code(*[lift(prog.value(n), prog.types[n], prog.runtime) for n in free])
    inputs: list = []
    result = f(wrapper(fty.dom)(x, inputs))
    return result, lambda bp, cotangent: collector(fty.dom)(x, force(bp(cotangent)), iter(inputs), np)


# ------------------------------------------------------------------ the example of docs/differentiation.md

SIN = "def f (p : Real * Real) : Real = let (x1, x2) = p in sin ((x1 - x2) * (x1 - x2))"


def test_documented_example_is_one_binding_per_primitive_and_backward_step():
    prog = lamad.loads(SIN)
    term, checked = dual(prog, "f", simplified=True)
    assert str(checked.ty) == "(Real * ~Real) * (Real * ~Real) -> Real * ~Real"
    lam = term
    assert isinstance(lam, Lam)
    forward, result = let_chain(lam.body)
    # z1 = x1 - x2; z2 = z1 * z1: one binding per primitive of the source but sin (in the result)
    assert [b.bound.op for b in forward] == ["sub", "mul"]
    value, backprop_fn = result.items
    assert isinstance(value, Prim) and value.op == "sin"
    assert isinstance(backprop_fn, LinLam)
    backward, sends = let_chain(backprop_fn.body)
    # b = a * cos z2; c = z1 * b + z1 * b: one binding per backward step
    assert len(backward) == 2
    assert lamad.pretty(backward[0].bound, ascii=True) in ("a * cos z2", "cos z2 * a")
    # each input backpropagator receives exactly one cotangent: c and -c
    targets = [s.fn.name for s in _summands(sends)]
    assert sorted(targets) == ["x1'", "x2'"]
    # no subterm is computed twice: all bound terms are distinct up to renaming
    keys = [alpha_key(b.bound) for b in forward + backward]
    assert len(set(keys)) == len(keys)


def _summands(t):
    if isinstance(t, DAdd):
        yield from _summands(t.left)
        yield from _summands(t.right)
    else:
        assert isinstance(t, App)
        yield t


def test_documented_example_gradient_values():
    prog = lamad.loads(SIN)
    fty = prog.types["f"]
    for x1, x2 in [(1.5, 0.5), (-0.3, 2.0), (0.0, 0.0)]:
        _, checked = dual(prog, "f", simplified=True)
        y, (g1, g2) = run_dual(prog, checked, fty, (np.float64(x1), np.float64(x2)))
        d = x1 - x2
        assert y == pytest.approx(np.sin(d * d))
        assert g1 == pytest.approx(2 * d * np.cos(d * d))
        assert g2 == pytest.approx(-2 * d * np.cos(d * d))


# ------------------------------------------------------------------ sizes


def chain(n: int) -> str:
    lets = "; ".join(f"x{i} = sin x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    return f"def f (x0 : Real) : Real = let {lets} in x{n}"


def tree(depth: int) -> str:
    """A balanced expression tree of additions and products over one variable."""
    def build(d: int) -> str:
        if d == 0:
            return "x"
        return f"({build(d - 1)} * sin ({build(d - 1)}))" if d % 2 else f"({build(d - 1)} + {build(d - 1)})"
    return f"def f (x : Real) : Real = {build(depth)}"


def test_simplified_gradient_of_a_chain_is_linear_in_its_length():
    sizes = {}
    for n in (10, 20, 40, 80):
        prog = lamad.loads(chain(n))
        sizes[n] = size(dual(prog, "f", simplified=True)[0])
    per_link = [(sizes[n] - sizes[10]) / (n - 10) for n in (20, 40, 80)]
    assert max(per_link) - min(per_link) <= 1e-9, sizes  # exactly affine in n
    assert per_link[0] <= 30, sizes  # the constant (docs/differentiation.md reports it)


def test_simplified_gradient_of_a_tree_is_linear_in_its_size():
    ratios = []
    for depth in (2, 4, 6):
        prog = lamad.loads(tree(depth))
        source_size = size(prog.typed.terms["f"])
        ratios.append(size(dual(prog, "f", simplified=True)[0]) / source_size)
    assert max(ratios) <= 12 and ratios[-1] <= ratios[0] * 1.5, ratios


def test_simplification_preserves_gradients_of_chains_and_trees():
    for src, x in [(chain(15), 0.7), (tree(4), 0.3)]:
        prog = lamad.loads(src)
        fty = prog.types["f"]
        raw = run_dual(prog, dual(prog, "f", simplified=False)[1], fty, np.float64(x))
        simple = run_dual(prog, dual(prog, "f", simplified=True)[1], fty, np.float64(x))
        assert raw[0] == pytest.approx(simple[0], rel=1e-12)
        assert raw[1] == pytest.approx(simple[1], rel=1e-12)


def long_chain(n: int, tensor: bool = False) -> str:
    """The straight-line program of benchmarks/simplify_chain.py, one binding a line:
    ``x_i = sin x_(i-1) * x_(i-1) + x_(i-1)``; the Tensor variant sums the last link."""
    lines = [f"def f (x0 : {'Tensor' if tensor else 'Real'}) : Real ="]
    lines += [f"  {'let' if i == 1 else '   '} x{i} = sin x{i - 1} * x{i - 1} + x{i - 1}{';' if i < n else ''}"
              for i in range(1, n + 1)]
    return "\n".join(lines + [f"  in sum x{n}" if tensor else f"  in x{n}"]) + "\n"


def simplifier_work(n: int, tensor: bool = False) -> tuple[int, int]:
    """How many Python calls (of functions and of builtins) the simplifier makes on ←D of
    the long chain of ``n`` links, and in how many rounds over the term: a measure of its
    work that does not depend on the machine's speed or load."""
    prog = lamad.loads(long_chain(n, tensor))
    source = prog.typed.terms["f"]
    raw, keep = backprop(source), term_names(source)
    calls = rounds = 0

    def count(frame, event, arg) -> None:
        nonlocal calls, rounds
        calls += 1
        rounds += event == "call" and frame.f_code is simplify_module._Simplifier.round.__code__

    sys.setprofile(count)
    try:
        simplify(raw, keep=keep)
    finally:
        sys.setprofile(None)
    return calls, rounds


@pytest.mark.parametrize("tensor", [False, True], ids=["Real", "Tensor"])
def test_simplifier_work_is_linear_in_the_length_of_a_straight_line_program(tensor):
    (small, rounds), (large, more_rounds) = simplifier_work(40, tensor), simplifier_work(80, tensor)
    assert large / small < 2.02, (small, large)  # twice the links, twice the calls
    # as many rounds (each linear in the term) whatever the length: two to share, one to
    # run the backward pass, none to confirm that nothing changes
    assert rounds == more_rounds == 3


def test_simplified_derivative_of_a_long_chain_computes_what_the_raw_one_does():
    prog = lamad.loads(long_chain(400))
    fty = prog.types["f"]
    term, checked = deep(dual)(prog, "f", simplified=True)
    assert size(term) < size(deep(dual)(prog, "f", simplified=False)[0])
    for x in (-0.5, 0.3):
        raw = deep(run_dual)(prog, deep(dual)(prog, "f", simplified=False)[1], fty, np.float64(x))
        simple = deep(run_dual)(prog, checked, fty, np.float64(x))
        assert simple[0] == pytest.approx(raw[0], rel=1e-12)
        assert simple[1] == pytest.approx(raw[1], rel=1e-9)
        assert simple[1] != 0


def simplified_terms(sources: list[str]) -> list[str]:
    """The simplified ←D of every definition of the programs, printed."""
    out = []
    for src in sources:
        prog = lamad.loads(src)
        for name in prog.types:
            try:
                out.append(lamad.pretty(deep(dual)(prog, name, simplified=True)[0]))
            except (lamad.LamError, ValueError) as e:
                out.append(str(e))
    return out


def test_a_round_that_leaves_nothing_to_do_is_the_last():
    """The simplifier stops after a round that made no change that could let a rule apply
    again, without a round to confirm it: one more round of either phase changes nothing."""
    sources = [long_chain(30), long_chain(30, tensor=True), chain(12), tree(4)]
    sources += [path.read_text() for path in sorted((ROOT / "examples").glob("*.lam"))]
    for source in sources:
        prog = lamad.loads(source)
        for name, term in prog.typed.terms.items():
            try:
                raw = backprop(term)
            except lamad.LamError:
                continue  # nested differentiation
            s = simplify_module._Simplifier(term_names(term))
            shared = s.fixpoint(raw, backward=False)
            assert alpha_key(s.round(shared)) == alpha_key(shared), (name, "sharing")
            done = s.fixpoint(shared, backward=True)
            assert alpha_key(s.round(done)) == alpha_key(done), (name, "backward")


def test_names_bound_twice_are_renamed_apart_and_shown_as_written():
    """``x`` bound by two lambdas, a lambda's ``w`` also a definition's name, and an ``x``
    that shadows another: the simplifier renames binders apart (its census needs a name to
    stand for one binding), and the printed derivative shows the user's names again."""
    prog = lamad.loads("def w : Real = 2.0\n"
                       "def f (p : Real) : Real =\n"
                       "    iterate 2 (\\(x : Real). x * w) p + iterate 2 (\\(x : Real). x * x) p\n"
                       "    + iterate 1 (\\(w : Real). w * p) p\n"
                       "def g (p : Real) : Real = let x = p * p in iterate 1 (\\(x : Real). x * p) x + x\n")
    for name in ("f", "g"):
        text = lamad.pretty(dual(prog, name, simplified=True)[0])
        assert text.count("λ((x, x') : Real × Real⊥)") == (2 if name == "f" else 1), text
        assert ("λ((w, w') : Real × Real⊥)" in text) == (name == "f") and "_1" not in text, text
    _simplified_agrees("def f (p : Real) : Real = let x = p * p in iterate 1 (\\(x : Real). x * p) x + x",
                       np.float64(1.5))


def test_a_name_renamed_apart_is_not_shown_as_written_where_that_would_capture():
    """``let x = p; x_1 = p in x + x_1``, ``x_1`` a renamed ``x``: shown as ``x`` it would
    capture the ``x`` used in its scope, so it keeps its new name; alone, it may."""
    def shown(body: str) -> str:
        term = lamad.parse_term(f"\\(p : Real). let x = p in let x_1 = p in {body}")
        return lamad.pretty(simplify_module._Renamer({"p", "x", "x_1"}, {"x_1": "x"}, term).term(term))
    assert shown("x + x_1") == "λ(p : Real). let x = p; x_1 = p in x + x_1"
    assert shown("x_1 + x_1") == "λ(p : Real). let x = p; x = p in x + x"


# ------------------------------------------------------------------ golden files


def example_definitions():
    out = []
    for path in sorted((ROOT / "examples").glob("*.lam")):
        prog = lamad.load(path)
        for name in prog.types:
            out.append((path, name))
    return out


def render(path: Path) -> str:
    """What lamad prints for an example: the program in lamad's layout, then the simplified
    ←D of each definition that ←D accepts."""
    prog = lamad.load(path)
    parts = [lamad.pretty(prog.typed.program)]
    for name in prog.types:
        try:
            _, ty, term = prog.backprop(name)
        except lamad.LamError as e:
            parts.append(f"-- ←D({name}): {e.message}\n")
            continue
        parts.append(f"-- ←D({name}) : {lamad.pretty_type(ty)}\n{lamad.pretty(term)}\n")
    return "\n".join(parts)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.lam")), ids=lambda p: p.name)
def test_golden(path):
    """The printed output of every example matches its checked-in golden file (regenerate
    with LAMAD_REGENERATE=1 after an intended change, and review the diff)."""
    text = render(path)
    golden = GOLDEN / (path.stem + ".txt")
    if os.environ.get("LAMAD_REGENERATE"):
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file for {path.name}: run with LAMAD_REGENERATE=1"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.lam")), ids=lambda p: p.name)
def test_printed_examples_reparse_to_the_same_program(path):
    prog = lamad.load(path)
    for ascii in (False, True):
        printed = lamad.pretty(prog.typed.program, ascii=ascii)
        again = lamad.parse_program(printed)
        assert [alpha_key(d.body) for d in again.defs] == [alpha_key(d.body) for d in prog.typed.program.defs]
        assert lamad.loads(printed, base_dir=path.parent).types == prog.types


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.lam")), ids=lambda p: p.name)
def test_printed_derivatives_reparse_and_type_check(path):
    prog = lamad.load(path)
    types = {n: backprop_type(t) for n, t in prog.types.items()}
    for name in prog.types:
        try:
            raw = backprop(prog.typed.terms[name])
        except lamad.LamError:
            continue  # nested differentiation: not supported yet
        for term in (raw, simplify(raw, keep=term_names(prog.typed.terms[name]))):
            for ascii in (False, True):
                again = infer_term(lamad.parse_term(lamad.pretty(term, ascii=ascii)), types, prog.typed.scope)
                checked = infer_term(term, types, prog.typed.scope)
                assert alpha_key(again) == alpha_key(checked)
                assert str(again.ty) == str(checked.ty)


def test_lamad_grad_prints_simplified_unless_raw():
    def grad(*flags):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run([sys.executable, "-m", "lamad.cli", "grad", "examples/symbolic.lam", "--entry", "f", *flags],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    simple, raw = grad(), grad("--raw")
    assert simple.returncode == 0 and raw.returncode == 0, simple.stderr + raw.stderr
    assert simple.stdout.splitlines()[0] == raw.stdout.splitlines()[0] == \
        "-- ←D(f) : Real × Real⊥ → Real × Real⊥ → Real × Real⊥"
    assert simple.stdout.count("⊸") == 1 < raw.stdout.count("⊸")  # the backward pass run: one backpropagator left
    assert len(simple.stdout) < len(raw.stdout)
    for out in (simple.stdout, raw.stdout):
        program = lamad.parse_program(out)
        assert [d.name for d in program.defs] == ["f"]
    ascii = grad("--ascii")
    assert ascii.returncode == 0 and "-o" in ascii.stdout and "⊸" not in ascii.stdout


def test_splitting_a_pair_keeps_the_rest_of_a_chain_that_shadows_it():
    """Refining ``v`` into ``(v, v')`` when a later binding of the chain shadows ``v``
    kept the wrong number of bindings after it (found by the generated programs)."""
    prog = lamad.loads("def f (p : Real * Int) : Real =\n"
                       "    let (v, _) = p in sum (iterate 0 (\\(v : Tensor). fill 0.5 [1]) (fill v [1]))")
    fty = prog.types["f"]
    _, simple = dual(prog, "f", simplified=True)
    y, (gv, gn) = run_dual(prog, simple, fty, (np.float64(2.0), 1))
    assert (float(y), float(gv), gn) == (2.0, 1.0, ())


def test_splitting_a_pair_into_its_own_name_gives_distinct_names():
    """``let (_, x) = x`` makes ``x`` the name of the second component: the first one
    needs another (it was ``x`` too, a pattern binding ``x`` twice)."""
    prog = lamad.loads("def f (p : Real * (Real * Int)) : Real =\n"
                       "    let x = p in let (_, x) = x in let (_, x) = x in real x")
    fty = prog.types["f"]
    _, simple = dual(prog, "f", simplified=True)  # type-checks
    y, (g0, (g1, g2)) = run_dual(prog, simple, fty, (np.float64(2.0), (np.float64(3.0), 4)))
    assert (float(y), float(g0), float(g1), g2) == (4.0, 0.0, 0.0, ())


def test_naming_the_parts_of_a_pair_skips_where_its_name_is_bound_again():
    """The names a destructuring gives the parts of ``y`` are looked for only where ``y``
    is that variable: here an inner ``y`` of other components made the simplifier fail with
    an IndexError (a program the generated programs found)."""
    prog = lamad.loads("def g (y : Tensor) (x : Int) : (Tensor * Real * Int) =\n"
                       "    (iterate 0 (\\(y : (Tensor * Real * Int)). (iterate 0 (\\(x : (Tensor * Real * Int)).\n"
                       "        (((let (x, _, _) = y in (sum x))), 0.5, 1)) y)) (((sum y)), 0.5, 1))\n")
    assert_simplified_keeps_type(prog, "g")
    point = (np.arange(3.0), 2)
    assert float(prog.g(*point)[0]) == 3.0


def test_splitting_parameters_keeps_the_names_of_one_pattern_distinct():
    """``\\(acc, _, x). let (x, _) = acc in x``: ``acc`` split by the inner pattern must not
    name its first component ``x``, which the parameter's pattern already binds."""
    prog = lamad.loads("def f (p : (Real * Int) * Real * Tensor) : Real =\n"
                       "    let (acc, _, x) = p in let (x, _) = acc in x")
    fty = prog.types["f"]
    _, simple = dual(prog, "f", simplified=True)  # type-checks
    y, ((g0, g1), g2, g3) = run_dual(prog, simple, fty, ((np.float64(2.0), 1), np.float64(3.0), np.ones(2)))
    assert (float(y), float(g0), g1, float(g2), g3.tolist()) == (2.0, 1.0, (), 0.0, [0.0, 0.0])


def _simplified_agrees(source: str, x) -> None:
    """The simplified ←D of ``f`` computes the raw one's value and gradient at ``x``."""
    prog = lamad.loads(source)
    fty = prog.types["f"]
    raw = run_dual(prog, dual(prog, "f", simplified=False)[1], fty, x)
    simple = run_dual(prog, dual(prog, "f", simplified=True)[1], fty, x)
    assert repr(simple) == repr(raw)


def test_floating_a_let_out_of_an_argument_captures_nothing():
    """``iterate 1 (\\z. x * z) (let x = y * y in x * x)``: floating the inner ``let x``
    over the whole application would capture the lambda's ``x``."""
    _simplified_agrees("def f (p : Real * Real) : Real =\n"
                       "    let (x, y) = p in iterate 1 (\\(z : Real). x * z) (let x = y * y in x * x)",
                       (np.float64(2.0), np.float64(3.0)))


def test_naming_the_parts_of_a_pair_captures_nothing():
    """``let (x, _) = y`` names ``y``'s first part ``x``; binding it so where ``y`` is
    bound would capture the outer ``x`` used in between."""
    _simplified_agrees("def f (p : Real * (Real * Real)) : Real =\n"
                       "    let (x, y) = p in x + iterate 1 (\\(y : Real). x) (let (x, _) = y in x)",
                       (np.float64(2.0), (np.float64(3.0), np.float64(5.0))))


def test_naming_the_parts_of_a_pair_is_not_captured_on_the_way():
    """``let a1 = … in … let (a1, _) = x in a1``: naming ``x``'s first part ``a1`` where
    ``x`` is bound would have the inner ``let a1`` capture it on the way."""
    _simplified_agrees("def f (p : Real * Int) : Real =\n"
                       "    let x = p in let a1 = (\\(x : Tensor). sum x) in\n"
                       "    if true then a1 (fill 2.0 [2]) else (let (a1, _) = x in a1)",
                       (np.float64(2.0), 1))


def test_parts_named_alike_by_two_destructurings_stay_apart():
    """``let (_, _, y) = a`` and later ``let (_, y, _) = a``: ``y`` names two different
    parts of ``a``, so neither part may be called ``y`` where ``a`` is bound."""
    _simplified_agrees("def f (p : (Real * Real) * Real * Tensor) : Real =\n"
                       "    let a = p in (let z = a in let (_, _, y) = a in sum y) + (let (_, y, _) = a in y)",
                       ((np.float64(2.0), np.float64(3.0)), np.float64(5.0), np.arange(3.0)))


def test_a_name_the_simplifier_makes_up_is_not_given_to_another_variable():
    """``let (_, x, _) = z`` makes the simplifier name ``z``'s other parts ``z1`` and
    ``z_3``, names shown as they are; the renaming that follows gave ``z1`` to the shared
    ``[1]`` too, bound first, so that ``ones z1`` meant the part of ``z`` (an Int): the
    simplified ←D printed, parsed back and type-checked is the term, and computes what
    the raw one does."""
    source = ("def g (x : (Real * Tensor * Real)) (y : Real) : (Int * Tensor * Int) =\n"
              "    (1, (fill 0.5 [1]), 1)\n"
              "def f (x : Real) : (Real * Tensor) =\n"
              "    (snd ((\\(x : ((Real * Tensor * Real) -> (Real -> (Int * Tensor * Int)))).\n"
              "        ({w = 1, b = 1, x = (let x = g (0.5, (fill 0.5 [1]), 0.5) in\n"
              "            (let z = x 0.5 in (let (_, x, _) = z in (sum x))))}, (0.5, (ones [1]))))\n"
              "        (\\(x : (Real * Tensor * Real)). (\\(z : Real). (1, (fill 0.5 [1]), 1)))))\n")
    prog = lamad.loads(source)
    term, checked = dual(prog, "f", simplified=True)
    types = {n: backprop_type(t) for n, t in prog.types.items()}
    for width in (12, 88):
        again = infer_term(lamad.parse_term(lamad.pretty(term, width=width)), types)
        assert again.ty == checked.ty and alpha_key(again) == alpha_key(checked)
    fty = prog.types["f"]
    computed = []
    for simplified in (False, True):
        ((r, r_bp), (t, t_bp)), gradient = run_dual_outputs(prog, dual(prog, "f", simplified)[1], fty, 0.5)
        computed.append(repr((r, t, gradient(r_bp, prog.backend.scalar(1.0)), gradient(t_bp, np.full(1, 2.0)))))
    assert computed[1] == computed[0]
    renamed = lamad.parse_term("\\(p : Real). let x1 = p in let z1 = p * p in x1 + z1")
    shown = simplify_module._Renamer({"p"}, {}, renamed).term(renamed)
    assert alpha_key(shown) == alpha_key(renamed)


def test_alike_tensor_backpropagators_are_not_shared():
    """``fill x [2, 1]`` and ``fill x [1]`` have alike backpropagators ``λa ⊸ x' (sum a)``:
    shared, their cotangents of shapes (2, 1) and (1,) were added (broadcasting) before
    the sum, and the gradient of ``dot (… @ fill x [2, 1]) (fill x [1])`` came out 3."""
    _simplified_agrees("def f (p : Real) : Real =\n"
                       "    let x = p in dot (fill 0.5 [2] @ fill x [2, 1]) (fill x [1])", np.float64(1.0))


# ------------------------------------------------------------------ properties over generated programs

GENERATED = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@GENERATED
@given(programs())
def test_printed_terms_parse_back_to_alpha_equivalent_terms(sample):
    """``parse(pretty(t))`` is ``t`` up to the names of bound variables, in both spellings:
    for the source program, its elaborated definitions, and their raw and simplified ←D."""
    program = lamad.parse_program(sample.source)
    typed = lamad.typecheck(program)
    duals = {n: backprop_type(t) for n, t in typed.types.items()}
    for ascii in (False, True):
        again = lamad.parse_program(lamad.pretty(program, ascii=ascii))
        assert [(d.name, d.params, d.result) for d in again.defs] == [(d.name, d.params, d.result) for d in program.defs]
        assert [alpha_key(d.body) for d in again.defs] == [alpha_key(d.body) for d in program.defs]
    for name, term in typed.terms.items():
        raw = backprop(term)
        for t, types in ((term, typed.types), (raw, duals), (simplify(raw, keep=term_names(term)), duals)):
            checked = infer_term(t, types)
            for ascii in (False, True):
                again = infer_term(lamad.parse_term(lamad.pretty(t, ascii=ascii)), types)
                assert alpha_key(again) == alpha_key(checked)
                assert again.ty == checked.ty


def _leaves(value) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [np.asarray(value)]


def test_alike_terms_of_different_types_are_not_shared():
    """``real x`` as a Real and, promoted beside a tensor, as a Tensor: CSE shared them
    under one name, whose type then reached the Real's use (the simplified derivative
    had the type ``… → Tensor × Real⊥``)."""
    prog = lamad.loads("def f (p : (Real * Real)) : Real =\n"
                       "    fst (if true then (let x = 1 in (real x, (0.5, real x * ones [1])))\n"
                       "         else (0.5, (0.5, fill 0.5 [1])))\n")
    assert_simplified_keeps_type(prog, "f")


@GENERATED
@given(differentiable_programs(smooth=False))
def test_simplified_derivatives_type_check_and_compute_what_the_raw_ones_do(sample):
    """Simplification preserves the type of ←D(f) and, at a random point, the value and
    the gradient it computes (up to the rounding of reassociated sums)."""
    prog = lamad.loads(sample.source)
    fty = prog.types["f"]
    _, raw = dual(prog, "f", simplified=False)
    _, simple = dual(prog, "f", simplified=True)
    assert simple.ty == raw.ty
    (x,) = sample.point
    point = from_python(x, fty.dom, prog.backend)
    expected, got = _leaves(run_dual(prog, raw, fty, point)), _leaves(run_dual(prog, simple, fty, point))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
