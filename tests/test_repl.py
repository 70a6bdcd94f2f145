"""The REPL (README.md, "The REPL"; lamad/repl.py), driven through prompt_toolkit's pipe
input, as keys typed at the prompt: each command's output, values, multi-line input,
error recovery, completion, history, Ctrl-C; and once in a real pseudo-terminal and once
from a pipe."""

from __future__ import annotations

import ast
import io
import os
import re
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import lamad
from lamad import cli, repl
from lamad.prims import lists
from lamad.parser import parse_term
from lamad.pretty import pretty_derivative, pretty_type
from lamad.types import infer_term

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = textwrap.dedent("""\
    -- a file for :load and `lamad repl FILE`
    def scale = 2.0
    def mm (a : Tensor) (b : Tensor) : Tensor = a @ b
    def f (x : Real) (y : Real) : Real = sin (x * y) + scale * x
""")


PRINTED = 5e-9
"""Half a unit in the last place of a printed tensor: NumPy prints 8 decimals."""


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Each test keeps its history in a directory of its own ($XDG_DATA_HOME)."""
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("LAMAD_BACKEND", raising=False)
    monkeypatch.delenv("LAMAD_DTYPE", raising=False)
    return home


@pytest.fixture
def program(tmp_path) -> Path:
    path = tmp_path / "prog.lam"
    path.write_text(PROGRAM, encoding="utf-8")
    return path


def typed(keys: str, file: Path | None = None) -> str:
    """What the REPL prints when ``keys`` are typed at its prompt (then the input ends,
    as Ctrl-D would end it), without its banner."""
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        pipe.close()
        assert repl.main(file, input=pipe, output=DummyOutput(), out=out) == 0
    banner, rest = out.getvalue().split("\n", 1)
    assert banner.startswith("lamad ") and "Traceback" not in rest
    return rest


def session(*inputs: str, file: Path | None = None) -> str:
    """Each input typed and run with Enter (a multi-line one line by line)."""
    return typed("".join(text.replace("\n", "\r") + "\r" for text in inputs), file)


def located(block: str, where: str, kind: str, source_line: str, column: int, width: int = 1) -> str:
    """Check an error printed as the CLI prints it: ``where:column: kind: message``, the
    source line indented by four, and carets under the span; returns the message."""
    head, line, carets = block.split("\n")
    m = re.fullmatch(rf"{re.escape(where)}:{column}: {kind}: (.+)", head)
    assert m, head
    assert line == "    " + source_line
    assert carets == " " * (4 + column - 1) + "^" * width
    return m[1]


def array(text: str) -> tuple[str, tuple[int, ...], np.ndarray]:
    """A tensor printed by the REPL, ``f64[2,3] [[...]]``: dtype, shape and values."""
    m = re.fullmatch(r"(f\d\d)\[([\d,]*)\] (.*)", text.strip(), re.S)
    assert m, text
    shape = tuple(int(n) for n in m[2].split(",") if n)
    return m[1], shape, np.array(ast.literal_eval(m[3]), dtype=float)


def central_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


# --------------------------------------------------------------------- values and definitions


def test_definitions_are_checked_and_added_and_values_printed_by_type():
    out = session(
        "def sq (x : Real) : Real = x * x",
        "sq 3.0", "length [1, 2, 3]", "sq 2.0 > 3.0",
        "(sq, (), [1.5, 2.5])",
        "ones [2, 3]",
        "(eye 2, [zeros [3]])",
    ).split("\n")
    assert out[:5] == ["sq : Real → Real", "9.0", "3", "true", "(<fun : Real → Real>, (), [1.5, 2.5])"]
    # tensors with their dtype and shape, JAX-style; a multi-line item puts one item per line
    assert out[5:7] == ["f64[2,3] [[1., 1., 1.],", "          [1., 1., 1.]]"]
    assert "\n".join(out[7:]) == "(f64[2,2] [[1., 0.],\n           [0., 1.]],\n [f64[3] [0., 0., 0.]])\n"


def test_a_redefinition_replaces_and_what_uses_it_is_checked_again():
    out = session(
        "def k = 2.0",
        "def g (x : Real) : Real = k * x",
        "g 1.0",
        "def k = 3.0",
        "g 1.0",              # g uses the new k: the session is one program, as a file
        "def k = true",       # g no longer type-checks: refused, nothing changes
        "g 1.0",
    ).split("\n")
    assert out[:5] == ["k : Real", "g : Real → Real", "2.0", "k : Real", "3.0"]
    message = located("\n".join(out[5:8]), "<repl>:2", "type error", "def g (x : Real) : Real = k * x", 27, 1)
    assert message.startswith("'g' depends on 'k', redefined here, and no longer type-checks")
    assert out[8] == "3.0"


def test_float32_backend_prints_its_dtype():
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text("ones [2]\r")
        pipe.close()
        repl.main(None, "numpy", "float32", input=pipe, output=DummyOutput(), out=out)
    assert out.getvalue().split("\n")[1] == "f32[2] [1., 1.]"


# --------------------------------------------------------------------- commands


def test_type_shows_the_type_of_a_term_and_keeps_polymorphism_open():
    out = session(r":type \x. x", ":type map", r":type \(x, y). x * y + 1.0", ":t length",
                  ":ascii", r":type \(x, y). x * y + 1.0", ":unicode", r":type \x. x")
    assert out.split("\n")[:-1] == [
        "λx. x : 'a → 'a",
        "map : ('a → 'b) → List 'a → List 'b",
        "λ(x, y). x · y + 1.0 : Real × Real → Real",
        "length : List 'a → Int",
        r"\(x, y). x * y + 1.0 : Real * Real -> Real",
        "λx. x : 'a → 'a",
    ]


def test_d_prints_the_transform_as_it_comes_and_it_type_checks_at_its_type():
    out = session(r":d \x. sin (x * x)", r":grad \x. sin (x * x)")
    raw, simplified = out.split("-- ←D")[1:]
    head, term = raw.split("\n", 1)
    assert head == "(λx. sin (x · x)) : Real × Real⊥ → Real × Real⊥"
    # the printed term parses and checks at the printed type: ←D(Γ) ⊢ ←D(t) : ←D(A)
    assert pretty_type(infer_term(parse_term(term)).ty) == "Real × Real⊥ → Real × Real⊥"
    expected = lamad.pretty(lamad.backprop(infer_term(parse_term(r"\x. sin (x * x)"))))
    assert term.strip() == expected
    # :grad is the same transform, simplified
    assert simplified.split("\n")[0] == head
    assert len(simplified) < len(raw)


def test_grad_of_a_definition_prints_what_lamad_grad_prints(program, capsys):
    assert cli.main(["grad", str(program), "--entry", "f"]) == 0
    expected = capsys.readouterr().out
    out = session(":grad f", ":d f", file=program)
    assert out.startswith(f"loaded {program}: scale, mm, f\n")
    assert out.split("\n", 1)[1].startswith(expected)
    assert cli.main(["grad", str(program), "--entry", "f", "--raw"]) == 0
    assert out.endswith(capsys.readouterr().out)


def test_grad_at_a_point_matches_finite_differences_and_the_formula(program):
    out = session(r":grad \(x, y). f x y at (0.7, -1.3)",
                  r":grad \(w : Tensor). sum (tanh (mm w w)) at fill 0.3 [2, 2] + eye 2", file=program)
    lines = out.split("\n")[1:]
    gx, gy = ast.literal_eval(lines[0])
    x, y = 0.7, -1.3
    assert (gx, gy) == pytest.approx((y * np.cos(x * y) + 2.0, x * np.cos(x * y)), rel=1e-12)
    fd = central_differences(lambda p: np.sin(p[0] * p[1]) + 2.0 * p[0], np.array([x, y]))
    assert (gx, gy) == pytest.approx(tuple(fd), rel=1e-7)
    dtype, shape, g = array("\n".join(lines[1:]))
    assert (dtype, shape) == ("f64", (2, 2))
    w = np.full((2, 2), 0.3) + np.eye(2)
    a = 1 - np.tanh(w @ w) ** 2
    # tensors are printed as NumPy prints them: 8 decimals
    np.testing.assert_allclose(g, a @ w.T + w.T @ a, rtol=0, atol=PRINTED)
    np.testing.assert_allclose(g, central_differences(lambda v: np.tanh(v @ v).sum(), w), rtol=1e-6)


def test_vjp_prints_the_value_and_the_pullback_and_applies_it():
    ct = "reshape (stack [1.0, 2.0, 0.0, -1.0]) [2, 2]"
    out = session(r":vjp \(w : Tensor). w @ w at eye 2 + 1.0", rf":vjp \(w : Tensor). w @ w at eye 2 + 1.0 with {ct}")
    printed = re.split(r"\n(?=value = |pullback )", out.rstrip("\n"))
    assert [p.split(" ")[0] for p in printed] == ["value", "pullback", "value", "pullback", "pullback"]
    w, c = np.eye(2) + 1.0, np.array([[1.0, 2.0], [0.0, -1.0]])
    for value in printed[0], printed[2]:
        dtype, shape, y = array(value.removeprefix("value = ").replace("\n" + " " * 8, "\n"))
        assert (dtype, shape) == ("f64", (2, 2))
        np.testing.assert_allclose(y, w @ w, rtol=0, atol=PRINTED)
    assert printed[1] == printed[3] == "pullback : Tensor ⊸ Tensor"
    label, _, cotangent = printed[4].partition(" = ")
    assert label == f"pullback {ct}"
    np.testing.assert_allclose(array(cotangent)[2], c @ w.T + w.T @ c, rtol=0, atol=PRINTED)


def test_vjp_needs_a_point():
    message = located(session(r":vjp \x. x").rstrip("\n"), "<repl>:1", "error", r":vjp \x. x", 6, 5)
    assert "'e at v'" in message


def test_load_reload_and_the_session_starting_from_a_file(program, tmp_path):
    out = session("f 0.0 1.0", "def h = scale + 1.0", "h", file=program).split("\n")
    assert out[:4] == [f"loaded {program}: scale, mm, f", "0.0", "h : Real", "3.0"]
    program.write_text(PROGRAM.replace("def scale = 2.0", "def scale = 10.0"), encoding="utf-8")
    out = session(f":load {program}", "h", "def h = scale + 1.0", "h", ":reload", "scale").split("\n")
    assert out[0] == f"loaded {program}: scale, mm, f"
    assert out[1].startswith("<repl>:2:1: type error: unbound name 'h'")  # nothing typed before :load
    assert out[4:7] == ["h : Real", "11.0", f"loaded {program}: scale, mm, f"]
    assert out[7] == "10.0"
    out = session(":load", f":load {tmp_path / 'nowhere.lam'}", ":reload").rstrip("\n").split("\n")
    located("\n".join(out[0:3]), "<repl>:1", "error", ":load", 6)
    assert "no such file" in located("\n".join(out[3:6]), "<repl>:2", "error", f":load {tmp_path / 'nowhere.lam'}",
                                     7, len(str(tmp_path / "nowhere.lam")))
    assert out[6].startswith("<repl>: error: no file to reload")


def test_load_of_a_directory_or_of_a_file_that_is_not_utf8_is_an_error(tmp_path):
    (tmp_path / "latin1.lam").write_bytes(b"def main = 1.0 -- caf\xe9\n")
    out = session(f":load {tmp_path}", f":load {tmp_path / 'latin1.lam'}", "1 + 1").rstrip("\n").split("\n")
    assert "is a directory" in located("\n".join(out[0:3]), "<repl>:1", "error", f":load {tmp_path}", 7,
                                       len(str(tmp_path)))
    assert out[3].startswith(f"{tmp_path / 'latin1.lam'}:1:22: error: the file is not UTF-8 text: byte 0xe9 at offset 21")
    assert out[4:] == ["    def main = 1.0 -- caf\ufffd", " " * 25 + "^", "2"]


def test_a_file_with_an_error_is_reported_and_reload_tries_again(tmp_path):
    path = tmp_path / "bad.lam"
    path.write_text("def x = 1.0\ndef y = x +\n", encoding="utf-8")
    keys = "1 + 1\r:reload\r"
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        pipe.close()
        repl.main(path, input=pipe, output=DummyOutput(), out=out)
    text = out.getvalue()
    assert text.count(f"{path}:3:1: syntax error: unexpected end of input") == 2
    assert "\n2\n" in text


def test_reload_after_a_failed_load_reloads_the_last_file_that_loaded(program, tmp_path):
    bad = tmp_path / "bad.lam"
    bad.write_text("def x = 1.0\ndef y = x +\n", encoding="utf-8")
    out = session(f":load {bad}", ":reload", "f 0.0 1.0", file=program).split("\n")
    assert out[0] == f"loaded {program}: scale, mm, f"
    assert out[1].startswith(f"{bad}:3:1: syntax error")
    assert f"loaded {program}: scale, mm, f" in out[4:] and "0.0" in out[4:]
    assert not any(str(bad) in line for line in out[4:])


def test_numpy_warnings_are_located_once_each_per_input(recwarn, tmp_path):
    """Overflow in exp and division by zero used to leak as Python RuntimeWarnings
    (`<lamad>:3: RuntimeWarning: overflow encountered in exp`), then printed as one
    unlocated line; they are located as errors are, at the operation (the one that warned
    in a line of arithmetic), in the file for a definition loaded from it."""
    out = session("exp 1000.0", "iterate 5 (\\x. x + 1.0 / 0.0) 0.0", "1.0").rstrip("\n").split("\n")
    assert located("\n".join(out[0:3]), "<repl>:1", "warning", "exp 1000.0", 1, 10) == "overflow in 'exp'"
    assert out[3] == "inf"
    assert located("\n".join(out[4:7]), "<repl>:2", "warning", "iterate 5 (\\x. x + 1.0 / 0.0) 0.0", 20, 9) \
        == "divide by zero in '/'"
    assert out[7:] == ["inf", "1.0"]
    assert not [w for w in recwarn if issubclass(w.category, (RuntimeWarning, lamad.LamWarning))]
    program = tmp_path / "w.lam"
    program.write_text("def l (x : Real) : Real = log x\n", encoding="utf-8")
    out = session("l 0.0", "l 0.0 + l 0.0", file=program).rstrip("\n").split("\n")[1:]  # after "loaded …"
    for block in (out[0:3], out[4:7]):  # each input says so once
        assert located("\n".join(block), f"{program}:1", "warning", "def l (x : Real) : Real = log x", 27, 5) \
            == "divide by zero in 'log'"
    assert out[3] == out[7] == "-inf" and len(out) == 8


def test_a_file_that_fails_to_load_from_a_pipe_is_a_failed_input(tmp_path, monkeypatch, capsys):
    """`:load` of a file that is not UTF-8 (or has an error) printed its error, but the
    exit status of a piped session stayed 0."""
    (tmp_path / "latin1.lam").write_bytes(b"def main = 1.0 -- caf\xe9\n")
    (tmp_path / "ok.lam").write_text("def main = 1.0\n", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO(f":load {tmp_path / 'latin1.lam'}\n1 + 1\n"))
    assert repl.main() == 1
    assert "error: the file is not UTF-8 text" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(f":load {tmp_path / 'ok.lam'}\n:reload\nmain\n"))
    assert repl.main() == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("1 + 1\n"))
    assert repl.main(tmp_path / "latin1.lam") == 1


def test_backend_ascii_unicode_help_quit():
    out = session(":backend", ":backend numpy", ":backend tpu", ":help", ":quit", "6 * 7")
    lines = out.split("\n")
    assert lines[:2] == ["backend: numpy (float64)", "backend: numpy (float64)"]
    assert "unknown backend 'tpu'" in located("\n".join(lines[2:5]), "<repl>:3", "backend error",
                                             ":backend tpu", 10, 3)
    for name, cmd in repl.COMMANDS.items():
        assert any(line.lstrip().startswith(f":{name}") and cmd.summary in line for line in lines[5:])
    assert "42" not in lines  # nothing runs after :quit


def test_a_new_command_is_one_decorated_method(monkeypatch):
    """The command table is where `:jvp` will go: a method and its argument parser."""
    monkeypatch.setattr(repl, "COMMANDS", dict(repl.COMMANDS))

    @repl.command("twice", "e", "show e twice", repl._term)
    def twice(self: repl.Repl, term) -> None:
        self.show(term)
        self.show(term)

    out = session(":twice 6 * 7", ":tw 1 + 1", ":help")
    assert out.split("\n")[:4] == ["42", "42", "2", "2"]
    assert ":twice e" in out and "show e twice" in out
    completions = list(repl.LamCompleter(repl.Repl()).get_completions(Document(":tw"), CompleteEvent()))
    assert [c.text for c in completions] == [":twice"]


# --------------------------------------------------------------------- errors


def test_every_error_is_located_and_the_session_goes_on(program):
    out = session(
        "def first (t : Tensor) : Real = scalar t",   # 1
        "1 +* 2",                                      # 2: syntax
        "first true",                                  # 3: type
        "first (ones [3])",                            # 4: run time, in the definition of line 1
        "mm (ones [2, 3]) (ones [2, 3])",              # 5: run time, in the file
        ":grid f",                                     # 6: unknown command
        "let y = 2.0\nin y + z",                       # 7-8: on the second line of an input
        "first (ones [1])",
        file=program,
    ).rstrip("\n").split("\n")
    assert out[:2] == [f"loaded {program}: scale, mm, f", "first : Tensor → Real"]
    blocks = ["\n".join(out[i:i + 3]) for i in range(2, 20, 3)]
    located(blocks[0], "<repl>:2", "syntax error", "1 +* 2", 4)
    assert "Bool" in located(blocks[1], "<repl>:3", "type error", "first true", 7, 4)
    assert "(3,)" in located(blocks[2], "<repl>:1", "runtime error", "def first (t : Tensor) : Real = scalar t",
                             33, 8)
    assert "(2, 3)" in located(blocks[3], f"{program}:3", "runtime error", PROGRAM.split("\n")[2], 45, 5)
    assert "did you mean :grad?" in located(blocks[4], "<repl>:6", "error", ":grid f", 1, 5)
    assert "'z'" in located(blocks[5], "<repl>:8", "type error", "in y + z", 8)
    assert out[20:] == ["1.0"]


def test_nested_derivatives_show_and_curried_grad_is_an_error():
    out = session(r":d \(x : Real). grad (\y. x * y) 1.0", r":grad \(x : Real) (y : Real). x * y at 1.0")
    lines = out.rstrip("\n").split("\n")
    assert lines[0] == "-- ←D(λ(x : Real). grad (λy. x · y) 1.0) : Real × Real⊥ → Real × Real⊥"
    assert "grad'r" in lines[2]  # the inner grad, kept and marked with ←D (nesting)
    error = next(i for i, line in enumerate(lines) if line.startswith("<repl>:2:"))
    assert "grad (\\(x, y). f x y)" in lines[error] and lines[error].startswith("<repl>:2:7: type error:")


def test_a_bug_in_lamad_is_reported_as_one_and_the_session_goes_on(monkeypatch):
    def broken(self, term):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(lamad.api.LoadedProgram, "run", broken)
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text("1 + 1\r:type 1 + 1\r")
        pipe.close()
        repl.main(input=pipe, output=DummyOutput(), out=out)
    text = out.getvalue()
    assert "ZeroDivisionError: a bug\ninternal error: this is a bug in lamad, please report it\n" in text
    assert text.endswith("1 + 1 : Int\n")


# --------------------------------------------------------------------- multi-line input


@pytest.mark.parametrize("text", ["(1 +", "let x = 1.0 in", "def f (x : Real) : Real =", "[1.0, 2.0",
                                  ":type (sin", ":grad sin at", "(1 + -- a comment", "def f = 1.0\ndef g ="])
def test_unfinished_when_the_parser_runs_out_of_input(text):
    assert repl.Repl().unfinished(text)


@pytest.mark.parametrize("text", ["1 + 1", "1 +)", "(1 + $", ":frob (", ":vjp sin", "", "-- only a comment",
                                  "def f = 1.0", ":type", ":grad  ", ":reload"])
def test_finished_inputs_run_even_when_wrong(text):
    assert not repl.Repl().unfinished(text)


def test_a_command_without_its_argument_says_so_and_does_not_take_the_next_input(monkeypatch, capsys):
    """`:type` alone used to wait for more input and take the next line as its argument."""
    out = session(":type", "1 + 1", ":grad", ":vjp", "6 * 7").split("\n")
    located("\n".join(out[0:3]), "<repl>:1", "error", ":type", 6)
    assert out[0].endswith("error: ':type' needs an argument: :type e")
    assert out[3] == "2"
    assert out[4].endswith("error: ':grad' needs an argument: :grad e [at v]")
    assert out[7].endswith("error: ':vjp' needs an argument: :vjp e at v [with ct]")
    assert out[10] == "42"
    monkeypatch.setattr(sys, "stdin", io.StringIO(":type\n1 + 1\n"))
    assert repl.main() == 1
    assert capsys.readouterr().out.split("\n")[4:6] == ["lamad> 1 + 1", "2"]


def test_enter_continues_an_unfinished_input_and_an_empty_line_runs_it():
    out = session("(1 +\n 2)", "let x = 1.0;\n    y = 2.0\nin x + y", "def f (x : Real) : Real =\n  x * 2.0",
                  ":grad f at\n  4.0", "[1.0,\n", "6 * 7")
    lines = out.rstrip("\n").split("\n")
    assert lines[:4] == ["3", "3.0", "f : Real → Real", "2.0"]
    # lines 1-9 above; then Enter on an empty line ran "[1.0," as it was
    assert "end of input" in located("\n".join(lines[4:7]), "<repl>:10", "syntax error", "[1.0,", 6)
    assert lines[7:] == ["42"]


# --------------------------------------------------------------------- completion, history, Ctrl-C


def completions(r: repl.Repl, text: str) -> dict[str, str]:
    completer = repl.LamCompleter(r)
    return {c.text: c.display_meta_text for c in completer.get_completions(Document(text), CompleteEvent())}


def test_completion_of_commands_names_symbols_and_files(tmp_path, monkeypatch):
    r = repl.Repl()
    r.execute("def weight (x : Real) : Real = x")
    assert set(completions(r, ":")) == {f":{name}" for name in repl.COMMANDS}
    assert completions(r, ":gr") == {":grad": repl.COMMANDS["grad"].summary, ":graph": repl.COMMANDS["graph"].summary}
    assert completions(r, "map (\\x. x * wei") == {"weight": "Real → Real"}
    got = completions(r, "si")
    assert {"sin", "sigmoid", "sign"} <= set(got) and got["sin"] == "builtin"
    assert completions(r, "le") == {"length": "builtin", "let": "keyword"}
    assert set(completions(r, "\\la")) == {"λ"} and set(completions(r, "2 \\t")) == {"→", "×"}
    assert completions(r, "x -- wei") == {}
    (tmp_path / "model.lam").write_text("", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert "el.lam" in completions(r, ":load mod")


def test_history_is_kept_across_sessions_in_the_data_directory(data_home):
    assert repl.history_file() == data_home / "lamad" / "history"
    session("6 * 7", "(1 +\n 2)")
    assert list(FileHistory(str(repl.history_file())).load_history_strings()) == ["(1 +\n 2)", "6 * 7"]
    # a new session: Up brings back the last input of the previous one, multi-line as typed
    assert typed("\x1b[A\r") == "3\n"


def test_history_file_default_location(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec: only absolute paths count
    assert repl.history_file() == tmp_path / ".local" / "share" / "lamad" / "history"


def test_ctrl_c_at_the_prompt_drops_the_line():
    assert typed("1 +\x03" + "2 * 3\r") == "6\n"


def test_ctrl_c_interrupts_a_long_evaluation_and_the_session_goes_on():
    """SIGINT arrives, from another thread, while ``iterate`` runs in the REPL."""
    main = threading.main_thread().ident
    assert threading.get_ident() == main

    def interrupt_while_iterating() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(main)
            while frame is not None:
                if frame.f_code.co_name == "iterate" and frame.f_code.co_filename == lists.__file__:
                    signal.pthread_kill(main, signal.SIGINT)
                    return
                frame = frame.f_back
            time.sleep(0.01)

    watcher = threading.Thread(target=interrupt_while_iterating)
    watcher.start()
    start = time.monotonic()
    out = session(r"iterate 100000000 (\x. x + 1.0) 0.0", "6 * 7")
    watcher.join()
    assert out == "interrupted\n42\n"
    assert time.monotonic() - start < 30


# --------------------------------------------------------------------- the command


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LAMAD_BACKEND", "LAMAD_DTYPE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def test_in_a_terminal_ctrl_c_interrupts_and_ctrl_d_quits(program, data_home):
    """`lamad repl FILE` in a pseudo-terminal, as a user runs it: Ctrl-C, Tab, Ctrl-D."""
    pexpect = pytest.importorskip("pexpect")
    log = io.StringIO()
    child = pexpect.spawn(sys.executable, ["-m", "lamad.cli", "repl", str(program)], encoding="utf-8",
                          env=environment(XDG_DATA_HOME=str(data_home), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1"),
                          timeout=30, dimensions=(24, 120))
    child.logfile_read = log
    child.expect("lamad>")
    child.send("iterate 100000000 (\\x. x + scale) 0.0\r")
    child.expect_exact("\x1b[?2004l")  # prompt_toolkit has left the prompt: the evaluation runs
    time.sleep(0.3)
    child.sendintr()
    child.expect("interrupted")
    child.expect("lamad>")
    child.send("m\t")  # a menu of the names starting with m, the definitions first, with their types
    child.expect_exact("Tensor → Tensor → Tensor")
    child.send("\t")  # choose the first, mm
    time.sleep(0.3)
    child.send("\r (eye 2) (eye 2)\r")  # Enter takes the completion; the input goes on
    child.expect_exact("f64[2,2]")
    child.expect("lamad>")
    child.send("f 1.0 0.0\r")
    child.expect("2.0")
    child.expect("lamad>")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in log.getvalue() and f"loaded {program}" in log.getvalue()


def test_ctrl_c_during_a_deep_pass_interrupts_it_and_the_session_goes_on(data_home):
    """Ctrl-C while a pass runs on its big-stack worker (a 3,000-deep list literal, the
    innermost element a loop far longer than the second and a half the test waits): the
    session says 'interrupted' and goes on, where it used to abort ("Cannot recover from
    stack overflow", the recursion limit lowered under the deep worker)."""
    pexpect = pytest.importorskip("pexpect")
    log = io.StringIO()
    child = pexpect.spawn(sys.executable, ["-m", "lamad.cli", "repl"], encoding="utf-8",
                          env=environment(XDG_DATA_HOME=str(data_home), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1"),
                          timeout=30, dimensions=(24, 120))
    child.logfile_read = log
    child.expect("lamad>")
    child.send("length " + "[" * 3000 + "iterate 100000000 (\\x. x + 1.0) 0.0" + "]" * 3000 + "\r")
    child.expect_exact("\x1b[?2004l")  # the evaluation runs
    time.sleep(1.5)
    child.sendintr()
    child.expect("interrupted")
    child.expect("lamad>")
    child.send("6 * 7\r")
    child.expect("42")
    child.expect("lamad>")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, log.getvalue()[-2000:]
    assert "Fatal Python error" not in log.getvalue() and "Traceback" not in log.getvalue()


def test_from_a_pipe_it_prints_a_transcript_and_fails_on_errors(program, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("f 1.0 0.0\n:type (mm\n  )\nsin true\n1 + 1\n"))
    assert cli.main(["repl", str(program)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.split("\n")
    assert lines[:6] == [f"loaded {program}: scale, mm, f", "lamad> f 1.0 0.0", "2.0",
                         "lamad> :type (mm", "   ...   )", "mm : Tensor → Tensor → Tensor"]
    assert lines[6] == "lamad> sin true" and lines[7].startswith("<repl>:4:5: type error:")
    assert lines[10:] == ["lamad> 1 + 1", "2", ""]


def test_the_transcript_in_the_readme_is_what_the_repl_prints(monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    transcript = readme.split("$ lamad repl < session.txt\n", 1)[1].split("```", 1)[0]
    inputs = "".join(line.removeprefix(repl.PROMPT).removeprefix(repl.CONTINUATION) + "\n"
                     for line in transcript.splitlines() if line.startswith((repl.PROMPT, repl.CONTINUATION)))
    assert inputs.count("\n") >= 10
    monkeypatch.setattr(sys, "stdin", io.StringIO(inputs))
    out = io.StringIO()
    assert repl.main(out=out) == 1  # it ends with an error, on purpose
    assert out.getvalue() == transcript


def test_a_missing_file_is_bad_usage(tmp_path, capsys):
    assert cli.main(["repl", str(tmp_path / "missing.lam")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_jvp_shows_forward_mode_and_evaluates_a_tangent():
    """``:jvp f`` prints →D as ``lamad grad --forward`` does; ``:jvp f at v with dx`` is
    ``jvp f v dx``: the value and the derivative along ``dx``."""
    out = session("def f (x : Real) : Real = x * sin x", ":jvp f", ":jvp f at 2.0 with 0.5", ":jvp f at 2.0")
    lines = out.rstrip("\n").split("\n")
    assert lines[1] == "-- →D(f) : Real × Real → Real × Real"
    printed = "\n".join(lines[1:lines.index(next(l for l in lines if l.startswith("(")))])
    name, ty, term = lamad.loads("def f (x : Real) : Real = x * sin x").forward("f")
    assert printed == pretty_derivative(name, ty, term, definition=True, forward=True)
    value, tangent = ast.literal_eval(next(l for l in lines if l.startswith("(")))
    assert value == pytest.approx(2.0 * np.sin(2.0), rel=1e-12)
    assert tangent == pytest.approx(0.5 * (np.sin(2.0) + 2.0 * np.cos(2.0)), rel=1e-12)
    assert tangent == pytest.approx(0.5 * central_differences(lambda p: p[0] * np.sin(p[0]), np.array([2.0]))[0],
                                    rel=1e-7)
    error = "\n".join(lines[-3:])
    assert "expected 'e at v with dx'" in located(error, "<repl>:4", "error", ":jvp f at 2.0", 6, 8)


# --------------------------------------------------------------------- defaults when differentiating


def test_numbers_nothing_determines_are_reals_in_the_differentiation_commands():
    """In ``:d``, ``:grad``, ``:jvp`` and ``:vjp`` an unannotated number is a Real (a student's
    first ``:d \\x. x * x`` differentiates); elsewhere it stays an Int."""
    out = session(r":d \x. x * x", r":grad \x. x * x at 3", r":jvp \x. x * x at 3 with 1",
                  r":vjp \x. x * x at 3 with 1", "1 + 2", r":type \x. x * x", r":grad \x. x + 1")
    lines = out.rstrip("\n").split("\n")
    assert lines[0] == "-- ←D(λx. x · x) : Real × Real⊥ → Real × Real⊥"
    after = lines[lines.index("6.0"):]
    x = 3.0
    assert after[:6] == [repr(2 * x), repr((x * x, 2 * x)), f"value = {x * x}", "pullback : Real ⊸ Real",
                         f"pullback 1 = {2 * x}", "3"]
    assert after[6] == "λx. x · x : Int → Int"  # :type and evaluation keep Ints
    assert after[7] == "-- ←D(λx. x + 1) : Real × Real⊥ → Real × Real⊥"
    assert "1.0" in after[8:][-1]  # the literal 1 became a Real


def test_differentiating_what_has_no_real_in_it_says_there_is_nothing_to_differentiate():
    out = session(r":d \(x : Int). x * x", r":jvp \(b : Bool). not b",
                  "def twice (n : Int) : Int = 2 * n", ":grad twice")
    blocks = re.findall(r"<repl>.*\n.*\n.*", out)
    assert len(blocks) == 3
    first = located(blocks[0], "<repl>:1", "error", r":d \(x : Int). x * x", 4, 17)
    assert first.startswith("nothing to differentiate: this term's type, Int → Int, has no Real or Tensor")
    assert "an Int is discrete" in first
    assert "→D leaves it" in located(blocks[1], "<repl>:2", "error", r":jvp \(b : Bool). not b", 6, 18)
    assert "Int → Int" in located(blocks[2], "<repl>:4", "error", ":grad twice", 7, 5)
    assert "λ" not in out  # no derivative printed: it would be the term itself
    # at a point too, and a function whose type is not known yet is no error
    out = session(r":jvp \(x : Int). x * x at 3 with 1", r":vjp \(x : Int). x * x at 3",
                  r":grad \(x : Int). x * x at 3", r":jvp \x. x at 2.0 with 1.0")
    lines = out.rstrip("\n").split("\n")
    typed = [r":jvp \(x : Int). x * x at 3 with 1", r":vjp \(x : Int). x * x at 3", r":grad \(x : Int). x * x at 3"]
    for n, (text, column) in enumerate(zip(typed, (6, 6, 7))):
        message = located("\n".join(lines[3 * n:3 * n + 3]), f"<repl>:{n + 1}", "error", text, column, 17)
        assert message.startswith("nothing to differentiate: this term's type, Int → Int, has no Real")
    assert lines[9:] == ["(2.0, 1.0)"]
