"""The target calculus at run time: backpropagators, gradient values, forcing
(docs/differentiation.md, "At run time").

* A :class:`Backpropagator` (a value of type ``A ⊸ d``) is a closure with a unique
  id that increases with creation time.  It only refers to backpropagators made
  before it, so ids are a topological order of the computation.
* Applying a backpropagator does not run it: it records that a cotangent was sent
  to it, as the pair ``(x', v)``.  A gradient value (type ``d``) is a lazy sum of
  such records: ``0`` is :data:`ZERO` and ``u + v`` is the list ``[u, v]``
  (:func:`add`), an O(1) node.  Records and sums are Python's own tuples and lists,
  which compiled code (lamad/eval.py) builds without a call.
* :func:`force` runs the pending backpropagators in decreasing id order with an
  explicit work list, each body once, after summing all the cotangents sent to it —
  the paper's linear factoring ``t u + t v → t (u + v)``.  So a gradient costs
  O(the forward evaluation) (Brunel, Mazza & Pagani 2020, §6) and long chains
  cannot overflow the Python stack.
* In a derivative that is differentiated again (docs/differentiation.md, nesting) the
  backpropagators are transformed ones and the cotangents sent to them are transformed
  values: pairs of a cotangent and its tangent (→D) or its own backpropagator (←D).
  They are summed by :func:`add_cotangents`, and forcing stays linear at every level.
"""

from __future__ import annotations

from contextlib import contextmanager
from math import isfinite
from heapq import heappop, heappush
import itertools
from typing import Any, Callable, Iterator, Protocol

import numpy as np
from numpy import ndarray

from lamad import factored
from lamad.factored import FactoredSum, Outer, RunningSum, dense_leaves, running_sum

_ids = itertools.count(1)

_FACTORED = frozenset({Outer, FactoredSum, RunningSum, tuple})
"""The types of the cotangents that may hold factored ones (lamad/factored.py)."""


def next_id() -> int:
    """The id the next backpropagator made will get (``count``'s ``repr`` reads it without
    taking it)."""
    return int(repr(_ids)[len("count("):-1])


class Stats:
    """Work counters since the last :meth:`reset`: tests use them to check the efficiency
    theorem by counting, and the REPL's ``:stats`` shows them.  ``backprop_runs``: bodies
    of backpropagators run by :func:`force`; ``cotangents_summed``: cotangents added to
    one already sent to the same backpropagator (each is a use of the linear factoring
    ``t u + t v → t (u + v)``); :meth:`backprops_made`: backpropagators created."""

    backprop_runs = 0
    cotangents_summed = 0
    _first_id = 1

    @classmethod
    def reset(cls) -> None:
        cls.backprop_runs = cls.cotangents_summed = 0
        cls._first_id = next_id()

    @classmethod
    def backprops_made(cls) -> int:
        return next_id() - cls._first_id


class Backpropagator:
    """A linear map ``A ⊸ d`` with a creation-ordered id.  Its body computes the gradient
    value it contributes for a given cotangent, as ``body(captured, cotangent)``, where
    ``captured`` is the tuple of the values it captured: the compiled code of a
    backpropagator is shared by all its closures, each of which holds the values it
    captured here rather than in a ``functools.partial`` of its own (half the memory of a
    closure, and cheaper to make).  ``body`` is ``None`` for the backpropagators of
    inputs, which forcing leaves for collection."""

    __slots__ = ("id", "body", "captured")

    def __init__(self, body: Callable[[tuple, Any], Any] | None, *captured: Any):
        self.id = next(_ids)
        self.body = body
        self.captured = captured

    def __call__(self, cotangent: Any) -> tuple[Backpropagator, Any]:
        return self, cotangent

    def taken(self) -> tuple:
        """What it captured, which it holds no longer: a body given the only reference
        lets go of each value after its last use (lamad/eval.py), so that a graph
        forced once (:func:`force`, ``once``) frees the values its backpropagators
        captured as they run, not when each has returned."""
        captured, self.captured = self.captured, None
        return captured

    def __repr__(self) -> str:
        return f"<backpropagator {self.id}>"


def maker(body: Callable[[tuple, Any], Any]) -> Callable[..., Backpropagator]:
    """``partial(Backpropagator, body)``, but the object is made and filled in one call of
    a function, not through the class's call and ``__init__`` (about 170 ns where those take
    220: compiled code makes a backpropagator a step of a loop)."""
    new, cls, ids = object.__new__, Backpropagator, _ids

    def make(*captured: Any) -> Backpropagator:
        bp = new(cls)
        bp.id = next(ids)
        bp.body = body
        bp.captured = captured
        return bp
    return make


class _Zero:
    """The gradient value ``0``: nothing sent anywhere."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "0"


ZERO = _Zero()


class _ConstantBackpropagator(Backpropagator):
    """``\\a. 0``, the backpropagator of constants: applying it sends nothing."""

    __slots__ = ()

    def __call__(self, cotangent: Any) -> Any:
        return ZERO


ZERO_BACKPROP = _ConstantBackpropagator(None)


def add(u: Any, v: Any) -> Any:
    """``u + v`` in the module ``d``."""
    if u is ZERO:
        return v
    if v is ZERO:
        return u
    return [u, v]


def add_cotangents(u: Any, v: Any) -> Any:
    """``u + v`` for the cotangents sent to one backpropagator: arrays add; pairs add
    componentwise (→D: value and tangent); backpropagators add pointwise, ``λc ⊸ u c + v c``
    — a new one, so ids still order the computation."""
    if isinstance(u, tuple):
        return tuple(add_cotangents(a, b) for a, b in zip(u, v))
    if isinstance(u, Backpropagator):
        if u is ZERO_BACKPROP:
            return v
        if v is ZERO_BACKPROP:
            return u
        return Backpropagator(lambda _, c: add(u(c), v(c)))
    total = u + v
    return total if type(total) is not float or isfinite(total) else numpy_sum(u, v, total)


def numpy_sum(u: float, v: float, total: float) -> float:
    """The sum ``total`` of two Reals that are Python floats (``Backend.floats``) that is
    not finite, as NumPy's scalars give it: computed again by NumPy where NumPy warns — an
    infinity of finite ones, a NaN of none — so that the warning is NumPy's (typed scalar
    code, lamad/eval.py)."""
    if isfinite(u) and isfinite(v) or total != total and u == u and v == v:
        return float(np.float64(u) + v)
    return total


def sum_apply(backprops: list, cotangents: list) -> Any:
    """``Σᵢ backprops[i] cotangents[i]``, as one gradient value."""
    if len(backprops) != len(cotangents):
        raise ValueError(f"{len(backprops)} backpropagators but {len(cotangents)} cotangents")
    total: Any = ZERO
    for bp, ct in zip(backprops, cotangents):
        total = add(total, bp(ct))
    return total


def _unreachable(captured: tuple, cotangent: Any) -> Any:
    raise AssertionError("a cotangent reached the link between two steps of a loop outside its backward pass")


LINK = Backpropagator(_unreachable)
"""The backpropagator of the state between two steps of a loop whose steps chain
(:func:`chain`): what the next step captures in place of one made per step.  Only the
loop's backpropagator receives cotangents for it, and it never runs."""


class _Loop(Backpropagator):
    """The backpropagator of the states a loop's steps chain (:func:`chain`); given what it
    captured to keep alone (forced once), its body lets go of each step's as it runs it."""

    __slots__ = ()

    def taken(self) -> tuple:
        loop, residuals, tensor, _ = super().taken()
        return loop, residuals, tensor, True


def chain(loop: Callable[[Iterator[tuple], Any], Any], residuals: list[tuple], tensor: bool) -> Backpropagator:
    """One backpropagator for the ``n`` steps of a loop whose steps chain
    (lamad/chains.py, :func:`~lamad.chains.chained_step`): step ``k`` made no backpropagator,
    but kept what it would have captured, ``residuals[k]``, with :data:`LINK` for the
    state it was given (the loop's first step, the state the loop was given).  Its body
    runs the steps' backward code on them, last step first, each on the cotangent the
    step after it sent to :data:`LINK` — what forcing would have done with a
    backpropagator per step, each sent to by the next alone — and sends on everything
    else they send (to the loop's first state, to what the steps captured from outside
    the loop: summed by forcing as before), in the order forcing would have.  ``loop``
    is that backward code as a loop (lamad/eval.py, ``_Unit.looped``): ``loop(steps, a)``
    runs it on the residuals of the iterator ``steps``, ``a`` the cotangent of the
    last, and returns what they sent but to :data:`LINK`.  ``tensor``: the state is a
    Tensor, whose residuals are let go as each step runs (forced once)."""
    return _Loop(_run_chain, loop, residuals, tensor, False)


def _run_chain(captured: tuple, cotangent: Any) -> Any:
    """The body of :func:`chain`'s backpropagator.  ``owned``: the graph is forced once, and
    the residuals of each step, where they hold tensors, are let go once it has run."""
    loop, residuals, tensor, owned = captured
    del captured
    return loop(_popped(residuals) if owned and tensor else reversed(residuals), cotangent)


def link_taken(sent: Any) -> Any:
    """The cotangent the gradient value ``sent`` that a step's body returned sends to
    :data:`LINK` (``None`` for none), its record replaced by ``0`` in the sum: the sums
    that hold it are the body's own, made as it ran (a step that chains sends to the
    state's backpropagator once, and nothing else it is given holds that record)."""
    rest = [sent]
    while rest:
        node = rest.pop()
        if type(node) is not list:
            continue
        for i, part in enumerate(node):
            if type(part) is tuple and part[0] is LINK:
                node[i] = ZERO
                return part[1]
            rest.append(part)
    return None


def dense(cotangent: Any) -> Any:
    """A cotangent that may be a factored sum (lamad/factored.py) as the array it stands for."""
    return dense_leaves(cotangent) if type(cotangent) in _FACTORED else cotangent


def _popped(items: list) -> Iterator:
    """The items of a list, last first, each taken out of it."""
    while items:
        yield items.pop()


class Observer(Protocol):
    """What :func:`force` reports to while one is installed (:func:`observed`): the
    gradient value it starts from, then each backpropagator it runs, with the sum of the
    cotangents sent to it and the gradient value its body gave (lamad/trace.py)."""

    def forcing(self, gradient: Any) -> None: ...

    def ran(self, target: Backpropagator, cotangent: Any, sent: Any) -> None: ...


_observer: Observer | None = None


@contextmanager
def observed(observer: Observer) -> Iterator[None]:
    """Report every :func:`force` inside the ``with`` to ``observer``."""
    global _observer
    saved, _observer = _observer, observer
    try:
        yield
    finally:
        _observer = saved


def gradient_records(gradient: Any) -> Iterator[tuple[Backpropagator, Any]]:
    """The records ``(x', v)`` of a gradient value, in the order of its sum, with no
    recursion (a sum made by a long loop is deep)."""
    rest = [gradient]
    while rest:
        node = rest.pop()
        if type(node) is list:
            rest.extend(reversed(node))
        elif node is not ZERO:
            yield node


def force(gradient: Any, once: bool = False) -> dict[Backpropagator, Any]:
    """Run every pending backpropagator, largest id first, once each on the sum of its
    cotangents; returns the cotangents that reached input backpropagators.  The outer
    products sent to one backpropagator are summed as one matrix product
    (lamad/factored.py), made dense before a body or the caller sees them.  ``once``:
    the graph is forced this once (a gradient's, which nothing else holds), so each
    backpropagator's body is given what it captured to let go of as it runs
    (:meth:`Backpropagator.taken`); a pullback's graph, forced once per cotangent, is not."""
    if _observer is not None:
        _observer.forcing(gradient)
    factored.forcing.depth += 1
    try:
        sent = [gradient]
        del gradient  # the graph is let go as it runs: nothing here holds its root
        accumulated = _scatter_and_run(sent.pop(), once)
        for target, total in accumulated.items():
            if type(total) in _FACTORED:  # tested here: a call of dense per result costs a gradient's call
                accumulated[target] = dense_leaves(total)
    finally:
        factored.forcing.depth -= 1
        if not factored.forcing.depth:
            factored.forcing.stacked = []  # the stacks kept while forcing ran are let go
    return accumulated


def _scatter_and_run(node: Any, once: bool) -> dict[Backpropagator, Any]:
    """:func:`force`'s loop.  ``node`` is the gradient value being scattered into
    ``accumulated`` (the parts of sums still to scatter wait in ``rest``).  Of the
    backpropagators with a body that have received a cotangent and not yet run, the one
    of largest id waits in ``ready`` and the others in the heap ``pending``: a body most
    often sends to backpropagators made just before it, which then run next without a
    heap operation.  A body's result is most often one record, which takes no work list,
    and whose backpropagator, when nothing else can send to it any more (no sum left to
    scatter, none waiting of a larger id), runs at once on that cotangent, with no entry
    in ``accumulated``.  What has run is let go at once — its sum, and the backpropagator itself when nothing
    else holds it — so that the graph of the forward pass shrinks as it is forced.  An
    observer (:func:`observed`) is told of each run; without one, it costs a test per run."""
    observer = _observer
    accumulated: dict[Backpropagator, Any] = {}
    pending: list[tuple[int, Backpropagator]] = []
    rest: list = []
    ready: Backpropagator | None = None
    runs = summed = 0
    while True:
        while type(node) is list:  # a sum: its left part now, its right part later
            node, right = node
            rest.append(right)
        total = None  # the cotangent of the backpropagator to run now, if one is found here
        if type(node) is tuple:
            target, cotangent = node
            sum_so_far = accumulated.get(target)
            if sum_so_far is not None:  # one more cotangent for target: the linear factoring
                summed += 1
                sum_kind = type(sum_so_far)
                if sum_kind is RunningSum and type(cotangent) is Outer:  # a loop's outer products, one a step
                    sum_so_far.ps.append(cotangent.p)
                    sum_so_far.qs.append(cotangent.q)
                elif sum_kind is RunningSum:
                    accumulated[target] = sum_so_far.add(cotangent)
                elif type(cotangent) is Outer:
                    accumulated[target] = running_sum(sum_so_far, cotangent)
                elif sum_kind is ndarray or not (sum_kind is tuple or isinstance(sum_so_far, Backpropagator)):
                    both = sum_so_far + cotangent  # arrays, most often; floats again as NumPy's where not finite
                    accumulated[target] = both if type(both) is not float or isfinite(both) else \
                        numpy_sum(sum_so_far, cotangent, both)
                else:
                    accumulated[target] = add_cotangents(sum_so_far, cotangent)
            elif target.body is None:  # an input's, collected by the caller
                accumulated[target] = cotangent
            elif ready is None and not rest and not (pending and pending[0][0] < -target.id):
                total = cotangent  # a chain's next link: nothing else sends to it
            else:  # to run: next, or on the heap
                accumulated[target] = cotangent
                if ready is None and not (pending and pending[0][0] < -target.id):
                    ready = target
                elif ready is not None and target.id > ready.id:
                    heappush(pending, (-ready.id, ready))
                    ready = target
                else:
                    heappush(pending, (-target.id, target))
        elif node is not ZERO:
            raise TypeError(f"not a gradient value: {node!r}")
        if total is None:
            if rest:
                node = rest.pop()
                continue
            if ready is not None:
                target, ready = ready, None
            elif pending:
                target = heappop(pending)[1]
            else:
                break
            total = accumulated.pop(target)
        runs += 1
        if type(total) in _FACTORED:  # a body receives arrays, never factored cotangents
            total = dense_leaves(total)
        node = target.body(target.taken() if once else target.captured, total)  # a backpropagator runs
        if observer is not None:
            observer.ran(target, total, node)
    Stats.backprop_runs += runs
    Stats.cotangents_summed += summed
    return accumulated
