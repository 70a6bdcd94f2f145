"""Cotangents kept as factors: the linear factoring ``t u + t v → t (u + v)`` for the
outer products of matrix–vector products (docs/differentiation.md, "At run time").

The cotangent of ``W`` in ``W @ h`` (``h`` a vector) is the outer product ``a hᵀ``.
Folded over a sequence, as in an RNN step, ``W`` receives one per step, and forcing sums
them: ``Σₜ aₜ hₜᵀ``, T outer products and T additions of matrices.  The same sum is one
matrix product, ``A Hᵀ`` with the ``aₜ`` and the ``hₜ`` as the columns of ``A`` and
``H``.  So while backpropagators run (:func:`lamad.gradient.force`) the transposed
derivative of such a product gives an :class:`Outer`, its two factors; forcing adds
those sent to one backpropagator to a :class:`RunningSum`, two appends each, and a body
that adds them makes :class:`FactoredSum` nodes, in O(1); :meth:`Factored.dense` forms
the matrix, with one product for all the outer products of a sum.

A factored cotangent is a sum of cotangents and nothing else: forcing makes it dense
(:func:`dense_leaves`) before a backpropagator's body receives it and before it returns
the cotangents of the inputs, so no other code sees one.  Within a body, anything but
``+`` — an operator, a NumPy function (``__array__``), an attribute — acts on its dense
matrix.  A thread that is not forcing makes none, and only NumPy's arrays are factored.
The sum's rounding differs from the sum of the outer products only by the order of the
additions.
"""

from __future__ import annotations

import threading
from operator import is_
from typing import Any

import numpy as np

class _Forcing(threading.local):
    """How many forcings are under way in this thread: factored cotangents are made only
    inside one (a thread that is not forcing makes none, whatever others do)."""

    depth = 0
    stacked: list[tuple[tuple, np.ndarray]] = []
    """The last lists of arrays stacked (:func:`_stacked`), each with its stack."""


forcing = _Forcing()


class Factored:
    """A cotangent kept as a sum of outer products (and dense arrays of its shape)."""

    __slots__ = ("shape", "_dense")
    __array_priority__ = 1000.0  # NumPy's operators defer to ``__radd__`` and the others below

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
        self._dense = None

    def dense(self) -> Any:
        """The array this cotangent stands for, formed once."""
        if self._dense is None:
            self._dense = _materialise(self)
        return self._dense

    def __add__(self, other: Any) -> Any:
        if isinstance(other, Factored) or (type(other) is np.ndarray and other.shape == self.shape):
            return FactoredSum(self, other)
        return self.dense() + other

    def __radd__(self, other: Any) -> Any:
        if type(other) is np.ndarray and other.shape == self.shape:
            return FactoredSum(other, self)
        return other + self.dense()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = self.dense()
        if dtype is not None:
            return value.astype(dtype, copy=bool(copy))
        return value.copy() if copy else value  # the dense matrix is kept: a copy to write to

    def __getattr__(self, name: str) -> Any:  # ndim, dtype, T, reshape, …: the dense array's
        return getattr(self.dense(), name)

    def __repr__(self) -> str:
        return repr(self.dense())


def _on_dense(name: str):
    def operator(self: Factored, *args: Any) -> Any:
        return getattr(self.dense(), name)(*args)
    operator.__name__ = name
    return operator


for _name in ("__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__pow__", "__rpow__",
              "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__", "__getitem__", "__len__", "__iter__",
              "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__float__", "__bool__"):
    setattr(Factored, _name, _on_dense(_name))
Factored.__hash__ = None  # type: ignore[assignment]  # as an array's


class Outer(Factored):
    """``p qᵀ`` for vectors ``p`` and ``q``."""

    __slots__ = ("p", "q")

    def __init__(self, p: np.ndarray, q: np.ndarray):  # made once per step of a loop: no call of Factored's
        self._dense, self.p, self.q = None, p, q

    @property
    def shape(self) -> tuple[int, int]:  # read by few: a tuple made a step was half the cost of making one
        return self.p.shape[0], self.q.shape[0]


class FactoredSum(Factored):
    """``u + v``, at least one of them factored, as a node: summing stays O(1) per term."""

    __slots__ = ("u", "v")

    def __init__(self, u: Any, v: Any):
        self.shape, self._dense, self.u, self.v = u.shape, None, u, v


class RunningSum(Factored):
    """The sum that forcing accumulates for one backpropagator: the factors of its outer
    products in two lists, its arrays of its shape in a third and its other terms in a
    fourth.  Adding appends, so a loop's steps make no node each; made dense, it is one
    matrix product ``P Qᵀ`` plus its arrays, summed by one reduction of their stack
    (:func:`_stacked`: an RNN's step sends one vector as a factor to both weights, stacked
    once for the two).  The arrays it keeps have :data:`HELD_MOST` entries at most
    together: beyond, they are added up.  Forcing alone holds it, and makes it dense
    before anything else sees it (:func:`dense_leaves`), so it may grow in place."""

    __slots__ = ("ps", "qs", "arrays", "terms", "held")

    def __init__(self, shape: tuple[int, ...], first: Any, second: Any):
        self.shape, self._dense, self.ps, self.qs, self.arrays, self.terms, self.held = shape, None, [], [], [], [], 0
        self.add(first)
        self.add(second)

    def add(self, cotangent: Any) -> Any:
        """This sum plus ``cotangent``: itself, grown, or (a cotangent of another kind,
        which broadcasting would widen) the dense sum."""
        kind = type(cotangent)
        if kind is Outer:
            self.ps.append(cotangent.p)
            self.qs.append(cotangent.q)
        elif kind is np.ndarray and cotangent.shape == self.shape:
            self.arrays.append(cotangent)
            self.held += cotangent.size
            if self.held > HELD_MOST:
                self.arrays = [_summed(self.arrays)]
                self.held = self.arrays[0].size
        elif kind is FactoredSum:
            self.terms.append(cotangent)
        else:
            return self.dense() + cotangent
        return self


HELD_MOST = 1 << 16
"""How many entries the arrays a :class:`RunningSum` keeps unsummed have at most
together (512 KiB of float64)."""


def running_sum(total: Any, outer: Outer) -> Any:
    """``total + outer`` for the sum of the cotangents sent to one backpropagator: a
    :class:`RunningSum` where ``total`` is factored or an array of the same shape."""
    kind = type(total)
    if kind is Outer or kind is FactoredSum or (kind is np.ndarray and total.shape == outer.shape):
        return RunningSum(outer.shape, total, outer)
    return total + outer


def outer(xp: Any, p: Any, q: Any) -> Any:
    """``p qᵀ``: factored while backpropagators run on NumPy arrays, else formed."""
    if forcing.depth and xp is np and type(p) is np.ndarray and type(q) is np.ndarray:
        return Outer(p, q)
    return p[:, None] * q[None, :]


def _materialise(value: Factored) -> np.ndarray:
    """The sum of the outer products under ``value`` as one matrix product ``P Qᵀ``, plus
    its dense terms; walked with a work list (a sum of 100,000 steps is that deep)."""
    ps, qs, arrays = [], [], []
    todo: list = [value]
    while todo:
        node = todo.pop()
        if type(node) is FactoredSum:
            todo.append(node.v)
            todo.append(node.u)
        elif type(node) is Outer:
            ps.append(node.p)
            qs.append(node.q)
        elif type(node) is RunningSum:
            ps += node.ps
            qs += node.qs
            arrays += node.arrays
            todo += reversed(node.terms)
        elif isinstance(node, Factored):  # pragma: no cover - the kinds above are all
            raise TypeError(f"unknown factored cotangent {type(node).__name__}")
        else:
            arrays.append(node)
    if not ps:
        return _summed(arrays)
    if len(ps) == 1:
        total = np.outer(ps[0], qs[0])
    else:
        total = _stacked(ps).T @ _stacked(qs)
    return total + _summed(arrays) if arrays else total


_REDUCED_FROM = 4
"""How many arrays are summed as one reduction of their stack rather than one by one."""


def _summed(arrays: list) -> Any:
    """The sum of ``arrays`` (at least one), left to right: arrays of one shape, from
    :data:`_REDUCED_FROM` on, as one reduction of their stack (``add.reduce`` down its
    first axis adds them in that order too)."""
    if len(arrays) < _REDUCED_FROM or any(type(a) is not np.ndarray or a.shape != arrays[0].shape for a in arrays):
        total = arrays[0]
        for array in arrays[1:]:
            total = total + array
        return total
    return np.add.reduce(_stacked(arrays), axis=0)


def _stacked(vectors: list) -> np.ndarray:
    """``vectors`` as the rows of one array, made by one call of ``np.array`` (np.stack's
    Python cost is many times its copy); while forcing runs, the last few stacks are kept
    for the next lists of the same arrays (a loop's step sends one vector to several sums)."""
    first = vectors[0]
    for kept, stack in forcing.stacked:
        if kept[0] is first and len(kept) == len(vectors) and all(map(is_, kept, vectors)):
            return stack
    stack = np.array(vectors)
    if forcing.depth:
        forcing.stacked = [(tuple(vectors), stack), *forcing.stacked[:_STACKS_KEPT - 1]]  # a copy: the list may grow
    return stack


_STACKS_KEPT = 4
"""How many stacks :func:`_stacked` keeps while forcing runs."""


def dense_leaves(value: Any) -> Any:
    """``value`` with every factored cotangent in it dense: a cotangent, or a pair of them
    (nested derivatives: docs/differentiation.md)."""
    kind = type(value)
    if kind is tuple:
        return tuple([dense_leaves(v) for v in value])
    if kind is Outer or kind is FactoredSum or kind is RunningSum:
        return value.dense()
    return value
