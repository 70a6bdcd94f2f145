"""Lists, tuples and loops: they commute with both transforms (``D(map) = map``).  A loop
persists its state after each step (``ext.persist``: on a lazy backend, Dask, its task graph
then stays the size of one step).  Under ←D, a loop whose steps chain (lamad/chains.py,
:func:`~lamad.chains.chained_step`) makes one backpropagator for all its steps, not one a
step (lamad/gradient.py, :func:`~lamad.gradient.chain`): ``iterate``, ``while`` and
``fold``; ``scan`` returns every state it makes, and makes a backpropagator a step."""

from __future__ import annotations

import itertools
import operator
from functools import partial
from typing import Any, Callable

from lamad.gradient import chain

from lamad.prims.base import SHAPE, A, B, define
from lamad.syntax import BOOL, INT, FunType, ListType, TupleType


def _chained(f: Callable) -> tuple[Callable, Callable[[Any], Any]]:
    """The step a loop runs for the function ``f``, and the loop's result from its last
    state: ``f`` and that state, or, where ``f`` is a step of a loop whose steps chain
    (lamad/eval.py, ``_LamSource.chained``), ``f`` compiled to keep the residuals of each
    step instead of making its backpropagator, and the state with the backpropagator of
    all the steps run."""
    code = f.func if type(f) is partial else f
    source = getattr(code, "lamad", None)
    residuals: list[tuple] = []
    chained = None if source is None else source.chained(f.args if code is not f else (), residuals.append)
    if chained is None:
        return f, _as_it_is
    step, loop, tensor = chained
    return step, lambda state: (state[0], chain(loop, residuals, tensor)) if residuals else state


def _as_it_is(state: Any) -> Any:
    return state


def uncurried(f: Callable, arity: int) -> Callable:
    """A curried function value ``f`` as a function of its first ``arity`` arguments at
    once: the uncurried entry the evaluator compiles for a chain of lambdas (lamad/eval.py,
    ``_Unit.uncurry``), given what the closure captured, where it has one of that arity;
    else ``f`` applied to them one at a time (``f`` itself, of one).  A loop calls its
    step so (no closure ``f acc`` made a step), and a gradient called from Python ←D of a
    function of several arguments (lamad/autodiff.py)."""
    if arity == 1:
        return f
    func, captured = (f.func, f.args) if type(f) is partial else (f, ())
    entry = getattr(func, "uncurried", None)
    if entry is not None and entry[1] == arity:
        return partial(entry[0], *captured) if captured else entry[0]
    return partial(_applied, f)


def _applied(f: Callable, *arguments: Any) -> Any:
    """``f`` applied to ``arguments`` one at a time."""
    for argument in arguments:
        f = f(argument)
    return f


def _persisted(step: Callable, persist: Callable[[Any], Any] | None) -> Callable:
    """``step`` with its result persisted (``ext.persist``, a lazy backend's), or ``step``
    itself on an eager backend, which persists nothing."""
    if persist is None:
        return step
    return lambda *state: persist(step(*state))


def _fold(rt):
    persist = rt.backend.ext.persist

    def fold(f, acc, xs):
        step, result = _chained(f)
        step = _persisted(uncurried(step, 2), persist)
        with rt.steps(xs, len(xs), "fold") as steps:
            for x in steps:
                acc = step(acc, x)
        return result(acc)
    return fold


def _iterate(rt):
    persist = rt.backend.ext.persist

    def iterate(n, f, x):
        if n < 0:
            raise ValueError(f"the count is negative: {n}")
        step, result = _chained(f)
        step = _persisted(step, persist)
        with rt.steps(range(n), n, "iterate") as steps:
            for _ in steps:
                x = step(x)
        return result(x)
    return iterate


def _while(rt):
    persist = rt.backend.ext.persist

    def while_(p, f, x):
        """``f`` applied to ``x`` while ``p`` holds: the first of ``x, f x, f (f x), …`` where
        ``p`` is false.  Its steps are counted as they run; their number is not known before."""
        step, result = _chained(f)
        step = _persisted(step, persist)
        with rt.steps(itertools.count(), None, "while") as steps:
            for _ in steps:
                if not p(x):
                    return result(x)
                x = step(x)
    return while_


def _scan(rt):
    """``scan f z [x1, …, xn] = [z, f z x1, f (f z x1) x2, …]``: the accumulators of a left
    fold, first to last (Haskell's ``scanl``), so a loop can report its history."""
    persist = rt.backend.ext.persist

    def scan(f, acc, xs):
        out = [acc]
        step = _persisted(uncurried(f, 2), persist)
        with rt.steps(xs, len(xs), "scan") as steps:
            for x in steps:
                acc = step(acc, x)
                out.append(acc)
        return out
    return scan


def _zip(rt):
    def zip_(xs, ys):
        if len(xs) != len(ys):
            raise ValueError(f"lists have lengths {len(xs)} and {len(ys)}; zip needs equal lengths")
        return list(zip(xs, ys))
    return zip_


def _structural(name, params, result, impl, **fields) -> None:
    define(name, params, result, impl, derivative="structural", **fields)


_structural("map", (FunType(A, B), ListType(A)), ListType(B), lambda rt: (lambda f, xs: [f(x) for x in xs]),
            linear=(0,))
_structural("fold", (FunType(B, FunType(A, B)), B, ListType(A)), B, _fold)
_structural("scan", (FunType(B, FunType(A, B)), B, ListType(A)), ListType(B), _scan)
_structural("zip", (ListType(A), ListType(B)), ListType(TupleType((A, B))), _zip)
_structural("length", (ListType(A),), INT, lambda rt: len)
_structural("range", (INT,), SHAPE, lambda rt: (lambda n: list(range(n))))
_structural("iterate", (INT, FunType(A, A), A), A, _iterate)
_structural("while", (FunType(A, BOOL), FunType(A, A), A), A, _while,
            doc="f applied to x while p holds: the first of x, f x, f (f x), … where p is false")
_structural("append", (ListType(A), ListType(A)), ListType(A), lambda rt: operator.add)
_structural("fst", (TupleType((A, B)),), A, lambda rt: operator.itemgetter(0), linear=(0,))
_structural("snd", (TupleType((A, B)),), B, lambda rt: operator.itemgetter(1), linear=(0,))
