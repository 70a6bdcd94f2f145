"""Generic definitions and structures (docs/language.md, "Generic definitions and
structures"): templates specialised per instantiation, the structure maps written out for
their structure's type, the derivatives of functions of nested structures, and the
optimizers of ``nn`` against NumPy transcriptions of PyTorch's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import lamad
import optimizers
from numeric import assert_same_gradient, numeric_gradient


def error(source: str, filename: str = "g.lam", base_dir=None) -> tuple[str, str, str]:
    """The three lines of a located type error: head, source line, caret."""
    with pytest.raises(lamad.LamTypeError) as info:
        lamad.loads(source, filename=filename, base_dir=base_dir)
    head, line, caret = str(info.value).split("\n")
    return head, line.strip(), line[caret.index("^"):caret.index("^") + caret.count("^")]


def specialisations(p: lamad.LoadedProgram, name: str) -> list[str]:
    return [n for n in p.types if n.startswith(f"{name}'")]


# ------------------------------------------------------------------ templates

SGD = "def sgd (rate : Real) (p : 'p) (g : 'p) : 'p = tmap2 (\\x dx. x - rate * dx) p g\n"


def test_a_template_is_specialised_at_two_structures_in_one_program():
    p = lamad.loads(SGD + "def r (q : {w : Tensor, b : Real}) : {w : Tensor, b : Real} = sgd 0.5 q q\n"
                    "def t (q : Real * (Tensor * Real)) : Real * (Tensor * Real) = sgd 0.5 q (1.0, (q[1][0], 2.0))\n"
                    "def again (q : {w : Tensor, b : Real}) : {w : Tensor, b : Real} = sgd 0.1 q q\n")
    w = np.array([1.0, -2.0])
    got = p.r({"w": w, "b": 3.0})
    np.testing.assert_allclose(got["w"], 0.5 * w)
    assert got["b"] == pytest.approx(1.5)
    a, (b, c) = p.t((4.0, (w, 6.0)))
    assert a == pytest.approx(3.5) and c == pytest.approx(5.0)
    np.testing.assert_allclose(b, 0.5 * w)
    # one specialisation per instantiation: the record's is made once, for r and again
    assert len(specialisations(p, "sgd")) == 2
    assert str(p.typed.type_of("sgd")) == "Real -> 'p -> 'p -> 'p"


def test_a_template_may_use_another_and_a_lambda_is_checked_at_each_leaf():
    p = lamad.loads(SGD + "def decay (p : 'p) : 'p = sgd 0.5 p (tmap (\\x. 0.9 * x) p)\n"
                    "def main = decay (2.0, stack [1.0, 10.0])\n")
    a, b = p.main
    assert a == pytest.approx(2.0 - 0.5 * 1.8)
    np.testing.assert_allclose(b, [1.0 - 0.45, 10.0 - 4.5])


def test_an_error_in_a_specialisation_is_located_in_the_template_with_the_instantiation_and_the_use():
    head, line, caret = error("def half (x : 'a) : 'a = x / 2.0\ndef main = half 3\n")
    assert head == ("g.lam:1:26: type error: argument of '/': expected Real or Tensor, found Int "
                    "(convert with 'real') (in 'half' with 'a = Int, used at line 2, column 12)")
    assert line == "def half (x : 'a) : 'a = x / 2.0" and caret == "x"


def test_the_signature_of_a_template_is_checked_at_the_use():
    head, _, caret = error(SGD + "def main = sgd 0.1 (1.0, 2.0) {w = 1.0}\n")
    assert head.startswith("g.lam:2:31: type error: expected Real * Real, found {w : Real}") and caret == "{w = 1.0}"


@pytest.mark.parametrize("source, message, caret", [
    ("def f (x : 'a) = x\n", "the generic definition 'f' must annotate its result type too", "f"),
    ("def f (x : 'a) : 'a = (x : 'b)\n", "the type variable 'b is not named by the signature of 'f'", "'b"),
    ("def f (x : Real) : Real = (x : 'b)\n", "the type variable 'b may only be written in a definition", "'b"),
    ("def f (x : 'a) : 'a = g x\ndef g (x : Real) : Real = x\n", "'g' is defined further down", "g"),
    ("def f (x : 'a) : 'a = nope x\n", "unbound name 'nope'", "nope"),
    ("def f (x : 'a) : 'a = f x\n", "'f' refers to itself", "f"),
    ("def f (x : Real) : 'a = tzeros_like x\ndef main = f 1.0\n", "what 'a stands for in this use of 'f' is "
     "not known here", "f"),
    ("type T = 'a\n", "the type variable 'a may only be written in a definition", "'a"),
])
def test_generic_definitions_that_cannot_be_checked_are_located_errors(source, message, caret):
    head, _, got = error(source)
    assert message in head and got == caret


def test_a_template_keeps_the_primitives_it_names_when_a_later_definition_takes_their_name():
    p = lamad.loads("def pos (x : 'a) : 'a = tmap (\\v. relu v) x\n"
                    "def relu (x : Real) : Real = 100.0\n"
                    "def main = (pos (-1.0, 2.0), relu 0.0)\n")
    (a, b), c = p.main
    assert (a, b, c) == (0.0, 2.0, 100.0)


def test_a_template_is_used_across_modules_on_the_users_record(tmp_path):
    (tmp_path / "opt.lam").write_text(
        "type Pair = {u : Real, v : Real}\n"
        "def scale (k : Real) (p : 'p) : 'p = tmap (\\x. k * x) p\n"
        "def both (k : Real) (p : 'p) : 'p * Pair = (scale k p, ({u = k, v = k} : Pair))\n", encoding="utf-8")
    p = lamad.loads("import \"opt.lam\" as O\nimport nn\n"
                    "def main = O.both 2.0 {w = stack [1.0, 2.0], b = 3.0}\n"
                    "def s = fst (nn.adam 0.1 (nn.adam_init (1.0, 2.0)) (1.0, 2.0) (1.0, -1.0))\n",
                    base_dir=tmp_path)
    scaled, pair = p.main
    np.testing.assert_allclose(scaled["w"], [2.0, 4.0])
    assert scaled["b"] == 6.0 and pair == {"u": 2.0, "v": 2.0}
    assert p.s == pytest.approx((0.9, 2.1))
    assert specialisations(p, "O.both") and specialisations(p, "O.scale")


def test_a_modules_template_uses_the_templates_and_aliases_of_what_it_imports(tmp_path):
    (tmp_path / "lib.lam").write_text(
        "import nn\ntype Pair = {u : Real, v : Real}\n"
        "def twice (rate : Real) (p : 'p) (g : 'p) : 'p = nn.sgd rate (nn.sgd rate p g) g\n"
        "def mk (x : Real) : Pair = {u = x, v = x}\n"
        "def both (p : 'p) : 'p * Pair = (twice 1.0 p p, mk 1.0)\n", encoding="utf-8")
    p = lamad.loads("import \"lib.lam\" as L\n"
                    "def main = (L.twice 0.25 (1.0, {a = stack [2.0]}) (1.0, {a = stack [1.0]}), L.both 3.0)\n",
                    base_dir=tmp_path)
    (a, b), (c, pair) = p.main
    assert a == 0.5 and c == -3.0 and pair == {"u": 1.0, "v": 1.0}
    np.testing.assert_allclose(b["a"], [1.5])
    assert specialisations(p, "L.nn.sgd")  # nn's sgd, as L names it


def test_an_error_in_a_module_template_is_located_in_its_file(tmp_path):
    (tmp_path / "opt.lam").write_text("def half (x : 'a) : 'a = x / 2.0\n", encoding="utf-8")
    head, line, caret = error("import \"opt.lam\" as O\ndef main = O.half 3\n", base_dir=tmp_path)
    assert head.startswith("opt.lam:1:26: type error: argument of '/'")
    assert head.endswith("(in 'O.half' with 'a = Int, used at line 2, column 12)")
    assert line == "def half (x : 'a) : 'a = x / 2.0" and caret == "x"


def test_an_alias_of_a_type_variable_is_applied_to_a_type_here_and_from_a_module():
    source = ("import nn\ntype Box 'a = {inner : 'a, n : Int}\n"
              "def wrap (x : 'p) : Box 'p = {inner = x, n = 1}\n"
              "def c : Box (Box Tensor) = wrap (wrap (stack [1.0]))\n"
              "def s (p : Real * Real) : nn.Adam (Real * Real) = nn.adam_init p\n")
    p = lamad.loads(source)
    assert str(p.types["c"]) == "{inner : {inner : Tensor, n : Int}, n : Int}"
    assert str(p.types["s"]) == "Real * Real -> {m : Real * Real, step : Int, v : Real * Real}"
    assert str(p.typed.type_of("wrap")) == "'p -> {inner : 'p, n : Int}"
    assert lamad.parse_program(lamad.pretty(lamad.parse_program(source))) == lamad.parse_program(source)


@pytest.mark.parametrize("source, message, caret", [
    ("type Box 'a = {inner : 'a}\ndef f (x : Box) : Real = 1.0\n", "the type 'Box' takes one, for its type "
     "variable 'a (Box Real, Box 'a)", "Box"),
    ("type Pair = Real * Real\ndef f (x : Pair Real) : Real = 1.0\n", "the type 'Pair' takes no argument",
     "Pair Real"),
    ("type Box 'a = {inner : 'b}\n", "the type variable 'b may only be written in a definition", "'b"),
])
def test_an_alias_applied_wrongly_is_a_located_error(source, message, caret):
    head, _, got = error(source)
    assert message in head and got == caret


def test_a_template_is_specialised_for_an_expression_and_its_type_alone_is_its_signature():
    p = lamad.loads(SGD + "def q = 1.0\n")
    assert p.evaluate("sgd 0.5 (q, 2.0) (1.0, 2.0)") == (0.5, 1.0)
    assert p.evaluate("sgd 0.5 (q, 2.0) (3.0, 2.0)") == (-0.5, 1.0)
    assert len(specialisations(p, "sgd")) == 1
    assert str(lamad.driver.type_of(lamad.parse_term("sgd"), p.types, p.typed.scope)) == "Real -> 'p -> 'p -> 'p"
    with pytest.raises(lamad.LamTypeError, match="'sgd' is generic"):  # where nothing takes its specialisations
        lamad.types.infer_term(lamad.parse_term("sgd 0.1 1.0 1.0"), p.types, p.typed.scope)


def test_the_repl_defines_and_lists_templates():
    p = lamad.loads("")
    p.define(lamad.parse_program(SGD))
    p.define(lamad.parse_program("def main = sgd 0.5 (1.0, 2.0) (2.0, 2.0)\n"))
    assert p.main == (0.0, 1.0)


# ------------------------------------------------------------------ structure maps

STRUCT = "{w : Tensor, b : Real, inner : (Tensor * Real)}"


def structure(rng) -> dict:
    return {"w": rng.standard_normal((2, 3)), "b": float(rng.standard_normal()),
            "inner": (rng.standard_normal(4), float(rng.standard_normal()))}


def test_the_structure_maps_give_the_leafwise_values():
    p = lamad.loads(f"def m (s : {STRUCT}) : {STRUCT} = tmap (\\x. 2.0 * x + 1.0) s\n"
                    f"def m2 (s : {STRUCT}) (t : {STRUCT}) : {STRUCT} = tmap2 (\\x y. x * y) s t\n"
                    f"def total (s : {STRUCT}) : Real = tsum s\n"
                    f"def zeros (s : {STRUCT}) : {STRUCT} = tzeros_like s\n"
                    f"def full (s : {STRUCT}) : {STRUCT} = tfull_like 7.0 s\n"
                    f"def named (s : Tensor * Tensor) : Tensor * Tensor = tmap exp s\n")
    rng = np.random.default_rng(0)
    s, t = structure(rng), structure(rng)
    assert_same_gradient(p.m(s), optimizers.tree_map(lambda x: 2 * x + 1, s), rtol=1e-15, atol=0)
    assert_same_gradient(p.m2(s, t), optimizers.tree_map(lambda x, y: x * y, s, t), rtol=1e-15, atol=0)
    assert p.total(s) == pytest.approx(s["w"].sum() + s["b"] + s["inner"][0].sum() + s["inner"][1], rel=1e-14)
    assert_same_gradient(p.zeros(s), optimizers.tree_map(np.zeros_like, s), rtol=0, atol=0)
    assert_same_gradient(p.full(s), optimizers.tree_map(lambda x: np.full_like(x, 7.0), s), rtol=0, atol=0)
    a, b = p.named((s["w"], s["inner"][0]))
    np.testing.assert_allclose(a, np.exp(s["w"]))


def test_the_gradient_through_the_structure_maps_is_the_finite_differences():
    p = lamad.loads(f"def f (s : {STRUCT}) : Real = tsum (tmap2 (\\x y. sin x * y) s (tmap (\\x. x * x) s))"
                    " + tsum (tfull_like 3.0 s)\n")
    s = structure(np.random.default_rng(1))
    assert_same_gradient(lamad.grad(p.f)(s), numeric_gradient(p.f, s), rtol=1e-6, atol=1e-8)


def test_a_map_of_a_parameter_typed_later_is_written_out_at_the_end_of_the_definition():
    p = lamad.loads(f"def f (s : {STRUCT}) = grad (\\q. tsum (tmap (\\x. sin x * x) q)) s\n"
                    f"def g (s : {STRUCT}) : Real = tsum (tmap (\\x. sin x * x) s)\n"
                    "def h = fold (\\acc s. tmap2 (\\a b. a + b) acc s) (0.0, 0.0) [(1.0, 2.0), (3.0, 4.0)]\n")
    s = structure(np.random.default_rng(5))
    assert_same_gradient(p.f(s), numeric_gradient(p.g, s), rtol=1e-6, atol=1e-8)
    assert p.h == (4.0, 6.0)


@pytest.mark.parametrize("source, message, caret", [
    ("def f (s : {n : Int, x : Real}) : Real = tsum s\n",
     "'tsum' maps the Real and Tensor leaves of records and tuples, but its leaf .n is an Int", "s"),
    ("def f (s : Real * (Real -> Real)) : Real = tsum s\n", "its leaf [1] is a Real -> Real", "s"),
    ("def f (s : List Real) : Real = tsum s\n", "it is a list (List Real), whose length its type does not give",
     "s"),
    ("def f (s : {w : Real}) (t : {v : Real}) : {w : Real} = tmap2 (\\x y. x + y) s t\n",
     "'tmap2' maps structures of one shape, found {w : Real} and {v : Real}", "t"),
    ("def f (s : Real * Real) (t : Real) : Real * Real = tmap2 (\\x y. x + y) s t\n",
     "'tmap2' maps structures of one shape", "t"),
    ("def f = \\s. tsum s\n", "it is of a type not known here (annotate it)", "s"),
    ("def f (s : Real) : Real -> Real = tmap2 (\\x y. x + y) s\n", "'tmap2' is applied to all its 3 arguments",
     "tmap2 (\\x y. x + y) s"),
])
def test_a_structure_map_of_what_is_not_a_structure_is_a_located_error(source, message, caret):
    head, _, got = error(source)
    assert message in head and got == caret


# ------------------------------------------------------------------ derivatives of nested structures

NESTED = """
def f (p : {a : {w : Tensor, b : Real}, c : Real}) : Real = sum (sin p.a.w) * p.a.b + p.c * p.c * p.a.b
def g (q : {w : Tensor, b : Real} * {u : Real}) : Real = let (r, s) = q in sum (r.w * r.w) * s.u + r.b * s.u
def v (q : {w : Tensor, b : Real} * {u : Real}) : Tensor = q[0].w * q[1].u + q[0].b
def grads (p : {a : {w : Tensor, b : Real}, c : Real}) = grad f p
def hess (q : {w : Tensor, b : Real} * {u : Real}) = hessian g q
def jf (q : {w : Tensor, b : Real} * {u : Real}) = jacfwd v q
def jr (q : {w : Tensor, b : Real} * {u : Real}) = jacrev v q
"""


LEAVES = ((0, "w"), (0, "b"), (1, "u"))


def test_grad_and_hessian_and_jacobians_of_nested_records_and_tuples_of_records_are_finite_differences():
    p = lamad.loads(NESTED)
    rng = np.random.default_rng(2)
    nested = {"a": {"w": rng.standard_normal(3), "b": 0.7}, "c": -1.3}
    assert_same_gradient(p.grads(nested), numeric_gradient(p.f, nested), rtol=1e-6, atol=1e-8)
    q = ({"w": rng.standard_normal(3), "b": 0.4}, {"u": 1.9})
    h = p.hess(q)  # as JAX nests it: h[i][f][j][e] of shape shape(q[i][f]) + shape(q[j][e])
    for i, f in LEAVES:
        for k in np.ndindex(np.shape(q[i][f])):
            row = tuple({e: np.asarray(h[i][f][j][e])[k] for e in q[j]} for j in range(2))
            want = numeric_gradient(lambda x, i=i, f=f, k=k: np.asarray(lamad.grad(p.g)(x)[i][f])[k], q)
            assert_same_gradient(row, want, rtol=1e-5, atol=1e-6)
    for jac in (p.jf(q), p.jr(q)):  # of shape [3] + the leaf's shape, for each leaf
        for i, f in LEAVES:
            for row in range(3):
                want = numeric_gradient(lambda x, row=row: p.v(x)[row], q)[i][f]
                np.testing.assert_allclose(np.asarray(jac[i][f])[row], want, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ optimizers against NumPy

MODEL = "{layer : {w : Tensor, b : Tensor}, scale : Real}"
STEPS = 4


def model(rng) -> dict:
    return {"layer": {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)},
            "scale": float(rng.standard_normal())}


def gradients(rng) -> list[dict]:
    return [model(rng) for _ in range(STEPS)]


@pytest.fixture(scope="module")
def optimizer_program() -> lamad.LoadedProgram:
    return lamad.loads(
        f"import nn\ntype M = {MODEL}\n"
        "def sgd (p : M) (g : M) : M = nn.sgd 0.1 p g\n"
        "def momentum (v : M) (p : M) (g : M) : M * M = nn.momentum 0.1 0.9 v p g\n"
        "def momentum_init (p : M) : M = nn.momentum_init p\n"
        "def adam_init (p : M) = nn.adam_init p\n"
        "def adam (s : nn.Adam M) (p : M) (g : M) = nn.adam 0.01 s p g\n"
        "def adamw (s : {m : M, v : M, step : Int}) (p : M) (g : M) = nn.adamw 0.01 s p g\n")


def test_sgd_and_momentum_follow_pytorch(optimizer_program):
    rng = np.random.default_rng(3)
    p, gs = model(rng), gradients(rng)
    ours, theirs = p, p
    for g in gs:
        ours, theirs = optimizer_program.sgd(ours, g), optimizers.sgd(0.1, theirs, g)
        assert_same_gradient(ours, theirs, rtol=1e-14, atol=1e-15)
    ours, theirs = (p, optimizer_program.momentum_init(p)), (p, optimizers.tree_map(np.zeros_like, p))
    for g in gs:
        ours = optimizer_program.momentum(ours[1], ours[0], g)
        theirs = optimizers.momentum(0.1, 0.9, theirs[1], theirs[0], g)
        assert_same_gradient(ours, theirs, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name, decay", [("adam", 0.0), ("adamw", 0.01)])
def test_adam_and_adamw_follow_pytorch(optimizer_program, name, decay):
    rng = np.random.default_rng(4)
    p, gs = model(rng), gradients(rng)
    ours, theirs = (p, optimizer_program.adam_init(p)), (p, optimizers.adam_init(p))
    assert ours[1]["step"] == 0
    for g in gs:
        ours = getattr(optimizer_program, name)(ours[1], ours[0], g)
        theirs = optimizers.adam(0.01, theirs[1], theirs[0], g, decay=decay)
        assert ours[1]["step"] == theirs[1]["step"]
        for a, b in ((ours[0], theirs[0]), (ours[1]["m"], theirs[1]["m"]), (ours[1]["v"], theirs[1]["v"])):
            assert_same_gradient(a, b, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ random structures

LEAF = st.sampled_from(["Real", "Tensor"])


def structures() -> st.SearchStrategy:
    """Types of structures: Reals and Tensors in records and tuples, nested."""
    names = st.sampled_from(["a", "b", "c", "w"])
    return st.recursive(LEAF, lambda inner: st.one_of(
        st.dictionaries(names, inner, min_size=1, max_size=3).map(lambda d: ("record", d)),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: ("tuple", items))), max_leaves=6)


def type_text(t) -> str:
    if isinstance(t, str):
        return t
    kind, parts = t
    if kind == "record":
        return "{" + ", ".join(f"{f} : {type_text(u)}" for f, u in parts.items()) + "}"
    return "(" + " * ".join(type_text(u) for u in parts) + ")"


def value_of(t, rng):
    if t == "Real":
        return float(rng.standard_normal())
    if t == "Tensor":
        return rng.standard_normal(2)
    kind, parts = t
    if kind == "record":
        return {f: value_of(u, rng) for f, u in parts.items()}
    return tuple(value_of(u, rng) for u in parts)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures(), st.integers(0, 2 ** 32 - 1))
def test_random_structures_add_leafwise_and_differentiate_through_tmap(t, seed):
    text = type_text(t)
    p = lamad.loads(f"def add (a : {text}) (b : {text}) : {text} = tmap2 (\\x y. x + y) a b\n"
                    f"def f (a : {text}) : Real = tsum (tmap (\\x. x * sin x) a)\n")
    rng = np.random.default_rng(seed)
    a, b = value_of(t, rng), value_of(t, rng)
    assert_same_gradient(p.add(a, b), optimizers.tree_map(lambda x, y: x + y, a, b), rtol=1e-15, atol=0)
    assert_same_gradient(lamad.grad(p.f)(a), numeric_gradient(p.f, a), rtol=1e-6, atol=1e-8)


def test_the_readmes_optimizer_example_checks_and_trains():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    text = readme[readme.index("\n## Records and modules\n"):readme.index("\n## The command line\n")]
    model, fit = re.findall(r"```\n(.*?)```", text, re.S)[:2]
    p = lamad.loads(model + fit + "def x : Tensor = randn 4 [10, 3]\ndef y : Tensor = randn 5 [10, 1]\n"
                    "def main = (loss start x y, loss (step start x y) x y, loss (fit x y) x y)\n")
    before, after_sgd, after_adam = p.main
    assert after_sgd < before and after_adam < before / 10
