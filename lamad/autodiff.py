"""The AD operators at run time (docs/differentiation.md): ``grad``, ``value_and_grad``,
``vjp`` and ``jvp`` applied to function values, nested to any depth.

``grad f`` differentiates the *value* it is given: a closure is its lambda's compiled
function, which knows its term, partially applied to the values it captured
(lamad/eval.py), and :func:`relift` makes its ←D version — ←D of the lambda, checked
and compiled once by the runtime's ``derive`` (:func:`lamad.driver.derive`, cached per
closure by ``lamad.eval._LamSource``), applied to the values it captured, lifted in
turn.  Then ``grad f = λx. let (y, y') = ←D(f) (wrap x) in collect (y' 1.0)``, forced in
linear time (lamad/gradient.py).  ``jvp f x dx`` runs →D(f) on the pairs of ``x`` and
``dx``.

**Nesting.**  An AD operator that occurs inside a term which a transform M (a sequence of
←D and →D) has transformed is marked with it (``grad'f``, lamad/transform.py).  Its
function is then M's version of a source function ``f``, and what it must compute is
M's version of ``grad f``: ``M(grad f) = λx. let (y, y') = M(←D(f)) (wrap x) in
collect (y' (M 1.0))``.  :func:`relift` makes ``M(←D(f))`` from ``M(f)``: a closure
made by M remembers the lambda it was made from (``Lam.origin``), so ←D can be applied
under M, and the values it captured are lifted the same way.  ``wrap``, ``force`` and
``collect`` do not look inside the leaves they pair, sum and read, so the same code
serves every level; forcing stays linear at every level.  The values of AD operators are
themselves differentiable (:class:`Gradient`, :class:`Pullback`): they know how to be
lifted through one more transform.  This is how ``hvp f x v = snd (jvp (grad f) x v)``
runs forward-over-reverse.
"""

from __future__ import annotations

import gc
from functools import partial
from itertools import islice, repeat
from operator import is_not, itemgetter
from typing import Any, Callable, Iterator

from lamad.adtypes import marked_type
from lamad.deep import collector_paused, deep
from lamad.errors import LamRuntimeError
from lamad.gradient import ZERO_BACKPROP, Backpropagator, force, maker, sum_apply
from lamad.prims import Runtime
from lamad.prims.lists import uncurried
from lamad.syntax import PRODUCTS, REAL, TENSOR, Base, FunType, LinType, ListType, Span, TupleType, Type

# --------------------------------------------------------------------- lifting values

_REAL_NAMES = frozenset({REAL.name, TENSOR.name})


def is_real(t: Type) -> bool:
    """Whether ``t`` is ``Real`` or ``Tensor``, a leaf that AD pairs with a derivative.

    The same as ``t in (REAL, TENSOR)`` (base types are equal when of the same class and
    name) without the dataclass ``__eq__`` calls that test makes: it runs on every node of
    every value a gradient wraps, lifts and collects, once per call of the gradient."""
    return t.__class__ is Base and t.name in _REAL_NAMES


def zeros(value: Any, xp) -> Any:
    """A zero shaped like ``value``, a leaf of a transformed value: zero arrays, and the
    zero backpropagator in place of backpropagators."""
    if isinstance(value, tuple):
        return tuple([zeros(v, xp) for v in value])
    if isinstance(value, Backpropagator):
        return ZERO_BACKPROP
    return xp.zeros_like(value)


def constant(value: Any, marks: str, runtime: Runtime) -> Any:
    """A real that does not depend on anything, through the transforms ``marks``
    (innermost first): ←D pairs it with ``λa ⊸ 0``, →D with a zero tangent, and each
    transform is applied inside the ones after it (``"rf"``: ``((r, 0.0), λa ⊸ 0)``)."""
    for depth, mark in enumerate(reversed(marks)):
        value = relift(value, REAL, mark, depth, runtime)
    return value


def relift(value: Any, t: Type, mark: str, depth: int, runtime: Runtime) -> Any:
    """``M(S(v))`` from ``M(v)``, for a value ``v`` of type ``t``, ``S`` the transform
    ``mark`` (``"r"`` for ←D, ``"f"`` for →D) and ``M`` the ``depth`` transforms the
    value has been through.  At depth 0 this lifts a value into ``S``'s world as a
    constant (the free variables of a differentiated function are constants:
    docs/differentiation.md, Conventions)."""
    if is_real(t):
        return value, (ZERO_BACKPROP if mark == "r" else zeros(value, runtime.backend.xp))
    if isinstance(t, PRODUCTS):
        return tuple([relift(v, i, mark, depth, runtime) for v, i in zip(value, t.items)])
    if isinstance(t, ListType):
        if mark == "r" and is_real(t.elem):  # data, most often (an RNN's inputs): no call per element
            return [(v, ZERO_BACKPROP) for v in value]
        return [relift(v, t.elem, mark, depth, runtime) for v in value]
    if isinstance(t, (FunType, LinType)):
        if isinstance(value, Differentiated):
            return value.relift(mark, depth)
        lifted, captured = (value.func, value.args) if isinstance(value, partial) else (value, ())
        source = getattr(lifted, "lamad", None)
        if source is None:
            raise LamRuntimeError("cannot differentiate through a function that was not written in lamad")
        return source.relift(captured, mark, depth)
    return value


def lift(value: Any, t: Type, runtime: Runtime) -> Any:
    """A value of type ``A`` as a constant of type ←D(A)."""
    return relift(value, t, "r", 0, runtime)


# --------------------------------------------------------------------- walking a point


_input = maker(None)
"""A new backpropagator of an input (no body: forcing leaves what it is sent to collect),
made by one call of a function (lamad/gradient.py, :func:`~lamad.gradient.maker`)."""


def _wrap_real(x: Any, inputs: list[Backpropagator]) -> tuple[Any, Backpropagator]:
    bp = _input()
    inputs.append(bp)
    return x, bp


def _no_walk(x: Any, inputs: list[Backpropagator]) -> Any:
    return x


def wrapper(t: Type) -> Callable[[Any, list[Backpropagator]], Any]:
    """``wrap_A`` at type ``t``: pair each real leaf of a point with a backpropagator of its
    own, appended to ``inputs`` in the order of the leaves.  The tests on ``t`` are made
    once, when a gradient is made (:func:`walks`): it is called again and again at points
    of one type, and a tuple of reals (a network's weights) is wrapped without a call per
    leaf."""
    if is_real(t):
        return _wrap_real
    if isinstance(t, PRODUCTS):
        items = [wrapper(i) for i in t.items]
        if all(item is _wrap_real for item in items):
            def reals(x: tuple, inputs: list[Backpropagator]) -> tuple:
                bps = [_input() for _ in x]
                inputs += bps
                return tuple(zip(x, bps))
            return reals
        return lambda x, inputs: tuple([item(v, inputs) for item, v in zip(items, x)])
    if isinstance(t, ListType):
        elem = wrapper(t.elem)
        return lambda x, inputs: [elem(v, inputs) for v in x]
    return _no_walk


def _collect_real(x: Any, cotangents: dict, inputs: Iterator[Backpropagator], xp) -> Any:
    ct = cotangents.get(next(inputs))
    return zeros(x, xp) if ct is None else ct


def _no_cotangent(x: Any, cotangents: dict, inputs: Iterator[Backpropagator], xp) -> tuple:
    return ()


def collector(t: Type) -> Callable[[Any, dict, Iterator[Backpropagator], Any], Any]:
    """``collect_A`` at type ``t``: the cotangent of each real leaf of a point, read in
    ``cotangents`` at the next of the point's ``inputs`` (those :func:`wrapper` made, in
    order), zeros where nothing arrived; the tests on ``t`` made once, as
    :func:`wrapper`'s."""
    if is_real(t):
        return _collect_real
    if isinstance(t, PRODUCTS):
        items = [collector(i) for i in t.items]
        if all(item is _collect_real for item in items):
            def reals(x: tuple, cotangents: dict, inputs: Iterator[Backpropagator], xp) -> tuple:
                cts = tuple(map(cotangents.get, islice(inputs, len(x))))  # read by C loops, as all arrive
                if all(map(is_not, cts, repeat(None))):
                    return cts
                return tuple([zeros(v, xp) if ct is None else ct for v, ct in zip(x, cts)])
            return reals
        return lambda x, cotangents, inputs, xp: tuple([item(v, cotangents, inputs, xp) for item, v in zip(items, x)])
    if isinstance(t, ListType):
        elem = collector(t.elem)
        return lambda x, cotangents, inputs, xp: [elem(v, cotangents, inputs, xp) for v in x]
    return _no_cotangent


def _split(y: Any, t: Type, backprops: list) -> Any:
    """The primal part of a ←D value, gathering the backpropagators of its leaves."""
    if is_real(t):
        backprops.append(y[1])
        return y[0]
    if isinstance(t, PRODUCTS):
        return tuple([_split(v, i, backprops) for v, i in zip(y, t.items)])
    if isinstance(t, ListType):
        return [_split(v, t.elem, backprops) for v in y]
    return y


def _leaves(ct: Any, t: Type, out: list) -> list:
    if is_real(t):
        out.append(ct)
    elif isinstance(t, PRODUCTS):
        for v, i in zip(ct, t.items):
            _leaves(v, i, out)
    elif isinstance(t, ListType):
        for v in ct:
            _leaves(v, t.elem, out)
    return out


def pair(x: Any, dx: Any, t: Type) -> Any:
    """The →D value of a point and a tangent: each real leaf paired with its tangent,
    which must fit it (:func:`check_fits`)."""
    check_fits(x, dx, t, "tangent", "point")
    return _pair(x, dx, t)


def _pair(x: Any, dx: Any, t: Type) -> Any:
    if is_real(t):
        return x, dx
    if isinstance(t, PRODUCTS):
        return tuple([_pair(v, dv, i) for v, dv, i in zip(x, dx, t.items)])
    if isinstance(t, ListType):
        return [_pair(v, dv, t.elem) for v, dv in zip(x, dx)]
    return x


def check_fits(x: Any, v: Any, t: Type, what: str, of: str) -> None:
    """Refuse a tangent or cotangent ``v`` (``what``) that does not fit the value ``x``
    (``of``, the point or the result) of type ``t``: a tensor of another shape, a list of
    another length (the checker has seen to the rest)."""
    if is_real(t):
        shape, v_shape = tuple(getattr(_primal(x), "shape", ())), tuple(getattr(_primal(v), "shape", ()))
        if shape != v_shape:
            raise ValueError(f"the {what} has shape {v_shape} where the {of} has shape {shape}")
    elif isinstance(t, PRODUCTS):
        for a, b, i in zip(x, v, t.items):
            check_fits(a, b, i, what, of)
    elif isinstance(t, ListType):
        if len(x) != len(v):
            raise ValueError(f"a list of {len(x)} elements has a {what} of {len(v)}")
        for a, b in zip(x, v):
            check_fits(a, b, t.elem, what, of)


def _unpair(y: Any, t: Type) -> tuple[Any, Any]:
    """A →D value split into its value and its tangent (``()`` for discrete parts)."""
    if is_real(t):
        return y
    if isinstance(t, PRODUCTS):
        parts = [_unpair(v, i) for v, i in zip(y, t.items)]
        return tuple(p for p, _ in parts), tuple(d for _, d in parts)
    if isinstance(t, ListType):
        parts = [_unpair(v, t.elem) for v in y]
        return [p for p, _ in parts], [d for _, d in parts]
    return y, ()


def _primal(y: Any) -> Any:
    """The value inside a transformed real (the first component, all the way down)."""
    while isinstance(y, tuple):
        y = y[0]
    return y


# --------------------------------------------------------------------- the operators


class Differentiated:
    """The value of an AD operator that is a function: it runs the transformed function
    it was given, and can be lifted through one more transform by :meth:`relift`.

    ``f`` is the function it differentiates, as a value of the world it lives in, ``fty``
    the type that function had where the operator was written, and ``marks`` the
    transforms between there and here, innermost first."""

    def __init__(self, f: Callable, fty: FunType, marks: str, runtime: Runtime, span: Span | None):
        self.f, self.fty, self.marks, self.runtime, self.span = f, fty, marks, runtime, span

    def inserted(self, mark: str, depth: int) -> str:
        """The marks of this value lifted through ``mark`` under its last ``depth`` ones."""
        cut = len(self.marks) - depth
        return self.marks[:cut] + mark + self.marks[cut:]

    def relift(self, mark: str, depth: int) -> Differentiated:
        raise NotImplementedError


class Gradient(Differentiated):
    """``grad f`` and ``value_and_grad f``: ``λx. collect (y' 1.0)`` with ``(y, y') =
    ←D(f) (wrap x)``, under the transforms ``marks``.  ←D(f) is made on the first
    call, made again on the second — its fused tier, compiled once the function is
    differentiated again (``lamad.eval._LamSource``) — and kept, with the seed ``1.0``,
    for the next ones.

    A gradient, as a pullback, runs with the cyclic garbage collector paused: its
    forward pass builds a graph of backpropagators that all survive until forced, and
    the collector would scan it again and again (three quarters of the gradient's time
    on a 10,000-link chain).  Values hold no cycles, so reference counting frees it all:
    the graph is let go as it is forced (nothing here holds its root)."""

    def __init__(self, f, fty, marks, runtime, span, with_value: bool):
        super().__init__(f, fty, marks, runtime, span)
        self.with_value = with_value
        self._dual: Callable | None = None
        self._lifts = 0  # ←D(f) is lifted on the first two calls: its two tiers
        self._seed = constant(runtime.backend.scalar(1.0), marks, runtime)
        self._walks = walks(fty.dom)

    def __call__(self, x: Any) -> Any:
        if self._lifts < 2:
            self._lifts += 1
            self._dual = None  # the first tier goes before the second is made
            self._dual = relift(self.f, self.fty, "r", len(self.marks), self.runtime)
        return pulled_back(self._dual, x, self._walks, self._seed, self.with_value, self.runtime, self.span)

    def relift(self, mark: str, depth: int) -> Gradient:
        f = relift(self.f, self.fty, mark, depth, self.runtime)
        return Gradient(f, self.fty, self.inserted(mark, depth), self.runtime, self.span, self.with_value)


Walks = tuple[Callable[[Any, list[Backpropagator]], Any], Callable[[Any, dict, Iterator[Backpropagator], Any], Any]]
"""``wrap_A`` and ``collect_A`` at one type ``A``: :func:`wrapper` and :func:`collector`."""


@deep
def walks(t: Type) -> Walks:
    """``wrap_A`` and ``collect_A`` at type ``t``, for a gradient to make once (on a big
    stack for a type nested deeper than Python's recursion allows)."""
    return wrapper(t), collector(t)


def pulled_back(dual: Callable, x: Any, walks_: Walks, seed: Any, with_value: bool, runtime: Runtime,
                span: Span | None, arguments: list | None = None, nums: tuple[int, ...] = ()) -> Any:
    """``collect (y' seed)`` with ``(y, y') = dual (wrap x)``, for ``x`` of the type of
    ``walks_``, and ``(y, …)`` ``with_value``: a gradient's call, the collector paused (:class:`Gradient`).
    Given ``arguments``, ``dual`` is a function of them all (:func:`uncurried`), and ``wrap x``
    is put in among them at ``nums`` (one argument, or the items of a tuple:
    :class:`ArgumentGradient`)."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        inputs: list[Backpropagator] = []
        wrap, collect = walks_
        wrapped = wrap(x, inputs)
        if arguments is None:
            applied = dual(wrapped)
        else:
            if len(nums) == 1:
                arguments[nums[0]] = wrapped
            else:
                for n, w in zip(nums, wrapped):
                    arguments[n] = w
            applied = dual(*arguments)
        result = list(applied)  # [y, y'], so that y' can be let go
        del applied
        y = result[0]
        value = y if y.__class__ is not tuple else _primal(y)
        if getattr(value, "ndim", 0) != 0:
            op = "value_and_grad" if with_value else "grad"
            raise LamRuntimeError(f"'{op}' needs a scalar result, but the function returned a tensor of "
                                  f"shape {tuple(value.shape)}; reduce it with sum or mean", span)
        forced = force(result.pop()(seed), once=True)  # y' 1.0: the record alone holds y' while it is forced
        ct = collect(x, forced, iter(inputs), runtime.backend.xp)
        return (y, ct) if with_value else ct
    finally:
        if paused:
            gc.enable()


class ArgumentGradient:
    """``grad`` and ``value_and_grad`` of a curried function ``f : A0 → … → An → B`` in
    its arguments ``nums``, the others held constant, as Python calls them (lamad/api.py):
    ``grad (λ(x_i)ᵢ∈nums. f x0 … xn)`` at the point of the arguments, without that lambda.
    ←D of the lambda would apply ←D(f) to its wrapped parameters and to the held
    arguments, which it captured, lifted as constants (docs/differentiation.md,
    Conventions); this does the same, ←D(f) lifted on the first two calls (its two tiers,
    as :class:`Gradient`'s) and kept, so that a later call makes no closure, no gradient
    value and no lift of ``f``: only the constants.  ←D(f) is applied to all its arguments
    in one call (:func:`uncurried`)."""

    def __init__(self, f: Callable, fty: FunType, params: list[Type], nums: tuple[int, ...], runtime: Runtime,
                 with_value: bool, span: Span | None = None):
        self.f, self.fty, self.params, self.nums = f, fty, params, nums
        self.runtime, self.with_value, self.span = runtime, with_value, span
        held = [i for i in range(len(params)) if i not in nums]
        self.held_reals = [i for i in held if is_real(params[i])]  # constants without a walk: (x, λa ⊸ 0)
        self.held_others = [(i, params[i]) for i in held if not is_real(params[i])]
        self.walks = walks(params[nums[0]] if len(nums) == 1 else TupleType(tuple(params[n] for n in nums)))
        self.point = itemgetter(*nums)  # the argument at nums[0], or the tuple of those at nums
        self.seed = runtime.backend.scalar(1.0)
        self._dual: Callable | None = None
        self._lifts = 0

    @deep
    def __call__(self, values: list) -> Any:
        """The gradient at the arguments ``values``: those at ``nums`` are the point (on a
        big stack where the program recurses too deep for Python's, as a function's call
        from Python, :func:`lamad.driver.apply`)."""
        if self._lifts < 2:
            self._lifts += 1
            self._dual = None  # the first tier goes before the second is made
            self._dual = uncurried(lift(self.f, self.fty, self.runtime), len(self.params))
        arguments = list(values)
        for i in self.held_reals:
            arguments[i] = (values[i], ZERO_BACKPROP)
        for i, t in self.held_others:
            arguments[i] = lift(values[i], t, self.runtime)
        return pulled_back(self._dual, self.point(values), self.walks, self.seed, self.with_value, self.runtime,
                           self.span, arguments, self.nums)


class Pullback(Differentiated):
    """The pullback of ``vjp f x``: ``ct(B) ⊸ ct(A)``, forcing the backpropagators of the
    result on the cotangent it is given."""

    @collector_paused
    def __init__(self, f, fty, marks, runtime, span, x: Any):
        super().__init__(f, fty, marks, runtime, span)
        self.x = x
        self.inputs: list[Backpropagator] = []
        self.backprops: list = []
        dual = relift(f, fty, "r", len(marks), runtime)
        self.y = _split(dual(wrapper(fty.dom)(x, self.inputs)), fty.cod, self.backprops)

    @collector_paused
    def __call__(self, ct: Any) -> Any:
        try:
            check_fits(self.y, ct, self.fty.cod, "cotangent", "result")
        except ValueError as e:
            raise LamRuntimeError(f"vjp: {e}", self.span) from None
        sent = sum_apply(self.backprops, _leaves(ct, self.fty.cod, []))
        return collector(self.fty.dom)(self.x, force(sent), iter(self.inputs), self.runtime.backend.xp)

    def relift(self, mark: str, depth: int) -> Pullback:
        marks = self.inserted(mark, depth)
        here = marked_type(self.fty.dom, self.marks[:len(self.marks) - depth])
        x = relift(self.x, here, mark, depth, self.runtime)
        f = relift(self.f, self.fty, mark, depth, self.runtime)
        return Pullback(f, self.fty, marks, self.runtime, self.span, x)


def vjp(f: Callable, x: Any, fty: FunType, marks: str, runtime: Runtime, span: Span | None) -> tuple[Any, Pullback]:
    """``vjp f x = (f x, pullback)`` with ``pullback : ct(B) ⊸ ct(A)``."""
    pullback = Pullback(f, fty, marks, runtime, span, x)
    return pullback.y, pullback


def jvp(f: Callable, x: Any, dx: Any, fty: FunType, marks: str, runtime: Runtime,
        span: Span | None) -> tuple[Any, Any]:
    """``jvp f x dx = (f x, J·dx)``: →D(f) run on the pairs of ``x`` and ``dx``."""
    dual = relift(f, fty, "f", len(marks), runtime)
    try:
        point = pair(x, dx, fty.dom)
    except ValueError as e:
        raise LamRuntimeError(f"jvp: {e}", span) from None
    return _unpair(dual(point), fty.cod)
