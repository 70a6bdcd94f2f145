"""Modules (docs/language.md, "Modules"): the imports of a program, loaded and checked.

``import "layers.lam"`` reads the file beside the importing one, ``import nn`` the
standard library's ``nn`` (``lamad/std/nn.lam``, inside the package); ``as M`` names the
module, else the file's stem does.  A module is checked once per load, in its own scope
(its own imports, aliases and definitions), and its definitions and aliases join the
importer's scope qualified by the module's name: ``nn.dense``, ``nn.Layer``, and
``L.nn.dense`` for what a module ``L`` imports.  A module's elaborated terms name its own
definitions qualified too, so that every definition of a program lives in one namespace,
where the evaluator, the transforms and the printer find it by that one name, and a
derivative program that uses ``nn.dense`` prints ``nn.dense`` and parses back.  A module's
generic definitions (templates) join the importer's scope the same way, their names and
those they use qualified, and are specialised where the importer uses them.

Errors in a module are located in its file (its spans carry its text, :class:`Source`);
a missing file or module and an import cycle are errors at the import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable

from lamad.errors import LamImportError, cannot_read, read_source
from lamad.parser import KEYWORDS, parse_program
from lamad.syntax import NAME, Import, Program, Source, Term, Type, rename_free
from lamad.types import Scope, Template, TypedProgram, typecheck

LIBRARY = "std"
"""The folder of the standard library's modules, inside the package."""


def library_modules() -> list[str]:
    """The names of the standard library's modules (``nn``, …)."""
    folder = resources.files("lamad") / LIBRARY
    return sorted(f.name[:-4] for f in folder.iterdir() if f.name.endswith(".lam"))


@dataclass
class Imported:
    """What a program's imports bring into its scope: the definitions of the modules, by
    their qualified names, with their types and elaborated terms, in an order in which
    each comes after those it uses; the modules' aliases and generic definitions
    (templates), qualified; the qualifiers."""

    types: dict[str, Type] = field(default_factory=dict)
    terms: dict[str, Term] = field(default_factory=dict)
    aliases: dict[str, Type] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    templates: dict[str, Template] = field(default_factory=dict)
    alias_params: dict[str, str] = field(default_factory=dict)

    def scope(self, outer: Scope | None = None) -> Scope:
        """The scope of the importing program (inside ``outer``, a REPL session's)."""
        outer = outer or Scope()
        return Scope({**outer.aliases, **self.aliases}, outer.modules | frozenset(self.modules),
                     {**outer.templates, **self.templates}, {**outer.alias_params, **self.alias_params})

    def add(self, name: str, module: TypedProgram) -> None:
        """The module's definitions and aliases qualified by ``name``; in its terms the
        names of its definitions are qualified the same way."""
        qualified = {n: f"{name}.{n}" for n in module.types}
        for n, t in module.types.items():
            self.types[qualified[n]] = t
            self.terms[qualified[n]] = rename_free(module.terms[n], qualified)
        self.aliases.update((f"{name}.{a}", t) for a, t in module.scope.aliases.items())
        self.alias_params.update((f"{name}.{a}", p) for a, p in module.scope.alias_params.items())
        names = {*module.types, *module.scope.modules, *module.scope.templates, *module.scope.aliases}
        for t in module.scope.templates.values():
            self.templates[f"{name}.{t.name}"] = t.qualified(name, names)
        self.modules.add(name)
        self.modules.update(f"{name}.{m}" for m in module.scope.modules)


class Loader:
    """One load of a program and the modules it imports, each loaded once (by its
    resolved path), with the chain of modules being loaded to find cycles."""

    def __init__(self):
        self.loaded: dict[str, TypedProgram] = {}
        self.loading: list[tuple[str, str]] = []  # (key, name to show) of the modules being loaded

    def check(self, program: Program, base_dir: Path, shown: str) -> TypedProgram:
        """``program`` (read from the file named ``shown``, in ``base_dir``) checked with its
        imports: the imported definitions first, by their qualified names, then its own."""
        imported = self.imports(program.imports, base_dir, shown)
        typed = typecheck(program, imported.types, imported.scope())
        return TypedProgram(program, {**imported.types, **typed.types}, {**imported.terms, **typed.terms},
                            typed.scope)

    def imports(self, imports: Iterable[Import], base_dir: Path, shown: str, taken: Iterable[str] = ()) -> Imported:
        """The modules of ``imports`` loaded; ``taken`` are names already in scope."""
        imported = Imported()
        names = set(taken)
        for imp in imports:
            name = imp.name
            if not NAME.fullmatch(name) or name in KEYWORDS or name == "_":
                raise LamImportError(f"'{name}' cannot name a module: give it a name with 'as' "
                                     f"(import \"{imp.path}\" as M)", imp.span)
            if name in names:
                raise LamImportError(f"the name '{name}' is taken already (by a module or a definition); give "
                                     "this module another name with 'as'", imp.span)
            names.add(name)
            imported.add(name, self.module(imp, base_dir, shown))
        return imported

    def module(self, imp: Import, base_dir: Path, shown: str) -> TypedProgram:
        """The module an import names, loaded and checked (once per load)."""
        path, label = self.locate(imp, base_dir, shown)
        key = str(path)
        keys = [k for k, _ in self.loading]
        if key in keys:
            chain = [shown for _, shown in self.loading[keys.index(key):]] + [label]
            raise LamImportError(f"import cycle: {chain[0]} imports " + ", which imports ".join(chain[1:]), imp.span)
        if key not in self.loaded:
            text = read_source(path)
            program = parse_program(text, Source(label, text))
            self.loading.append((key, label))
            try:
                self.loaded[key] = self.check(program, Path(path).parent, label)
            finally:
                self.loading.pop()
        return self.loaded[key]

    def locate(self, imp: Import, base_dir: Path, shown: str) -> tuple[Path, str]:
        """The file an import reads, and the name to show for it: a file's path relative to
        the importing file's (as the importing file's name shows it), a library module's
        path in the package."""
        if imp.library:
            path = Path(str(resources.files("lamad") / LIBRARY / f"{imp.path}.lam"))
            if not path.is_file():
                known = ", ".join(library_modules())
                raise LamImportError(f"the standard library has no module '{imp.path}' (it has {known}); "
                                     f"a file is imported by its path: import \"{imp.path}.lam\"", imp.span)
            return path, str(path)
        path = (base_dir / imp.path).resolve()
        label = os.path.normpath(os.path.join(os.path.dirname(shown), imp.path)) if not shown.startswith("<") \
            else imp.path
        why = cannot_read(path, label)
        if why is not None:
            raise LamImportError(why, imp.span)
        return path, label


def check_program(source: str, filename: str = "<input>", base_dir: Path | None = None) -> TypedProgram:
    """Parse and check a program and the modules it imports, relative to ``base_dir``
    (default: the working directory).  A program read from the file ``filename`` is the
    first link of any import cycle."""
    loader = Loader()
    if not filename.startswith("<") and Path(filename).is_file():
        loader.loading.append((str(Path(filename).resolve()), filename))
    return loader.check(parse_program(source), base_dir if base_dir is not None else Path.cwd(), filename)
