"""The Python API (SPEC §6): load a program and use its definitions from Python.

    prog = lamad.load("examples/wine.lam")
    prog.loss(W1, W2)          # a definition with parameters is a callable
    prog["data"]               # one without is its value, computed once

Values cross over as: Tensor ↔ backend array, Real ↔ 0-d backend array (a Python
float is accepted), Int ↔ int, Bool ↔ bool, tuples ↔ tuples, lists ↔ lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from lamad.backend import Backend, get_backend
from lamad.builtins import Runtime
from lamad.deep import collector_paused, deep
from lamad.errors import LamError
from lamad.eval import Compiler
from lamad.parser import parse_program, parse_term
from lamad.reverse import backprop, backprop_type
from lamad.simplify import simplify
from lamad.syntax import (
    BOOL, INT, REAL, STRING, TENSOR, UNIT, Ann, FunType, LinType, ListType, Term, TupleType, Type, term_names,
)
from lamad.types import TypedProgram, infer_term, typecheck


class LoadedProgram:
    """A checked program bound to a backend; its definitions are attributes and items."""

    def __init__(self, typed: TypedProgram, runtime: Runtime, source: str, filename: str):
        self.typed = typed
        self.runtime = runtime
        self.source = source
        self.filename = filename
        self._values: dict[str, Any] = {}

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
        if name.startswith("_") or name not in self.typed.types:
            raise AttributeError(name)
        return self[name]

    def __dir__(self):
        return [*super().__dir__(), *self.typed.types]

    def value(self, name: str) -> Any:
        """The lamad value of a definition, evaluated on first use (with those it uses)."""
        if name not in self._values:
            self._values[name] = self._located(self._evaluate, name)
        return self._values[name]

    @deep
    def _evaluate(self, name: str) -> Any:
        thunk = collector_paused(Compiler(self.runtime, self.value).compile_closed)(self.typed.terms[name])
        return thunk()

    def evaluate(self, text: str, expected: Type | None = None, filename: str = "<input>") -> Any:
        """Evaluate the expression ``text`` in the scope of this program's definitions,
        checked against ``expected`` when it is given; returns the lamad value."""
        try:
            term = parse_term(text)
            if expected is not None:
                term = Ann(term, expected, span=term.span)
            elaborated = deep(infer_term)(term, self.typed.types)
            return deep(Compiler(self.runtime, self.value).compile_closed(elaborated))()
        except LamError as e:
            raise e.locate(text, filename) from None

    def call(self, name: str, args: list[Any]) -> tuple[Any, Type]:
        """Apply definition ``name`` to lamad values ``args``; returns the value and its type."""
        result = self.value(name)
        if args:
            result = self._located(_apply, result, args)
        t = self.typed.types[name]
        for _ in args:
            assert isinstance(t, FunType)
            t = t.cod
        return result, t

    def backprop(self, name: str, simplified: bool = True) -> tuple[str, Type, Term]:
        """←D of definition ``name``, simplified unless ``simplified=False``: the
        transformed term, checked at type ←D(A)."""
        source = self.typed.terms[name]
        term = self._located(deep(backprop), source)
        if simplified:
            term = deep(simplify)(term, keep=term_names(source))
        types = {n: backprop_type(t) for n, t in self.typed.types.items()}
        try:
            checked = deep(infer_term)(term, types)
        except LamError as e:
            raise e.locate(self.source, self.filename) from None
        return name, checked.ty, term

    def _located(self, fn: Callable, *args) -> Any:
        try:
            return fn(*args)
        except LamError as e:
            raise e.locate(self.source, self.filename) from None

    def __repr__(self) -> str:
        return f"<lamad program {self.filename}: {', '.join(self.typed.types)}>"


class Function:
    """A lamad function value seen from Python: call it with Python/array arguments."""

    def __init__(self, closure: Callable, type_: FunType, program: LoadedProgram, name: str = "<fun>"):
        self.closure = closure
        self.type = type_
        self.program = program
        self.name = name
        self.param_types: list[Type] = []
        t: Type = type_
        while isinstance(t, (FunType, LinType)):
            self.param_types.append(t.dom)
            t = t.cod
        self.result_type = t

    def __call__(self, *args: Any) -> Any:
        if not 1 <= len(args) <= len(self.param_types):
            raise TypeError(f"{self.name} takes {len(self.param_types)} argument(s), got {len(args)}")
        values = [from_python(a, t, self.program.backend) for a, t in zip(args, self.param_types)]
        result = self.program._located(_apply, self.closure, values)
        t: Type = self.type
        for _ in args:
            assert isinstance(t, (FunType, LinType))
            t = t.cod
        return to_python(result, t, self.program)

    def __repr__(self) -> str:
        return f"<fun {self.name} : {self.type}>"


@deep
def _apply(closure: Callable, values: list) -> Any:
    result = closure
    for v in values:
        result = result(v)
    return result


def from_python(x: Any, t: Type, backend: Backend) -> Any:
    """A Python/array value as the lamad value of type ``t`` on ``backend``."""
    if t == REAL:
        if isinstance(x, (int, float)):
            return backend.scalar(x)
        value = backend.asarray(x)
        if value.ndim != 0:
            raise TypeError(f"expected a Real (a float or a 0-d array), got an array of shape {tuple(value.shape)}")
        return value
    if t == TENSOR:
        return backend.asarray(x)
    if t == INT:
        if isinstance(x, bool) or not isinstance(x, int):
            raise TypeError(f"expected an int, got {x!r}")
        return x
    if t == BOOL:
        return bool(x)
    if t in (UNIT, STRING):
        return x
    if isinstance(t, TupleType):
        if not isinstance(x, tuple) or len(x) != len(t.items):
            raise TypeError(f"expected a tuple of {len(t.items)} items for {t}, got {x!r}")
        return tuple(from_python(v, i, backend) for v, i in zip(x, t.items))
    if isinstance(t, ListType):
        return [from_python(v, t.elem, backend) for v in x]
    if isinstance(t, FunType):
        return x.closure if isinstance(x, Function) else x
    return x


def to_python(v: Any, t: Type, program: LoadedProgram) -> Any:
    """A lamad value of type ``t`` as a Python value (Real as a 0-d backend array)."""
    if t == REAL:
        return program.backend.xp.asarray(v)
    if isinstance(t, TupleType):
        return tuple(to_python(x, i, program) for x, i in zip(v, t.items))
    if isinstance(t, ListType):
        return [to_python(x, t.elem, program) for x in v]
    if isinstance(t, (FunType, LinType)):
        return Function(v, t, program)
    return v


@deep
@collector_paused
def _check(source: str) -> TypedProgram:
    return typecheck(parse_program(source))


def loads(source: str, filename: str = "<string>", backend: str | None = None, dtype: str | None = None,
          base_dir: str | Path | None = None) -> LoadedProgram:
    """Parse and type-check a program; ``load`` paths are relative to ``base_dir``
    (default: the current directory)."""
    runtime = Runtime(get_backend(backend, dtype), Path(base_dir) if base_dir is not None else Path.cwd())
    try:
        typed = _check(source)
    except LamError as e:
        raise e.locate(source, filename) from None
    return LoadedProgram(typed, runtime, source, filename)


def load(path: str | Path, backend: str | None = None, dtype: str | None = None) -> LoadedProgram:
    """Load a ``.lam`` file; its ``load`` paths are relative to the file."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    return loads(source, str(path), backend, dtype, base_dir=path.resolve().parent)


# --------------------------------------------------------------------- AD on Python callables


def _differentiate(op: str, f: Function, argnums: int | tuple[int, ...]) -> Callable:
    """``op`` (grad or value_and_grad) of the lamad function ``f`` in the arguments
    ``argnums``, the others held constant: the lamad term ``op (\\xi. f x0 … xn)``,
    checked and compiled once, applied to the arguments of each call."""
    program, arity = f.program, len(f.param_types)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or any(not 0 <= n < arity for n in nums):
        raise ValueError(f"argnums {argnums} out of range for {f.name}, which takes {arity} argument(s)")
    names = [f"x{i}" for i in range(arity)]
    chosen = [names[n] for n in nums]
    param = chosen[0] if len(chosen) == 1 else "(" + ", ".join(chosen) + ")"
    term = parse_term(f"{op} (\\{param}. f {' '.join(names)})")
    env = {"f": f.type, **dict(zip(names, f.param_types))}
    try:
        term = deep(infer_term)(term, env)
    except LamError as e:
        raise e.locate(f"{op} {f.name}", "<python>") from None
    compiler = Compiler(program.runtime, program.value)
    for name in ["f", *names]:
        compiler.scope.slots[name] = compiler.scope.new_slot()
    code, size = compiler.compile(term), compiler.scope.size

    def differentiated(*args: Any) -> Any:
        if len(args) != arity:
            raise TypeError(f"{f.name} takes {arity} argument(s), got {len(args)}")
        values = [from_python(a, t, program.backend) for a, t in zip(args, f.param_types)]
        point = values[nums[0]] if len(nums) == 1 else tuple(values[n] for n in nums)
        gradient = code([f.closure, *values] + [None] * (size - arity - 1))
        return to_python(program._located(_apply, gradient, [point]), term.ty.cod, program)
    return differentiated


def grad(f: Function, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The gradient of a lamad function returning Real, in argument ``argnums`` (an int,
    or a tuple of ints for a tuple of gradients), as JAX's ``jax.grad``."""
    return _differentiate("grad", f, argnums)


def value_and_grad(f: Function, argnums: int | tuple[int, ...] = 0) -> Callable:
    """Like :func:`grad`, returning ``(value, gradient)``."""
    return _differentiate("value_and_grad", f, argnums)


def vjp(f: Function, *args: Any) -> tuple[Any, Callable]:
    """``(f(*args), pullback)``: ``pullback(ct)`` is the tuple of the cotangents of the
    arguments (one cotangent when ``f`` takes one argument), as JAX's ``jax.vjp``."""
    names = [f"x{i}" for i in range(len(args))]
    point = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
    program = f.program
    term = parse_term(f"vjp (\\{point}. f {' '.join(names)}) {point}")
    try:
        term = deep(infer_term)(term, {"f": f.type, **dict(zip(names, f.param_types))})
    except LamError as e:
        raise e.locate(f"vjp {f.name}", "<python>") from None
    values = [from_python(a, t, program.backend) for a, t in zip(args, f.param_types)]
    compiler = Compiler(program.runtime, program.value)
    for name in ["f", *names]:
        compiler.scope.slots[name] = compiler.scope.new_slot()
    code = compiler.compile(term)
    result = program._located(code, [f.closure, *values] + [None] * (compiler.scope.size - len(values) - 1))
    return to_python(result, term.ty, program)
