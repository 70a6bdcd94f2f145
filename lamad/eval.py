"""Evaluation (docs/language.md, Evaluation): call-by-value, by compilation to Python functions.

:func:`compile_term` turns an elaborated term into Python source once, and
running it walks no AST and makes no call per node.  Each lambda becomes one
Python function, *lambda-lifted*: the variables it captures are its leading
parameters, bound by :func:`functools.partial` when the closure is made, so
closures are first-class Python callables of one argument.  A body is written in
A-normal form — one statement per builtin application or call, each bound to a
Python local — so lamad variables are Python locals, ``let`` chains are straight
runs of statements, and arithmetic on values is Python's own operators, nested in
one expression so that NumPy reuses its temporaries.  A tensor is deleted after
its last use.  Alike backpropagators share one function, found by the shape of their
terms without their code being written again; a long body runs as a chain of
functions, each given the locals it uses, and the functions are compiled a few at a
time, so that a long gradient's first call costs time and memory in proportion to
its length.

A run-time error is located by the line it happened on: every builtin application
has a line of its own (the operations of a line of arithmetic are replayed one by
one to find the one that failed), and one handler per function maps the line back
to the span of the application.  With Python 3.11's zero-cost ``try``
the hot path pays nothing for it.

Values: backend arrays for ``Real`` (0-d) and ``Tensor`` — a ``Real`` is a Python float on
NumPy in float64, computed as typed scalar code (:meth:`_Unit.real`); Python ``int``,
``bool``, ``()``, ``str``, tuples (records too: their fields in alphabetical order) and
lists; closures; :class:`Backpropagator`
and gradient values (lamad/gradient.py) for the target calculus.
"""

from __future__ import annotations

import gc
import math
import re
import sys
from bisect import bisect_right
import weakref
from contextlib import nullcontext
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from lamad.adtypes import unmarked_type
from lamad.autodiff import Gradient, jvp, relift, vjp
from lamad.backend import get_backend
from lamad.errors import LamRuntimeError
from lamad.chains import chained_step
from lamad.gradient import (
    LINK, ZERO, ZERO_BACKPROP, add as add_gradients, dense, link_taken, maker as make_backpropagators,
)
from lamad.prims import PRIMITIVES, Runtime
from lamad.prims.base import FUSED_BACKWARD
from lamad.syntax import (
    BOOL, BOOL_TENSOR, GRAD, INT, INT_TENSOR, REAL, STRING, TENSOR, UNIT, App, FunType, DAdd, DZero, If, Lam, Let, LinLam, LinType, ListLit, Lit, Pattern, Prim, Proj, PRecord,
    PTuple, PVar, PWild, Record, Span, Term, Tuple, Type, Var, let_chain, pattern_names, record_order, size_above,
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_RUNTIME_ERRORS = (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError, FloatingPointError,
                   OSError, MemoryError)

Steps = list[tuple[str, str, Optional[Span]]]
"""What a line of compiled code computes, for locating its failures: an assignment per
operation (for replaying), the operation's name and its span."""

MAX_NESTING = 8
"""How deep arithmetic and patterns nest in one line (Python's parser allows 200
parentheses)."""

MAX_INDENT = 40
"""Branches of ``if`` nested deeper than this are compiled as functions of their own:
Python's tokenizer allows 100 levels of indentation."""

_UNITS: weakref.WeakValueDictionary[str, _Unit] = weakref.WeakValueDictionary()
"""Each live unit by the file name its code was compiled under (``<lamad N>``), so that a
warning NumPy issues from compiled code finds the unit whose spans locate it."""

_NUMBERS = count(1)

_KEEP = "'residuals"
"""The variable of a chained step (:meth:`_LamSource.chained`) bound to the function that
keeps its residuals: no name of a program (a name begins with a letter or ``_``)."""

_QUOTE = "'"

_PRELUDE = {
    "_partial": partial, "_ZB": ZERO_BACKPROP, "_ZERO": ZERO, "_LINK": LINK,
    "_ERRORS": _RUNTIME_ERRORS, "_F": np.float64, "_NAN": float("nan"), "_finite": math.isfinite, "_isnan": math.isnan, "_float": float, "_FLOAT_ERRORS": (ArithmeticError, ValueError),
}
"""What every compiled unit may refer to, besides its own constants."""


def compile_term(term: Term, runtime: Runtime, globals_: Callable[[str], Any],
                 params: Sequence[str] = (), typed: bool | None = None) -> Callable[..., Any]:
    """``term`` as a Python function of the values of its free variables ``params``;
    any other free name is a definition, whose value ``globals_(name)`` gives.  ``typed``:
    whether its Reals are computed as typed scalar code (:meth:`_Unit.real`), where
    Reals are floats; by default, for a term of at most :data:`FIRST_TIER_NODES` nodes
    (a big one's code compiles faster without: its first tier, as ``derive`` asks for
    typed code when it fuses)."""
    if typed is None:
        typed = not size_above(term, FIRST_TIER_NODES)
    return _Unit(runtime, globals_, typed).function(term, params)


def python_source(term: Term, runtime: Runtime | None = None, params: Sequence[str] = ()) -> str:
    """The Python that :func:`compile_term` makes of ``term``, for reading (definitions
    appear as the constants ``_g1, _g2, …``)."""
    unit = _Unit(runtime or Runtime(get_backend(), Path.cwd()), lambda name: None, not size_above(term, FIRST_TIER_NODES))
    unit.function(term, params)
    return unit.source


# --------------------------------------------------------------------- one function


class _Function:
    """The Python function a lambda (or a closed term) compiles to, while it is being
    written: its lines, which lamad names are which of its locals, and which
    variables of the enclosing function it captures (its leading parameters)."""

    def __init__(self, unit: _Unit, parent: _Function | None, name: str, once: bool = False):
        self.unit, self.parent, self.name = unit, parent, name
        self.lines: list[str] = []
        self.spans: dict[int, Steps] = {}  # line index → what a failure there is located at
        self.locals: dict[str, str] = {}
        self.captures: dict[str, str] = {}  # lamad name → local, in parameter order
        self.outer: list[str] = []  # the enclosing function's expressions for them, in the same order
        self.once: dict[str, str] | None = {} if once else None  # with each value captured once: its local, by outer
        self.tensors: set[str] = set()  # the locals that hold the tensors builtins made
        self.numpy: set[str] = set()  # the locals that hold what builtins computed (NumPy's), where Reals are floats
        self.captured_tensors: set[str] = set()  # the locals of the tensors it captures
        self.parts: dict[str, list[str]] = {}  # a tuple's expression or local → the atoms of its parts
        self.made: list[tuple[tuple, Prim]] | None = None  # each step and its Prim, while recording a template
        self.guarded: list[tuple[str, str, Steps]] = []  # the run of lines of typed arithmetic whose guard is to come
        self.indent = 2
        self.param = ""  # the local of its parameter, once written
        self.inner: _Function | None = None  # the function of the lambda that is its body, if that is all it is

    def emit(self, line: str, located: Steps | None = None) -> None:
        if self.guarded:  # the run of typed arithmetic ends: its guard goes before any other statement
            self.unit.guard(self)
        if located is not None:
            self.spans[len(self.lines)] = located
        self.lines.append("    " * self.indent + line)

    def compute(self, result: str, code: str, numpy: str, steps: Steps) -> None:
        """``result = code``, a line of typed arithmetic (``+``, ``-``, ``*``; ``numpy``, the
        same on NumPy's scalars), whose guard (:meth:`_Unit.guard`) is emitted with those of
        the lines of its run, once the run ends."""
        run, self.guarded = self.guarded, []  # which this line continues
        self.emit(f"{result} = {code}", steps)
        run.append((result, numpy, steps))
        self.guarded = run
        if len(run) == GUARDED_MOST:
            self.unit.guard(self)

    def lookup(self, name: str) -> str | None:
        """The Python expression for a lamad variable in scope here, capturing it from
        the enclosing functions if need be (what a builtin computed there, captured, is
        known to be NumPy's here too); ``None`` for a definition."""
        if name in self.locals:
            return self.locals[name]
        if name in self.captures:
            return self.captures[name]
        outer = self.parent.lookup(name) if self.parent is not None else None
        if outer is None:
            return None
        if self.once is not None and outer in self.once:  # a value captured already, under another name
            local = self.captures[name] = self.once[outer]
            return local
        local = self.captures[name] = self.unit.local(name)
        self.outer.append(outer)
        if self.once is not None:
            self.once[outer] = local
        if outer in self.parent.numpy:
            self.numpy.add(local)
        return local

    def captured(self) -> list[str]:
        """The locals of what it captures, once each, in parameter order."""
        return list(dict.fromkeys(self.captures.values()))

    def closure(self) -> str:
        """The expression that makes this function's closure in the enclosing one."""
        if not self.outer:
            return self.name
        return f"_partial({self.name}, {', '.join(self.outer)})"

    def params(self, param: str) -> list[str]:
        """The function's parameters: what it captures, and its own."""
        return [*self.captured(), *([param] if param else [])]

    def body(self, released: Sequence[str] = ()) -> tuple[list[str], dict[int, Steps]]:
        """The lines of the function's body, and what a failure on each is located at.

        A tensor a builtin made is deleted after the line that uses it last, as a NumPy
        programmer's temporaries are: the frame would keep it until the function returns,
        and a forward pass would hold all its intermediate arrays at once (the ones a
        backpropagator needs, it captures).  So are the locals ``released``.  The locals a
        line lets go are deleted in the order of their first use, so that alike functions
        have alike text."""
        tensors = self.tensors.union(released) if released else self.tensors
        if not tensors:  # no line is searched in a function without tensors
            return self.lines, self.spans
        last: dict[int, list[str]] = {}
        uses = {name: i for i, line in enumerate(self.lines) for name in _IDENTIFIER.findall(line) if name in tensors}
        for name, i in uses.items():
            if not self.lines[i].lstrip().startswith("return"):
                last.setdefault(i, []).append(name)
        lines, spans = [], {}
        for i, line in enumerate(self.lines):
            if i in self.spans:
                spans[len(lines)] = self.spans[i]
            lines.append(line)
            if i in last:
                lines.append(line[:len(line) - len(line.lstrip())] + f"del {', '.join(last[i])}")
        return lines, spans

    def text(self, param: str) -> tuple[list[str], dict[int, Steps]]:
        """The source lines of a backpropagator's body, and what a failure on each line is
        located at.  It is called as ``body(captured, cotangent)``
        (lamad/gradient.py): ``captured`` is the tuple of the index ``_w`` of the closure
        running, among those that share its code (for :meth:`_Unit.located`), and of what
        it captured, which it takes apart and lets go of, and each captured tensor is
        deleted after its last use, so that one that forcing gave it alone is freed as
        soon as the body is done with it (a fused body runs many backpropagators')."""
        captured = self.captured()
        body, spans = self.body([local for local in captured if local in self.captured_tensors])
        unpack = [f"[{', '.join(['_w', *captured])}] = _c", "del _c"]
        body = ["    " * 2 + line for line in unpack] + body
        return _wrap(self.name, ["_c", param], body, {i + len(unpack): s for i, s in spans.items()}, True)

    def pieces(self, param: str) -> list[tuple[str, list[str], dict[int, Steps]]]:
        """The function as Python functions, each with its name, lines and what a failure
        on each is located at: itself, or, for a body of more than :data:`CHUNK_LINES`
        statements, a chain of functions that each run a chunk of it and pass on the
        locals the next ones use, and the function itself, which calls them in turn.
        Python's ``compile`` of one long function holds its whole syntax tree at once
        (some 5 KB a line), and takes longer per line the longer it is."""
        body, spans = self.body()
        params = self.params(param)
        cuts = _cuts(body)
        if len(cuts) == 1:
            return [(self.name, *_wrap(self.name, params, body, spans))]
        ends = cuts[1:] + [len(body)]
        first: dict[str, int] = dict.fromkeys(params, -1)
        last: dict[str, int] = {}
        for k, (start, end) in enumerate(zip(cuts, ends)):
            for name in _locals("\n".join(body[start:end])):
                first.setdefault(name, k)
                last[name] = k
        live: list[list[str]] = [[] for _ in cuts]  # the locals each chunk is given
        for name, k in first.items():
            for j in range(k + 1, last.get(name, k) + 1):
                live[j].append(name)
        live = [sorted(names) for names in live]
        names = [f"{self.name}_c{k}" for k in range(len(cuts))]
        by_chunk: list[list[tuple[int, Steps]]] = [[] for _ in cuts]
        for i, steps in spans.items():
            by_chunk[bisect_right(cuts, i) - 1].append((i, steps))
        out = []
        for k, (start, end) in enumerate(zip(cuts, ends)):
            chunk = body[start:end]
            if k + 1 < len(cuts):
                chunk = chunk + ["    " * 2 + f"return ({''.join(name + ', ' for name in live[k + 1])})"]
            chunk_spans = {i - start: steps for i, steps in by_chunk[k]}
            out.append((names[k], *_wrap(names[k], live[k], chunk, chunk_spans)))
        calls = [f"    _s = {names[0]}({', '.join(live[0])})"] + [f"    _s = {name}(*_s)" for name in names[1:-1]]
        out.append((self.name, [f"def {self.name}({', '.join(params)}):", *calls, f"    return {names[-1]}(*_s)"], {}))
        return out


def _locals(code: str) -> set[str]:
    """The locals (:meth:`_Unit.local`: a name, ``_`` and a number) that ``code`` uses: its
    words split at every character that is no part of a name (faster than a search for
    them)."""
    return set(filter(_LOCAL_WORD.fullmatch, set(code.translate(_SEPARATORS).split())))


_SEPARATORS = {c: " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}

_LOCAL_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*_\d+")
"""A word of compiled code that is a local (:data:`_LOCAL`, matched against the whole word)."""


CHUNK_LINES = 200
"""The most statements of a function body that one Python function runs (see
:meth:`_Function.pieces`)."""

GUARDED_MOST = 64
"""The most lines of typed arithmetic that one test guards (:meth:`_Unit.guard`)."""


def _cuts(body: list[str]) -> list[int]:
    """Where the chunks of a function body begin: at a statement of the body itself (not
    inside a branch) once the chunk before has :data:`CHUNK_LINES` lines."""
    cuts, indent = [0], "    " * 2
    for i in range(CHUNK_LINES, len(body)):
        if i - cuts[-1] >= CHUNK_LINES and body[i][len(indent)] != " " and \
                not body[i].startswith(("else:", "except"), len(indent)):
            cuts.append(i)
    return cuts


def _wrap(name: str, params: list[str], body: list[str], spans: dict[int, Steps], instance: bool = False
          ) -> tuple[list[str], dict[int, Steps]]:
    """A Python function of the body ``body`` (whose lines are indented for it), its
    failures located by ``spans`` (by line of the body) through :meth:`_Unit.located`; the
    lines and the spans by line of the function."""
    where = ", _w" if instance else ""
    lines = [f"def {name}({', '.join(params)}):", "    try:", *body,
             "    except _ERRORS as e:", f"        raise _located(e, {name!r}{where}) from None"]
    return lines, {i + 2: steps for i, steps in spans.items()}


# --------------------------------------------------------------------- a compilation unit


class _Unit:
    """One compilation: the functions of a term's lambdas, and the constants (builtins,
    literals, definitions) they refer to."""

    def __init__(self, runtime: Runtime, globals_: Callable[[str], Any], typed: bool = True):
        self.runtime = runtime
        self.globals = globals_
        self.errors = _RUNTIME_ERRORS + runtime.backend.ext.errors
        self.floats = runtime.backend.floats  # Reals are Python floats
        self.typed = typed and self.floats  # computed as floats (:meth:`real`), else as NumPy's scalars
        self.namespace: dict[str, Any] = {**_PRELUDE, "_located": self.located, "_ERRORS": self.errors}
        self.constants: dict[tuple, str] = {}
        self.counter = count(1)
        self.functions: list[tuple[str, list[str]]] = []  # each Python function, once, and its lines
        self.sources: list[tuple[str, _LamSource]] = []  # the functions of closures that may be differentiated
        self.fn: _Function | None = None
        self.written: _Function | None = None  # the function of the lambda written last
        self.source = ""
        self.first_lines: dict[str, int] = {}  # where each function's text starts in what was compiled with it
        self.instances: dict[str, list[dict[int, Steps]]] = {}  # per function, per closure that runs it
        self.shared: dict[tuple, tuple[str, dict[int, Steps], str]] = {}  # canonical text → function, its spans, maker
        self.templates: dict[tuple, tuple[str, dict[int, list[tuple[str, str, int]]], list[int], str]] = {}
        self.makers: dict[str, str] = {}  # the constant that makes the backpropagators of a template → its function
        self.chains: list[_Function] = []  # the functions whose bodies are lambdas (:meth:`uncurry`)
        self.uncurried: dict[str, tuple[str, int]] = {}  # a function → its uncurried entry and that one's arity
        self.residual: LinLam | None = None  # the backpropagator compiled as what it captures (:meth:`made`)
        self.residual_body: str | None = None  # and the function of its body

    # ----------------------------------------------------------------- names

    def local(self, name: str) -> str:
        """A fresh Python local for the lamad variable ``name``: every local of a unit
        ends in a number of its own, so none shadows another or a constant (``_k1``).
        A prime, and the dot of a module's definition (``nn.dense``), become ``_``."""
        return f"{name.replace(_QUOTE, '_').replace('.', '_')}_{next(self.counter)}"

    def constant(self, value: Any, key: tuple | None = None, prefix: str = "_k") -> str:
        """A name in the unit's namespace bound to ``value`` (shared per ``key``)."""
        key = key or ("id", id(value))
        if key not in self.constants:
            name = self.constants[key] = f"{prefix}{len(self.constants) + 1}"
            self.namespace[name] = value
        return self.constants[key]

    def builtin(self, op: str) -> str:
        """The name of the implementation of builtin ``op`` on this runtime, made once."""
        key = ("builtin", op)
        if key not in self.constants:
            self.constant(PRIMITIVES[op].impl(self.runtime), key, "_f")
        return self.constants[key]

    # ----------------------------------------------------------------- functions

    def function(self, term: Term, params: Sequence[str]) -> Callable[..., Any]:
        """Compile a closed term (open in ``params``) and return its Python function.  The
        functions are compiled a few at a time, so that Python's ``compile`` never holds
        the syntax of them all at once; their lines are counted from the first of each
        group (:attr:`first_lines`)."""
        fn = self.fn = _Function(self, None, "_main")
        for name in params:
            fn.locals[name] = self.local(name)
        fn.emit(f"return {self.value(term)}")
        self.add(fn, ", ".join(fn.locals[n] for n in params))
        for f in self.chains:  # each level of a chain: a partial application of a definition is one
            self.uncurry(f)
        if self.residual_body is not None:
            self.functions.append(self.looped(self.residual_body))
        filename = f"<lamad {next(_NUMBERS)}>"
        _UNITS[filename] = self
        group: list[str] = []
        sources = []
        for i, (name, text) in enumerate(self.functions):
            self.first_lines[name] = len(group) + 1  # lines count from 1
            group += text
            if len(group) >= CHUNK_LINES or i == len(self.functions) - 1:
                sources.append("\n".join(group) + "\n")
                exec(compile(sources[-1], filename, "exec"), self.namespace)
                group = []
        self.source = "".join(sources)
        if self.residual_body is not None:  # its lines are those of the body, two further down
            self.first_lines[_looped(self.residual_body)] += 2
            self.instances[_looped(self.residual_body)] = self.instances[self.residual_body]
        for maker, name in self.makers.items():
            self.namespace[maker] = make_backpropagators(self.namespace[name])
        for name, source in self.sources:
            self.namespace[name].lamad = source
        for name, (entry, arity) in self.uncurried.items():
            self.namespace[name].uncurried = self.namespace[entry], arity
        return self.namespace["_main"]

    def lam(self, t: Lam | LinLam) -> str:
        """A closure: the lambda's lifted function, partially applied to what it
        captures.  A linear function into ``d`` is a :class:`Backpropagator`; the
        function of any other lambda knows its term, so that
        :func:`lamad.autodiff.relift` can make its ←D version when it is differentiated.
        A backpropagator that is no template's captures each value once: ←D takes a pair
        apart once per use of its variable, and the backward code of ``x * x`` would
        capture ``x`` twice (the fused backpropagator of a chain of such links, each of
        its values twice, and making it costs per value)."""
        backprop = isinstance(t, LinLam) and t.ty.cod == GRAD
        if backprop and isinstance(t.body, DZero):
            return "_ZB"  # λa ⊸ 0, the backpropagator of constants
        if backprop:
            shape = _shape(t)
            if shape is not None:
                return self.templated(t, *shape)
        fn, param = self.write(t, once=backprop)
        if not backprop:
            self.sources.append((fn.name, _LamSource(t, list(fn.captures), self)))
            self.add(fn, param)
            if fn.inner is not None:
                self.chains.append(fn)
            return fn.closure()
        return self.made(t, *self.instance(fn, *fn.text(param)))

    def made(self, t: LinLam, make: str, body: str, *captured: str) -> str:
        """A backpropagator made by ``make``, the maker of its body ``body``
        (:func:`~lamad.gradient.maker`), of what it captures: ``make(captured…)``.
        :attr:`residual`, the backpropagator of a step of a loop whose steps chain
        (:meth:`_LamSource.chained`), is not made: the tuple of what it would capture is
        kept (by the function :data:`_KEEP` names), and it is :data:`~lamad.gradient.LINK`."""
        if t is self.residual:
            self.residual_body = body
            self.fn.emit(f"{self.fn.lookup(_KEEP)}(({', '.join(captured)},))")
            return "_LINK"
        return f"{make}({', '.join(captured)})"

    def looped(self, name: str) -> tuple[str, list[str]]:
        """The function ``name``, the body of :attr:`residual`'s backpropagator, as a loop
        over the residuals of the steps of a loop whose steps chain, last step first
        (lamad/gradient.py, :func:`~lamad.gradient.chain`), and its lines: each line of the
        body one further down, so that what a failure or a warning on it is located at is
        the body's.  ``loop(steps, a)`` runs the body on each of ``steps`` in turn, each on
        the cotangent the step after it sent to :data:`~lamad.gradient.LINK`, made dense
        (lamad/factored.py) where it is a Tensor's, and returns the sum of what they sent
        elsewhere (:func:`~lamad.gradient.link_taken`), stopping at a step that sends
        nothing to the one before.  A backpropagator a step made and forcing ran would cost
        a call and a run of forcing's loop a step more."""
        head, start, *body, catch, handler = dict(self.functions)[name]
        param = head[head.index(", ") + 2:-2]
        last = body.pop()
        assert last.startswith("        return "), last
        taken, add = self.constant(link_taken, ("link_taken",)), self.constant(add_gradients, ("add",))
        made_dense = self.constant(dense, ("dense",)) if self.residual.ty.dom == TENSOR else ""
        lines = [
            f"def {_looped(name)}(_steps, {param}):", "    _sent = _ZERO", "    for _c in _steps:", "        try:",
            *["    " + line for line in body], "            _r = " + last[len("        return "):],
            "        except _ERRORS as e:", f"            raise _located(e, {_looped(name)!r}, _w) from None",
            "        if _r is not _ZERO and _r[0] is _LINK:", f"            {param} = {made_dense}(_r[1])",
            "            continue", f"        {param} = {taken}(_r)", f"        _sent = {add}(_sent, _r)",
            f"        if {param} is None:", "            return _sent"]
        if made_dense:
            lines.append(f"        {param} = {made_dense}({param})")
        return _looped(name), lines + ["    return _sent"]

    def write(self, t: Lam | LinLam, recording: bool = False, once: bool = False) -> tuple[_Function, str]:
        """The function of a lambda, written out, and the name of its parameter; with
        ``recording``, the Prim each step of its code is made for is recorded; with
        ``once``, each value it captures is captured once (:meth:`_Function.lookup`)."""
        outer = self.fn
        fn = self.fn = _Function(self, outer, f"_lam{next(self.counter)}", once)
        if recording:
            fn.made = []
        try:
            if isinstance(t.param, PVar):
                param = self.target(t.param, [])
            else:
                param = self.local("p")
                self.assign(t.param, param)
            fn.emit(f"return {self.value(t.body)}")
        finally:
            self.fn = outer
        fn.param = param
        if type(t) is Lam and type(t.param) is PVar and type(t.body) is Lam and len(fn.lines) == 1:
            fn.inner = self.written  # its body only makes the closure of the lambda that is its body
        self.written = fn
        return fn, param

    def uncurry(self, fn: _Function) -> None:
        """The uncurried entry of a function whose body is a lambda, and so on down a chain
        ``λx1. … λxn. t`` (``x1 … xn-1`` variables): one function of what the first one
        captures and of ``x1 … xn``, which calls the function of ``λxn. t`` with what
        its closure would have captured, without the closures the others make one
        argument at a time (lamad/autodiff.py applies ←D of a function of several
        arguments so)."""
        chain = [fn]
        while chain[-1].inner is not None:
            chain.append(chain[-1].inner)
        value = {local: local for local in [*fn.captures.values(), fn.param]}  # a local → its value in the entry
        for level in chain[1:]:
            value.update((local, value.get(outer, outer)) for local, outer in zip(level.captures.values(), level.outer))
            value[level.param] = level.param
        last = chain[-1]
        name = f"{fn.name}_u"
        params = [*fn.captures.values(), *[level.param for level in chain]]
        arguments = [value[local] for local in last.captures.values()] + [last.param]
        self.functions.append((name, [f"def {name}({', '.join(params)}):",
                                      f"    return {last.name}({', '.join(arguments)})"]))
        self.instances[name] = [{}]
        self.uncurried[fn.name] = name, len(chain)

    def templated(self, t: LinLam, key: tuple, free: list[str], prims: list[Prim]) -> str:
        """A backpropagator whose body has the shape ``key`` (:func:`_shape`), with the free
        variables ``free`` and the Prim nodes ``prims``.  The code of the first one of
        each shape (and the same definitions, and the same of its captures known to be
        NumPy's values: :meth:`_Function.lookup`) is written out; every other runs it
        without its being written again (a chain of ``n`` links has ``n`` alike
        backpropagators per primitive, and writing them and Python's ``compile`` of them
        all would cost more than all else).  Each closure holds, beside that code, the
        index of its instance, which locates its failures at its own spans, and what it
        captures (``Backpropagator(body, *captured)``, lamad/gradient.py), and is made by a
        constant of its template (lamad/gradient.py, :func:`~lamad.gradient.maker`): a line
        one argument shorter for Python's ``compile`` to read."""
        outer = self.fn
        found = [outer.lookup(name) for name in free]  # a local, or None for a definition
        key = key, tuple([name if local is None else local in outer.numpy for name, local in zip(free, found)])
        template = self.templates.get(key)
        if template is None:
            fn, param = self.write(t, recording=True)
            lines, spans = fn.text(param)
            self.functions.append((fn.name, lines))
            self.instances[fn.name] = [spans]
            maker = f"_b{len(self.makers) + 1}"
            self.makers[maker] = fn.name
            template = self.templates[key] = fn.name, _template_steps(spans, fn.made, prims), \
                [free.index(name) for name in fn.captures], maker
        else:
            self.instances[template[0]].append(_Relocated(template[1], [p.span for p in prims]))
        name, _, captured, maker = template
        index = len(self.instances[name]) - 1
        return self.made(t, maker, name, str(index), *[found[i] for i in captured])

    def add(self, fn: _Function, param: str) -> None:
        """A function of its own, run by every closure of its lambda (its parameter
        ``param``), in one Python function or several (:meth:`_Function.pieces`)."""
        for name, lines, spans in fn.pieces(param):
            self.functions.append((name, lines))
            self.instances[name] = [spans]

    def instance(self, fn: _Function, lines: list[str], spans: dict[int, Steps]) -> list[str]:
        """How a backpropagator's closure is made (:meth:`made`): the maker of its code
        (:func:`~lamad.gradient.maker`), that code, shared with every backpropagator of the
        unit whose code is the same but for the names of its locals (a chain of ``n`` links has ``n``
        alike backpropagators per primitive, and Python's ``compile`` of them all would
        cost more than all else), the index of this instance, which locates its failures
        at its own spans, and what it captures."""
        key = _canonical(lines, fn.name)
        if key not in self.shared:
            maker = f"_b{len(self.makers) + 1}"
            self.makers[maker] = fn.name
            self.shared[key] = (fn.name, spans, maker)
            self.functions.append((fn.name, lines))
            self.instances[fn.name] = []
            name, table = fn.name, spans
        else:  # the same operations, on this instance's spans
            name, first, maker = self.shared[key]
            table = {i: [(code, op, span) for (code, op, _), (_, _, span) in zip(first[i], spans[i])] for i in spans}
        self.instances[name].append(table)
        return [maker, name, str(len(self.instances[name]) - 1), *fn.outer]

    def located(self, error: Exception, fn_name: str, instance: int = 0) -> Exception:
        """The error of a builtin, located at its application (found by the line the
        function ``fn_name`` failed on, in the closure ``instance`` that ran it); any other
        error as it is."""
        if isinstance(error, RecursionError):  # a RuntimeError that PyTorch's backend catches: lamad/deep.py's
            return error
        trace = error.__traceback__
        steps = self.steps(fn_name, trace.tb_lineno, instance)
        if steps is None:
            return error
        failed = self.replay(steps, trace.tb_frame.f_locals)
        if failed is not None:
            step, error = failed
            steps = [step]
        _, name, span = steps[-1]
        return LamRuntimeError(f"{name}: {error}", span)

    def warned(self, frame: Any, message: str) -> tuple[str, Span] | None:
        """Where a warning issued on the current line of ``frame`` (running a function of
        this unit) is located, and its message in lamad's words (``overflow in 'exp'``);
        ``None`` for a line that applies no builtin."""
        steps = self.steps(frame.f_code.co_name, frame.f_lineno, frame.f_locals.get("_w", 0))
        if not steps:
            return None
        what = message.split(" encountered in ")[0] if " encountered in " in message else None
        failed = self.replay(steps, frame.f_locals, warnings=True, kind=what)
        _, name, span = failed[0] if failed is not None else steps[-1]
        return (f"{what} in {name}" if what else f"{name}: {message}"), span

    def steps(self, fn_name: str, lineno: int, instance: Any) -> Steps | None:
        """What the line ``lineno`` of function ``fn_name`` computes, in closure ``instance``."""
        instances = self.instances.get(fn_name)
        if not instances or not isinstance(instance, int) or not 0 <= instance < len(instances):
            return None
        return instances[instance].get(lineno - self.first_lines[fn_name])

    def replay(self, steps: Steps, scope: dict, warnings: bool = False, kind: str | None = None
               ) -> tuple[tuple, Exception] | None:
        """The first operation of a line of nested arithmetic that fails when its steps are
        run again one by one in ``scope`` (with NumPy's ``warnings`` as errors, and only a
        warning of ``kind`` — ``divide by zero``, ``overflow``… — if given: a line may
        divide by zero in one operation and make a NaN in another), and its error;
        ``None`` for a line of one operation, or if none fails again."""
        if len(steps) < 2:
            return None
        scope = {name: np.float64(v) if type(v) is float else v for name, v in scope.items()} if self.floats else dict(scope)
        with np.errstate(all="raise") if warnings else nullcontext():
            for step in steps:
                try:
                    exec(step[0], self.namespace, scope)
                except self.errors as again:
                    if not (warnings and kind and isinstance(again, FloatingPointError) and kind not in str(again)):
                        return step, again
                    with np.errstate(all="ignore"):  # another kind of warning: its value, and on
                        exec(step[0], self.namespace, scope)
        return None

    # ----------------------------------------------------------------- terms

    def atom(self, t: Term) -> str:
        """``t`` as a local or a constant, its computation emitted before."""
        return self.atom_of(self.value(t))

    def atom_of(self, code: str) -> str:
        """An expression as a local or a constant, bound to one if it is neither."""
        return code if _is_atom(code) else self.bind(code)

    def bind(self, code: str, located: Steps | None = None) -> str:
        """Emit ``v = code`` for a fresh local ``v``."""
        v = self.local("v")
        self.fn.emit(f"{v} = {code}", located)
        return v

    def value(self, t: Term) -> str:
        """Emit the statements that compute ``t``; returns an expression for its value
        (a local, a constant, or a tuple or list of those)."""
        if isinstance(t, Var):
            local = self.fn.lookup(t.name)
            if local is None:
                return self.constant(self.globals(t.name), ("global", t.name), "_g")
            if t.ty is TENSOR and t.name in self.fn.captures:
                self.fn.captured_tensors.add(local)
            return local
        if isinstance(t, Lit):
            return self.literal(t)
        if isinstance(t, Let):
            return self.scoped(t, self.value)
        if isinstance(t, Prim):
            return self.prim(t)
        if isinstance(t, DZero):
            return "_ZERO"
        if isinstance(t, DAdd):  # gradient.add, inlined
            u, v = self.atom(t.left), self.atom(t.right)
            return self.bind(f"{v} if {u} is _ZERO else {u} if {v} is _ZERO else [{u}, {v}]")
        if isinstance(t, App):
            if t.ty is GRAD and isinstance(t.fn.ty, LinType):
                return self.send(t)
            fn = self.atom(t.fn)
            return self.bind(f"{fn}({self.atom(t.arg)})")
        if isinstance(t, (Lam, LinLam)):
            return self.lam(t)
        if isinstance(t, If):
            return self.branch(t)
        if isinstance(t, (Tuple, Record)):
            atoms = [self.atom(i) for i in t.items]  # in the order written
            if isinstance(t, Record):
                atoms = [atoms[i] for i in record_order(t.fields)]
            code = "(" + ", ".join(atoms) + ("," if len(atoms) == 1 else "") + ")"
            self.fn.parts[code] = atoms
            return code
        if isinstance(t, Proj):
            record, position = self.value(t.term), t.term.ty.fields.index(t.field)
            parts = self.fn.parts.get(record)
            return parts[position] if parts is not None else self.bind(f"{self.atom_of(record)}[{position}]")
        if isinstance(t, ListLit):
            return "[" + ", ".join(self.atom(i) for i in t.items) + "]"
        raise LamRuntimeError(f"cannot evaluate a {type(t).__name__} node", t.span)

    def literal(self, t: Lit) -> str:
        if isinstance(t.value, float) and self.floats and (t.ty != REAL or not self.typed):  # NumPy's
            return self.constant(np.float64(t.value), ("tensor", repr(t.value)))
        if isinstance(t.value, float):
            return self.constant(self.runtime.backend.scalar(t.value), ("float", repr(t.value)))
        if isinstance(t.value, (bool, int)) or t.value == ():
            return repr(t.value)
        return self.constant(t.value, ("literal", t.value))

    # ----------------------------------------------------------------- binding

    def target(self, p: Pattern, deeper: list[tuple[Pattern, str]], depth: int = 0) -> str:
        """The Python assignment target of a pattern, binding its variables to new locals;
        parts nested deeper than one line may hold are bound to a local each, and left in
        ``deeper`` for an assignment of their own."""
        if isinstance(p, PVar):
            local = self.fn.locals[p.name] = self.local(p.name)
            return local
        if isinstance(p, (PTuple, PRecord)):
            if depth == MAX_NESTING:
                deeper.append((p, self.local("p")))
                return deeper[-1][1]
            items = _components(p)
            return "(" + ", ".join(self.target(i, deeper, depth + 1) for i in items) + ("," * (len(items) == 1)) + ")"
        return self.local("_")

    def bind_let(self, p: Pattern, t: Term) -> dict[str, str | None]:
        """``let p = t``; returns what :meth:`unbind` restores once the scope ends.  Every
        local is assigned once, so a variable bound to a local or a constant is only a
        name for it; a tuple matched against a tuple term is matched part by part."""
        known = self.fn.locals
        if p.__class__ is PVar:
            saved = {p.name: known.get(p.name)}
        else:
            names = pattern_names(p)
            saved = dict(zip(names, map(known.get, names)))
        if t.__class__ is Let:
            bound = self.scoped(t, lambda inner: self.parts(inner, p) or self.value(inner))
        elif t.__class__ is Var:  # ←D's (x, x') = x0, once per use of x0
            bound = self.value(t)
        else:
            bound = self.parts(t, p) or self.value(t)
        if isinstance(bound, list):
            for item, code in zip(_components(p), bound):
                self.assign(item, code)
        else:
            self.assign(p, bound)
        return saved

    def scoped(self, t: Term, body: Callable[[Term], Any]) -> Any:
        """``body`` of the term inside the ``let`` chain ``t``, with the chain's bindings
        emitted before it and in scope for it."""
        chain, inner = let_chain(t)
        saved = [self.bind_let(let.pattern, let.bound) for let in chain]
        result = body(inner)
        for s in reversed(saved):
            self.unbind(s)
        return result

    def parts(self, t: Term, p: Pattern) -> list[str] | None:
        """The atoms of the parts of a tuple term matched by the tuple pattern ``p`` (all
        evaluated before any is bound); ``None`` if ``t`` is no such term."""
        if isinstance(p, PRecord) and isinstance(t, Record):
            atoms = [self.atom(i) for i in t.items]  # in the order written
            return [atoms[i] for i in record_order(t.fields)]
        if not (isinstance(p, PTuple) and isinstance(t, Tuple) and len(p.items) == len(t.items)):
            return None
        return [self.atom(i) for i in t.items]

    def assign(self, p: Pattern, code: str) -> None:
        """``p = code``: a variable bound to an atom, or to a tuple of atoms, is a name for it
        (the tuple is made where it is used as a whole); a tuple pattern matched
        against a tuple whose parts are known (a tuple made, or taken apart, in this
        function) binds its parts to them — ←D takes a pair apart once per use of the
        variable, and this takes it apart once; any other pattern is an assignment (and
        one more for each part nested too deep)."""
        parts = self.fn.parts
        if p.__class__ is PVar and (_is_atom(code) or code in parts):  # a tuple of atoms is made where used
            self.fn.locals[p.name] = code
            return
        if isinstance(p, (PTuple, PRecord)) and len(parts.get(code, ())) == len(p.items):
            for item, part in zip(_components(p), parts[code]):
                self.assign(item, part)
            return
        deeper: list[tuple[Pattern, str]] = []
        target = self.target(p, deeper)
        self.fn.emit(f"{target} = {code}")
        if isinstance(p, (PTuple, PRecord)) and _is_atom(code) and not deeper and \
                all(isinstance(i, PVar) for i in p.items):
            parts[code] = [self.fn.locals[i.name] for i in _components(p)]
        for part, local in deeper:
            self.assign(part, local)

    def unbind(self, saved: dict[str, str | None]) -> None:
        for name, old in saved.items():
            if old is None:
                del self.fn.locals[name]
            else:
                self.fn.locals[name] = old

    # ----------------------------------------------------------------- control

    def branch(self, t: If) -> str:
        """``if``: a statement whose branches assign one local."""
        if self.fn.indent >= MAX_INDENT:  # compiled as a function of its own, applied at once
            return self.value(App(Lam(PWild(), t), Lit(())))
        return self.conditional(self.atom(t.cond), lambda: self.value(t.then), lambda: self.value(t.orelse))

    def conditional(self, test: str, then: Callable[[], str], orelse: Callable[[], str]) -> str:
        """``if test: v = then() else: v = orelse()``, each arm's statements emitted in its
        block; returns ``v``."""
        result = self.local("v")
        for head, arm in ((f"if {test}:", then), ("else:", orelse)):
            known = dict(self.fn.parts)  # what an arm takes apart is not taken apart outside it
            self.fn.emit(head)
            self.fn.indent += 1
            self.fn.emit(f"{result} = {arm()}")
            self.fn.indent -= 1
            self.fn.parts = known
        return result

    def send(self, t: App) -> str:
        """``x' t`` at type ``d``: the cotangent ``t`` sent to the backpropagator ``x'``,
        recorded as the pair ``(x', t)`` (lamad/gradient.py).
        When ``x'`` is the constant ``λa ⊸ 0`` the result is ``0`` whatever ``t`` is, so
        ``t`` is not computed: the cotangents of constants (the data ``X`` of ``W @ X``,
        say) never are."""
        target = self.atom(t.fn)  # the pair is what Backpropagator.__call__ gives
        return self.conditional(f"{target} is _ZB", lambda: "_ZERO", lambda: f"({target}, {self.atom(t.arg)})")

    def prim(self, t: Prim) -> str:
        """A builtin applied to its arguments, on a line of its own (where a failure is
        located at the application); operators are Python's, ``like x`` a subscript of
        a table of zeros by ``x``'s shape, and ``unbroadcast s g`` is ``g`` without a call
        where ``s`` is the zero of that table of ``g``'s shape (four times each a step of
        an RNN); any other ``s`` calls it, which sums ``g`` down to ``s``'s shape."""
        if PRIMITIVES[t.op].typing == "ad":
            return self.ad(t)
        if self.typed and t.ty == REAL and t.args and all(a.ty == REAL for a in t.args) and \
                PRIMITIVES[t.op].typing != "context":
            return self.real(t)
        if _is_arithmetic(t):
            code, _, _, steps = self.arithmetic(t, 0)
        else:
            args = [self.atom(a) for a in t.args]
            if self.floats and PRIMITIVES[t.op].derivative != "structural":
                # NumPy's scalars where Reals meet tensors; a structural builtin (iterate's
                # state, fold's accumulator) computes on no real, and passes floats on as they are
                args = [self.numpy_scalar(a, arg.ty) for a, arg in zip(args, t.args)]
            if PRIMITIVES[t.op].typing == "context":  # its implementation is given the type it gives
                args.insert(0, self.constant(t.ty, ("type", t.ty)))
            code, steps = f"{self.builtin(t.op)}({', '.join(args)})", [self.step("", t)]
            if t.op == "unbroadcast":  # the impl's first test, inlined: on like's zero of the shape, by identity
                code = f"{args[1]} if {self.zeros()}.get({args[1]}.shape) is {args[0]} else {code}"
            elif t.op == "like":  # the impl's table of zeros, subscripted (its own __missing__ fills it)
                code = f"{self.zeros()}[{args[0]}.shape]"
        result = self.bind(code, steps)
        if t.ty == TENSOR:
            self.fn.tensors.add(result)
        if self.floats and PRIMITIVES[t.op].derivative != "structural":  # NumPy's value, not one passed on
            self.fn.numpy.add(result)
        return result

    def zeros(self) -> str:
        """The name of ``like``'s table of zeros by shape (lamad/prims/helpers.py)."""
        return self.constant(self.namespace[self.builtin("like")].zeros)

    def real(self, t: Prim) -> str:
        """A builtin applied to Reals, giving a Real, where Reals are Python floats (typed
        scalar code): Python's operators and the record's ``scalar`` function (of
        :mod:`math`), not NumPy's scalar dispatch, which costs several times more; any
        other builtin is given NumPy scalars, as before, and its result made a float.

        Floats and NumPy's scalars have the same IEEE arithmetic; they differ where a
        result is not finite: an operator gives an infinity or a NaN without NumPy's
        warning, and a division by zero and ``math``'s functions raise.  So where Python
        raised, or the value is not finite where NumPy would have warned, the line is
        computed again on NumPy's scalars, on a line located at the same operations, and
        the value and the warning are NumPy's.  NumPy warns where an operation makes an
        infinity of finite operands (overflow, division by zero) or a NaN of operands
        that are not (invalid value): :meth:`warns` tests a line of operators for it.
        ``math``'s functions need no test: they raise where they would give an infinity
        or a NaN of finite arguments, or a NaN of an infinity."""
        record = PRIMITIVES[t.op]
        if not _is_arithmetic(t):
            args = [self.atom(a) for a in t.args]
            impl, steps, result = self.builtin(t.op), [self.step("", t)], self.local("v")
            numpy = f"_float({impl}({', '.join(f'_F({a})' for a in args)}))"
            if record.scalar is None:
                self.fn.emit(f"{result} = {numpy}", steps)
                return result
            scalar = self.constant(record.scalar, ("scalar", t.op), "_m")
            self.fn.emit(f"try: {result} = {scalar}({', '.join(args)})", steps)
            self.fn.emit(f"except _FLOAT_ERRORS: {result} = {numpy}", steps)
            return result
        code, numpy, _, steps = self.arithmetic(t, 0)
        result = self.local("v")
        if any(step[1] == "'/'" for step in steps):
            self.fn.emit(f"try: {result} = {code}", steps)
            self.fn.emit(f"except ZeroDivisionError: {result} = _NAN", steps)  # NaN: computed again
            self.fn.emit(f"if not _finite({result}): {result} = _float({numpy})", steps)
        else:
            self.fn.compute(result, code, numpy, steps)
        return result

    def guard(self, fn: _Function) -> None:
        """The guards of a run of lines of typed arithmetic (``+``, ``-``, ``*``), emitted
        after its last line: a line whose value is not finite where NumPy would have
        warned (:meth:`warns`) is computed again on NumPy's scalars (:meth:`real`).  Through
        these operations a value computed from one that is not finite is not finite, and
        one computed from a NaN a NaN.  So where the values of the run that no later line
        of it uses (its last, in a chain) are finite, every value of the run is, and no
        line is tested one by one; nor where an operand that some operand of every
        operation of the run is computed from is not finite and none of those values is a
        NaN: no operation overflowed (one of its operands was not finite) and none made a
        NaN — the backward pass of a chain whose cotangent is infinite.  The lines are
        tested one by one, in order, only past that test."""
        run, fn.guarded = fn.guarded, []
        tests = [(f"if not _finite({r}) and ({self.warns(r, numpy, steps)}): {r} = _float({numpy})", steps)
                 for r, numpy, steps in run]
        if len(run) == 1:
            fn.emit(*tests[0])
            return
        results = {r for r, _, _ in run}
        operands = list(dict.fromkeys(a for _, numpy, _ in run for a in _OPERAND.findall(numpy)))
        last = [r for r, _, _ in run if r not in operands]
        test = " or ".join(f"not _finite({r})" for r in last)
        every = _in_every_operation([(r, steps) for r, _, steps in run])
        inputs = [a for a in operands if a in every and a not in results and not self.finite_constant(a)]
        if inputs:
            test = f"{f'({test})' if len(last) > 1 else test} and (_finite({inputs[0]}) or " \
                   f"{' or '.join(f'{r} != {r}' for r in last)})"
        fn.emit(f"if {test}:")
        fn.indent += 1
        for line in tests:
            fn.emit(*line)
        fn.indent -= 1

    def warns(self, result: str, numpy: str, steps: Steps) -> str:
        """A test of whether NumPy warns on a line of ``+``, ``-`` and ``*`` (``numpy``, on
        NumPy's scalars; ``steps``, its operations) whose value ``result`` is not finite:
        it may hold where NumPy does not warn (the line is then computed again for
        nothing), never the other way, and is cheap where the line's operands are not
        finite.  NumPy warns where an operation makes an infinity of finite operands
        (overflow) or a NaN of operands that are not NaNs (invalid).  Through these
        operations a part of the line with an infinite operand is infinite or a NaN, and
        one with a NaN operand a NaN.  So a line overflowed only if its value with the
        operands that are not finite made 0 is not finite — and not at all if an operand
        of every operation is not finite; a line whose value is infinite made no NaN, and
        one whose value is a NaN made one of no NaN only if its value with the NaN
        operands made 0 is a NaN (a NaN may also hide an overflow: ``(x + x) + nan``)."""
        operands = [a for a in dict.fromkeys(_OPERAND.findall(numpy)) if not self.finite_constant(a)]
        if not operands:
            return "True"
        if len(steps) == 1:  # one operation: all its operands finite, or a NaN made of none
            finite = " and ".join(f"_finite({a})" for a in operands)
            return f"{finite} or {result} != {result}" + "".join(f" and {a} == {a}" for a in operands)

        def replaced(keep: str) -> str:
            return _OPERAND.sub(lambda m: f"({m[1]} if {keep.format(m[1])} else 0.0)" if m[1] in operands else m[1],
                                numpy)
        in_every = [a for a in operands if a in _in_every_operation([(result, steps)])]
        overflow = f"not _finite({replaced('_finite({})')})"
        if in_every:
            overflow = f"_finite({in_every[0]}) and {overflow}"
        return f"{overflow} or {result} != {result} and _isnan({replaced('{0} == {0}')})"

    def numpy_scalar(self, atom: str, ty: Type) -> str:
        """The value of ``atom``, of type ``ty``, as a NumPy scalar where it is a float and
        meets tensors: a Real, and a Tensor that is a Real promoted (by an ascription, a
        result type, a branch, a tuple…), which only its value tells — not what a
        builtin computed (and did not pass on: ``fst``, ``fold``).
        Arrays and NumPy's scalars have the attributes and the warnings that the
        builtins on tensors rely on."""
        if atom in self.namespace:  # a constant: a literal Real in typed code is a float
            value = self.namespace[atom]
            return self.constant(np.float64(value), ("tensor", repr(value))) if type(value) is float else atom
        if atom in self.fn.numpy or not _is_atom(atom):
            return atom  # what a builtin computed
        if ty == REAL:
            return f"_F({atom})"
        if ty not in _NO_FLOATS and not isinstance(ty, (FunType, LinType)):
            return f"({atom} if {atom}.__class__ is not float else _F({atom}))"
        return atom

    def finite_constant(self, atom: str) -> bool:
        """Whether ``atom`` names a constant of the unit that is a finite float (a literal)."""
        value = self.namespace.get(atom)
        return type(value) is float and math.isfinite(value)

    def arithmetic(self, t: Term, depth: int, tensor: bool = False, first: bool = False
                   ) -> tuple[str, str, str, Steps]:
        """An arithmetic term as one Python expression, its arithmetic subterms nested in
        it (up to a depth): the intermediate arrays are then temporaries, which NumPy
        reuses in place, as it does for a hand-written ``a * (1.0 - y * y)``.  Returns the
        expression, the same on NumPy's scalars for a line of typed code (each operand
        made one, for :meth:`real`; else ``""``), a name for its value in the steps, and
        the steps — one assignment per operation, which :meth:`located` replays to find
        the one that failed.  On floats, the divisor of a division is not nested: ``x / (y
        * y)`` would hide an overflow of ``y * y`` (:meth:`real`)."""
        if not _is_arithmetic(t) or depth > MAX_NESTING:
            a = self.atom(t)
            if not self.floats:
                return a, "", a, []
            if self.typed and not tensor:
                return a, f"_F({a})", a, []
            return self.numpy_scalar(a, t.ty) if first else a, "", a, []
        tensor = tensor or t.ty != REAL
        parts = [self.arithmetic(t.args[0], depth + 1, tensor, True)]
        divisor = self.typed and t.op == "div" and t.ty == REAL
        parts += [self.arithmetic(a, MAX_NESTING + 1 if divisor else depth + 1, tensor) for a in t.args[1:]]
        step = self.local("_s")
        steps = [s for *_, inner in parts for s in inner]
        steps.append(self.step(f"{step} = {_operation(t.op, [name for _, _, name, _ in parts])}", t))
        code = _operation(t.op, [c for c, *_ in parts])
        numpy = _operation(t.op, [n for _, n, _, _ in parts]) if self.typed and not tensor else ""
        if depth:
            return f"({code})", numpy and f"({numpy})", step, steps
        return code, numpy, step, steps

    def step(self, code: str, t: Prim) -> tuple[str, str, Span | None]:
        """What a failure of the operation ``t``, computed by ``code``, is located at;
        recorded for a template (:meth:`templated`)."""
        step = (code, f"'{PRIMITIVES[t.op].surface}'", t.span)
        if self.fn.made is not None:
            self.fn.made.append((step, t))
        return step

    def ad(self, t: Prim) -> str:
        """``grad f``, ``value_and_grad f``, ``vjp f x``, ``jvp f x dx``, maybe
        marked by the transforms the term went through (lamad/autodiff.py)."""
        op, marks = t.op, t.marks
        fty = unmarked_type(t.args[0].ty, marks)
        runtime, span = self.runtime, t.span
        if op == "vjp":
            def operator(f, x):
                return vjp(f, x, fty, marks, runtime, span)
        elif op == "jvp":
            def operator(f, x, dx):
                return jvp(f, x, dx, fty, marks, runtime, span)
        else:
            with_value = op == "value_and_grad"

            def operator(f):
                return Gradient(f, fty, marks, runtime, span, with_value)
        args = [self.atom(a) for a in t.args]
        return self.bind(f"{self.constant(operator)}({', '.join(args)})")


def warning_site(message: str) -> tuple[str, Span | None]:
    """A warning being issued now (from a hook of :mod:`warnings`) in lamad's words and at
    the span of the builtin application whose compiled code issued it: the innermost
    frame of compiled code on the stack is the one running it.  Outside compiled code, or
    on a line that applies no builtin, the message as it is, unlocated."""
    frame = sys._getframe(1)
    while frame is not None:
        unit = _UNITS.get(frame.f_code.co_filename)
        if unit is not None:
            where = unit.warned(frame, message)
            if where is not None:
                return where
            break
        frame = frame.f_back
    return message, None


def _is_arithmetic(t: Term) -> bool:
    """Whether ``t`` is an operation that Python's own operator computes on every value it
    takes (its record's ``operator.python``): not on Ints, whose range the record's
    implementation checks."""
    if not isinstance(t, Prim) or t.ty == INT:
        return False
    operator = PRIMITIVES[t.op].operator
    return operator is not None and operator.python is not None


_NO_FLOATS = frozenset({INT, BOOL, UNIT, STRING, INT_TENSOR, BOOL_TENSOR, GRAD})
"""The types whose values are never Reals (:meth:`_Unit.numpy_scalar`)."""


def _in_every_operation(lines: list[tuple[str, Steps]]) -> set[str]:
    """The operands (atoms) of lines of arithmetic, each its result and its steps (``_s3 =
    x_1 * _s2``…), that some operand of each of their operations is computed from.  Of
    what an operation's value is computed from, only what every operation before has in
    common counts, and is kept (a run of lines makes no set longer than that)."""
    parts: dict[str, set[str]] = {}
    common: set[str] | None = None
    for result, steps in lines:
        for code, _, _ in steps:
            target, *operands = _IDENTIFIER.findall(code)
            made = set().union(*[parts.get(a, {a}) for a in operands])
            common = parts[target] = made if common is None else common & made
        parts[result] = parts[target]
    return common or set()


def _operation(op: str, operands: list[str]) -> str:
    python = PRIMITIVES[op].operator.python
    return f"{python}{operands[0]}" if len(operands) == 1 else f" {python} ".join(operands)


_OPERAND = re.compile(r"_F\((\w+)\)")
"""An operand of a line of arithmetic on NumPy's scalars (:meth:`_Unit.arithmetic`)."""

_LOCAL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*_\d+)\b")
"""A Python local of compiled code (:meth:`_Unit.local`): every one ends in ``_`` and a number."""


def _canonical(lines: list[str], name: str) -> tuple:
    """A function's text with its name left out and its locals numbered in order of
    appearance: two functions with the same canonical text compute the same thing."""
    pieces = _LOCAL.split("\n".join(lines[1:-1]))  # the head's parameters are first used in the body
    numbers: dict[str, int] = {}
    return tuple(pieces[0::2]), tuple([numbers.setdefault(local, len(numbers)) for local in pieces[1::2]]), \
        tuple([numbers.get(local, -1) for local in _LOCAL.findall(lines[0])])


def _components(p: PTuple | PRecord) -> tuple[Pattern, ...]:
    """The patterns of the components of a tuple's value, in order: a record pattern's,
    written in any order, are taken in alphabetical order of their fields."""
    return p.items if isinstance(p, PTuple) else tuple(p.items[i] for i in record_order(p.fields))


_AD_OPERATORS = frozenset(name for name, p in PRIMITIVES.items() if p.typing == "ad")

_SHAPE_BUDGET = 128
"""How long the shape of a backpropagator whose code is shared may be (:func:`_shape`:
some three entries a node)."""


def _shape(t: LinLam) -> tuple[tuple, list[str], list[Prim]] | None:
    """What the code of a backpropagator is made from: its nodes in order, each with its
    class and what the code generator reads of it (a primitive's name, marks, arity
    and type; whether an application sends a cotangent; a literal's value; which binder
    or which free variable a variable is, and whether a free one is a tensor or a Real; a pattern's form)
    after whether its parameter is (which with them tells which variables are Reals: typed scalar code
    depends on it), its free variables in
    order of first use, and its Prim nodes, whose spans its failures are located at.
    Two backpropagators of the same shape whose free variables are the same
    definitions compile to the same code but for the names of their locals
    (``tests/test_runtime.py`` compares the code of every one written to the code it
    shares).  ``None`` for a body with a lambda or an AD operator in it (their code
    refers to constants of their own), or of a shape longer than :data:`_SHAPE_BUDGET`
    (which also keeps its branches shallower than :data:`MAX_INDENT`)."""
    key: list = [_kind(t.ty.dom)]
    free: dict[str, int] = {}
    prims: list[Prim] = []
    bound: dict[str, int] = {}
    scopes = [_bind(t.param, bound, key)]
    stack: list = [t.body]
    while stack:
        node = stack.pop()
        kind = node.__class__
        if kind is Var:
            number = bound.get(node.name)
            if number is not None:
                key += (Var, number)
            elif node.name in free:
                key += (Var, None, free[node.name])
            else:  # a tensor it captures is deleted after its last use (:meth:`_Function.text`)
                key += (Var, None, free.setdefault(node.name, len(free)), _kind(node.ty))
        elif kind is Prim:
            if node.op in _AD_OPERATORS:
                return None
            prims.append(node)
            key += (Prim, node.op, node.marks, len(node.args), node.ty)
            stack += node.args[::-1]
        elif kind is App:
            key += (App, node.ty is GRAD and isinstance(node.fn.ty, LinType))
            stack += (node.arg, node.fn)
        elif kind is DAdd:
            key.append(DAdd)
            stack += (node.right, node.left)
        elif kind is Lit:
            key += (Lit, type(node.value), repr(node.value))
        elif kind is Let:
            key.append(Let)
            stack += (_SCOPE, node.body, _Binding(node.pattern), node.bound)
        elif kind is _Binding:
            scopes.append(_bind(node.pattern, bound, key))
        elif kind is _Scope:
            for name, old in reversed(scopes.pop()):
                if old is None:
                    del bound[name]
                else:
                    bound[name] = old
        elif kind is If:
            key.append(If)
            stack += (node.orelse, node.then, node.cond)
        elif kind is DZero:
            key.append(DZero)
        elif kind is Tuple or kind is ListLit:
            key += (kind, len(node.items))
            stack += node.items[::-1]
        else:
            return None
        if len(key) > _SHAPE_BUDGET:
            return None
    return tuple(key), list(free), prims


def _kind(t: Type) -> int:
    """Whether a variable of type ``t`` is a Real (2), a tensor (1) or neither (0), in the
    shape of a backpropagator (:func:`_shape`)."""
    return 2 if t is REAL else 1 if t is TENSOR else 0


class _Binding:
    """In :func:`_shape`'s work list: a pattern whose variables come into scope."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: Pattern):
        self.pattern = pattern


class _Scope:
    """In :func:`_shape`'s work list: the end of the innermost scope."""


_SCOPE = _Scope()


def _bind(p: Pattern, bound: dict[str, int], key: list) -> list[tuple[str, int | None]]:
    """Number the variables of ``p`` in ``bound`` and describe its form in ``key``; returns
    what the end of its scope restores."""
    saved = []
    stack = [p]
    while stack:
        p = stack.pop()
        if p.__class__ is PVar:
            saved.append((p.name, bound.get(p.name)))
            bound[p.name] = len(key)  # a binder is numbered by its place in the shape
            key.append(PVar)
        elif p.__class__ is PTuple:
            key += (PTuple, len(p.items))
            stack += p.items[::-1]
        elif p.__class__ is PRecord:
            key += (PRecord, p.fields)
            stack += p.items[::-1]
        else:
            key.append(PWild)
    return saved


def _template_steps(spans: dict[int, Steps], made: list[tuple[tuple, Prim]], prims: list[Prim]
                    ) -> dict[int, list[tuple[str, str, int]]]:
    """The steps of a backpropagator's code with the index in ``prims`` of the Prim each
    was made for (``made``) in place of its span."""
    index = {id(p): i for i, p in enumerate(prims)}
    prim_of = {id(step): index[id(prim)] for step, prim in made}
    return {line: [(step[0], step[1], prim_of[id(step)]) for step in steps] for line, steps in spans.items()}


class _Relocated:
    """The steps of an instance of a backpropagator whose code another's template wrote
    (:meth:`_Unit.templated`): the template's steps, at this instance's spans."""

    __slots__ = ("steps", "spans")

    def __init__(self, steps: dict[int, list[tuple[str, str, int]]], spans: list[Span | None]):
        self.steps, self.spans = steps, spans

    def get(self, line: int) -> Steps | None:
        steps = self.steps.get(line)
        return None if steps is None else [(code, op, self.spans[i]) for code, op, i in steps]


def _looped(name: str) -> str:
    """The name of the loop :meth:`_Unit.looped` makes of the function ``name``."""
    return f"{name}_loop"


def _is_atom(code: str) -> bool:
    """Whether an expression is a name or a literal: free to repeat."""
    return code.isidentifier() or code == "()" or code.lstrip("-").isdigit()


# --------------------------------------------------------------------- differentiation


FIRST_TIER_NODES = 300
"""The size of a lambda above which ←D of it is first compiled unfused (:class:`_LamSource`):
fusing costs some 15 µs per node of the lambda (3 ms at this size)."""


class _LamSource:
    """What a closure needs to be differentiated: its elaborated term, the lamad names of
    the values it captured (in the order of its partial application), and how to find
    the definitions it uses.

    ←D of a big lambda (of more than :data:`FIRST_TIER_NODES` nodes, at depth 0, where
    ``derive`` fuses its backward passes) is compiled in two tiers, as a JIT compiles a
    function again once it is called again: unfused the first time it is asked for, fused
    (lamad/fuse.py) the second; a gradient asks again on its second call
    (lamad/autodiff.py).  A big function differentiated once does not pay for fusing its
    backward passes; a small one is fused at once, which costs little and saves most of
    the run of a body that a loop calls many times."""

    def __init__(self, term: Lam | LinLam, captured: list[str], unit: _Unit):
        self.term = term
        self.captured = {name: i for i, name in enumerate(captured)}
        self.runtime = unit.runtime
        self.globals = unit.globals
        self.typed = unit.typed
        self._chain: tuple[Callable[..., Callable], Callable, bool] | None | bool = False  # not yet known
        self._lifted: dict[tuple[str, int, bool], tuple[list[tuple[str, Type]], Callable[..., Any]]] = {}
        self._closed: dict[tuple[str, int, bool], Callable] = {}
        self._first_tier: set[tuple[str, int, bool]] = set()  # the keys compiled unfused so far

    def chained(self, captured: tuple, keep: Callable[[tuple], Any]) -> tuple[Callable, Callable, bool] | None:
        """The closure as a step of a loop whose steps chain (lamad/chains.py,
        :func:`~lamad.chains.chained_step`), given the values it captured: its code compiled
        again, once, where the backpropagator of its result is not made but the tuple of
        what it would capture (its residuals) is given to ``keep``, and
        :data:`~lamad.gradient.LINK` stands for it; the body that backpropagator would
        have, as a loop over the residuals of the steps (:meth:`_Unit.looped`), which
        :func:`lamad.gradient.chain` runs; and whether the state is a Tensor.  ``None`` for
        a closure that is no such step."""
        if self._chain is False:
            self._chain = None
            link = chained_step(self.term) if self.term.__class__ is Lam else None
            if link is not None:
                unit = _Unit(self.runtime, self.globals, self.typed)
                unit.residual = link
                make = unit.function(self.term, [*self.captured, _KEEP])
                if unit.residual_body is not None:
                    self._chain = make, unit.namespace[_looped(unit.residual_body)], link.ty.dom == TENSOR
        if self._chain is None:
            return None
        make, loop, tensor = self._chain
        return make(*captured, keep), loop, tensor

    def relift(self, captured: tuple, mark: str, depth: int) -> Callable:
        """``M(S(f))`` for this closure ``M(f)`` (see :func:`lamad.autodiff.relift`),
        given the values it captured.  A closure that captured nothing (a definition's
        function, most often) is lifted once per tier: the values it uses are definitions."""
        if not captured:
            key = (mark, depth, FUSED_BACKWARD.get())
            if key not in self._closed or key in self._first_tier:
                self._closed.pop(key, None)  # the first tier goes before the second is made
                self._closed[key] = self.lift(captured, mark, depth)
            return self._closed[key]
        return self.lift(captured, mark, depth)

    def lift(self, captured: tuple, mark: str, depth: int) -> Callable:
        free, code = self.transformed(mark, depth)
        values = []
        for name, t in free:
            if name in self.captured:
                value = captured[self.captured[name]]
            elif depth == 0:
                value = self.globals(name)
            else:  # pragma: no cover - a transformed closure captures all it uses
                raise LamRuntimeError(f"'{name}' is not captured by this closure", self.term.span)
            values.append(relift(value, t, mark, depth, self.runtime))
        return code(*values)

    def transformed(self, mark: str, depth: int) -> tuple[list[tuple[str, Type]], Callable[..., Any]]:
        """``M(S(λ))`` compiled once per transform and depth (twice for ←D at depth 0: its
        two tiers), open in the free variables of ``λ``, the lambda ``M`` made this
        closure's from: made by the runtime's ``derive`` (lamad/driver.py), which the
        evaluator cannot make itself."""
        key = (mark, depth, FUSED_BACKWARD.get())
        if key in self._first_tier:  # asked again: the fused tier, which replaces the first
            self._first_tier.discard(key)
            del self._lifted[key]
            gc.collect()  # the first tier's code, let go but cyclic: not held beside the second's
            self._lifted[key] = self.runtime.derived(self.term, mark, depth, self.globals)
        elif key not in self._lifted:
            if key[2] and mark == "r" and depth == 0 and size_above(self.term, FIRST_TIER_NODES):
                self._first_tier.add(key)
                unfused = FUSED_BACKWARD.set(False)
                try:
                    self._lifted[key] = self.runtime.derived(self.term, mark, depth, self.globals)
                finally:
                    FUSED_BACKWARD.reset(unfused)
            else:
                self._lifted[key] = self.runtime.derived(self.term, mark, depth, self.globals)
        return self._lifted[key]
