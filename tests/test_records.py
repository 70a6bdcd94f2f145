"""Records (docs/language.md, "Records"): record types, values, fields and patterns, type
aliases; their gradients (records of the fields' cotangents) in both modes and to second
order, checked against finite differences; printing that parses back; located errors."""

from __future__ import annotations

import numpy as np
import pytest

import lamad
from lamad.parser import parse_program, parse_term, parse_type
from lamad.adtypes import backprop_type, forward_type
from lamad.pretty import pretty
from lamad.types import infer_term
from lamad.syntax import REAL, TENSOR, FunType, Record, RecordType, TupleType, alpha_key
from numeric import assert_same_gradient, directional_difference, flat, gradient_difference, like, numeric_gradient

LAYERS = """
type Layer = {w : Tensor, b : Tensor}
type Net = {hidden : Layer, out : Layer, scale : Real}

def layer (l : Layer) (x : Tensor) : Tensor = tanh (x @ l.w + l.b)
def net (p : Net) (x : Tensor) : Tensor = p.scale * (layer p.hidden x @ p.out.w + p.out.b)
def loss (p : Net) (x : Tensor) (y : Tensor) : Real = mean (square (net p x - y))
"""


def layers_program() -> lamad.LoadedProgram:
    return lamad.loads(LAYERS, filename="layers.lam")


def parameters(rng) -> dict:
    return {"hidden": {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)},
            "out": {"w": rng.standard_normal((4, 2)), "b": rng.standard_normal(2)},
            "scale": 0.7}


def error(source: str, kind=lamad.LamTypeError, filename: str = "r.lam") -> tuple[str, str, str]:
    """The three lines of a located error: head, source line, caret."""
    with pytest.raises(kind) as info:
        lamad.loads(source, filename=filename)
    head, line, caret = str(info.value).split("\n")
    return head, line.strip(), line[caret.index("^"):caret.index("^") + caret.count("^")]


# ------------------------------------------------------------------ types, values, fields, patterns


def test_record_types_are_structural_and_print_their_fields_in_alphabetical_order():
    a, b = parse_type("{w : Tensor, b : Real}"), parse_type("{b : Real, w : Tensor}")
    assert a == b == RecordType(("b", "w"), (REAL, TENSOR))
    assert str(a) == "{b : Real, w : Tensor}"
    assert parse_type("{w : Tensor, b : Real}") != parse_type("{w : Tensor, c : Real}")
    assert parse_type("{a : Real, b : Real}") != TupleType((REAL, REAL))
    p = lamad.loads("def f (p : {w : Tensor, b : Real}) = p\n"
                    "def g (q : {b : Real, w : Tensor}) = f q\n")
    assert p.types["g"] == parse_type("{w : Tensor, b : Real} -> {b : Real, w : Tensor}")


def test_values_fields_and_punning():
    p = lamad.loads("def mk (w : Tensor) (b : Real) = {w, b = 2.0 * b}\n"
                    "def nested = {x = {y = {z = 3}}}.x.y.z\n"
                    "def one = {only = 1.5}\n"
                    "def swap (p : {a : Real, b : Int}) = let {a = x, b = n} = p in {a = real n, b = 7}\n")
    made = p.mk(np.array([1.0, 2.0]), 3.0)
    assert made.keys() == {"w", "b"} and float(made["b"]) == 6.0
    np.testing.assert_array_equal(made["w"], [1.0, 2.0])
    assert p.nested == 3
    assert float(p.one["only"]) == 1.5
    swapped = p.swap({"a": 1.0, "b": 4})
    assert float(swapped["a"]) == 4.0 and swapped["b"] == 7


def test_fields_are_evaluated_in_the_order_written():
    """Fields are evaluated left to right as written, whatever their names: the error met is
    the first one written."""
    with pytest.raises(lamad.LamRuntimeError, match="'scalar'") as info:
        lamad.loads("def f = {z = scalar (ones [2]), a = 1 // 0}\n", filename="o.lam").f
    assert str(info.value).startswith("o.lam:1:")


def test_record_patterns_in_let_and_lambda_and_parameters():
    p = lamad.loads("type P = {w : Tensor, b : Real}\n"
                    "def f (q : P) : Real = let {w, b} = q in sum w * b\n"
                    "def g = (\\{b = c, w = v}. sum v + c) {w = ones [3], b = 0.5}\n"
                    "def h = map (\\({w, b} : P). b) [{w = ones [1], b = 1.0}, {w = ones [2], b = 2.0}]\n"
                    "def k (ps : List P) = fold (\\acc {w, b = _}. acc + sum w) 0.0 ps\n")
    assert float(p.f({"w": np.array([1.0, 2.0]), "b": 3.0})) == 9.0
    assert float(p.g) == 3.5
    assert [float(v) for v in p.h] == [1.0, 2.0]
    assert float(p.k([{"w": np.ones(2), "b": 9.0}, {"w": np.ones(3), "b": 9.0}])) == 5.0


def test_a_field_of_a_parameter_whose_type_comes_later():
    """``map (\\l. l.w) ls``: the lambda's parameter is typed by the list after it, and its
    field is found at the end of the definition, as an index is."""
    p = lamad.loads("def ws (ls : List {w : Tensor, b : Real}) = map (\\l. l.w) ls\n"
                    "def bs (ls : List {w : Tensor, b : Real}) : Real = fold (\\acc l. acc + l.b) 0.0 ls\n")
    assert p.types["ws"] == parse_type("List {w : Tensor, b : Real} -> List Tensor")
    ls = [{"w": np.ones(2), "b": 1.0}, {"w": np.zeros(2), "b": 2.0}]
    assert float(p.bs(ls)) == 3.0
    head, _, caret = error("def f (ls : List {b : Real}) (t : Tensor) = map (\\l. l.b + t) ls\n")
    assert "this field is Real, but is used as Tensor (annotate the record it is taken from)" in head
    assert caret == "l.b"
    typed = lamad.loads("def f (ls : List {b : Real}) (t : Tensor) = map (\\(l : {b : Real}). l.b + t) ls\n")
    assert str(typed.types["f"]) == "List {b : Real} -> Tensor -> List Tensor"


def test_records_nested_in_tuples_and_lists():
    p = lamad.loads("type L = {w : Tensor, b : Real}\n"
                    "def f (x : L * List L) : Real = let (first, rest) = x in "
                    "fold (\\acc l. acc + sum (l.w * first.w) + l.b) first.b rest\n")
    x = ({"w": np.array([1.0, 2.0]), "b": 0.5},
         [{"w": np.array([3.0, 4.0]), "b": 1.0}, {"w": np.array([5.0, 6.0]), "b": 2.0}])
    assert float(p.f(x)) == 0.5 + 11 + 1 + 17 + 2


def test_type_aliases_expand_where_they_are_used_and_are_printed_by_fmt():
    program = parse_program("type Layer = {w : Tensor, b : Tensor}\ntype Net = List Layer\n"
                            "def depth (n : Net) : Int = length n\n")
    assert [a.name for a in program.aliases] == ["Layer", "Net"]
    p = lamad.loads(pretty(program))
    assert p.types["depth"] == parse_type("List {b : Tensor, w : Tensor} -> Int")
    assert "def depth (n : Net) : Int" in pretty(program)
    assert "type Layer = {b : Tensor, w : Tensor}" in pretty(program)


def test_a_pattern_annotated_by_an_alias_annotates_its_parts():
    p = lamad.loads("type Pair = Real * Tensor\ntype L = {w : Tensor, b : Real}\n"
                    "def f = (\\((s, t) : Pair). s * sum t) (2.0, ones [3])\n"
                    "def g = (\\({w, b} : L). b * sum w) {w = ones [2], b = 3.0}\n")
    assert float(p.f) == 6.0 and float(p.g) == 6.0
    term = parse_term("\\({w, b} : L). b")
    assert parse_term(pretty(term)) == term and pretty(term) == "λ({w, b} : L). b"
    head, _, _ = error("type Pair = Real * Tensor\ndef f = \\((s, t, u) : Pair). s\n")
    assert "this pattern cannot have type Pair" in head


def test_format_value_prints_records():
    p = lamad.loads("def r = {w = 1.5, b = (2, true)}\n")
    assert lamad.format_value(p.value("r"), p.types["r"]) == "{b = (2, true), w = 1.5}"


# ------------------------------------------------------------------ printing parses back


@pytest.mark.parametrize("text", [
    "{w = x, b = f y}",
    "{w, b}",
    "p.w.v",
    "(f x).w",
    "\\{w, b = (x, _)}. w",
    "let {w = (_, v), b} = p in {b, w = v}",
    "\\({w, b} : {w : Tensor, b : Real}). b",
    "xs[0].w",
    "{a = {b = 1}}.a.b",
])
def test_printed_records_parse_back(text):
    term = parse_term(text)
    for ascii_ in (False, True):
        assert parse_term(pretty(term, ascii=ascii_)) == term


def test_a_record_keeps_the_order_its_fields_are_written_in():
    term = parse_term("{w = 1, b = 2}")
    assert isinstance(term, Record) and term.fields == ("w", "b")
    assert pretty(term) == "{w = 1, b = 2}"


@pytest.mark.parametrize("forward", [False, True])
def test_derivative_programs_of_functions_of_records_print_and_parse_back(forward):
    """←D and →D of functions of records, raw and simplified, printed and parsed again, are
    alpha-equivalent to the derivative and check at its type (the definitions they use at
    their transformed types)."""
    p = layers_program()
    type_of = forward_type if forward else backprop_type
    types = {n: type_of(t) for n, t in p.types.items()}
    for name in ("layer", "net", "loss"):
        for simplified in (False, True):
            _, ty, term = (p.forward if forward else p.backprop)(name, simplified=simplified)
            checked = infer_term(term, types)
            for ascii_ in (False, True):
                text = pretty(term, ascii=ascii_)
                again = infer_term(parse_term(text), types)
                assert again.ty == checked.ty == ty == type_of(p.types[name]), text
                assert alpha_key(again) == alpha_key(checked), text


# ------------------------------------------------------------------ gradients against finite differences


def test_grad_of_a_function_of_records_is_a_record():
    p = layers_program()
    rng = np.random.default_rng(0)
    params, x, y = parameters(rng), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    got = lamad.grad(p.loss)(params, x, y)
    assert got.keys() == {"hidden", "out", "scale"} and got["hidden"].keys() == {"w", "b"}
    want = numeric_gradient(lambda q: p.loss(q, x, y), params)
    assert_same_gradient(got, want, rtol=1e-5, atol=1e-7)
    value, again = lamad.value_and_grad(p.loss)(params, x, y)
    assert float(value) == pytest.approx(float(p.loss(params, x, y)))
    assert_same_gradient(again, got, rtol=1e-12, atol=0)


def test_grad_inside_a_program_and_a_training_step_on_records():
    p = lamad.loads(LAYERS + """
def step (p : Net) (x : Tensor) (y : Tensor) : Net =
    let g = grad (\\q. loss q x y) p
    in {hidden = {w = p.hidden.w - 0.1 * g.hidden.w, b = p.hidden.b - 0.1 * g.hidden.b},
        out = {w = p.out.w - 0.1 * g.out.w, b = p.out.b - 0.1 * g.out.b}, scale = p.scale}
""")
    rng = np.random.default_rng(1)
    params, x, y = parameters(rng), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    g = lamad.grad(p.loss)(params, x, y)
    stepped = p.step(params, x, y)
    np.testing.assert_allclose(stepped["hidden"]["w"], params["hidden"]["w"] - 0.1 * g["hidden"]["w"], rtol=1e-12)
    np.testing.assert_allclose(stepped["out"]["b"], params["out"]["b"] - 0.1 * g["out"]["b"], rtol=1e-12)
    assert float(p.loss(stepped, x, y)) < float(p.loss(params, x, y))


def test_jvp_and_vjp_of_a_record_valued_function():
    p = lamad.loads("type L = {w : Tensor, b : Real}\n"
                    "def f (l : L) (x : Tensor) : {y : Tensor, n : Real} =\n"
                    "    {y = sin (x * l.w) * l.b, n = sum (l.w * l.w)}\n")
    rng = np.random.default_rng(2)
    l, x = {"w": rng.standard_normal(3), "b": 0.3}, rng.standard_normal(3)
    dl, dx = like(l, rng), like(x, rng)
    value, tangent = lamad.jvp(p.f, (l, x), (dl, dx))
    assert tangent.keys() == {"y", "n"}
    np.testing.assert_allclose(np.concatenate([np.ravel(tangent["n"]), tangent["y"]]),
                               directional_difference(p.f, (l, x), (dl, dx)), rtol=1e-6, atol=1e-8)
    out, pullback = lamad.vjp(p.f, l, x)
    ct = {"y": rng.standard_normal(3), "n": 0.7}
    cl, cx = pullback(ct)
    # ⟨ct, J·t⟩ = ⟨Jᵀ·ct, t⟩: the pullback is the transpose of the tangent map
    lhs = float(np.dot(ct["y"], tangent["y"]) + ct["n"] * float(tangent["n"]))
    rhs = float(np.dot(cl["w"], dl["w"]) + float(cl["b"]) * dl["b"] + np.dot(cx, dx))
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_hvp_of_a_function_of_records():
    p = layers_program()
    rng = np.random.default_rng(3)
    point = (parameters(rng), rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))
    direction = tuple(like(x, rng) for x in point)
    got = lamad.hvp(p.loss, point, direction)
    assert got[0].keys() == {"hidden", "out", "scale"}
    want = gradient_difference(lamad.grad(p.loss, argnums=(0, 1, 2)), point, direction)
    np.testing.assert_allclose(flat(got), want, rtol=1e-5, atol=1e-7)


def test_hessian_of_a_function_of_a_record_is_a_record_of_records():
    """As JAX's ``hessian`` of a function of a dict: ``h[a][b]`` is ∂²f/∂a∂b, of shape
    ``shape(a) + shape(b)``; put together in the order of the leaves (``b``, then ``w``), it
    is the matrix whose columns are the finite differences of the gradient."""
    p = lamad.loads("def f (q : {w : Tensor, b : Real}) : Real = sum (q.w * q.w * q.w) * q.b + sin q.b * sum q.w\n")
    w, b = np.array([0.5, -1.0, 2.0]), 0.3
    h = lamad.hessian(p.f)({"w": w, "b": b})
    assert h.keys() == {"w", "b"} and h["w"].keys() == {"w", "b"} and h["b"].keys() == {"w", "b"}
    assert np.shape(h["w"]["w"]) == (3, 3) and np.shape(h["w"]["b"]) == (3,) and np.shape(h["b"]["b"]) == ()
    np.testing.assert_allclose(h["w"]["w"], np.diag(6 * w * b), rtol=1e-12)
    np.testing.assert_allclose(h["w"]["b"], 3 * w ** 2 + np.cos(b), rtol=1e-12)
    matrix = np.block([[np.reshape(h["b"]["b"], (1, 1)), np.reshape(h["b"]["w"], (1, 3))],
                       [np.reshape(h["w"]["b"], (3, 1)), h["w"]["w"]]])
    grad = lamad.grad(p.f)
    for j in range(4):
        e = {"b": float(j == 0), "w": np.eye(4)[j, 1:]}
        np.testing.assert_allclose(matrix[:, j], gradient_difference(grad, ({"w": w, "b": b},), (e,)),
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op", ["jacfwd", "jacrev"])
def test_jacobians_of_record_functions_against_finite_differences(op):
    """The Jacobian of a function from a record to a record is the record (of the result's
    fields) of records (of the argument's fields) of blocks of shape out + in."""
    p = lamad.loads("type L = {w : Tensor, b : Real}\n"
                    "def f (l : L) : {y : Tensor, n : Real} = {y = sin l.w * l.b, n = sum (l.w * l.w) + l.b * l.b}\n")
    l = {"w": np.array([0.4, -0.2, 1.1]), "b": 0.8}
    jac = getattr(lamad, op)(p.f)(l)
    assert jac.keys() == {"y", "n"} and jac["y"].keys() == {"w", "b"}
    assert np.shape(jac["y"]["w"]) == (3, 3) and np.shape(jac["y"]["b"]) == (3,)
    assert np.shape(jac["n"]["w"]) == (3,) and np.shape(jac["n"]["b"]) == ()
    for key, width in (("b", 1), ("w", 3)):
        for i in range(width):
            e = {"w": np.zeros(3), "b": 0.0}
            if key == "w":
                e["w"][i] = 1.0
            else:
                e["b"] = 1.0
            column = directional_difference(p.f, (l,), (e,))  # n, then y: the fields in order
            got = [np.ravel(jac["n"][key])[i], *(jac["y"][key][:, i] if key == "w" else jac["y"][key])]
            np.testing.assert_allclose(got, column, rtol=1e-6, atol=1e-8)


def test_jacobians_of_tuples_as_jax_gives_them():
    p = lamad.loads("def f (x : Tensor * Real) : Real = let (v, s) = x in sum (v * v) * s\n")
    v, s = np.array([1.0, 2.0]), 3.0
    h = lamad.hessian(p.f)((v, s))
    np.testing.assert_allclose(h[0][0], 2 * s * np.eye(2))
    np.testing.assert_allclose(h[0][1], 2 * v)
    np.testing.assert_allclose(h[1][0], 2 * v)
    assert float(h[1][1]) == 0.0
    g = lamad.hessian(p.f, argnums=0)
    assert np.shape(g((v, s))[0][0]) == (2, 2)


def test_second_order_through_a_record_inside_the_program():
    """``grad`` of a function that takes a gradient (a record) inside: ←D over ←D."""
    p = lamad.loads("type L = {w : Tensor, b : Real}\n"
                    "def f (l : L) : Real = sum (sin l.w) * l.b\n"
                    "def g (l : L) : Real = let d = grad f l in sum (d.w * d.w) + d.b * d.b\n")
    l = {"w": np.array([0.3, -0.7]), "b": 1.3}
    assert_same_gradient(lamad.grad(p.g)(l), numeric_gradient(p.g, l), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ the API


def test_dicts_cross_over_as_records():
    p = lamad.loads("def f (l : {w : Tensor, b : Real}) : Real = sum l.w + l.b\n")
    assert float(p.f({"b": 1.0, "w": np.ones(2)})) == 3.0
    from types import MappingProxyType
    assert float(p.f(MappingProxyType({"b": 1.0, "w": np.ones(2)}))) == 3.0
    with pytest.raises(lamad.LamArgumentError, match="missing 'b'"):
        p.f({"w": np.ones(2)})
    with pytest.raises(lamad.LamArgumentError, match="unknown 'c'"):
        p.f({"w": np.ones(2), "b": 1.0, "c": 2.0})
    with pytest.raises(lamad.LamArgumentError, match="expected a dict"):
        p.f((np.ones(2), 1.0))


# ------------------------------------------------------------------ errors


def test_an_unknown_field_is_located_at_the_field():
    head, line, caret = error("type L = {w : Tensor, b : Real}\ndef f (l : L) : Real = sum l.weight\n")
    assert head == "r.lam:2:30: type error: the record {b : Real, w : Tensor} has no field 'weight'"
    assert line == "def f (l : L) : Real = sum l.weight" and caret == "weight"
    head, _, _ = error("def f (l : {w : Tensor, b : Real}) : Real = l.ww\n")
    assert "did you mean 'w'?" in head


def test_a_field_of_something_that_is_not_a_record():
    head, _, caret = error("def f (x : Tensor) = x.w\n")
    assert "'.w' takes a field of a record, found Tensor" in head and caret == "x"
    head, _, _ = error("def f = map (\\l. l.w) []\n")
    assert "not known here" in head


@pytest.mark.parametrize("source, where, what", [
    ("def f = {w = 1, b = 2, w = 3}\n", (1, 24), "the field 'w' is given twice in this record"),
    ("def f (p : {w : Real, w : Tensor}) = p\n", (1, 23), "the field 'w' is given twice in this record type"),
    ("def f (p : {w : Real}) = let {w, w = v} = p in v\n", (1, 34), "the field 'w' is given twice in this pattern"),
])
def test_a_field_named_twice_is_a_syntax_error_at_the_second(source, where, what):
    head, _, caret = error(source, lamad.LamSyntaxError)
    assert head == f"r.lam:{where[0]}:{where[1]}: syntax error: {what}" and caret == "w"


def test_a_missing_field_is_a_type_error():
    head, line, caret = error("type L = {w : Tensor, b : Real}\ndef f (l : L) : Real = let {w} = l in sum w\n")
    assert head.startswith("r.lam:2:28: type error: this pattern does not name the field 'b' of "
                           "{b : Real, w : Tensor}")
    assert caret == "{w}"
    head, _, caret = error("type L = {w : Tensor, b : Real}\ndef f : L = {w = ones [2]}\n")
    assert "expected {b : Real, w : Tensor}, found {w : Tensor} (the record has no field 'b')" in head
    head, _, caret = error("def g (l : {w : Real}) : Real = l.w\ndef f = g {w = 1.0, b = 2.0}\n")
    assert head.startswith("r.lam:2:11:") and "a field 'b' it should not have" in head
    assert caret == "{w = 1.0, b = 2.0}"
    head, _, caret = error("def f (l : {w : Real}) : Real = let {w, v} = l in w\n")
    assert "the record {w : Real} has no field 'v'" in head and caret == "v"


def test_type_alias_errors():
    head, _, caret = error("def f (x : Layer) = x\n")
    assert head.startswith("r.lam:1:12: type error: unknown type 'Layer'") and caret == "Layer"
    head, _, caret = error("type A = {x : B}\ntype B = Real\ndef f (a : A) = a\n")
    assert head.startswith("r.lam:1:15: type error: unknown type 'B'") and caret == "B"
    head, _, _ = error("type A = Real\ntype A = Tensor\n")
    assert head.startswith("r.lam:2:1: type error: the type 'A' is already defined")
    head, _, _ = error("type Tensor = Real\n", lamad.LamSyntaxError)
    assert "'Tensor' is a base type" in head


def test_a_record_is_not_indexed():
    head, _, _ = error("def f (l : {w : Real}) = l[0]\n")
    assert "a record's field is written r.w" in head


def test_a_number_has_no_fields():
    with pytest.raises(lamad.LamSyntaxError, match="a number has no fields"):
        parse_term("1.e3")


def test_jacobians_in_several_arguments_as_jax_gives_them():
    """``argnums`` a tuple: the argument is the tuple of those arguments; ``(i,)`` gives
    tuples of one, as JAX's."""
    p = lamad.loads("def f (v : Tensor) (s : Real) : Real = sum (v * v) * s\n"
                    "def g (v : Tensor) (s : Real) : {a : Tensor, b : Real} = {a = v * s, b = s * s}\n")
    v, s = np.array([1.0, 2.0]), 3.0
    (hvv, hvs), (hsv, hss) = lamad.hessian(p.f, argnums=(0, 1))(v, s)
    np.testing.assert_allclose(hvv, 2 * s * np.eye(2))
    np.testing.assert_allclose(hvs, 2 * v)
    np.testing.assert_allclose(hsv, 2 * v)
    assert float(hss) == 0.0
    ((h,),) = lamad.hessian(p.f, argnums=(0,))(v, s)
    np.testing.assert_allclose(h, 2 * s * np.eye(2))
    for op in (lamad.jacfwd, lamad.jacrev):
        jac = op(p.g, argnums=(1,))(v, s)
        assert jac.keys() == {"a", "b"}
        (ja,), (jb,) = jac["a"], jac["b"]
        np.testing.assert_allclose(ja, v)
        assert float(jb) == 2 * s


def test_the_example_of_the_language_docs_checks_and_steps_downhill():
    from pathlib import Path
    import re

    docs = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    section = docs[docs.index("\n## Records\n"):docs.index("\n## ", docs.index("\n## Records\n") + 1)]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    p = lamad.loads(block)
    net = parse_type("{hidden : {w : Tensor, b : Tensor}, out : {w : Tensor, b : Tensor}}")
    assert p.types["step"] == FunType(net, FunType(TENSOR, FunType(TENSOR, net)))
    rng = np.random.default_rng(4)
    params = {"hidden": p.init(rng.standard_normal((3, 4)), np.ones(4)),
              "out": p.init(rng.standard_normal((4, 1)), np.ones(1))}
    assert p.sizes(params) == 12 and float(np.sum(params["hidden"]["b"])) == 0.0
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    assert float(p.loss(p.step(params, x, y), x, y)) < float(p.loss(params, x, y))


def test_records_are_saved_by_field_and_read_back(tmp_path, capsys):
    """``lamad run --output`` and ``lamad.save`` store a record's fields under their names
    (``hidden.w``); ``load_params`` and ``lamad.load_params`` read them back as a record."""
    from lamad import cli

    (tmp_path / "fit.lam").write_text("type L = {w : Tensor, b : Real}\n"
                                      "def fit : {hidden : L, out : L, steps : Int} =\n"
                                      "    {hidden = {w = ones [2], b = 0.5}, out = {w = fill 2.0 [3], b = 1.5}, steps = 7}\n"
                                      "def back : {hidden : L, out : L, steps : Int} = load_params \"w.npz\"\n"
                                      "def total = back.hidden.b + back.out.b\n", encoding="utf-8")
    assert cli.main(["run", str(tmp_path / "fit.lam"), "--entry", "fit", "--output", str(tmp_path / "w.npz")]) == 0
    capsys.readouterr()
    with np.load(tmp_path / "w.npz") as stored:
        assert sorted(stored.files) == ["__type__", "hidden.b", "hidden.w", "out.b", "out.w", "steps"]
        np.testing.assert_array_equal(stored["out.w"], [2.0, 2.0, 2.0])
    p = lamad.load(tmp_path / "fit.lam")
    assert float(p.total) == 2.0 and p.back["steps"] == 7
    loaded = lamad.load_params(tmp_path / "w.npz")
    assert loaded.keys() == {"hidden", "out", "steps"} and float(loaded["hidden"]["b"]) == 0.5
    lamad.save(tmp_path / "v.npz", {"w": np.ones(2), "b": 3.0})
    again = lamad.load_params(tmp_path / "v.npz", "{w : Tensor, b : Real}")
    assert float(again["b"]) == 3.0 and again["w"].shape == (2,)
