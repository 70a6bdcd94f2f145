"""The AD transforms type every term they make (lamad/instances.py), so that their output
is never inferred again: the types they give are the checker's, at every node, for the
examples, for random programs, and two transforms deep (nesting) — exactly on the
examples, and on random programs up to ``Real ≤ Tensor`` (an ascription ``(x : Tensor)``
of a Real variable types its node as the Tensor it is used as) and up to what the checker
leaves undetermined and defaults to ``Unit`` (``[] : List Real`` transformed is a list of
pairs; checked again from scratch, nothing says what its elements are)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import lamad
from lamad.adtypes import backprop_type, forward_type
from lamad.forward import forward
from lamad.reverse import backprop
from lamad.syntax import (
    PRODUCTS, REAL, TENSOR, UNIT, FunType, LinType, ListType, Term, Type, alpha_key, children, free_variables,
    same_shape, with_items,
)
from lamad.types import infer_term
from programs import programs

ROOT = Path(__file__).resolve().parent.parent
TRANSFORMS = {"←D": (backprop, backprop_type), "→D": (forward, forward_type)}


def promoted(t: Type) -> Type:
    """``t`` with every Real a Tensor."""
    if t == REAL:
        return TENSOR
    if isinstance(t, PRODUCTS):  # tuples and records
        return with_items(t, (promoted(i) for i in t.items))
    if isinstance(t, ListType):
        return ListType(promoted(t.elem))
    if isinstance(t, (FunType, LinType)):
        return type(t)(promoted(t.dom), promoted(t.cod))
    return t


def compatible(made: Type, inferred: Type) -> bool:
    """Whether ``made`` is ``inferred`` up to Real ≤ Tensor, where ``inferred`` has ``Unit``
    for what the checker could not determine."""
    if inferred == UNIT or promoted(made) == promoted(inferred):
        return True
    if same_shape(made, inferred):  # tuples of one length, records of the same fields
        return all(compatible(m, i) for m, i in zip(made.items, inferred.items))
    if isinstance(made, ListType) and isinstance(inferred, ListType):
        return compatible(made.elem, inferred.elem)
    if type(made) is type(inferred) and isinstance(made, (FunType, LinType)):
        return compatible(made.dom, inferred.dom) and compatible(made.cod, inferred.cod)
    return False


def differences(made: Term, inferred: Term, out: list, exact: bool, path: tuple = ()) -> list:
    """The nodes at which two alpha-equivalent terms have different types."""
    if made.ty != inferred.ty and (exact or not compatible(made.ty, inferred.ty)):
        out.append((path, type(made).__name__, made.ty, inferred.ty, lamad.pretty(made)[:60]))
    for i, (a, b) in enumerate(zip(children(made), children(inferred))):
        differences(a, b, out, exact, path + (i,))
    return out


def check_typed(term: Term, marks: tuple[str, ...], exact: bool = True) -> None:
    """Transform ``term`` by ``marks`` (innermost first); the result's types are the checker's."""
    env = dict(free_variables(term))
    for mark in marks:
        transform, type_of = TRANSFORMS[mark]
        env = {n: type_of(t) for n, t in env.items()}
        ty = type_of(term.ty)
        term = transform(term)
        assert term.ty == ty
    inferred = infer_term(term, env)
    assert alpha_key(inferred) == alpha_key(term)
    assert differences(term, inferred, [], exact) == []


MARKS = [(m,) for m in TRANSFORMS] + list(itertools.product(TRANSFORMS, repeat=2))


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.lam")), ids=lambda p: p.name)
def test_transforms_of_the_examples_are_typed_as_the_checker_types_them(path):
    prog = lamad.load(path)
    for name, term in prog.typed.terms.items():
        for marks in MARKS:
            try:
                [TRANSFORMS[m][1](t) for t in free_variables(term).values() for m in marks]
            except ValueError:  # a definition of a type the transforms do not take
                continue
            check_typed(term, marks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_depth=3))
def test_transforms_of_random_programs_are_typed_as_the_checker_types_them(sample):
    prog = lamad.loads(sample.source)
    term = prog.typed.terms["f"]
    for marks in MARKS:
        check_typed(term, marks, exact=False)


def test_a_real_promoted_in_a_record_is_typed_up_to_promotion():
    """A reproducer: the field's Real stays a Real in the transforms, where the checker
    types it as the Tensor the record's annotation asks for (Real ≤ Tensor)."""
    prog = lamad.loads("def f (x : Tensor) : {w : Tensor} =\n    {w = (0.5)}\n")
    for marks in MARKS:
        check_typed(prog.typed.terms["f"], marks, exact=False)
