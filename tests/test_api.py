"""The Python API (README.md, "The Python API"): ``lamad.load`` / ``lamad.loads``,
definitions as attributes and items, values crossing between Python and lamad, errors,
and the pass functions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import lamad

ROOT = Path(__file__).resolve().parent.parent

SOURCE = textwrap.dedent("""\
    def affine (w : Tensor) (b : Tensor) (x : Tensor) : Tensor = x @ w + b
    def halve (x : Real) : Real = x / 2
    def succ (n : Int) : Int = n + 1
    def negate (b : Bool) : Bool = not b
    def swap (p : Int * Real) : Real * Int = (snd p, fst p)
    def total (xs : List Real) : Real = fold (\\acc x. acc + x) 0.0 xs
    def scale_all (k : Real) (ts : List Tensor) : List Tensor = map (\\t. k * t) ts
    def adder (x : Real) : Real -> Real = \\y. x + y
    def apply_twice (f : Real -> Real) (x : Real) : Real = f (f x)
    def dims (t : Tensor) : Int * Int = (length (unstack t), length (unstack (transpose t)))
    def weights = randn 0 [3, 2]
    def answer = 6 * 7
    def main = halve 5.0
""")


@pytest.fixture(scope="module")
def prog():
    return lamad.loads(SOURCE)


# ------------------------------------------------------------------ loading and access

def test_loads_returns_a_program_with_every_definition(prog):
    assert isinstance(prog, lamad.LoadedProgram)
    assert list(prog) == ["affine", "halve", "succ", "negate", "swap", "total", "scale_all", "adder",
                          "apply_twice", "dims", "weights", "answer", "main"]
    assert "halve" in prog and "nope" not in prog


def test_definitions_by_attribute_and_by_item(prog):
    assert prog.answer == prog["answer"] == 42
    assert float(prog.halve(3.0)) == float(prog["halve"](3.0)) == 1.5
    np.testing.assert_array_equal(prog.weights, prog["weights"])


def test_unknown_definition(prog):
    with pytest.raises(AttributeError):
        prog.nope
    with pytest.raises(KeyError):
        prog["nope"]


def test_load_a_file_resolves_load_paths_against_it(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "v.npy", np.array([1.0, 2.0, 4.0]))
    (tmp_path / "p.lam").write_text('def v = load "data/v.npy"\ndef main = sum v\n', encoding="utf-8")
    monkeypatch.chdir(ROOT)  # not the program's directory
    for path in (tmp_path / "p.lam", str(tmp_path / "p.lam")):
        p = lamad.load(path)
        assert float(p.main) == 7.0
        np.testing.assert_array_equal(p.v, [1.0, 2.0, 4.0])


def test_load_the_examples():
    hello = lamad.load(ROOT / "examples" / "hello.lam")
    assert float(hello.main) == -12.0
    assert float(hello.f(1.0, 2.0, 3.0)) == 9.0
    data = lamad.load(ROOT / "examples" / "data.lam")
    table = np.loadtxt(ROOT / "examples" / "data" / "measurements.csv", delimiter=",")
    np.testing.assert_allclose(data.column_means(table), table.mean(axis=0))


# ------------------------------------------------------------------ values crossing over

def test_tensor_crosses_as_numpy_array(prog):
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = np.array([0.5, -0.5])
    x = np.array([[1.0, 0.0, -1.0]])
    y = prog.affine(w, b, x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float64
    np.testing.assert_array_equal(y, x @ w + b)
    # nested lists and integer arrays are accepted as Tensors too
    np.testing.assert_array_equal(prog.affine(w.tolist(), [0, 0], np.array([[1, 1, 1]])), [[9.0, 12.0]])


def test_an_array_of_the_backends_dtype_crosses_as_it_is_and_any_other_is_converted(prog):
    """A float64 NumPy array is the lamad Tensor itself, as ``asarray`` would give it
    back, without its tests; a float32 array, an integer array, a list, a subclass are
    converted, and what cannot be a tensor is still refused."""
    class Subclass(np.ndarray):
        pass

    w = np.ones((3, 2))
    assert prog.affine.arguments((w,))[0] is w
    for given in (np.ones((3, 2), dtype=np.float32), np.ones((3, 2), dtype=int), [[1.0, 2.0]], w.view(Subclass)):
        got = prog.affine.arguments((given,))[0]
        assert type(got) is np.ndarray and got.dtype == np.float64 and got is not given
    with pytest.raises(lamad.LamArgumentError, match="complex"):
        prog.affine(np.ones((3, 2), dtype=complex), np.zeros(2), np.ones((1, 3)))


def test_arguments_all_of_the_backends_kind_are_taken_as_they_are_and_one_of_another_is_converted(prog):
    """Where every argument is an array or a scalar of the backend's dtype, the arguments
    are the lamad values themselves; one of another dtype among them is converted, as it
    is alone, and one that is not a value of its type is refused as it is alone."""
    w, b, x = np.ones((3, 2)), np.zeros(2), np.ones((1, 3))
    assert all(got is given for got, given in zip(prog.affine.arguments((w, b, x)), (w, b, x)))
    half = np.float64(2.0)
    assert type(prog.halve.arguments((half,))[0]) is float  # NumPy's Reals in float64 are Python floats
    got = prog.affine.arguments((w, b.astype(np.float32), x))
    assert got[0] is w and got[2] is x and got[1].dtype == np.float64
    narrow = prog.halve.arguments((np.float32(2.5),))[0]
    assert type(narrow) is float and narrow == 2.5  # NumPy's Reals in float64 are Python floats
    assert type(lamad.loads("def f (x : Real) : Real = x").f.arguments((half,))[0]) is float
    single = lamad.loads("def f (x : Real) (t : Tensor) : Real = x", dtype="float32").f
    x32, t32 = single.arguments((half, np.ones(2)))
    assert type(x32) is np.float32 and t32.dtype == np.float32
    with pytest.raises(lamad.LamArgumentError, match="argument 1"):
        prog.affine(w, np.zeros(2, dtype=complex), x)


def test_real_crosses_as_0d_array_and_accepts_python_float(prog):
    for x in (3.0, 3, np.float64(3.0), np.array(3.0), np.float32(3.0)):
        y = prog.halve(x)
        assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == np.float64, (x, y)
        assert float(y) == 1.5
    assert isinstance(prog.main, np.ndarray) and prog.main.shape == () and float(prog.main) == 2.5


def test_real_rejects_a_non_scalar_array(prog):
    with pytest.raises(TypeError):
        prog.halve(np.ones(3))


def test_int_and_bool_cross_as_python_int_and_bool(prog):
    n = prog.succ(41)
    assert n == 42 and type(n) is int
    assert prog.negate(True) is False and prog.negate(False) is True
    assert type(prog.answer) is int
    with pytest.raises(TypeError):
        prog.succ(1.5)


def test_tuples_cross_as_tuples(prog):
    r, n = prog.swap((7, 0.25))
    assert float(r) == 0.25 and r.shape == ()
    assert n == 7 and type(n) is int
    assert prog.dims(np.zeros((4, 5))) == (4, 5)
    with pytest.raises(TypeError):
        prog.swap((1, 2.0, 3))


def test_lists_cross_as_lists(prog):
    assert float(prog.total([1.0, 2.5, 3])) == 6.5
    assert float(prog.total([])) == 0.0
    ts = [np.ones(2), np.arange(3.0)]
    out = prog.scale_all(2.0, ts)
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_array_equal(out[0], [2.0, 2.0])
    np.testing.assert_array_equal(out[1], [0.0, 2.0, 4.0])


def test_functions_cross_as_callables(prog):
    add3 = prog.adder(3.0)
    assert callable(add3) and isinstance(add3, lamad.Function)
    assert float(add3(4.0)) == 7.0
    # partial application of a definition with several parameters
    aff = prog.affine(np.eye(2), np.ones(2))
    np.testing.assert_array_equal(aff(np.array([[1.0, 2.0]])), [[2.0, 3.0]])
    # a lamad function passed back into lamad
    assert float(prog.apply_twice(add3, 1.0)) == 7.0
    assert float(prog.apply_twice(prog.halve, 8.0)) == 2.0


def test_wrong_number_of_arguments(prog):
    with pytest.raises(TypeError):
        prog.halve(1.0, 2.0)
    with pytest.raises(TypeError):
        prog.halve()


def test_float32_program():
    p = lamad.loads("def third = 1.0 / 3.0\ndef double (t : Tensor) : Tensor = 2 * t\n", dtype="float32")
    assert p.third.dtype == np.float32 and float(p.third) == float(np.float32(1) / np.float32(3))
    assert p.double(np.ones(3)).dtype == np.float32


# ------------------------------------------------------------------ definitions without parameters: computed once

def test_definition_without_parameters_is_computed_once(tmp_path):
    """``v`` reads a file; after it has been used once the file changes, and every later use
    (direct, or through another definition) still sees the first value: it was not computed
    again."""
    np.save(tmp_path / "v.npy", np.array([1.0, 2.0]))
    src = 'def v = load "v.npy"\ndef total = sum v\ndef plus (x : Real) : Real = x + sum v\n'
    p = lamad.loads(src, base_dir=tmp_path)
    first = p.v
    np.testing.assert_array_equal(first, [1.0, 2.0])
    np.save(tmp_path / "v.npy", np.array([100.0, 200.0, 300.0]))
    assert p.v is first and p["v"] is first
    assert float(p.total) == 3.0
    assert float(p.plus(1.0)) == 4.0
    (tmp_path / "v.npy").unlink()
    assert p.v is first
    # a fresh program reads the file again (and finds it gone: a located run-time error)
    with pytest.raises(lamad.LamRuntimeError):
        lamad.loads(src, base_dir=tmp_path).v


def test_random_definition_is_the_same_value_each_time(prog):
    assert prog.weights is prog.weights
    np.testing.assert_array_equal(prog.weights, np.random.default_rng(0).standard_normal((3, 2)))


# ------------------------------------------------------------------ errors

def error_lines(err: lamad.LamError) -> list[str]:
    return str(err).split("\n")


def test_syntax_error_is_a_lamerror_with_location():
    src = "def f (x : Real) : Real = x\ndef main = f (1.0 +)\n"
    with pytest.raises(lamad.LamSyntaxError) as info:
        lamad.loads(src, filename="bad.lam")
    assert isinstance(info.value, lamad.LamError)
    head, line, caret = error_lines(info.value)
    assert head.startswith("bad.lam:2:20: syntax error:")
    assert line == "    def main = f (1.0 +)"
    assert caret == "    " + " " * 19 + "^"


def test_type_error_is_a_lamerror_with_location(tmp_path):
    path = tmp_path / "bad.lam"
    path.write_text("def f (x : Real) : Real = x\ndef main = f true\n", encoding="utf-8")
    with pytest.raises(lamad.LamTypeError) as info:
        lamad.load(path)
    head, line, caret = error_lines(info.value)
    assert head.startswith(f"{path}:2:14: type error:") and "Bool" in head
    assert line == "    def main = f true"
    assert caret == "    " + " " * 13 + "^^^^"


def test_runtime_error_in_a_call_points_at_the_primitive(prog):
    with pytest.raises(lamad.LamRuntimeError) as info:
        prog.affine(np.ones((3, 2)), np.zeros(2), np.ones((1, 4)))
    head, line, caret = error_lines(info.value)
    assert head.startswith("<string>:1:")
    assert "runtime error" in head and "(1, 4)" in head and "(3, 2)" in head
    assert line == "    " + SOURCE.splitlines()[0]
    column = int(head.split(":")[2])
    assert caret.index("^") == 4 + column - 1
    assert line[caret.index("^"):caret.index("^") + caret.count("^")] == "x @ w"


def test_runtime_error_in_a_definition_without_parameters():
    p = lamad.loads("def ok = 1\ndef bad = scalar (ones [2, 2])\n", filename="s.lam")
    assert p.ok == 1
    with pytest.raises(lamad.LamRuntimeError) as info:
        p.bad
    head, line, caret = error_lines(info.value)
    assert head.startswith("s.lam:2:11: runtime error:") and "(2, 2)" in head
    assert line == "    def bad = scalar (ones [2, 2])" and caret.strip() == "^" * len("scalar (ones [2, 2])")


# ------------------------------------------------------------------ the passes: parse, typecheck, pretty, evaluate

def test_parse_and_pretty_round_trip():
    term = lamad.parse("\\(x, y). let z = x * y in if z > 0.0 then z else -z")
    unicode = lamad.pretty(term)
    ascii_ = lamad.pretty(term, ascii=True)
    assert unicode.startswith("λ") and "·" in unicode
    assert ascii_.startswith("\\") and all(ord(c) < 128 for c in ascii_)
    for text in (unicode, ascii_):
        assert lamad.pretty(lamad.parse(text)) == unicode


def test_typecheck_a_parsed_program():
    program = lamad.parse_program("def f (x : Real) (t : Tensor) = x * t\ndef main = sum (f 2.0 (ones [3]))\n")
    typed = lamad.typecheck(program)
    assert {name: lamad.pretty_type(t) for name, t in typed.types.items()} == {
        "f": "Real → Tensor → Tensor", "main": "Real"}
    assert lamad.pretty_type(typed.types["f"], ascii=True) == "Real -> Tensor -> Tensor"
    with pytest.raises(lamad.LamTypeError):
        lamad.typecheck(lamad.parse_program("def main = 1.0 && true\n"))


def test_evaluate_a_typechecked_term():
    from lamad.backend import get_backend
    from lamad.prims import Runtime

    typed = lamad.typecheck(lamad.parse_program(
        "def f (x : Real) : Real = 3 * x\ndef main = f 2.0 + sum (ones [2, 2])\n"))
    runtime = Runtime(get_backend("numpy"), Path.cwd())
    f = lamad.evaluate(typed.terms["f"], runtime)
    assert float(f(np.float64(5.0))) == 15.0
    assert float(lamad.evaluate(typed.terms["main"], runtime, {"f": f})) == 10.0


def test_pretty_a_program_parses_back_to_the_same_types():
    program = lamad.parse_program(SOURCE)
    printed = lamad.pretty(program)
    again = lamad.typecheck(lamad.parse_program(printed))
    assert again.types == lamad.typecheck(program).types
    assert lamad.pretty(lamad.parse_program(printed)) == printed


def test_backprop_needs_the_types_of_the_definitions_it_uses_only():
    """←D(f) is checked in ←D(Γ) for the definitions f uses; a definition elsewhere in the
    program of a target type (a pullback, Real ⊸ Real) is transformed too when it is used
    (nesting: ←D(A ⊸ B) = ←D(A) ⊸ ←D(B))."""
    prog = lamad.loads(textwrap.dedent("""\
        def f (x : Real) : Real = x * x
        def pullback = snd (vjp f 1.0)
        def g (x : Real) : Real = pullback x
    """), "lin.lam")
    name, ty, term = prog.backprop("f")
    assert lamad.pretty_type(ty) == "Real × Real⊥ → Real × Real⊥"
    name, ty, term = prog.backprop("g")
    assert lamad.pretty_type(ty) == "Real × Real⊥ → Real × Real⊥"
    assert float(lamad.grad(prog.g)(3.0)) == 2.0  # g x = f'(1) x


def test_define_adds_replaces_and_checks_again_what_uses_a_replaced_definition():
    """LoadedProgram.define, the REPL's ``def``: the program stays one a file could hold."""
    prog = lamad.loads("def k = 2.0\ndef g (x : Real) : Real = k * x\ndef h = 1.0\n")
    assert prog.g(1.0) == 2.0 and prog.h == 1.0
    prog.define(lamad.parse_program("def k = 3.0\ndef m = g 2.0"))
    assert list(prog.types) == ["h", "k", "g", "m"]  # g, which uses k, is checked again after the new k
    assert [d.name for d in prog.typed.program.defs] == list(prog.types)
    assert prog.g(1.0) == 3.0  # its value was computed again
    with pytest.raises(lamad.LamTypeError, match="'g' depends on 'k', redefined here, and no longer type-checks"):
        prog.define(lamad.parse_program("def k = true"))
    assert prog.types["k"] == lamad.parse_type("Real") and prog.g(1.0) == 3.0  # unchanged
    prog.define(lamad.parse_program("def sin = 1.0\ndef uses_sin = sin + 1.0"))  # a builtin is shadowed
    assert float(prog["uses_sin"]) == 2.0


# --------------------------------------------------------------------- wrong arguments

_ARGUMENT_ERRORS = [
    # (what is called, the words its message must hold)
    ("lamad.grad(f)('x')", ["f: argument 0 expects a value of type Real", "'x' (str)"]),
    ("lamad.grad(3)", ["lamad.grad: parameter 'f' expects a function", "3 (int)"]),
    ("lamad.hessian([1])", ["lamad.hessian: parameter 'f'", "[1] (list)"]),
    ("lamad.jvp(f, 1.0, 2.0)", ["lamad.jvp: parameter 'primals' expects a tuple or list", "1.0 (float)"]),
    ("lamad.hvp(f, (1.0,), 2.0)", ["lamad.hvp: parameter 'tangents' expects a tuple or list", "2.0 (float)"]),
    ("lamad.jvp(f, (1.0,), ('x',))", ["lamad.jvp: tangent 0 expects a value of type Real", "'x' (str)"]),
    ("lamad.vjp(3, 1.0)", ["lamad.vjp: parameter 'f' expects a function", "3 (int)"]),
    ("lamad.vjp(f)", ["lamad.vjp: f takes 1 argument(s), got 0"]),
    ("lamad.vjp(f, 1.0, 2.0)", ["lamad.vjp: f takes 1 argument(s), got 2"]),
    ("lamad.grad(f, argnums='a')", ["parameter 'argnums' expects an int or a tuple of ints", "'a' (str)"]),
    ("lamad.grad(f, argnums=1.5)", ["parameter 'argnums'", "1.5 (float)"]),
    ("lamad.grad(f, argnums=True)", ["parameter 'argnums'", "True (bool)"]),
    ("lamad.grad(f, argnums=1)", ["parameter 'argnums' expects argument numbers from 0 to 0", "got 1"]),
    ("lamad.grad(f, argnums=(0, -1))", ["parameter 'argnums'", "got (0, -1)"]),
    ("lamad.value_and_grad(c)", ["lamad.value_and_grad: parameter 'f'", "(ndarray)"]),
    ("f('x')", ["f: argument 0 expects a value of type Real", "'x' (str)"]),
    ("f(1.0, 2.0)", ["f takes 1 argument(s), got 2"]),
    ("lamad.load(3)", ["lamad.load: parameter 'path' expects a file name", "3 (int)"]),
    ("lamad.loads(None)", ["lamad.loads: parameter 'source' expects the text of a program", "None (NoneType)"]),
]


@pytest.mark.parametrize("call, words", _ARGUMENT_ERRORS, ids=[c for c, _ in _ARGUMENT_ERRORS])
def test_a_wrong_argument_raises_lamads_own_error_naming_it(call, words):  # also a TypeError and a ValueError
    """These leaked AttributeError ('int' object has no attribute 'program'), ValueError
    (could not convert string to float) and TypeError ('float' object is not iterable)."""
    prog = lamad.loads("def f (x : Real) : Real = x * x\ndef c = 2.0")
    with pytest.raises(lamad.LamArgumentError) as info:
        eval(call, {"lamad": lamad, "f": prog.f, "c": prog.c})
    assert isinstance(info.value, lamad.LamError) and isinstance(info.value, TypeError)
    message = str(info.value)
    assert message.startswith("argument error: ")
    for word in words:
        assert word in message, message


def test_numpy_warnings_are_located_lamad_warnings(tmp_path):
    """NumPy's RuntimeWarnings leaked from compiled code as `<lamad>:3: RuntimeWarning:
    overflow encountered in exp`: they are a LamWarning (a UserWarning) whose message is
    located as an error is, at the operation that warned, issued from the caller's line."""
    path = tmp_path / "w.lam"
    path.write_text("def big = exp 1000.0\ndef f (x : Real) : Real = 2.0 * exp (x * 3.0) + 1.0 / x\n",
                    encoding="utf-8")
    prog = lamad.load(path)
    with pytest.warns(lamad.LamWarning) as record:
        assert prog.big == np.inf
    assert issubclass(lamad.LamWarning, UserWarning) and record[0].filename == __file__
    assert str(record[0].message) == f"{path}:1:11: warning: overflow in 'exp'\n    def big = exp 1000.0\n" \
                                     f"              ^^^^^^^^^^"
    with pytest.warns(lamad.LamWarning) as record:
        assert prog.f(0.0) == np.inf
    assert [str(w.message).split("\n")[0] for w in record] == [f"{path}:2:49: warning: divide by zero in '/'"]
    with pytest.warns(lamad.LamWarning, match="2:33: warning: overflow in 'exp'"):
        prog.f(400.0)
    with pytest.warns(lamad.LamWarning, match="<input>:1:1: warning: divide by zero in 'log'"):
        prog.evaluate("log 0.0")
    with pytest.warns(lamad.LamWarning, match="2:49: warning: divide by zero in '/'"):
        lamad.grad(prog.f)(0.0)


def test_load_of_a_file_that_is_not_utf8_is_a_lamad_error(tmp_path):
    """lamad.load of a Latin-1 file raised Python's UnicodeDecodeError."""
    (tmp_path / "latin1.lam").write_bytes(b"def main = 1.0 -- caf\xe9\n")
    with pytest.raises(lamad.LamError) as e:
        lamad.load(tmp_path / "latin1.lam")
    assert str(e.value).startswith(f"{tmp_path / 'latin1.lam'}:1:22: error: the file is not UTF-8 text: byte 0xe9")
