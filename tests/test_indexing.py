"""Indexing (docs/language.md, "Indexing"): ``x[i, a:b, ..., idx]`` on tensors against
NumPy's indexing for random index expressions, its derivatives against NumPy's transpose
(``np.add.at``) and finite differences, the updates ``:=`` and ``+=``, ``gather`` and
``scatter_add``, lists and tuples, how the brackets are told from a list argument, the
types, located errors, printing, and the cost of a gather's gradient."""

from __future__ import annotations

import re
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamad
from lamad import LamRuntimeError, LamSyntaxError, LamTypeError
from lamad.parser import parse_program, parse_term
from lamad.pretty import pretty
from lamad.adtypes import forward_type
from lamad.reverse import backprop_type
from lamad.syntax import App, ListLit, Prim, alpha_key
from lamad.types import infer_term, infer_type
from numeric import assert_same_gradient, directional_difference, flat, gradient_difference, host, numeric_gradient
from test_prims import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DERIVATIVES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- random index expressions


@dataclass(frozen=True)
class Case:
    """An index of a tensor of ``shape``: its positions as lamad writes them, and NumPy's key.
    Integer arrays and masks are arguments ``i1, i2, …`` of the lamad function."""

    shape: tuple[int, ...]
    texts: tuple[str, ...]
    key: tuple
    arrays: tuple[np.ndarray, ...]

    @property
    def params(self) -> str:
        kinds = ["BoolTensor" if a.dtype == bool else "IntTensor" for a in self.arrays]
        return "".join(f" (i{k + 1} : {kind})" for k, kind in enumerate(kinds))

    @property
    def index(self) -> str:
        return f"x[{', '.join(self.texts)}]"

    @property
    def names(self) -> str:
        return "".join(f" i{k + 1}" for k in range(len(self.arrays)))


def _int(draw, n: int) -> int:
    return draw(st.integers(-n, n - 1))


@st.composite
def cases(draw, max_rank: int = 3) -> Case:
    """A tensor shape and an index of it: Ints (negative ones too), slices with any bounds
    and steps (out of range ones are clipped, as in Python), at most one ``...``, and
    IntTensors (all of one shape, which NumPy broadcasts together) or one mask."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=max_rank)))
    rank = len(shape)
    count = draw(st.integers(1, rank))
    ellipsis = draw(st.one_of(st.none(), st.integers(0, count)))
    arrays_kind = draw(st.sampled_from(["ints", "mask", "none"]))
    array_shape = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    texts, key, arrays = [], [], []
    for position in range(count):
        axis = position if ellipsis is None or position < ellipsis else rank - (count - position)
        n = shape[axis]
        kinds = ["int", "slice"] + (["array"] if arrays_kind == "ints" else []) + \
            (["mask"] if arrays_kind == "mask" and not arrays else [])
        kind = draw(st.sampled_from(kinds))
        if ellipsis == position:
            texts.append("...")
            key.append(Ellipsis)
        if kind == "int":
            i = _int(draw, n)
            texts.append(str(i))
            key.append(i)
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            start, stop = draw(bound), draw(bound)
            step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
            text = f"{'' if start is None else start}:{'' if stop is None else stop}"
            texts.append(text + ("" if step is None else f":{step}"))
            key.append(slice(start, stop, step))
        else:
            if kind == "array":
                value = np.array(draw(st.lists(st.integers(-n, n - 1), min_size=int(np.prod(array_shape)),
                                               max_size=int(np.prod(array_shape)))), dtype=np.int64)
                value = value.reshape(array_shape)
            else:
                value = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
            arrays.append(value)
            texts.append(f"i{len(arrays)}")
            key.append(value)
    if ellipsis == count:
        texts.append("...")
        key.append(Ellipsis)
    return Case(shape, tuple(texts), tuple(key), tuple(arrays))


def _point(case: Case, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(case.shape)


# ----------------------------------------------------------------------------- values


@PROPERTY
@given(cases(), st.integers(0, 2 ** 16))
def test_an_index_is_numpys(case, seed):
    """``x[…]`` is NumPy's ``x[key]``, and the term prints as written and parses back."""
    program = lamad.loads(f"def f (x : Tensor){case.params} = {case.index}")
    x = _point(case, seed)
    np.testing.assert_array_equal(program.f(x, *case.arrays), x[case.key])
    term = parse_term(case.index)
    assert pretty(term) == case.index
    assert parse_term(pretty(term)) == term


@PROPERTY
@given(cases(), st.integers(0, 2 ** 16))
def test_updates_are_numpys_on_a_copy(case, seed):
    """``x[…] := v`` is a copy of ``x`` with ``v`` written at the index (an error where the
    index names a position twice), ``x[…] += v`` a copy with ``v`` added there, a
    repeated position receiving every value sent to it (``np.add.at``)."""
    x = _point(case, seed)
    v = np.random.default_rng(seed + 1).standard_normal(x[case.key].shape)
    program = lamad.loads(f"def set (x : Tensor) (v : Tensor){case.params} = {case.index} := v\n"
                          f"def add (x : Tensor) (v : Tensor){case.params} = {case.index} += v\n")
    added = x.copy()
    np.add.at(added, case.key, v)
    np.testing.assert_allclose(program.add(x, v, *case.arrays), added, rtol=1e-15)
    written = np.zeros(x.shape, dtype=int)
    np.add.at(written, case.key, 1)
    if written.max(initial=0) > 1:
        with pytest.raises(LamRuntimeError, match="names a position twice"):
            program.set(x, v, *case.arrays)
    else:
        expected = x.copy()
        expected[case.key] = v
        np.testing.assert_array_equal(program.set(x, v, *case.arrays), expected)
    np.testing.assert_array_equal(x, _point(case, seed))  # the argument is unchanged


# ----------------------------------------------------------------------------- derivatives


@DERIVATIVES
@given(cases(max_rank=2), st.integers(0, 2 ** 16))
def test_the_gradient_of_an_index_is_the_cotangent_added_into_zeros(case, seed):
    """The gradient of ``⟨x[…], c⟩`` is ``c`` added into zeros of ``x``'s shape at the
    index (``np.add.at``: repeated indices accumulate), and equals central differences;
    the tangent of ``x[…]`` along ``dx`` is ``dx[…]``."""
    x = _point(case, seed)
    rng = np.random.default_rng(seed + 1)
    c = rng.standard_normal(x[case.key].shape)
    program = lamad.loads(f"def f (x : Tensor){case.params} = {case.index}\n"
                          f"def loss (x : Tensor) (c : Tensor){case.params} : Real = sum ({case.index} * c)\n")
    expected = np.zeros_like(x)
    np.add.at(expected, case.key, c)
    got = lamad.grad(program.loss)(x, c, *case.arrays)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)
    assert_same_gradient(got, numeric_gradient(lambda p: program.loss(p, c, *case.arrays), x))
    dx = rng.standard_normal(x.shape)
    _, tangent = lamad.jvp(program.f, (x, *case.arrays), (dx, *[()] * len(case.arrays)))
    np.testing.assert_array_equal(tangent, dx[case.key])


@DERIVATIVES
@given(cases(max_rank=2), st.integers(0, 2 ** 16))
def test_the_derivatives_of_an_update_match_finite_differences(case, seed):
    """``x[…] += v`` and ``x[…] := v`` (indices distinct), differentiated in ``x`` and
    ``v`` together: the gradient and the tangent against central differences."""
    x = _point(case, seed)
    rng = np.random.default_rng(seed + 1)
    v = rng.standard_normal(x[case.key].shape)
    written = np.zeros(x.shape, dtype=int)
    np.add.at(written, case.key, 1)
    ops = [":=", "+="] if written.max(initial=0) <= 1 else ["+="]
    for op in ops:
        program = lamad.loads(f"def f (x : Tensor) (v : Tensor){case.params} = {case.index} {op} v\n"
                              f"def loss (x : Tensor) (v : Tensor) (c : Tensor){case.params} : Real = "
                              f"sum (({case.index} {op} v) * c)\n")
        c = rng.standard_normal(x.shape)
        got = lamad.grad(program.loss, argnums=(0, 1))(x, v, c, *case.arrays)
        assert_same_gradient(got, numeric_gradient(lambda p: program.loss(*p, c, *case.arrays), (x, v)),
                             where=op)
        point, direction = (x, v, *case.arrays), (rng.standard_normal(x.shape), rng.standard_normal(v.shape),
                                                  *[()] * len(case.arrays))
        _, tangent = lamad.jvp(program.f, point, direction)
        np.testing.assert_allclose(flat(tangent), directional_difference(program.f, point, direction),
                                   rtol=1e-6, atol=1e-8)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_rank=2))
def test_derivative_programs_of_indexing_print_and_parse_back(case):
    """←D and →D of a definition that indexes, updates and gathers, raw and simplified,
    printed (Unicode and ASCII) and parsed again: alpha-equivalent, of the same type."""
    program = lamad.loads(f"def f (x : Tensor) (y : IntTensor){case.params} : Real =\n"
                          f"    sum ({case.index} += {case.index}) + sum (gather 0 y x) + sum (x[y[0]] := 1.0)\n")
    for mode, type_of in ((program.backprop, backprop_type), (program.forward, forward_type)):
        types = {n: type_of(t) for n, t in program.types.items()}
        for simplified in (False, True):
            _, _, derivative = mode("f", simplified=simplified)
            checked = infer_term(derivative, types)
            for ascii in (False, True):
                text = lamad.pretty(derivative, ascii=ascii)
                again = infer_term(lamad.parse(text), types)
                assert again.ty == checked.ty and alpha_key(again) == alpha_key(checked), text


def test_repeated_indices_of_a_gather_accumulate_in_its_gradient():
    """Row 0 taken twice and row 2 once: the gradient of their sum counts row 0 twice, as
    the one-hot product it replaces does."""
    program = lamad.loads("def f (x : Tensor) : Real = sum (x[ints [0, 0, 2]])\n"
                          "def g (x : Tensor) : Real = sum (gather 1 (ints [1, 1, 1, 0]) x)\n"
                          "def h (x : Tensor) : Real = sum (onehot 3 (real (ints [0, 0, 2])) @ x)\n")
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(lamad.grad(program.f)(x), [[2, 2], [0, 0], [1, 1]])
    np.testing.assert_array_equal(lamad.grad(program.f)(x), lamad.grad(program.h)(x))
    np.testing.assert_array_equal(lamad.grad(program.g)(x), [[1, 3], [1, 3], [1, 3]])


def test_the_gradient_of_a_gather_costs_the_rows_taken_not_rows_times_data():
    """Taking 100 rows of 20,000: the backward pass makes the gradient (one array of the
    data's size) and arrays of the rows taken, nothing of rows × data as a one-hot product
    does (which this measure sees: more than 20 times the data)."""
    program = lamad.loads("def rows (x : Tensor) (i : IntTensor) : Real = sum (x[i])\n"
                          "def gathered (x : Tensor) (i : IntTensor) : Real = sum (gather 0 i x)\n"
                          "def onehots (x : Tensor) (i : IntTensor) : Real = sum (onehot 20000 (real i) @ x)\n")
    x, i = np.ones((20000, 4)), np.arange(0, 20000, 200)

    def peak(fn) -> float:
        df = lamad.grad(fn)
        df(x, i)  # compiled
        tracemalloc.start()
        try:
            df(x, i)
            return tracemalloc.get_traced_memory()[1] / x.nbytes
        finally:
            tracemalloc.stop()

    assert peak(program.rows) < 1.5
    assert peak(program.gathered) < 1.5
    assert peak(program.onehots) > 20


# ----------------------------------------------------------------------------- gather, scatter_add


def test_gather_and_scatter_add_are_numpys_take_and_add_at():
    program = lamad.loads("def g (x : Tensor) (i : IntTensor) = (gather 0 i x, gather 1 i x, gather (-1) i x)\n"
                          "def s (x : Tensor) (i : IntTensor) (v : Tensor) = scatter_add 1 i x v\n"
                          "def labels (y : IntTensor) (i : IntTensor) = (gather 0 i y, y[i])\n")
    x, i = np.arange(12.0).reshape(3, 4), np.array([2, -1, 2])
    for axis, got in enumerate(program.g(x, i)):
        np.testing.assert_array_equal(got, np.take(x, i, axis=[0, 1, -1][axis]))
    v = np.ones((3, 3))
    expected = x.copy()
    np.add.at(expected, (slice(None), i), v)
    np.testing.assert_array_equal(program.s(x, i, v), expected)
    y = np.array([5, 6, 7, 8])
    assert [list(a) for a in program.labels(y, i)] == [[7, 8, 7], [7, 8, 7]]


def test_take_keeps_its_meaning_beside_gather():
    program = lamad.loads("def f (x : Tensor) = (take 1 x, x[1], gather 0 (ints [1]) x)")
    x = np.arange(6.0).reshape(3, 2)
    took, indexed, gathered = program.f(x)
    np.testing.assert_array_equal(took, x[1])
    np.testing.assert_array_equal(indexed, x[1])
    np.testing.assert_array_equal(gathered, x[[1]])


# ----------------------------------------------------------------------------- syntax


@pytest.mark.parametrize("source, expected", [
    ("f [1, 2]", "application"),
    ("reshape x [1]", "application"),
    ("x [0]", "application"),
    ("f (x) [0]", "application"),
    ("x[0]", "index"),
    ("f x[1]", "application of an index"),
    ("f(x)[0]", "application of an index"),
    ("(f x)[1:]", "index"),
    ("xs[i][j]", "index"),
    ("[1, 2][0]", "index"),
    ("\"ab\"[0]", "index"),
])
def test_brackets_right_after_an_atom_index_it_and_after_a_space_are_a_list(source, expected):
    """``[`` with no space before it indexes the atom it follows; after a space it opens
    a list literal, an argument as before indexing existed (``reshape x [1]``)."""
    term = parse_term(source)
    kinds = {"application": isinstance(term, App) and isinstance(term.arg, ListLit),
             "index": isinstance(term, Prim) and term.op == "index",
             "application of an index": isinstance(term, App) and isinstance(term.arg, Prim)
             and term.arg.op == "index"}
    assert kinds[expected], term


def test_a_list_after_a_keyword_is_a_list():
    program = lamad.loads("def xs = let a = 1 in[a, 2]\ndef ys = if true then[1] else[2]\n")
    assert program.xs == [1, 2] and program.ys == [1]


@pytest.mark.parametrize("source", [
    "x[0]", "x[i, j]", "x[a:b]", "x[:, k]", "x[a:b:s]", "x[a:]", "x[:b]", "x[-1]", "x[..., 0]", "x[idx]",
    "x[:]", "x[::-1]", "x[1::2, ..., :3]", "(f x)[1:]", "xs[i][j]", "f x[0] y[1]", "-x[0] ** 2",
    "x[i + 1:n - 1]", "x[if c then 0 else 1]", "x[(i : Int)]", "x[let a = 1 in a]", "x[0] := 1.0",
    "x[i, :] += v * 2.0", "(x[0])[1] := v", "let y = x[0] := 1.0 in y[0]", "x[0] := y[1] += 2.0",
    "x[0] := (v : Tensor)", "\\(x : Tensor). x[0] := \\y. y", "(a, b)[0]", "[[1], [2]][1][0]",
])
def test_indexing_prints_as_written_and_parses_back(source):
    term = parse_term(source)
    for ascii in (False, True):
        assert parse_term(pretty(term, ascii=ascii)) == term
    assert pretty(term, ascii=True) == source


def test_a_program_with_indexing_formats_to_itself():
    source = ("def f (x : Tensor) (i : IntTensor) : Tensor = let y = x[i, 1:] := 0.0 in y[..., -1] += x[0, ::2][1]\n"
              "\n"
              "def g (xs : List (Real × Tensor)) : Tensor = xs[1:][0][1][:, 0]\n")
    assert lamad.pretty(parse_program(source), width=120) == source  # each definition on its line


@pytest.mark.parametrize("source, message", [
    ("x[0][1] := v", "':=' updates the value indexed last: write x[i, j] := v to update x"),
    ("x[0][1] += v", "'+=' updates the value indexed last"),
    ("x[..., 0, ...]", "an index has at most one '...'"),
    ("x[]", "unexpected ']'"),
    ("f x[0] := v", "unexpected ':='"),
])
def test_syntax_errors(source, message):
    with pytest.raises(LamSyntaxError) as info:
        parse_term(source)
    assert message in info.value.message


# ----------------------------------------------------------------------------- types


@pytest.mark.parametrize("source, expected", [
    ("\\(x : Tensor). x[0]", "Tensor -> Tensor"),
    ("\\(x : Tensor) (i : IntTensor). x[i, ..., 1:]", "Tensor -> IntTensor -> Tensor"),
    ("\\(x : Tensor). x[x > 0.0]", "Tensor -> Tensor"),
    ("\\(y : IntTensor). y[0]", "IntTensor -> IntTensor"),
    ("\\(m : BoolTensor). m[1:]", "BoolTensor -> BoolTensor"),
    ("\\(xs : List Real). xs[0]", "List Real -> Real"),
    ("\\(xs : List Real). xs[1:]", "List Real -> List Real"),
    ("\\(xs : List (List Int)). xs[0][1]", "List List Int -> Int"),
    ("\\(p : Real * Int * Tensor). (p[2], p[-3])", "Real * Int * Tensor -> Tensor * Real"),
    ("\\(x : Tensor). map (\\r. r[0]) (unstack x)", "Tensor -> List Tensor"),
    ("\\(x : Tensor). map (\\i. x[i]) (range 3)", "Tensor -> List Tensor"),
    ("\\(x : Tensor). map (\\i. x[i]) [ints [0, 1]]", "Tensor -> List Tensor"),
    ("\\(xs : List Real) (ys : List Int). map (\\p. p[1]) (zip xs ys)", "List Real -> List Int -> List Int"),
    ("\\(x : Tensor). (\\r. r[0] + 1.0) x", "Tensor -> Tensor"),
    ("\\(x : Tensor). x[0] := 1.0", "Tensor -> Tensor"),
    ("\\(y : IntTensor). y[0] += 1", "IntTensor -> IntTensor"),
    ("\\(m : BoolTensor). m[0] := true", "BoolTensor -> BoolTensor"),
    ("\\(x : Tensor). scalar x[0]", "Tensor -> Real"),
])
def test_types(source, expected):
    """An index of an array is of the array's type (a 0-d Tensor for an element: the rank
    is not part of the type); of a list an element or a list; of a tuple a component.
    The type of a lambda's parameter is known by the end of the definition."""
    assert str(infer_type(parse_term(source))) == expected


@pytest.mark.parametrize("source, message", [
    ("\\(x : Tensor). x[1.5]", "an index is an Int, an IntTensor or a BoolTensor, found Real (convert with 'int')"),
    ("\\(x : Tensor). x[x]", "an index is an Int, an IntTensor or a BoolTensor, found Tensor"),
    ("\\(x : Tensor). x[0.5:]", "a slice bound: expected Int, found Real"),
    ("\\(x : Tensor). map (\\i. x[i]) [1.0]", "an index is an Int, an IntTensor or a BoolTensor, found Real"),
    ("\\(x : Real). x[0]", "cannot index Real: tensors, lists and tuples are indexed"),
    ("\\x. x[0]", "cannot index a value whose type is not known here (annotate it)"),
    ("\\(xs : List Real). xs[0, 1]", "a list is indexed at one position"),
    ("\\(xs : List Real). xs[ints [0]]", "a list's index: expected Int, found IntTensor"),
    ("\\(p : Real * Int) (i : Int). p[i]", "a tuple is indexed by an integer literal: t[0], t[-1]"),
    ("\\(p : Real * Int). p[2]", "index 2 is out of range for a tuple of 2 components"),
    ("\\(p : Real * Int). p[0:]", "a tuple is indexed by an integer literal"),
    ("\\(xs : List Real). xs[0] := 1.0", "':=' updates a Tensor, an IntTensor or a BoolTensor, found List Real"),
    ("\\(x : Tensor). x[0] := true", "the value of ':=' into a Tensor is a Tensor or a Real, found Bool"),
    ("\\(y : IntTensor). y[0] := 1.0", "the value of ':=' into an IntTensor is an IntTensor or an Int, found Real"),
    ("\\(m : BoolTensor). m[0] += true", "'+=' adds numbers"),
    ("\\(x : Tensor). if x[0] > 0.0 then 1 else 2", "the condition of 'if': expected Bool, found BoolTensor"),
    ("\\(x : Tensor). (x[0] : Real)", "expected Real, found Tensor"),
])
def test_type_errors(source, message):
    with pytest.raises(LamTypeError) as info:
        infer_type(parse_term(source))
    assert message in info.value.message


# ----------------------------------------------------------------------------- run-time errors


def _error(source: str) -> str:
    with pytest.raises(lamad.LamError) as info:
        lamad.loads(source, "t.lam").main
    return str(info.value)


@pytest.mark.parametrize("index, message", [
    ("x[2]", "index 2 is out of range for axis 0 of size 2 (shape (2, 3))"),
    ("x[-3]", "index -3 is out of range for axis 0 of size 2 (shape (2, 3))"),
    ("x[:, 3]", "index 3 is out of range for axis 1 of size 3 (shape (2, 3))"),
    ("x[..., -4]", "index -4 is out of range for axis 1 of size 3 (shape (2, 3))"),
    ("x[ints [0, 1, 2]]", "index 2 is out of range for axis 0 of size 2 (shape (2, 3))"),
    ("x[0, 0, 0]", "too many indices: a tensor of rank 2 (shape (2, 3)) is indexed at 3 axes"),
    ("x[::0]", "slice step cannot be zero"),
    ("x[ints [0, 0]] := 1.0", "the index names a position twice"),
    ("x[0] := ones [2]", "the value of shape (2,) does not fit the indexed shape (3,)"),
    ("x[0] += ones [1, 3]", "the value of shape (1, 3) does not fit the indexed shape (3,)"),
    ("gather 2 (ints [0]) x", "axis 2 is out of range for a tensor of rank 2"),
    ("gather 1 (ints [3]) x", "index 3 is out of range for axis 1 of size 3 (shape (2, 3))"),
    ("scatter_add 0 (ints [1]) x (ones [2, 3])", "the value of shape (2, 3) does not fit the indexed shape (1, 3)"),
])
def test_run_time_errors_are_located_at_the_index(index, message):
    text = _error(f"def main = let x = ones [2, 3] in {index}")
    head, line, caret = text.split("\n")[:3]
    assert head.startswith("t.lam:1:35: runtime error: ") and message in head, head
    assert caret == "    " + " " * 34 + "^" * len(index)


def test_a_list_index_out_of_range_is_located():
    text = _error("def main = [1.0, 2.0][-3]")
    assert text.startswith("t.lam:1:12: runtime error: 'index_list': index -3 is out of range for a list of length 2")


# ----------------------------------------------------------------------------- on every backend


ON_BACKENDS = """
def values (x : Tensor) (m : BoolTensor) =
    (x[ints [-1, 0], -2], x[m], x[m] := 0.0, x[m] += 1.0, x[ints [1, 1], 1:] += ones [2, 3],
     gather 1 (ints [3, -4, 0]) x, scatter_add 1 (ints [3, 3, 0, 1]) x (ones [3, 4]),
     grad (\\y. sum (y[ints [1, 1], ::2] * y[ints [1, 1], ::2])) x, grad (\\y. sum (y[m] * y[m])) x)
def several (x : Tensor) = (x[ints [0, 2], ints [1, 1]], x[ints [0, 0], ints [1, 1]] += stack [1.0, 2.0],
                            (reshape x [3, 2, 2])[ints [0, 2], :, ints [1, 1]])
"""
"""Indexing by every kind of key, and its derivatives, on each backend: negative indices,
masks (whose count Dask computes), repeated positions (which accumulate), keys with
several integer arrays (which Dask does not take)."""


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_indexing_on_every_backend_is_numpys(backend):
    x = np.arange(12.0).reshape(3, 4) - 5.0
    m = x > 0.0
    program, on_numpy = lamad.loads(ON_BACKENDS, backend=backend), lamad.loads(ON_BACKENDS)
    for got, want in zip(program.values(x, m), on_numpy.values(x, m)):
        np.testing.assert_array_equal(host(got), want)
    if backend == "dask":
        with pytest.raises(LamRuntimeError, match="the Dask backend indexes with one integer array at a time"):
            program.several(x)
    else:
        for got, want in zip(program.several(x), on_numpy.several(x)):
            np.testing.assert_array_equal(host(got), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_indices_out_of_range_are_located_errors_on_every_backend(backend):
    """Where the backend would clamp (JAX) or wrap, lamad's own check is what reports."""
    for index, message in [
        ("x[2]", "index 2 is out of range for axis 0 of size 2"),
        ("x[ints [0, -3]]", "index -3 is out of range for axis 0 of size 2"),
        ("x[:, ints [5]] := ones [2, 1]", "index 5 is out of range for axis 1 of size 3"),
        ("x[ints [1, 2], 1:] += ones [2, 2]", "index 2 is out of range for axis 0 of size 2"),
        ("x[ints [0, 0]] := ones [2, 3]", "the index names a position twice"),
        ("gather 1 (ints [3]) x", "index 3 is out of range for axis 1 of size 3"),
        ("scatter_add 1 (ints [0, -4]) x (ones [2, 2])", "index -4 is out of range for axis 1 of size 3"),
    ]:
        with pytest.raises(LamRuntimeError) as info:
            lamad.loads(f"def main = let x = ones [2, 3] in {index}", "t.lam", backend=backend).main
        assert str(info.value).startswith("t.lam:1:35: runtime error: ") and message in info.value.message, index


# ----------------------------------------------------------------------------- lists and tuples


def test_lists_are_indexed_and_sliced_as_in_python():
    xs = list(range(7))
    slices = [(a, b, s) for a in (None, -9, -2, 0, 3, 9) for b in (None, -3, 5, 10) for s in (None, -2, 1, 3)]
    texts = [f"{'' if a is None else a}:{'' if b is None else b}{'' if s is None else f':{s}'}"
             for a, b, s in slices]
    program = lamad.loads(f"def f (xs : List Int) = ({', '.join(f'xs[{t}]' for t in texts)})\n"
                          "def g (xs : List Int) = (xs[0], xs[-1], xs[3])\n")
    assert list(program.f(xs)) == [xs[slice(*s)] for s in slices]
    assert program.g(xs) == (0, 6, 3)


def test_gradients_through_lists_and_tuples_match_finite_differences():
    program = lamad.loads("def f (xs : List Tensor) (p : Real * Tensor) : Real =\n"
                          "    sum (xs[-1] * xs[0] * p[1]) + p[0] * sum (fold (\\a b. a + b) 0.0 xs[1:])\n")
    rng = np.random.default_rng(3)
    point = ([rng.standard_normal(2) for _ in range(3)], (0.7, rng.standard_normal(2)))
    got = lamad.grad(program.f, argnums=(0, 1))(*point)
    assert_same_gradient(got, numeric_gradient(lambda p: program.f(*p), point))


def test_second_derivatives_through_indexing_match_finite_differences():
    """Indexing is differentiated again as any primitive is: a Hessian-vector product of a
    function that gathers, slices and updates, against differences of its gradient."""
    program = lamad.loads("def f (x : Tensor) : Real =\n"
                          "    sum (x[ints [0, 0, 1]] * x[1:] ** 3.0) + sum (square (x[::2] += x[1::2] * x[0]))\n")
    rng = np.random.default_rng(5)
    x, v = rng.standard_normal(4), rng.standard_normal(4)
    np.testing.assert_allclose(lamad.hvp(program.f, (x,), (v,)), gradient_difference(lamad.grad(program.f), (x,), (v,)),
                               rtol=1e-6, atol=1e-7)


def test_a_tuple_index_is_a_pattern_in_the_elaborated_program():
    program = lamad.loads("def f (p : Real * Int * Tensor) = (p[0], p[-1])")
    assert "let (x" in lamad.pretty(program.typed.terms["f"])
    value = program.f((1.5, 2, np.ones(2)))
    assert float(value[0]) == 1.5 and list(value[1]) == [1.0, 1.0]


# ----------------------------------------------------------------------------- in use


def test_minibatch_gradient_descent_takes_rows_by_index():
    """The minibatch program of docs/language.md, least squares by gradient descent on the
    rows of a permutation's slices, against the same loop in NumPy."""
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    source = next(block for block in re.findall(r"```\n(.*?)```", text, re.S) if block.startswith("def train"))
    program = lamad.loads(source)
    rng = np.random.default_rng(0)
    x, y, perm = rng.standard_normal((100, 3)), rng.standard_normal(100), rng.permutation(100)
    w = np.zeros(3)
    for b in range(100 // 32):
        rows = perm[32 * b:32 * b + 32]
        w = w - 0.1 * 2 * x[rows].T @ (x[rows] @ w - y[rows]) / 32
    np.testing.assert_allclose(program.train(x, y, perm), w, rtol=1e-12)
