"""The driver: lamad's pipeline, assembled in this one module.

    source ──parse──▶ Program ──typecheck──▶ TypedProgram       check_program, check_definitions
    term ──infer_term──▶ elaborated term (its type on it)        check_term, type_of
    term ──←D or →D (typed)──▶ ──simplify──▶                     derivative
    term ──compile_term──▶ Python function ──call──▶ value       compile, run, apply, evaluate
    closure's λ ──M(S(λ)) (typed)──▶ ──compile──▶                derive (at run time)

The API (lamad/api.py) calls these functions, and the command line and the REPL call
the API or these; none of them assembles passes itself.

**Run-time differentiation.**  ``grad f`` differentiates the closure it is given
(lamad/autodiff.py), which needs ←D of the closure's lambda, compiled — the transforms
and the compiler, above the evaluator.  The evaluator does
not import them: the :class:`~lamad.prims.Runtime` it compiles for carries a ``derive``
function, which :func:`runtime` sets to :func:`derive` here.  A closure's
``_LamSource`` (lamad/eval.py) calls it once per transform and depth, and caches what it
gets: the free variables of the lambda with their types, and the compiled transformed
lambda, open in them.

**Policies.**  Two wrappers of lamad/deep.py are applied here and only here, around
each pass and each run entered from outside: :func:`~lamad.deep.deep` (a pass that
overflows Python's stack on a deeply nested program runs again on a thread with a big
one) and :func:`~lamad.deep.collector_paused` (Python's cyclic garbage collector is
paused while a pass over a big program allocates millions of acyclic nodes).  The
exceptions are in the AD runtime, which runs inside compiled code, wherever a program
applies ``grad f``, with no entry from outside for the driver to wrap (the run that
reaches them is already wrapped in ``deep`` here): lamad/autodiff.py pauses the
collector around each gradient and pullback it runs, and ``lamad.eval._LamSource``
collects once when it compiles ←D of a big function again fused, to free the first
tier's code, which is cyclic, before the second tier is made.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from lamad import pretty as _pretty
from lamad.adtypes import backprop_type, forward_type
from lamad.backend import Backend, get_backend
from lamad.deep import collector_paused, deep
from lamad.errors import LamRuntimeError, LamTypeError
from lamad.eval import compile_term, warning_site
from lamad.forward import forward
from lamad.fuse import fuse_backward
from lamad import modules, normalize
from lamad.prims import MARKS, Runtime
from lamad.prims.base import FUSED_BACKWARD
from lamad.progress import Progress
from lamad.reverse import backprop
from lamad.simplify import simplify
from lamad.syntax import INT, Lam, LinLam, Program, Span, Term, Type, free_variables, term_names
from lamad.types import Instances, Scope, TypedProgram, infer_term, infer_type, typecheck

TRANSFORMS: dict[str, tuple[Callable[[Term], Term], Callable[[Type], Type]]] = {
    "reverse": (backprop, backprop_type),
    "forward": (forward, forward_type),
}
"""Each transform, by mode: the transform of terms and the transform of types."""

_MODES = {"r": "reverse", "f": "forward"}
"""The mode of each mark letter that lamad/autodiff.py passes to :func:`derive`."""

_LETTERS = {symbol: letter for letter, symbol in MARKS.items()}
"""The mark letter of each mark symbol that ``Lam.origin`` records."""


# --------------------------------------------------------------------- checking


@deep
@collector_paused
def check_program(source: str, filename: str = "<input>", base_dir: Path | None = None) -> TypedProgram:
    """Parse and type-check a whole program, with the modules it imports (relative to
    ``base_dir``, default the working directory; lamad/modules.py)."""
    return modules.check_program(source, filename, base_dir)


@deep
@collector_paused
def imports(program: Program, base_dir: Path, taken: frozenset[str] = frozenset()) -> modules.Imported:
    """The modules that the imports of ``program`` (typed in a session) load, relative to
    ``base_dir``; ``taken`` are the qualifiers already in scope."""
    return modules.Loader().imports(program.imports, base_dir, "<input>", taken)


@deep
def check_definitions(program: Program, types: Mapping[str, Type], scope: Scope | None = None) -> TypedProgram:
    """Type-check the definitions of ``program`` below definitions of the given ``types``,
    in ``scope`` (type aliases and imported modules)."""
    return typecheck(program, types, scope)


@deep
def check_term(term: Term, types: Mapping[str, Type], scope: Scope | None = None,
               sink: Instances | None = None, number: Type = INT) -> Term:
    """Type-check and elaborate a parsed term in the scope of definitions of ``types``, the
    numbers nothing determines ``number``s (:func:`lamad.types.infer_term`); the
    specialisations of the generic definitions it uses go to ``sink``."""
    return infer_term(term, types, scope, sink, number)


@deep
def type_of(term: Term, types: Mapping[str, Type], scope: Scope | None = None, number: Type = INT) -> Type:
    """The type of a parsed term in the scope of definitions of ``types``, the numbers
    nothing determines ``number``s."""
    return infer_type(term, types, scope, number)


# --------------------------------------------------------------------- transforming


@deep
@collector_paused
def derivative(term: Term, mode: str = "reverse", simplified: bool = True,
               normalized: Mapping[str, Term] | None = None) -> tuple[Type, Term]:
    """←D (``mode="reverse"``) or →D (``mode="forward"``) of an elaborated term
    (docs/differentiation.md), simplified unless ``simplified=False``, and its type ←D(A):
    the transforms type what they make (if Γ ⊢ t : A then ←D(Γ) ⊢ ←D(t) : ←D(A)), so nothing
    is inferred again; the definitions it uses must have transformed types.  With
    ``normalized`` (the program's definitions, by name), the term's higher-order code is
    first inlined and β-reduced (:func:`lamad.normalize.normalized`, within its budget)."""
    transform, type_of_ = TRANSFORMS[mode]
    if normalized is not None:
        term = normalize.normalized(term, normalized)
    check_transformable(term, type_of_)
    target = transform(term)
    ty = target.ty
    if simplified:
        target = simplify(target, keep=term_names(term))
    return ty, target


def check_transformable(term: Term, type_of_: Callable[[Type], Type]) -> None:
    """That the transform takes the type of each definition ``term`` uses (its free
    variables: only those, so that an unrelated definition of a type the transform does
    not take does not stop this one); a located error otherwise."""
    for name, t in free_variables(term).items():
        try:
            type_of_(t)
        except ValueError as e:
            raise LamTypeError(f"this term uses '{name}' : {t}, and {e}", term.span) from None


# --------------------------------------------------------------------- running


def runtime(backend: Backend | None = None, base_dir: Path | None = None,
            progress: Progress | None = None) -> Runtime:
    """A runtime that can differentiate closures (its ``derive`` is :func:`derive`):
    ``backend`` (default: the default backend), relative ``load`` paths resolved against
    ``base_dir`` (default: the working directory), loops reporting to ``progress``."""
    return Runtime(backend if backend is not None else get_backend(),
                   base_dir if base_dir is not None else Path.cwd(), progress, derive)


def differentiable(runtime_: Runtime) -> Runtime:
    """``runtime_``, given :func:`derive` if it was made without a ``derive`` of its own."""
    return runtime_ if runtime_.derive is not None else replace(runtime_, derive=derive)


@collector_paused
def compile(term: Term, runtime_: Runtime, globals_: Callable[[str], Any],
            params: Sequence[str] = ()) -> Callable[..., Any]:
    """An elaborated term as a Python function of the values of its free variables
    ``params``; any other free name is a definition, whose value ``globals_(name)`` gives."""
    return compile_term(term, runtime_, globals_, params)


@deep
def run(term: Term, runtime_: Runtime, globals_: Callable[[str], Any]) -> Any:
    """The value of a closed elaborated term (definitions aside), compiled and run."""
    return compile(term, runtime_, globals_)()


@deep
def apply(function: Callable, arguments: Sequence[Any]) -> Any:
    """A lamad function value applied to ``arguments``, one after the other."""
    result = function
    for argument in arguments:
        result = result(argument)
    return result


def evaluate(term: Term, runtime_: Runtime | None = None, globals_: Mapping[str, Any] | None = None) -> Any:
    """Evaluate an elaborated term (its free names looked up in ``globals_``) on
    ``runtime_`` (default: :func:`runtime`'s)."""
    env = dict(globals_ or {})
    return run(term, differentiable(runtime_) if runtime_ is not None else runtime(), env.__getitem__)


Warned = tuple[str, Optional[Span]]
"""A warning about a value, in lamad's words (``overflow in 'exp'``), and the span of the
operation that issued it (``None`` where it is not known)."""

_caught: list[Warned] | None = None
"""The warnings of the run under way, while one is caught."""

_report: Callable[[str, Span | None], None] | None = None
"""Told of each warning of the run under way as it comes, where its catcher asked."""

_shown: Callable[..., None] | None = None
"""``warnings.showwarning`` as it was before the run under way began catching."""


def _hook(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` while a run's warnings are caught: a warning about values
    joins the run's, once, located (:func:`lamad.eval.warning_site`); others are shown."""
    if not issubclass(category, RuntimeWarning):
        _shown(message, category, filename, lineno, file, line)
        return
    where = warning_site(str(message))
    if where not in _caught:
        _caught.append(where)
        if _report is not None:
            _report(*where)


def catching(fn: Callable[..., Any], *args: Any,
             report: Callable[[str, Span | None], None] | None = None) -> tuple[Any, list[Warned] | None]:
    """``fn(*args)`` and NumPy's warnings about values (RuntimeWarning: overflow, division
    by zero, invalid value) that it issued, each located at the builtin application
    whose compiled line issued it (:func:`lamad.eval.warning_site`), once each, in the
    order they came, for the caller to report when ``fn`` has returned; ``report`` is told
    of each as it comes, too.  Inside another such call it catches nothing itself and
    gives ``None`` (and ``report`` hears nothing): the outer one, which knows the text,
    reports them.  Which warnings are issued at all is Python's filters' business (by
    default once per operation; the REPL shows them all); nothing is done per
    operation, and a call costs a few assignments: the hook runs only when a warning is
    shown.  A plain function, not a context manager: a gradient called from Python
    passes through it on every call."""
    global _caught, _report, _shown
    if _caught is not None:
        return fn(*args), None
    caught = _caught = []
    _report = report
    _shown, warnings.showwarning = warnings.showwarning, _hook
    try:
        return fn(*args), caught
    finally:
        warnings.showwarning, _caught, _report, _shown = _shown, None, None, None


# --------------------------------------------------------------------- differentiating closures


@deep
@collector_paused
def derive(lam: Lam | LinLam, mark: str, depth: int, runtime_: Runtime,
           globals_: Callable[[str], Any]) -> tuple[list[tuple[str, Type]], Callable[..., Any]]:
    """``M(S(λ))``, the transformed lambda a closure of ``λ`` needs when it is
    differentiated at run time (see :func:`lamad.autodiff.relift`): ``S`` the transform
    of ``mark`` (``"r"`` for ←D, ``"f"`` for →D), under the ``depth`` transforms ``M``
    that made ``λ`` from a source lambda (found through ``Lam.origin``).  Returns the free
    variables of the source lambda with their types, and ``M(S(λ))`` compiled
    as a Python function of their transformed values, on ``runtime_`` with the
    definitions of ``globals_``."""
    term, marks = lam, []
    for _ in range(depth):
        if term.origin is None:
            raise LamRuntimeError("cannot differentiate this function again", lam.span)
        outer, term = term.origin
        marks.append(_LETTERS[outer])
    free = list(free_variables(term).items())
    for letter in [mark, *reversed(marks)]:
        term = TRANSFORMS[_MODES[letter]][0](term)  # typed: nothing is inferred again
    fused = mark == "r" and not marks and FUSED_BACKWARD.get()
    if fused:
        term = fuse_backward(term, [name for name, _ in free])
    return free, compile_term(term, runtime_, globals_, [name for name, _ in free], typed=fused or None)


# --------------------------------------------------------------------- printing

# The printers of lamad/pretty.py recurse on the structure they print, as the passes do:
# a 1,000-level type or a 500-deep tuple gets the big stack too.  The command line and
# the REPL print with these.
pretty = deep(_pretty.pretty)
pretty_type = deep(_pretty.pretty_type)
pretty_derivative = deep(_pretty.pretty_derivative)
format_value = deep(_pretty.format_value)
