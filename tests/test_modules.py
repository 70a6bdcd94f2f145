"""Modules (docs/language.md, "Modules"): ``import "file.lam"`` relative to the importing
file, ``as``, the standard library's ``nn``, qualified names and their shadowing, cycles
and missing files as located errors, errors located in the module's own file, and the
command line, the REPL and the API following imports; derivative programs that use an
imported definition print its qualified name and parse back."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lamad
from lamad import cli, repl
from lamad.adtypes import backprop_type, forward_type
from lamad.modules import library_modules
from lamad.parser import parse_term
from lamad.syntax import alpha_key
from lamad.types import infer_term
from numeric import assert_same_gradient, numeric_gradient

NN = Path(lamad.__file__).resolve().parent / "std" / "nn.lam"


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def project(tmp_path) -> Path:
    """A program importing the standard library and a file in a folder of its own, which
    imports another beside it and the library again."""
    write(tmp_path, {
        "main.lam": """\
            import nn
            import "models/mlp.lam" as M

            def loss (p : M.Params) (x : Tensor) (y : Tensor) : Real = nn.mse (M.forward p x) y
            def start : M.Params = M.init 0
            def main = loss start (ones [4, 2]) (zeros [4, 1])
            """,
        "models/mlp.lam": """\
            import nn
            import "activations.lam"

            type Params = {hidden : nn.Layer, out : nn.Layer}

            def init (seed : Int) : Params = {hidden = nn.init seed 2 3, out = nn.init (seed + 1) 3 1}
            def forward (p : Params) (x : Tensor) : Tensor = nn.dense p.out (activations.act (nn.dense p.hidden x))
            """,
        "models/activations.lam": """\
            def act (x : Tensor) : Tensor = tanh x
            """,
    })
    return tmp_path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def located(err: Exception) -> tuple[str, str, str]:
    head, line, caret = str(err).split("\n")
    return head, line.strip(), line[caret.index("^"):caret.index("^") + caret.count("^")]


# ------------------------------------------------------------------ importing


def test_a_file_and_the_library_imported_relative_to_the_importing_file(project, monkeypatch):
    monkeypatch.chdir(project.parent)  # not the program's folder: imports are relative to the file
    p = lamad.load(project / "main.lam")
    assert float(p.main) == pytest.approx(float(p["nn.mse"](p["M.forward"](p.start, np.ones((4, 2))),
                                                            np.zeros((4, 1)))))
    assert {"nn.dense", "M.forward", "M.init", "M.nn.dense", "M.activations.act"} <= set(p.types)
    assert str(p.types["loss"]).startswith("{hidden : {b : Tensor, w : Tensor}, out : {b : Tensor, w : Tensor}}")


def test_python_reaches_a_module_s_definitions_through_its_name(project):
    p = lamad.load(project / "main.lam")
    assert p.M.forward.name == "M.forward" and p.M.nn.dense.name == "M.nn.dense"
    assert {"init", "forward", "nn", "activations"} <= set(dir(p.M))
    layer = p.nn.init(0, 2, 3)
    np.testing.assert_allclose(p.nn.dense(layer, np.ones((1, 2))), p["nn.dense"](layer, np.ones((1, 2))))
    with pytest.raises(AttributeError):
        p.nn.nope


def test_an_import_after_a_definition_says_imports_come_first():
    with pytest.raises(lamad.LamSyntaxError, match="imports come first") as info:
        lamad.loads("def a = 1\nimport nn\n", filename="late.lam")
    assert str(info.value).startswith("late.lam:2:1: syntax error:")


def test_the_stem_names_a_module_unless_as_does(tmp_path):
    write(tmp_path, {"lib/helpers.lam": "def two = 2.0\n",
                     "main.lam": 'import "lib/helpers.lam"\nimport "lib/helpers.lam" as H\n'
                                 "def four = helpers.two + H.two\n"})
    assert float(lamad.load(tmp_path / "main.lam").four) == 4.0


def test_gradients_through_imported_definitions_against_finite_differences(project):
    p = lamad.load(project / "main.lam")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 1))
    params = p.start
    got = lamad.grad(p.loss)(params, x, y)
    assert got.keys() == {"hidden", "out"} and got["out"].keys() == {"w", "b"}
    assert_same_gradient(got, numeric_gradient(lambda q: p.loss(q, x, y), params), rtol=1e-5, atol=1e-7)


def test_the_standard_library_has_nn():  # its one-line docs: tests/test_std.py
    assert "nn" in library_modules()
    p = lamad.loads("import nn\ndef l (x : Tensor) : Real = nn.mse (nn.dense (nn.init 1 3 2) x) (ones [4, 2])\n")
    assert {"nn.dense", "nn.mse", "nn.init", "nn.cross_entropy"} <= set(p.types)
    assert {"nn.sgd", "nn.momentum", "nn.adam", "nn.adamw"} <= set(p.typed.scope.templates)  # generic
    layer = p["nn.init"](1, 3, 2)
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(p["nn.dense"](layer, x), x @ layer["w"] + layer["b"])
    assert float(p.l(x)) == pytest.approx(np.mean((x @ layer["w"] + layer["b"] - 1.0) ** 2))


def test_a_module_alias_names_a_type():
    p = lamad.loads("import nn as N\ndef f (l : N.Layer) : Tensor = l.w\n")
    assert str(p.types["f"]) == "{b : Tensor, w : Tensor} -> Tensor"
    with pytest.raises(lamad.LamTypeError, match="unknown type 'N.Nope'"):
        lamad.loads("import nn as N\ndef f (l : N.Nope) = l\n")
    with pytest.raises(lamad.LamTypeError, match="no module 'X' is imported"):
        lamad.loads("def f (l : X.Layer) = l\n")


# ------------------------------------------------------------------ names: qualified, shadowed


def test_a_local_named_like_a_module_shadows_it():
    p = lamad.loads("import nn\n"
                    "def f (nn : {dense : Real}) : Real = nn.dense\n"
                    "def g = (\\nn. nn.mse) {mse = 2.0}\n"
                    "def h = let nn = {dense = 3.0} in nn.dense\n"
                    "def k (x : Tensor) : Real = nn.mse x x\n")
    assert float(p.f({"dense": 1.5})) == 1.5 and float(p.g) == 2.0 and float(p.h) == 3.0
    assert float(p.k(np.ones(2))) == 0.0


def test_fields_of_an_imported_value():
    p = lamad.loads("import nn\ndef b = (nn.init 0 2 3).b\n"
                    "def w (seed : Int) : Tensor = let l = nn.init seed 1 1 in l.w\n")
    np.testing.assert_array_equal(p.b, np.zeros(3))
    assert np.shape(p.w(3)) == (1, 1)


@pytest.mark.parametrize("source, where, message, caret", [
    ("import nn\ndef f = nn.dens\n", "2:12", "the module 'nn' has no definition 'dens'; did you mean 'dense'?", "dens"),
    ("import nn\ndef f = nn\n", "2:9", "'nn' is a module, not a value: its definitions are nn.name", "nn"),
    ("import nn\ndef nn = 1\n", "2:5", "'nn' is the name of an imported module", "nn"),
])
def test_misused_module_names_are_located_type_errors(source, where, message, caret):
    with pytest.raises(lamad.LamTypeError) as info:
        lamad.loads(source, filename="n.lam")
    head, _, under = located(info.value)
    assert head.startswith(f"n.lam:{where}: type error: {message}") and under == caret


def test_a_module_sees_only_its_own_scope(tmp_path):
    write(tmp_path, {"m.lam": "def f = secret + 1\n", "main.lam": 'import "m.lam"\ndef secret = 1\n'})
    with pytest.raises(lamad.LamTypeError) as info:
        lamad.load(tmp_path / "main.lam")
    head, line, caret = located(info.value)
    assert head.startswith(f"{tmp_path / 'm.lam'}:1:9: type error: unbound name 'secret'")
    assert line == "def f = secret + 1" and caret == "secret"


# ------------------------------------------------------------------ cycles and missing files


def test_an_import_cycle_is_located_at_the_import_that_closes_it(tmp_path, capsys):
    write(tmp_path, {"a.lam": 'import "b.lam"\ndef x = 1\n',
                     "b.lam": '-- b imports a\nimport "a.lam"\ndef y = 2\n',
                     "main.lam": 'import "a.lam"\ndef main = a.x\n',
                     "self.lam": 'import "self.lam"\ndef z = 3\n'})
    status, out, err = run_cli(capsys, "check", str(tmp_path / "main.lam"))
    assert status == 1 and out == ""
    head, line, caret = err.rstrip("\n").split("\n")
    b = tmp_path / "b.lam"
    assert head == f"{b}:2:1: import error: import cycle: {tmp_path / 'a.lam'} imports {b}, which imports " \
                   f"{tmp_path / 'a.lam'}"
    assert line.strip() == 'import "a.lam"' and caret.strip() == "^" * len('import "a.lam"')
    with pytest.raises(lamad.LamError, match=r"self\.lam:1:1: import error: import cycle: .*self\.lam imports "
                                             r".*self\.lam"):
        lamad.load(tmp_path / "self.lam")


def test_missing_files_and_modules_are_located_at_the_import(tmp_path):
    write(tmp_path, {"main.lam": '-- two imports\nimport nn\nimport "lib/none.lam"\n',
                     "lib/m.lam": 'import "gone.lam"\n', "uses.lam": 'import "lib/m.lam"\n'})
    with pytest.raises(lamad.LamError) as info:
        lamad.load(tmp_path / "main.lam")
    head, line, caret = located(info.value)
    assert head == f"{tmp_path / 'main.lam'}:3:1: import error: cannot read '{tmp_path / 'lib' / 'none.lam'}': " \
                   "no such file"  # the path as the importing file's name shows it
    assert caret == 'import "lib/none.lam"'
    with pytest.raises(lamad.LamError) as info:  # located in the module that imports it
        lamad.load(tmp_path / "uses.lam")
    assert str(info.value).startswith(f"{tmp_path / 'lib' / 'm.lam'}:1:1: import error: cannot read "
                                      f"'{tmp_path / 'lib' / 'gone.lam'}': no such file")
    with pytest.raises(lamad.LamError, match="the standard library has no module 'numpy' \\(it has nn"):
        lamad.loads("import numpy\n")
    with pytest.raises(lamad.LamError, match="'my-layers' cannot name a module"):
        write(tmp_path, {"my-layers.lam": "def a = 1\n"})
        lamad.loads('import "my-layers.lam"\n', base_dir=tmp_path)
    assert lamad.loads('import "my-layers.lam" as ML\ndef b = ML.a\n', base_dir=tmp_path).b == 1
    with pytest.raises(lamad.LamError, match="the name 'nn' is taken already"):
        lamad.loads("import nn\nimport nn\n")


def test_errors_in_a_module_are_located_in_its_file(tmp_path):
    write(tmp_path, {"syn.lam": "def s = (1 +\n", "m.lam": "def bad (x : Tensor) : Real = scalar x\n",
                     "a.lam": 'import "syn.lam"\n', "b.lam": 'import "m.lam"\ndef main = m.bad (ones [2])\n'})
    with pytest.raises(lamad.LamSyntaxError) as info:
        lamad.load(tmp_path / "a.lam")
    assert str(info.value).startswith(f"{tmp_path / 'syn.lam'}:2:1: syntax error: unexpected end of input")
    p = lamad.load(tmp_path / "b.lam")
    with pytest.raises(lamad.LamRuntimeError) as info:
        p.main
    head, line, caret = located(info.value)
    assert head.startswith(f"{tmp_path / 'm.lam'}:1:31: runtime error: 'scalar'")
    assert line == "def bad (x : Tensor) : Real = scalar x" and caret == "scalar x"


# ------------------------------------------------------------------ printing and derivative programs


@pytest.mark.parametrize("forward", [False, True])
def test_derivative_programs_using_imported_definitions_print_qualified_names_and_parse_back(project, forward):
    p = lamad.load(project / "main.lam")
    type_of = forward_type if forward else backprop_type
    types = {n: type_of(t) for n, t in p.types.items()}
    for name, uses in (("loss", ("nn.mse", "M.forward")), ("M.forward", ("M.nn.dense", "M.activations.act")),
                       ("nn.dense", ())):
        _, ty, term = (p.forward if forward else p.backprop)(name)
        text = lamad.pretty(term)
        assert all(use in text for use in uses), text
        again = infer_term(parse_term(text), types, p.typed.scope)
        assert again.ty == ty and alpha_key(again) == alpha_key(infer_term(term, types, p.typed.scope)), text


def test_the_command_line_follows_imports(project, capsys):
    main = str(project / "main.lam")
    status, out, _ = run_cli(capsys, "check", main)
    assert status == 0 and [line.split(" : ")[0] for line in out.splitlines()] == ["loss", "start", "main"]
    status, out, _ = run_cli(capsys, "run", main)
    assert status == 0 and float(out) == pytest.approx(float(lamad.load(main).main))
    status, out, _ = run_cli(capsys, "grad", main, "--entry", "loss", "--ascii")
    assert status == 0 and "nn.mse" in out and "M.forward" in out
    status, out, _ = run_cli(capsys, "grad", main, "--entry", "M.forward")
    head, definition = out.split("\n", 2)[:2]
    assert head.startswith("-- ←D(M.forward) : ") and definition.startswith("def forward (p : ")
    assert "M.nn.dense" in out and "M.activations.act" in out
    status, out, _ = run_cli(capsys, "fmt", str(project / "models" / "mlp.lam"))
    assert status == 0 and out.startswith('import nn\nimport "activations.lam"\n\ntype Params = {hidden : nn.Layer, '
                                          'out : nn.Layer}\n\ndef init')
    assert lamad.parse_program(out) == lamad.parse_program((project / "models" / "mlp.lam").read_text())


def test_the_repl_imports_and_loads_files_that_import(project, monkeypatch):
    monkeypatch.chdir(project)
    out = io.StringIO()
    session = repl.Repl(out=out)
    for text in ("import nn", "nn.mse (ones [2]) (zeros [2])",
                 "def q (l : nn.Layer) : Tensor = nn.dense l (ones [1, 2])", ":load main.lam", "main", "M.init 0",
                 "import \"models/activations.lam\" as A", "sum (A.act (zeros [2]))"):
        assert session.execute(text), out.getvalue()
    printed = out.getvalue().splitlines()
    definitions = re.findall(r"^def (\w+)", NN.read_text(encoding="utf-8"), re.MULTILINE)
    assert printed[0] == "imported nn: " + ", ".join(definitions) and "dense" in definitions
    assert printed[1] == "1.0"
    assert printed[2] == "q : {b : Tensor, w : Tensor} → Tensor"
    assert printed[3] == "loaded main.lam: loss, start, main"
    assert float(printed[4]) == pytest.approx(float(lamad.load(project / "main.lam").main))
    assert printed[-1] == "0.0"
    write(project, {"models/bad.lam": "def bad (x : Tensor) : Real = scalar x\n"})
    assert session.execute('import "models/bad.lam"')
    assert not session.execute("bad.bad (ones [2])")  # located in the module's file, not in the session's
    assert out.getvalue().splitlines()[-3:] == [
        "models/bad.lam:1:31: runtime error: 'scalar': expected a tensor of one element, "
        "found shape (2,)", "    def bad (x : Tensor) : Real = scalar x", "                                  ^^^^^^^^"]
    assert session.execute(":grad M.forward")
    head, definition = out.getvalue().split("-- ←D(M.forward) : ")[1].split("\n")[:2]
    assert definition.startswith("def forward (p : {hidden : ")
    assert not session.execute('import "missing.lam"')
    assert out.getvalue().splitlines()[-3] == "<repl>:12:1: import error: cannot read 'missing.lam': no such file"


def test_the_readme_example_of_records_and_modules_checks(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Records and modules\n")
    section = readme[start:readme.index("\n## ", start + 1)]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    p = lamad.loads(block)
    assert str(p.types["step"]) == ("{hidden : {b : Tensor, w : Tensor}, out : {b : Tensor, w : Tensor}} -> Tensor "
                                    "-> Tensor -> {hidden : {b : Tensor, w : Tensor}, out : {b : Tensor, w : Tensor}}")
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    params = p.start
    assert float(p.loss(p.step(params, x, y), x, y)) < float(p.loss(params, x, y))
