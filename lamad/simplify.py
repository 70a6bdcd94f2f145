"""Simplification of terms, above all of the derivative programs ←D produces
(docs/differentiation.md, "Reading derivative programs").

``simplify(term)`` returns an equivalent term, rewriting until nothing changes:

* administrative redexes: ``(λp. t) u``, ``let (x, y) = (u, v)`` and ``let {w = x} = {w = u}``
  become plain ``let``s, ``fst (u, v)`` becomes ``u`` and ``{w = u}.w`` becomes ``u``,
  variables bound to variables are substituted;
* let-flattening and let-floating: ``let x = (let y = u in v) in t`` becomes
  ``let y = u; x = v in t``, and ``let``s float out of tuples, records and arguments (never
  out of a lambda, which would change how often they run);
* *backward passes*: the backpropagators bound in a chain of ``let``s are run symbolically,
  latest first, each on the sum of all the cotangents sent to it — the paper's linear
  factoring ``x' u + x' v → x' (u + v)`` — so that the backward pass of a straight-line
  program becomes straight-line code with one step per backpropagator and nothing
  computed twice;
* algebra: ``0 + t``, ``1.0 * t``, ``--t`` and constant folding;
* common-subexpression elimination (up to renaming of bound variables; a field of a
  variable taken apart twice, ``let (x, x') = p.w`` and ``let (y, y') = p.w``, is taken
  apart once) and dead-code elimination;
* pattern refinement: a variable (or parameter) bound to a pair that is only ever taken
  apart is bound by a tuple pattern instead.

The rewrites go in rounds over the term, in two phases: the first shares what can be
shared (CSE comes before any value used once is substituted, which would hide what it
has in common with others); the second also substitutes the values used once and runs
the backward passes.  A round ends the phase when none of its rewrites may have made a
place where a rule applies that the round did not itself rewrite (each rewrite that may
have says so: a substitution that made a redex, a binding floated or split, a backward
pass run, …), so no round is spent confirming that nothing changes: on ←D of a
straight-line program, two rounds share and one runs the backward pass.  There are at
most ``_MAX_ROUNDS`` rounds.

A round costs time linear in the size of the term.  Its binders are first made
distinct if they are not (a user's name bound twice is renamed apart, and shown as
written again at the end where that captures nothing): then no substitution can
capture and a name stands for one binding.  One walk takes an *occurrence census* (for
every variable, how often it occurs, whether under a lambda, and how it is taken
apart), which the local rules consult instead of searching the rest of the chain, and
to which each of them reports the occurrences it drops, copies or moves; the
substitutions of a chain are recorded and made together in one pass at its end; and
refinement counts the uses of a chain's names in one walk, when one of them is taken
apart at all.

Terms are pure, so all of this preserves values (a dead binding that would have failed is
dropped, as in any optimiser).  Finally, the names ←D invented are replaced by short ones:
``z1, z2, …`` for intermediate values, ``b, c, …`` for the backward pass, ``a`` for the
cotangent; a pair bound to a user's name ``x`` becomes ``(x, x')``.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from lamad.prims import PRIMITIVES
from lamad.prims.arithmetic import INT_MAX
from lamad.syntax import (
    REAL, TENSOR, App, DAdd, DZero, Lam, Let, LinLam, Lit, Pattern, Prim, Proj, PRecord, PTuple, PVar, PWild,
    Record, Term, Tuple, TupleType, Var, alpha_key, children, cotangent_sum, factored, free_variables, let_chain,
    lets, map_children, pattern_names, summands, term_names, update,
)

_TYPED = frozenset(name for name, p in PRIMITIVES.items() if p.typing == "context")
"""The primitives whose type is not their arguments' but their context's (``load_params``):
two applications of one are alike only if their types are (``load_params "w.npz"`` may
read a 0-d array as a Real and as a Tensor)."""
_MAX_ROUNDS = 20

_HOLE: Term = Tuple(())
"""The body of a binding of a chain being rebuilt, until the chain's rest is known."""


def simplify(term: Term, keep: set[str] | None = None) -> Term:
    """An equivalent, smaller term (docs/differentiation.md, "Reading derivative
    programs").  Variables named in ``keep`` (default: the names in ``term`` that ←D did
    not invent) keep their names."""
    if keep is None:
        keep = {n for n in term_names(term) if not _invented(n)}
    s = _Simplifier(keep)
    term = s.fixpoint(term, backward=False)  # first share what can be shared,
    term = s.fixpoint(term, backward=True)   # then run the backward passes
    return _Renamer(keep, s.origin, term).term(term)


def _invented(name: str) -> bool:
    """Names ←D, →D and the checker make up: a letter or two and a number, maybe primed,
    or ``d`` and such a name for a tangent."""
    stem = name.rstrip("'")
    letters = stem.rstrip("0123456789")
    if letters != stem and letters in ("x", "y", "a", "b", "t", "n", "p", "k", "u", "xs", "xi", "i"):
        return True
    return stem.startswith("d") and stem == name and _invented(stem[1:])


# --------------------------------------------------------------------- helpers


def _map(t: Term, fn: Callable[[Term], Term]) -> Term:
    """``map_children(t, fn)``, but ``t`` itself when ``fn`` changed no child: a round
    that rewrites little then builds little."""
    cls = type(t)
    if cls is Prim:
        args = tuple([fn(a) for a in t.args])
        return t if all(a is b for a, b in zip(args, t.args)) else update(t, args=args)
    if cls is App:
        f, a = fn(t.fn), fn(t.arg)
        return t if f is t.fn and a is t.arg else update(t, fn=f, arg=a)
    if cls is DAdd:
        left, right = fn(t.left), fn(t.right)
        return t if left is t.left and right is t.right else update(t, left=left, right=right)
    if cls is Tuple:
        items = tuple([fn(i) for i in t.items])
        return t if all(a is b for a, b in zip(items, t.items)) else update(t, items=items)
    if cls is Lam or cls is LinLam:
        body = fn(t.body)
        return t if body is t.body else update(t, body=body)
    new = map_children(t, fn)
    return t if all(a is b for a, b in zip(children(new), children(t))) else new


def _summands(t: Term) -> Iterator[Term]:
    """The summands of a sum at type ``d`` (zeros dropped)."""
    return (s for s in summands(t) if not _is_zero(s))


def _is_zero(t: Term) -> bool:
    """The zero of ``d``, or a numeric literal zero."""
    return isinstance(t, DZero) or (isinstance(t, Lit) and not isinstance(t.value, bool) and t.value == 0)


def _is_one(t: Term) -> bool:
    return isinstance(t, Lit) and isinstance(t.value, float) and t.value == 1.0


def _atomic(t: Term) -> bool:
    """Terms small enough to substitute wherever their variable occurs: variables,
    literals and the zero backpropagator ``λa ⊸ 0``."""
    return isinstance(t, (Var, Lit)) or (isinstance(t, LinLam) and _is_zero(t.body))


def _binder_names(t: Term) -> Iterator[str]:
    """The names ``t`` itself binds (its parameter or pattern), none for other nodes."""
    if isinstance(t, (Lam, LinLam)):
        return pattern_names(t.param)
    if isinstance(t, Let):
        return pattern_names(t.pattern)
    return iter(())


class _Scan:
    """One walk over a term: every name it mentions or binds; whether its binders are
    distinct (every variable bound at most once, and no bound name also occurring free:
    then no substitution can capture and a name stands for one binding; the parameter of
    a zero backpropagator ``λa ⊸ 0``, copied wherever its variable was, may repeat if its
    name occurs nowhere); and, if so, for every variable how often it occurs, how many of
    those occurrences are under no lambda between them and the binder, how deep in
    lambdas its binder is, and how it is taken apart by ``let (p1, …, pn) = x``: how
    often, with which arities, and for each component the variable the first such
    pattern (in source order) binds it to."""

    def __init__(self, t: Term):
        count: dict[str, int] = {}
        shallow: dict[str, int] = {}
        depth: dict[str, int] = {}
        found: dict[str, tuple[int, set[int], list[str | None]]] = {}
        zero_params: set[str] = set()
        seen: set[str] = set()
        free: set[str] = set()
        open_: set[str] = set()  # the binders whose scope the walk is in
        repeated = False
        stack: list = [(t, 0)]
        pop, push, extend = stack.pop, stack.append, stack.extend
        while stack:
            node, d = pop()
            cls = type(node)
            if cls is Var:
                name = node.name
                seen.add(name)
                if name in open_:
                    count[name] = count.get(name, 0) + 1
                    if depth[name] == d:
                        shallow[name] = shallow.get(name, 0) + 1
                else:
                    free.add(name)
            elif cls is Prim:
                extend([(c, d) for c in reversed(node.args)])
            elif cls is App:
                push((node.arg, d))
                push((node.fn, d))
            elif cls is DAdd:
                push((node.right, d))
                push((node.left, d))
            elif cls is Let:
                pattern = node.pattern
                names = (pattern.name,) if type(pattern) is PVar else tuple(pattern_names(pattern))
                for name in names:
                    repeated = repeated or name in depth
                    depth[name] = d
                push((list(names), d))  # leave the scope
                push((node.body, d))
                push((names, d))  # enter it
                push((node.bound, d))
                if type(node.bound) is Var and type(pattern) is PTuple:
                    _note_destructuring(found, node.bound.name, pattern)
            elif cls is tuple:
                open_.update(node)
            elif cls is list:
                open_.difference_update(node)
            elif cls is Lam or cls is LinLam:
                names = tuple(pattern_names(node.param))
                if cls is LinLam and _is_zero(node.body):
                    zero_params.update(names)
                    continue
                for name in names:
                    repeated = repeated or name in depth
                    depth[name] = d + 1
                open_.update(names)
                push((list(names), d))
                push((node.body, d + 1))
            elif cls is Tuple:
                extend([(c, d) for c in reversed(node.items)])
            elif cls is not Lit:
                extend([(c, d) for c in reversed(list(children(node)))])
        self.names = seen | depth.keys() | zero_params
        self.distinct = not (repeated or zero_params & seen or free & depth.keys())
        self.count, self.shallow, self.depth, self.found = count, shallow, depth, found


def _note_destructuring(found: dict[str, tuple[int, set[int], list[str | None]]], name: str,
                        pattern: PTuple) -> None:
    """Count one ``let (p1, …, pn) = name``: how often ``name`` is taken apart, with which
    arities, and for each component the variable the first such pattern binds it to."""
    n, arities, given = found.get(name, (0, set(), []))
    items = pattern.items
    arities.add(len(items))
    given.extend([None] * (len(items) - len(given)))
    for i, item in enumerate(items):
        if given[i] is None and type(item) is PVar:
            given[i] = item.name
    found[name] = (n + 1, arities, given)


class _Census:
    """The occurrence census of a term whose binders are distinct (see :class:`_Scan`):
    for every variable, how often it occurs and how many of those occurrences are under
    no lambda between them and the variable's binder.  Computed in one pass per round;
    the rewrites keep it exact by reporting the occurrences they drop, copy or move
    (``depth`` is the number of lambdas around the place where a rewrite happens).  With
    it, the variables that may be taken apart by a ``let (p1, …, pn) = x`` (kept a
    superset through the round): refinement looks at no other."""

    def __init__(self, scan: _Scan):
        self.count, self.shallow, self.depth, self.found = scan.count, scan.shallow, scan.depth, scan.found
        self.taken_apart = set(scan.found)

    def destructured_only(self, name: str) -> bool:
        """Whether every occurrence of ``name`` is a ``let (p1, …, pn) = name`` (as at the
        start of the round; a rewrite that adds or drops one makes the answer no)."""
        return self.found.get(name, (0,))[0] == self.count.get(name, 0)

    def add(self, t: Term, depth: int, sign: int, skip: frozenset[str] = frozenset()) -> None:
        """Count the occurrences in ``t`` (at ``depth``) ``sign`` times more, but for ``skip``."""
        count, shallow, binder_depth = self.count, self.shallow, self.depth
        stack = [(t, depth)]
        while stack:
            node, d = stack.pop()
            if isinstance(node, Var):
                name = node.name
                if name not in skip:
                    count[name] = count.get(name, 0) + sign
                    if binder_depth.get(name) == d:
                        shallow[name] = shallow.get(name, 0) + sign
                continue
            inner = d + 1 if isinstance(node, (Lam, LinLam)) else d
            stack.extend((c, inner) for c in children(node))

    def occurrences(self, name: str) -> tuple[int, bool]:
        """How often ``name`` occurs, and for a single occurrence whether it is under a
        lambda (between it and the binder)."""
        count = self.count.get(name, 0)
        return count, count == 1 and self.shallow.get(name, 0) == 0

    def beta(self, lam: Lam, depth: int) -> None:
        """``(λp. u) v`` at ``depth`` becomes ``let p = v in u``: ``u`` and the binders in
        it move out from under the lambda."""
        inner = frozenset(_all_binders(lam.body))
        self.add(lam.body, depth + 1, -1, inner)
        for name in inner:
            if name in self.depth:  # not the parameters of λa ⊸ 0, which bind nothing
                self.depth[name] -= 1
        for name in pattern_names(lam.param):
            self.depth[name] = depth
        self.add(lam.body, depth, 1, inner)

    def substituted(self, name: str, value: Term, depth: int) -> None:
        """``value``, bound to ``name`` at ``depth``, replaces each occurrence of ``name``."""
        copies = self.count.get(name, 0)
        if isinstance(value, Var):  # one occurrence (the binding) becomes ``copies``
            if name in self.taken_apart:
                self.taken_apart.add(value.name)
            self.count[value.name] = self.count.get(value.name, 0) + copies - 1
            if self.depth.get(value.name) == depth:
                self.shallow[value.name] = self.shallow.get(value.name, 0) + self.shallow.get(name, 0) - 1
        elif _atomic(value) and copies != 1:  # the variables of λa ⊸ 0 are under its lambda
            self.add(value, depth + 1, copies - 1)
        self.count[name] = self.shallow[name] = 0

    def shared(self, renamed: dict[str, str], bound: Term) -> bool:
        """CSE dropped the binding of the names of ``renamed`` to ``bound`` and renamed each
        to the name it maps to, bound to the same term (to its component, for a pattern):
        the counts only (the rest of the round consults only them).  Whether a variable
        of ``bound`` now occurs at most once."""
        count = self.count
        for name, earlier in renamed.items():
            count[earlier] = count.get(earlier, 0) + count.pop(name, 0)
            if name in self.taken_apart:
                self.taken_apart.add(earlier)
        fewer = False
        stack = [bound]
        while stack:
            node = stack.pop()
            if type(node) is Var:
                count[node.name] = count.get(node.name, 0) - 1
                fewer = fewer or count[node.name] <= 1
            else:
                stack.extend(children(node))
        return fewer

    def renamed(self, old: str, new: str) -> None:
        """Every occurrence of ``old`` is now one of ``new``, bound at the same place."""
        self.count[new], self.shallow[new] = self.count.pop(old, 0), self.shallow.pop(old, 0)
        self.depth[new] = self.depth[old]
        if old in self.taken_apart:
            self.taken_apart.add(new)


def _all_binders(t: Term) -> Iterator[str]:
    """Every name bound anywhere in ``t``."""
    stack = [t]
    while stack:
        node = stack.pop()
        yield from _binder_names(node)
        stack.extend(children(node))


def _substitute_all(t: Term, values: dict[str, Term], rebuilt: Callable[[Term], None] | None = None) -> Term:
    """``t`` with each variable named in ``values`` replaced by its value, in one pass; the
    values themselves are substituted into first (a chain's later bindings may be bound to
    its earlier ones).  Binders are distinct, so nothing is captured or shadowed;
    ``rebuilt`` is told of every node rebuilt around a value (a binding: with its new
    bound)."""
    if not values:
        return t
    done: dict[str, Term] = {}

    def value(name: str) -> Term:
        if name not in done:
            done[name] = walk(values[name])
        return done[name]

    def walk(node: Term) -> Term:
        if type(node) is Var:
            return value(node.name) if node.name in values else node
        if type(node) is Lit:
            return node
        if isinstance(node, Let):
            chain, body = let_chain(node)
            out = []
            for let in chain:
                bound = walk(let.bound)
                out.append(let if bound is let.bound else update(let, bound=bound))
                if bound is not let.bound and rebuilt is not None:
                    rebuilt(out[-1])
            result = walk(body)
            for let in reversed(out):
                result = update(let, body=result)
            return result
        new = _map(node, walk)
        if new is not node and rebuilt is not None:
            rebuilt(new)
        return new

    return walk(t)


@dataclass
class _ChainState:
    """A chain of bindings being rewritten, latest first (:meth:`_Simplifier.let_in_chain`):
    the names its ``let x = …`` bindings not yet visited bind, the bindings rewritten
    (``Let.body`` unused), the substitutions to make, and the invented names to be
    renamed after the user's variables they are bound to."""

    unvisited: set[str]
    rest: list[Let] = field(default_factory=list)
    values: dict[str, Term] = field(default_factory=dict)
    adopted: dict[str, str] = field(default_factory=dict)


class _Simplifier:
    """The rounds of rewrites of :func:`simplify` (see the module docstring)."""

    def __init__(self, keep: set[str]):
        self.used: set[str] = set()  # every name of the term: fresh names are chosen outside
        self.keep = set(keep)
        self.origin: dict[str, str] = {}  # a user's variable renamed apart → its name
        self.counter = itertools.count(1)
        self.run_backward = False  # the phase: sharing, or the backward passes
        self.census: _Census | None = None  # this round's
        self.again = False  # whether this round may have left a rule to apply

    def fresh(self, base: str = "t", primes: str = "") -> str:
        """A name not in the term: ``base``, a number, then ``primes``."""
        while True:
            name = f"{base}{next(self.counter)}{primes}"
            if name not in self.used:
                self.used.add(name)
                return name

    def fixpoint(self, t: Term, backward: bool) -> Term:
        """Rounds until one changes nothing that could let a rule apply again."""
        self.run_backward = backward
        for _ in range(_MAX_ROUNDS):
            t = self.round(t)
            if not self.again:
                break
        return t

    def round(self, t: Term) -> Term:
        """One round: the local rules bottom-up, then the rules on whole chains; ``again``
        says afterwards whether a rewrite of the round may have made a place where a rule
        applies that the round did not rewrite.  The binders are first made distinct if
        they are not, for the census."""
        scan = _Scan(t)
        self.used |= scan.names
        if not scan.distinct:
            t = self.distinct_binders(t)
            scan = _Scan(t)
            assert scan.distinct
        self.census = _Census(scan)
        self.again = False
        return self.chains(self.local(t))

    def distinct_binders(self, t: Term) -> Term:
        """``t`` with its binders renamed apart: the first binder of a name (in source
        order) keeps it unless the name also occurs free, later ones get fresh names (a
        user's ``x`` becomes ``x_1``, and :class:`_Renamer` gives it back its name where
        that captures nothing).  The parameters of ``λa ⊸ 0``, which occur nowhere, may
        share a name with each other."""
        taken = set(free_variables(t))  # free names, and the names bound so far
        zero_only: set[str] = set()  # names bound so far only by parameters of λa ⊸ 0
        env: dict[str, str] = {}

        def name_apart(name: str, zero: bool, saved: list) -> str:
            new = name
            if name in taken and not (zero and name in zero_only):
                stem = name.rstrip("'")
                new = self.fresh_user(name) if name in self.keep else \
                    self.fresh(stem.rstrip("0123456789") or "t", name[len(stem):])
            elif zero:
                zero_only.add(name)
            taken.add(new)
            saved.append((name, env.get(name)))
            env[name] = new
            return new

        def pattern(p: Pattern, zero: bool, saved: list) -> Pattern:
            if isinstance(p, PVar):
                new = name_apart(p.name, zero, saved)
                return p if new == p.name else replace(p, name=new)
            if isinstance(p, (PTuple, PRecord)):
                return replace(p, items=tuple(pattern(i, zero, saved) for i in p.items))
            return p

        def leave(saved: list) -> None:
            for name, old in reversed(saved):
                if old is None:
                    del env[name]
                else:
                    env[name] = old

        def walk(node: Term) -> Term:
            if type(node) is Var:
                new = env.get(node.name, node.name)
                return node if new == node.name else update(node, name=new)
            if isinstance(node, Let):
                chain, body = let_chain(node)
                out, saved = [], []
                for let in chain:
                    bound = walk(let.bound)
                    out.append((pattern(let.pattern, False, saved), bound))
                result = lets(out, walk(body))
                leave(saved)
                return result
            if isinstance(node, (Lam, LinLam)):
                saved = []
                param = pattern(node.param, isinstance(node, LinLam) and _is_zero(node.body), saved)
                body = walk(node.body)
                leave(saved)
                return update(node, param=param, body=body)
            return _map(node, walk)

        return walk(t)

    def fresh_user(self, name: str) -> str:
        """A fresh name for a user's variable renamed apart: ``x_1``, ``x_2``, …"""
        for i in itertools.count(1):
            new = f"{name}_{i}"
            if new not in self.used:
                self.used.add(new)
                self.keep.add(new)
                self.origin[new] = self.origin.get(name, name)
                return new
        raise AssertionError("unreachable")  # pragma: no cover

    # -- bottom-up local rewrites ------------------------------------------------

    def local(self, t: Term, depth: int = 0) -> Term:
        """One bottom-up pass of the local rules (``depth``: the lambdas around ``t``)."""
        if type(t) is Var or type(t) is Lit:  # the leaves, most of the nodes: no rule applies
            return t
        if isinstance(t, Let):
            return self.local_chain(*let_chain(t), depth)
        inner = depth + 1 if isinstance(t, (Lam, LinLam)) else depth
        return self.rewrite(_map(t, lambda c: self.local(c, inner)), depth)

    def local_chain(self, chain: list[Let], body: Term, depth: int) -> Term:
        """The local rules on a chain of bindings, latest first, with the census: a
        binding's substitution is recorded and all of them are made at the end, in one
        pass over the chain (each binding sees the rest as it would be by then only
        through the census, which already counts the substitutions)."""
        state = _ChainState({let.pattern.name for let in chain if type(let.pattern) is PVar})
        result = self.local(body, depth)
        for let in reversed(chain):
            self.let_in_chain(update(let, bound=self.local(let.bound, depth)), state, depth)
        for let in state.rest:
            result = update(let, body=result)
        return _substitute_all(result, state.values, self.substituted)

    def substituted(self, t: Term) -> None:
        """A substitution rebuilt ``t`` around a value: a rule may now apply to it."""
        if _redex(t):
            self.again = True

    def rewrite(self, t: Term, depth: int = 0) -> Term:
        if isinstance(t, App) and isinstance(t.fn, Lam):  # beta: (λp. u) v → let p = v in u
            self.census.beta(t.fn, depth)
            self.again = True  # the binding p = v is left to the next round
            return Let(t.fn.param, t.arg, t.fn.body, span=t.span)
        if isinstance(t, App) and isinstance(t.fn, LinLam) and _is_zero(t.fn.body):
            self.dropped(t.arg, depth)
            return t.fn.body  # (λa ⊸ 0) u → 0
        if isinstance(t, DAdd):  # 0 + t → t
            return t.right if _is_zero(t.left) else t.left if _is_zero(t.right) else t
        if isinstance(t, Prim):
            result, dropped = _algebra(t)
            for d in dropped:
                self.dropped(d, depth)
            if result is not t and type(result) is Prim and _algebra(result)[0] is not result:
                self.again = True  # 0 - (-u) → -(-u), left to the next round
            return result
        if isinstance(t, Proj) and isinstance(t.term, Record):  # {w = u, b = v}.w → u (terms are pure)
            keep = t.term.fields.index(t.field)
            for i, item in enumerate(t.term.items):
                if i != keep:
                    self.dropped(item, depth)
            return t.term.items[keep]
        return t

    def dropped(self, t: Term, depth: int) -> None:
        """A rewrite dropped ``t``: the census forgets its occurrences."""
        self.census.add(t, depth, -1)

    def let_in_chain(self, t: Let, state: _ChainState, depth: int) -> None:
        """The rules on a binding ``t`` of a chain whose later bindings have been rewritten
        (``state``): let-flattening, ``let (p1, …, pn) = (u1, …, un)`` taken apart, dead
        code dropped, atomic values (and in the backward phase, values used once, under no
        lambda) substituted.  Pushes what ``t`` becomes onto ``state.rest`` and records the
        substitutions in ``state.values``; the bindings it makes go through the rules at
        once.  Binders are distinct, so nothing is captured."""
        p, bound = t.pattern, t.bound
        census = self.census
        if isinstance(bound, Let):  # let-flattening; each binding then goes through the rules
            inner, inner_body = let_chain(bound)
            state.unvisited.update(let.pattern.name for let in inner if type(let.pattern) is PVar)
            self.let_in_chain(Let(p, inner_body, _HOLE, span=t.span), state, depth)
            for let in reversed(inner):
                self.let_in_chain(let, state, depth)
            return
        if isinstance(p, PTuple) and isinstance(bound, Tuple) and len(p.items) == len(bound.items):
            # binders are distinct: the items cannot mention the names the pattern binds
            for q, b in reversed(self.tangent_names(list(zip(p.items, bound.items)), state.values)):
                self.let_in_chain(Let(q, b, _HOLE), state, depth)
            return
        if isinstance(p, PRecord) and isinstance(bound, Record):  # let {w = q} = {w = u}: by field
            for q, b in reversed(_fieldwise(p, bound)):
                self.let_in_chain(Let(q, b, _HOLE), state, depth)
            return
        if _ignored(p):
            self.dropped(bound, depth)
            return
        if isinstance(p, PVar):
            state.unvisited.discard(p.name)
            if p.name in state.adopted:  # see below: this binding takes the user's name
                p = replace(p, name=state.adopted.pop(p.name))
                t = update(t, pattern=p)
            count, under_lambda = census.occurrences(p.name)
            if count == 0:
                self.dropped(bound, depth)
                return  # dead code
            if type(bound) is Var and self.adopts(p.name, bound.name, state):
                return
            if _atomic(bound) or (self.run_backward and count == 1 and not under_lambda
                                  and not isinstance(bound, Lam)
                                  and not (p.name in self.keep and census.destructured_only(p.name))):
                # (a user's variable only taken apart is left for refine to name its parts x, x')
                census.substituted(p.name, bound, depth)
                state.values[p.name] = bound
                return
        elif type(bound) is Var:  # a destructuring, maybe new (flattened, or by substitution)
            census.taken_apart.add(bound.name)
        state.rest.append(t)

    def adopts(self, name: str, variable: str, state: _ChainState) -> bool:
        """``let name = variable``, ``name`` the user's and ``variable`` an invented name
        used only here and bound earlier in the chain: the binding is dropped and the
        earlier one renamed ``name`` (rather than every ``name`` becoming ``variable``)."""
        if name not in self.keep or variable in self.keep or variable not in state.unvisited \
                or self.census.count.get(variable) != 1:
            return False
        state.adopted[variable] = name
        self.census.count[variable] = self.census.shallow[variable] = 0
        return True

    def tangent_names(self, bindings: list[tuple[Pattern, Term]], renames: dict[str, Term]) -> list:
        """In ``let x = y; dx = t``, about to become ``let dx = t`` with ``y`` for ``x``, the
        tangent is renamed ``dy`` so that it stays named after its value: the renaming is
        recorded in ``renames`` (every binder is in ``used``: a new name captures nothing)."""
        values = {p.name: b.name for p, b in bindings if isinstance(p, PVar) and isinstance(b, Var)}
        out = []
        for p, b in bindings:
            if isinstance(p, PVar) and p.name[:1] == "d" and p.name[1:] in values and _invented(p.name):
                new = "d" + values[p.name[1:]]
                if new not in self.used:
                    self.used.add(new)
                    renames[p.name] = Var(new)
                    self.census.renamed(p.name, new)
                    p = replace(p, name=new)
            out.append((p, b))
        return out

    # -- whole let chains ---------------------------------------------------------

    def chains(self, t: Term) -> Term:
        """Rewrites that need a whole chain of bindings: floating, CSE, backward passes (and
        the backpropagators they leave dead dropped), pattern refinement."""
        if type(t) is Var or type(t) is Lit:
            return t
        if isinstance(t, Let):
            chain, body = let_chain(t)
            bindings = [(let.pattern, self.chains(let.bound)) for let in chain]
            body = self.chains(body)
            bindings, body = self.float_out(bindings, body)
            bindings, body = self.cse(bindings, body)
            names = {n for p, _ in bindings for n in pattern_names(p)}
            counted = None  # how the chain's names are used, when known
            if self.run_backward:
                after = self.backward(bindings, body)
                if after is not body:
                    body, counted = after, _destructurings(lets(bindings, after), names)
                    bindings = self.drop_dead(bindings, body, names, *counted)
            if counted is None:
                if not names & self.census.taken_apart:
                    return lets(bindings, body)  # no variable of the chain is taken apart: none to refine
                counted = _destructurings(lets(bindings, body), names)
            bindings, body = self.refine(bindings, body, *counted)
            return lets(bindings, body)
        if isinstance(t, (Lam, LinLam)):
            body = self.chains(t.body)
            param, body = self.refine_param(t.param, body)
            return update(t, param=param, body=body)
        if isinstance(t, (Tuple, Record, Prim, App)):
            t = _map(t, self.chains)
            floated, t = self.float_args(t)
            return lets(floated, t)
        return _map(t, self.chains)

    def float_args(self, t: Term) -> tuple[list[tuple[Pattern, Term]], Term]:
        """``(let x = u in v, w)`` → ``let x = u in (v, w)``: every component is evaluated
        anyway (call by value), and binders are distinct, so the floated bindings, which
        then scope over every component, capture nothing."""
        if isinstance(t, (Tuple, Record)):
            parts = list(t.items)
        elif isinstance(t, Prim):
            parts = list(t.args)
        elif isinstance(t, App):
            parts = [t.fn, t.arg]
        else:
            return [], t
        if not any(type(part) is Let for part in parts):
            return [], t
        chains = [let_chain(part) for part in parts]
        floated = [(let.pattern, let.bound) for chain, _ in chains for let in chain]
        self.again = True  # the floated bindings go through the local rules next round
        bodies = [body for _, body in chains]
        if isinstance(t, (Tuple, Record)):
            return floated, update(t, items=tuple(bodies))
        if isinstance(t, Prim):
            return floated, update(t, args=tuple(bodies))
        return floated, update(t, fn=bodies[0], arg=bodies[1])

    def float_out(self, bindings, body):
        """Flatten the chain: bindings whose bound term is itself a chain are spliced in
        (binders are distinct: no name of the chain occurs free)."""
        out: list[tuple[Pattern, Term]] = []
        for p, b in bindings:
            if isinstance(b, Let):
                chain, inner = let_chain(b)
                out.extend((let.pattern, let.bound) for let in chain)
                out.append((p, inner))
                self.again = True  # the spliced bindings go through the local rules next round
                continue
            out.append((p, b))
        return out, body

    def cse(self, bindings, body):
        """A binding whose term was bound before (up to renaming) reuses the earlier name.
        Backpropagators only if their cotangents are reals: two alike tensor ones
        (``λa ⊸ x' (sum a)``) may receive cotangents of different shapes, which linear
        factoring must then never add together.  Two alike terms of different types are
        not shared (``real 1`` as a Real and, promoted, as a Tensor): the name would
        carry one of the types to the other's uses."""
        seen: dict = {}
        out: list[tuple[Pattern, Term]] = []
        renames: dict[str, Term] = {}
        for p, b in bindings:
            b = _substitute_all(b, renames, self.renamed_in)  # every renaming at once, in one pass
            if isinstance(p, PVar) and not _atomic(b) and not (isinstance(b, LinLam) and b.param.annot != REAL):
                key = alpha_key(b, _TYPED), b.ty
                if key in seen:
                    renames[p.name] = Var(seen[key])
                    if self.census.shared({p.name: seen[key]}, b):
                        self.again = True  # a variable of b now occurs once, or not at all
                    continue
                seen[key] = p.name
            elif _field_taken_apart(p, b):  # the same value: its backpropagators are the same ones
                key = ("parts", alpha_key(b, _TYPED), b.ty, len(p.items))
                if key in seen:
                    renamed = {i.name: n for i, n in zip(p.items, seen[key])}
                    renames.update((name, Var(n)) for name, n in renamed.items())
                    if self.census.shared(renamed, b):
                        self.again = True
                    continue
                seen[key] = [i.name for i in p.items]
            out.append((p, b))
        return out, _substitute_all(body, renames, self.renamed_in)

    def renamed_in(self, t: Term) -> None:
        """CSE renamed a variable in ``t``: in a binding of a chain within, whose CSE has run
        this round, the renaming may have made two bindings alike."""
        if type(t) is Let:
            self.again = True

    def backward(self, bindings, body):
        """Run the backpropagators bound in this chain symbolically inside each linear
        function of ``body`` that sends cotangents to them (see the module docstring)."""
        backprops = {p.name: (i, b) for i, (p, b) in enumerate(bindings)
                     if isinstance(p, PVar) and isinstance(b, LinLam) and isinstance(b.param, PVar)}
        if not backprops:
            return body

        def run(lin: LinLam) -> Term:
            pending: dict[str, list[Term]] = {}
            rest: list[Term] = []
            steps: list[tuple[Pattern, Term]] = []

            def send(d: Term) -> None:
                for s in _summands(d):
                    if isinstance(s, App) and isinstance(s.fn, Var) and s.fn.name in backprops:
                        pending.setdefault(s.fn.name, []).append(s.arg)
                    else:
                        rest.append(s)

            send(lin.body)
            if not pending:
                return lin
            while pending:
                target = max(pending, key=lambda n: backprops[n][0])
                total = cotangent_sum(pending.pop(target))
                fn = backprops[target][1]
                if not _atomic(total) and self.census.count.get(fn.param.name, 0) > 1:
                    name = self.fresh("b")
                    steps.append((PVar(name), total))
                    total = Var(name)
                # binders are distinct (copies of one backpropagator's are in different
                # linear functions): nothing in the backpropagator captures the total
                sent = _substitute_all(fn.body, {fn.param.name: total}, self.substituted)
                if next(_all_binders(sent), None) is not None:  # copied: renamed apart next round
                    self.again = True
                inner_chain, inner = let_chain(sent)
                steps.extend((let.pattern, let.bound) for let in inner_chain)
                send(inner)
            return update(lin, body=lets(steps, factored(rest)))

        def visit(t: Term) -> Term:
            if isinstance(t, LinLam):
                return run(t)
            if isinstance(t, (Lam, Let)):
                return t
            return map_children(t, visit)

        return visit(body)

    def drop_dead(self, bindings: list[tuple[Pattern, Term]], body: Term, names: set[str], uses: dict[str, int],
                  destructured: dict) -> list[tuple[Pattern, Term]]:
        """After the backward passes: the bindings of the chain whose variables no longer
        occur (``uses``, of the chain's ``names``, kept up to date) are dropped, latest
        first, so that those they alone used go too."""
        out = []
        before = dict(uses)
        for p, b in reversed(bindings):
            if any(uses.get(n) for n in pattern_names(p)):
                out.append((p, b))
                continue
            _destructurings(b, names, uses, destructured, -1)
        out.reverse()
        # a variable now used once, under no lambda, may be substituted next round
        once = {p.name for p, b in out if type(p) is PVar and uses.get(p.name) == 1 < before[p.name]
                and not isinstance(b, (Lam, LinLam))}
        if once and _occurrences_outside_lambdas(lets(out, body), once):
            self.again = True
        return out

    def refine(self, bindings, body, uses: dict[str, int], destructured: dict):
        """A variable bound to a pair that is only ever taken apart is bound by a tuple
        pattern instead: ``let x = u; (y, y') = x`` → ``let (x, x') = u`` (see
        :meth:`refine_param`).  In linear time: one census of how the chain's variables are
        taken apart, the bindings visited in order (a destructuring ``let (y, y') = x`` of
        a variable split before becomes ``let y = x_1; y' = x_2``, bindings visited in
        their turn), and one pass making the other destructurings."""
        parts: dict[str, list[str]] = {}  # one pass: the bindings in order, then the destructurings
        out: list[tuple[Pattern, Term]] = []
        todo = list(reversed(bindings))
        while todo:
            p, b = todo.pop()
            if isinstance(b, Var) and b.name in parts and isinstance(p, PTuple):
                todo.extend(reversed(_parts_bound(p, parts[b.name])))
                continue
            if not (isinstance(b, Var) and b.name in parts):
                b = _destructure_all(b, parts)
            if isinstance(p, PVar) and p.name in destructured and uses.get(p.name) == destructured[p.name][0]:
                _, arities, given = destructured[p.name]
                if len(arities) == 1:
                    (arity,) = arities
                    names = self.split_names(p, arity, given[:arity] + [None] * (arity - len(given)))
                    parts[p.name] = names
                    p = self.split_pattern(p, names)
            out.append((p, b))
        return out, _destructure_all(body, parts)

    def refine_param(self, p: Pattern, body: Term, taken: frozenset[str] = frozenset()) -> tuple[Pattern, Term]:
        """A parameter that is only ever taken apart gets a tuple pattern, recursively;
        ``taken`` are the names the rest of the parameter's pattern binds."""
        if isinstance(p, PVar):
            if (p.annot is not None and not isinstance(p.annot, TupleType)) or p.name not in self.census.taken_apart:
                return p, body  # not a tuple, or never taken apart: not split, and its body is not searched
            uses, found = _destructurings(body, {p.name})  # as in refine
            count, arities, given = found.get(p.name, (0, set(), []))
            arity = arities.pop() if count and uses.get(p.name) == count and len(arities) == 1 else 0
            if arity and (p.annot is None or len(p.annot.items) == arity):
                names = self.split_names(p, arity, given + [None] * (arity - len(given)), taken)
                return self.split_pattern(p, names), _destructure_all(body, {p.name: names})
            return p, body
        if isinstance(p, (PTuple, PRecord)):
            items = list(p.items)
            for i, item in enumerate(items):
                others = {n for j, other in enumerate(items) if j != i for n in pattern_names(other)}
                items[i], body = self.refine_param(item, body, taken | others)
            return replace(p, items=tuple(items)), body
        return p, body

    def split_names(self, p: PVar, arity: int, given: list[str | None],
                    taken: frozenset[str] = frozenset()) -> list[str]:
        """The names of the parts of ``p``: those the first destructuring gave them if any
        (``given``; binders are distinct, so such a name captures nothing, and its
        destructuring becomes no binding at all), else ``(x, x')`` for a pair (a value and
        its backpropagator), else ``x_1, …`` — all distinct, and distinct from the
        ``taken`` names of the pattern ``p`` is part of."""
        if p.name in self.keep and not any(g in self.keep for g in given if g is not None):
            given = [None] * arity  # a user's variable: its parts are x and x'
        names: list[str] = []
        for i in range(arity):
            if given[i] is not None and given[i] not in names and given[i] not in taken:
                names.append(given[i])
                continue
            name = (p.name + "'" * i if not _tangent_pair(p.annot) else "d" * i + p.name) if arity == 2 \
                else f"{p.name}_{i + 1}"
            clash = name in names or name in given[i + 1:] or name in taken or (name in self.used and name != p.name)
            names.append(self.fresh(p.name) if clash else name)
        self.used.update(names)
        return names

    def split_pattern(self, p: PVar, names: list[str]) -> PTuple:
        """``p`` as a tuple pattern binding ``names``: the parts may be split in turn, and
        the destructurings have become bindings of them, next round."""
        self.again = True
        annots = p.annot.items if isinstance(p.annot, TupleType) else [None] * len(names)
        return PTuple(tuple(PVar(n, a) for n, a in zip(names, annots)), span=p.span)



def _tangent_pair(t) -> bool:
    """Whether ``t`` is →D(Real) or →D(Tensor): a value and its tangent, ``(x, dx)``."""
    return isinstance(t, TupleType) and len(t.items) == 2 and t.items[0] == t.items[1] and t.items[0] in (REAL, TENSOR)


def _destructurings(t: Term, names: set[str], count: dict[str, int] | None = None, found: dict | None = None,
                    sign: int = 1) -> tuple[dict[str, int], dict]:
    """For the variables ``names`` of a term whose binders are distinct: how often each
    occurs, and how it is taken apart, as :class:`_Scan` says; a lighter walk, for it need
    not check that the binders are distinct.  Given ``count`` and ``found``, the walk
    adds to them (``sign`` times: -1 takes the term's occurrences away)."""
    count = {} if count is None else count
    found = {} if found is None else found
    stack = [t]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        cls = type(node)
        if cls is Var:
            if node.name in names:
                count[node.name] = count.get(node.name, 0) + sign
        elif cls is Prim:
            extend(reversed(node.args))
        elif cls is App:
            push(node.arg)
            push(node.fn)
        elif cls is DAdd:
            push(node.right)
            push(node.left)
        elif cls is Let:
            push(node.body)
            push(node.bound)
            bound, pattern = node.bound, node.pattern
            if type(bound) is Var and type(pattern) is PTuple and bound.name in names:
                if sign > 0:
                    _note_destructuring(found, bound.name, pattern)
                else:
                    found[bound.name] = (found[bound.name][0] - 1,) + found[bound.name][1:]
        elif cls is Lam or cls is LinLam:
            push(node.body)
        elif cls is Tuple:
            extend(reversed(node.items))
        elif cls is not Lit:
            extend(reversed(list(children(node))))
    return count, found


def _occurrences_outside_lambdas(t: Term, names: set[str]) -> bool:
    """Whether one of ``names`` occurs in ``t`` under no lambda."""
    stack = [t]
    while stack:
        node = stack.pop()
        if type(node) is Var:
            if node.name in names:
                return True
        elif not isinstance(node, (Lam, LinLam)):
            stack.extend(children(node))
    return False


def _destructure_all(t: Term, parts: dict[str, list[str]]) -> Term:
    """Each ``let (p1, …, pn) = x`` in ``t`` of a variable split into ``parts[x]``
    becomes ``let p1 = x_1; …`` (see :func:`_parts_bound`)."""
    if not parts or type(t) is Var or type(t) is Lit:
        return t
    if isinstance(t, Let):
        chain, body = let_chain(t)
        out: list[tuple[Pattern, Term]] = []
        for let in chain:
            if isinstance(let.bound, Var) and let.bound.name in parts and isinstance(let.pattern, PTuple):
                out.extend(_parts_bound(let.pattern, parts[let.bound.name]))
            else:
                out.append((let.pattern, _destructure_all(let.bound, parts)))
        return lets(out, _destructure_all(body, parts))
    return _map(t, lambda c: _destructure_all(c, parts))


def _parts_bound(p: PTuple, parts: list[str]) -> list[tuple[Pattern, Term]]:
    """The bindings ``let (p1, …, pn) = x`` becomes once ``x`` is split into ``parts``:
    ``p_i = part_i``, but none where ``p_i`` is ``part_i`` itself (the destructuring
    that gave the parts their names)."""
    return [(item, Var(part)) for item, part in zip(p.items, parts)
            if not (type(item) is PVar and item.name == part)]


def _algebra(t: Prim) -> tuple[Term, list[Term]]:
    """The algebraic rules on ``t``: ``fst (u, v) → u``, ``0 + t → t``, ``t - 0 → t``,
    ``0 - t → -t``, ``1.0 * t → t``, ``t / 1.0 → t``, ``--t → t`` and constant folding;
    with the subterms dropped (``t`` itself and none when no rule applies)."""
    args = t.args
    if t.op in ("fst", "snd") and isinstance(args[0], Tuple):
        keep = 0 if t.op == "fst" else 1
        return args[0].items[keep], [item for i, item in enumerate(args[0].items) if i != keep]
    if t.op == "add":
        left, right = args
        if _is_zero(left):
            return right, [left]
        if _is_zero(right):
            return left, [right]
    if t.op == "sub":
        left, right = args
        if _is_zero(right):
            return left, [right]
        if _is_zero(left):
            return Prim("neg", (right,), span=t.span), [left]
    if t.op == "mul":
        left, right = args
        if _is_one(left):
            return right, []
        if _is_one(right):
            return left, []
    if t.op == "div" and _is_one(args[1]):
        return args[0], []
    if t.op == "neg":
        (x,) = args
        if isinstance(x, Prim) and x.op == "neg":
            return x.args[0], []
    return _fold_constants(t), []


def _redex(t: Term) -> bool:
    """Whether a local rule applies at ``t`` itself whatever the occurrences of its
    variables: a substitution that rebuilt ``t`` around a value may have made it one."""
    cls = type(t)
    if cls is App:
        return type(t.fn) is Lam or (type(t.fn) is LinLam and _is_zero(t.fn.body))
    if cls is DAdd:
        return _is_zero(t.left) or _is_zero(t.right)
    if cls is Prim:
        return _algebra(t)[0] is not t
    if cls is Let:
        p, bound = t.pattern, t.bound
        return type(bound) is Let or (type(p) is PVar and _atomic(bound)) or _ignored(p) \
            or (type(p) is PTuple and type(bound) is Tuple and len(bound.items) == len(p.items)) \
            or (type(p) is PRecord and type(bound) is Record)
    if cls is Proj:
        return type(t.term) is Record
    return False


def _fieldwise(p: PRecord, bound: Record) -> list[tuple[Pattern, Term]]:
    """``let {w = p, b = q} = {b = v, w = u}`` as ``let p = u; q = v``, in the pattern's order
    (a record pattern names every field of its record)."""
    return [(item, bound.items[bound.fields.index(f)]) for f, item in zip(p.fields, p.items)]


def _ignored(p: Pattern) -> bool:
    """Whether a pattern binds nothing: ``_``, ``(_, _)``, ``{w = _}``."""
    return isinstance(p, PWild) or (isinstance(p, (PTuple, PRecord)) and all(isinstance(i, PWild) for i in p.items))


def _field_taken_apart(p: Pattern, b: Term) -> bool:
    """Whether a binding is ``let (x1, …, xn) = v.w`` (a field of a field … of a variable):
    two such bindings of the same field bind the same values."""
    if not (isinstance(p, PTuple) and all(isinstance(i, PVar) for i in p.items) and isinstance(b, Proj)):
        return False
    while isinstance(b, Proj):
        b = b.term
    return isinstance(b, Var)


def _fold_constants(t: Prim) -> Term:
    """Arithmetic on literals of one kind (both Int or both real) is done now, by the
    primitive's ``fold``."""
    fold = PRIMITIVES[t.op].fold
    if fold is None or not all(isinstance(a, Lit) for a in t.args):
        return t
    values = [a.value for a in t.args]
    kinds = {type(v) for v in values}
    if len(kinds) != 1 or kinds.pop() not in (int, float):
        return t
    result = fold(*values)
    if type(result) is int and result > INT_MAX:  # left to fail where it runs
        return t
    if isinstance(result, (int, float)) and result >= 0:
        return Lit(result, span=t.span)
    return t


# --------------------------------------------------------------------- readable names


class _Renamer:
    """Gives invented names short readable ones: ``z1, z2, …`` for values, ``b, c, …`` for
    the backward pass, ``a`` for cotangents, ``f1, …`` for functions, and a user's
    variable renamed apart (``origin``: ``x_1`` → ``x``) its name back where no variable
    shown under that name occurs in its scope.  The names in scope are one table,
    updated on entering a scope and restored on leaving it."""

    def __init__(self, keep: set[str], origin: dict[str, str], t: Term):
        self.keep = keep
        free = set(free_variables(t))
        self.taken = keep | free | {n for n in term_names(t) if self.kept(n)}  # never given to another
        self.values = (f"z{i}" for i in itertools.count(1))
        self.back_iter = itertools.chain(iter("bcdeghkmnoqrsuvw"), (f"c{i}" for i in itertools.count(1)))
        self.env: dict[str, str] = {}  # variable → the name it is shown as, if another
        self.origin = origin
        if origin:
            self.shown: dict[str, str] = {}  # name → the variable in scope shown as it
            self.free = free
            self.scopes, self.uses = _scopes_and_uses(t)

    def kept(self, name: str) -> bool:
        """Whether a variable named ``name`` is shown as it is named: a user's variable, a
        part or the tangent of one (``x'``, ``dx``), or a name nobody invented (the
        simplifier's ``z1`` for a part of the user's ``z``)."""
        return (name in self.keep or name.rstrip("'") in self.keep
                or (name[:1] == "d" and name[1:] in self.keep) or not _invented(name))

    def next_name(self, source: Iterator[str]) -> str:
        for name in source:
            if name not in self.taken:
                self.taken.add(name)
                return name
        raise AssertionError("unreachable")  # pragma: no cover

    def unclaimed(self, name: str) -> str:
        """``name`` if no variable is shown so, else ``name_1``, ``name_2``, …"""
        return name if name not in self.taken else self.next_name(f"{name}_{i}" for i in itertools.count(1))

    def term(self, t: Term, cotangent: bool = False) -> Term:
        if isinstance(t, Var):
            return update(t, name=self.env.get(t.name, t.name))
        if isinstance(t, (Lam, LinLam)):
            saved: list = []
            param = self.pattern(t.param, "a" if isinstance(t, LinLam) else "x", saved)
            body = self.term(t.body, cotangent or isinstance(t, LinLam))
            self.restore(saved)
            return update(t, param=param, body=body)
        if isinstance(t, Let):
            chain, body = let_chain(t)
            out = []
            saved = []
            for let in chain:
                bound = self.term(let.bound, cotangent)
                out.append((self.pattern(let.pattern, "b" if cotangent else "z", saved), bound))
            result = lets(out, self.term(body, cotangent))
            self.restore(saved)
            return result
        return map_children(t, lambda c: self.term(c, cotangent))

    def restore(self, saved: list[tuple[dict, str, str | None]]) -> None:
        """Leave a scope: undo the changes :meth:`set` noted in ``saved``."""
        for table, key, old in reversed(saved):
            if old is None:
                table.pop(key, None)
            else:
                table[key] = old

    def set(self, table: dict[str, str], key: str, value: str | None, saved: list) -> None:
        """``table[key] = value`` (removed if ``value`` is None) for this scope, noted in ``saved``."""
        saved.append((table, key, table.get(key)))
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value

    def bind(self, name: str, new: str | None, saved: list) -> None:
        """The variable ``name`` is shown as ``new`` (as itself if ``new`` is None)."""
        self.set(self.env, name, new, saved)
        if self.origin:
            self.set(self.shown, new or name, name, saved)

    def original(self, name: str) -> str | None:
        """The user's name of a variable renamed apart, or of a part of one (``x_1'``,
        ``dx_1``), if ``name`` is one."""
        base = name.rstrip("'")
        if base in self.origin:
            return self.origin[base] + name[len(base):]
        if name[:1] == "d" and name[1:] in self.origin:
            return "d" + self.origin[name[1:]]
        return None

    def may_show(self, name: str, shown_as: str, siblings: frozenset[str]) -> bool:
        """Whether the variable ``name``, bound by a pattern that binds ``siblings``, may be
        shown as ``shown_as``: no other variable of the pattern is or will be shown so; the
        variable shown so where ``name`` is bound (or a free variable so named) does not
        occur in its scope; and ``name`` does not occur in the scope of a variable
        ``shown_as`` bound within its own (the others renamed apart are asked in their turn).
        Binders are distinct, and distinct from the free variables."""
        scope = self.scopes[name]
        if shown_as in siblings or (shown_as in self.free and self.occurs(shown_as, scope)):
            return False
        other = self.shown.get(shown_as)
        if other is not None and (self.scopes.get(other) == scope or self.occurs(other, scope)):
            return False
        inner = self.scopes.get(shown_as)
        return inner is None or not (scope[0] < inner[0] <= inner[1] <= scope[1] and self.occurs(name, inner))

    def occurs(self, name: str, scope: tuple[int, int]) -> bool:
        """Whether ``name`` occurs in the positions ``scope`` of :func:`_scopes_and_uses`."""
        uses = self.uses.get(name, [])
        i = bisect.bisect_right(uses, scope[0])
        return i < len(uses) and uses[i] <= scope[1]

    def pattern(self, p: Pattern, role: str, saved: list, siblings: frozenset[str] | None = None) -> Pattern:
        env = self.env
        if isinstance(p, PVar):
            original = self.original(p.name) if self.origin else None
            if original is not None and self.may_show(p.name, original, siblings or frozenset()):
                self.bind(p.name, original, saved)
                self.taken.add(original)
                return replace(p, name=original)
            base = p.name.rstrip("'")
            if self.kept(p.name):
                self.taken.add(p.name)
                self.bind(p.name, None, saved)
                return p
            primes = p.name[len(base):]
            if base in env:  # x3' after x3: keep the pair's names together
                new = self.unclaimed(env[base] + primes)
            elif p.name[:1] == "d" and p.name[1:] in env:  # and dx3 after x3
                new = self.unclaimed("d" + env[p.name[1:]])
            elif role == "a":
                new = "a" if "a" not in self.taken else self.next_name(f"a{i}" for i in itertools.count(1))
            elif role == "b":
                new = self.next_name(self.back_iter)
            else:
                new = self.next_name(self.values)
            if primes and base not in env:
                self.set(env, base, new, saved)
                new = self.unclaimed(new + primes)
            self.bind(p.name, new, saved)
            if not primes:
                self.set(env, base, new, saved)
            self.taken.add(new)
            return replace(p, name=new)
        if isinstance(p, (PTuple, PRecord)):
            siblings = frozenset(pattern_names(p)) if siblings is None and self.origin else siblings
            return replace(p, items=tuple(self.pattern(item, role, saved, siblings) for item in p.items))
        return p


def _scopes_and_uses(t: Term) -> tuple[dict[str, tuple[int, int]], dict[str, list[int]]]:
    """Positions in one walk over ``t`` (binders distinct): for each binder, the interval
    ``(start, end]`` of the positions of its scope; for each variable, the positions of
    its occurrences, ascending."""
    scopes: dict[str, tuple[int, int]] = {}
    uses: dict[str, list[int]] = {}
    position = 0
    stack: list = [t]
    while stack:
        node = stack.pop()
        if type(node) is tuple:  # entering (True) or leaving (False) the scope of names
            entering, names = node
            for name in names:
                scopes[name] = (position, position) if entering else (scopes[name][0], position)
            continue
        position += 1
        if type(node) is Var:
            uses.setdefault(node.name, []).append(position)
        elif isinstance(node, (Lam, LinLam, Let)):
            names = tuple(_binder_names(node))
            stack += [(False, names), node.body, (True, names)]
            if isinstance(node, Let):
                stack.append(node.bound)
        else:
            stack.extend(reversed(list(children(node))))
    return scopes, uses
