"""The evaluator's fast paths compute what the general ones do: each special case
of the gradient runtime is checked against central finite differences (float64) or an
independent formula, on the shapes that take it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import lamad
from lamad import allocator
from numeric import assert_same_gradient, numeric_gradient
from programs import programs

RNG = np.random.default_rng(5)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def central_differences(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (f(up) - f(down)) / (2 * eps)
    return g


MATMUL = lamad.loads("def f (x : Tensor) (y : Tensor) : Real = sum (tanh (x @ y))").f


@pytest.mark.parametrize("xs, ys", [((3, 4), (4,)), ((4,), (4, 2)), ((4,), (4,)), ((3, 4), (4, 2)),
                                    ((2, 3, 4), (4,)), ((4,), (2, 4, 3))])
def test_matmul_gradients_for_every_rank(xs, ys):
    x, y = RNG.normal(size=xs), RNG.normal(size=ys)
    dx, dy = lamad.grad(MATMUL, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(dx, central_differences(lambda v: np.sum(np.tanh(v @ y)), x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dy, central_differences(lambda v: np.sum(np.tanh(x @ v)), y), rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------- compiled code (lamad/eval.py)


def value(source: str):
    return lamad.loads(source).main


def test_a_closure_keeps_the_values_it_captured_when_names_are_rebound():
    assert value("def main = let x = 1; f = \\y. x + y; x = 10 in f 0 + x") == 11
    assert value("def main = let f = \\x. \\y. x + y; g = f 1; x = 100 in g 2 + x") == 103
    assert value("def main = let (x, y) = (1, 2); (y, x) = (x, y) in x * 10 + y") == 21


def test_a_let_bound_tuple_evaluates_every_part_before_binding_any():
    assert value("def main = let x = 1; (x, y) = (x + 1, x) in x * 10 + y") == 21


def test_branches_nested_deeper_than_the_indentation_python_allows_evaluate():
    depth = 300  # past MAX_INDENT, and past the 100 levels of Python's tokenizer
    chain = "".join(f"if x < {i}.0 then {i}.0 else " for i in range(depth)) + "-1.0"
    prog = lamad.loads(f"def f (x : Real) : Real = {chain}\ndef g (x : Real) : Real = x * f x")
    assert float(prog.f(150.5)) == 151.0 and float(prog.f(1e9)) == -1.0
    assert float(lamad.grad(prog.g)(150.5)) == 151.0


def test_a_body_is_straight_line_python_with_operators_inline():
    from pathlib import Path

    from lamad.backend import get_backend
    from lamad.eval import python_source
    from lamad.prims import Runtime

    term = lamad.loads("def f (x : Real) : Real = let y = x * x in y + 1.0 - sin y").typed.terms["f"]
    source = python_source(term, Runtime(get_backend("numpy", "float32"), Path.cwd()))
    body = source[source.index("def _lam1"):source.index("except")].splitlines()
    assert body[2].strip() == "v_4 = x_2 * x_2" and "_f" in body[3]  # sin, the one call
    assert body[4].strip() == "v_8 = (v_4 + _k1) - v_6"  # arithmetic nested on one line: NumPy's temporaries
    assert len([line for line in body if line.strip()]) == 6 and "_partial" not in source


def test_typed_scalar_code_computes_reals_on_floats_with_operators_and_math():
    """On NumPy in float64 a Real is a float: the same lines, each with its way back to
    NumPy's scalars where a value is not finite (docs/performance.md, typed scalar code)."""
    from lamad.eval import python_source

    term = lamad.loads("def f (x : Real) : Real = let y = x * x in y + 1.0 - sin y").typed.terms["f"]
    source = python_source(term)
    body = [line.strip() for line in source[source.index("def _lam1"):source.index("except _ERRORS")].splitlines()]
    assert body[2] == "v_4 = x_2 * x_2" and body[3].startswith("if not _finite(v_4) and (")
    assert body[3].endswith("v_4 = _float(_F(x_2) * _F(x_2))")
    assert body[4].startswith("try: v_6 = _m") and body[5].startswith("except _FLOAT_ERRORS: v_6 = _float(_f")
    assert body[6] == "v_8 = (v_4 + _k1) - v_6"  # still nested on one line, the literal a float
    test, _, again = body[7].partition(": v_8 = ")
    assert "_finite(v_6)" in test and "_finite(_k1)" not in test and "_k1 ==" not in test  # a finite literal is not tested
    assert again == "_float((_F(v_4) + _F(_k1)) - _F(v_6))"


@pytest.mark.parametrize("term, failing", [("x * (y + y)", "x * (y + y)"), ("x + (x * y)", "x * y"),
                                           ("-(x * y) + x", "x * y")])
def test_a_failing_operation_nested_in_a_line_is_located_at_itself(term, failing):
    head = "def f (x : Tensor) (y : Tensor) : Tensor = "
    prog = lamad.loads(head + term + "\n")
    with pytest.raises(lamad.LamRuntimeError) as e:
        prog.f(np.ones((2, 3)), np.ones(4))
    start = len(head) + term.index(failing) + 1
    assert (e.value.span.column, e.value.span.end_column) == (start, start + len(failing))
    assert e.value.message.startswith("'*': operands could not be broadcast")


def test_a_failing_builtin_deep_in_a_function_is_located_at_its_application():
    prog = lamad.loads("def f (x : Tensor) : Real =\n  let y = x * 2.0 in\n  sum (y @ ones [5])\n"
                       "def main = f (ones [3])")
    with pytest.raises(lamad.LamRuntimeError) as e:
        prog.main
    assert e.value.span.line == 3 and e.value.span.column == 8 and "'@'" in e.value.message


def test_a_tensor_is_let_go_after_its_last_use_not_when_the_function_returns():
    from lamad.eval import python_source

    source = "def f (x : Tensor) : Real = let y = x @ x; z = exp y in sum z + sum y"
    body = [line.strip() for line in python_source(lamad.loads(source).typed.terms["f"]).splitlines()]
    as_array = "(x_2 if x_2.__class__ is not float else _F(x_2))"  # a Real promoted to a Tensor: NumPy's
    assert body[2:8] == [f"v_3 = _f1({as_array}, {as_array})", "v_4 = _f2(v_3)", "v_5 = _f3(v_4)",
                         "del v_4", "v_6 = _f3(v_3)", "del v_3"]  # z = exp y; y, used once more
    assert lamad.loads(source).f(np.eye(2)) == pytest.approx(2 * np.e + 2 + 2)


def test_a_gradient_holds_no_more_memory_than_a_hand_written_backward_pass():
    """Backpropagators keep what they need: of ``x @ w1`` in ``x @ w1 + b1`` only its shape
    (``like``), and compiled code lets go of every other temporary after its last use, so
    at its peak lamad's gradient of a two-layer network holds no more than NumPy by hand.
    (It held a third more when backpropagators kept the pre-activations for their shape.)"""
    import tracemalloc

    prog = lamad.loads("def loss (w1 : Tensor) (b1 : Tensor) (w2 : Tensor) (x : Tensor) : Real =\n"
                       "    sum (square (relu (x @ w1 + b1) @ w2))")
    x, w1, b1, w2 = RNG.normal(size=(1000, 64)), RNG.normal(size=(64, 128)), RNG.normal(size=128), \
        RNG.normal(size=(128, 10))

    def by_hand():
        a1 = x @ w1 + b1
        h = np.maximum(a1, 0.0)
        out = h @ w2
        d_out = 2 * out
        d_a1 = (d_out @ w2.T) * (a1 > 0)
        return np.sum(out * out), (x.T @ d_a1, np.sum(d_a1, axis=0), h.T @ d_out)

    def peak(f) -> int:
        f()
        tracemalloc.start()
        result = f()
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size, result

    gradient = lamad.value_and_grad(prog.loss, argnums=(0, 1, 2))
    lamad_peak, (value, grads) = peak(lambda: gradient(w1, b1, w2, x))
    hand_peak, (hand_value, hand_grads) = peak(by_hand)
    np.testing.assert_allclose(value, hand_value, rtol=1e-12)
    for g, h in zip(grads, hand_grads):
        np.testing.assert_allclose(g, h, rtol=1e-10)
    assert lamad_peak <= hand_peak


def test_patterns_nested_deeper_than_python_allows_in_one_line_bind():
    depth = 250  # Python's parser allows 200 parentheses
    pattern, value = "x", "1.0"
    for i in range(depth):
        pattern, value = f"({pattern}, y{i})", f"({value}, {i}.0)"
    prog = lamad.loads(f"def main : Real = let {pattern} = {value} in x + y0 + y{depth - 1}\n"
                       f"def f (p : Real) : Real = let {pattern} = {value.replace('1.0', 'p', 1)} in x * x")
    assert float(prog.main) == 1.0 + 0.0 + depth - 1
    assert float(lamad.grad(prog.f)(3.0)) == 6.0


def test_alike_backpropagators_share_their_code_and_fail_at_their_own_spans():
    """A chain of alike links compiles one Python function per kind of backpropagator, not
    one per link; a failure in the backward pass is still located at its own link."""
    from lamad.eval import python_source
    from lamad.reverse import backprop

    links = ["let y1 = sin x * x"] + [f"    y{i + 1} = sin y{i} * y{i}" for i in range(1, 6)]
    source = "def f (x : Tensor) : Tensor =\n  " + ";\n".join(links) + "\n  in y6\n"
    prog = lamad.loads(source)
    code = python_source(backprop(prog.typed.terms["f"]))
    # the function of f, and the backpropagators of sin and * of the first link, whose x is an
    # argument, and of the others, whose y a builtin computed (NumPy's: its code converts no float)
    assert code.count("def _lam") == 5
    from lamad.gradient import force, sum_apply

    _, pullback = lamad.vjp(prog.f, np.ones(3))
    backprops = pullback.closure.backprops  # past the pullback, which refuses the cotangent itself
    with pytest.raises(lamad.LamRuntimeError) as e:
        force(sum_apply(backprops, [np.ones(4)]))  # a cotangent of the wrong shape fails in the last link
    assert e.value.span.line == 7 and "'*'" in e.value.message


def test_a_backpropagator_takes_what_a_builtin_computed_as_numpys_and_converts_only_its_cotangent():
    """Typed code makes a Tensor that may hold a float (a Real promoted) NumPy's scalar where
    it meets tensors; a value a builtin computed never is one, in the function that
    computed it or in a closure that captured it (lamad/eval.py, ``_Function.lookup``):
    the backpropagator of ``y * y`` for ``y = sin x``, which captures ``y`` and the shapes
    ``like`` kept, tests none of them, only its cotangent; the one of ``sin x`` still tests
    the argument ``x``."""
    import re

    from lamad.eval import python_source
    from lamad.reverse import backprop

    code = python_source(backprop(lamad.loads("def f (x : Tensor) : Tensor = let y = sin x in y * y").typed.terms["f"]))
    functions = {m[1]: m[2] for m in re.finditer(r"def (_lam\d+)\((.*?)\):", code)}
    bodies = dict(zip(functions, re.split(r"def _lam\d+\(.*?\):", code)[1:]))
    converted = {name: set(re.findall(r"\((\w+) if \1\.__class__ is not float", body)) for name, body in bodies.items()}
    product = next(name for name, body in bodies.items() if ".shape" in body)  # its unbroadcasts
    assert converted[product] == {functions[product].split(", ")[1]}  # (_c, a): the cotangent alone
    assert any(len(names) > 1 for names in converted.values())  # sin's tests x, and its cotangent


def _checked_templates(monkeypatch) -> list[str]:
    """Make every backpropagator that runs the code of an alike one (lamad/eval.py,
    ``_Unit.templated``) also write its own code, and check that it is the shared code but
    for the names of its locals, with the same steps and the same captures; returns the
    names of the shared functions run so."""
    from lamad import eval as ev

    shared = []
    templated = ev._Unit.templated

    def checked(self, t, key, free, prims):
        code = templated(self, t, key, free, prims)
        maker, arguments = code.split("(", 1)
        name, index = self.makers[maker], arguments.split(", ")[0].rstrip(")")
        fn, param = self.write(t)
        lines, spans = fn.text(param)
        assert ev._canonical(lines, fn.name) == ev._canonical(dict(self.functions)[name], name)
        located = {i: [step[1:] for step in self.instances[name][int(index)].get(i)] for i in spans}
        assert located == {i: [step[1:] for step in steps] for i, steps in spans.items()}  # operations, spans
        assert code == f"{maker}({', '.join([index, *fn.outer])})"  # the same captures
        shared.append(name)
        return code

    monkeypatch.setattr(ev._Unit, "templated", checked)
    return shared


def test_backpropagators_sharing_code_by_shape_would_have_written_that_code(monkeypatch):
    """The code a backpropagator shares with alike ones (found by the shape of its term,
    without writing its own) is the code it would have had: on the raw and simplified ←D
    of every example and of the chain of the first-call benchmark."""
    from lamad.eval import python_source
    from lamad.reverse import backprop

    shared = _checked_templates(monkeypatch)
    chain = "def f (x0 : Real) : Real =\n  let " + ";\n      ".join(
        f"x{i} = sin x{i - 1} * x{i - 1} + x{i - 1}" for i in range(1, 6)) + "\n  in x5\n"
    programs = [lamad.loads(chain)] + [lamad.load(path) for path in sorted(EXAMPLES.glob("*.lam"))]
    for prog in programs:
        for name in prog.types:
            try:
                simplified = prog.backprop(name)[2]
            except lamad.LamError:
                continue  # what ←D refuses (tests/golden)
            python_source(backprop(prog.typed.terms[name]))
            python_source(simplified)
    assert len(shared) > 100


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_depth=3))
def test_backpropagators_of_generated_programs_share_only_the_code_they_would_have(sample):
    """As above, for random well-typed programs (higher-order ones, lists, tuples, …)."""
    from lamad.eval import python_source
    from lamad.reverse import backprop

    with pytest.MonkeyPatch.context() as monkeypatch:
        _checked_templates(monkeypatch)
        for term in lamad.typecheck(lamad.parse_program(sample.source)).terms.values():
            python_source(backprop(term))


def _chain(n: int, last: str) -> str:
    """``f x = let y1 = sin x * x; …; yn = sin y(n-1) * y(n-1) in last`` on a Tensor."""
    links = ["let y1 = sin x * x"] + [f"      y{i + 1} = sin y{i} * y{i}" for i in range(1, n)]
    return "def f (x : Tensor) : Real =\n  " + ";\n".join(links) + f"\n  in {last.replace('y', f'y{n}')}\n"


def test_a_long_function_runs_as_a_chain_of_chunks_that_fail_and_warn_at_their_own_lines(monkeypatch):
    """A body of more statements than one Python function runs (``CHUNK_LINES``) is
    compiled as a chain of functions, each given the locals it uses; the last, in a
    chunk of its own, still locates its failures and warnings at their applications, and
    the gradient is the one the body compiled whole computes."""
    from lamad import eval as ev

    n = 3 * ev.CHUNK_LINES // 2
    prog = lamad.loads(_chain(n, "sum (y @ ones [5])"))
    assert ev.python_source(prog.typed.terms["f"]).count("def _lam1_c") >= 2
    with pytest.raises(lamad.LamRuntimeError) as e:
        prog.f(np.ones(3))
    assert (e.value.span.line, e.value.span.column) == (n + 2, 11) and "'@'" in e.value.message
    with pytest.warns(lamad.LamWarning, match=f":{n + 2}:11: warning: invalid value in 'log'"):
        lamad.loads(_chain(n, "sum (log (y - 1.0))")).f(np.full(2, 0.5))
    source = _chain(n, "sum y")
    chunked = lamad.grad(lamad.loads(source).f)(np.array([0.3, -0.2]))
    monkeypatch.setattr(ev, "CHUNK_LINES", 10 * n)
    assert np.array_equal(lamad.grad(lamad.loads(source).f)(np.array([0.3, -0.2])), chunked)


# --------------------------------------------------------------------- the heap policy (lamad/allocator.py)

_FAULTS_PER_CALL = """
import resource, sys
import numpy as np
import lamad
print(lamad.allocator.POLICY, file=sys.stderr)
rng = np.random.default_rng(0)
gradient = lamad.grad(lamad.loads("def f (w : Tensor) (x : Tensor) : Real = sum (tanh (x @ w))").f)
w, x = rng.normal(size=(300, 200)), rng.normal(size=(400, 300))
for _ in range(3):
    gradient(w, x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    gradient(w, x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _page_faults_per_gradient(**environ: str) -> float:
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parent.parent)
    env = {name: value for name, value in os.environ.items() if name != "LAMAD_ALLOCATOR"}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])), **environ)
    done = subprocess.run([sys.executable, "-c", _FAULTS_PER_CALL], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.skipif(not allocator._glibc(), reason="the policy applies to glibc only")
def test_a_gradient_called_again_reuses_the_memory_of_the_last_call_without_faulting_pages_in():
    """Counted, not timed: the minor page faults of a gradient whose arrays (up to 940 KB)
    are freed at each return — none once lamad keeps freed memory, hundreds per call
    with the allocator as glibc sets it (``LAMAD_ALLOCATOR=system``)."""
    assert _page_faults_per_gradient() < 5
    assert _page_faults_per_gradient(LAMAD_ALLOCATOR="system") > 50


def test_the_heap_policy_is_left_alone_on_request_and_a_bad_request_is_reported():
    import io

    from lamad.allocator import keep_freed_memory

    assert "$LAMAD_ALLOCATOR=system" in keep_freed_memory({"LAMAD_ALLOCATOR": "system"})
    report = io.StringIO()
    policy = keep_freed_memory({"LAMAD_ALLOCATOR": "big"}, report)
    assert "LAMAD_ALLOCATOR='big' is not one of keep, system; using keep" in report.getvalue()
    assert policy == keep_freed_memory({}, io.StringIO())


# --------------------------------------------------------------------- forcing (lamad/gradient.py)


def _random_graph(rng: np.random.Generator, n: int, ran: list):
    """``n`` backpropagators over two inputs, each sending a multiple of its cotangent to
    one, two or three made before it (a random DAG, as a forward pass makes them); each
    body notes its id in ``ran``.  Returns the inputs, the last backpropagator, and
    every one's coefficients, for :func:`_reference_adjoints`."""
    from lamad.gradient import Backpropagator, add

    def body(captured, ct):
        targets, weights, me = captured
        ran.append(me[0].id)
        total = None
        for target, weight in zip(targets, weights):
            record = target(weight * ct)
            total = record if total is None else add(total, record)
        return total

    inputs = [Backpropagator(None), Backpropagator(None)]
    made, edges = list(inputs), []
    for _ in range(n):
        picks = rng.choice(len(made), size=min(len(made), int(rng.integers(1, 4))), replace=False)
        targets, weights = [made[i] for i in picks], list(rng.normal(size=len(picks)))
        me: list = []
        bp = Backpropagator(body, targets, weights, me)
        me.append(bp)
        made.append(bp)
        edges.append((bp, targets, weights))
    return inputs, made[-1], edges


def _reference_adjoints(root, edges) -> dict:
    """The adjoint of every node, by the chain rule over the nodes in reverse creation order."""
    adjoint = {root: 1.0}
    for bp, targets, weights in reversed(edges):
        for target, weight in zip(targets, weights):
            adjoint[target] = adjoint.get(target, 0.0) + weight * adjoint.get(bp, 0.0)
    return adjoint


@pytest.mark.parametrize("seed", range(20))
def test_forcing_runs_each_backpropagator_once_after_all_it_receives_in_decreasing_id_order(seed):
    from lamad.gradient import force

    rng = np.random.default_rng(seed)
    ran: list[int] = []
    inputs, root, edges = _random_graph(rng, 40, ran)
    reference = _reference_adjoints(root, edges)
    forced = force(root(1.0))
    reached = {bp for bp, _, _ in edges if bp in reference}
    assert sorted(ran, reverse=True) == ran and len(set(ran)) == len(ran)  # once each, largest id first
    assert set(ran) <= {bp.id for bp in reached}
    for x in inputs:
        assert forced.get(x, 0.0) == pytest.approx(reference.get(x, 0.0), rel=1e-12, abs=1e-12)


def test_forcing_a_chain_takes_no_heap_operation_when_each_body_sends_to_the_one_before(monkeypatch):
    """Counted: a body that sends to backpropagators made just before it — the pattern of a
    chain — has them run next without the heap; the scalar chain's three per link need
    one heap entry per link (the link's input, which waits for two cotangents)."""
    from lamad import gradient
    from lamad.gradient import Backpropagator, force

    pushes = []
    monkeypatch.setattr(gradient, "heappush", lambda heap, item: (pushes.append(item), heap.append(item)))

    def link(captured, ct):
        (previous,) = captured
        return previous, 2.0 * ct

    x = bp = Backpropagator(None)
    for _ in range(100):
        bp = Backpropagator(link, bp)
    assert force(bp(1.0))[x] == 2.0 ** 100 and pushes == []

    prog = lamad.loads("def loss (x0 : Real) : Real = iterate 100 (\\x. sin x * x + x) x0")
    lamad.grad(prog.loss)(0.5)
    assert len(pushes) <= 100


def test_forcing_lets_go_of_each_backpropagator_once_it_has_run(monkeypatch):
    """The graph shrinks as it is forced: when the first-made backpropagator runs (the last
    to run), the memory its successors held — an array each — has been freed; and a
    gradient holds no reference to the graph's root while forcing it."""
    import sys
    import tracemalloc

    from lamad import autodiff
    from lamad.gradient import Backpropagator, force

    during: list[int] = []

    def link(captured, ct):
        return captured[0], ct

    def first(_, ct):
        during.append(tracemalloc.get_traced_memory()[0])
        return Backpropagator(None)(ct)

    tracemalloc.start()
    try:
        bp = Backpropagator(first)
        for _ in range(200):
            bp = Backpropagator(link, bp, np.ones(1000))  # 8 KB each
        sent = [bp(1.0)]
        del bp
        before = tracemalloc.get_traced_memory()[0]
        force(sent.pop())
    finally:
        tracemalloc.stop()
    assert before - during[0] > 190 * 8000

    refs = []
    original = autodiff.force
    monkeypatch.setattr(autodiff, "force",
                        lambda sent, once: (refs.append(sys.getrefcount(sent[0])), original(sent, once))[1])
    lamad.grad(lamad.loads("def f (x : Real) : Real = iterate 5 (\\y. sin y * y) x").f)(1.0)
    assert refs == [2]  # the record, and getrefcount's own argument


# --------------------------------------------------------------------- the fixed cost of a call (lamad/api.py)


def _python_calls(fn, *args) -> list[str]:
    """The Python functions one call of ``fn`` runs (after the first two, which compile
    ←D of the function in its two tiers: lamad/eval.py, ``_LamSource``), by name."""
    import sys

    fn(*args)
    fn(*args)
    names: list[str] = []

    def profile(frame, event, arg):
        if event == "call":
            names.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return names


def test_a_gradient_in_every_argument_is_made_once_and_each_call_only_runs_it():
    """Counted, not timed: after the first two calls, ``grad`` of a small function differentiates,
    lifts and compiles nothing — ←D of the function and the gradient's value are kept —
    and runs some twenty Python functions (41 when the gradient was made again per call,
    26 when its point was walked with a test of its type per node and its warnings caught
    by a context manager, 21 when its result's primal was found by a call)."""
    prog = lamad.loads("def f (x : Real) : Real = x * x\ndef g (w : Tensor) (x : Tensor) : Real = sum (w @ x)")
    calls = _python_calls(lamad.grad(prog.f), 1.5)
    assert not {"relift", "lift", "transformed", "derive", "compile", "constant"} & set(calls)
    assert len(calls) <= 20
    assert float(lamad.grad(prog.f)(1.5)) == 3.0
    both = lamad.grad(prog.g, argnums=(1, 0))
    assert "relift" not in _python_calls(both, np.ones((2, 3)), np.ones(3))
    dx, dw = both(np.ones((2, 3)), np.arange(3.0))
    np.testing.assert_array_equal(dw, np.tile(np.arange(3.0), (2, 1)))
    np.testing.assert_array_equal(dx, np.full(3, 2.0))
    w = RNG.normal(size=(2, 3))
    in_x = lamad.grad(prog.g, argnums=1)  # w is captured anew at each call
    np.testing.assert_array_equal(in_x(w, np.ones(3)), w.sum(axis=0))
    np.testing.assert_array_equal(in_x(2 * w, np.ones(3)), 2 * w.sum(axis=0))


def test_a_gradient_in_some_arguments_lifts_only_the_held_ones_at_each_call():
    """Counted, not timed: ``grad`` in some arguments, the others held constant, applies ←D
    of the function, kept from the second call, to the wrapped point and the held arguments
    lifted as constants — no term applied, no closure over the held arguments made and
    lifted, no gradient value made, a held tensor paired with ``λa ⊸ 0`` without a walk
    of its type (56 Python functions per call when they were; 25, its arrays taken
    with no call; 23 with ←D applied to all its arguments in one call) — and gives the
    gradients bit for bit of ``value_and_grad`` written in lamad."""
    prog = lamad.loads("def g (w : Tensor) (x : Tensor) : Real = sum (w @ x)\n"
                       "def loss (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) : Real =\n"
                       "    sum ((w2 @ tanh (w1 @ x) - y) ** 2) / real (dim 1 x)\n"
                       "def vg (w1 : Tensor) (w2 : Tensor) (x : Tensor) (y : Tensor) =\n"
                       "    value_and_grad (\\(a, b). loss a b x y) (w1, w2)\n")
    calls = _python_calls(lamad.grad(prog.g, argnums=1), np.ones((2, 3)), np.ones(3))
    assert not {"transformed", "derive", "compile", "constant", "operator", "_main", "lift", "relift"} & set(calls)
    assert len(calls) <= 23
    # the wine network's loss: no call converts its four arrays, walks its point or its
    # gradients leaf by leaf (66 Python functions when they did, 43 when ←D was applied to
    # one argument at a time, ``x ** 2.0``'s rule ran ``x ** 1.0`` and ``mul0``, and ``dim``
    # and ``real`` called helpers); of ←D's compiled functions only the uncurried entry,
    # the body of the innermost lambda and the backpropagator run
    wine = _python_calls(lamad.value_and_grad(prog.loss, argnums=(0, 1)), *(np.ones(s) for s in
                                                                           ((4, 5), (2, 4), (5, 7), (2, 7))))
    assert not {"tensor", "_wrap_real", "_collect_real", "_same", "_applied", "mul0", "axis_of"} & set(wine)
    assert [name.endswith("_u") for name in wine if name.startswith("_lam")] == [True, False, False]
    assert wine.count("_pow") == 1
    assert len(wine) <= 33
    args = RNG.normal(size=(4, 5)), RNG.normal(size=(2, 4)), RNG.normal(size=(5, 7)), RNG.normal(size=(2, 7))
    value, (d1, d2) = lamad.value_and_grad(prog.loss, argnums=(0, 1))(*args)
    expected_value, (e1, e2) = prog.vg(*args)
    assert value == expected_value
    np.testing.assert_array_equal(d1, e1)
    np.testing.assert_array_equal(d2, e2)
    only, = lamad.grad(prog.loss, argnums=(1,))(*args)
    np.testing.assert_array_equal(only, e2)


def test_derivatives_of_curried_functions_are_applied_to_all_their_arguments_at_once():
    """←D of a function of several arguments is called once, by the uncurried entry the
    evaluator compiles for a chain of lambdas (lamad/eval.py ``_Unit.uncurry``), with what
    the closure captured where it is one (a definition partially applied, whose chain goes
    down through the lambda of its body), and its arguments in their order whatever order
    the lambdas capture them in; a function whose body computes before its next lambda is
    applied one argument at a time.  The gradients are those of finite differences and,
    bit for bit, those of the same gradient written in lamad, which applies ←D one argument
    at a time."""
    prog = lamad.loads("def f (a : Tensor) (b : Real) (c : Tensor) : Real = sum (c * exp a) * b + sum a\n"
                       "def scaled (s : Real) : Tensor -> Real -> Tensor -> Real = \\a b c. s * f c b a\n"
                       "def halted (a : Tensor) : Real -> Tensor -> Real = let t = sum (a * a) in \\b c. t * b * sum c\n"
                       "def in_lamad (a : Tensor) (b : Real) (c : Tensor) =\n"
                       "    (grad (\\(x, y, z). f x y z) (a, b, c), grad (\\(x, y, z). scaled 3.0 x y z) (a, b, c),\n"
                       "     grad (\\(x, y, z). halted x y z) (a, b, c))\n")
    a, b, c = RNG.normal(size=3), 0.5, RNG.normal(size=3)
    scaled = prog.scaled(3.0)
    cases = [(prog.f, "_applied" not in _python_calls(lamad.grad(prog.f, argnums=(0, 1, 2)), a, b, c)),
             (scaled, "_applied" not in _python_calls(lamad.grad(scaled, argnums=(0, 1, 2)), a, b, c)),
             (prog.halted, "_applied" in _python_calls(lamad.grad(prog.halted, argnums=(0, 1, 2)), a, b, c))]
    assert all(uncurried for _, uncurried in cases)
    for (fn, _), expected in zip(cases, prog.in_lamad(a, b, c)):
        got = lamad.grad(fn, argnums=(0, 1, 2))(a, b, c)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
        for i, x in enumerate((a, b, c)):
            point = [a, b, c]

            def at(v, i=i, point=point):
                point[i] = v
                return fn(*point)
            assert_same_gradient(got[i], numeric_gradient(at, x), where=f"{fn.name}: {i}")


def test_a_point_is_walked_as_its_type_nests_with_zeros_where_no_cotangent_arrives():
    """The walks made once per type (lamad/autodiff.py ``wrapper``, ``collector``): a flat
    tuple of reals and a nested point, each leaf's gradient in its place, zeros of its
    shape where it is not used."""
    prog = lamad.loads("def f (a : Tensor) (b : Tensor) (c : Real) : Real = sum a * c\n"
                       "def g (p : Tensor * (Real * List Tensor)) : Real = sum (fst p) * fst (snd p)\n")
    ga, gb, gc = lamad.grad(prog.f, argnums=(0, 1, 2))(np.arange(2.0), np.ones((2, 3)), 3.0)
    np.testing.assert_array_equal(ga, [3.0, 3.0])
    np.testing.assert_array_equal(gb, np.zeros((2, 3)))
    assert float(gc) == 1.0
    ga, (gr, (gl,)) = lamad.grad(prog.g)((np.ones(2), (3.0, [np.ones(4)])))
    np.testing.assert_array_equal(ga, [3.0, 3.0])
    assert float(gr) == 2.0
    np.testing.assert_array_equal(gl, np.zeros(4))


# --------------------------------------------------------------------- factored cotangents (lamad/factored.py)

RNN = lamad.loads("""
def loss (w : Tensor) (u : Tensor) (b : Tensor) (h0 : Tensor) (xs : List Tensor) : Real =
    sum (square (fold (\\h x. tanh (w @ h + u @ x + b)) h0 xs))
def scaled (v : Tensor) (u : Tensor) (h0 : Tensor) (xs : List Tensor) : Real =
    let w = v * 2.0 in sum (square (fold (\\h x. tanh (w @ h + x @ u)) h0 xs))
""")


def _rnn(rng: np.random.Generator, hidden: int, inputs: int, steps: int) -> tuple:
    return (rng.normal(size=(hidden, hidden)) / hidden, rng.normal(size=(hidden, inputs)) / inputs,
            rng.normal(size=hidden) / 10, rng.normal(size=hidden), list(rng.normal(size=(steps, inputs))))


@pytest.fixture
def materialised(monkeypatch) -> list:
    """The factored cotangents made dense, as they are."""
    from lamad import factored

    made: list = []
    original = factored._materialise
    monkeypatch.setattr(factored, "_materialise", lambda value: (made.append(value), original(value))[1])
    return made


@pytest.fixture
def unfactored(monkeypatch):
    """Outer products formed as they are made (as before they were kept factored)."""
    from lamad.prims import helpers

    def dense_outer(xp, p, q):
        return xp.outer(p, q)

    def unfactor():
        monkeypatch.setattr(helpers, "outer", dense_outer)
        monkeypatch.setattr(helpers, "Outer", np.outer)  # matmul_dx's own
    return unfactor


@pytest.mark.parametrize("seed", range(4))
def test_an_rnn_gradient_summed_as_one_matrix_product_is_the_sum_of_its_outer_products(seed, unfactored,
                                                                                        materialised):
    import sys

    sys.path.insert(0, str(EXAMPLES.parent / "benchmarks"))
    from workloads import rnn_value_and_grad, rnn_value_and_grad_one_matmul

    rng = np.random.default_rng(seed)
    args = _rnn(rng, int(rng.integers(2, 9)), int(rng.integers(1, 6)), int(rng.integers(1, 12)))
    gradient = lamad.value_and_grad(RNN.loss, argnums=(0, 1, 2))
    value, factored = gradient(*args)
    assert all(type(g) is np.ndarray for g in factored) and len(materialised) == 2  # ∂W and ∂U
    for g, by_hand, one_matmul in zip(factored, rnn_value_and_grad(*args)[1], rnn_value_and_grad_one_matmul(*args)[1]):
        np.testing.assert_allclose(g, by_hand, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(g, one_matmul, rtol=1e-12, atol=1e-15)
    w, u, b, h0, xs = args
    np.testing.assert_allclose(factored[0], central_differences(lambda v: float(RNN.loss(v, u, b, h0, xs)), w),
                               rtol=1e-6, atol=1e-9)
    unfactored()
    for g, dense in zip(factored, gradient(*args)[1]):
        np.testing.assert_allclose(g, dense, rtol=1e-12, atol=1e-15)


def test_a_factored_cotangent_reaches_a_body_dense(unfactored, materialised):
    """``w = v * 2`` receives the outer products of every step, summed factored, and its
    backpropagator's body multiplies their sum by 2: it must get the dense matrix.  The
    vector-times-matrix product ``x @ u`` is factored too.  Second derivatives (hvp,
    forward over reverse) run the same backpropagators on tangents."""
    rng = np.random.default_rng(9)
    v, u, _, h0, xs = _rnn(rng, 4, 3, 6)
    u = u.T
    grads = lamad.grad(RNN.scaled, argnums=(0, 1))(v, u, h0, xs)
    directions = (rng.normal(size=v.shape), rng.normal(size=u.shape))
    np.testing.assert_allclose(grads[0], central_differences(lambda m: float(RNN.scaled(m, u, h0, xs)), v),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(grads[1], central_differences(lambda m: float(RNN.scaled(v, m, h0, xs)), u),
                               rtol=1e-6, atol=1e-9)
    second = lamad.hvp(RNN.scaled, (v, u, h0, xs), (*directions, np.zeros_like(h0), [np.zeros(3)] * 6))
    assert all(type(g) is np.ndarray for g in (*grads, *second[:2])) and len(materialised) >= 4
    unfactored()
    for g, dense in zip(grads, lamad.grad(RNN.scaled, argnums=(0, 1))(v, u, h0, xs)):
        np.testing.assert_allclose(g, dense, rtol=1e-12, atol=1e-15)
    dense_second = lamad.hvp(RNN.scaled, (v, u, h0, xs), (*directions, np.zeros_like(h0), [np.zeros(3)] * 6))
    for g, dense in zip(second[:2], dense_second[:2]):
        np.testing.assert_allclose(g, dense, rtol=1e-12, atol=1e-15)


def test_a_factored_cotangent_acts_as_its_dense_matrix_in_all_but_sums():
    """A factored sum is its dense matrix up to the order of its additions: each element
    within the rounding of summing its terms, 4 ε Σ |term| (an element whose terms cancel
    is not within a relative 1e-14 of the other order's)."""
    import threading

    from lamad import factored
    from lamad.factored import FactoredSum, Outer

    rng = np.random.default_rng(11)
    p, q, r, s = rng.normal(size=3), rng.normal(size=2), rng.normal(size=3), rng.normal(size=2)
    d = rng.normal(size=(3, 2))
    assert type(factored.outer(np, p, q)) is np.ndarray  # outside forcing none is made
    factored.forcing.depth += 1
    try:
        elsewhere: list = []
        thread = threading.Thread(target=lambda: elsewhere.append(factored.outer(np, p, q)))
        thread.start()
        thread.join()
        assert type(factored.outer(np, p, q)) is Outer and type(elsewhere[0]) is np.ndarray  # nor in another thread
    finally:
        factored.forcing.depth -= 1
    one, two = Outer(p, q), Outer(r, s)
    dense = np.outer(p, q) + np.outer(r, s) + d
    assert type(one + two) is FactoredSum and type(d + one) is FactoredSum and type(one + d) is FactoredSum
    total = one + (two + d)
    rounding = 4 * np.finfo(float).eps * (np.abs(np.outer(p, q)) + np.abs(np.outer(r, s)) + np.abs(d))
    assert np.all(np.abs(total.dense() - dense) <= rounding)
    assert np.all(np.abs(np.asarray(d + two + one) - dense) <= rounding)
    np.testing.assert_array_equal(one * 2.0, np.outer(p, q) * 2.0)
    np.testing.assert_array_equal(2.0 * one, 2.0 * np.outer(p, q))
    np.testing.assert_array_equal(-one, -np.outer(p, q))
    np.testing.assert_array_equal(one.T, np.outer(p, q).T)
    np.testing.assert_array_equal(one[1], np.outer(p, q)[1])
    np.testing.assert_array_equal(np.tanh(one), np.tanh(np.outer(p, q)))
    np.testing.assert_array_equal(one + np.ones(2), np.outer(p, q) + 1.0)  # broadcasting: dense
    assert one.shape == (3, 2) and one.ndim == 2 and np.sum(one) == pytest.approx(np.sum(np.outer(p, q)))


def test_a_scalar_gradient_holds_a_tuple_of_residuals_a_link_in_under_200_bytes():
    """Peak memory of the gradient of ``iterate n (λx. sin x · x + x)``, traced: its steps
    chain (lamad/chains.py), so its forward pass keeps one small tuple of residuals a link,
    about 120 bytes (a backpropagator a link took 510, and 920 when each held a
    ``functools.partial``)."""
    import tracemalloc

    n = 10_000
    gradient = lamad.grad(lamad.loads("def loss (x0 : Real) (n : Int) : Real = iterate n (\\x. sin x * x + x) x0").loss)
    gradient(-1.0, n)
    tracemalloc.start()
    try:
        gradient(-1.0, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / n < 200


def test_a_factored_cotangent_gives_a_copy_to_whoever_asks_for_one():
    from lamad.factored import Outer

    one = Outer(np.ones(2), np.ones(3))
    copied = np.array(one)
    copied[0, 0] = 5.0
    assert one.dense()[0, 0] == 1.0
    assert (one + np.ones((2, 3), dtype=np.float32)).dense().dtype == np.float64



def test_a_loops_outer_products_grow_one_running_sum_per_weight_and_are_stacked_once(monkeypatch, materialised):
    """Forcing the gradient of a 50-step RNN adds each step's outer products to one
    RunningSum per weight — no FactoredSum node a step — and makes ∂W and ∂U each one
    matrix product of three stacks in all: the step's vectors ∂aₜ, which both share,
    the states and the inputs.  The stacks go when forcing ends."""
    import sys

    from lamad import factored
    from lamad.factored import FactoredSum, RunningSum

    sys.path.insert(0, str(EXAMPLES.parent / "benchmarks"))
    from workloads import rnn_value_and_grad

    steps = 50
    args = _rnn(np.random.default_rng(3), 8, 5, steps)
    gradient = lamad.value_and_grad(RNN.loss, argnums=(0, 1, 2))
    gradient(*args)
    materialised.clear()
    nodes: list = []
    stacks: list = []
    stacked = factored._stacked
    monkeypatch.setattr(FactoredSum, "__init__", lambda self, u, v: nodes.append((u, v)))
    monkeypatch.setattr(factored, "_stacked", lambda vectors: (stacks.append(stacked(vectors)), stacks[-1])[1])
    _, grads = gradient(*args)
    assert not nodes and len(stacks) == 4 and len({id(s) for s in stacks}) == 3 and factored.forcing.stacked == []
    assert [type(m) for m in materialised] == [RunningSum, RunningSum]
    for m in materialised:
        assert len(m.ps) == len(m.qs) == steps and not m.arrays and not m.terms
    assert all(p is q for p, q in zip(*(m.ps for m in materialised)))
    for g, by_hand in zip(grads, rnn_value_and_grad(*args)[1]):
        np.testing.assert_allclose(g, by_hand, rtol=1e-12, atol=1e-15)


def test_a_running_sum_is_the_sum_of_what_was_added_to_it(monkeypatch):
    """Outer products, arrays of its shape and factored sums, in any order, and its arrays
    summed once they hold more than HELD_MOST entries; an array that would broadcast
    makes it dense.  Four arrays or more are summed by one reduction of their stack, in
    the order they came."""
    from lamad import factored
    from lamad.factored import FactoredSum, Outer, RunningSum

    monkeypatch.setattr(factored, "HELD_MOST", 14)
    p, q = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))
    d = RNG.normal(size=(5, 3, 2))
    total = RunningSum((3, 2), d[0], Outer(p[0], q[0]))
    for grown in (Outer(p[1], q[1]), d[1], FactoredSum(Outer(p[2], q[2]), d[2]), d[3], Outer(p[3], q[3])):
        assert total.add(grown) is total
    assert len(total.arrays) == 1 and total.held == 6  # 18 entries held: summed
    want = sum(np.outer(a, b) for a, b in zip(p, q)) + d[:4].sum(axis=0)
    np.testing.assert_allclose(total.dense(), want, rtol=1e-13, atol=1e-15)
    row = RNG.normal(size=2)
    widened = RunningSum((3, 2), d[4], Outer(p[0], q[0])).add(row)
    assert type(widened) is np.ndarray
    np.testing.assert_allclose(widened, d[4] + np.outer(p[0], q[0]) + row, rtol=1e-13)
    many = list(RNG.normal(size=(7, 3)))
    one_by_one = many[0]
    for a in many[1:]:
        one_by_one = one_by_one + a
    np.testing.assert_array_equal(factored._summed(many), one_by_one)


def test_an_rnn_step_calls_no_python_function_where_shapes_agree():
    """Counted: in one call of the gradient of a 20-step RNN, ``unbroadcast`` of a cotangent
    whose shape agrees is a test in the compiled code, not a call (lamad/eval.py), and
    a matrix–vector product calls NumPy's ``dot`` with nothing between; ``like`` is a
    subscript of its table of zeros by a shape, not a call (four a step forward, and the
    loss's one more); a step runs ``matmul_dx`` twice backward (each keeping its outer
    product as its factors without a call of ``outer``), ``matmul_dy`` once but on the
    first step (its state is a constant)."""
    from collections import Counter

    steps = 20
    calls = Counter(_python_calls(lamad.value_and_grad(RNN.loss, argnums=(0, 1, 2)),
                                  *_rnn(np.random.default_rng(4), 6, 3, steps)))
    assert calls["unbroadcast_like"] == 0 and calls["checked"] == 2 * steps and calls["like"] == 0
    assert calls["matmul_dx"] == 2 * steps and calls["outer"] == 0 and calls["matmul_dy"] == steps - 1


# --------------------------------------------------------------------- loops of curried functions (lamad/prims/lists.py)


def _compiled_calls(fn, *args) -> int:
    """How many functions of compiled lambdas one call of ``fn`` runs (after the first two),
    not counting the uncurried entries that call them (lamad/eval.py, ``_Unit.uncurry``)."""
    return sum(name.startswith("_lam") and not name.endswith("_u") for name in _python_calls(fn, *args))


@pytest.mark.parametrize("differentiated", [False, True])
def test_a_fold_calls_its_curried_function_once_a_step_with_both_arguments(differentiated):
    """Counted: a step of ``fold (λh x. e)`` runs the compiled function of ``λx. e`` given
    ``h`` and ``x`` at once (by the uncurried entry of ``λh x. e``, lamad/eval.py), not that of ``λh. …``, which
    would make the closure ``λx. e`` a step first; so one function a step, differentiated
    or not (the steps' backward code, a step of a loop whose steps chain, runs as one
    loop: lamad/chains.py)."""
    fn = lamad.value_and_grad(RNN.loss, argnums=(0, 1, 2)) if differentiated else RNN.loss
    short, long = (_compiled_calls(fn, *_rnn(np.random.default_rng(2), 5, 3, steps)) for steps in (10, 30))
    assert long - short == 20


LOOPS = lamad.loads("""
def step (w : Tensor) (h : Tensor) (x : Tensor) : Tensor = tanh (w @ h + x)
def partial (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real = sum (fold (step w) h0 xs)
def named (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real = let f = \\h x. step w h x in sum (fold f h0 xs)
def captured (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real =
    let g = \\v. tanh (w @ v) in sum (fold (\\h x. g h + x) h0 xs)
def before (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real =
    sum (fold (\\h. let k = w @ h in \\x. tanh (k + x)) h0 xs)
def pair (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real =
    sum (fst (fold (\\(h, c) x. (tanh (w @ h + x), c + h)) (h0, h0) xs))
def ignored (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real = sum (fold (\\h x. tanh (w @ x)) h0 xs)
def chosen (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real =
    let f = if sum h0 > 0.0 then step w else (\\h x. tanh (h + w @ x)) in sum (fold f h0 xs)
def history (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real =
    fold (\\s h. s + sum (square h)) 0.0 (scan (\\h x. tanh (w @ h + x)) h0 xs)
def plus (h : Tensor) (x : Tensor) : Tensor = tanh (h + x)
def cell (w : Tensor) (k : Real) (c : Real) (h : Tensor) (x : Tensor) : Tensor = tanh (c * (w @ h) + k * x)
def reordered (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real = sum (fold (cell w 0.5 2.0) h0 xs)
def direct (w : Tensor) (h0 : Tensor) (xs : List Tensor) : Real = sum (fold plus (w @ h0) xs)
""")


def _hand_loop(name: str, w: np.ndarray, h0: np.ndarray, xs: list) -> float:
    """What the loops of :data:`LOOPS` compute, written out in NumPy."""
    h, c, total = (w @ h0 if name == "direct" else h0), h0, 0.0
    for x in xs:
        if name in ("partial", "named", "before", "pair") or name == "chosen" and np.sum(h0) > 0:
            h, c = np.tanh(w @ h + x), c + h
        elif name == "captured":
            h = np.tanh(w @ h) + x
        elif name == "ignored":
            h = np.tanh(w @ x)
        elif name == "chosen":
            h = np.tanh(h + w @ x)
        elif name == "direct":
            h = np.tanh(h + x)
        elif name == "reordered":
            h = np.tanh(2.0 * (w @ h) + 0.5 * x)
        else:  # history: the states after each step, and the one before the first
            total += np.sum(h * h)
            h = np.tanh(w @ h + x)
    return total + np.sum(h * h) if name == "history" else float(np.sum(h))


@pytest.mark.parametrize("name", ["partial", "named", "captured", "before", "pair", "ignored", "chosen", "history",
                                  "direct", "reordered"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_loops_of_curried_functions_however_made_compute_and_differentiate_as_written(name, sign):
    """A fold's (and a scan's) function called with both arguments at once where it is a
    compiled ``λh. λx. e`` — a definition, a partial application of one, a closure bound to a
    name or chosen by a branch, one whose body calls a closure it captured — and called
    one argument at a time where it is not (work before its inner lambda, a tuple
    pattern, an inner lambda that ignores ``h``, a definition whose inner lambdas capture
    its parameters in another order than they are given: ``cell``'s ``λx`` uses ``c``
    before ``k``): the values of a NumPy loop, and gradients equal to central
    differences."""
    rng = np.random.default_rng(7)
    w, h0, xs = rng.normal(size=(4, 4)) / 2, sign * np.abs(rng.normal(size=4)), list(rng.normal(size=(5, 4)))
    fn = getattr(LOOPS, name)
    np.testing.assert_allclose(float(fn(w, h0, xs)), _hand_loop(name, w, h0, xs), rtol=1e-12)
    value, gradient = lamad.value_and_grad(fn, argnums=0)(w, h0, xs)
    np.testing.assert_allclose(float(value), _hand_loop(name, w, h0, xs), rtol=1e-12)
    np.testing.assert_allclose(gradient, central_differences(lambda v: _hand_loop(name, v, h0, xs), w),
                               rtol=1e-6, atol=1e-9)


def test_each_level_of_a_chain_of_lambdas_has_an_uncurried_entry():
    """Which compiled functions carry an uncurried entry (lamad/eval.py, ``_Unit.uncurry``):
    each level of a definition of several parameters (so a partial application of one is
    called with the rest at once), and none where the outer lambda does work first or takes
    its parameter apart; a function without one is applied one argument at a time."""
    from lamad.prims.lists import uncurried

    step = LOOPS.step.closure
    w, h, x = np.eye(2), np.ones(2), np.arange(2.0)
    assert step.uncurried[1] == 3 and step(w).func.uncurried[1] == 2
    np.testing.assert_array_equal(uncurried(step, 3)(w, h, x), np.tanh(w @ h + x))
    np.testing.assert_array_equal(uncurried(step(w), 2)(h, x), np.tanh(w @ h + x))
    for ty, source in (("Real", "\\h. let k = h * 2.0 in \\x. k + x"), ("Real * Real", "\\(h, c) x. h + x + c")):
        f = lamad.loads(f"def f : {ty} -> Real -> Real = {source}").f.closure
        assert not hasattr(f, "uncurried") and not hasattr(getattr(f, "func", None), "uncurried")
        assert uncurried(f, 2)((1.0, 2.0) if "*" in ty else 1.0, 3.0) == f((1.0, 2.0) if "*" in ty else 1.0)(3.0)
