"""The ``lamad`` command line through a subprocess (README.md, "The command line"):
``run`` and ``check``, the exit codes 0 / 1 (an error in the program, located, never a
traceback) / 2 (bad usage), backends and dtypes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def lamad(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("LAMAD_BACKEND", "LAMAD_DTYPE")}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "lamad.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=60)


def lamad_all(*calls: tuple[str, ...], cwd: Path = ROOT, env: dict[str, str] | None = None):
    """Several invocations at once, run concurrently (each is a process of its own)."""
    with ThreadPoolExecutor(max_workers=max(2, min(len(calls), os.cpu_count() or 2))) as pool:
        return list(pool.map(lambda args: lamad(*args, cwd=cwd, env=env), calls))


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def usage_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, nothing on stdout, a message on stderr mentioning every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr and proc.stderr.strip()
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    return proc.stderr


PROGRAM = textwrap.dedent("""\
    -- a program with entries of many types, for --entry and --arg
    def scale (k : Real) (xs : List Real) : List Real = map (\\x. k * x) xs
    def pair_sum (p : Int * Real) (flag : Bool) : Real = if flag then real (fst p) + snd p else 0.0
    def norm2 (t : Tensor) : Real = sum (square t)
    def rows (t : Tensor) : Int = length (unstack t)
    def row_sums (t : Tensor) : Tensor = sum_axis 1 t
    def third = 1.0 / 3.0
    def big = sum (square (randn 0 [1000]))
    def adder (x : Real) : Real -> Real = \\y. x + y
    def main = (third, 2 + 3, [true, false])
""")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "prog.lam").write_text(PROGRAM, encoding="utf-8")
    np.save(d / "matrix.npy", np.arange(6.0).reshape(2, 3))
    np.save(d / "ints.npy", np.arange(4))                       # an integer array, read as a Tensor
    np.save(d / "half.npy", np.array(0.5))                      # 0-d: a Real
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return d


# ------------------------------------------------------------------ run

def test_run_default_main_prints_the_value(workdir):
    assert ok(lamad("run", "prog.lam", cwd=workdir)).strip() == f"({1 / 3!r}, 5, [true, false])"


def test_run_entry_with_expression_args(workdir):
    out = ok(lamad("run", "prog.lam", "--entry", "scale", "--arg", "k=2", "--arg", "xs=[1.0, 2.5, -1]", cwd=workdir))
    assert [float(v) for v in out.strip().strip("[]").split(",")] == [2.0, 5.0, -2.0]


def test_run_args_in_any_order_with_tuples_bools_and_definitions(workdir):
    true_flag, false_flag, uses_defs, tensor = lamad_all(
        ("run", "prog.lam", "--entry", "pair_sum", "--arg", "flag=1 < 2", "--arg", "p=(3, 0.25)"),
        ("run", "prog.lam", "--entry", "pair_sum", "--arg", "p=(3, 0.25)", "--arg", "flag=false"),
        # an argument may use the program's definitions and builtins
        ("run", "prog.lam", "--entry", "scale", "--arg", "k=third * 3", "--arg", "xs=map real (range 3)"),
        ("run", "prog.lam", "--entry", "norm2", "--arg", "t=fill 2.0 [3, 2]"),
        cwd=workdir)
    assert float(ok(true_flag)) == 3.25
    assert float(ok(false_flag)) == 0.0
    np.testing.assert_allclose([float(v) for v in ok(uses_defs).strip().strip("[]").split(",")], [0.0, 1.0, 2.0])
    assert float(ok(tensor)) == 24.0


def test_run_entry_without_parameters(workdir):
    assert float(ok(lamad("run", "prog.lam", "--entry", "third", cwd=workdir))) == 1 / 3


def test_run_arg_from_npy_file(workdir):
    matrix = np.arange(6.0).reshape(2, 3)
    norm2, rows, row_sums, ints, half = lamad_all(
        ("run", "prog.lam", "--entry", "norm2", "--arg", "t=@matrix.npy"),
        # absolute paths (a relative @path is relative to the working directory)
        ("run", str(workdir / "prog.lam"), "--entry", "rows", "--arg", f"t=@{workdir / 'matrix.npy'}"),
        ("run", "prog.lam", "--entry", "row_sums", "--arg", "t=@matrix.npy"),
        ("run", "prog.lam", "--entry", "norm2", "--arg", "t=@ints.npy"),
        # a 0-d array is a Real
        ("run", "prog.lam", "--entry", "scale", "--arg", "k=@half.npy", "--arg", "xs=[4.0]"),
        cwd=workdir)
    assert float(ok(norm2)) == float(np.sum(matrix ** 2))
    assert int(ok(rows)) == 2
    np.testing.assert_allclose([float(v) for v in ok(row_sums).strip().strip("[]").split(",")], matrix.sum(axis=1))
    assert float(ok(ints)) == 0 + 1 + 4 + 9
    assert ok(half).strip() == "[2.0]"


def test_run_function_result_unicode_and_ascii(workdir):
    assert ok(lamad("run", "prog.lam", "--entry", "adder", "--arg", "x=1", cwd=workdir)).strip() == "<fun : Real → Real>"
    out = ok(lamad("run", "prog.lam", "--entry", "adder", "--arg", "x=1", "--ascii", cwd=workdir))
    assert out.strip() == "<fun : Real -> Real>"


# ------------------------------------------------------------------ check

def test_check_prints_each_definition_with_its_type(workdir):
    lines = ok(lamad("check", "prog.lam", cwd=workdir)).splitlines()
    assert lines == [
        "scale : Real → List Real → List Real",
        "pair_sum : Int × Real → Bool → Real",
        "norm2 : Tensor → Real",
        "rows : Tensor → Int",
        "row_sums : Tensor → Tensor",
        "third : Real",
        "big : Real",
        "adder : Real → Real → Real",
        "main : Real × Int × List Bool",
    ]


def test_check_ascii(workdir):
    lines = ok(lamad("check", "--ascii", "prog.lam", cwd=workdir)).splitlines()
    assert lines[:2] == ["scale : Real -> List Real -> List Real", "pair_sum : Int * Real -> Bool -> Real"]
    assert lines[-1] == "main : Real * Int * List Bool"
    assert all(ord(c) < 128 for line in lines for c in line)


def test_check_higher_order_types_parenthesised():
    lines = ok(lamad("check", "examples/higher_order.lam")).splitlines()
    assert "compose : (Real → Real) → (Real → Real) → Real → Real" in lines


# ------------------------------------------------------------------ exit status 1: errors in the program

ERRORS = {
    # name: (source, kind, line, column, a fragment of the message)
    "syntax": ("def f (x : Real) : Real = x\ndef main = f (1.0 +) \n", "syntax error", 2, 20, "unexpected"),
    "type": ("def f (x : Real) : Real = x\n\ndef main = f true\n", "type error", 3, 14, "Bool"),
    "runtime": ("def main =\n  let a = ones [2, 3] in\n  a @ ones [2, 3]\n", "runtime error", 3, 3, "(2, 3)"),
    "load": ('def data = load "missing.npy"\ndef main = sum data\n', "runtime error", 1, 12, "missing.npy"),
    "scalar": ("def main = scalar (ones [3])\n", "runtime error", 1, 12, "(3,)"),
    "dim": ("def main = dim 3 (ones [2, 3])\n", "runtime error", 1, 12,
            "axis 3 is out of range for a tensor of rank 2 (shape (2, 3)): its axes are 0 to 1"),
    "recursion": ("def f (x : Real) : Real = f x\n", "type error", 1, 27, "cannot be recursive"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_program_errors_exit_1_with_located_message(tmp_path, name):
    source, kind, line, column, fragment = ERRORS[name]
    (tmp_path / "bad.lam").write_text(source, encoding="utf-8")
    proc = lamad("run", "bad.lam", cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    head, src_line, caret_line = proc.stderr.rstrip("\n").split("\n")
    m = re.fullmatch(r"bad\.lam:(\d+):(\d+): ([a-z ]+): (.+)", head)
    assert m, head
    assert (int(m[1]), int(m[2]), m[3]) == (line, column, kind)
    assert fragment in m[4]
    # the source line, indented, then carets under the span
    assert src_line == "    " + source.splitlines()[line - 1]
    indent = len(caret_line) - len(caret_line.lstrip())
    assert set(caret_line.strip()) == {"^"}
    assert indent == 4 + column - 1
    assert indent + len(caret_line.strip()) <= len(src_line) + 1


def test_an_int_literal_of_more_digits_than_python_reads_is_a_syntax_error(tmp_path):
    """Python's ``int`` refuses more than 4,300 digits, and an Int holds 64 bits: a longer
    literal is refused where it stands, by every command."""
    (tmp_path / "big.lam").write_text(f"def main = {'9' * 5000}\n", encoding="utf-8")
    for command in ("run", "check", "fmt"):
        failed = lamad(command, "big.lam", cwd=tmp_path)
        assert failed.returncode == 1 and "big.lam:1:12: syntax error: integer literal too long" in failed.stderr
        assert "Traceback" not in failed.stderr


def test_deep_types_and_values_print(tmp_path):
    """A 1,000-level type annotation and a 500-deep tuple print (on a big stack), in run,
    check, grad and fmt."""
    (tmp_path / "arrows.lam").write_text("def f (x : " + "Real -> " * 1000 + "Real) : Real = 1.0\n", encoding="utf-8")
    (tmp_path / "tuple.lam").write_text("def main = " + "(1.0, " * 500 + "2.0" + ")" * 500 + "\n", encoding="utf-8")
    check_arrows, run_tuple, check_tuple, fmt_tuple, grad_tuple = lamad_all(
        ("check", "arrows.lam"), ("run", "tuple.lam"), ("check", "tuple.lam", "--ascii"), ("fmt", "tuple.lam"),
        ("grad", "tuple.lam"), cwd=tmp_path)
    assert ok(check_arrows) == "f : (" + "Real → " * 1000 + "Real) → Real\n"
    assert ok(run_tuple) == "(1.0, " * 500 + "2.0" + ")" * 500 + "\n"
    assert ok(check_tuple) == "main : " + "Real * (" * 499 + "Real * Real" + ")" * 499 + "\n"
    # broken into lines of 88 where the layout allows (a nesting of 500 does not): only the spaces change
    assert re.sub(r"\s", "", ok(fmt_tuple)) == re.sub(r"\s", "", (tmp_path / "tuple.lam").read_text(encoding="utf-8"))
    assert len(ok(fmt_tuple).splitlines()) > 1
    assert ok(grad_tuple).startswith("-- ←D(main) : (Real × Real⊥) × ((Real × Real⊥) × ")


def test_the_caret_lines_up_under_tabs(tmp_path):
    """Tabs in the echoed line are expanded (to stops of 8), the caret's indentation too."""
    (tmp_path / "tabs.lam").write_text("def main =\t\t1.0 +\ttrue\n", encoding="utf-8")
    proc = lamad("check", "tabs.lam", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    head, line, caret = proc.stderr.rstrip("\n").split("\n")
    assert head.startswith("tabs.lam:1:19: type error: ") and "\t" not in line + caret
    assert line == "    def main =" + " " * 14 + "1.0 +" + " " * 3 + "true"
    assert caret == " " * line.index("true") + "^^^^"


def test_an_error_on_a_long_line_shows_a_piece_of_it(tmp_path):
    """An error on a line of 150 kB echoes 100 characters either side of the caret,
    cut with '…', not the whole line."""
    source = "def main = [" + "1.0, " * 20_000 + "true" + ", 2.0" * 10_000 + "]\n"
    (tmp_path / "long.lam").write_text(source, encoding="utf-8")
    proc = lamad("check", "long.lam", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(proc.stderr) < 1000
    head, line, caret = proc.stderr.rstrip("\n").split("\n")
    assert head.startswith(f"long.lam:1:{12 + 5 * 20_000 + 1}: type error: ")
    assert line == "    …" + ("1.0, " * 20)[-100:] + "true" + (", 2.0" * 20)[:100] + "…"
    assert caret == " " * line.index("true") + "^^^^"


def test_type_error_reported_by_check_too(tmp_path):
    (tmp_path / "bad.lam").write_text(ERRORS["type"][0], encoding="utf-8")
    proc = lamad("check", "bad.lam", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("bad.lam:3:14: type error:") and "Traceback" not in proc.stderr


def test_bad_arg_expression_is_located(workdir):
    """An --arg VALUE is lamad code: its errors are reported like the program's, located in it."""
    proc = lamad("run", "prog.lam", "--entry", "norm2", "--arg", "t=(1", cwd=workdir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    head, src_line, caret_line = proc.stderr.rstrip("\n").split("\n")
    assert re.fullmatch(r"<--arg t>:1:\d+: syntax error: .+", head), head
    assert src_line == "    (1" and caret_line.strip() == "^"
    proc = lamad("run", "prog.lam", "--entry", "scale", "--arg", "k=true", "--arg", "xs=[]", cwd=workdir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    head, src_line, caret_line = proc.stderr.rstrip("\n").split("\n")
    assert head.startswith("<--arg k>:1:1: type error:") and "Bool" in head
    assert src_line == "    true" and caret_line == "    ^^^^"


# ------------------------------------------------------------------ exit status 2: bad usage

def test_version():
    from lamad import __version__

    assert ok(lamad("--version")) == f"lamad {__version__}\n"


def test_unknown_subcommand():
    usage_error(lamad("frobnicate", "examples/hello.lam"), "frobnicate")


def test_no_subcommand():
    usage_error(lamad())


def test_missing_file(tmp_path):
    usage_error(lamad("run", "nowhere.lam", cwd=tmp_path), "nowhere.lam")
    usage_error(lamad("check", "nowhere.lam", cwd=tmp_path), "nowhere.lam")


def test_a_directory_is_not_a_program(tmp_path):
    (tmp_path / "sub").mkdir()
    for command in ("run", "check", "grad", "fmt", "repl"):
        message = usage_error(lamad(command, "sub", cwd=tmp_path), "'sub'", "directory")
        assert "no such file" not in message


def test_a_source_that_is_not_utf8_is_located_in_every_command(tmp_path):
    """``printf 'def main = 1.0 -- caf\\xe9'``: the file, the line and column and the byte
    offset of the first byte that is not UTF-8, exit 1, no traceback."""
    (tmp_path / "latin1.lam").write_bytes(b"def g = 2.0\ndef main = 1.0 -- caf\xe9\n")
    for proc in lamad_all(*[(command, "latin1.lam") for command in ("run", "check", "grad", "fmt")], cwd=tmp_path):
        assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
        head, line, caret = proc.stderr.rstrip("\n").split("\n")
        assert head.startswith("latin1.lam:2:22: error: ") and "UTF-8" in head and "offset 33" in head, head
        assert line == "    def main = 1.0 -- caf\ufffd" and caret == " " * 25 + "^"


def test_run_prints_numpy_warnings_located_on_stderr_once_each(tmp_path):
    """`lamad run` silenced NumPy's overflow and division by zero: they are located as
    errors are, printed on stderr once each, and the exit status stays 0."""
    (tmp_path / "w.lam").write_text("def l (x : Real) : Real = log x\n"
                                    "def main = iterate 3 (\\y. y + l 0.0) (exp 1000.0)\n", encoding="utf-8")
    proc = lamad("run", "w.lam", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "nan\n", proc.stderr
    assert proc.stderr.split("\n") == [
        "w.lam:2:39: warning: overflow in 'exp'", "    def main = iterate 3 (\\y. y + l 0.0) (exp 1000.0)",
        " " * 42 + "^" * 10,
        "w.lam:1:27: warning: divide by zero in 'log'", "    def l (x : Real) : Real = log x", " " * 30 + "^" * 5,
        "w.lam:2:27: warning: invalid value in '+'", "    def main = iterate 3 (\\y. y + l 0.0) (exp 1000.0)",
        " " * 30 + "^" * 9, ""]


def test_unknown_entry(workdir):
    usage_error(lamad("run", "prog.lam", "--entry", "nope", cwd=workdir), "nope")


def test_no_main(tmp_path):
    (tmp_path / "lib.lam").write_text("def f (x : Real) : Real = x\n", encoding="utf-8")
    usage_error(lamad("run", "lib.lam", cwd=tmp_path), "main", "--entry")
    # but its definitions can be run by name
    assert float(ok(lamad("run", "lib.lam", "--entry", "f", "--arg", "x=1.5", cwd=tmp_path))) == 1.5


def test_missing_arg(workdir):
    usage_error(lamad("run", "prog.lam", "--entry", "scale", "--arg", "k=1", cwd=workdir), "xs")
    usage_error(lamad("run", "prog.lam", "--entry", "norm2", cwd=workdir), "t")


def test_unknown_arg(workdir):
    usage_error(lamad("run", "prog.lam", "--entry", "norm2", "--arg", "t=ones [2]", "--arg", "u=1", cwd=workdir), "'u'")
    usage_error(lamad("run", "prog.lam", "--arg", "x=1", cwd=workdir), "'x'")  # main takes no parameters


def test_malformed_arg(workdir):
    usage_error(lamad("run", "prog.lam", "--entry", "norm2", "--arg", "t", cwd=workdir), "NAME=VALUE")


def test_bad_npy_arg(workdir):
    absent, objects, matrix = lamad_all(
        ("run", "prog.lam", "--entry", "norm2", "--arg", "t=@absent.npy"),
        # pickled object arrays are never loaded
        ("run", "prog.lam", "--entry", "norm2", "--arg", "t=@objects.npy"),
        # a 2x3 array is not a Real
        ("run", "prog.lam", "--entry", "scale", "--arg", "k=@matrix.npy", "--arg", "xs=[1.0]"),
        cwd=workdir)
    usage_error(absent, "absent.npy")
    usage_error(objects, "objects.npy")
    usage_error(matrix, "matrix.npy", "Real")


def test_unknown_backend_option():
    usage_error(lamad("run", "examples/hello.lam", "--backend", "nonsense"), "nonsense")


def test_unknown_backend_in_environment():
    stderr = usage_error(lamad("run", "examples/hello.lam", env={"LAMAD_BACKEND": "nonsense"}), "nonsense", "numpy")
    assert "LAMAD_BACKEND" in stderr


# ------------------------------------------------------------------ backends and dtypes

def test_backend_numpy_explicit_and_from_environment():
    assert ok(lamad("run", "examples/hello.lam", "--backend", "numpy")).strip() == "-12.0"
    assert ok(lamad("run", "examples/hello.lam", env={"LAMAD_BACKEND": "numpy"})).strip() == "-12.0"


def test_dtype_float32(workdir):
    third32, third64, big32, big64 = lamad_all(
        ("run", "prog.lam", "--entry", "third", "--dtype", "float32"),
        ("run", "prog.lam", "--entry", "third", "--dtype", "float64"),
        ("run", "prog.lam", "--entry", "big", "--backend", "numpy", "--dtype", "float32"),
        ("run", "prog.lam", "--entry", "big"),
        cwd=workdir)
    expected_third32 = float(np.float32(1.0) / np.float32(3.0))
    assert expected_third32 != 1 / 3
    assert float(ok(third32)) == expected_third32
    assert float(ok(third64)) == 1 / 3

    x = np.random.default_rng(0).standard_normal(1000)
    expected_big32 = float(np.sum(np.square(x.astype(np.float32))))
    expected_big64 = float(np.sum(np.square(x)))
    out = float(ok(big32))
    assert float(np.float32(out)) == out  # a float32 number, printed exactly
    assert out != expected_big64
    assert abs(out - expected_big32) <= 1e-6 * abs(expected_big32)
    assert float(ok(big64)) == pytest.approx(expected_big64, rel=1e-12)
