"""Elementwise functions of a Real or a Tensor.

Conventions at kinks: ``relu'(0) = 0`` and ``abs'(0) = 0``.  ``softplus``,
``log_sigmoid`` and ``logaddexp`` are computed stably (NumPy's ``logaddexp``).
"""

from __future__ import annotations

import operator

from lamad.prims.base import F, Positive, define


def _xp(fn_name: str):
    return lambda rt: getattr(rt.backend.xp, fn_name)


def _sigmoid(rt):
    xp = rt.backend.xp
    return lambda x: xp.exp(-xp.logaddexp(0.0, -x))


def _relu(rt):
    xp = rt.backend.xp
    return lambda x: xp.maximum(x, 0.0)


def _elementwise(name: str, impl, jvp: str, vjp: str, domain=(3,)) -> None:
    """A function of one Real or Tensor, with its example on a Tensor of ``domain``."""
    define(name, (F,), F, impl, jvp=(jvp,), vjp=(vjp,), example=(f"{name} x1", (domain,)))


_elementwise("exp", _xp("exp"), "dx1 * y", "a * y")
_elementwise("log", _xp("log"), "dx1 / x1", "a / x1", Positive((3,)))
_elementwise("sin", _xp("sin"), "dx1 * cos x1", "a * cos x1")
_elementwise("cos", _xp("cos"), "-(dx1 * sin x1)", "-(a * sin x1)")
_elementwise("tanh", _xp("tanh"), "dx1 * (1.0 - y * y)", "a * (1.0 - y * y)")
_elementwise("sigmoid", _sigmoid, "dx1 * (y * (1.0 - y))", "a * (y * (1.0 - y))")
_elementwise("relu", _relu, "dx1 * step x1", "where_pos y a")
_elementwise("sqrt", _xp("sqrt"), "dx1 / (2.0 * y)", "a / (2.0 * y)", Positive((3,)))
_elementwise("abs", _xp("abs"), "dx1 * sign x1", "a * sign x1")
_elementwise("square", lambda rt: (lambda x: x * x), "dx1 * (2.0 * x1)", "a * (2.0 * x1)")
_elementwise("log1p", _xp("log1p"), "dx1 / (1.0 + x1)", "a / (1.0 + x1)", Positive((3,)))

# softplus, log_sigmoid and logaddexp are the records docs/primitives.md shows.
define("softplus", (F,), F,
       lambda rt: (lambda x: rt.backend.xp.logaddexp(0.0, x)),
       jvp=("dx1 * sigmoid x1",),
       vjp=("a * sigmoid x1",),
       doc="log (1 + exp x), computed without overflow",
       example=("softplus x1", ((3,),)))
define("log_sigmoid", (F,), F,
       lambda rt: (lambda x: -rt.backend.xp.logaddexp(0.0, -x)),
       jvp=("dx1 * sigmoid (-x1)",),
       vjp=("a * sigmoid (-x1)",),
       doc="log (sigmoid x), computed without overflow",
       example=("log_sigmoid x1", ((3,),)))
define("logaddexp", (F, F), F,
       lambda rt: rt.backend.xp.logaddexp,
       typing="arith",
       jvp=("dx1 * exp (x1 - y)", "dx2 * exp (x2 - y)"),
       vjp=("unbroadcast (like x1) (a * exp (x1 - y))", "unbroadcast (like x2) (a * exp (x2 - y))"),
       doc="log (exp x + exp y), computed without overflow",
       example=("logaddexp x1 x2", ((2, 1), (3,))))
define("sign", (F,), F, _xp("sign"), derivative="constant", example=("sign x1", ((3,),)))


def _mask(op):
    return lambda rt: (lambda x, y: op(x, y).astype(rt.backend.dtype))


define("mask_ge", (F, F), F, _mask(operator.ge), typing="arith", derivative="constant",
       doc="1.0 where x >= y, else 0.0", example=("mask_ge x1 x2", ((2, 3), (3,))))
define("mask_le", (F, F), F, _mask(operator.le), typing="arith", derivative="constant",
       doc="1.0 where x <= y, else 0.0", example=("mask_le x1 x2", ((3,), (2, 1))))
