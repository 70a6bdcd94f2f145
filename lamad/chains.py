"""Loops whose steps chain (docs/differentiation.md, "Loops whose steps chain"): which steps
of ``iterate``, ``while`` and ``fold`` in a term ←D made (fused, lamad/fuse.py) make one
backpropagator that is the only one to send to the backpropagator of the state the step
was given.  The evaluator compiles such a step again to keep its residuals instead
(lamad/eval.py, ``_LamSource.chained``), and the loop runs the backward passes of all its
steps as one backpropagator (lamad/gradient.py, :func:`~lamad.gradient.chain`)."""

from __future__ import annotations

from lamad.syntax import (
    GRAD, REAL, TENSOR, App, DZero, FunType, Lam, Let, LinLam, LinType, Pattern, PTuple, PVar, Term, Tuple, TupleType,
    Var, children, let_chain, pattern_names, perp, subterms, term_names,
)

_STATES = (TupleType((REAL, perp(REAL))), TupleType((TENSOR, perp(TENSOR))))
"""←D(Real) and ←D(Tensor): the states of the loops whose steps are chained."""


def chained_step(step: Lam) -> LinLam | None:
    """The backpropagator that a step of a loop makes, if it is its step's only link back
    to the state it was given: ``step`` is ←D of the function of ``iterate`` or ``while``
    (``S → S``) or of ``fold`` (``λacc. λe. …``, ``S → E → S``), ``S`` the pair of a Real or
    a Tensor and its backpropagator ``s'``; its result is ``(y, λa ⊸ t)``, and ``s'`` (and
    every name for it) occurs only in ``t``, at most once, as the backpropagator ``t``
    sends a cotangent to (``s' u``), not under a lambda.  So the backpropagator of one
    step's state is sent to by the next step's alone, once per run: a loop of such steps
    runs their backward passes as one loop (lamad/gradient.py, :func:`~lamad.gradient.chain`).
    ``None`` for any other step, whose loop makes a backpropagator per step as before."""
    ty = step.ty
    if ty.__class__ is not FunType or ty.dom not in _STATES:
        return None
    inner = step
    if ty.cod != ty.dom:  # fold's λacc. λe. …
        if step.body.__class__ is not Lam or ty.cod.__class__ is not FunType or ty.cod.cod != ty.dom:
            return None
        inner = step.body
    state: set[str] = set()  # names of the state, the pair
    links: set[str] = set()  # names of its backpropagator
    if not _takes_apart(step.param, state, links) or _binds(inner.param, state | links) and inner is not step:
        return None
    chain, result = let_chain(inner.body)
    for let in chain:
        p, bound = let.pattern, let.bound
        if _binds(p, state | links):
            return None
        if bound.__class__ is Var and bound.name in state:
            if not _takes_apart(p, state, links):
                return None
        elif bound.__class__ is Var and bound.name in links and p.__class__ is PVar:
            links.add(p.name)
        elif _mentions(bound, state | links):
            return None
    if result.__class__ is not Tuple or len(result.items) != 2:
        return None
    value, backprop = result.items
    if not _is_backpropagator(backprop) or _mentions(value, state | links):
        return None
    if sum(1 for t in subterms(inner.body) if t is backprop) != 1:  # the node compiled apart (lamad/eval.py)
        return None
    return backprop if _sends_once(backprop, state | links, links) else None


def _takes_apart(p: Pattern, state: set[str], links: set[str]) -> bool:
    """Record the names a pattern matched against the state gives it (a name for the pair,
    or the names of its parts); False for a pattern that is neither."""
    if p.__class__ is PVar:
        state.add(p.name)
        return True
    if p.__class__ is not PTuple or len(p.items) != 2:
        return False
    if p.items[1].__class__ is PVar:
        links.add(p.items[1].name)
    return True


def _is_backpropagator(t: Term) -> bool:
    """A linear function into ``d`` of a variable that sends something somewhere (``λa ⊸ 0``
    compiles to the constant backpropagator, lamad/eval.py)."""
    return t.__class__ is LinLam and isinstance(t.ty, LinType) and t.ty.cod == GRAD and \
        t.param.__class__ is PVar and t.body.__class__ is not DZero


def _binds(p: Pattern, names: set[str]) -> bool:
    return any(name in names for name in pattern_names(p))


def _mentions(t: Term, names: set[str]) -> bool:
    """Whether ``t`` mentions or binds one of ``names``."""
    return not names.isdisjoint(term_names(t))


def _sends_once(backprop: LinLam, names: set[str], links: set[str]) -> bool:
    """Whether the body of ``backprop`` mentions ``names`` only as one send ``s' u`` (``s'``
    in ``links``), outside any lambda, and binds none of them."""
    sends = 0
    stack: list[Term] = [backprop]
    while stack:
        node = stack.pop()
        kind = node.__class__
        if kind is App and node.fn.__class__ is Var and node.fn.name in links and node.ty == GRAD:
            sends += 1
            stack.append(node.arg)
            continue
        if kind is Var and node.name in names:
            return False
        if kind is Lam or kind is LinLam or kind is Let:
            if _binds(node.param if kind is not Let else node.pattern, names):
                return False
            if kind is not Let and node is not backprop and _mentions(node, names):
                return False
        stack += children(node)
    return sends <= 1
