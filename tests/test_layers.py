"""The layering of lamad's modules, read from their source with :mod:`ast`.

Every ``import`` and ``from … import`` statement counts, at any depth (an import
inside a function is a dependency too), relative ones resolved against the module's
package.  ``from P import n`` depends on the module ``P.n`` when there is one (a
submodule of ``lamad.prims``, say), on ``P`` otherwise.  A module is not counted as
depending on the packages above it, which Python runs first: were it, every module
would depend on ``lamad/__init__.py``, which imports the API.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lamad"

TRANSFORMS = {"lamad.transform", "lamad.reverse", "lamad.forward", "lamad.simplify", "lamad.fuse"}
CHECKER = "lamad.types"
DRIVER = "lamad.driver"

POLICY_USERS = {"lamad.driver", "lamad.autodiff"}
"""The modules that may apply lamad.deep's policies (:func:`deep`, :func:`collector_paused`):
the driver around the passes, and the AD operators, whose gradients run inside compiled
code where no pass boundary is (see lamad/driver.py)."""


def _modules() -> dict[str, Path]:
    """Every module of lamad by its dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["lamad", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> dict[str, set[str]]:
    """The lamad modules that module ``name`` imports, each with the names it takes from
    it (``*`` for the module itself, whose every name it may then use)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    found.setdefault(alias.name, set()).add("*")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:
                    found.setdefault(target, set()).add("*")
                elif base in MODULES:
                    found.setdefault(base, set()).add(alias.name)
    found.pop(name, None)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    """A cycle of the import graph, as the modules along it, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_modules_are_found():
    assert {"lamad", "lamad.syntax", "lamad.types", "lamad.eval", "lamad.prims", "lamad.prims.base"} <= MODULES.keys()
    assert "lamad.prims.base" in GRAPH["lamad.prims.arithmetic"]


def test_the_import_graph_has_no_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_checker_imports_no_transform_evaluator_or_driver():
    forbidden = TRANSFORMS | {"lamad.eval", DRIVER}
    assert not GRAPH[CHECKER].keys() & forbidden


def test_the_evaluator_and_the_ad_runtime_import_no_transform_checker_or_driver():
    forbidden = TRANSFORMS | {CHECKER, DRIVER}
    for module in ("lamad.eval", "lamad.autodiff"):
        assert not GRAPH[module].keys() & forbidden, module


def test_only_the_driver_applies_the_stack_and_collector_policies():
    users = {name for name, imports in GRAPH.items()
             if imports.get("lamad.deep", set()) & {"deep", "collector_paused", "*"}}
    assert users <= POLICY_USERS, users - POLICY_USERS
    assert DRIVER in users
