"""The Python API (README.md, "The Python API"): load a program and use its definitions
from Python.

    prog = lamad.load("examples/wine.lam")
    prog.loss(W1, W2)          # a definition with parameters is a callable
    prog["data"]               # one without is its value, computed once
    prog.nn.dense              # a definition of an imported module, prog["nn.dense"]

Values cross over as: Tensor ↔ backend array, Real ↔ 0-d backend array (a Python
float is accepted), Int ↔ int, Bool ↔ bool, tuples ↔ tuples, records ↔ dicts (any
mapping is accepted, with exactly the record's fields as keys), lists ↔ lists.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from operator import attrgetter, is_
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from lamad import archive, cluster, driver
from lamad.adtypes import cotangent_type
from lamad.autodiff import ArgumentGradient, check_fits
from lamad.backend import Backend, get_backend
from lamad.errors import LamError, LamRuntimeError, LamWarning, format_warning, read_source
from lamad.parser import KEYWORDS, parse_term, parse_type
from lamad.progress import Progress
from lamad.prims import Runtime
from lamad.prims.arithmetic import int_in_range
from lamad.syntax import (
    BOOL, BOOL_TENSOR, INT, INT_TENSOR, REAL, STRING, TENSOR, UNIT, Ann, FunType, LinType, ListType, Program,
    NAME, RecordType, Term, TupleType, Type, free_variables, pretty_type, record_type,
)
from lamad.types import Instances, TypedProgram, aliases


class LamArgumentError(LamError, TypeError, ValueError):
    """A Python value of the wrong type, or out of range, given to the API: the message
    names the parameter, what it expects and what was given.  A ``TypeError`` and a
    ``ValueError`` too, as Python's own and JAX's (``argnums`` out of range) are."""

    kind = "argument error"


def _given(x: Any) -> str:
    """What was given, for a message: its text (cut short) and its Python type."""
    text = repr(x)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(x).__name__})"


_DTYPE = attrgetter("dtype")

_INSIDE = (str(Path(__file__).resolve().parent), "<lamad")
"""Where lamad's own frames come from: its package and its compiled code."""


def _located(source: str, filename: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, its errors located in ``source``, and the warnings about values it
    issued (:func:`lamad.driver.catching`) then issued as :class:`LamWarning` warnings
    located there, from the caller's line in Python; none when it raises (its error is what it
    reports)."""
    try:
        result, caught = driver.catching(fn, *args)
    except LamError as e:
        raise e.locate(source, filename) from None
    if caught:
        for message, span in caught:
            frame, level = sys._getframe(0), 1
            while frame is not None and frame.f_code.co_filename.startswith(_INSIDE):
                frame, level = frame.f_back, level + 1
            warnings.warn(LamWarning(format_warning(message, span, source, filename)), stacklevel=level)
    return result


def _function(f: Any, op: str) -> Function:
    if not isinstance(f, Function):
        raise LamArgumentError(f"lamad.{op}: parameter 'f' expects a function of a loaded program "
                               f"(such as lamad.load(path).name), got {_given(f)}")
    return f


def _sequence(x: Any, op: str, parameter: str) -> tuple:
    if not isinstance(x, (tuple, list)):
        raise LamArgumentError(f"lamad.{op}: parameter '{parameter}' expects a tuple or list with one value per "
                               f"argument, got {_given(x)}")
    return tuple(x)


class LoadedProgram:
    """A checked program bound to a backend; its definitions are attributes and items.
    Its runtime differentiates closures with the driver's ``derive`` unless it has one."""

    def __init__(self, typed: TypedProgram, runtime: Runtime, source: str, filename: str):
        self.typed = typed
        self.runtime = driver.differentiable(runtime)
        self.source = source
        self.filename = filename
        self._values: dict[str, Any] = {}
        self._positions: tuple[TypedProgram, dict[str, int]] | None = None

    @property
    def types(self) -> dict[str, Type]:
        return self.typed.types

    @property
    def backend(self) -> Backend:
        return self.runtime.backend

    def __iter__(self):
        return iter(self.typed.types)

    def __contains__(self, name: str) -> bool:
        return name in self.typed.types

    def __getitem__(self, name: str) -> Any:
        if name not in self.typed.types:
            raise KeyError(name)
        value = to_python(self.value(name), self.typed.types[name], self)
        if isinstance(value, Function):
            value.name = name
        return value

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in self.typed.scope.modules:
            return _Module(self, name)
        if name.startswith("_") or name not in self.typed.types:
            raise AttributeError(name)
        return self[name]

    def __dir__(self):
        return [*super().__dir__(), *self.typed.types]

    def value(self, name: str) -> Any:
        """The lamad value of a definition, evaluated on first use (with those it uses)."""
        if name not in self._values:
            # those it uses first, in program order: compiling a definition looks up the
            # values of those it names, and a chain of 100,000 definitions must not recurse
            for used in self._unevaluated(name):
                self._values[used] = self._located(self._evaluate, used)
        return self._values[name]

    def _unevaluated(self, name: str) -> list[str]:
        """``name`` and the definitions it uses, directly or not, that have no value yet,
        in program order (each uses only those above it)."""
        terms = self.typed.terms
        found, stack = {name}, [name]
        while stack:
            for used in free_variables(terms[stack.pop()]):
                if used in terms and used not in found and used not in self._values:
                    found.add(used)
                    stack.append(used)
        if len(found) == 1:
            return [name]
        if self._positions is None or self._positions[0] is not self.typed:  # imported definitions come first
            self._positions = (self.typed, {n: i for i, n in enumerate(self.typed.types)})
        position = self._positions[1]
        return sorted(found, key=lambda n: position.get(n, -1))

    def _evaluate(self, name: str) -> Any:
        return driver.run(self.typed.terms[name], self.runtime, self.value)

    def check(self, term: Term, number: Type = INT) -> Term:
        """Type-check and elaborate a parsed term in the scope of this program's
        definitions, the numbers nothing determines ``number``s (Ints, or Reals for a term
        to differentiate).  Errors are left unlocated: the caller knows the text.  The
        specialisations of the generic definitions it uses join the program's definitions."""
        known = len(self.typed.terms)
        checked = driver.check_term(term, self.typed.types, self.typed.scope,
                                    Instances(self.typed.types, self.typed.terms), number)
        if len(self.typed.terms) != known:
            self._positions = None  # the order of the definitions, with the new ones last
        return checked

    def run(self, term: Term) -> Any:
        """The value of an elaborated term (see :meth:`check`); errors are left unlocated."""
        return driver.run(term, self.runtime, self.value)

    def evaluate(self, text: str, expected: Type | None = None, filename: str = "<input>") -> Any:
        """Evaluate the expression ``text`` in the scope of this program's definitions,
        checked against ``expected`` when it is given; returns the lamad value."""
        try:
            term = parse_term(text)
        except LamError as e:
            raise e.locate(text, filename) from None
        if expected is not None:
            term = Ann(term, expected, span=term.span)
        return _located(text, filename, lambda: self.run(self.check(term)))

    def define(self, program: Program) -> None:
        """Add the definitions of ``program`` below this program's, one after the other, as
        a REPL does: each is checked against those above it.  One that has the
        name of an existing definition replaces it, and the definitions that depend on that
        name are checked again right after it (their values are computed again when next
        used), so that the whole is always a program a file could hold.  All or nothing: on
        an error nothing changes.  Errors are left unlocated."""
        defs = list(self.typed.program.defs)
        types, terms = dict(self.typed.types), dict(self.typed.terms)
        scope = self.typed.scope
        if program.imports:  # their modules' definitions join the session's, qualified
            imported = driver.imports(program, self.runtime.base_dir, scope.modules | types.keys())
            types.update(imported.types)
            terms.update(imported.terms)
            scope = imported.scope(scope)
        if program.aliases:  # a type alias typed again replaces the old one (what uses it is checked)
            kept = {n: t for n, t in scope.aliases.items() if n not in {a.name for a in program.aliases}}
            scope = aliases(program, replace(scope, aliases=kept))
        replaced: set[str] = set()
        for d in program.defs:
            if d.name in scope.templates:  # a generic definition typed again replaces the old one
                scope = replace(scope, templates={n: t for n, t in scope.templates.items() if n != d.name})
                defs = [old for old in defs if old.name != d.name]
            stale = {d.name} & types.keys()
            users = []
            for old in defs:  # in order: a definition uses only those above it
                if old.name in terms and old.name not in stale and stale & free_variables(terms[old.name]).keys():
                    stale.add(old.name)
                    users.append(old)
            defs = [old for old in defs if old.name not in stale]
            for name in stale:
                del types[name], terms[name]
            for new in [d, *users]:
                try:
                    checked = driver.check_definitions(Program((new,)), types, scope)
                except LamError as e:
                    if new is d:
                        raise
                    raise type(e)(f"'{new.name}' depends on '{d.name}', redefined here, and no longer "
                                  f"type-checks: {e.message}", e.span) from None
                types.update(checked.types)
                terms.update(checked.terms)
                scope = checked.scope  # with the generic definitions among them
                defs.append(new)
            replaced |= stale
        for name in replaced:  # first: were this interrupted, no stale value would remain
            self._values.pop(name, None)
        self.typed = TypedProgram(replace(self.typed.program, defs=tuple(defs),
                                          imports=self.typed.program.imports + program.imports), types, terms, scope)

    def function_types(self, name: str) -> list[Type]:
        """The types of the arguments definition ``name`` takes, one after the other."""
        types, t = [], self.typed.types[name]
        while isinstance(t, FunType):
            types.append(t.dom)
            t = t.cod
        return types

    def call(self, name: str, args: list[Any]) -> tuple[Any, Type]:
        """Apply definition ``name`` to lamad values ``args``; returns the value and its type."""
        result = self.value(name)
        if args:
            result = self._located(driver.apply, result, args)
        t = self.typed.types[name]
        for _ in args:
            assert isinstance(t, FunType)
            t = t.cod
        return result, t

    def backprop(self, name: str, simplified: bool = True, normalized: bool = False) -> tuple[str, Type, Term]:
        """←D of definition ``name``, simplified unless ``simplified=False``, its
        higher-order code inlined first with ``normalized``: the transformed term, checked
        at type ←D(A)."""
        ty, term = self._located(self.derivative, self.typed.terms[name], simplified, False, normalized)
        return name, ty, term

    def forward(self, name: str, simplified: bool = True, normalized: bool = False) -> tuple[str, Type, Term]:
        """→D of definition ``name``, as :meth:`backprop` makes ←D: checked at type →D(A)."""
        ty, term = self._located(self.derivative, self.typed.terms[name], simplified, True, normalized)
        return name, ty, term

    def derivative(self, term: Term, simplified: bool = True, forward_mode: bool = False,
                   normalized: bool = False) -> tuple[Type, Term]:
        """←D (or →D, in ``forward_mode``) of an elaborated term (docs/differentiation.md),
        simplified unless ``simplified=False``, its higher-order code inlined first with
        ``normalized`` (within a budget), and its type ←D(A) (:func:`lamad.driver.derivative`).
        Errors are left unlocated."""
        return driver.derivative(term, "forward" if forward_mode else "reverse", simplified,
                                 self.typed.terms if normalized else None)

    def _located(self, fn: Callable, *args) -> Any:
        return _located(self.source, self.filename, fn, *args)

    def __repr__(self) -> str:
        return f"<lamad program {self.filename}: {', '.join(self.typed.types)}>"


class _Module:
    """An imported module of a loaded program, seen from Python: ``prog.nn.dense`` is
    ``prog["nn.dense"]``."""

    def __init__(self, program: LoadedProgram, name: str):
        self._program, self._name = program, name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._program, f"{self._name}.{name}")

    def __dir__(self):
        prefix = self._name + "."
        names = [*self._program.typed.types, *self._program.typed.scope.modules]
        return sorted({n[len(prefix):].split(".")[0] for n in names if n.startswith(prefix)})

    def __repr__(self) -> str:
        return f"<lamad module {self._name} of {self._program.filename}>"


class Function:
    """A lamad function value seen from Python: call it with Python/array arguments."""

    def __init__(self, closure: Callable, type_: FunType, program: LoadedProgram, name: str = "<fun>"):
        self.closure = closure
        self.type = type_
        self.program = program
        self.name = name
        self.where: tuple[str, str] | None = None  # (source, filename) when not the program's
        self.param_types: list[Type] = []
        self._results: list[Type] = []  # the type of the result after 1, 2, … arguments
        t: Type = type_
        while isinstance(t, (FunType, LinType)):
            self.param_types.append(t.dom)
            t = t.cod
            self._results.append(t)
        self.result_type = t
        self._importers: list[Callable[[Any], Any]] | None = None
        self._as_is: tuple[tuple[type, ...], tuple[Any, ...]] | None = None  # the class and dtype of the values
        # taken as they are, per parameter, if every parameter has such values
        self._exporters: dict[int, Callable[[Any], Any]] = {}

    def __call__(self, *args: Any) -> Any:
        if not 1 <= len(args) <= len(self.param_types):
            raise LamArgumentError(f"{self.name} takes {len(self.param_types)} argument(s), got {len(args)}")
        values = self.arguments(args)  # a wrong argument is the caller's error, not the program's
        text = self.where or (self.program.source, self.program.filename)  # where it was written
        result = _located(*text, driver.apply, self.closure, values)
        export = self._exporters.get(len(args))
        if export is None:
            export = self._exporters[len(args)] = _exporter(self._results[len(args) - 1], self.program)
        return export(result)

    def arguments(self, args: tuple | list) -> list:
        """The lamad values of the Python values ``args`` of its first parameters.  The
        converters are made once; where every parameter has values that cross over as
        they are (:func:`_taken_as_is`: a network's weights and data), arguments that all
        are such values are taken as they are, their classes and their dtypes compared
        with those expected by C loops (``map``), without a line of Python per argument."""
        if self._importers is None:
            backend = self.program.backend
            self._importers = [_importer(t, backend) for t in self.param_types]
            kept = [_taken_as_is(t, backend) for t in self.param_types]
            self._as_is = None if None in kept else (tuple(k for k, _ in kept), tuple(d for _, d in kept))
        if self._as_is is not None:
            kinds, dtypes = self._as_is
            if tuple(map(type, args)) == kinds[:len(args)] and all(map(is_, map(_DTYPE, args), dtypes)):
                return list(args)
        try:
            return [convert(a) for convert, a in zip(self._importers, args)]
        except (TypeError, ValueError):
            pass
        for i, (convert, a, t) in enumerate(zip(self._importers, args, self.param_types)):
            try:
                convert(a)
            except (TypeError, ValueError) as e:
                raise LamArgumentError(f"{self.name}: argument {i} expects a value of type {pretty_type(t)}, "
                                       f"got {_given(a)}: {e}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"<fun {self.name} : {self.type}>"


def from_python(x: Any, t: Type, backend: Backend) -> Any:
    """A Python/array value as the lamad value of type ``t`` on ``backend``."""
    return _importer(t, backend)(x)


def to_python(v: Any, t: Type, program: LoadedProgram) -> Any:
    """A lamad value of type ``t`` as a Python value (Real as a 0-d backend array)."""
    return _exporter(t, program)(v)


def _importer(t: Type, backend: Backend) -> Callable[[Any], Any]:
    """:func:`from_python` at type ``t``: the tests on ``t`` made once, for a function
    called again and again with arguments of the same types."""
    if t == REAL:
        def real(x: Any) -> Any:
            if isinstance(x, (int, float)):
                return backend.scalar(x)
            value = backend.asarray(x)
            if value.ndim != 0:
                raise TypeError(f"expected a Real (a float or a 0-d array), got an array of shape "
                                f"{tuple(value.shape)}")
            return float(value) if backend.floats else value
        return real
    if t == TENSOR:
        return _tensor_importer(backend)
    if t == INT_TENSOR:
        return backend.ints
    if t == BOOL_TENSOR:
        return backend.bools
    if t == INT:
        return _int
    if t == BOOL:
        return bool
    if isinstance(t, TupleType):
        items = [_importer(i, backend) for i in t.items]

        def tuple_(x: Any) -> tuple:
            if not isinstance(x, tuple) or len(x) != len(items):
                raise TypeError(f"expected a tuple of {len(items)} items for {t}, got {x!r}")
            return tuple([item(v) for item, v in zip(items, x)])
        return tuple_
    if isinstance(t, RecordType):
        return _record_importer(t, [_importer(i, backend) for i in t.items])
    if isinstance(t, ListType):
        elem = _importer(t.elem, backend)
        return lambda x: [elem(v) for v in x]
    if isinstance(t, FunType):
        return lambda x: x.closure if isinstance(x, Function) else x
    return _same  # Unit, String


def _taken_as_is(t: Type, backend: Backend) -> tuple[type, Any] | None:
    """The class and dtype of the values of type ``t`` that :func:`_importer` gives back
    as they are, where it has such: on NumPy, an array of the backend's dtype for a
    Tensor (:func:`_tensor_importer`), and the backend's scalar for a Real (what
    ``backend.scalar`` makes of it is an equal scalar) — but not where a Real is a Python
    float (:attr:`Backend.floats`): a NumPy scalar taken as it is would make the typed
    code compute on NumPy's scalars, through every operation it reaches."""
    if backend.xp is not np:
        return None
    if t == TENSOR:
        return np.ndarray, backend.dtype
    if t == REAL and not backend.floats:
        return backend.dtype.type, backend.dtype
    return None


def _tensor_importer(backend: Backend) -> Callable[[Any], Any]:
    """``backend.asarray``, but a NumPy array that is already of the NumPy backend's dtype
    is taken as it is, as ``asarray`` would give it back (the arguments of most calls: a
    network's weights and data), without its tests."""
    if backend.xp is not np:
        return backend.asarray
    dtype, asarray = backend.dtype, backend.asarray

    def tensor(x: Any) -> Any:
        return x if type(x) is np.ndarray and x.dtype is dtype else asarray(x)
    return tensor


def _record_importer(t: RecordType, items: list[Callable[[Any], Any]]) -> Callable[[Any], tuple]:
    """A dict (any mapping) as the value of the record type ``t``: the tuple of its
    fields' values, in the order of ``t``'s fields."""
    fields = set(t.fields)

    def record(x: Any) -> tuple:
        if not isinstance(x, Mapping):
            raise TypeError(f"expected a dict with the keys {', '.join(map(repr, t.fields))} for {t}, got {x!r}")
        if x.keys() != fields:
            missing, extra = sorted(fields - x.keys()), sorted(map(str, x.keys() - fields))
            said = [f"missing {', '.join(map(repr, missing))}"] if missing else []
            said += [f"unknown {', '.join(map(repr, extra))}"] if extra else []
            raise TypeError(f"expected a dict with the keys {', '.join(map(repr, t.fields))} for {t}, "
                            f"got one with keys {'; '.join(said)}")
        return tuple([item(x[f]) for item, f in zip(items, t.fields)])
    return record


def _exporter(t: Type, program: LoadedProgram) -> Callable[[Any], Any]:
    """:func:`to_python` at type ``t``, the tests on ``t`` made once."""
    if t == REAL:
        return program.backend.xp.asarray
    if isinstance(t, TupleType):
        items = [_exporter(i, program) for i in t.items]
        if all(item is _same for item in items):  # a tuple of arrays (or of such tuples) is its own value
            return _same
        converted = [(i, item) for i, item in enumerate(items) if item is not _same]

        def tuple_(v: tuple) -> tuple:
            """The items that cross over as they are (arrays) without a call."""
            out = list(v)
            for i, item in converted:
                out[i] = item(out[i])
            return tuple(out)
        return tuple_
    if isinstance(t, RecordType):
        items = [_exporter(i, program) for i in t.items]
        return lambda v: {f: item(x) for f, item, x in zip(t.fields, items, v)}
    if isinstance(t, ListType):
        elem = _exporter(t.elem, program)
        return lambda v: [elem(x) for x in v]
    if isinstance(t, (FunType, LinType)):
        return lambda v: Function(v, t, program)
    return _same


def _int(x: Any) -> int:
    """An ``Int`` argument: a Python int, not a bool."""
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"expected an int, got {x!r}")
    return int_in_range(x, f"the int {x}")


def _same(x: Any) -> Any:
    """A value that crosses over as it is."""
    return x


def loads(source: str, filename: str = "<string>", backend: str | None = None, dtype: str | None = None,
          base_dir: str | Path | None = None, progress: bool = False, scheduler: str | None = None) -> LoadedProgram:
    """Parse and type-check a program; ``load`` paths and imported files are relative to
    ``base_dir`` (default: the current directory); with ``progress``, long loops show a bar
    on stderr; the dask backend computes on the Dask ``scheduler`` at that address
    (lamad/cluster.py)."""
    if not isinstance(source, str):
        raise LamArgumentError(f"lamad.loads: parameter 'source' expects the text of a program (str), "
                               f"got {_given(source)}")
    folder = Path(base_dir) if base_dir is not None else Path.cwd()
    runtime = driver.runtime(get_backend(backend, dtype), folder, Progress(sys.stderr) if progress else None)
    cluster.use(runtime.backend, scheduler)
    try:
        typed = driver.check_program(source, filename, folder)
    except LamError as e:
        raise e.locate(source, filename) from None
    return LoadedProgram(typed, runtime, source, filename)


def load(path: str | Path, backend: str | None = None, dtype: str | None = None,
         progress: bool = False, scheduler: str | None = None) -> LoadedProgram:
    """Load a ``.lam`` file and the modules it imports; its ``load`` paths and imports are
    relative to the file."""
    if not isinstance(path, (str, Path)):
        raise LamArgumentError(f"lamad.load: parameter 'path' expects a file name (str or Path), got {_given(path)}")
    path = Path(path)
    source = read_source(path)
    return loads(source, str(path), backend, dtype, base_dir=path.resolve().parent, progress=progress,
                 scheduler=scheduler)


# --------------------------------------------------------------------- saving and loading values


def save(path: str | Path, value: Any, type: str | Type | None = None) -> None:
    """Save ``value`` to the ``.npz`` archive ``path``, as ``lamad run --output`` saves a
    result (lamad/archive.py), so that ``load_params`` reads it back.  ``type`` is its
    lamad type (``"Tensor * List Real"``, or a parsed type); without it, the type is read
    off the value as the API gives values back: a float or a 0-d float array is a Real,
    another float array a Tensor, an int an Int, an integer array an IntTensor, a bool a
    Bool, a boolean array a BoolTensor, a str a String, ``()`` a Unit, a tuple a tuple, a
    dict whose keys are names a record, and a non-empty list of values of one type a list."""
    t = _value_type(value, "value") if type is None else _type_argument(type, "lamad.save")
    bad = archive.not_data(t)
    if bad is not None:
        raise LamArgumentError(f"lamad.save: an archive holds data, not functions; the type {t} holds {bad}")
    backend = get_backend()
    try:
        checked = from_python(value, t, backend)
    except (TypeError, ValueError) as e:
        raise LamArgumentError(f"lamad.save: parameter 'value' is not a value of type {t}: {e}") from None
    archive.write(path, checked, t, backend.to_host)


def load_params(path: str | Path, type: str | Type | None = None, backend: str | None = None,
                dtype: str | None = None) -> Any:
    """The value in the ``.npz`` archive ``path``, as ``load_params`` reads it in a
    program, crossing over as the API's values do (a Real as a 0-d array).  Its type is
    ``type`` where given (the archive must hold a value of that type), else the one the
    archive records; a mismatch, or a file that is not such an archive, raises a
    :class:`LamRuntimeError` that names it."""
    name = str(path)
    try:
        stored = archive.read(path, name)
        if type is not None:
            t = _type_argument(type, "lamad.load_params")
        elif archive.TYPE_KEY in stored and stored[archive.TYPE_KEY].dtype.kind == "U":
            t = parse_type(str(stored[archive.TYPE_KEY][()]))
        else:
            raise ValueError(f"'{name}' records no type ({archive.TYPE_KEY}): give lamad.load_params its type")
        on = get_backend(backend, dtype)
        return _host_reals(archive.value(stored, t, on, name), t, on)
    except ValueError as e:
        raise LamRuntimeError(f"lamad.load_params: {e}") from None


def _type_argument(t: str | Type, op: str) -> Type:
    if isinstance(t, Type):
        return t
    if isinstance(t, str):
        return parse_type(t)
    raise LamArgumentError(f"{op}: parameter 'type' expects a lamad type (str or Type), got {_given(t)}")


def _value_type(x: Any, where: str) -> Type:
    """The lamad type of a Python value as the API gives values back (see :func:`save`)."""
    if isinstance(x, bool):
        return BOOL
    if isinstance(x, int):
        return INT
    if isinstance(x, float):
        return REAL
    if isinstance(x, str):
        return STRING
    if isinstance(x, tuple):
        return UNIT if not x else TupleType(tuple(_value_type(item, f"{where}[{i}]") for i, item in enumerate(x)))
    if isinstance(x, Mapping) and x and all(isinstance(k, str) and NAME.fullmatch(k) and k not in KEYWORDS for k in x):
        return record_type((k, _value_type(v, f"{where}[{k!r}]")) for k, v in x.items())
    if isinstance(x, list) and x:
        types = {_value_type(item, f"{where}[{i}]") for i, item in enumerate(x)}
        if len(types) == 1:
            return ListType(types.pop())
        raise LamArgumentError(f"lamad.save: the elements of {where} have several types "
                               f"({', '.join(sorted(map(str, types)))}): give lamad.save their type")
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if kind == "f":
        return REAL if x.ndim == 0 else TENSOR
    if kind in ("i", "u"):
        return INT_TENSOR
    if kind == "b":
        return BOOL_TENSOR
    what = "an empty list, whose element type" if isinstance(x, list) else f"{_given(x)}, whose type"
    raise LamArgumentError(f"lamad.save: {where} is {what} cannot be told: give lamad.save its type")


def on_host(v: Any, t: Type, backend: Backend) -> Any:
    """A value of type ``t`` with its arrays and Reals copied to NumPy by the backend's
    ``to_host``, for printing (on NumPy, the value itself); functions and gradient values
    as they are."""
    if backend.name == "numpy":
        return v
    if t in (REAL, TENSOR, INT_TENSOR, BOOL_TENSOR):
        return backend.to_host(v)
    if isinstance(t, (TupleType, RecordType)):
        return tuple([on_host(x, i, backend) for x, i in zip(v, t.items)])
    if isinstance(t, ListType):
        return [on_host(x, t.elem, backend) for x in v]
    return v


def _host_reals(v: Any, t: Type, backend: Backend) -> Any:
    """A value of type ``t`` with its Reals as 0-d arrays, as the API gives them."""
    if t == REAL:
        return backend.xp.asarray(v)
    if isinstance(t, TupleType):
        return tuple([_host_reals(x, i, backend) for x, i in zip(v, t.items)])
    if isinstance(t, RecordType):
        return {f: _host_reals(x, i, backend) for f, x, i in zip(t.fields, v, t.items)}
    if isinstance(t, ListType):
        return [_host_reals(x, t.elem, backend) for x in v]
    return v


# --------------------------------------------------------------------- AD on Python callables


def _differentiate(op: str, f: Function, argnums: int | tuple[int, ...]) -> Callable:
    """``op`` (grad, value_and_grad, hessian, jacfwd, jacrev) of the lamad function ``f`` in the arguments
    ``argnums``, the others held constant: the lamad term ``op (\\xi. f x0 … xn)``,
    checked and compiled once, applied to the arguments of each call (``grad`` and
    ``value_and_grad``: checked, then computed without it by :func:`_gradient`)."""
    f = _function(f, op)
    program, arity = f.program, len(f.param_types)
    if isinstance(argnums, bool) or not (isinstance(argnums, int) or isinstance(argnums, tuple) and all(
            isinstance(n, int) and not isinstance(n, bool) for n in argnums)):
        raise LamArgumentError(f"lamad.{op}: parameter 'argnums' expects an int or a tuple of ints, "
                               f"got {_given(argnums)}")
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or any(not 0 <= n < arity for n in nums):
        raise LamArgumentError(f"parameter 'argnums' expects argument numbers from 0 to {arity - 1} "
                               f"({f.name} takes {arity} argument(s)), got {argnums!r}")
    names = [f"x{i}" for i in range(arity)]
    param = _tuple_text([names[n] for n in nums])
    term = parse_term(f"{op} (\\{param}. f {' '.join(names)})")
    env = {"f": f.type, **dict(zip(names, f.param_types))}
    try:
        term = driver.check_term(term, env)
    except LamError as e:
        raise e.locate(f"{op} {f.name}", "<python>") from None
    if op in ("grad", "value_and_grad"):
        return _gradient(f, nums, op == "value_and_grad", isinstance(argnums, tuple) and len(nums) == 1,
                         _exporter(term.ty.cod, program))
    code = driver.compile(term, program.runtime, program.value, ["f", *names])
    export = _exporter(term.ty.cod, program)
    # in every argument, ``op (\(x0, …). f x0 …)`` captures no argument: its value, and what
    # it makes on its first call (←D of f, lifted), serve every call
    kept = [] if set(nums) == set(range(arity)) else None

    def differentiated(*args: Any) -> Any:
        if len(args) != arity:
            raise TypeError(f"{f.name} takes {arity} argument(s), got {len(args)}")
        values = f.arguments(args)
        point = values[nums[0]] if len(nums) == 1 else tuple([values[n] for n in nums])
        if kept is None:
            gradient = code(f.closure, *values)
        else:
            if not kept:
                kept.append(code(f.closure, *values))
            gradient = kept[0]
        result = export(program._located(driver.apply, gradient, [point]))
        if isinstance(argnums, int) or len(nums) > 1:
            return result
        # as in JAX, argnums=(i,) gives a tuple of one gradient (lamad has no 1-tuples)
        if op == "hessian":
            return ((result,),)
        return _one_tuples(result, f.result_type) if op in ("jacfwd", "jacrev") else (result,)
    return differentiated


def _gradient(f: Function, nums: tuple[int, ...], with_value: bool, one: bool,
              export: Callable[[Any], Any]) -> Callable:
    """``grad`` or ``value_and_grad`` (``with_value``) of ``f`` in the arguments ``nums``,
    checked by :func:`_differentiate`: an :class:`lamad.autodiff.ArgumentGradient`, made
    once, that each call runs at its arguments, with no term to compile or apply; its
    errors (a result that is not a scalar) are located at the definition of ``f`` where it
    is one of the program's.  ``one`` for ``argnums=(i,)``, which, as in JAX, gives a tuple
    of one gradient."""
    program, arity = f.program, len(f.param_types)
    spans = {d.name: d.name_span for d in program.typed.program.defs} if f.where is None else {}
    gradient = ArgumentGradient(f.closure, f.type, f.param_types, nums, program.runtime, with_value,
                                spans.get(f.name))

    def differentiated(*args: Any) -> Any:
        if len(args) != arity:
            raise TypeError(f"{f.name} takes {arity} argument(s), got {len(args)}")
        result = export(_located(program.source, program.filename, gradient, f.arguments(args)))
        if not one:
            return result
        return (result[0], (result[1],)) if with_value else (result,)
    return differentiated


def _one_tuples(value: Any, t: Type) -> Any:
    """A Jacobian in ``argnums=(i,)``: each leaf of the result's structure (``t``) a tuple
    of the one block, as JAX gives it."""
    if isinstance(t, RecordType):
        return {f: _one_tuples(value[f], i) for f, i in zip(t.fields, t.items)}
    if isinstance(t, TupleType):
        return tuple(_one_tuples(v, i) for v, i in zip(value, t.items))
    return (value,)


def grad(f: Function, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The gradient of a lamad function returning Real (or a 0-d Tensor), in argument
    ``argnums`` (an int, or a tuple of ints for a tuple of gradients), as JAX's ``jax.grad``."""
    return _differentiate("grad", f, argnums)


def value_and_grad(f: Function, argnums: int | tuple[int, ...] = 0) -> Callable:
    """Like :func:`grad`, returning ``(value, gradient)``."""
    return _differentiate("value_and_grad", f, argnums)


def hessian(f: Function, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Hessian of a lamad function returning Real in argument ``argnums``, a Real or a
    Tensor of shape ``s`` (then a Tensor of shape ``s + s``), or a record or tuple of them
    (then the record or tuple of records or tuples of the blocks; a tuple of ints for
    ``argnums`` is such a tuple), as JAX's ``jax.hessian``: forward-over-reverse,
    ``jacfwd (grad f)``."""
    return _differentiate("hessian", f, argnums)


def jacfwd(f: Function, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Jacobian of a lamad function from Real or Tensor to Real or Tensor, of shape
    ``out + in``, one ``jvp`` per component of the argument (JAX's ``jax.jacfwd``); of
    records and tuples of them, the result's structure of the argument's structure of
    blocks, as JAX gives it for pytrees."""
    return _differentiate("jacfwd", f, argnums)


def jacrev(f: Function, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Jacobian as :func:`jacfwd` gives it, one pullback per component of the result
    (JAX's ``jax.jacrev``)."""
    return _differentiate("jacrev", f, argnums)


def vjp(f: Function, *args: Any) -> tuple[Any, Callable]:
    """``(f(*args), pullback)``: ``pullback(ct)`` is the tuple of the cotangents of the
    arguments (one cotangent when ``f`` takes one argument), as JAX's ``jax.vjp``."""
    return _at_point("vjp", f, args)


def jvp(f: Function, primals: tuple | list, tangents: tuple | list) -> tuple[Any, Any]:
    """``(f(*primals), J·tangents)``, as JAX's ``jax.jvp``: ``tangents`` has one tangent
    per argument, of the argument's cotangent type (forward mode, →D)."""
    return _at_point("jvp", f, _sequence(primals, "jvp", "primals"), _sequence(tangents, "jvp", "tangents"))


def hvp(f: Function, primals: tuple | list, tangents: tuple | list) -> Any:
    """The Hessian of a lamad function returning Real at ``primals``, applied to
    ``tangents`` (forward-over-reverse: the tangent of ``jvp (grad f)``)."""
    return _at_point("hvp", f, _sequence(primals, "hvp", "primals"), _sequence(tangents, "hvp", "tangents"))


def _at_point(op: str, f: Function, primals: tuple, tangents: tuple | None = None) -> Any:
    """``op (\\(x0, …). f x0 …) (x0, …)``, followed by ``(t0, …)`` when tangents are given:
    the lamad term checked, compiled and run."""
    f = _function(f, op)
    if not 1 <= len(primals) <= len(f.param_types):
        raise LamArgumentError(f"lamad.{op}: {f.name} takes {len(f.param_types)} argument(s), "
                               f"got {len(primals)}")
    names = [f"x{i}" for i in range(len(primals))]
    tnames = [f"t{i}" for i in range(len(primals))]
    types = f.param_types[:len(primals)]
    program = f.program
    text = f"{op} (\\{_tuple_text(names)}. f {' '.join(names)}) {_tuple_text(names)}"
    env = {"f": f.type, **dict(zip(names, types))}
    values = f.arguments(primals)
    if tangents is not None:
        if len(tangents) != len(primals):
            raise LamArgumentError(f"lamad.{op}: {len(primals)} primals but {len(tangents)} tangents")
        try:
            cts = [cotangent_type(t) for t in types]
        except ValueError as e:
            raise TypeError(f"{f.name}: cannot take tangents of its arguments: {e}") from None
        text += f" {_tuple_text(tnames)}"
        env.update(zip(tnames, cts))
        tangent_values = []
        for i, (a, t) in enumerate(zip(tangents, cts)):
            try:
                tangent_values.append(from_python(a, t, program.backend))
            except (TypeError, ValueError) as e:
                raise LamArgumentError(f"lamad.{op}: tangent {i} expects a value of type {pretty_type(t)}, "
                                       f"got {_given(a)}: {e}") from None
        for i, (x, dx, t) in enumerate(zip(values, tangent_values, types)):
            try:
                check_fits(x, dx, t, "tangent", "point")
            except ValueError as e:
                raise LamArgumentError(f"{op} {f.name}: argument {i}: {e}") from None
        values += tangent_values
    try:
        term = driver.check_term(parse_term(text), env)
    except LamError as e:
        raise e.locate(f"{op} {f.name}", "<python>") from None
    code = driver.compile(term, program.runtime, program.value, list(env))
    result = to_python(program._located(code, f.closure, *values), term.ty, program)
    if op == "vjp":  # the pullback's errors are located in the term written here
        result[1].where = (text, "<python>")
    return result


def _tuple_text(names: list[str]) -> str:
    return names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
