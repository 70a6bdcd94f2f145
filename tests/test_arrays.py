"""Integer arrays and masks (docs/language.md, "Integer arrays and masks"): their types,
their arithmetic against Python's and NumPy's, conversions, files, the Python API, and
gradients of functions that use them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lamad
from lamad import LamArgumentError, LamRuntimeError, LamTypeError
from lamad.parser import parse_term
from lamad.pretty import pretty
from lamad.types import infer_type
from numeric import assert_same_gradient, numeric_gradient

INTS = st.integers(-10 ** 6, 10 ** 6)
DIVISORS = INTS.filter(lambda n: n != 0)


@pytest.mark.parametrize("source, expected", [
    ("arange 3", "IntTensor"),
    ("arange 3 + 1", "IntTensor"),
    ("2 * arange 3 - arange 3", "IntTensor"),
    ("arange 5 // 2", "IntTensor"),
    ("7 % arange 5", "IntTensor"),
    ("7 // 2", "Int"),
    ("arange 3 > 1", "BoolTensor"),
    ("stack [1.0, 2.0] >= 1.5", "BoolTensor"),
    ("1.5 < stack [1.0, 2.0]", "BoolTensor"),
    ("(arange 3 > 0) == (arange 3 < 2)", "BoolTensor"),
    ("not (arange 3 > 0) && true", "BoolTensor"),
    ("real (arange 3)", "Tensor"),
    ("real (arange 3 > 0)", "Tensor"),
    ("real true", "Real"),
    ("int 2.5", "Int"),
    ("int (stack [2.5])", "IntTensor"),
    ("ints [1, 2]", "IntTensor"),
    ("map real [1, 2]", "List Real"),
    ("map real [arange 2]", "List Tensor"),
    ("map not [arange 2 > 0]", "List BoolTensor"),
    ("\\(i : IntTensor). i % 2 == 0", "IntTensor -> BoolTensor"),
    ("dot 0.5 (real 1)", "Real"),  # an overload settled late whose Real result is used as a Tensor
])
def test_types(source, expected):
    assert str(infer_type(parse_term(source))) == expected


@pytest.mark.parametrize("source, message", [
    ("arange 3 + 1.0", "an IntTensor combines with Ints and IntTensors, found Real"),
    ("stack [1.0] * arange 1", "an IntTensor combines with Ints and IntTensors, found Tensor"),
    ("arange 3 / 2", "expected Real or Tensor, found IntTensor"),
    ("1.5 // 2.0", "argument of '//': expected Int or IntTensor, found Real"),
    ("stack [1.0] < arange 1", "found IntTensor"),
    ("(arange 1 > 0) < (arange 1 > 0)", "does not compare BoolTensors"),
    ("real (stack [1.0])", "expected Int, IntTensor, Bool or BoolTensor, found Tensor"),
    ("not (arange 2)", "expected Bool or BoolTensor, found IntTensor"),
    ("sin (arange 2)", "convert with 'real'"),
    ("(real 1 : Int)", "'real' gives Real here, but it is used as Int"),
])
def test_type_errors(source, message):
    with pytest.raises(LamTypeError) as info:
        infer_type(parse_term(source))
    assert message in info.value.message


@settings(max_examples=200, deadline=None)
@given(INTS, DIVISORS)
def test_int_division_is_floored_as_in_python(x, y):
    p = lamad.loads(f"def main = ({x} // {y}, {x} % {y})")
    assert p.main == (x // y, x % y)


@settings(max_examples=50, deadline=None)
@given(st.lists(INTS, min_size=1, max_size=6), st.lists(DIVISORS, min_size=1, max_size=6))
def test_int_arrays_divide_elementwise_and_the_remainder_identity_holds(xs, ys):
    n = min(len(xs), len(ys))
    x, y = np.array(xs[:n]), np.array(ys[:n])
    p = lamad.loads("def qr (x : IntTensor) (y : IntTensor) = (x // y, x % y, (x // y) * y + x % y == x)")
    q, r, identity = p.qr(x, y)
    np.testing.assert_array_equal(q, x // y)
    np.testing.assert_array_equal(r, x % y)
    assert q.dtype == np.int64 and identity.dtype == np.bool_ and identity.all()


@pytest.mark.parametrize("source, message", [
    ("def main = 5 % 0", "5 % 0: integer division by zero"),
    ("def main = arange 3 // (arange 3 - 1)", "'//' by an IntTensor holding 0"),
    ("def main = int (stack [1.0, 1e30])", "has no Int"),
    ("def main = (-9223372036854775807 - 1) // -1", "overflows Int's 64-bit range"),
])
def test_run_time_errors_are_located(source, message):
    with pytest.raises(LamRuntimeError) as info:
        lamad.loads(source).main
    assert message in info.value.message
    assert info.value.span is not None


def test_int_of_nan_is_an_error():
    with pytest.raises(LamRuntimeError) as info:
        lamad.loads("def f (x : Real) : Int = int x").f(float("nan"))
    assert "nan is not a finite number: it has no Int" in info.value.message

def test_conversions():
    p = lamad.loads("def main = (int (stack [2.7, -2.7, 0.5]), int (-3.9), real (ints [1, 2]), "
                    "real (arange 4 >= 2), real false)")
    truncated, scalar, reals, mask, zero = p.main
    np.testing.assert_array_equal(truncated, [2, -2, 0])
    assert scalar == -3 and type(scalar) is int
    assert reals.dtype == np.float64 and list(reals) == [1.0, 2.0]
    assert list(mask) == [0.0, 0.0, 1.0, 1.0] and float(zero) == 0.0


def test_an_overloaded_result_of_a_literal_used_as_a_tensor_is_promoted():
    """``real 1`` is a Real once its literal is an Int, and a Real may be used where a
    Tensor is: reproducer of an internal error the program generator found."""
    assert float(lamad.loads("def g : Real = sum (real 1)").g) == 1.0
    with pytest.raises(LamTypeError) as info:
        lamad.loads("def g : Bool = real 1")
    assert "'real' gives Real here, but it is used as Bool" in info.value.message


def test_masks_combine_elementwise():
    p = lamad.loads("def m (x : Tensor) = (x > 0.0 && x < 2.0, x < 0.0 || x > 2.0, not (x > 0.0), x == x)")
    x = np.array([-1.0, 1.0, 3.0, np.nan])
    both, either, negated, equal = p.m(x)
    np.testing.assert_array_equal(both, (x > 0) & (x < 2))
    np.testing.assert_array_equal(either, (x < 0) | (x > 2))
    np.testing.assert_array_equal(negated, ~(x > 0))
    np.testing.assert_array_equal(equal, [True, True, True, False])


def test_gradient_through_a_mask_matches_finite_differences():
    src = ("def f (x : Tensor) : Real = sum (x * x * real (x > 0.5)) + "
           "sum (sin x * real (x < 0.0 || x > 1.0))")
    p = lamad.loads(src)
    x = np.array([-0.7, 0.2, 0.8, 1.3])
    got = lamad.grad(p.f)(x)
    assert_same_gradient(got, numeric_gradient(p.f, x))
    np.testing.assert_allclose(got, [np.cos(-0.7), 0.0, 1.6, 2.6 + np.cos(1.3)])
    tangent = np.array([1.0, -1.0, 0.5, 2.0])
    _, jvp = lamad.jvp(p.f, (x,), (tangent,))
    np.testing.assert_allclose(jvp, got @ tangent)


def test_gradient_of_a_loss_of_weights_and_integer_labels():
    """The labels are an IntTensor: their cotangent is (), the weights' is checked
    against finite differences."""
    src = """
    def loss (w : Tensor) (labels : IntTensor) : Real =
      let logits = w * real (arange 3) in
      mean ((logits - real (labels % 3)) ** 2.0)
    def main = grad (\\(w, y). loss w y) (stack [0.5, -1.0, 2.0], ints [4, 1, 2])
    """
    p = lamad.loads(src)
    gw, gy = p.main
    assert gy == ()
    labels = np.array([4, 1, 2])
    assert_same_gradient(gw, numeric_gradient(lambda w: p.loss(w, labels), np.array([0.5, -1.0, 2.0])))


def test_grad_refuses_a_function_of_integers_only():
    with pytest.raises(LamTypeError) as info:
        lamad.loads("def f (i : IntTensor) : Real = sum (real i)\ndef main = grad f (arange 3)")
    assert "has no gradient" in info.value.message


def test_load_ints_reads_npy_and_csv(tmp_path):
    np.save(tmp_path / "labels.npy", np.array([3, 0, 2], dtype=np.int32))
    (tmp_path / "labels.csv").write_text("1\n2\n0\n")
    (tmp_path / "bad.csv").write_text("1\n2.5\n")
    p = lamad.loads('def a = load_ints "labels.npy"\ndef b = load_ints "labels.csv"\ndef c = load_ints "bad.csv"',
                    base_dir=tmp_path)
    assert p.a.dtype == np.int64 and list(p.a) == [3, 0, 2]
    assert list(p.b) == [1, 2, 0]
    with pytest.raises(LamRuntimeError) as info:
        p.c
    assert "2.5 is not an integer" in info.value.message


def test_python_arguments_are_converted_or_refused():
    p = lamad.loads("def f (i : IntTensor) (m : BoolTensor) : IntTensor = i * 2 + arange (size m) * 0 + dim 0 i * 0")
    np.testing.assert_array_equal(p.f([1, 2, 3], np.array([True, False, True])), [2, 4, 6])
    np.testing.assert_array_equal(p.f(np.array([1.0, 2.0, 3.0]), [True, True, False]), [2, 4, 6])
    for bad_i, bad_m, message in ((np.array([1.5]), [True], "1.5 is not an integer"),
                                  ([1], np.array([1.0]), "cannot be a BoolTensor"),
                                  ([2 ** 70], [True], "too large for 64 bits")):
        with pytest.raises(LamArgumentError) as info:
            p.f(bad_i, bad_m)
        assert message in info.value.message


def test_values_print_as_lamad_writes_them():
    from lamad.pretty import format_value
    from lamad.syntax import BOOL_TENSOR, INT_TENSOR
    assert format_value(np.array([True, False]), BOOL_TENSOR) == "[true, false]"
    assert format_value(np.arange(3), INT_TENSOR) == "[0, 1, 2]"


@pytest.mark.parametrize("source", ["i // 2 % n", "i % (n // 2)", "-(i % n) * 2", "i // n ** 2"])
def test_integer_division_prints_and_parses_back(source):
    term = parse_term(source)
    assert parse_term(pretty(term)) == term
