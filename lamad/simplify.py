"""Simplification of terms, above all of the derivative programs ←D produces
(docs/differentiation.md, "Reading derivative programs").

``simplify(term)`` returns an equivalent term, rewriting until nothing changes:

* administrative redexes: ``(λp. t) u`` and ``let (x, y) = (u, v)`` become plain ``let``s,
  ``fst (u, v)`` becomes ``u``, variables bound to variables are substituted;
* let-flattening and let-floating: ``let x = (let y = u in v) in t`` becomes
  ``let y = u; x = v in t``, and ``let``s float out of tuples and arguments (never out of a
  lambda, which would change how often they run);
* *backward passes*: the backpropagators bound in a chain of ``let``s are run symbolically,
  latest first, each on the sum of all the cotangents sent to it — the paper's linear
  factoring ``x' u + x' v → x' (u + v)`` — so that the backward pass of a straight-line
  program becomes straight-line code with one step per backpropagator and nothing
  computed twice;
* algebra: ``0 + t``, ``1.0 * t``, ``--t`` and constant folding;
* common-subexpression elimination (up to renaming of bound variables) and dead-code
  elimination;
* pattern refinement: a variable (or parameter) bound to a pair that is only ever taken
  apart is bound by a tuple pattern instead.

A round costs time linear in the size of the term when its binders are distinct, as ←D
makes them: one walk takes an *occurrence census* (for every variable, how often it
occurs and whether under a lambda), which the local rules consult instead of searching
the rest of the chain, and to which each of them reports the occurrences it drops,
copies or moves; the substitutions of a chain are recorded and made together in one
pass at its end; refinement counts the uses of a chain's names in one walk; and the
fixpoint test walks the old and the new term together.  A term that binds a name twice
goes through the same rules, which then search the terms they need.  There are at most
``_MAX_ROUNDS`` rounds.

Terms are pure, so all of this preserves values (a dead binding that would have failed is
dropped, as in any optimiser).  Finally, the names ←D invented are replaced by short ones:
``z1, z2, …`` for intermediate values, ``b, c, …`` for the backward pass, ``a`` for the
cotangent; a pair bound to a user's name ``x`` becomes ``(x, x')``.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Callable, Iterator

from lamad.prims import PRIMITIVES
from lamad.prims.arithmetic import INT_MAX
from lamad.syntax import (
    REAL, TENSOR, Ann, App, DAdd, DZero, Lam, Let, LinLam, Lit, Pattern, Prim, PTuple, PVar, PWild, Term, Tuple,
    TupleType, Var, alpha_key, children, free_variables, let_chain, map_children, pattern_names, term_names, update,
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
    names = term_names(term)
    keep = {n for n in names if not _invented(n)} if keep is None else keep
    s = _Simplifier(names, keep)
    term = s.fixpoint(term, backward=False)  # first share what can be shared,
    term = s.fixpoint(term, backward=True)   # then run the backward passes
    return _Renamer(keep).term(term)


def _invented(name: str) -> bool:
    """Names ←D, →D and the checker make up: a letter or two and a number, maybe primed,
    or ``d`` and such a name for a tangent."""
    stem = name.rstrip("'")
    letters = stem.rstrip("0123456789")
    if letters != stem and letters in ("x", "y", "a", "b", "t", "n", "p", "k", "u", "xs", "xi", "i"):
        return True
    return stem.startswith("d") and stem == name and _invented(stem[1:])


# --------------------------------------------------------------------- helpers


def _free(t: Term) -> set[str]:
    """The free variables of ``t``."""
    return set(free_variables(t))


def _occurrences(t: Term, name: str, enough: int = 2) -> tuple[int, bool]:
    """How often ``name`` occurs free in ``t`` (counting stops at ``enough``: the rewrites
    only ask for 0, 1 or more), and whether an occurrence seen is under a lambda.  The
    term is searched in source order, where a variable's next use usually is."""
    count, under = 0, False
    stack: list[tuple[Term, bool]] = [(t, False)]
    while stack and count < enough:
        node, in_lambda = stack.pop()
        if isinstance(node, Var):
            if node.name == name:
                count += 1
                under = under or in_lambda
        elif isinstance(node, (Lam, LinLam)):
            if name not in pattern_names(node.param):
                stack.append((node.body, True))
        elif isinstance(node, Let):
            if name not in pattern_names(node.pattern):
                stack.append((node.body, in_lambda))
            stack.append((node.bound, in_lambda))
        else:
            stack.extend((c, in_lambda) for c in reversed(list(children(node))))
    return count, under


def _binders(t: Term) -> set[str]:
    out: set[str] = set()
    stack = [t]
    while stack:
        node = stack.pop()
        for p in (getattr(node, "param", None), getattr(node, "pattern", None)):
            if isinstance(p, Pattern):
                out.update(pattern_names(p))
        stack.extend(children(node))
    return out


def substitute(t: Term, name: str, value: Term) -> Term:
    """``t[value/name]``; the caller makes sure no binder of ``t`` captures ``value``."""
    if isinstance(t, Var):
        return value if t.name == name else t
    if isinstance(t, (Lam, LinLam)) and name in pattern_names(t.param):
        return t
    if isinstance(t, Let):
        chain, body = let_chain(t)
        out = []
        shadowed = False
        for let in chain:
            bound = let.bound if shadowed else substitute(let.bound, name, value)
            out.append(update(let, bound=bound))
            shadowed = shadowed or name in pattern_names(let.pattern)
        result = body if shadowed else substitute(body, name, value)
        for let in reversed(out):
            result = update(let, body=result)
        return result
    return map_children(t, lambda c: substitute(c, name, value))


def _can_substitute(t: Term, value: Term) -> bool:
    return not (_free(value) & _binders(t))


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


def _lets(bindings: list[tuple[Pattern, Term]], body: Term) -> Term:
    for p, b in reversed(bindings):
        body = Let(p, b, body)
    return body


def _summands(t: Term) -> Iterator[Term]:
    """The summands of a sum at type ``d`` (zeros dropped)."""
    stack = [t]
    while stack:
        node = stack.pop()
        if isinstance(node, DAdd):
            stack.extend((node.right, node.left))
        elif not _is_zero(node):
            yield node


def _sum(terms: list[Term]) -> Term:
    """The sum in ``d`` of some gradient values."""
    if not terms:
        return DZero()
    total = terms[0]
    for t in terms[1:]:
        total = DAdd(total, t)
    return total


def _add(terms: list[Term]) -> Term:
    """The sum of some cotangents (arrays, or transformed values in a nested derivative)."""
    total = terms[0]
    for t in terms[1:]:
        total = Prim("add", (total, t))
    return total


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
    """One walk over a term: whether its binders are distinct (every variable bound at
    most once, and no bound name also occurring free: then no substitution can capture
    and a name stands for one binding; the parameter of a zero backpropagator ``λa ⊸ 0``,
    copied wherever its variable was, may repeat if its name occurs nowhere), and, if
    so, for every variable how often it occurs, how many of those occurrences are under
    no lambda between them and the binder, and how deep in lambdas its binder is.  With
    ``destructurings``, also how each variable is taken apart by ``let (p1, …, pn) = x``:
    how often, with which arities, and for each component the variable the first such
    pattern (in source order) binds it to; and how often each free variable occurs."""

    def __init__(self, t: Term, destructurings: bool = False):
        count: dict[str, int] = {}
        shallow: dict[str, int] = {}
        depth: dict[str, int] = {}
        found: dict[str, tuple[int, set[int], list[str | None]]] = {}
        zero_params: set[str] = set()
        seen: set[str] = set()
        free: set[str] = set()
        free_count: dict[str, int] = {}
        open_: set[str] = set()  # the binders whose scope the walk is in
        self.distinct = False
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
                    free_count[name] = free_count.get(name, 0) + 1
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
                    if name in depth:
                        return
                    depth[name] = d
                push((list(names), d))  # leave the scope
                push((node.body, d))
                push((names, d))  # enter it
                push((node.bound, d))
                if destructurings and type(node.bound) is Var and type(pattern) is PTuple:
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
                    if name in depth:
                        return
                    depth[name] = d + 1
                open_.update(names)
                push((list(names), d))
                push((node.body, d + 1))
            elif cls is Tuple:
                extend([(c, d) for c in reversed(node.items)])
            elif cls is not Lit:
                extend([(c, d) for c in reversed(list(children(node)))])
        if zero_params & seen or free & depth.keys():
            return
        self.distinct = True
        self.count, self.shallow, self.depth, self.found = count, shallow, depth, found
        self.free_count = free_count


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
    (``depth`` is the number of lambdas around the place where a rewrite happens)."""

    def __init__(self, scan: _Scan):
        self.count, self.shallow, self.depth = scan.count, scan.shallow, scan.depth

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
        """As :func:`_occurrences`: the count, and for a single occurrence whether it is
        under a lambda."""
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
            self.count[value.name] = self.count.get(value.name, 0) + copies - 1
            if self.depth.get(value.name) == depth:
                self.shallow[value.name] = self.shallow.get(value.name, 0) + self.shallow.get(name, 0) - 1
        elif _atomic(value) and copies != 1:  # the variables of λa ⊸ 0 are under its lambda
            self.add(value, depth + 1, copies - 1)
        self.count[name] = self.shallow[name] = 0

    def renamed(self, old: str, new: str) -> None:
        """Every occurrence of ``old`` is now one of ``new``, bound at the same place."""
        self.count[new], self.shallow[new] = self.count.pop(old, 0), self.shallow.pop(old, 0)
        self.depth[new] = self.depth[old]


def _all_binders(t: Term) -> Iterator[str]:
    """Every name bound anywhere in ``t``."""
    stack = [t]
    while stack:
        node = stack.pop()
        yield from _binder_names(node)
        stack.extend(children(node))


def _substitute_all(t: Term, values: dict[str, Term]) -> Term:
    """``t`` with each variable named in ``values`` replaced by its value, in one pass; the
    values themselves are substituted into first (a chain's later bindings may be bound to
    its earlier ones).  The caller makes sure nothing is captured."""
    done: dict[str, Term] = {}

    def value(name: str) -> Term:
        if name not in done:
            done[name] = walk(values[name], values)
        return done[name]

    def walk(node: Term, env: dict[str, Term]) -> Term:
        if type(node) is Var:
            return value(node.name) if node.name in env else node
        if type(node) is Lit:
            return node
        if isinstance(node, Let):
            chain, body = let_chain(node)
            out = []
            for let in chain:
                out.append(update(let, bound=walk(let.bound, env)))
                shadowed = [n for n in pattern_names(let.pattern) if n in env]
                if shadowed:
                    env = {k: v for k, v in env.items() if k not in shadowed}
            result = walk(body, env)
            for let in reversed(out):
                result = update(let, body=result)
            return result
        if isinstance(node, (Lam, LinLam)):
            shadowed = [n for n in pattern_names(node.param) if n in env]
            if shadowed:
                env = {k: v for k, v in env.items() if k not in shadowed}
        return _map(node, lambda c: walk(c, env))

    return walk(t, values) if values else t


def _alpha_equal(a: Term, b: Term) -> bool:
    """Whether ``alpha_key(a, _TYPED) == alpha_key(b, _TYPED)``: equal up to the names of
    bound variables.  One walk over both terms at once, which stops at the first
    difference, the binders in scope kept in a table that is updated on entering a scope
    and restored on leaving it."""
    env_a: dict[str, int] = {}
    env_b: dict[str, int] = {}
    ids = itertools.count()
    missing = object()

    def bind(p: Pattern, q: Pattern, saved: list) -> bool:
        if type(p) is not type(q):
            return False
        if isinstance(p, PTuple):
            return len(p.items) == len(q.items) and all(bind(i, j, saved) for i, j in zip(p.items, q.items))
        if (None if p.annot is None else str(p.annot)) != (None if q.annot is None else str(q.annot)):
            return False
        if isinstance(p, PVar):
            saved.append((p.name, env_a.get(p.name, missing), q.name, env_b.get(q.name, missing)))
            env_a[p.name] = env_b[q.name] = next(ids)
        return True

    COMPARE, BIND, RESTORE = 0, 1, 2
    stack: list = [(COMPARE, a, b, None)]
    while stack:
        action, x, y, saved = stack.pop()
        if action == RESTORE:
            for name_a, old_a, name_b, old_b in reversed(saved):
                for env, name, old in ((env_a, name_a, old_a), (env_b, name_b, old_b)):
                    if old is missing:
                        env.pop(name, None)
                    else:
                        env[name] = old
            continue
        if action == BIND:
            if not bind(x, y, saved):
                return False
            continue
        cls = type(x)
        if cls is not type(y):
            return False
        if cls is Var:
            i, j = env_a.get(x.name), env_b.get(y.name)
            if i != j or (i is None and x.name != y.name):
                return False
        elif cls is Lit:
            if type(x.value) is not type(y.value) or not (x.value is y.value or x.value == y.value):
                return False
        elif cls is Lam or cls is LinLam:
            saved = []
            if not bind(x.param, y.param, saved):
                return False
            stack.append((RESTORE, None, None, saved))
            stack.append((COMPARE, x.body, y.body, None))
        elif cls is Let:  # the bound outside the pattern's scope, the body inside
            saved = []
            stack.append((RESTORE, None, None, saved))
            stack.append((COMPARE, x.body, y.body, None))
            stack.append((BIND, x.pattern, y.pattern, saved))
            stack.append((COMPARE, x.bound, y.bound, None))
        else:
            if cls is Prim and (x.op != y.op or x.marks != y.marks or (x.op in _TYPED and x.ty != y.ty)):
                return False
            if cls is Ann and str(x.annot) != str(y.annot):
                return False
            xs, ys = list(children(x)), list(children(y))
            if len(xs) != len(ys):
                return False
            stack.extend((COMPARE, i, j, None) for i, j in zip(reversed(xs), reversed(ys)))
    return True


# --------------------------------------------------------------------- the rewrites


class _Simplifier:
    def __init__(self, names: set[str], keep: set[str]):
        self.used = set(names)
        self.keep = keep
        self.census: _Census | None = None
        self.distinct = False
        self.counter = itertools.count(1)

    def fresh(self, base: str = "t") -> str:
        while True:
            name = f"{base}{next(self.counter)}"
            if name not in self.used:
                self.used.add(name)
                return name

    def fixpoint(self, t: Term, backward: bool) -> Term:
        self.run_backward = backward
        for _ in range(_MAX_ROUNDS):
            # a term whose binders are distinct gets an occurrence census, and the rewrites
            # consult it instead of searching the rest of the chain
            scan = _Scan(t)
            self.census = _Census(scan) if scan.distinct else None
            self.distinct = scan.distinct  # until a rewrite may bind a name twice
            new = self.chains(self.local(t))
            if _alpha_equal(new, t):
                return new
            t = new
        return t

    # -- bottom-up local rewrites ------------------------------------------------

    def local(self, t: Term, depth: int = 0) -> Term:
        """One bottom-up pass of the local rules (``depth``: the lambdas around ``t``)."""
        if type(t) is Var or type(t) is Lit:  # the leaves, most of the nodes: no rule applies
            return t
        if isinstance(t, Let):
            chain, body = let_chain(t)
            if self.census is not None:
                return self.local_chain(chain, body, depth)
            result = self.local(body, depth)
            for let in reversed(chain):
                result = self.rewrite(update(let, bound=self.local(let.bound, depth), body=result), depth)
            return result
        inner = depth + 1 if isinstance(t, (Lam, LinLam)) else depth
        return self.rewrite(_map(t, lambda c: self.local(c, inner)), depth)

    def local_chain(self, chain: list[Let], body: Term, depth: int) -> Term:
        """The local rules on a chain of bindings, latest first, with the census: a
        binding's substitution is recorded and all of them are made at the end, in one
        pass over the chain (each binding sees the rest as it would be by then only
        through the census, which already counts the substitutions)."""
        values: dict[str, Term] = {}
        rest: list[Let] = []  # the rewritten chain, latest first; ``Let.body`` is unused
        result = self.local(body, depth)
        for let in reversed(chain):
            self.let_in_chain(update(let, bound=self.local(let.bound, depth)), rest, values, depth)
        for let in rest:
            result = update(let, body=result)
        return _substitute_all(result, values)

    def rewrite(self, t: Term, depth: int = 0) -> Term:
        if isinstance(t, App) and isinstance(t.fn, Lam):  # beta: (λp. u) v → let p = v in u
            if self.census is not None:
                self.census.beta(t.fn, depth)
            return Let(t.fn.param, t.arg, t.fn.body, span=t.span)
        if isinstance(t, App) and isinstance(t.fn, LinLam) and _is_zero(t.fn.body):
            self.dropped(t.arg, depth)
            return t.fn.body  # (λa ⊸ 0) u → 0
        if isinstance(t, DAdd):  # 0 + t → t
            return t.right if _is_zero(t.left) else t.left if _is_zero(t.right) else t
        if isinstance(t, Prim):
            return self.algebra(t, depth)
        if isinstance(t, Let):
            return self.let(t)
        return t

    def dropped(self, t: Term, depth: int) -> None:
        """A rewrite dropped ``t``: the census forgets its occurrences."""
        if self.census is not None:
            self.census.add(t, depth, -1)

    def algebra(self, t: Prim, depth: int = 0) -> Term:
        args = t.args
        if t.op in ("fst", "snd") and isinstance(args[0], Tuple):
            keep = 0 if t.op == "fst" else 1
            for i, item in enumerate(args[0].items):
                if i != keep:
                    self.dropped(item, depth)
            return args[0].items[keep]
        if t.op == "add":
            left, right = args
            if _is_zero(left):
                self.dropped(left, depth)
                return right
            if _is_zero(right):
                self.dropped(right, depth)
                return left
        if t.op == "sub":
            left, right = args
            if _is_zero(right):
                self.dropped(right, depth)
                return left
            if _is_zero(left):
                self.dropped(left, depth)
                return Prim("neg", (right,), span=t.span)
        if t.op == "mul":
            left, right = args
            if _is_one(left):
                return right
            if _is_one(right):
                return left
        if t.op == "div" and _is_one(args[1]):
            return args[0]
        if t.op == "neg":
            (x,) = args
            if isinstance(x, Prim) and x.op == "neg":
                return x.args[0]
        return _fold_constants(t)

    def let_in_chain(self, t: Let, rest: list[Let], values: dict[str, Term], depth: int) -> None:
        """:meth:`let` for a binding ``t`` of a chain whose later bindings, rewritten, are
        ``rest`` (latest first): pushes what ``t`` becomes onto ``rest``, records
        substitutions in ``values``.  Binders are distinct, so nothing is captured."""
        p, bound = t.pattern, t.bound
        census = self.census
        if isinstance(bound, Let):  # let-flattening
            rest.append(Let(p, bound.body, _HOLE, span=t.span))
            rest.append(Let(bound.pattern, bound.bound, _HOLE, span=bound.span))
            return
        if isinstance(p, PTuple) and isinstance(bound, Tuple) and len(p.items) == len(bound.items):
            # binders are distinct: the items cannot mention the names the pattern binds
            bindings, _ = self.tangent_names(list(zip(p.items, bound.items)), None, values)
            rest.extend(Let(q, b, _HOLE) for q, b in reversed(bindings))
            return
        if isinstance(p, PWild) or (isinstance(p, PTuple) and all(isinstance(i, PWild) for i in p.items)):
            self.dropped(bound, depth)
            return
        if isinstance(p, PVar):
            count, under_lambda = census.occurrences(p.name)
            if count == 0:
                self.dropped(bound, depth)
                return  # dead code
            if _atomic(bound) or (count == 1 and not under_lambda and not isinstance(bound, (Lam, LinLam))):
                census.substituted(p.name, bound, depth)
                values[p.name] = bound
                return
        rest.append(t)

    def let(self, t: Let) -> Term:
        p, bound, body = t.pattern, t.bound, t.body
        # let-flattening: let p = (let q = u in v) in w  →  let q = u in let p = v in w
        if isinstance(bound, Let):
            inner = bound
            if set(pattern_names(inner.pattern)) & _free(body):
                return t  # renaming is left to a later round; rare in practice
            return Let(inner.pattern, inner.bound, Let(p, inner.body, body, span=t.span), span=inner.span)
        # let (p1, ..., pn) = (u1, ..., un)  →  let p1 = u1; ...; pn = un
        if isinstance(p, PTuple) and isinstance(bound, Tuple) and len(p.items) == len(bound.items):
            names = set(pattern_names(p))
            if not any(_free(u) & names for u in bound.items):
                return _lets(*self.tangent_names(list(zip(p.items, bound.items)), body))
        if isinstance(p, PWild) or (isinstance(p, PTuple) and all(isinstance(i, PWild) for i in p.items)):
            return body
        if isinstance(p, PVar):
            count, under_lambda = _occurrences(body, p.name)
            if count == 0:
                return body  # dead code
            if (_atomic(bound) or (count == 1 and not under_lambda and not isinstance(bound, (Lam, LinLam)))) \
                    and _can_substitute(body, bound):
                return substitute(body, p.name, bound)
        return t

    def tangent_names(self, bindings: list[tuple[Pattern, Term]], body: Term | None,
                      renames: dict[str, Term] | None = None) -> tuple[list, Term | None]:
        """In ``let x = y; dx = t``, about to become ``let dx = t`` with ``y`` for ``x``, the
        tangent is renamed ``dy`` so that it stays named after its value: in ``body``, or,
        with the census, by recording the renaming in ``renames``."""
        values = {p.name: b.name for p, b in bindings if isinstance(p, PVar) and isinstance(b, Var)}
        out = []
        for p, b in bindings:
            if isinstance(p, PVar) and p.name[:1] == "d" and p.name[1:] in values and _invented(p.name):
                new = "d" + values[p.name[1:]]
                # every binder is in self.used: a new name cannot be captured in the census's case
                if new not in self.used and (renames is not None or _can_substitute(body, Var(new))):
                    self.used.add(new)
                    if renames is not None:
                        renames[p.name] = Var(new)
                        self.census.renamed(p.name, new)
                    else:
                        body = substitute(body, p.name, Var(new))
                    p = replace(p, name=new)
            out.append((p, b))
        return out, body

    # -- whole let chains ---------------------------------------------------------

    def chains(self, t: Term) -> Term:
        """Rewrites that need a whole chain of bindings: floating, CSE, backward passes,
        pattern refinement."""
        if type(t) is Var or type(t) is Lit:
            return t
        if isinstance(t, Let):
            chain, body = let_chain(t)
            bindings = [(let.pattern, self.chains(let.bound)) for let in chain]
            body = self.chains(body)
            bindings, body = self.float_out(bindings, body)
            bindings, body = self.cse(bindings, body)
            if self.run_backward:
                body = self.backward(bindings, body)
            bindings, body = self.refine(bindings, body)
            return _lets(bindings, body)
        if isinstance(t, (Lam, LinLam)):
            body = self.chains(t.body)
            param, body = self.refine_param(t.param, body)
            return update(t, param=param, body=body)
        if isinstance(t, (Tuple, Prim, App)):
            t = _map(t, self.chains)
            floated, t = self.float_args(t)
            return _lets(floated, t)
        return _map(t, self.chains)

    def float_args(self, t: Term) -> tuple[list[tuple[Pattern, Term]], Term]:
        """``(let x = u in v, w)`` → ``let x = u in (v, w)``: every component is evaluated
        anyway (call by value).  Only when no name a component binds is bound by another
        or occurs free in it: floated bindings scope over every component."""
        if isinstance(t, Tuple):
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
        binders = [set(itertools.chain.from_iterable(pattern_names(let.pattern) for let in chain))
                   for chain, _ in chains]
        for i, names in enumerate(binders if not self.distinct else ()):  # distinct: no clash
            if names and any(names & (binders[j] | _free(parts[j])) for j in range(len(parts)) if j != i):
                return [], t
        floated = [(let.pattern, let.bound) for chain, _ in chains for let in chain]
        bodies = [body for _, body in chains]
        if isinstance(t, Tuple):
            return floated, update(t, items=tuple(bodies))
        if isinstance(t, Prim):
            return floated, update(t, args=tuple(bodies))
        return floated, update(t, fn=bodies[0], arg=bodies[1])

    def float_out(self, bindings, body):
        """Flatten the chain: bindings whose bound term is itself a chain are spliced in."""
        out: list[tuple[Pattern, Term]] = []
        used: set[str] | None = None  # the free variables of the chain, found once
        for p, b in bindings:
            if isinstance(b, Let):
                chain, inner = let_chain(b)
                names = set(itertools.chain.from_iterable(pattern_names(let.pattern) for let in chain))
                if used is None:  # distinct binders: no name of the chain occurs free
                    used = set() if self.distinct else _free(body).union(*(_free(x) for _, x in bindings))
                if not names & used:
                    out.extend((let.pattern, let.bound) for let in chain)
                    out.append((p, inner))
                    continue
            out.append((p, b))
        return out, body

    def cse(self, bindings, body):
        """A binding whose term was bound before (up to renaming) reuses the earlier name.
        Backpropagators only if their cotangents are reals: two alike tensor ones
        (``λa ⊸ x' (sum a)``) may receive cotangents of different shapes, which linear
        factoring must then never add together."""
        seen: dict = {}
        out: list[tuple[Pattern, Term]] = []
        renames: dict[str, Term] = {}
        for p, b in bindings:
            b = _substitute_all(b, renames)  # every renaming at once, in one pass
            if isinstance(p, PVar) and not _atomic(b) and not (isinstance(b, LinLam) and b.param.annot != REAL):
                key = alpha_key(b, _TYPED)
                if key in seen:
                    renames[p.name] = Var(seen[key])
                    continue
                seen[key] = p.name
            out.append((p, b))
        return out, _substitute_all(body, renames)

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
                total = _add(pending.pop(target))
                fn = backprops[target][1]
                uses, _ = _occurrences(fn.body, fn.param.name)
                if not _atomic(total) and uses > 1:
                    name = self.fresh("b")
                    steps.append((PVar(name), total))
                    total = Var(name)
                if not _can_substitute(fn.body, total):
                    return lin
                inner_chain, inner = let_chain(fn.body)
                steps.extend((let.pattern, let.bound) for let in inner_chain)
                send(substitute(inner, fn.param.name, total) if not inner_chain else
                     substitute(_lets([], inner), fn.param.name, total))
            self.distinct = False  # the backpropagators' bindings are copied
            return update(lin, body=_lets(steps, _factor(rest)))

        def visit(t: Term) -> Term:
            if isinstance(t, LinLam):
                return run(t)
            if isinstance(t, (Lam, Let)):
                return t
            return map_children(t, visit)

        return visit(body)

    def refine(self, bindings, body):
        """A variable bound to a pair that is only ever taken apart is bound by a tuple
        pattern instead: ``let x = u; (y, y') = x`` → ``let (x, x') = u`` (see
        :meth:`refine_param`)."""
        if not any(isinstance(p, PVar) for p, _ in bindings):
            return bindings, body  # nothing to split
        if self.distinct:  # known distinct: count the uses of the chain's names only
            names = {n for p, _ in bindings for n in pattern_names(p)}
            return self.refine_distinct(bindings, body, *_destructurings(_lets(bindings, body), names))
        scan = _Scan(_lets(bindings, body), destructurings=True)
        if scan.distinct:
            return self.refine_distinct(bindings, body, scan.count, scan.found)
        bindings = list(bindings)
        for i, (p, b) in enumerate(bindings):  # a split rewrites only what follows binding i
            if isinstance(p, PVar):
                rest = _lets(bindings[i + 1:], body)
                arity = _destructured_only(rest, p.name)
                if arity:
                    new_p, rest = self.split(p, arity, rest)
                    # the later bindings, the destructurings among them now several each
                    later, body = _unlets(rest, len(bindings) - i - 1 + _expansion(bindings[i + 1:], p.name))
                    bindings[i:] = [(new_p, b)] + later
        return bindings, body

    def refine_distinct(self, bindings, body, uses: dict[str, int], destructured: dict):
        """:meth:`refine` for a chain whose binders are distinct, in linear time: one census
        of how each variable is taken apart, the bindings visited in order (a destructuring
        ``let (y, y') = x`` of a variable split before becomes ``let y = x_1; y' = x_2``,
        bindings visited in their turn), and one pass making the other destructurings."""
        parts: dict[str, list[str]] = {}
        out: list[tuple[Pattern, Term]] = []
        todo = list(reversed(bindings))
        while todo:
            p, b = todo.pop()
            if isinstance(b, Var) and b.name in parts and isinstance(p, PTuple):
                todo.extend(reversed([(item, Var(part)) for item, part in zip(p.items, parts[b.name])]))
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
            if p.annot is not None and not isinstance(p.annot, TupleType):
                return p, body  # not a tuple: never split, and its body is not searched
            if self.distinct:
                uses, found = _destructurings(body, {p.name})
            else:
                scan = _Scan(body, destructurings=True)
                uses, found = (scan.free_count, scan.found) if scan.distinct else (None, None)
            if found is not None:  # one census of the body answers both questions, as in refine_distinct
                count, arities, given = found.get(p.name, (0, set(), []))
                arity = arities.pop() if count and uses.get(p.name) == count and len(arities) == 1 else 0
                if arity and (p.annot is None or len(p.annot.items) == arity):
                    names = self.split_names(p, arity, given + [None] * (arity - len(given)), taken)
                    return self.split_pattern(p, names), _destructure_all(body, {p.name: names})
                return p, body
            arity = _destructured_only(body, p.name)
            if arity and (p.annot is None or len(p.annot.items) == arity):
                return self.split(p, arity, body, taken)
            return p, body
        if isinstance(p, PTuple):
            items = list(p.items)
            for i, item in enumerate(items):
                others = {n for j, other in enumerate(items) if j != i for n in pattern_names(other)}
                items[i], body = self.refine_param(item, body, taken | others)
            return replace(p, items=tuple(items)), body
        return p, body

    def split(self, p: PVar, arity: int, body: Term, taken: frozenset[str] = frozenset()) -> tuple[PTuple, Term]:
        """Bind ``p``'s components by name: the names a destructuring gave them if any, else
        ``(x, x')`` for a pair (a value and its backpropagator), else ``x_1, …`` — all
        distinct, distinct from the ``taken`` names of the pattern ``p`` is part of, and
        capturing nothing in ``body``, the scope of the new pattern."""
        names = self.split_names(p, arity, _component_names(body, p.name, arity), taken, body)
        return self.split_pattern(p, names), _destructure(body, p.name, names)

    def split_names(self, p: PVar, arity: int, given: list[str | None], taken: frozenset[str] = frozenset(),
                    body: Term | None = None) -> list[str]:
        """The names of :meth:`split`, ``given`` those of the first destructuring; without
        ``body`` the binders are distinct, so a given name captures nothing."""
        if p.name in self.keep and not any(g in self.keep for g in given if g is not None):
            given = [None] * arity  # a user's variable: its parts are x and x'
        free = _free(body) if body is not None else set()
        names: list[str] = []
        for i in range(arity):
            # a given name must capture nothing in the scope, and nothing there may capture it
            if given[i] is not None and given[i] not in names and given[i] not in taken and given[i] not in free \
                    and (body is None or given[i] not in _binders_besides(body, p.name, i)):
                names.append(given[i])
                self.distinct = False  # its destructuring becomes the binding given[i] = given[i]
                continue
            name = (p.name + "'" * i if not _tangent_pair(p.annot) else "d" * i + p.name) if arity == 2 \
                else f"{p.name}_{i + 1}"
            clash = name in names or name in given[i + 1:] or name in taken or (name in self.used and name != p.name)
            names.append(self.fresh(p.name) if clash else name)
        self.used.update(names)
        return names

    def split_pattern(self, p: PVar, names: list[str]) -> PTuple:
        """``p`` as a tuple pattern binding ``names``."""
        annots = p.annot.items if isinstance(p.annot, TupleType) else [None] * len(names)
        return PTuple(tuple(PVar(n, a) for n, a in zip(names, annots)), span=p.span)


def _tangent_pair(t) -> bool:
    """Whether ``t`` is →D(Real) or →D(Tensor): a value and its tangent, ``(x, dx)``."""
    return isinstance(t, TupleType) and len(t.items) == 2 and t.items[0] == t.items[1] and t.items[0] in (REAL, TENSOR)


def _unlets(t: Term, n: int) -> tuple[list[tuple[Pattern, Term]], Term]:
    out = []
    for _ in range(n):
        assert isinstance(t, Let)
        out.append((t.pattern, t.bound))
        t = t.body
    return out, t


def _expansion(bindings: list[tuple[Pattern, Term]], name: str) -> int:
    """How many bindings :func:`_destructure` adds to ``bindings`` when it replaces each
    ``let (p1, …, pn) = name`` among them by ``n`` bindings (up to where ``name`` is bound
    again)."""
    added = 0
    for p, b in bindings:
        if isinstance(b, Var) and b.name == name and isinstance(p, PTuple):
            added += len(p.items) - 1
        if name in pattern_names(p):
            break
    return added


def _destructured_only(t: Term, name: str) -> int:
    """The arity of the tuple patterns ``name`` is always taken apart with, if every one of
    its occurrences is ``let (p1, ..., pn) = name``; else 0."""
    arities: set[int] = set()
    ok = True

    def walk(node: Term, shadowed: bool) -> None:
        nonlocal ok
        if not ok or shadowed:
            return
        if isinstance(node, Var):
            if node.name == name:
                ok = False
            return
        if isinstance(node, Let):
            for let in let_chain(node)[0]:
                if isinstance(let.bound, Var) and let.bound.name == name and isinstance(let.pattern, PTuple):
                    arities.add(len(let.pattern.items))
                else:
                    walk(let.bound, False)
                if name in pattern_names(let.pattern):
                    return
            walk(let_chain(node)[1], False)
            return
        if isinstance(node, (Lam, LinLam)) and name in pattern_names(node.param):
            return
        for c in children(node):
            walk(c, False)

    walk(t, False)
    return arities.pop() if ok and len(arities) == 1 else 0


def _destructurings(t: Term, names: set[str]) -> tuple[dict[str, int], dict]:
    """For the variables ``names`` of a term whose binders are distinct: how often each
    occurs, and how it is taken apart, as :class:`_Scan` says with ``destructurings``;
    a lighter walk, for it need not check that the binders are distinct."""
    count: dict[str, int] = {}
    found: dict[str, tuple[int, set[int], list[str | None]]] = {}
    stack = [t]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        cls = type(node)
        if cls is Var:
            if node.name in names:
                count[node.name] = count.get(node.name, 0) + 1
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
                _note_destructuring(found, bound.name, pattern)
        elif cls is Lam or cls is LinLam:
            push(node.body)
        elif cls is Tuple:
            extend(reversed(node.items))
        elif cls is not Lit:
            extend(reversed(list(children(node))))
    return count, found


def _destructure_all(t: Term, parts: dict[str, list[str]]) -> Term:
    """:func:`_destructure` for several variables in one pass (binders distinct)."""
    if not parts or type(t) is Var or type(t) is Lit:
        return t
    if isinstance(t, Let):
        chain, body = let_chain(t)
        out: list[tuple[Pattern, Term]] = []
        for let in chain:
            if isinstance(let.bound, Var) and let.bound.name in parts and isinstance(let.pattern, PTuple):
                out.extend((item, Var(part)) for item, part in zip(let.pattern.items, parts[let.bound.name]))
            else:
                out.append((let.pattern, _destructure_all(let.bound, parts)))
        return _lets(out, _destructure_all(body, parts))
    return _map(t, lambda c: _destructure_all(c, parts))


def _binders_besides(t: Term, name: str, component: int) -> set[str]:
    """The names bound in ``t`` other than by the ``component``-th items of the patterns
    of ``let (…) = name``."""
    out: set[str] = set()
    stack = [t]
    while stack:
        node = stack.pop()
        p = getattr(node, "param", None) or getattr(node, "pattern", None)
        if isinstance(node, Let) and node.bound == Var(name) and isinstance(p, PTuple):
            out.update(n for i, item in enumerate(p.items) if i != component for n in pattern_names(item))
        elif isinstance(p, Pattern):
            out.update(pattern_names(p))
        stack.extend(children(node))
    return out


def _component_names(t: Term, name: str, arity: int) -> list[str | None]:
    """For each component of ``name``, the variable the first ``let (…) = name`` binds it to;
    where ``name`` is bound again, that is another variable, perhaps of another arity."""
    found: list[str | None] = [None] * arity
    stack = [t]
    while stack:
        node = stack.pop()
        if isinstance(node, Let) and isinstance(node.bound, Var) and node.bound.name == name \
                and isinstance(node.pattern, PTuple):
            for i, item in enumerate(node.pattern.items):
                if found[i] is None and isinstance(item, PVar):
                    found[i] = item.name
        if isinstance(node, (Lam, LinLam)) and name in pattern_names(node.param):
            continue
        if isinstance(node, Let) and name in pattern_names(node.pattern):
            stack.append(node.bound)  # the body sees the new one
            continue
        stack.extend(reversed(list(children(node))))
    return found


def _destructure(t: Term, name: str, parts: list[str]) -> Term:
    """Replace each ``let (p1, ..., pn) = name`` by ``let p1 = part1; ...`` (then copy-propagated)."""
    if isinstance(t, Let):
        chain, body = let_chain(t)
        out: list[tuple[Pattern, Term]] = []
        for i, let in enumerate(chain):
            if isinstance(let.bound, Var) and let.bound.name == name and isinstance(let.pattern, PTuple):
                out.extend((item, Var(part)) for item, part in zip(let.pattern.items, parts))
            else:
                out.append((let.pattern, _destructure(let.bound, name, parts)))
            if name in pattern_names(let.pattern):  # shadowed: the rest of the chain is left as is
                return _lets(out, _lets([(l.pattern, l.bound) for l in chain[i + 1:]], body))
        return _lets(out, _destructure(body, name, parts))
    if isinstance(t, (Lam, LinLam)) and name in pattern_names(t.param):
        return t
    return map_children(t, lambda c: _destructure(c, name, parts))


def _factor(summands: list[Term]) -> Term:
    """Linear factoring: ``x' u + x' v → x' (u + v)``."""
    groups: dict[str, list[Term]] = {}
    others: list[Term] = []
    order: list[str] = []
    for s in summands:
        if isinstance(s, App) and isinstance(s.fn, Var):
            if s.fn.name not in groups:
                order.append(s.fn.name)
            groups.setdefault(s.fn.name, []).append(s.arg)
        else:
            others.append(s)
    return _sum([App(Var(n), _add(groups[n])) for n in order] + others)


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
    the backward pass, ``a`` for cotangents, ``f1, …`` for functions."""

    def __init__(self, keep: set[str]):
        self.keep = keep
        self.taken = set(keep)
        self.values = (f"z{i}" for i in itertools.count(1))
        self.back_iter = itertools.chain(iter("bcdeghkmnoqrsuvw"), (f"c{i}" for i in itertools.count(1)))

    def next_name(self, source: Iterator[str]) -> str:
        for name in source:
            if name not in self.taken:
                self.taken.add(name)
                return name
        raise AssertionError("unreachable")  # pragma: no cover

    def term(self, t: Term, env: dict[str, str] | None = None, cotangent: bool = False) -> Term:
        env = env or {}
        if isinstance(t, Var):
            return update(t, name=env.get(t.name, t.name))
        if isinstance(t, LinLam):
            param, inner = self.pattern(t.param, env, "a")
            return update(t, param=param, body=self.term(t.body, inner, cotangent=True))
        if isinstance(t, Lam):
            param, inner = self.pattern(t.param, env, "x")
            return update(t, param=param, body=self.term(t.body, inner, cotangent))
        if isinstance(t, Let):
            chain, body = let_chain(t)
            out = []
            inner = dict(env)
            for let in chain:
                bound = self.term(let.bound, inner, cotangent)
                pattern, inner = self.pattern(let.pattern, inner, "b" if cotangent else "z")
                out.append((pattern, bound))
            return _lets(out, self.term(body, inner, cotangent))
        return map_children(t, lambda c: self.term(c, env, cotangent))

    def pattern(self, p: Pattern, env: dict[str, str], role: str) -> tuple[Pattern, dict[str, str]]:
        env = dict(env)
        if isinstance(p, PVar):
            base = p.name.rstrip("'")
            tangent_of_kept = p.name[:1] == "d" and p.name[1:] in self.keep
            if p.name in self.keep or base in self.keep or tangent_of_kept or not _invented(p.name):
                self.taken.add(p.name)
                env.pop(p.name, None)
                return p, env
            primes = p.name[len(base):]
            if base in env:  # x3' after x3: keep the pair's names together
                new = env[base] + primes
            elif p.name[:1] == "d" and p.name[1:] in env:  # and dx3 after x3
                new = "d" + env[p.name[1:]]
                new = new if new not in self.taken else self.next_name(f"{new}_{i}" for i in itertools.count(1))
            elif role == "a":
                new = "a" if "a" not in self.taken else self.next_name(f"a{i}" for i in itertools.count(1))
            elif role == "b":
                new = self.next_name(self.back_iter)
            else:
                new = self.next_name(self.values)
            if primes and base not in env:
                env[base] = new
                new = new + primes
            env[p.name] = new
            if not primes:
                env[base] = new
            self.taken.add(new)
            return replace(p, name=new), env
        if isinstance(p, PTuple):
            items = []
            for item in p.items:
                item, env = self.pattern(item, env, role)
                items.append(item)
            return replace(p, items=tuple(items)), env
        return p, env
