"""Inputs lamad cannot give a right answer for are errors, never wrong values that run:
cotangents of the wrong shape, data a float cannot hold, counts and labels out of range,
gradients with respect to Ints, Int overflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lamad

ROOT = Path(__file__).resolve().parent.parent


def error(source: str) -> str:
    """The message of the error running ``main`` gives, as printed (with its caret)."""
    with pytest.raises(lamad.LamError) as info:
        lamad.loads(source, "t.lam").main
    return str(info.value)


# --------------------------------------------------------------------- vjp's cotangents


def test_a_pullback_refuses_a_cotangent_of_another_shape():
    msg = error("def main = snd (vjp (\\(x : Tensor). x * 2.0) (ones [3])) (ones [2])")
    assert "t.lam:1:17: runtime error: vjp: the cotangent has shape (2,) where the result has shape (3,)" in msg
    assert "\n                    ^^^^" in msg


def test_a_pullback_of_matmul_refuses_a_cotangent_that_does_not_fit_the_product():
    msg = error("def main = snd (vjp (\\(x : Tensor). x @ ones [3, 2]) (ones [4, 3])) (ones [7, 2])")
    assert "vjp: the cotangent has shape (7, 2) where the result has shape (4, 2)" in msg
    ok = lamad.loads("def main = snd (vjp (\\(x : Tensor). x @ ones [3, 2]) (ones [4, 3])) (ones [4, 2])").main
    assert np.array_equal(ok, np.full((4, 3), 2.0))


def test_a_pullback_checks_lists_and_the_parts_of_tuples():
    assert "vjp: a list of 2 elements has a cotangent of 1" in error(
        "def main = snd (vjp (\\(x : Tensor). [x, x]) (ones [3])) [ones [3]]")
    assert "the cotangent has shape (1,) where the result has shape (3,)" in error(
        "def main = snd (vjp (\\(x : Tensor). (x, 2)) (ones [3])) (ones [1], ())")


@pytest.mark.parametrize("outer", ["grad (\\(x : Tensor). {}) (ones [3])",
                                   "snd (jvp (\\(x : Tensor). {}) (ones [3]) (ones [3]))"])
def test_a_nested_pullback_checks_its_cotangent_under_the_outer_transform(outer):
    inner = "sum (snd (vjp (\\(z : Tensor). z * x) x) (ones {}))"
    msg = error("def main = " + outer.format(inner.format("[2]")))
    assert "runtime error: vjp: the cotangent has shape (2,) where the result has shape (3,)" in msg
    assert "^" * len("vjp (\\(z : Tensor). z * x) x") in msg
    lamad.loads("def main = " + outer.format(inner.format("[3]"))).main


def test_a_pullback_from_python_refuses_a_cotangent_of_another_shape():
    prog = lamad.loads("def f (x : Tensor) : Tensor = x * 2.0")
    y, pullback = lamad.vjp(prog.f, np.ones(3))
    with pytest.raises(lamad.LamError, match=r"vjp: the cotangent has shape \(2,\) where the result has shape \(3,\)"):
        pullback(np.ones(2))
    assert np.array_equal(pullback(np.ones(3)), np.full(3, 2.0))


# --------------------------------------------------------------------- load


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    """``python -m lamad.cli`` as tests/test_cli.py runs it (its warning filter included)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LAMAD_BACKEND", "LAMAD_DTYPE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "lamad.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def load_error(tmp_path, name: str, dtype: str | None = None) -> str:
    (tmp_path / "p.lam").write_text(f'def main = load "{name}"\n')
    with pytest.raises(lamad.LamError) as info:
        lamad.load(tmp_path / "p.lam", dtype=dtype).main
    return str(info.value)


def test_load_refuses_complex_data_and_names_its_dtype(tmp_path):
    np.save(tmp_path / "c.npy", np.array([1 + 2j, 3]))
    assert "runtime error: 'load': complex128 data holds complex numbers: it cannot be a tensor of float64" \
        in load_error(tmp_path, "c.npy")
    (tmp_path / "p.lam").write_text('def main = load "c.npy"\n')
    proc = run_cli("run", "p.lam", cwd=tmp_path)
    assert proc.returncode == 1 and "complex128" in proc.stderr and proc.stdout == ""


def test_load_refuses_an_object_array(tmp_path):
    np.save(tmp_path / "o.npy", np.array([1.0, None], dtype=object), allow_pickle=True)
    assert "'o.npy' holds Python objects (dtype object), not numbers" in load_error(tmp_path, "o.npy")


def test_load_says_a_file_that_is_not_npy_is_not_npy(tmp_path):
    (tmp_path / "t.npy").write_text("1,2,3\n")
    with open(tmp_path / "z.npy", "wb") as f:
        np.savez(f, a=np.ones(2))
    msg = load_error(tmp_path, "t.npy")
    assert "'t.npy' is not a .npy file" in msg and "pickle" not in msg
    assert "'z.npy' is not a .npy file: it is a .npz archive" in load_error(tmp_path, "z.npy")


def test_load_refuses_numbers_too_large_for_float32(tmp_path):
    np.save(tmp_path / "big.npy", np.array([1.0, 1e300]))
    assert "float64 data holds numbers too large for float32" in load_error(tmp_path, "big.npy", "float32")
    assert lamad.load(tmp_path / "p.lam").main[1] == 1e300


def test_arguments_from_files_and_from_python_are_refused_as_load_refuses(tmp_path):
    np.save(tmp_path / "c.npy", np.array([1 + 2j]))
    (tmp_path / "t.npy").write_text("hello")
    (tmp_path / "f.lam").write_text("def f (x : Tensor) : Tensor = x\n")
    complex_, text = (run_cli("run", "f.lam", "--entry", "f", "--arg", f"x=@{n}", cwd=tmp_path)
                      for n in ("c.npy", "t.npy"))
    assert complex_.returncode == 2 and "complex128 data holds complex numbers" in complex_.stderr
    assert text.returncode == 2 and "'t.npy' is not a .npy file" in text.stderr
    f = lamad.load(tmp_path / "f.lam").f
    for bad in (np.array([1.0, None], dtype=object), [1.0, None], np.array([1j])):
        with pytest.raises(lamad.LamArgumentError, match="cannot be a tensor of float64"):
            f(bad)


# --------------------------------------------------------------------- counts, labels, grad of Ints, --arg


def test_a_negative_iterate_count_is_an_error():
    msg = error("def main = iterate (-1) (\\x. x + 1.0) 0.0")
    assert "t.lam:1:12: runtime error: 'iterate': the count is negative: -1" in msg
    assert "runtime error: 'iterate': the count is negative: -2" in error(
        "def main = grad (\\x. iterate (0 - 2) (\\y. y * x) x) 2.0")
    assert lamad.loads("def main = iterate 0 (\\x. x + 1.0) 0.0").main == 0.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0.0 / 0.0
@pytest.mark.parametrize("labels, label", [("fill (-1.0) [2]", "-1"), ("fill 3.0 [2]", "3"),
                                           ("fill 0.5 [2]", "0.5"), ("fill (0.0 / 0.0) [1]", "nan")])
def test_onehot_refuses_labels_out_of_range(labels, label):
    assert f"t.lam:1:12: runtime error: 'onehot': label {label} is not an integer in 0 … 2" \
        in error(f"def main = onehot 3 ({labels})")


def test_onehot_of_labels_in_range():
    value = lamad.loads("def main = onehot 3 (stack [0.0, 2.0])").main
    assert np.array_equal(value, [[1, 0, 0], [0, 0, 1]])
    assert "the number of classes is negative: -1" in error("def main = onehot (-1) (ones [0])")


@pytest.mark.parametrize("op", ["grad", "value_and_grad"])
@pytest.mark.parametrize("param, point, shown", [("(n : Int)", "3", "Int"), ("n", "3", "Int"),
                                                 ("(b : Bool)", "true", "Bool"),
                                                 ("(ns : List Int)", "[1]", "List Int")])
def test_grad_with_respect_to_a_discrete_argument_is_a_type_error(op, param, point, shown):
    with pytest.raises(lamad.LamError) as info:
        lamad.loads(f"def main = {op} (\\{param}. 2.0) {point}", "t.lam")
    assert f"t.lam:1:{14 + len(op)}: type error: '{op}' differentiates with respect to reals, but this " \
           f"function's argument is {shown}, which has no gradient" in str(info.value)


def test_a_discrete_part_beside_reals_has_the_cotangent_unit():
    assert lamad.loads("def main = grad (\\(n, x). real n * x) (3, 2.0)").main == ((), 3.0)
    y, pullback = lamad.loads("def main = vjp (\\(n : Int). real n) 3").main
    assert y == 3.0 and pullback(1.0) == ()


def test_a_duplicate_arg_on_the_command_line_is_bad_usage(tmp_path):
    (tmp_path / "f.lam").write_text("def f (x : Real) : Real = x\n")
    proc = run_cli("run", "f.lam", "--entry", "f", "--arg", "x=1.0", "--arg", "x=2.0", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "lamad: --arg x is given twice ('1.0' and '2.0')" in proc.stderr


# --------------------------------------------------------------------- Int's 64-bit range


@pytest.mark.parametrize("term, column, operation", [
    ("9223372036854775807 + 1", 12, "'+': 9223372036854775807 + 1"),
    ("(0 - 9223372036854775807) - 2", 12, "'-': -9223372036854775807 - 2"),
    ("3037000500 * 3037000500", 12, "'*': 3037000500 * 3037000500"),
    ("-(0 - 9223372036854775807 - 1)", 12, "'-': -(-9223372036854775808)"),
    ("2 ** 63", 12, "'**': 2 ** 63"),
    ("let n = 2 in n ** 64", 25, "'**': 2 ** 64"),
    ("fold (\\a x. a * x) 1 (map (\\i. i + 2) (range 30))", 24, "'*': 2432902008176640000 * 21"),
])
def test_int_arithmetic_that_leaves_64_bits_is_an_error_at_the_operation(term, column, operation):
    msg = error(f"def main = {term}")
    assert f"t.lam:1:{column}: runtime error: {operation} overflows Int's 64-bit range" in msg


def test_a_huge_int_power_fails_at_once_without_computing_it():
    import time

    start = time.process_time()
    assert "'**': 2 ** 100000000 overflows Int's 64-bit range" in error("def main = 2 ** 100000000")
    assert time.process_time() - start < 1.0


def test_ints_at_the_ends_of_the_range_compute():
    prog = lamad.loads("def lo = (0 - 2) ** 63\ndef hi = 2 ** 62 + (2 ** 62 - 1)\n"
                       "def top = 9223372036854775807\ndef one = 1 ** 100000000000\n"
                       "def r = real 9223372036854775807\ndef big = 100000000000000000000000 * 1.0")
    assert (prog.lo, prog.hi, prog.top, prog.one) == (-2 ** 63, 2 ** 63 - 1, 2 ** 63 - 1, 1)
    assert prog.r == 2.0 ** 63 and prog.big == 1e23


@pytest.mark.parametrize("literal", ["9223372036854775808", "99999999999999999999"])
def test_an_int_literal_over_64_bits_is_a_type_error_at_it(literal):
    with pytest.raises(lamad.LamTypeError) as info:
        lamad.loads(f"def main = 1 + {literal}", "t.lam")
    msg = str(info.value)
    assert "t.lam:1:16: type error: this Int literal is outside Int's 64-bit range" in msg
    assert "\n                   " + "^" * len(literal) in msg


def test_an_int_from_python_is_checked_against_the_range():
    f = lamad.loads("def f (n : Int) : Int = n").f
    assert f(2 ** 63 - 1) == 2 ** 63 - 1
    with pytest.raises(OverflowError, match="the int 9223372036854775808 overflows Int's 64-bit range"):
        f(2 ** 63)
