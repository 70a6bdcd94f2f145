"""The builtins of SPEC §2.4: their types and their implementations on a backend.

Each :class:`Builtin` has a signature (parameter types and result type, with
scheme variables instantiated afresh at every use by the type checker) and an
``impl`` that, given the :class:`Runtime` of an evaluation, returns a plain Python
function of the builtin's arity.  Operators are builtins too (``add`` is ``+``).
"""

from __future__ import annotations

import itertools
import operator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

import numpy as np

from lamad.backend import Backend
from lamad.gradient import sum_apply
from lamad.progress import Progress
from lamad.syntax import (
    BOOL, GRAD, INT, REAL, STRING, TENSOR, FunType, ListType, TupleType, TVar, Type, perp,
)

# Scheme variables: negative ids, replaced by fresh variables at each use.
_A, _B = TVar(-1), TVar(-2)
_F = TVar(-3, "float")  # Real or Tensor
_LIST_INT = ListType(INT)


@dataclass(frozen=True)
class Runtime:
    """What builtins may depend on: the array backend, the directory that relative
    ``load`` paths are resolved against (the program file's), and where loops report
    their progress (nowhere by default)."""

    backend: Backend
    base_dir: Path
    progress: Progress | None = None

    def steps(self, items: Iterable, total: int, label: str) -> ContextManager[Iterable]:
        """The steps of a loop builtin, shown by :attr:`progress` when there is one."""
        if self.progress is None:
            return nullcontext(items)
        return self.progress.steps(items, total, label)


@dataclass(frozen=True)
class Builtin:
    """A builtin: ``name : params[0] -> ... -> result``, implemented by ``impl(runtime)``.

    ``typing`` selects a rule of the checker: ``"scheme"`` (the signature as written),
    ``"arith"`` (numeric operands joined, SPEC §2.2 promotion; Ints allowed when
    ``ints``), ``"compare"`` (Int or Real operands, Bool result), ``"sum_apply"`` (the
    signature, applying linear functions as an application does), ``"ad"`` (the AD
    operators of SPEC §3, implemented by the evaluator), ``"derived"`` (AD operators
    the checker writes with the others).  ``linear`` lists the
    argument positions in which the builtin is linear (when the others are fixed):
    the checker's linearity test for backpropagators relies on it."""

    name: str
    params: tuple[Type, ...]
    result: Type
    impl: Callable[[Runtime], Callable[..., Any]]
    typing: str = "scheme"
    ints: bool = False
    linear: tuple[int, ...] = ()

    @property
    def arity(self) -> int:
        return len(self.params)

    @property
    def type(self) -> Type:
        t = self.result
        for p in reversed(self.params):
            t = FunType(p, t)
        return t


BUILTINS: dict[str, Builtin] = {}


def _define(name: str, params: tuple[Type, ...], result: Type, impl, **kw) -> None:
    BUILTINS[name] = Builtin(name, params, result, impl, **kw)


# --------------------------------------------------------------------- arithmetic

def _pow(x, y):
    """``**``; an Int to a negative Int power would not be an Int, so it is refused."""
    if isinstance(x, int) and isinstance(y, int) and y < 0:
        raise ValueError(f"{x} ** {y}: an Int to a negative power is not an Int; convert with 'real'")
    return x ** y


for _name, _op in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul), ("pow", _pow)):
    _define(_name, (_F, _F), _F, lambda rt, op=_op: op, typing="arith", ints=True)
_define("div", (_F, _F), _F, lambda rt: operator.truediv, typing="arith")
_define("neg", (TVar(-4, "num"),), TVar(-4, "num"), lambda rt: operator.neg)
_define("max", (_F, _F), _F, lambda rt: rt.backend.xp.maximum, typing="arith")
_define("min", (_F, _F), _F, lambda rt: rt.backend.xp.minimum, typing="arith")
def _matmul(rt: Runtime):
    matmul = rt.backend.xp.matmul

    def checked(x, y):
        try:
            return matmul(x, y)
        except ValueError:
            raise ValueError(f"shapes {tuple(x.shape)} and {tuple(y.shape)} do not align") from None
    return checked


_define("matmul", (TENSOR, TENSOR), TENSOR, _matmul)


def _comparison(op):
    return lambda rt: (lambda x, y: bool(op(x, y)))


for _name, _op in (("lt", operator.lt), ("le", operator.le), ("gt", operator.gt), ("ge", operator.ge),
                   ("eq", operator.eq), ("ne", operator.ne)):
    _define(_name, (_A, _A), BOOL, _comparison(_op), typing="compare")
_define("not", (BOOL,), BOOL, lambda rt: operator.not_)


# --------------------------------------------------------------------- elementwise


def _sigmoid(rt: Runtime):
    xp = rt.backend.xp
    return lambda x: xp.exp(-xp.logaddexp(0.0, -x))


def _relu(rt: Runtime):
    xp = rt.backend.xp
    return lambda x: xp.maximum(x, 0.0)


_ELEMENTWISE = {
    "exp": lambda rt: rt.backend.xp.exp,
    "log": lambda rt: rt.backend.xp.log,
    "sin": lambda rt: rt.backend.xp.sin,
    "cos": lambda rt: rt.backend.xp.cos,
    "tanh": lambda rt: rt.backend.xp.tanh,
    "sqrt": lambda rt: rt.backend.xp.sqrt,
    "abs": lambda rt: rt.backend.xp.abs,
    "log1p": lambda rt: rt.backend.xp.log1p,
    "square": lambda rt: (lambda x: x * x),
    "sigmoid": _sigmoid,
    "relu": _relu,
}
for _name, _impl in _ELEMENTWISE.items():
    _define(_name, (_F,), _F, _impl)


# --------------------------------------------------------------------- reductions


def _reduction(fn_name: str):
    return lambda rt: getattr(rt.backend.xp, fn_name)


def _axis_reduction(fn_name: str):
    def impl(rt: Runtime):
        fn = getattr(rt.backend.xp, fn_name)
        return lambda axis, x: fn(x, axis=axis)
    return impl


def logsumexp(xp, x, axis: int, keepdims: bool = False):
    """``log (sum_axis (exp x))``, computed with the maximum along ``axis`` subtracted."""
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def softmax(xp, x, axis: int):
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


_define("sum", (TENSOR,), REAL, _reduction("sum"))
_define("mean", (TENSOR,), REAL, _reduction("mean"))
_define("sum_axis", (INT, TENSOR), TENSOR, _axis_reduction("sum"))
_define("mean_axis", (INT, TENSOR), TENSOR, _axis_reduction("mean"))
_define("max_axis", (INT, TENSOR), TENSOR, _axis_reduction("max"))
_define("logsumexp_axis", (INT, TENSOR), TENSOR, lambda rt: (lambda axis, x: logsumexp(rt.backend.xp, x, axis)))
_define("softmax_axis", (INT, TENSOR), TENSOR, lambda rt: (lambda axis, x: softmax(rt.backend.xp, x, axis)))


# --------------------------------------------------------------------- shape


def _dot(rt: Runtime):
    xp = rt.backend.xp

    def dot(x, y):
        if x.shape != y.shape:
            raise ValueError(f"operands have shapes {tuple(x.shape)} and {tuple(y.shape)}; dot needs equal shapes")
        return xp.sum(x * y)
    return dot


def _unstack(rt: Runtime):
    def unstack(x):
        if x.ndim == 0:
            raise ValueError("cannot unstack a 0-d tensor")
        return [x[i] for i in range(x.shape[0])]
    return unstack


_define("transpose", (TENSOR,), TENSOR, lambda rt: rt.backend.xp.transpose)
_define("reshape", (TENSOR, _LIST_INT), TENSOR, lambda rt: (lambda x, shape: rt.backend.xp.reshape(x, tuple(shape))))
_define("stack", (ListType(TENSOR),), TENSOR, lambda rt: rt.backend.xp.stack)
_define("unstack", (TENSOR,), ListType(TENSOR), _unstack)
_define("concat", (INT, ListType(TENSOR)), TENSOR, lambda rt: (lambda axis, xs: rt.backend.xp.concatenate(xs, axis=axis)))
_define("dot", (TENSOR, TENSOR), REAL, _dot)
_define("outer", (TENSOR, TENSOR), TENSOR, lambda rt: rt.backend.xp.outer)


# --------------------------------------------------------------------- constructors


def _shape(shape: list[int]) -> tuple[int, ...]:
    if any(n < 0 for n in shape):
        raise ValueError(f"negative dimension in shape {list(shape)}")
    return tuple(shape)


def _constant(fn_name: str):
    def impl(rt: Runtime):
        fn, dtype = getattr(rt.backend.xp, fn_name), rt.backend.dtype
        return lambda shape: fn(_shape(shape), dtype=dtype)
    return impl


def _random(method: str):
    """``randn``/``uniform``: drawn with NumPy's PCG64 from the seed, so that every backend
    sees the same numbers, then moved to the backend once."""
    def impl(rt: Runtime):
        def draw(seed, shape):
            return rt.backend.asarray(getattr(np.random.default_rng(seed), method)(_shape(shape)))
        return draw
    return impl


def _onehot(rt: Runtime):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def onehot(n, labels):
        return (labels[..., None] == xp.arange(n, dtype=dtype)).astype(dtype)
    return onehot


_define("zeros", (_LIST_INT,), TENSOR, _constant("zeros"))
_define("ones", (_LIST_INT,), TENSOR, _constant("ones"))
_define("fill", (REAL, _LIST_INT), TENSOR,
        lambda rt: (lambda r, shape: rt.backend.xp.full(_shape(shape), r, dtype=rt.backend.dtype)))
_define("eye", (INT,), TENSOR, lambda rt: (lambda n: rt.backend.xp.eye(n, dtype=rt.backend.dtype)))
_define("randn", (INT, _LIST_INT), TENSOR, _random("standard_normal"))
_define("uniform", (INT, _LIST_INT), TENSOR, _random("random"))
_define("onehot", (INT, TENSOR), TENSOR, _onehot)


# --------------------------------------------------------------------- lists


def _fold(rt: Runtime):
    def fold(f, acc, xs):
        with rt.steps(xs, len(xs), "fold") as steps:
            for x in steps:
                acc = f(acc)(x)
        return acc
    return fold


def _iterate(rt: Runtime):
    def iterate(n, f, x):
        with rt.steps(range(n), n, "iterate") as steps:
            for _ in steps:
                x = f(x)
        return x
    return iterate


def _scan(rt: Runtime):
    """``scan f z [x1, …, xn] = [z, f z x1, f (f z x1) x2, …]``: the accumulators of a left
    fold, first to last (Haskell's ``scanl``), so a loop can report its history."""
    def scan(f, acc, xs):
        out = [acc]
        with rt.steps(xs, len(xs), "scan") as steps:
            for x in steps:
                acc = f(acc)(x)
                out.append(acc)
        return out
    return scan


def _zip(rt: Runtime):
    def zip_(xs, ys):
        if len(xs) != len(ys):
            raise ValueError(f"lists have lengths {len(xs)} and {len(ys)}; zip needs equal lengths")
        return list(zip(xs, ys))
    return zip_


_define("map", (FunType(_A, _B), ListType(_A)), ListType(_B), lambda rt: (lambda f, xs: [f(x) for x in xs]))
_define("fold", (FunType(_B, FunType(_A, _B)), _B, ListType(_A)), _B, _fold)
_define("scan", (FunType(_B, FunType(_A, _B)), _B, ListType(_A)), ListType(_B), _scan)
_define("zip", (ListType(_A), ListType(_B)), ListType(TupleType((_A, _B))), _zip)
_define("length", (ListType(_A),), INT, lambda rt: len)
_define("range", (INT,), _LIST_INT, lambda rt: (lambda n: list(range(n))))
_define("iterate", (INT, FunType(_A, _A), _A), _A, _iterate)


# --------------------------------------------------------------------- conversions and data


def _scalar(rt: Runtime):
    xp = rt.backend.xp

    def scalar(x):
        if x.size != 1:
            raise ValueError(f"expected a tensor of one element, found shape {tuple(x.shape)}")
        return xp.reshape(x, ())
    return scalar


def _load(rt: Runtime):
    def load(path: str):
        full = rt.base_dir / path
        if full.suffix == ".npy":
            data = np.load(full, allow_pickle=False)
        elif full.suffix == ".csv":
            data = np.loadtxt(full, delimiter=",", ndmin=1)
        else:
            raise ValueError(f"cannot load '{path}': only .npy and .csv files are supported")
        return rt.backend.asarray(data)
    return load


_define("real", (INT,), REAL, lambda rt: rt.backend.asarray)
_define("scalar", (TENSOR,), REAL, _scalar)
_define("fst", (TupleType((_A, _B)),), _A, lambda rt: operator.itemgetter(0))
_define("snd", (TupleType((_A, _B)),), _B, lambda rt: operator.itemgetter(1))
_define("load", (STRING,), TENSOR, _load)


# --------------------------------------------------------------------- derivative helpers
# Builtins that the transposed derivatives of ←D (lamad/reverse.py) are written with.
# They are ordinary builtins: users may call them too.


def unbroadcast(xp, g, shape: tuple[int, ...]):
    """Sum ``g`` down to ``shape``: the transpose of broadcasting a value of that shape."""
    if tuple(g.shape) == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = xp.sum(g, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return xp.reshape(g, shape)


def _broadcast(rt: Runtime):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def broadcast(x, g):
        """``g`` broadcast to the shape of ``x``, the transpose of ``unbroadcast``: written
        out once (not a read-only view, which could reach the user as a gradient)."""
        if tuple(g.shape) == tuple(x.shape):
            return g
        out = xp.empty(x.shape, dtype=dtype)
        out[...] = g
        return out
    return broadcast


def _like(rt: Runtime):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    @lru_cache(maxsize=1024)
    def of_shape(shape: tuple[int, ...]):
        return xp.broadcast_to(xp.zeros((), dtype=dtype), shape)

    def like(x):
        """An array of the shape of ``x`` that holds one zero (a read-only view with zero
        strides, one per shape): all a backpropagator needs of a primal it only broadcasts
        to or sums down to, as JAX's backward pass keeps an abstract value of it."""
        return of_shape(x.shape)
    return like


def _matrix_operands(x, y):
    """``x`` and ``y`` as NumPy's ``matmul`` sees them: a 1-D ``x`` is a row, a 1-D ``y``
    a column."""
    return (x[None, :] if x.ndim == 1 else x), (y[:, None] if y.ndim == 1 else y)


def matmul_vjp(xp, x, y, a, wrt: int):
    """The transposed derivative of ``x @ y`` in ``x`` (``wrt=0``) or ``y`` (``wrt=1``),
    applied to the cotangent ``a``: ``a @ yᵀ`` and ``xᵀ @ a`` for matrices, with NumPy's
    treatment of 1-D operands and batch broadcasting."""
    if x.ndim == 2 and y.ndim == 2:
        return a @ y.T if wrt == 0 else x.T @ a
    if x.ndim == 2 and y.ndim == 1:  # matrix @ vector, as in an RNN cell
        return xp.outer(a, y) if wrt == 0 else x.T @ a
    if x.ndim == 1 and y.ndim == 2:
        return y @ a if wrt == 0 else xp.outer(x, a)
    if x.ndim == 1 and y.ndim == 1:  # a dot product: a is 0-d
        return a * y if wrt == 0 else x * a
    x2, y2 = _matrix_operands(x, y)
    batch = np.broadcast_shapes(x2.shape[:-2], y2.shape[:-2])
    a2 = xp.reshape(a, batch + (x2.shape[-2], y2.shape[-1]))
    if wrt == 0:
        return xp.reshape(unbroadcast(xp, a2 @ xp.swapaxes(y2, -1, -2), x2.shape), x.shape)
    return xp.reshape(unbroadcast(xp, xp.swapaxes(x2, -1, -2) @ a2, y2.shape), y.shape)


def _argmax_mask(rt: Runtime):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def argmax_mask(axis, x):
        index = xp.expand_dims(xp.argmax(x, axis=axis), axis)
        positions = xp.reshape(xp.arange(x.shape[axis]), [-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])
        return (positions == index).astype(dtype)
    return argmax_mask


def _embed(rt: Runtime):
    xp = rt.backend.xp

    def embed(i, x, a):
        out = xp.zeros_like(x)
        out[i] = a
        return out
    return embed


def _split_like(rt: Runtime):
    xp = rt.backend.xp

    def split_like(axis, xs, a):
        sizes = list(itertools.accumulate(x.shape[axis] for x in xs))
        return xp.split(a, sizes[:-1], axis=axis)
    return split_like


def _mask(op):
    return lambda rt: (lambda x, y: op(x, y).astype(rt.backend.dtype))


_define("unbroadcast", (_F, TENSOR), _F, lambda rt: (lambda x, g: unbroadcast(rt.backend.xp, g, x.shape)))
_define("broadcast", (TENSOR, _F), TENSOR, _broadcast)
_define("like", (_F,), _F, _like)
_define("ones_like", (_F,), _F, lambda rt: rt.backend.xp.ones_like)
_define("zeros_like", (_F,), _F, lambda rt: rt.backend.xp.zeros_like)
_define("expand_dims", (INT, TENSOR), TENSOR, lambda rt: (lambda axis, x: rt.backend.xp.expand_dims(x, axis)))
_define("dim", (INT, TENSOR), INT, lambda rt: (lambda axis, x: int(x.shape[axis])))
_define("count", (TENSOR,), REAL, lambda rt: (lambda x: rt.backend.scalar(x.size)))
_define("shape", (TENSOR,), _LIST_INT, lambda rt: (lambda x: [int(n) for n in x.shape]))
_define("step", (_F,), _F, lambda rt: (lambda x: (x > 0).astype(rt.backend.dtype)))
# ``a * step x`` without the mask as floats: a product with the comparison's Booleans (an
# eighth of the memory), which keeps ``a``'s float dtype.
_define("where_pos", (_F, _F), _F, lambda rt: (lambda x, a: a * (x > 0)), typing="arith")
_define("sign", (_F,), _F, lambda rt: rt.backend.xp.sign)
_define("mask_ge", (_F, _F), _F, _mask(operator.ge), typing="arith")
_define("mask_le", (_F, _F), _F, _mask(operator.le), typing="arith")
_define("argmax_mask", (INT, TENSOR), TENSOR, _argmax_mask)
_define("matmul_dx", (TENSOR, TENSOR, TENSOR), TENSOR, lambda rt: (lambda x, y, a: matmul_vjp(rt.backend.xp, x, y, a, 0)))
_define("matmul_dy", (TENSOR, TENSOR, TENSOR), TENSOR, lambda rt: (lambda x, y, a: matmul_vjp(rt.backend.xp, x, y, a, 1)))
_define("embed", (INT, TENSOR, TENSOR), TENSOR, _embed)
_define("take", (INT, TENSOR), TENSOR, lambda rt: (lambda i, x: x[i]))


def _mul0(rt: Runtime):
    xp = rt.backend.xp

    def mul0(x, y):
        """``x * y``, but 0 wherever ``x`` or ``y`` is 0, even where the other is infinite
        or NaN: the product of a vanishing factor of a derivative with a singular one
        (``y * x ** (y - 1)`` at ``y = 0``, ``x ** y * log x`` at ``x = 0``)."""
        with np.errstate(invalid="ignore"):
            product = xp.multiply(x, y)
        return xp.where((x == 0) | (y == 0), xp.zeros((), product.dtype), product)[()]
    return mul0


_define("mul0", (_F, _F), _F, _mul0, typing="arith")


def _pad_piece(rt: Runtime):
    xp = rt.backend.xp

    def pad_piece(axis, xs, i, a):
        return xp.concatenate([a if j == i else xp.zeros_like(x) for j, x in enumerate(xs)], axis=axis)
    return pad_piece


_define("piece", (INT, ListType(TENSOR), INT, TENSOR), TENSOR,
        lambda rt: (lambda axis, xs, i, a: _split_like(rt)(axis, xs, a)[i]))
_define("pad_piece", (INT, ListType(TENSOR), INT, TENSOR), TENSOR, _pad_piece)
_define("size", (TENSOR,), INT, lambda rt: (lambda x: int(x.size)))
_define("append", (ListType(_A), ListType(_A)), ListType(_A), lambda rt: operator.add)
_define("split_like", (INT, ListType(TENSOR), TENSOR), ListType(TENSOR), _split_like)
_define("sum_apply", (ListType(perp(_A)), ListType(_A)), GRAD, lambda rt: sum_apply, typing="sum_apply")


# --------------------------------------------------------------------- AD operators (SPEC §3)

_define("grad", (_A,), _B, None, typing="ad")
_define("value_and_grad", (_A,), _B, None, typing="ad")
_define("vjp", (_A, _B), _B, None, typing="ad")
_define("jvp", (_A, _B, TVar(-5)), _B, None, typing="ad")
# Derived operators, which the checker writes with the ones above (lamad/types.py, DERIVED).
_define("hvp", (_A, _B, TVar(-5)), _B, None, typing="derived")
_define("hessian", (_A, _B), _B, None, typing="derived")
_define("jacfwd", (_A, _B), _B, None, typing="derived")
_define("jacrev", (_A, _B), _B, None, typing="derived")

AD_OPERATORS = frozenset({"grad", "value_and_grad", "vjp", "jvp"})
MARKS = {"r": "←D", "f": "→D"}
"""How an AD operator carried through a transform is marked: ``grad'f`` is ``grad`` inside
a term that →D transformed, ``grad'rf`` inside →D of ←D of a term (innermost first)."""


def ad_operator(name: str) -> tuple[str, str] | None:
    """``(operator, marks)`` when ``name`` is an AD operator, maybe marked (``grad'rf`` is
    ``("grad", "rf")``); ``None`` otherwise."""
    op, prime, marks = name.partition("'")
    if op in AD_OPERATORS and (not prime or (marks and set(marks) <= set(MARKS))):
        return op, marks
    return None


def builtin(name: str) -> Builtin | None:
    """The builtin called ``name`` (operators included), or ``None``.  Marked AD operators
    are an infinite family: each is made when first asked for, typed like its operator."""
    if name not in BUILTINS:
        parsed = ad_operator(name)
        if parsed is None:
            return None
        BUILTINS[name] = replace(BUILTINS[parsed[0]], name=name)
    return BUILTINS[name]


def chained(op: str, letter: str) -> str | None:
    """The AD operator ``op`` carried through one more transform (``letter`` from
    :data:`MARKS`), or ``None`` if ``op`` is not an AD operator."""
    parsed = ad_operator(op)
    if parsed is None:
        return None
    name = f"{parsed[0]}'{parsed[1]}{letter}"
    builtin(name)
    return name


OPERATORS = frozenset({"add", "sub", "mul", "div", "pow", "neg", "matmul", "lt", "le", "gt", "ge", "eq", "ne"})
"""Builtins written as operators (``+`` is ``add``): users cannot name them."""
NAMED_BUILTINS = frozenset(BUILTINS) - OPERATORS


def named_builtin(name: str) -> Builtin | None:
    """The builtin a program may call ``name``, or ``None`` (operators have no name)."""
    return None if name in OPERATORS else builtin(name)


# --------------------------------------------------------------------- linearity

for _name, _positions in {
    "neg": (0,), "mul": (0, 1), "mul0": (0, 1), "div": (0,), "matmul": (0, 1), "matmul_dx": (1, 2), "matmul_dy": (0, 2),
    "unbroadcast": (1,), "sum": (0,), "mean": (0,), "sum_axis": (1,), "mean_axis": (1,), "transpose": (0,),
    "reshape": (0,), "expand_dims": (1,), "dot": (0, 1), "outer": (0, 1), "stack": (0,), "unstack": (0,),
    "concat": (1,), "split_like": (2,), "embed": (2,), "scalar": (0,), "fill": (0,), "sum_apply": (1,),
    "fst": (0,), "snd": (0,), "take": (1,), "piece": (3,), "pad_piece": (3,), "where_pos": (1,), "broadcast": (1,),
}.items():
    BUILTINS[_name] = replace(BUILTINS[_name], linear=_positions)
