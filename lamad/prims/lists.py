"""Lists, tuples and loops: they commute with both transforms (``D(map) = map``).  A loop
persists its state after each step (``ext.persist``: on a lazy backend, Dask, its task graph
then stays the size of one step)."""

from __future__ import annotations

import itertools
import operator
from functools import partial
from typing import Any, Callable

from lamad.prims.base import SHAPE, A, B, define
from lamad.syntax import BOOL, INT, FunType, ListType, TupleType


def two_arguments(f: Callable[[Any], Callable[[Any], Any]]) -> Callable[[Any, Any], Any]:
    """``λa x. f a x`` for a curried function ``f``: where ``f`` is a compiled lambda
    ``λa. λx. e`` (or its closure), the function of ``λx. e`` given all at once
    (``uncurried``, lamad/eval.py), which makes no closure ``f a`` a step of a loop."""
    if type(f) is partial:
        inner = getattr(f.func, "uncurried", None)
        if inner is not None and not f.keywords:
            return partial(inner, *f.args)
    else:
        inner = getattr(f, "uncurried", None)
        if inner is not None:
            return inner
    return lambda a, x: f(a)(x)


def _fold(rt):
    persist = rt.backend.ext.persist

    def fold(f, acc, xs):
        step = two_arguments(f)
        with rt.steps(xs, len(xs), "fold") as steps:
            for x in steps:
                acc = persist(step(acc, x))
        return acc
    return fold


def _iterate(rt):
    persist = rt.backend.ext.persist

    def iterate(n, f, x):
        if n < 0:
            raise ValueError(f"the count is negative: {n}")
        with rt.steps(range(n), n, "iterate") as steps:
            for _ in steps:
                x = persist(f(x))
        return x
    return iterate


def _while(rt):
    persist = rt.backend.ext.persist

    def while_(p, f, x):
        """``f`` applied to ``x`` while ``p`` holds: the first of ``x, f x, f (f x), …`` where
        ``p`` is false.  Its steps are counted as they run; their number is not known before."""
        with rt.steps(itertools.count(), None, "while") as steps:
            for _ in steps:
                if not p(x):
                    return x
                x = persist(f(x))
    return while_


def _scan(rt):
    """``scan f z [x1, …, xn] = [z, f z x1, f (f z x1) x2, …]``: the accumulators of a left
    fold, first to last (Haskell's ``scanl``), so a loop can report its history."""
    persist = rt.backend.ext.persist

    def scan(f, acc, xs):
        out = [acc]
        step = two_arguments(f)
        with rt.steps(xs, len(xs), "scan") as steps:
            for x in steps:
                acc = persist(step(acc, x))
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
