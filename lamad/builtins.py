"""The builtins of SPEC §2.4: their types and their implementations on a backend.

Each :class:`Builtin` has a signature (parameter types and result type, with
scheme variables instantiated afresh at every use by the type checker) and an
``impl`` that, given the :class:`Runtime` of an evaluation, returns a plain Python
function of the builtin's arity.  Operators are builtins too (``add`` is ``+``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lamad.backend import Backend
from lamad.syntax import BOOL, INT, REAL, STRING, TENSOR, FunType, ListType, TupleType, TVar, Type

# Scheme variables: negative ids, replaced by fresh variables at each use.
_A, _B = TVar(-1), TVar(-2)
_F = TVar(-3, "float")  # Real or Tensor
_LIST_INT = ListType(INT)


@dataclass(frozen=True)
class Runtime:
    """What builtins may depend on: the array backend and the directory that relative
    ``load`` paths are resolved against (the program file's)."""

    backend: Backend
    base_dir: Path


@dataclass(frozen=True)
class Builtin:
    """A builtin: ``name : params[0] -> ... -> result``, implemented by ``impl(runtime)``.

    ``typing`` selects a rule of the checker: ``"scheme"`` (the signature as written),
    ``"arith"`` (numeric operands joined, SPEC §2.2 promotion; Ints allowed when
    ``ints``), ``"compare"`` (Int or Real operands, Bool result)."""

    name: str
    params: tuple[Type, ...]
    result: Type
    impl: Callable[[Runtime], Callable[..., Any]]
    typing: str = "scheme"
    ints: bool = False

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

for _name, _op in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul), ("pow", operator.pow)):
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
        for x in xs:
            acc = f(acc)(x)
        return acc
    return fold


def _iterate(rt: Runtime):
    def iterate(n, f, x):
        for _ in range(n):
            x = f(x)
        return x
    return iterate


def _zip(rt: Runtime):
    def zip_(xs, ys):
        if len(xs) != len(ys):
            raise ValueError(f"lists have lengths {len(xs)} and {len(ys)}; zip needs equal lengths")
        return list(zip(xs, ys))
    return zip_


_define("map", (FunType(_A, _B), ListType(_A)), ListType(_B), lambda rt: (lambda f, xs: [f(x) for x in xs]))
_define("fold", (FunType(_B, FunType(_A, _B)), _B, ListType(_A)), _B, _fold)
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
