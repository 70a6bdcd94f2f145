"""Backward passes fused at compile time (docs/language.md, Evaluation): of ←D of a small
function at once, of a big one for its second tier, which its gradient's second call
compiles (lamad.eval._LamSource).

←D makes one backpropagator per primitive application, and forcing
(lamad/gradient.py) runs them one by one, each on the sum of the cotangents sent
to it.  In a chain of ``let``s — the body of ←D of a straight-line lambda — the
backpropagators a backpropagator of the chain sends to are known when the code is
compiled, so that forcing can be done there instead: :func:`fuse_backward` runs the
backpropagators of a chain symbolically inside the one that sends to them, latest
first, each once, on the sum of all the cotangents sent to it — the paper's linear
factoring ``x' u + x' v → x' (u + v)``, as the simplifier's backward pass does
(lamad/simplify.py) — so that ←D of ``λx. sin x * x + x`` makes one backpropagator
per call, whose body is the straight-line backward code, instead of three.  Values,
and the order in which every backpropagator's own cotangent is summed before it
runs, are those of the unfused program; only when the factoring happens changes.

A backpropagator ``b`` of a chain is fused into the one, ``o``, that owns it when
every occurrence of ``b`` is a summand ``b t`` of the result of ``o``'s body or of
the body of another backpropagator ``o`` owns (so that it runs exactly when ``o``
runs, and once), and its cotangents are reals or tensors.  A backpropagator used in any other
way — returned, captured by a closure, sent to from two owners — stays one, and owns
those fused into it in turn.  At most :data:`FUSED_MOST` are fused into one, which
keeps the code of a long chain's backward pass in functions of a bounded size.
"""

from __future__ import annotations

from itertools import count
from typing import Iterable, Iterator

from lamad.syntax import (
    GRAD, REAL, TENSOR, App, DZero, Lam, Let, LinLam, LinType, Lit, Pattern, Prim, PTuple, PVar, Term, Tuple, Var,
    children, cotangent_sum, factored, free_variables, let_chain, lets, map_children, pattern_names, rename_free,
    summands, update,
)

FUSED_MOST = 32
"""How many backpropagators are fused into one at most."""

_FUSED_DOMAINS = (REAL, TENSOR)
"""The cotangents of the backpropagators fused: reals and tensors."""

Binding = tuple[Pattern, Term]


def fuse_backward(term: Term, free: Iterable[str] | None = None) -> Term:
    """``term`` (a term ←D made) with the backpropagators of its chains of ``let``s fused
    into those that send to them (see the module docstring); ``free``, the names free in
    ``term``, if they are known."""
    return _Fuser(set(free_variables(term) if free is None else free)).term(term)


def _is_backpropagator(t: Term) -> bool:
    """A linear function into ``d`` of a variable."""
    return t.__class__ is LinLam and isinstance(t.ty, LinType) and t.ty.cod == GRAD and t.param.__class__ is PVar


def _summands(t: Term) -> Iterator[Term]:
    """The summands of a gradient value ``t``, zeros left out."""
    return (s for s in summands(t) if s.__class__ is not DZero)


def _sent(s: Term) -> str | None:
    """The variable a summand ``x' t`` sends its cotangent to; ``None`` for another summand."""
    return s.fn.name if s.__class__ is App and s.fn.__class__ is Var and s.ty == GRAD else None


def _atoms(terms: tuple[Term, ...]) -> bool:
    return all(t.__class__ is Var or t.__class__ is Lit for t in terms)


def _mentioned(t: Term) -> Iterator[str]:
    """The names of the variables that occur in ``t``."""
    stack = [t]
    while stack:
        node = stack.pop()
        kind = node.__class__
        if kind is Var:
            yield node.name
        elif kind is Prim or kind is Tuple:
            stack += node.args if kind is Prim else node.items
        elif kind is not Lit and kind is not DZero:
            stack += children(node)


class _Fuser:
    """One run of :func:`fuse_backward`: fresh names, and the chains it rewrites."""

    def __init__(self, free: set[str]) -> None:
        self.numbers = count(1)
        self.fusions = 0  # chains whose backpropagators were fused so far
        self.taken = free
        """The names a binder takes only if renamed apart: those free in the term, the
        parameters of the lambdas around the chains and the binders of their chains (more
        than need be, never fewer: renaming a binder apart is always sound)."""

    def fresh(self, name: str, taken: set[str]) -> str:
        """A name like ``name`` that is not in ``taken`` (and then is)."""
        stem = name.replace("'", "_")
        while True:
            new = f"{stem}_f{next(self.numbers)}"
            if new not in taken:
                taken.add(new)
                return new

    def pattern(self, p: Pattern, renamed: dict[str, str], taken: set[str]) -> Pattern:
        """``p`` with each of its variables in ``taken`` renamed apart (recorded in
        ``renamed``), and its variables added to ``taken``."""
        if p.__class__ is PVar:
            if p.name in taken:
                renamed[p.name] = self.fresh(p.name, taken)
                return update(p, name=renamed[p.name])
            taken.add(p.name)
            return p
        if not hasattr(p, "items"):  # a wildcard
            return p
        if all(i.__class__ is PVar and i.name not in taken for i in p.items):  # ←D's (x, x'), most often
            taken.update([i.name for i in p.items])
            return p
        return update(p, items=tuple([self.pattern(i, renamed, taken) for i in p.items]))

    def term(self, t: Term) -> Term:
        """Every chain of ``t`` fused; a backpropagator's own body is left as it is."""
        kind = t.__class__
        if kind is Let:
            return _Chain(self, t).fused()
        if kind is LinLam or kind is Var or kind is Lit or kind is DZero or kind is Prim and _atoms(t.args):
            return t
        if kind is Lam:
            self.taken.update(pattern_names(t.param))
        return map_children(t, self.term)


class _Chain:
    """A chain of ``let``s, flattened — ``let p = (let q = u in v) in t`` is ``let q = u;
    p = v in t`` and ``let (x, y) = (u, v)`` is ``let x = u; y = v`` — with its binders
    renamed where that would capture a variable, and what its backpropagators are."""

    def __init__(self, fuser: _Fuser, t: Let):
        self.fuser, self.original = fuser, t
        self.taken = fuser.taken
        self.bindings: list[Binding] = []
        self.tuples: dict[str, tuple[Term, ...]] = {}  # a variable bound to a tuple of atoms → them
        self.alias: dict[str, str] = {}  # a variable bound to a variable → that one
        self.taken_apart: dict[str, PTuple] = {}  # a variable → the tuple pattern it was first matched with
        self.nested = fuser.fusions
        self.body = self.flatten(t, {})  # the chains inside its terms are fused, which :attr:`_Fuser.fusions` counts

    # ----------------------------------------------------------------- flattening

    def flatten(self, t: Term, renamed: dict[str, str]) -> Term:
        """Append the bindings of the chain ``t`` (renamed by ``renamed``, which its own
        renamings extend in its scope only) and return its body."""
        chain, body = let_chain(t)
        renamed = dict(renamed)
        taken, term, pattern = self.taken, self.fuser.term, self.fuser.pattern
        for let in chain:
            bound, p = let.bound, let.pattern
            kind = bound.__class__
            if kind is Let:
                bound = self.flatten(bound, renamed)
            elif renamed or not (kind is Var or kind is Prim and _atoms(bound.args)):
                bound = term(rename_free(bound, renamed))
            if p.__class__ is PVar and p.name not in taken:
                taken.add(p.name)
            else:
                p = pattern(p, renamed, taken)
            self.bind(p, bound)
        return term(rename_free(body, renamed))

    def bind(self, p: Pattern, bound: Term) -> None:
        """``let p = bound``, a tuple bound part by part."""
        pattern, kind = p.__class__, bound.__class__
        if pattern is PVar:
            if kind is Var:
                self.alias[p.name] = self.alias.get(bound.name, bound.name)
            elif kind is Tuple:
                atoms = tuple([self.atom(p.name, part) for part in bound.items])
                self.tuples[p.name] = atoms
                bound = update(bound, items=atoms)
        elif pattern is PTuple:
            if kind is Var:
                parts = self.tuples.get(self.alias.get(bound.name, bound.name))
            else:
                parts = bound.items if kind is Tuple else None
            if parts is not None and len(parts) == len(p.items):
                for item, part in zip(p.items, parts):
                    self.bind(item, part)
                return
            if kind is Var and self.again(p, bound.name):
                return
        self.bindings.append((p, bound))

    def again(self, p: PTuple, name: str) -> bool:
        """``let (x, x') = v`` after ``let (y, y') = v``: ``x`` and ``x'`` are names for ``y`` and
        ``y'`` (←D takes a pair apart once per use of its variable, and the backpropagators
        of the parts are then known to be one).  False the first time."""
        first = self.taken_apart.setdefault(name, p)
        if first is p or any(i.__class__ is PVar and j.__class__ is not PVar for i, j in zip(p.items, first.items)):
            return False
        for item, earlier in zip(p.items, first.items):
            if item.__class__ is PVar:
                self.bind(item, Var(earlier.name, ty=earlier.annot))
        return True

    def atom(self, name: str, t: Term) -> Term:
        """``t`` as a variable or a literal: bound to a fresh variable if it is neither."""
        if t.__class__ is Var or t.__class__ is Lit:
            return t
        part = PVar(self.fuser.fresh(name, self.taken))
        self.bind(part, t)
        return Var(part.name, ty=t.ty, span=t.span)

    # ----------------------------------------------------------------- who owns whom

    def fused(self) -> Term:
        """The chain with its backpropagators fused; the chain as it was if none is here or
        in the chains inside it."""
        self.backprops = {p.name: i for i, (p, b) in enumerate(self.bindings)
                          if p.__class__ is PVar and _is_backpropagator(b)}
        self.others: set[str] = set()  # used other than sent to
        self.senders: dict[str, set] = {}  # backpropagator → the bodies that send to it
        targets = self.analyse() if self.backprops else {}
        owner = self.owners()
        if not any(owner[name] != name for name in self.backprops):
            return lets(self.bindings, self.body) if self.nested != self.fuser.fusions else self.original
        self.fuser.fusions += 1
        owners = {o for b, o in owner.items() if o != b}
        runs = {o: self.run(o, self.linear(o, targets), owner) for o in owners}
        out = []
        maybe = self.backprops.keys() | self.alias.keys() | self.tuples.keys()
        for p, b in self.bindings:
            if p.__class__ is PVar and p.name in maybe and self.dropped(p.name, owner):
                continue
            if p.__class__ is PVar and p.name in runs:
                b = runs[p.name]
            out.append((p, b))
        body = self.body
        if body.__class__ is Tuple:
            items = tuple([runs.get(("result", i), item) for i, item in enumerate(body.items)])
            body = update(body, items=items)
        return lets(out, body)

    def resolve(self, name: str) -> str:
        return self.alias.get(name, name)

    def used(self, t: Term) -> None:
        """Every backpropagator of the chain that ``t`` mentions is used other than sent to
        (a variable of ``t`` bound inside it counts too: a backpropagator is then left
        unfused, never fused wrongly)."""
        kind = t.__class__
        if kind is Var:
            self.use(t.name)
        elif kind is not Lit:
            for name in _mentioned(t):
                self.use(name)

    def use(self, name: str) -> None:
        name = self.alias.get(name, name)
        if name in self.backprops:
            self.others.add(name)
        for part in self.tuples.get(name, ()):
            if part.__class__ is Var:
                self.use(part.name)

    def analyse(self) -> dict:
        """Who sends to each backpropagator (:attr:`senders`), and which are used other
        than sent to (:attr:`others`); returns the backpropagators of the chain's result
        (a tuple's items, by ``("result", i)``)."""
        for p, b in self.bindings:
            if p.__class__ is PVar and p.name in self.backprops:
                self.sends(p.name, b)
            elif not (p.__class__ is PVar and (p.name in self.alias or p.name in self.tuples)):
                self.used(b)
        targets = {}
        items = self.body.items if self.body.__class__ is Tuple else (self.body,)
        for i, item in enumerate(items):
            if self.body.__class__ is Tuple and _is_backpropagator(item):
                targets["result", i] = item
                self.sends(("result", i), item)
            else:
                self.used(item)
        return targets

    def sends(self, sender, lin: LinLam) -> None:
        """The backpropagators of the chain that the result of ``lin``'s body sends to."""
        chain, result = let_chain(lin.body)
        local = {lin.param.name}
        for let in chain:
            local.update(pattern_names(let.pattern))
            self.used(let.bound)
        for s in _summands(result):
            target = _sent(s)
            if target is not None and target not in local and self.resolve(target) in self.backprops:
                self.senders.setdefault(self.resolve(target), set()).add(sender)
                self.used(s.arg)
            else:
                self.used(s)

    def owners(self) -> dict:
        """Each backpropagator's owner, latest first: the one owner of all that send to it,
        if it is only sent to and its cotangents are reals or tensors; itself otherwise."""
        owner: dict = {}
        size: dict = {}
        for name in sorted(self.backprops, key=self.backprops.__getitem__, reverse=True):
            senders = self.senders.get(name)
            lin = self.bindings[self.backprops[name]][1]
            owner[name] = name
            if name in self.others or not senders or lin.ty.dom not in _FUSED_DOMAINS:
                continue
            candidates = {owner.get(s, s) for s in senders}
            if len(candidates) == 1:
                (o,) = candidates
                if lin.body.__class__ is DZero:  # λa ⊸ 0: what is sent to it is not computed
                    owner[name] = o
                elif size.get(o, 0) < FUSED_MOST:
                    owner[name] = o
                    size[o] = size.get(o, 0) + 1
        return owner

    def dropped(self, name: str, owner: dict) -> bool:
        """Whether the binding of ``name`` goes: a fused backpropagator, a tuple with one in
        it (in one of its parts, at any depth: it is then only ever taken apart), or a
        name for either."""
        target = self.resolve(name)
        if target in self.tuples:
            return any(p.__class__ is Var and self.dropped(p.name, owner) for p in self.tuples[target])
        return owner.get(target, target) != target

    def linear(self, o, targets: dict) -> LinLam:
        return targets[o] if o in targets else self.bindings[self.backprops[o]][1]

    # ----------------------------------------------------------------- running them

    def run(self, o, lin: LinLam, owner: dict) -> LinLam:
        """``lin``, the backpropagator ``o``, with those it owns run inside it, latest
        first, each once on the sum of the cotangents sent to it; what they send elsewhere
        is its result (:meth:`sent_early`)."""
        param, steps, result = self.opened(lin)
        pending: dict[str, list[Term]] = {}
        rest: list[tuple[Term, int]] = []  # each summand sent elsewhere, and the step after which it is known

        def send(result: Term) -> None:
            for s in _summands(result):
                target = _sent(s)
                name = self.resolve(target) if target is not None else None
                if name is not None and owner.get(name) == o != name:
                    if self.bindings[self.backprops[name]][1].body.__class__ is not DZero:
                        pending.setdefault(name, []).append(s.arg)
                else:
                    rest.append((s, len(steps)))

        send(result)
        while pending:
            name = max(pending, key=self.backprops.__getitem__)
            total = cotangent_sum(pending.pop(name))
            inner, inner_steps, inner_result = self.opened(self.bindings[self.backprops[name]][1])
            steps.append((inner, total))
            steps += inner_steps
            send(inner_result)
        return update(lin, param=param, body=lets(*self.sent_early(steps, rest)))

    def sent_early(self, steps: list[Binding], rest: list[tuple[Term, int]]) -> tuple[list[Binding], Term]:
        """The steps of a fused body and its result, the gradient value of what it sends
        to backpropagators outside it (``rest``): the cotangents sent to one of them are
        summed first (linear factoring), and one sent alone is sent as soon as it is known,
        bound to a variable of the body — so that the tensors it is computed from (``h`` and
        ``∂z`` of ``∂W = hᵀ ∂z``) are let go there, not held to the end of the body; the
        cotangent of a constant is still never computed (lamad/eval.py)."""
        count: dict[str, int] = {}
        for s, _ in rest:
            target = _sent(s)
            if target is not None:
                count[self.resolve(target)] = count.get(self.resolve(target), 0) + 1
        steps, result = list(steps), []
        for s, after in reversed(rest):
            target = _sent(s)
            if target is not None and count[self.resolve(target)] == 1:
                sent = PVar(self.fuser.fresh("sent", self.taken), annot=GRAD)
                steps.insert(after, (sent, s))
                s = Var(sent.name, ty=GRAD, span=s.span)
            result.append(s)
        return steps, factored(result[::-1], self.resolve)

    def opened(self, lin: LinLam) -> tuple[Pattern, list[Binding], Term]:
        """``lin``'s parameter, the bindings of its body and its result, each binder renamed
        that another binder took or that would capture a variable of the chain."""
        renamed: dict[str, str] = {}
        param = self.fuser.pattern(lin.param, renamed, self.taken)
        chain, result = let_chain(lin.body)
        steps = []
        for let in chain:
            bound = rename_free(let.bound, renamed)
            steps.append((self.fuser.pattern(let.pattern, renamed, self.taken), bound))
        return param, steps, rename_free(result, renamed)

