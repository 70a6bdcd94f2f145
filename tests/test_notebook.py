"""Jupyter notebooks (README.md, "Notebooks"; lamad/notebook.py): the magics ``%%lamad``
and ``%lamad`` in an in-process IPython shell — definitions persisting across cells, the
REPL's commands, the rich displays (HTML tables, SVG, highlighted derivatives), errors
located in their cell — and examples/tutorial.ipynb executed in a Jupyter kernel."""

from __future__ import annotations

import ast
import io
import math
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("IPython")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from traitlets.config import Config  # noqa: E402

import lamad  # noqa: E402
from lamad import notebook  # noqa: E402
from lamad.repl import Repl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ipython(tmp_path_factory):
    """One in-process IPython shell, its profile and history kept out of the home directory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        yield shell
        InteractiveShell.clear_instance()


@pytest.fixture
def shell(ipython, monkeypatch):
    """The shell with a fresh lamad session (``%reload_ext`` loads the extension anew), and
    what it displays collected as mime bundles in ``shell.shown``."""
    shown: list[dict] = []
    monkeypatch.setattr(ipython.display_pub, "publish", lambda data, metadata=None, **kw: shown.append(data))
    result = ipython.run_cell("%reload_ext lamad", store_history=True)
    assert result.success, result.error_in_exec
    ipython.shown = shown
    return ipython


def run(shell, text: str) -> list[dict]:
    """Run a cell that must succeed; the bundles it displayed."""
    before = len(shell.shown)
    result = shell.run_cell(text, store_history=True)
    assert result.success, result.error_in_exec or result.error_before_exec
    return shell.shown[before:]


def fail(shell, text: str) -> tuple[int, list[str]]:
    """Run a cell that must fail with a lamad error: its number and the lines IPython shows."""
    result = shell.run_cell(text, store_history=True)
    assert isinstance(result.error_in_exec, notebook.LamCellError), result.error_in_exec
    return result.execution_count, result.error_in_exec._render_traceback_()


# --------------------------------------------------------------------- the magics


def test_load_ext_registers_the_line_and_cell_magic(ipython):
    ipython.extension_manager.loaded.discard("lamad")
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("lamad", None)
    assert ipython.run_cell("%load_ext lamad").success
    assert "lamad" in ipython.magics_manager.magics["cell"]
    assert "lamad" in ipython.magics_manager.magics["line"]


def test_definitions_persist_across_cells(shell, capsys):
    assert run(shell, "%%lamad\ndef f (x : Real) (y : Real) : Real = x * sin y") == []
    assert capsys.readouterr().out == "f : Real → Real → Real\n"
    (shown,) = run(shell, "%%lamad\nf 2.0 0.5")
    assert float(shown["text/plain"]) == 2.0 * math.sin(0.5)
    (shown,) = run(shell, "%lamad f 1.0 (f 1.0 2.0)")
    assert float(shown["text/plain"]) == math.sin(math.sin(2.0))


def test_a_cell_runs_its_inputs_in_order(shell, capsys):
    """Lines indented under an input continue it, as do lines after an unfinished one;
    blank lines and comments separate nothing."""
    shown = run(shell, "%%lamad\n-- two definitions\ndef g (x : Real) : Real = x\n  + 1.0\n\n"
                       "def h (x : Real) : Real =\nx * 3.0\ng 1.0\nh (g 1.0)")
    assert [float(s["text/plain"]) for s in shown] == [2.0, 6.0]
    assert capsys.readouterr().out == "g : Real → Real\nh : Real → Real\n"


def test_repl_commands_print_what_the_repl_prints(shell, monkeypatch):
    """:type, :d, :grad, :jvp and :vjp are the REPL's own commands: what a cell prints and
    displays, in order, is the text a REPL session prints for the same inputs."""
    inputs = ["def f (x : Real) (y : Real) : Real = x * sin y", ":type \\(x, y). f x y", ":d \\x. sin x",
              ":grad f", ":grad \\(x, y). f x y at (2.0, 0.5)", ":jvp \\x. f x 1.0 at 2.0 with 1.0",
              ":vjp \\(w : Tensor). w @ w at eye 2 with ones [2, 2]"]
    repl = Repl(out=io.StringIO())
    for text in inputs:
        assert repl.execute(text)
    transcript = io.StringIO()
    monkeypatch.setattr(sys, "stdout", transcript)
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, **kw: print(data["text/plain"], file=transcript))
    run(shell, "%%lamad\n" + "\n".join(inputs))
    assert transcript.getvalue() == repl.out.getvalue()


# --------------------------------------------------------------------- rich display


def cells(table: str | ET.Element) -> list[list[str]]:
    """The rows of an HTML table made by lamad.notebook, each a list of its cells' text."""
    root = ET.fromstring(table) if isinstance(table, str) else table
    return [["".join(cell.itertext()) for cell in row] for row in root.findall("tr")]


def test_a_matrix_is_a_table_with_its_indices(shell):
    (shown,) = run(shell, "%%lamad\n2.0 * eye 2 + ones [2, 2]")
    assert "<caption>f64[2,2]</caption>" in shown["text/html"]
    assert cells(shown["text/html"]) == [["", "0", "1"], ["0", "3.", "1."], ["1", "1.", "3."]]
    assert shown["text/plain"] == "f64[2,2] [[3., 1.],\n          [1., 3.]]"


def test_vectors_arrays_of_more_axes_and_masks(shell):
    vector, cube, mask = run(shell, "%%lamad\nreal (arange 3)\nreshape (real (arange 8)) [2, 2, 2]\n"
                                    "real (arange 3) > 0.5")
    assert cells(vector["text/html"]) == [["0", "1", "2"], ["0.", "1.", "2."]]
    assert cells(cube["text/html"]) == [["", "0", "1"], ["0, 0", "0.", "1."], ["0, 1", "2.", "3."],
                                        ["1, 0", "4.", "5."], ["1, 1", "6.", "7."]]
    assert "<caption>b8[3]</caption>" in mask["text/html"]
    assert cells(mask["text/html"])[1] == ["false", "true", "true"]


def test_a_large_array_is_elided_as_the_repl_elides_it(shell):
    (shown,) = run(shell, "%%lamad\nreshape (real (arange 1200)) [30, 40]")
    rows = cells(shown["text/html"])
    assert rows[0] == ["", "0", "1", "2", "3", "4", "…", "35", "36", "37", "38", "39"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3", "4", "⋮", "25", "26", "27", "28", "29"]
    assert rows[-1] == ["29", "1160.", "1161.", "1162.", "1163.", "1164.", "…", "1195.", "1196.", "1197.",
                        "1198.", "1199."]
    assert "..." in shown["text/plain"]
    (whole,) = run(shell, "%%lamad\n:print full\nreshape (real (arange 1200)) [30, 40]")
    assert len(cells(whole["text/html"])) == 31 and "…" not in whole["text/html"]


def test_long_leading_axes_and_lists_are_elided_too(shell):
    cube, listed = run(shell, "%%lamad\nreshape (real (arange 288)) [12, 12, 2]\nmap (\\i. ones [1]) (range 12)")
    labels = [row[0] for row in cells(cube["text/html"])[1:]]
    assert labels[:12] == ["0, 0", "0, 1", "0, 2", "0, 3", "0, 4", "⋮", "0, 7", "0, 8", "0, 9", "0, 10", "0, 11",
                           "1, 0"]
    assert labels.count("⋮") == 11 and len(labels) == 10 * 11 + 1
    assert labels[labels.index("4, 11") + 1:labels.index("4, 11") + 3] == ["⋮", "7, 0"]
    items = [row[0].text for row in ET.fromstring(listed["text/html"]).findall("tr")]
    assert items == ["0", "1", "2", "3", "4", "⋮", "7", "8", "9", "10", "11"]


def test_values_holding_arrays_nest_their_tables_and_others_are_text(shell):
    pair, record, number = run(shell, "%%lamad\n(1.5, [eye 1, 2.0 * eye 1])\n{w = ones [1], b = 2.0}\n1.5")
    first, second = ET.fromstring(pair["text/html"]).findall("tr")
    assert [first[0].text, first[1].find("code").text] == ["0", "1.5"]
    items = second.find("td/table").findall("tr")
    assert [item[0].text for item in items] == ["0", "1"]
    assert [cells(item.find("td/table")) for item in items] == [[["", "0"], ["0", "1."]], [["", "0"], ["0", "2."]]]
    fields = ET.fromstring(record["text/html"]).findall("tr")
    assert [f[0].text for f in fields] == ["b", "w"]  # in the record's order
    assert cells(fields[1].find("td/table")) == [["0"], ["1."]]
    assert set(number) == {"text/plain"} and number["text/plain"] == "1.5"


def test_a_graph_is_svg(shell):
    pytest.importorskip("graphviz")
    if not notebook.dot_available():
        pytest.skip("Graphviz's dot is not installed")
    run(shell, "%%lamad\ndef f (x : Real) (y : Real) (z : Real) : Real = (x + y) * z")
    (shown,) = run(shell, "%%lamad\n:graph f at (-2.0, 5.0, -4.0) --grad")
    root = ET.fromstring(shown["image/svg+xml"].encode())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"-4", "3", "-12"} <= texts  # the cotangents of x and y, of z, and the value
    assert shown["text/plain"].startswith("digraph f {")


def test_a_graph_is_its_dot_text_without_dot(shell, monkeypatch):
    pytest.importorskip("graphviz")
    monkeypatch.setattr(notebook, "dot_available", lambda: False)
    run(shell, "%%lamad\ndef f (x : Real) : Real = sin x")
    (shown,) = run(shell, "%%lamad\n:graph f at 1.0")
    assert set(shown) == {"text/plain"}
    assert shown["text/plain"].startswith("digraph f {") and "sin" in shown["text/plain"]


def test_derivatives_are_highlighted(shell):
    run(shell, "%%lamad\ndef f (x : Real) : Real = sin x")
    (shown,) = run(shell, "%%lamad\n:grad f")
    assert shown["text/plain"].startswith("-- ←D(f) : Real × Real⊥ → Real × Real⊥\ndef f =")
    spans = dict((text, style) for style, text in re.findall(r'<span style="([^"]*)">([^<]*)</span>',
                                                            shown["text/html"]))
    assert "bold" in spans["def"]  # a keyword
    assert spans["Real"] and spans["cos"] and spans["-- ←D(f) : Real × Real⊥ → Real × Real⊥"]
    assert spans["def"] != spans["cos"] != spans["Real"]


# --------------------------------------------------------------------- errors


def test_an_error_is_located_in_its_cell_and_stops_it(shell, capsys):
    count, shown = fail(shell, "%%lamad\ndef f (x : Real) : Real = x\n\nf true\ndef g = 1.0")
    assert shown == [f"In[{count}]:4:3: type error: expected Real, found Bool", "    f true", "      ^^^^"]
    out = capsys.readouterr().out
    assert "\n".join(shown) in out and "Traceback" not in out
    count, shown = fail(shell, "%lamad g")  # the cell stopped at the error
    assert shown[0] == f"In[{count}]:1:1: type error: unbound name 'g'"


def test_a_runtime_error_is_located_in_the_cell_that_defined_it(shell):
    run(shell, "%%lamad\n\ndef g (t : Tensor) : Tensor =\n  t @ t")
    count = shell.execution_count
    _, shown = fail(shell, "%%lamad\ng (ones [2, 3])")
    assert shown[0].startswith(f"In[{count - 1}]:4:3: runtime error: '@'")
    assert shown[1:] == ["      t @ t", "      ^^^^^"]


def test_an_error_in_a_loaded_file_is_located_in_the_file(shell, tmp_path):
    bad = tmp_path / "bad.lam"
    bad.write_text("def f (x : Real) : Real = x + true\n")
    _, shown = fail(shell, f"%%lamad\n:load {bad}")
    assert shown[0].startswith(f"{bad}:1:31: type error")


def test_cell_magic_takes_no_arguments(shell, capsys):
    result = shell.run_cell("%%lamad 1.0\n2.0")
    assert not result.success and shell.shown == []
    assert capsys.readouterr().err == ("UsageError: %%lamad takes no arguments (the lamad goes in the cell below it), "
                                       "found '1.0'\n")


# --------------------------------------------------------------------- the tutorial


def shown(nb, marker: str) -> list[dict]:
    """What the code cell whose source holds ``marker`` displayed, as mime bundles (the
    lines it printed, streamed, may come in several pieces)."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    return [o["data"] for o in cell.outputs if o["output_type"] == "display_data"]


def value(bundle: dict) -> object:
    return ast.literal_eval(bundle["text/plain"])


def test_the_tutorial_runs_in_a_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("graphviz")  # the tutorial draws graphs
    path = ROOT / "examples" / "tutorial.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "stored with outputs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(lamad.__file__).parent.parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    every = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in every if o["output_type"] == "error" or o.get("name") == "stderr"]

    assert [value(b) for b in shown(nb, ":load gate.lam")] == [(-12.0, (-4.0, -4.0, 3.0)), (-4.0, -4.0, 3.0)]
    (graph,) = shown(nb, ":graph f at (-2.0, 5.0, -4.0)")
    assert "<svg" in graph["image/svg+xml"] if shutil.which("dot") else graph["text/plain"].startswith("digraph")

    f = math.log(2.0) + 2.0 * 5.0 - math.sin(5.0)
    along_x1, along_x2 = [value(b) for b in shown(nb, ":load log_sin.lam")]
    assert along_x1 == pytest.approx((f, 1 / 2.0 + 5.0), rel=1e-12)
    assert along_x2 == pytest.approx((f, 2.0 - math.cos(5.0)), rel=1e-12)
    reverse, _ = shown(nb, ":grad \\(x1, x2). f x1 x2 at (2.0, 5.0)")
    assert value(reverse) == pytest.approx((5.5, 2.0 - math.cos(5.0)), rel=1e-12)

    (derivative,) = shown(nb, ":load symbolic.lam")
    assert derivative["text/plain"].startswith("-- ←D(f) : Real × Real⊥ → Real × Real⊥ → Real × Real⊥")
    assert '<span style="color: #008000; font-weight: bold">def</span>' in derivative["text/html"]
    (at,) = shown(nb, "at (1.5, 0.5)")
    assert value(at) == pytest.approx((2 * math.cos(1.0), -2 * math.cos(1.0)), rel=1e-12)

    (x,) = shown(nb, ":load wine.lam")
    assert "<caption>f64[178,13]</caption>" in x["text/html"]
    before, grads = shown(nb, "def p0")
    assert grads["text/html"].count("<caption>") == 4  # the gradient of each layer's w and b
    (after,) = shown(nb, "def trained")
    loss, accuracy = value(after)
    assert loss < value(before) and 0.0 <= accuracy <= 1.0


def test_the_readme_cell_shows_what_the_readme_says(shell, capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Notebooks\n"):readme.index("\n## The Python API\n")]
    (cell,) = re.findall(r"```\n(%%lamad\n.*?)```", section, re.S)
    (shown,) = run(shell, cell)
    printed = capsys.readouterr().out.strip()
    assert f"prints `{printed}` and shows `{shown['text/plain']}` under the\ncell" in section
