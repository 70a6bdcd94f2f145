"""Cotangents kept as factors: the linear factoring ``t u + t v → t (u + v)`` for the
outer products of matrix–vector products (docs/differentiation.md, "At run time").

The cotangent of ``W`` in ``W @ h`` (``h`` a vector) is the outer product ``a hᵀ``.
Folded over a sequence, as in an RNN step, ``W`` receives one per step, and forcing sums
them: ``Σₜ aₜ hₜᵀ``, T outer products and T additions of matrices.  The same sum is one
matrix product, ``A Hᵀ`` with the ``aₜ`` and the ``hₜ`` as the columns of ``A`` and
``H``.  So while backpropagators run (:func:`lamad.gradient.force`) the transposed
derivative of such a product gives an :class:`Outer`, its two factors, and the sums
forcing makes of them are :class:`FactoredSum` nodes, made in O(1); :meth:`Factored.dense`
forms the matrix, with one product for all the outer products of a sum.

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
from typing import Any

import numpy as np

class _Forcing(threading.local):
    """How many forcings are under way in this thread: factored cotangents are made only
    inside one (a thread that is not forcing makes none, whatever others do)."""

    depth = 0


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
    """The sum that forcing accumulates for one backpropagator once an outer product is
    added to another cotangent: the factors of its outer products in two lists, its other
    terms in a third.  Adding an outer product appends its factors, so a loop's steps make
    no node each.  Forcing alone holds it, and makes it dense before anything else sees it
    (:func:`dense_leaves`), so it may grow in place."""

    __slots__ = ("ps", "qs", "terms")

    def __init__(self, first: Any, outer: Outer):
        self.shape, self._dense = outer.shape, None
        if type(first) is Outer:
            self.ps, self.qs, self.terms = [first.p, outer.p], [first.q, outer.q], []
        else:
            self.ps, self.qs, self.terms = [outer.p], [outer.q], [first]

    def add(self, cotangent: Any) -> Any:
        """This sum plus ``cotangent``: itself, grown, or (a cotangent of another kind,
        which broadcasting would widen) the dense sum."""
        kind = type(cotangent)
        if kind is Outer:
            self.ps.append(cotangent.p)
            self.qs.append(cotangent.q)
        elif kind is FactoredSum or (kind is np.ndarray and cotangent.shape == self.shape):
            self.terms.append(cotangent)
        else:
            return self.dense() + cotangent
        return self


def add_outer(total: Any, outer: Outer) -> Any:
    """``total + outer`` for the sum of the cotangents sent to one backpropagator: a
    :class:`RunningSum` where ``total`` is factored or an array of the same shape."""
    kind = type(total)
    if kind is Outer or kind is FactoredSum or (kind is np.ndarray and total.shape == outer.shape):
        return RunningSum(total, outer)
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
            todo += reversed(node.terms)
        elif isinstance(node, Factored):  # pragma: no cover - the two kinds above are all
            raise TypeError(f"unknown factored cotangent {type(node).__name__}")
        else:
            arrays.append(node)
    if len(ps) == 1:
        total = np.outer(ps[0], qs[0])
    else:  # the rows of np.array (made in one call; np.stack's Python cost is many times its copy)
        total = np.array(ps).T @ np.array(qs)
    for array in arrays:
        total = total + array
    return total


def dense_leaves(value: Any) -> Any:
    """``value`` with every factored cotangent in it dense: a cotangent, or a pair of them
    (nested derivatives: docs/differentiation.md)."""
    kind = type(value)
    if kind is tuple:
        return tuple([dense_leaves(v) for v in value])
    if kind is Outer or kind is FactoredSum or kind is RunningSum:
        return value.dense()
    return value
