"""The types of AD (docs/differentiation.md): what ←D and →D make of a type, cotangent
types, and the types of terms that several transforms went through (nesting)."""

from __future__ import annotations

from functools import lru_cache

from lamad.syntax import (
    BOOL, BOOL_TENSOR, INT, INT_TENSOR, PRODUCTS, REAL, STRING, TENSOR, UNIT, FunType, LinType, ListType, TupleType,
    TVar, Type, map_type, perp, with_items,
)


@lru_cache(maxsize=None)
def backprop_type(t: Type) -> Type:
    """←D(A): ``Real ↦ Real × Real⊥``, ``Tensor ↦ Tensor × Tensor⊥``, structural elsewhere
    (a record's fields are transformed, its field names kept),
    ``←D(A ⊸ B) = ←D(A) ⊸ ←D(B)`` and ``←D(d) = d`` (see lamad/transform.py)."""
    return map_type(t, lambda u: TupleType((u, perp(u))) if u in (REAL, TENSOR) else _known(u, "←D"))


def cotangent_type(t: Type, marked: bool = False) -> Type:
    """ct(A): the type of gradients with respect to a value of type ``A``.  For
    the AD operators marked by a transform (``grad'f``), ``A`` is a transformed type
    whose pairs may hold backpropagators: those are kept, so that ``ct(D(A)) = D(ct(A))``."""
    if t in (REAL, TENSOR):
        return t
    if t in (INT, BOOL, UNIT, STRING, INT_TENSOR, BOOL_TENSOR):
        return UNIT
    if isinstance(t, PRODUCTS):  # a record's is the record of its fields' cotangent types
        return with_items(t, (cotangent_type(i, marked) for i in t.items))
    if isinstance(t, ListType):
        return ListType(cotangent_type(t.elem, marked))
    if marked and isinstance(t, LinType):
        return t
    if isinstance(t, FunType):
        raise ValueError(f"it has a function type, {t}, and functions have no gradient")
    if isinstance(t, TVar):
        raise ValueError("its type is not known here; annotate the parameter")
    raise ValueError(f"{t} has no cotangent type")


@lru_cache(maxsize=None)
def forward_type(t: Type) -> Type:
    """→D(A): ``Real ↦ Real × Real``, ``Tensor ↦ Tensor × Tensor``, structural elsewhere,
    ``→D(A ⊸ B) = →D(A) ⊸ →D(B)`` and ``→D(d) = d`` (see lamad/transform.py)."""
    return map_type(t, lambda u: TupleType((u, u)) if u in (REAL, TENSOR) else _known(u, "→D"))


def _known(t: Type, transform: str) -> None:
    """Nothing, for a type the transform is defined on; an error for a type variable."""
    if isinstance(t, TVar):
        raise ValueError(f"{transform} is not defined on a type that is not known")


@lru_cache(maxsize=None)
def has_leaves(t: Type) -> bool:
    """Whether values of type ``t`` carry reals (so that the transforms change the type)."""
    return forward_type(t) != t


def _type_map(mark: str):
    return backprop_type if mark == "r" else forward_type


def marked_type(t: Type, marks: str) -> Type:
    """``t`` through the transforms ``marks`` names, innermost first (``"rf"`` is →D(←D(t)))."""
    for mark in marks:
        t = _type_map(mark)(t)
    return t


def unmarked_type(t: Type, marks: str) -> Type:
    """The type that :func:`marked_type` takes to ``t``: the transforms are injective, and
    undone by finding the images of ``Real`` and ``Tensor``."""
    for mark in reversed(marks):
        t = _unmark(t, _type_map(mark))
    return t


def _unmark(t: Type, type_of) -> Type:
    images = {type_of(base): base for base in (REAL, TENSOR)}
    return map_type(t, images.get)
