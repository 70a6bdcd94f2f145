"""Getting results out and back in (docs/language.md, "Saving and loading values"):
``lamad run --output FILE.npz``, ``load_params``, ``--print full``, the REPL's ``:print``,
and ``lamad.save``/``lamad.load_params``.  Most runs go through ``lamad.cli.main`` in
this process; the exit statuses are checked once more through a subprocess."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lamad
from lamad import cli
from lamad.syntax import Prim, children

from test_cli import lamad_all
from test_repl import session

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(capsys, path: Path, *args: str) -> tuple[int, str, str]:
    """``lamad run path args`` in this process: its status, stdout and stderr."""
    status = cli.main(["run", str(path), "--quiet", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def program(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def archive(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {k: stored[k] for k in stored.files}


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """The same arrays under the same names: same dtype, shape and bytes (so NaNs, their
    signs and -0.0 too)."""
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


def round_trip(capsys, tmp_path: Path, ty: str, term: str, *options: str) -> tuple[dict, dict, str]:
    """Save ``term : ty`` with --output, read it back with load_params and save that again:
    the two archives and the printed value (the same both times)."""
    made = program(tmp_path, "made.lam", f"def main : {ty} = {term}\n")
    status, printed, err = run(capsys, made, "--output", str(tmp_path / "a.npz"), *options)
    assert status == 0, err
    read = program(tmp_path, "read.lam", f'def main : {ty} = load_params "a.npz"\n')
    status, again, err = run(capsys, read, "--output", str(tmp_path / "b.npz"), *options)
    assert status == 0, err
    assert again == printed
    return archive(tmp_path / "a.npz"), archive(tmp_path / "b.npz"), printed


# ------------------------------------------------------------------ the layout of an archive


def test_the_keys_say_the_path_of_each_array(capsys, tmp_path):
    """``(losses, (w1, b1), w2)``: a key per leaf, its tuple and list indices joined by
    dots; the type as lamad prints it in ASCII; the list lengths; Reals and Ints 0-d."""
    path = program(tmp_path, "p.lam", """\
        def main = ([0.5, 0.25, 0.125], (eye 2, ints [1, 2]), 3)
    """)
    status, _, err = run(capsys, path, "--output", str(tmp_path / "out.npz"))
    assert status == 0, err
    stored = archive(tmp_path / "out.npz")
    assert set(stored) == {"0.0", "0.1", "0.2", "1.0", "1.1", "2", "__type__", "__lengths__"}
    assert str(stored["__type__"]) == "List Real * (Tensor * IntTensor) * Int"
    assert stored["__lengths__"].tolist() == [3]
    assert stored["0.1"].shape == () and stored["0.1"].dtype == np.float64 and float(stored["0.1"]) == 0.25
    assert stored["1.0"].dtype == np.float64 and (stored["1.0"] == np.eye(2)).all()
    assert stored["1.1"].dtype == np.int64 and stored["1.1"].tolist() == [1, 2]
    assert stored["2"].shape == () and stored["2"].dtype == np.int64 and int(stored["2"]) == 3


def test_a_value_that_is_one_array_is_stored_under_value(capsys, tmp_path):
    path = program(tmp_path, "p.lam", "def main = ones [2, 3] > 0.0\n")
    assert run(capsys, path, "--output", str(tmp_path / "out.npz"))[0] == 0
    stored = archive(tmp_path / "out.npz")
    assert set(stored) == {"value", "__type__"}
    assert stored["value"].dtype == np.bool_ and stored["value"].shape == (2, 3) and stored["value"].all()


# ------------------------------------------------------------------ round trips, bit for bit

SPECIAL = "stack [0.0 / 0.0, -0.0, 1.0 / 0.0, -(1.0 / 0.0), 5e-324, 0.1, 1.0 / 3.0]"
"""NaN, -0.0, the infinities, the least subnormal and numbers that are not exact in binary."""

ROUND_TRIPS = {
    "Real": ("Real", "1.0 / 3.0"),
    "negative zero": ("Real", "-0.0"),
    "Int": ("Int", "-9223372036854775807 - 1"),
    "Bool": ("Bool", "false"),
    "String": ("String", '"naïve ⊸ λ"'),
    "Unit": ("Unit", "()"),
    "Tensor": ("Tensor", f"reshape (concat 0 [{SPECIAL}, randn 3 [5]]) [3, 4]"),
    "0-d Tensor": ("Tensor", "(randn 0 [3])[1]"),
    "IntTensor": ("IntTensor", "ints [-9223372036854775807 - 1, 0, 9223372036854775807]"),
    "BoolTensor": ("BoolTensor", "randn 1 [2, 3] > 0.0"),
    "tuple": ("Real * Tensor * Int", "(2.5, randn 2 [4], 7)"),
    "list": ("List Tensor", "[randn 4 [2], randn 5 [3, 1], zeros [0]]"),
    "empty list": ("List Real", "[]"),
    "nested": ("List (Real * List IntTensor) * (Tensor * (Bool * String)) * List (List Unit)",
               "([(1.5, [arange 2, arange 0]), (-2.0, [])], (randn 6 [2, 2], (true, \"w\")), [[(), ()], [], [()]])"),
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_save_then_load_gives_the_same_bits(capsys, tmp_path, name):
    ty, term = ROUND_TRIPS[name]
    first, second, _ = round_trip(capsys, tmp_path, ty, term)
    assert_bitwise_equal(first, second)
    assert str(first["__type__"]) == str(lamad.parse_type(ty))


def test_nan_and_negative_zero_keep_their_bits(capsys, tmp_path):
    first, _, _ = round_trip(capsys, tmp_path, "Tensor", SPECIAL)
    values = first["value"]
    assert np.isnan(values[0]) and np.signbit(values[1]) and values[1] == 0.0 and values[4] == 5e-324


def test_float32_runs_save_and_load_float32(capsys, tmp_path):
    first, second, _ = round_trip(capsys, tmp_path, "Real * Tensor", "(1.0 / 3.0, randn 0 [4])", "--dtype", "float32")
    assert first["0"].dtype == first["1"].dtype == np.float32
    assert_bitwise_equal(first, second)


DIGITS_WEIGHTS = """
def weights (hidden : Int) (steps : Int) : Net =
  let (p : Net) = {hidden = nn.init 1 64 hidden, out = nn.init 2 hidden 10};
      fit = loss train_images train_labels
  in fst (iterate steps (\\(q, s). nn.adamw 0.01 s q (grad fit q)) (p, nn.adam_init p))
"""
DIGITS_SAVED = """
def saved : Net = load_params "weights.npz"
def reloaded = (saved, accuracy saved test_images test_labels)
"""
DIGITS_LEAVES = {"hidden.w": (64, 8), "hidden.b": (8,), "out.w": (8, 10), "out.b": (10,)}


def test_the_trained_digits_weights_come_back_bit_for_bit(capsys, tmp_path):
    """examples/digits.lam, trained at reduced size (8 hidden units, 3 steps): the weights
    saved by --output are the ones training gives, and load_params gives them back
    exactly — saved again, the same bytes; their accuracy the same number."""
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    digits = (EXAMPLES / "digits.lam").read_text(encoding="utf-8")
    train = program(tmp_path, "train.lam", digits + DIGITS_WEIGHTS)
    status, _, err = run(capsys, train, "--entry", "weights", "--arg", "hidden=8", "--arg", "steps=3",
                         "--output", str(tmp_path / "weights.npz"))
    assert status == 0, err
    saved = archive(tmp_path / "weights.npz")
    prog = lamad.load(train)
    trained = prog.weights(8, 3)
    def leaf(p, path):
        layer, field = path.split(".")
        return np.asarray(p[layer][field])
    assert {path: saved[path].shape for path in DIGITS_LEAVES} == DIGITS_LEAVES
    for path in DIGITS_LEAVES:
        assert saved[path].tobytes() == leaf(trained, path).tobytes()
    untrained = lamad.loads(digits + DIGITS_WEIGHTS, base_dir=tmp_path).weights(8, 0)
    assert not np.array_equal(saved["hidden.w"], leaf(untrained, "hidden.w"))

    use = program(tmp_path, "use.lam", digits + DIGITS_SAVED)
    status, _, err = run(capsys, use, "--entry", "saved", "--output", str(tmp_path / "again.npz"))
    assert status == 0, err
    assert_bitwise_equal(saved, archive(tmp_path / "again.npz"))
    loaded, accuracy = lamad.load(use).reloaded
    assert all(leaf(loaded, path).tobytes() == leaf(trained, path).tobytes() for path in DIGITS_LEAVES)
    assert float(accuracy) == float(prog.accuracy(trained, prog.test_images, prog.test_labels))


# ------------------------------------------------------------------ typing


@pytest.mark.parametrize("term, message", [
    ('load_params "w.npz"', "nothing here says which ('a): annotate it"),
    ('load_params "w.npz" + 1.0', "nothing here says which (Real or Tensor)"),
    ('(load_params "w.npz" : Real -> Real)', "reads data (numbers, arrays, text, and tuples and lists of them), "
                                            "not functions: here it would give a Real -> Real"),
    ('(load_params "w.npz" : List (Tensor * ~Tensor))', "not functions"),
])
def test_the_type_read_must_be_known_and_be_data(capsys, tmp_path, term, message):
    path = program(tmp_path, "p.lam", f"def main = {term}\n")
    status, out, err = run(capsys, path)
    assert status == 1 and out == ""
    assert err.startswith(f"{path}:1:") and "type error: 'load_params'" in err and message in err


@pytest.mark.parametrize("definition, read", [
    ('def w : Tensor * Tensor = load_params "w.npz"', "Tensor * Tensor"),
    ('def w = (load_params "w.npz" : Tensor * List Int)', "Tensor * List Int"),
    ('def w = let (a, b) = load_params "w.npz" in (sum a, b @ b)', "Tensor * Tensor"),  # the uses decide
])
def test_an_annotation_or_the_uses_settle_the_type(definition, read):
    term = lamad.loads(definition + "\n").typed.terms["w"]
    applications = []
    stack = [term]
    while stack:
        t = stack.pop()
        if isinstance(t, Prim) and t.op == "load_params":
            applications.append(t)
        stack.extend(children(t))
    assert [t.ty for t in applications] == [lamad.parse_type(read)]


# ------------------------------------------------------------------ errors, located


def write_archive(path: Path, **arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_error(capsys, tmp_path: Path, ty: str, file: str) -> str:
    """The error of reading ``file`` as a ``ty``: exit status 1, nothing printed, the
    message at the application of load_params with its line and caret."""
    path = program(tmp_path, "p.lam", f"-- reads {file}\ndef main : {ty} =\n    load_params \"{file}\"\n")
    status, out, err = run(capsys, path)
    assert status == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:3:5: runtime error: 'load_params': ")
    assert lines[1:] == [f'        load_params "{file}"', "        " + "^" * len(f'load_params "{file}"')]
    return lines[0]


def test_a_value_of_another_type_names_both(capsys, tmp_path):
    write_archive(tmp_path / "w.npz", **{"0": np.ones(2), "1": np.ones(3), "__type__": np.array("Tensor * Tensor")})
    message = load_error(capsys, tmp_path, "Tensor * Tensor * Tensor", "w.npz")
    assert message.endswith("'w.npz' holds a value of type Tensor * Tensor, not Tensor * Tensor * Tensor")


def test_a_list_where_a_tuple_is_expected_is_a_mismatch(capsys, tmp_path):
    """The same arrays under the same names, but a list: the recorded type tells them apart."""
    path = program(tmp_path, "made.lam", "def main = [ones [2], ones [3]]\n")
    assert run(capsys, path, "--output", str(tmp_path / "w.npz"))[0] == 0
    assert "holds a value of type List Tensor, not Tensor * Tensor" in load_error(capsys, tmp_path, "Tensor * Tensor", "w.npz")


@pytest.mark.parametrize("arrays, ty, message", [
    ({"0": np.ones(2)}, "Tensor * Tensor", "'w.npz' has no array '1' for the Tensor at '1' of Tensor * Tensor (it holds 0)"),
    ({"0": np.ones(2), "1": np.ones(2), "2": np.ones(2)}, "Tensor * Tensor",
     "'w.npz' holds arrays that Tensor * Tensor has no place for: 2"),
    ({"0": np.ones(2), "1": np.ones(2)}, "Real * Tensor", "the array '0' has shape (2,), but a Real is a 0-d array"),
    ({"value": np.array([0.5, 1.0])}, "IntTensor", "the array 'value': 0.5 is not an integer"),
    ({"value": np.array(1.0)}, "Int", "the array 'value' is of dtype float64, not a Int"),
    ({"0": np.ones(2)}, "Tensor", "'w.npz' has no array 'value' for the Tensor at the top of Tensor (it holds 0)"),
    ({"0.0": np.ones(2), "0.2": np.ones(2)}, "List Tensor * Unit", "has no array '0.1'"),
])
def test_an_archive_numpy_wrote_is_checked_against_the_type(capsys, tmp_path, arrays, ty, message):
    """Without a recorded type (np.savez), the names, ranks and dtypes of the arrays are
    checked against the type expected; list lengths are counted from the names."""
    write_archive(tmp_path / "w.npz", **arrays)
    assert message in load_error(capsys, tmp_path, ty, "w.npz")


def test_an_archive_numpy_wrote_loads_when_it_fits(tmp_path):
    w1, b1 = np.arange(6.0).reshape(2, 3), np.array([1, 2, 3])
    write_archive(tmp_path / "w.npz", **{"0.0": w1, "0.1": w1 * 2, "1": b1})
    prog = lamad.loads('def w : List Tensor * IntTensor = load_params "w.npz"\n', base_dir=tmp_path)
    ws, b = prog.w
    assert len(ws) == 2 and (ws[1] == w1 * 2).all() and b.dtype == np.int64 and (b == b1).all()


def test_a_missing_file_is_located(capsys, tmp_path):
    assert load_error(capsys, tmp_path, "Tensor", "nowhere.npz").endswith("cannot load 'nowhere.npz': there is no such file")


def test_a_file_that_is_not_an_archive_is_located(capsys, tmp_path):
    np.save(tmp_path / "w.npy", np.ones(3))
    (tmp_path / "w.txt").write_text("1,2,3\n")
    assert load_error(capsys, tmp_path, "Tensor", "w.npy").endswith(
        "'w.npy' is not a .npz archive: it is a .npy file (read it with load)")
    assert load_error(capsys, tmp_path, "Tensor", "w.txt").endswith(
        "'w.txt' is not a .npz archive: it is a file of another format")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 and then nothing a zip holds")
    assert "'bad.npz' is not a valid .npz archive" in load_error(capsys, tmp_path, "Tensor", "bad.npz")


def test_an_archive_of_python_objects_is_refused_unread(capsys, tmp_path):
    write_archive(tmp_path / "w.npz", value=np.array([None, 1], dtype=object))
    assert "'w.npz' holds Python objects (dtype object), not numbers: lamad never unpickles" in \
        load_error(capsys, tmp_path, "Tensor", "w.npz")


def test_load_says_that_an_archive_is_read_with_load_params(capsys, tmp_path):
    write_archive(tmp_path / "w.npz", value=np.ones(2))
    path = program(tmp_path, "p.lam", 'def main = load "w.npz"\n')
    status, _, err = run(capsys, path)
    assert status == 1 and "(read a .npz archive with load_params)" in err


def test_exit_statuses_through_the_command(tmp_path):
    """1 for a file that does not fit, 1 for an output that cannot be written, 2 for an
    entry whose result holds a function (refused before it runs); never a traceback."""
    write_archive(tmp_path / "w.npz", value=np.ones(2))
    bad = program(tmp_path, "bad.lam", 'def main : Real = load_params "w.npz"\n')
    good = program(tmp_path, "good.lam", "def main = 1.0\ndef f = \\(x : Real). (x, [x])\n")
    mismatch, unwritable, function = lamad_all(
        ("run", str(bad)),
        ("run", str(good), "--output", str(tmp_path / "missing" / "out.npz")),
        ("run", str(good), "--entry", "f", "--output", str(tmp_path / "f.npz")))
    assert mismatch.returncode == 1 and mismatch.stdout == ""
    assert "the array 'value' has shape (2,), but a Real is a 0-d array" in mismatch.stderr
    assert unwritable.returncode == 1 and unwritable.stdout == "1.0\n"
    assert f"lamad: error: cannot write {tmp_path / 'missing' / 'out.npz'}: No such file or directory" in unwritable.stderr
    assert function.returncode == 2 and function.stdout == "" and not (tmp_path / "f.npz").exists()
    assert "'f' gives a Real -> Real * List Real, which holds a function" in function.stderr
    assert all("Traceback" not in p.stderr for p in (mismatch, unwritable, function))


# ------------------------------------------------------------------ derivatives


STRUCTURED = """\
def f (x : Tensor) : Real =
    let (ws, (w, n, _), s) = (load_params "w.npz" : List Real * (Tensor * Int * Bool) * Real)
    in s * sum (w * x) + fold (\\acc e. acc + e) 0.0 ws + real n
"""


def test_gradients_through_a_loaded_structure_are_zero_in_what_was_loaded(tmp_path):
    """What load_params gives is a constant: a tuple and a list of reals in it transform
    as constants (each real paired with a zero), in both modes and nested."""
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    lamad.save(tmp_path / "w.npz", ([0.25, 0.5], (w, 4, True), 3.0))
    prog = lamad.loads(STRUCTURED, base_dir=tmp_path)
    x = np.array([[2.0, 1.0], [-1.0, 0.5]])
    assert float(prog.f(x)) == 3.0 * float((w * x).sum()) + 0.75 + 4.0
    np.testing.assert_array_equal(lamad.grad(prog.f)(x), 3.0 * w)
    value, tangent = lamad.jvp(prog.f, (x,), (np.ones((2, 2)),))
    assert float(tangent) == 3.0 * float(w.sum()) and float(value) == float(prog.f(x))
    np.testing.assert_array_equal(lamad.hvp(prog.f, (x,), (np.ones((2, 2)),)), np.zeros((2, 2)))


@pytest.mark.parametrize("forward", [False, True])
def test_a_derivative_program_prints_the_type_read_and_checks_again(capsys, tmp_path, forward):
    """The printer writes the application with the type its context gave, so the printed
    derivative program parses and type-checks again, at ←D (→D) of the type."""
    path = program(tmp_path, "f.lam", STRUCTURED)
    assert cli.main(["grad", str(path), "--entry", "f", "--ascii"] + ["--forward"] * forward) == 0
    printed = capsys.readouterr().out
    assert 'load_params "w.npz" : List Real * (Tensor * Int * Bool) * Real' in printed
    again = lamad.loads(printed.split("\n", 1)[1])
    want = "(Tensor * Tensor -> Real * Real)" if forward else "(Tensor * ~Tensor -> Real * ~Real)"
    assert again.types["f"] == lamad.parse_type(want)


def test_the_simplifier_keeps_apart_reads_of_one_file_at_two_types(capsys, tmp_path):
    """An archive NumPy wrote holds a 0-d array that reads as a Real and as a Tensor: the
    two applications differ in their types only, and common-subexpression elimination
    must not make one of them (a derivative program would then read a Tensor as a Real)."""
    path = program(tmp_path, "f.lam", """\
        def f (x : Tensor) : Real =
          let a = (load_params "w.npz" : Tensor);
              b = (load_params "w.npz" : Real)
          in sum (x * a) * b * sum (x * a) * b
    """)
    assert cli.main(["grad", str(path), "--entry", "f", "--ascii"]) == 0
    printed = capsys.readouterr().out
    assert 'load_params "w.npz" : Tensor' in printed and 'load_params "w.npz" : Real' in printed


# ------------------------------------------------------------------ printing whole arrays


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+\.?\d*(?:e[+-]\d+)?", text)]


def test_print_full_prints_every_element(capsys, tmp_path):
    path = program(tmp_path, "p.lam", "def main = (real (arange 2000), 1)\n")
    status, short, _ = run(capsys, path)
    assert status == 0 and "..." in short and len(numbers(short)) < 20
    status, full, _ = run(capsys, path, "--print", "full")
    assert status == 0 and "..." not in full
    assert numbers(full) == [*range(2000), 1]
    status, same, _ = run(capsys, path, "--print", "short")
    assert same == short


def test_the_repl_prints_whole_arrays_after_print_full():
    out = session(":print", ":print full", "arange 300", ":print short", "arange 300", ":print all")
    shown, rest = out.split("arrays: full\n")
    whole, rest = rest.split("arrays: short\n")
    elided, error = rest.split("<repl>:6:8: error: ")
    assert shown == "arrays: short\n"
    assert numbers(whole.replace("i64[300]", "")) == list(range(300))
    assert elided == "i64[300] [  0,   1,   2, ..., 297, 298, 299]\n"
    assert error.startswith("':print' takes short or full, not 'all'\n")


# ------------------------------------------------------------------ the Python API


def test_the_python_api_saves_and_loads_what_the_command_does(capsys, tmp_path):
    value = (np.array(0.5), [np.eye(2), np.zeros(3)], 7, np.array([1, 2]), np.array([True]), "s", ())
    lamad.save(tmp_path / "api.npz", value)
    stored = archive(tmp_path / "api.npz")
    assert str(stored["__type__"]) == "Real * List Tensor * Int * IntTensor * BoolTensor * String * Unit"
    back = lamad.load_params(tmp_path / "api.npz")
    assert back[0].shape == () and float(back[0]) == 0.5 and back[2] == 7 and back[5] == "s" and back[6] == ()
    assert all((a == b).all() for a, b in zip(back[1], value[1]))
    path = program(tmp_path, "p.lam",
                   'def main : Real * List Tensor * Int * IntTensor * BoolTensor * String * Unit = load_params "api.npz"\n')
    status, _, err = run(capsys, path, "--output", str(tmp_path / "cli.npz"))
    assert status == 0, err
    assert_bitwise_equal(stored, archive(tmp_path / "cli.npz"))


def test_the_python_api_says_what_it_cannot_save_or_load(tmp_path):
    with pytest.raises(lamad.LamArgumentError, match="an empty list, whose element type cannot be told"):
        lamad.save(tmp_path / "x.npz", [])
    with pytest.raises(lamad.LamArgumentError, match="not a value of type Tensor \\* Tensor"):
        lamad.save(tmp_path / "x.npz", (np.ones(2),), "Tensor * Tensor")
    lamad.save(tmp_path / "x.npz", [], "List Tensor")
    assert lamad.load_params(tmp_path / "x.npz") == []
    with pytest.raises(lamad.LamRuntimeError, match="holds a value of type List Tensor, not Tensor"):
        lamad.load_params(tmp_path / "x.npz", "Tensor")
    write_archive(tmp_path / "y.npz", value=np.ones(2))
    with pytest.raises(lamad.LamRuntimeError, match="records no type"):
        lamad.load_params(tmp_path / "y.npz")
    assert (lamad.load_params(tmp_path / "y.npz", "Tensor") == 1.0).all()
