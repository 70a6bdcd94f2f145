"""``lamad graph`` and lamad/graph.py (README.md, "Seeing a derivative"): the circuit of one
evaluation, its values and the cotangents of the backward pass on the wires."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import lamad
from inprocess import ROOT, ok, run_lamad
from lamad import graph

pytest.importorskip("graphviz")

GATE = ("graph", "examples/gate.lam", "--entry", "f", "--at", "(-2.0, 5.0, -4.0)", "--grad")

_NODE = re.compile(r"^\s*(\w+) \[label=<(.*)> shape=(\w+)\]$")
_EDGE = re.compile(r"^\s*(\w+) -> (\w+) \[label=<(.*)>\]$")
_FONT = re.compile(r'<font color="(#\w+)">([^<]*)</font>')


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, float, float | None]]]:
    """The nodes (id → the text of its label before any line break; the output's point
    has none) and the edges (source label, target label or ``out``, value, cotangent) of
    the DOT text ``lamad graph`` writes."""
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, float, float | None]] = []
    for line in text.splitlines():
        if m := _NODE.match(line):
            nodes[m[1]] = m[2].split("<br/>")[0]
        elif m := _EDGE.match(line):
            fonts = _FONT.findall(m[3])
            assert fonts[0][0] == graph._VALUE_COLOUR
            grad = None
            if len(fonts) > 1:
                assert fonts[1][0] == graph._GRAD_COLOUR
                grad = float(fonts[1][1])
            edges.append((m[1], m[2], float(fonts[0][1]), grad))
    named = [(nodes[a], nodes.get(b, "out"), v, g) for a, b, v, g in edges]
    return nodes, named


def test_gate_values_and_gradients_on_the_right_wires():
    nodes, edges = parse_dot(ok(run_lamad(*GATE)))
    assert sorted(nodes.values()) == ["*", "+", "x", "y", "z"]
    assert sorted(edges, key=str) == sorted([
        ("x", "+", -2.0, -4.0), ("y", "+", 5.0, -4.0), ("+", "*", 3.0, -4.0), ("z", "*", -4.0, 3.0),
        ("*", "out", -12.0, 1.0),
    ], key=str)


def test_without_grad_the_wires_carry_values_only():
    _, edges = parse_dot(ok(run_lamad(*GATE[:-1])))
    assert sorted(edges, key=str) == sorted([
        ("x", "+", -2.0, None), ("y", "+", 5.0, None), ("+", "*", 3.0, None), ("z", "*", -4.0, None),
        ("*", "out", -12.0, None),
    ], key=str)


SHARED = """
def f (x : Real) : Real = let y = x * x in y + y
def sq (x : Real) : Real = x * x
def g (p : Real * Real) (w : Tensor) : Real =
    let (a, b) = p
    in let h = tanh (w * a + b) in sum (h * h) + sq b * mean (exp w)
def cond (x : Real) : Real = if x > 0.0 then x else 0.0
def mapped (xs : List Real) : List Real = map (\\x. x * x) xs
def twice (x : Real) : Real * Real = (x, x)
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> lamad.api.LoadedProgram:
    path = tmp_path_factory.mktemp("graph") / "shared.lam"
    path.write_text(SHARED)
    return lamad.load(path)


def test_a_let_bound_value_used_twice_is_one_node_with_the_summed_cotangent(shared):
    g = graph.of_program(shared, "f", shared.evaluate("3.0"), grad=True)
    muls = [i for i, n in enumerate(g.nodes) if n.op == "mul"]
    adds = [i for i, n in enumerate(g.nodes) if n.op == "add"]
    assert len(muls) == 1 and len(adds) == 1
    (y,), (out,) = muls, adds
    assert g.nodes[out].args == (y, y)
    assert g.sent[out, 0] == 1.0 and g.sent[out, 1] == 1.0
    assert g.cotangents[y] == 2.0  # the sum of its two uses
    (x,) = g.inputs
    assert g.cotangents[x] == 12.0  # d(2x²)/dx at 3
    nodes, edges = parse_dot(graph.to_dot(g, True).source)
    assert [e for e in edges if e[:2] == ("*", "+")] == [("*", "+", 9.0, 1.0)] * 2
    assert "∑ 2" in graph.to_dot(g, True).source


def test_cotangents_at_the_inputs_are_lamads_gradient(shared):
    at = "((0.7, -0.3), real (arange 4) - 1.5)"
    p, w = shared.evaluate(at)
    g = graph.of_program(shared, "g", (p, w), grad=True)
    expected = lamad.grad(shared["g"], argnums=(0, 1))(p, w)
    inputs = {g.nodes[i].label: g.cotangents[i] for i in g.inputs}
    assert set(inputs) == {"p.0", "p.1", "w"}
    np.testing.assert_allclose(inputs["p.0"], expected[0][0], rtol=1e-12)
    np.testing.assert_allclose(inputs["p.1"], expected[0][1], rtol=1e-12)
    np.testing.assert_allclose(inputs["w"], expected[1], rtol=1e-12)
    value = shared.call("g", [p, w])[0]
    assert g.nodes[g.outputs[0]].value == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("entry, at, message", [
    ("cond", "1.0", "shared.lam:7:30: graph error: the graph draws straight-line code (let, tuples, primitives, "
                    "lambdas applied); 'if' is not"),
    ("mapped", "[1.0]", "shared.lam:8:43: graph error: the graph draws straight-line code over numbers and arrays; 'map' takes a function"),
    ("twice", "1.0 --grad", "graph error: --grad needs a function to Real"),
    ("f", "true", "<--at>:1:1: type error: this term is annotated Real: expected Real, found Bool"),
    ("f", "(1.0", "<--at>:1:5: syntax error"),
])
def test_what_cannot_be_drawn_is_a_located_error(shared, entry, at, message):
    at, *flags = at.split(" ")
    proc = run_lamad("graph", shared.filename, "--entry", entry, "--at", at, *flags)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unknown_entry_is_bad_usage():
    proc = run_lamad("graph", "examples/gate.lam", "--entry", "g", "--at", "1.0")
    assert proc.returncode == 2
    assert proc.stderr == "lamad: examples/gate.lam has no definition 'g' (defined: f, main)\n"


def test_writes_dot_text(tmp_path):
    out = tmp_path / "gate.dot"
    ok(run_lamad(*GATE, "-o", str(out)))
    assert out.read_text() == ok(run_lamad(*GATE))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_renders_svg_with_the_numbers(tmp_path):
    out = tmp_path / "gate.svg"
    ok(run_lamad(*GATE, "-o", str(out)))
    root = ET.fromstring(out.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for number in ["-2", "5", "3", "-4", "-12", "1"]:
        assert number in texts


def test_without_dot_writes_the_dot_text_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    prog = lamad.load(ROOT / "examples/gate.lam")
    dot = graph.to_dot(graph.of_program(prog, "f", prog.evaluate("(-2.0, 5.0, -4.0)"), True), True)
    written = graph.write(dot, str(tmp_path / "gate.png"))
    assert written == str(tmp_path / "gate.png.dot")
    assert (tmp_path / "gate.png.dot").read_text() == dot.source
    assert not (tmp_path / "gate.png").exists()


def test_the_repl_draws_a_definition_and_locates_its_errors():
    from io import StringIO

    from lamad.repl import Repl

    out = StringIO()
    repl = Repl(out=out)
    assert repl.execute(f":load {ROOT / 'examples/gate.lam'}")
    out.truncate(0), out.seek(0)
    assert repl.execute(":graph f at (-2.0, 5.0, -4.0) --grad")
    _, edges = parse_dot(out.getvalue())
    assert ("z", "*", -4.0, 3.0) in edges and ("*", "out", -12.0, 1.0) in edges
    assert repl.execute("def c (x : Real) : Real = if x > 0.0 then x else 0.0")
    out.truncate(0), out.seek(0)
    assert not repl.execute(":graph c at 1.0")
    assert out.getvalue().startswith("<repl>:3:27: graph error: the graph draws straight-line code")
    out.truncate(0), out.seek(0)
    assert not repl.execute(":graph nope at 1.0")
    assert out.getvalue().startswith("<repl>:5:8: error: ':graph' draws a definition; 'nope' is not one")


def test_g_still_means_grad_in_the_repl():
    from io import StringIO

    from lamad.repl import Repl

    out = StringIO()
    for short in (":g", ":gr", ":gra"):
        assert Repl(out=out).execute(f"{short} \\x. x * x at 3.0")
    assert out.getvalue() == "6.0\n" * 3


def test_an_output_of_another_kind_is_bad_usage(tmp_path):
    proc = run_lamad(*GATE, "-o", str(tmp_path / "gate.txt"))
    assert proc.returncode == 2
    assert proc.stderr == f"lamad: -o writes .dot, .svg, .png, not '{tmp_path / 'gate.txt'}'\n"
    assert not (tmp_path / "gate.txt").exists()


def test_a_long_let_chain_is_drawn_and_a_deeply_nested_term_is_refused(tmp_path):
    """A chain of ``let``s is walked in a loop (1,100 of them pass Python's recursion
    limit); a term nested 3,000 deep is a located error, not a traceback."""
    chain = " ".join(f"let x{i} = x{i - 1} + 1.0 in" for i in range(1, 1100))
    nested = "x" + " * 1.0" * 3000
    path = tmp_path / "deep.lam"
    path.write_text(f"def chain (x0 : Real) : Real = {chain} x1099\ndef nested (x : Real) : Real = {nested}\n")
    prog = lamad.load(path)
    g = graph.of_program(prog, "chain", prog.evaluate("1.0"), grad=False)
    assert len(g.nodes) == 1 + 2 * 1099 and g.nodes[g.outputs[0]].value == 1100.0
    with pytest.raises(graph.LamGraphError, match="'nested' nests its terms too deeply to draw"):
        graph.of_program(prog, "nested", prog.evaluate("1.0"), grad=False)


def test_a_value_computed_and_never_used_is_not_drawn(tmp_path):
    path = tmp_path / "unused.lam"
    path.write_text("def f (x : Real) (y : Real) : Real = let u = exp x in fst (x, 2.0) * 3.0\n")
    prog = lamad.load(path)
    g = graph.of_program(prog, "f", prog.evaluate("(2.0, 5.0)"), grad=True)
    assert sorted(n.label for n in g.nodes) == sorted(["x", "y", "3", "*"])
    assert [g.cotangents.get(i) for i in g.inputs] == [3.0, None]  # y is not used: no cotangent reaches it


def test_a_function_of_a_record_is_drawn_with_an_input_per_field():
    prog = lamad.loads("type L = {w : Real, b : Real}\n"
                       "def f (l : L) (x : Real) : Real = let {w, b} = l in tanh (w * x + b) + {s = l.w}.s\n")
    l, x = {"w": 0.5, "b": -0.25}, 2.0
    g = graph.of_program(prog, "f", prog.evaluate("({w = 0.5, b = -0.25}, 2.0)"), grad=True)
    inputs = {g.nodes[i].label: g.cotangents[i] for i in g.inputs}
    assert set(inputs) == {"l.b", "l.w", "x"}
    expected_l, expected_x = lamad.grad(prog.f, argnums=(0, 1))(l, x)
    np.testing.assert_allclose(inputs["l.w"], expected_l["w"], rtol=1e-12)
    np.testing.assert_allclose(inputs["l.b"], expected_l["b"], rtol=1e-12)
    np.testing.assert_allclose(inputs["x"], expected_x, rtol=1e-12)
