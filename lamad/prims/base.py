"""The record of a primitive, and the registry every pass reads.

A :class:`Primitive` owns everything about one primitive operation of lamad: its type
scheme and the rule of the checker that types it, its implementation on an array
namespace, its derivative (tangent rules for →D, transposed derivatives for ←D, or the
kind of derivative it has), the arguments it is linear in, how it is written and
printed (an operator's symbol, precedence and the Python operator the compiler emits),
constant folding, whether it reads only the shape of its argument, and whether users
may call it by name.  Families of primitives are defined in the modules of this
package, one :func:`define` each; the rules, written in lamad, are resolved once all
are defined (:mod:`lamad.prims.rules`).
"""

from __future__ import annotations

from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

from lamad.backend import Backend
from lamad.errors import LamRuntimeError
from lamad.progress import Progress
from lamad.syntax import ARRAY_OF, INT, REAL, TENSOR, FunType, ListType, Term, TVar, Type

# Scheme variables: negative ids, replaced by fresh variables at each use.
A, B, C = TVar(-1), TVar(-2), TVar(-5)
F = TVar(-3, "float")  # Real or Tensor
N = TVar(-4, "num")  # Int, Real or Tensor
SHAPE = ListType(INT)


Derive = Callable[[Term, str, int, "Runtime", Callable[[str], Any]], tuple[list[tuple[str, Type]], Callable[..., Any]]]
"""``derive(λ, mark, depth, runtime, globals)``: the free variables of the source lambda of
``λ`` with their types, and the transformed lambda ``M(S(λ))`` compiled on ``runtime``
as a function of their values (see :func:`lamad.driver.derive`)."""


FUSED_BACKWARD: ContextVar[bool] = ContextVar("fused_backward", default=True)
"""Whether ``derive`` fuses the backpropagators of the ←D it makes (lamad/fuse.py); ``lamad
trace``, which shows the paper's one backpropagator per primitive, turns it off.  The
evaluator keeps the derivatives it made apart by it."""


@dataclass(frozen=True)
class Runtime:
    """What compiled code may depend on: the array backend, the directory that relative
    ``load`` paths are resolved against (the program file's), where loops report their
    progress (nowhere by default), and ``derive``, with which the AD operators
    differentiate closures at run time: the evaluator sits below the transforms and the
    checker, so the driver, which assembles them, supplies it (:func:`lamad.driver.runtime`)."""

    backend: Backend
    base_dir: Path
    progress: Progress | None = None
    derive: Derive | None = field(default=None, compare=False, repr=False)

    def derived(self, lam: Term, mark: str, depth: int,
                globals_: Callable[[str], Any]) -> tuple[list[tuple[str, Type]], Callable[..., Any]]:
        """:attr:`derive` of the lambda ``lam`` on this runtime."""
        if self.derive is None:
            raise LamRuntimeError("cannot differentiate a closure on a runtime made without a derive function "
                                  "(make it with lamad.driver.runtime)", lam.span)
        return self.derive(lam, mark, depth, self, globals_)

    def steps(self, items: Iterable, total: int | None, label: str) -> ContextManager[Iterable]:
        """The steps of a loop primitive, shown by :attr:`progress` when there is one;
        ``total`` is their number, ``None`` where it is not known before the loop ends."""
        if self.progress is None:
            return nullcontext(items)
        return self.progress.steps(items, total, label)


@dataclass(frozen=True)
class Operator:
    """How an operator primitive is written: ``symbol`` in source and in print, its
    ``precedence`` (higher binds tighter) and associativity (``"left"``, ``"right"``,
    ``"none"``, or ``"prefix"`` for a unary operator), and the Python operator the
    compiler emits for it on values of every type it takes (``None``: a call)."""

    symbol: str
    precedence: int
    assoc: str
    python: str | None = None


Rules = tuple["str | None", ...]


@dataclass(frozen=True)
class Positive:
    """The shape of an argument of an :attr:`Primitive.example` whose entries must be
    positive (the domain of ``log``, ``sqrt``, a divisor)."""

    shape: tuple[int, ...]


Example = tuple[str, tuple["tuple[int, ...] | Positive", ...]]
Signature = tuple[tuple[Type, ...], Type]


def lifted(params: tuple[Type, ...], result: Type) -> tuple[Signature, ...]:
    """The signatures of an operation on scalars (``Int -> Int -> Int``) that applies
    elementwise to arrays, with broadcasting: each scalar parameter may also be its array
    type (``IntTensor``), and the result is an array where an argument is one."""
    signatures: list[Signature] = [(params, result)]
    for mask in range(1, 2 ** len(params)):
        arrays = tuple(ARRAY_OF[p] if mask >> i & 1 else p for i, p in enumerate(params))
        signatures.append((arrays, ARRAY_OF[result]))
    return tuple(signatures)


def fits(param: Type, arg: Type) -> bool:
    """Whether an argument of the known type ``arg`` may be passed for ``param`` (a Real
    where a Tensor is wanted, as everywhere)."""
    return arg == param or (arg == REAL and param == TENSOR)


def signature_for(prim: "Primitive", args: tuple[Type, ...]) -> Signature | None:
    """The first of an overloaded primitive's signatures that arguments of the known
    types ``args`` fit."""
    for params, result in prim.signatures:
        if all(fits(p, a) for p, a in zip(params, args)):
            return params, result
    return None

@dataclass(frozen=True, eq=False)
class Primitive:
    """One primitive: ``name : params[0] -> … -> result``.

    ``typing`` selects the checker's rule: ``"scheme"`` (the signature as written),
    ``"arith"`` (numeric operands joined with Real ≤ Tensor promotion; Ints allowed when
    ``ints``), ``"compare"`` (Int or Real operands, Bool result), ``"sum_apply"``
    (linear functions applied as an application does), ``"ad"`` (an AD operator) and
    ``"derived"`` (an AD operator written with the others: ``derived`` holds its rule),
    ``"structure"`` (a structure map, written out for its structure's type)
    and ``"overloaded"`` (one of several ``signatures``, chosen by the argument types:
    ``real`` takes an Int or an IntTensor; :func:`lifted` makes the signatures of an
    operation on scalars that also applies elementwise to arrays).

    ``derivative`` says how the transforms treat it: ``"rules"`` (the chain rule with
    ``jvp`` and ``vjp``, one rule per argument, ``None`` for an argument with no
    derivative), ``"special"`` (``jvp`` and ``vjp`` each hold one rule for the whole
    transformed application: the primitive takes or makes lists of tensors),
    ``"written out"`` (the checker writes each application as other terms: the structure
    maps), ``"constant"`` (derivative zero where it exists), ``"structural"`` (commutes with
    both transforms: ``D(map) = map``), ``"discrete"`` (no real result) or ``"ad"``.

    A rule is a lamad term over the arguments ``x1 … xk``, the result ``y``, the
    cotangent ``a`` (←D) or the tangents ``dx1 … dxk`` (→D); it may call any primitive,
    public or not, and nothing else: :mod:`lamad.prims.rules` resolves it once into
    :class:`~lamad.syntax.Prim` nodes, so no user binding can capture a name in it.

    ``example`` is an application of the primitive, written in lamad over real arguments
    ``x1 … xk``, with the shape of each argument: ``()`` for a Real, a tuple for a Tensor,
    :class:`Positive` for a Tensor whose entries must be positive; ``("x1 + x2", ((2, 3),
    (3,)))``.  A private primitive is written ``%name`` in it, and a ``load`` reads from the
    repository's ``examples`` folder.  Every differentiable primitive (derivative
    ``"rules"``, ``"special"`` or ``"constant"``) has one: the tests check its rules on it,
    against finite differences and against each other (tests/test_prims.py).

    ``scalar`` is the implementation on Python floats that compiled code calls where
    every argument and the result are Reals and Reals are floats (``Backend.floats``): a
    function of :mod:`math`, which raises (``ValueError``, ``OverflowError``) where NumPy
    would warn and give a NaN or an infinity, and never gives one from finite arguments
    otherwise; the compiled code then calls ``impl`` on the same arguments, so the value
    and the warning are NumPy's (lamad/eval.py)."""

    name: str
    params: tuple[Type, ...]
    result: Type
    impl: Callable[[Runtime], Callable[..., Any]] | None
    typing: str = "scheme"
    ints: bool = False
    derivative: str = "rules"
    jvp: Rules = ()
    vjp: Rules = ()
    linear: tuple[int, ...] = ()
    operator: Operator | None = None
    fold: Callable[..., Any] | None = None
    shape_only: bool = False
    public: bool = True
    derived: str | tuple[str, str] | None = None
    doc: str = ""
    example: Example | None = None
    signatures: tuple[Signature, ...] = ()
    scalar: Callable[..., float] | None = None
    jvp_terms: tuple[Term | None, ...] = field(default=(), init=False, repr=False)
    vjp_terms: tuple[Term | None, ...] = field(default=(), init=False, repr=False)
    derived_terms: tuple[Term, ...] = field(default=(), init=False, repr=False)

    @property
    def arity(self) -> int:
        return len(self.params)

    @property
    def type(self) -> Type:
        t = self.result
        for p in reversed(self.params):
            t = FunType(p, t)
        return t

    @property
    def surface(self) -> str:
        """How a user writes it: ``+`` for ``add``, ``-`` for ``neg``."""
        return self.operator.symbol if self.operator is not None else self.name

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def tidy(value):
    """A result of the array namespace as lamad keeps it: a 0-d result as the backend's
    ``Real`` (NumPy's scalar type on NumPy, where ``[()]`` unwraps a 0-d array; a 0-d
    array elsewhere), an array of rank 1 or more as it is."""
    return value if value.ndim else value[()]


PRIMITIVES: dict[str, Primitive] = {}
"""Every primitive by name, in the order of definition."""


def define(name: str, params: tuple[Type, ...], result: Type, impl, **fields) -> Primitive:
    """Register the primitive ``name``; its name must be new."""
    if name in PRIMITIVES:
        raise ValueError(f"primitive '{name}' is defined twice")
    prim = PRIMITIVES[name] = Primitive(name, params, result, impl, **fields)
    return prim


def public(name: str) -> Primitive | None:
    """The primitive a program may call by ``name``, or ``None``: operators are written
    with their symbols, and the helpers the rules use are not in the user's scope."""
    prim = PRIMITIVES.get(name)
    return prim if prim is not None and prim.public and prim.operator is None else None
