"""Typed scalar code (lamad/eval.py ``_Unit.real``): on NumPy in float64 a Real is a Python
float, computed with Python's operators and ``math``, and where a value is not finite the
line is computed again on NumPy's scalars.  Every value and every warning (its kind and
the operation it is located at) is the one NumPy's scalars give, which the tests here
compute with NumPy itself."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lamad
import lamad.eval
from lamad.pretty import format_value
from lamad.syntax import REAL

HEAD = "def f (x : Real) (y : Real) : Real = "


@pytest.fixture(params=["typed", "untyped"])
def tier(request, monkeypatch):
    """Typed scalar code (a small term), and the code of a big one, which is not typed
    (its Reals are floats computed as NumPy's scalars): every term counts as big."""
    if request.param == "untyped":
        monkeypatch.setattr(lamad.eval, "FIRST_TIER_NODES", 0)
    return request.param

_KIND = re.compile(r"^(.*) encountered in")
_LOCATED = re.compile(r"^<string>:1:(\d+): warning: (.*) in '(.*)'")


def _run(body: str, *args: float) -> tuple[float, set[tuple[str, str, int]]]:
    """``f`` of ``HEAD + body`` at ``args`` and its warnings, as (kind, operation, column)."""
    prog = lamad.loads(HEAD + body + "\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        value = float(prog.f(*args))
    located = set()
    for w in seen:
        m = _LOCATED.match(str(w.message))
        assert m is not None, str(w.message)
        located.add((m[2], m[3], int(m[1])))
    return value, located


def _numpy(operation, *operands: float) -> tuple[float, set[str]]:
    """``operation`` on NumPy's float64 scalars, and the kinds of warning NumPy issues."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        value = float(operation(*[np.float64(a) for a in operands]))
    return value, {_KIND.match(str(w.message))[1] for w in seen}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


INF, NAN = math.inf, math.nan
CASES = [  # one operation on two Reals: the listed differences of Python's floats from NumPy's scalars
    ("x * y", "*", lambda x, y: x * y, 1e200, 1e200),  # overflow, silent in Python
    ("x + y", "+", lambda x, y: x + y, 1.7e308, 1.7e308),
    ("x - y", "-", lambda x, y: x - y, INF, INF),  # invalid, silent in Python
    ("x * y", "*", lambda x, y: x * y, 0.0, INF),
    ("x / y", "/", lambda x, y: x / y, 1.0, 0.0),  # ZeroDivisionError in Python
    ("x / y", "/", lambda x, y: x / y, 0.0, 0.0),
    ("x / y", "/", lambda x, y: x / y, -3.0, 0.0),
    ("x / y", "/", lambda x, y: x / y, INF, 0.0),
    ("x / y", "/", lambda x, y: x / y, NAN, 0.0),
    ("x / y", "/", lambda x, y: x / y, 1e308, 1e-10),  # overflow, silent in Python
    ("x ** y", "**", lambda x, y: x ** y, -8.0, 1.0 / 3.0),  # complex in Python, ValueError in math
    ("x ** y", "**", lambda x, y: x ** y, 10.0, 400.0),  # OverflowError
    ("x ** y", "**", lambda x, y: x ** y, 0.0, -1.0),
    ("x * y", "*", lambda x, y: x * y, INF, 2.0),  # no warning anywhere
    ("x + y", "+", lambda x, y: x + y, NAN, 1.0),
    ("atan2 x y", "atan2", np.arctan2, 0.0, 0.0),
]


@pytest.mark.parametrize("body, symbol, operation, x, y", CASES)
def test_an_operation_on_floats_gives_numpys_value_and_warning_at_itself(tier, body, symbol, operation, x, y):
    value, located = _run(body, x, y)
    expected, kinds = _numpy(operation, x, y)
    assert _same(value, expected), (value, expected)
    assert located == {(kind, symbol, len(HEAD) + 1) for kind in kinds}


FUNCTIONS = [("exp", np.exp, 1000.0), ("log", np.log, 0.0), ("log", np.log, -1.0), ("sqrt", np.sqrt, -1.0),
             ("sin", np.sin, INF), ("cosh", np.cosh, 1000.0), ("log1p", np.log1p, -1.0), ("acos", np.arccos, 2.0),
             ("exp", np.exp, INF), ("tanh", np.tanh, NAN)]


@pytest.mark.parametrize("name, operation, x", FUNCTIONS)
def test_a_math_function_that_raises_gives_numpys_value_and_warning(tier, name, operation, x):
    """``math.log(0)`` is a ValueError and ``math.exp(1000)`` an OverflowError, where NumPy
    gives -inf and inf with a warning: the value and the warning are NumPy's."""
    value, located = _run(f"{name} x + 0.0 * y", x, 1.0)
    expected, kinds = _numpy(operation, x)
    assert _same(value, expected)
    assert {(kind, op, column) for kind, op, column in located if op == name} == \
        {(kind, name, len(HEAD) + 1) for kind in kinds}


def test_a_warning_nested_in_a_line_is_located_at_its_operation(tier):
    """``x * y`` overflows inside ``(x * y) - x``: the warning is at ``x * y``, not at the
    line; and a line whose operand is already infinite warns where another part overflows."""
    value, located = _run("(x * y) - x", 1e200, 1e200)
    assert value == INF and located == {("overflow", "*", len(HEAD) + 2)}
    value, located = _run("(x * x) + y", 1e200, INF)
    assert value == INF and located == {("overflow", "*", len(HEAD) + 2)}
    value, located = _run("(y - y) + x", NAN, INF)  # invalid, beside a NaN operand
    assert math.isnan(value) and located == {("invalid value", "-", len(HEAD) + 2)}
    value, located = _run("(x * y) + (y * x)", 2.0, INF)  # infinite, no warning
    assert value == INF and located == set()
    value, located = _run("(x + x) + y", 1.7e308, NAN)  # a NaN hides the overflow beside it
    assert math.isnan(value) and located == {("overflow", "+", len(HEAD) + 2)}


def test_only_numpy_in_float64_makes_reals_floats():
    from lamad.backend import get_backend

    assert type(get_backend("numpy", "float64").scalar(1.5)) is float
    assert type(get_backend("numpy", "float32").scalar(1.5)) is np.float32
    prog = lamad.loads(HEAD + "x * y\n", dtype="float32")
    with pytest.warns(lamad.LamWarning, match="overflow in '\\*'"):  # float32's own overflow, as before
        assert prog.f(1e30, 1e30).dtype == np.float32


def test_int_division_by_zero_is_still_a_located_error():
    prog = lamad.loads("def f (n : Int) : Int = n // 0\n")
    with pytest.raises(lamad.LamRuntimeError, match="integer division by zero"):
        prog.f(3)


def test_reals_cross_to_python_as_0d_arrays_and_print_as_before():
    prog = lamad.loads("def f (x : Real) : Real = sin x * x + x\ndef main = f 2.0 - 14.0\n")
    value = prog.f(np.float64(0.5))
    assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float64
    assert float(value) == float(np.sin(0.5) * 0.5 + 0.5)
    assert isinstance(lamad.grad(prog.f)(0.5), np.ndarray)
    assert format_value(float(prog.main), REAL) == \
        repr(float(np.sin(2.0) * 2.0 + 2.0 - 14.0))
    assert format_value(-12.0, REAL) == format_value(np.float64(-12.0), REAL) == "-12.0"


def test_the_gradient_of_an_overflowing_chain_is_numpys_and_warns_as_numpy():
    """The shared chain at 1: its gradient 2^n overflows in the backward pass (a sum of
    cotangents, in forcing, and the fused code): inf, with NumPy's warnings."""
    n = 1100
    lets = "; ".join(f"x{i} = x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    prog = lamad.loads(f"def loss (x0 : Real) : Real = let {lets} in x{n}\n")
    g = lamad.grad(prog.loss)
    for _ in range(2):  # both tiers
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert float(g(1.0)) == INF
        assert any("overflow" in str(w.message) for w in seen)


_OPERANDS = st.sampled_from([0.0, -0.0, 1.0, -2.5, 3.0, 1e-300, 1e200, -1e200, 1.7e308, INF, -INF, NAN])
_OPS = ["+", "-", "*", "/"]


@st.composite
def _expressions(draw, depth: int = 0):
    """An expression of ``x`` and ``y`` with + - * /, its text and a NumPy function of it."""
    if depth >= 3 or draw(st.booleans()) and depth > 0:
        name = draw(st.sampled_from(["x", "y"]))
        return name, (lambda x, y, name=name: x if name == "x" else y)
    op = draw(st.sampled_from(_OPS))
    (lt, lf), (rt, rf) = draw(_expressions(depth + 1)), draw(_expressions(depth + 1))
    fn = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}[op]
    return f"({lt} {op} {rt})", (lambda x, y: fn(lf(x, y), rf(x, y)))


@pytest.mark.parametrize("untyped", [False, True])
@settings(max_examples=100, deadline=None)
@given(_expressions(), _OPERANDS, _OPERANDS)
def test_float_compiled_arithmetic_agrees_with_numpy_scalars(untyped, expression, x, y):
    """Random lines of arithmetic on awkward operands, typed or not: the value is NumPy's
    bit for bit, and each kind of warning NumPy issues on the line is issued (at one of
    its operations)."""
    if untyped:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lamad.eval, "FIRST_TIER_NODES", 0)
            return test_float_compiled_arithmetic_agrees_with_numpy_scalars.hypothesis.inner_test(
                False, expression, x, y)
    text, function = expression
    value, located = _run(text, x, y)
    expected, kinds = _numpy(function, x, y)
    assert _same(value, expected), (text, x, y, value, expected)
    assert {kind for kind, _, _ in located} == kinds, (text, x, y, located, kinds)


def test_a_structural_builtin_passes_a_float_on_as_it_is():
    """``iterate``'s state reaches its step as a float, which typed code computes on with
    Python's operators; made NumPy's scalar there, every step computed on NumPy's scalars
    (the plain forward pass of ``iterate n (λx. sin x * x + x) x0``)."""
    from lamad.eval import python_source

    term = lamad.loads("def f (x : Real) (n : Int) : Real = iterate n (\\y. sin y * y + y) x\n").typed.terms["f"]
    call = next(line for line in python_source(term).splitlines() if "n_" in line and "_lam" in line and "=" in line)
    assert "_F(" not in call, call
    prog = lamad.loads("def f (x : Real) (n : Int) : Real = iterate n (\\y. sin y * y + y) x\n")
    y = np.float64(-1.0)
    for _ in range(5):
        y = np.sin(y) * y + y
    assert float(prog.f(-1.0, 5)) == float(y)


_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin}
_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@st.composite
def _let_lines(draw):
    """A few ``let`` bindings, each on a line of its own, of + - * mostly (runs of typed
    arithmetic, which one test guards) and now and then / or a function of :mod:`math` (which
    end a run), over ``x``, ``y`` and the bindings before; the program's body, and each
    binding as a NumPy function of the values before it."""
    names, lines, functions = ["x", "y"], [], []

    def expression(depth: int):
        if depth >= 2 or depth > 0 and draw(st.booleans()):
            i = draw(st.integers(0, len(names) - 1))
            return names[i], (lambda values, i=i: values[i])
        op = draw(st.sampled_from("+-*+-*+-*/"))
        (lt, lf), (rt, rf) = expression(depth + 1), expression(depth + 1)
        text, fn = f"({lt} {op} {rt})", (lambda values, lf=lf, rf=rf, op=op: _BINARY[op](lf(values), rf(values)))
        name = draw(st.sampled_from([None] * 6 + list(_FUNCTIONS)))
        if name is None:
            return text, fn
        return f"{name} {text}", (lambda values, fn=fn, name=name: _FUNCTIONS[name](fn(values)))
    for k in range(draw(st.integers(2, 5))):
        text, fn = expression(0)
        lines.append(f"      a{k} = {text}")
        functions.append(fn)
        names.append(f"a{k}")
    total = " + ".join(names[2:])  # every binding used, on a line of its own
    functions.append(lambda values: sum(values[3:], values[2]))
    return "let\n" + ";\n".join(lines) + f"\n  in {total}", functions


def _located_warnings(prog, *args: float) -> tuple[float, list[tuple[str, type]]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        value = float(prog.f(*args))
    return value, [(str(w.message).split("\n")[0], w.category) for w in seen]


def _identical(a: float, b: float) -> bool:
    """The same float, bit for bit but for a NaN's payload: a zero's sign counts."""
    return math.isnan(a) and math.isnan(b) or a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@settings(max_examples=60, deadline=None)
@given(_let_lines(), _OPERANDS, _OPERANDS)
def test_runs_of_typed_lines_agree_with_numpy_scalars(program, x, y):
    """Random runs of lines of arithmetic, guarded by one test each, on awkward operands
    (infinities, NaN, overflowing and zero values): the value is NumPy's bit for bit (where
    no function of :mod:`math` computes it, docs/performance.md), each line warns of what
    NumPy warns of on it, and every warning (its text, its location, its category, in
    order) is the one the code on NumPy's scalars issues (where no division splits a
    line of typed code in two)."""
    body, functions = program
    source = "def f (x : Real) (y : Real) : Real =\n  " + body + "\n"
    value, typed = _located_warnings(lamad.loads(source), x, y)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lamad.eval, "FIRST_TIER_NODES", 0)
        untyped_value, untyped = _located_warnings(lamad.loads(source), x, y)
    values, expected = [np.float64(x), np.float64(y)], set()
    for line, fn in enumerate(functions, start=3):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            values.append(np.float64(fn(values)))
        expected |= {(line, _KIND.match(str(w.message))[1]) for w in seen}
    if not any(f"{name} (" in body for name in _FUNCTIONS):  # math's functions may differ from NumPy's in the last place
        assert _identical(value, float(values[-1])) and _identical(untyped_value, value), (source, x, y, value, values)
    if "/" not in body:  # typed code computes a divisor on a line of its own, where its warning is located
        assert typed == untyped, (source, x, y, typed, untyped)
    located = {(int(m[1]), m[2]) for m in (re.match(r"<string>:(\d+):\d+: warning: (.*) in '", t) for t, _ in typed)}
    assert located == expected, (source, x, y, located, expected)


def test_a_run_of_lines_warns_where_a_line_overflows_beside_an_infinite_operand():
    """``y * y`` overflows in a run whose other lines have the infinite ``x`` as an
    operand: the run is tested line by line, and the warning is at ``y * y``."""
    body = "let a = x * y; b = a + x; c = y * y in b + c"
    value, located = _run(body, INF, 1e200)
    assert value == INF and located == {("overflow", "*", len(HEAD) + body.index("y * y") + 1)}
    value, located = _run("let a = x * y; b = a + x; c = y * x in b + c", INF, 1e200)  # x in every operation
    assert value == INF and located == set()


def test_a_run_of_typed_lines_is_tested_once(monkeypatch):
    """The chain ``x_i = x_(i-1) · x_(i-1)`` of 50 links is one run of lines: one call of
    ``math.isfinite`` tests it where its value is finite, two where ``x0`` is infinite (it
    is an operand of every operation), where a test per line made 50 and 100; its
    gradient's fused code, a run per backpropagator and its forward pass cut by the
    backpropagators it makes, a few (100 before)."""
    calls = []

    def counted(value: float) -> bool:
        calls.append(value)
        return math.isfinite(value)
    monkeypatch.setitem(lamad.eval._PRELUDE, "_finite", counted)
    n = 50
    lets = "; ".join(f"x{i} = x{i - 1} * x{i - 1}" for i in range(1, n + 1))
    prog = lamad.loads(f"def loss (x0 : Real) : Real = let {lets} in x{n}\n")
    for x0, tests in ((1.0, 1), (INF, 2)):
        calls.clear()
        assert float(prog.loss(x0)) == x0 and len(calls) == tests
    grad = lamad.grad(prog.loss)
    for _ in range(2):  # the gradient compiled once (a small function is fused at once), run twice
        calls.clear()
        assert float(grad(1.0)) == 2.0 ** n and len(calls) < 10
