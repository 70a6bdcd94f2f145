"""Derivative rules, written in lamad, resolved once into terms that hold primitives
(:mod:`lamad.instances` instantiates them).

A rule's text is parsed, and every name in it that is not a placeholder (``x1``, ``y``,
``a``, ``dx1`` …) or bound by the rule itself is looked up among the primitives, public
or not, and nothing else: an application of a primitive becomes a saturated
:class:`~lamad.syntax.Prim` (eta-expanded when partial), and an unknown name fails
here, when lamad is imported.  A resolved rule therefore refers to no variable of the
program it is instantiated in, and no user binding can capture a name in it.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from lamad.parser import parse_term
from lamad.prims.base import PRIMITIVES, Primitive
from lamad.syntax import App, Lam, Let, LinLam, Pattern, Prim, PVar, Term, Var, children, map_children, pattern_names


class RuleError(Exception):
    """A rule that does not resolve: a bug in a primitive's record."""


def resolve(text: str, placeholders: frozenset[str] = frozenset(), where: str = "") -> Term:
    """The rule ``text`` with its primitives resolved (see the module docstring)."""
    fresh = (f"eta{i}" for i in itertools.count(1))
    return _resolve(parse_term(text), set(placeholders), text, where, fresh)


def _resolve(t: Term, bound: set[str], text: str, where: str, fresh) -> Term:
    if isinstance(t, (Var, App)):
        head, args = t, []
        while isinstance(head, App):
            args.append(head.arg)
            head = head.fn
        args.reverse()
        args = [_resolve(a, bound, text, where, fresh) for a in args]
        if isinstance(head, Var) and head.name not in bound:
            prim = PRIMITIVES.get(head.name)
            if prim is None or prim.operator is not None:
                raise RuleError(f"{where}: the rule {text!r} uses '{head.name}', which is neither one of its "
                                "variables nor a primitive")
            result = _saturate(prim, args[:prim.arity], fresh)
            args = args[prim.arity:]
        else:
            result = _resolve(head, bound, text, where, fresh) if not isinstance(head, Var) else head
        for a in args:
            result = App(result, a)
        return result
    if isinstance(t, (Lam, LinLam)):
        return replace(t, body=_resolve(t.body, bound | set(pattern_names(t.param)), text, where, fresh))
    if isinstance(t, Let):
        return replace(t, bound=_resolve(t.bound, bound, text, where, fresh),
                       body=_resolve(t.body, bound | set(pattern_names(t.pattern)), text, where, fresh))
    return map_children(t, lambda c: _resolve(c, bound, text, where, fresh))


def _saturate(prim: Primitive, args: list[Term], fresh) -> Term:
    """``prim args``, eta-expanded to ``λe1 … en. prim args e1 … en`` when partial."""
    params = [next(fresh) for _ in range(prim.arity - len(args))]
    term: Term = Prim(prim.name, tuple(args) + tuple(Var(p) for p in params))
    for p in reversed(params):
        term = Lam(PVar(p), term)
    return term


def binders(t: Term) -> list[str]:
    """The names a resolved rule binds, in order of first binding."""
    out: dict[str, None] = {}
    stack = [t]
    while stack:
        node = stack.pop()
        for p in (getattr(node, "param", None), getattr(node, "pattern", None)):
            if isinstance(p, Pattern):
                out.update(dict.fromkeys(pattern_names(p)))
        stack.extend(reversed(list(children(node))))
    return list(out)


def resolve_all() -> None:
    """Resolve the rules of every primitive, once: ``jvp_terms``, ``vjp_terms`` and
    ``derived_terms``."""
    for prim in PRIMITIVES.values():
        k = prim.arity
        args = {f"x{i + 1}" for i in range(k)}
        if prim.derivative == "special":
            jvp_names = vjp_names = frozenset(args)
        else:
            jvp_names = frozenset(args | {f"dx{i + 1}" for i in range(k)} | {"y"})
            vjp_names = frozenset(args | {"y", "a"})
        jvp = tuple(None if r is None else resolve(r, jvp_names, f"{prim.name} (jvp)") for r in prim.jvp)
        vjp = tuple(None if r is None else resolve(r, vjp_names, f"{prim.name} (vjp)") for r in prim.vjp)
        derived = (prim.derived,) if isinstance(prim.derived, str) else prim.derived or ()
        object.__setattr__(prim, "jvp_terms", jvp)
        object.__setattr__(prim, "vjp_terms", vjp)
        object.__setattr__(prim, "derived_terms", tuple(resolve(r, where=f"{prim.name}") for r in derived))
