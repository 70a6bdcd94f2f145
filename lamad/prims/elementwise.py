"""Elementwise functions of a Real or a Tensor.

Conventions at kinks: ``relu'(0) = 0`` and ``abs'(0) = 0``; ``clip`` at a bound is
``max`` then ``min``, so its derivative there is split equally, ½ to the bound and ½ to
``x``, as JAX gives it.  ``softplus``, ``log_sigmoid`` and ``logaddexp`` are computed
stably (the standard's ``logaddexp``).  ``erf`` is each backend's own, the C library's
(Python's ``math.erf``) elementwise on NumPy, which has none (lamad/extensions.py).
"""

from __future__ import annotations

import math
import operator

from lamad.prims.base import F, Positive, define
from lamad.syntax import REAL


def _xp(fn_name: str):
    return lambda rt: getattr(rt.backend.xp, fn_name)


def _sigmoid(rt):
    xp = rt.backend.xp
    return lambda x: xp.exp(-xp.logaddexp(0.0, -x))


def _relu(rt):
    xp = rt.backend.xp
    return lambda x: xp.maximum(x, 0.0)


def _erf(rt):
    """The error function of each entry, by the backend's own (the C library's on NumPy,
    correctly rounded or within an ulp on glibc and macOS; lamad/extensions.py)."""
    return rt.backend.ext.erf


def _elementwise(name: str, impl, jvp: str, vjp: str, domain=(3,), of: str = "x1", scalar=None) -> None:
    """A function of one Real or Tensor, with its example on a Tensor of ``domain``,
    applied to ``of`` (a term that keeps the argument inside the function's domain), and
    its implementation on a float (:mod:`math`'s function of the same name by default)."""
    define(name, (F,), F, impl, jvp=(jvp,), vjp=(vjp,), example=(f"{name} ({of})", (domain,)),
           scalar=scalar or getattr(math, name, None))


_elementwise("exp", _xp("exp"), "dx1 * y", "a * y")
_elementwise("log", _xp("log"), "dx1 / x1", "a / x1", Positive((3,)))
_elementwise("sin", _xp("sin"), "dx1 * cos x1", "a * cos x1")
_elementwise("cos", _xp("cos"), "-(dx1 * sin x1)", "-(a * sin x1)")
_elementwise("tanh", _xp("tanh"), "dx1 * (1.0 - y * y)", "a * (1.0 - y * y)")
_elementwise("sigmoid", _sigmoid, "dx1 * (y * (1.0 - y))", "a * (y * (1.0 - y))")
_elementwise("relu", _relu, "dx1 * step x1", "where_pos y a")
_elementwise("sqrt", _xp("sqrt"), "dx1 / (2.0 * y)", "a / (2.0 * y)", Positive((3,)))
_elementwise("abs", _xp("abs"), "dx1 * sign x1", "a * sign x1", scalar=abs)
_elementwise("square", lambda rt: (lambda x: x * x), "dx1 * (2.0 * x1)", "a * (2.0 * x1)")
_elementwise("log1p", _xp("log1p"), "dx1 / (1.0 + x1)", "a / (1.0 + x1)", Positive((3,)))
_elementwise("sinh", _xp("sinh"), "dx1 * cosh x1", "a * cosh x1")
_elementwise("cosh", _xp("cosh"), "dx1 * sinh x1", "a * sinh x1")
_elementwise("asin", _xp("asin"), "dx1 / sqrt (1.0 - x1 * x1)", "a / sqrt (1.0 - x1 * x1)", of="0.9 * tanh x1")
_elementwise("acos", _xp("acos"), "-(dx1 / sqrt (1.0 - x1 * x1))", "-(a / sqrt (1.0 - x1 * x1))",
             of="0.9 * tanh x1")
_elementwise("atan", _xp("atan"), "dx1 / (1.0 + x1 * x1)", "a / (1.0 + x1 * x1)")
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_elementwise("erf", _erf, f"dx1 * ({_TWO_OVER_SQRT_PI!r} * exp (-(x1 * x1)))",
             f"a * ({_TWO_OVER_SQRT_PI!r} * exp (-(x1 * x1)))")

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
    return lambda rt: (lambda x, y: rt.backend.xp.astype(op(x, y), rt.backend.dtype))


define("mask_ge", (F, F), F, _mask(operator.ge), typing="arith", derivative="constant",
       doc="1.0 where x >= y, else 0.0", example=("mask_ge x1 x2", ((2, 3), (3,))))
define("mask_le", (F, F), F, _mask(operator.le), typing="arith", derivative="constant",
       doc="1.0 where x <= y, else 0.0", example=("mask_le x1 x2", ((3,), (2, 1))))
define("atan2", (F, F), F, _xp("atan2"), typing="arith", scalar=math.atan2,
       jvp=("dx1 * x2 / (x1 * x1 + x2 * x2)", "-(dx2 * x1) / (x1 * x1 + x2 * x2)"),
       vjp=("unbroadcast (like x1) (a * x2 / (x1 * x1 + x2 * x2))",
            "unbroadcast (like x2) (-(a * x1) / (x1 * x1 + x2 * x2))"),
       doc="the angle of the point (x, y) from the x axis, in (-pi, pi]; written atan2 y x",
       example=("atan2 x1 x2", ((2, 3), (3,))))


def _clip(rt):
    xp = rt.backend.xp
    return lambda lo, hi, x: xp.minimum(xp.maximum(x, lo), hi)


_INSIDE = "tie_weight x2 (max x3 x1)"
"""The share of ``min (max x lo) hi`` that is ``max x lo``'s: 1 below ``hi``, ½ at it."""
define("clip", (REAL, REAL, F), F, _clip,
       jvp=(f"dx1 * (tie_weight x1 x3 * {_INSIDE})", "dx2 * tie_weight (max x3 x1) x2",
            f"dx3 * (tie_weight x3 x1 * {_INSIDE})"),
       vjp=(f"unbroadcast (like x1) (a * (tie_weight x1 x3 * {_INSIDE}))",
            "unbroadcast (like x2) (a * tie_weight (max x3 x1) x2)",
            f"a * (tie_weight x3 x1 * {_INSIDE})"),
       doc="x limited to [lo, hi]: min (max x lo) hi, so a bound's tie splits the derivative equally",
       example=("clip (x1 - 1.0) (x2 + 1.0) x3", ((), (), (5,))))
for _name in ("floor", "ceil"):
    define(_name, (F,), F, _xp(_name), derivative="constant", example=(f"{_name} x1", ((3,),)))
define("round", (F,), F, _xp("round"), derivative="constant", doc="the nearest integer, halves to even (as NumPy and JAX)",
       example=("round x1", ((3,),)))
define("stop_gradient", (F,), F, lambda rt: (lambda x: x), derivative="constant",
       doc="x, as a constant: its derivative is zero in both modes and at every order",
       example=("stop_gradient x1", ((3,),)))
