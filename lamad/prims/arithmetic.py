"""Arithmetic, comparisons and the maxima: the operators of lamad (``+`` is ``add``).

Conventions at kinks and ties: ``max`` and ``min`` split the cotangent equally between
tied arguments, as JAX and PyTorch do (:func:`lamad.prims.helpers` ``tie_weight``).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from lamad.prims.base import A, B, F, N, Operator, Positive, define, lifted
from lamad.syntax import BOOL, INT, TENSOR


INT_MIN, INT_MAX = -2 ** 63, 2 ** 63 - 1
"""Int is a 64-bit signed integer, as in NumPy and JAX; a result outside it is an error."""


def int_in_range(n: int, what: str) -> int:
    """``n``, an Int, if it is within Int's 64-bit range; else an ``OverflowError``."""
    if not INT_MIN <= n <= INT_MAX:
        raise OverflowError(f"{what} overflows Int's 64-bit range (-2**63 … 2**63 - 1)")
    return n


def _pow(x, y):
    """``**``; an Int to a negative Int power would not be an Int, so it is refused, and a
    power of an Int too large for 64 bits is refused before it is computed.  A Real that is
    a Python float is raised as NumPy's scalar (Python's power may be complex, or raise)."""
    if type(x) is int and type(y) is int:
        if y < 0:
            raise ValueError(f"{x} ** {y}: an Int to a negative power is not an Int; convert with 'real'")
        if abs(x) > 1 and y >= 64:
            int_in_range(INT_MAX + 1, f"{x} ** {y}")
        return int_in_range(x ** y, f"{x} ** {y}")
    return np.float64(x) ** y if type(x) is float else x ** y  # a Real that is a float: NumPy's power


def _python(op):
    return lambda rt: op


def _int_checked(op, symbol: str):
    """``op``, its Int results checked against Int's range (compiled code calls it on
    Ints, and Python's operator on reals: lamad/eval.py)."""
    if symbol == "-x":
        def unary(x):
            r = op(x)
            return int_in_range(r, f"-({x})") if type(r) is int else r
        return lambda rt: unary

    def binary(x, y):
        r = op(x, y)
        return int_in_range(r, f"{x} {symbol} {y}") if type(r) is int else r
    return lambda rt: binary


define("add", (F, F), F, _int_checked(operator.add, "+"), typing="arith", ints=True, linear=(0, 1),
       operator=Operator("+", 4, "left", "+"), fold=operator.add,
       jvp=("dx1", "dx2"),
       vjp=("unbroadcast (like x1) a", "unbroadcast (like x2) a"),
       example=("x1 + x2", ((2, 3), (3,))))
define("sub", (F, F), F, _int_checked(operator.sub, "-"), typing="arith", ints=True,
       operator=Operator("-", 4, "left", "-"), fold=operator.sub,
       jvp=("dx1", "-dx2"),
       vjp=("unbroadcast (like x1) a", "unbroadcast (like x2) (-a)"),
       example=("x1 - x2", ((2, 3), ())))
define("mul", (F, F), F, _int_checked(operator.mul, "*"), typing="arith", ints=True, linear=(0, 1),
       operator=Operator("*", 5, "left", "*"), fold=operator.mul,
       jvp=("dx1 * x2", "x1 * dx2"),
       vjp=("unbroadcast (like x1) (a * x2)", "unbroadcast (like x2) (x1 * a)"),
       example=("x1 * x2", ((2, 3), (2, 1))))
define("div", (F, F), F, _python(operator.truediv), typing="arith", linear=(0,),
       operator=Operator("/", 5, "left", "/"),
       jvp=("dx1 / x2", "-(y * dx2) / x2"),
       vjp=("unbroadcast (like x1) (a / x2)", "unbroadcast (like x2) (-(a * y) / x2)"),
       example=("x1 / x2", ((3,), Positive((2, 3)))))
define("pow", (F, F), F, _python(_pow), typing="arith", ints=True, scalar=math.pow,
       operator=Operator("**", 7, "right"),
       jvp=("dx1 * mul0 x2 (x1 ** (x2 - 1.0))", "dx2 * mul0 y (log x1)"),
       vjp=("unbroadcast (like x1) (a * mul0 x2 (x1 ** (x2 - 1.0)))", "unbroadcast (like x2) (a * mul0 y (log x1))"),
       doc="x to the power y; where a factor of a derivative vanishes, so does the derivative (0 ** y at y > 0)",
       example=("x1 ** x2", (Positive((2, 3)), (3,))))
define("neg", (N,), N, _int_checked(operator.neg, "-x"), linear=(0,),
       operator=Operator("-", 6, "prefix", "-"), fold=operator.neg,
       jvp=("-dx1",), vjp=("-a",), example=("-x1", ((3,),)))
define("matmul", (TENSOR, TENSOR), TENSOR, lambda rt: _checked_matmul(rt.backend.xp.matmul, rt.backend.ext.dot),
       linear=(0, 1),
       operator=Operator("@", 5, "left"),
       jvp=("dx1 @ x2", "x1 @ dx2"),
       vjp=("matmul_dx x1 x2 a", "matmul_dy x1 x2 a"),
       example=("x1 @ x2", ((2, 3), (3, 4))))


def _checked_matmul(matmul, dot: bool):
    """``matmul``, by the arrays' ``dot`` for a matrix and a vector where the backend's is
    cheaper (``Extensions.dot``), its errors said in lamad's words where the shapes do not
    align."""
    def checked(x, y):
        try:
            if dot and (x.ndim == 2 and y.ndim == 1 or x.ndim == 1 and y.ndim == 2):
                return x.dot(y)
            return matmul(x, y)
        except (ValueError, TypeError, RuntimeError):  # NumPy's, JAX's and PyTorch's kinds of error
            if _aligned(tuple(x.shape), tuple(y.shape)):
                raise
            raise ValueError(f"shapes {tuple(x.shape)} and {tuple(y.shape)} do not align") from None
    return checked


def _aligned(xs: tuple[int, ...], ys: tuple[int, ...]) -> bool:
    """Whether arrays of shapes ``xs`` and ``ys`` can be multiplied by ``@``: the last axis
    of ``xs`` against the first of a vector ``ys`` or the second to last of a matrix, and
    the axes before a matrix's last two (a stack of matrices) broadcast."""
    if not xs or not ys or xs[-1] != (ys[0] if len(ys) == 1 else ys[-2]):
        return False
    try:
        np.broadcast_shapes(xs[:-2], ys[:-2])
    except ValueError:
        return False
    return True


define("max", (F, F), F, lambda rt: rt.backend.xp.maximum, typing="arith",
       jvp=("dx1 * tie_weight x1 x2", "dx2 * tie_weight x2 x1"),
       vjp=("unbroadcast (like x1) (a * tie_weight x1 x2)", "unbroadcast (like x2) (a * tie_weight x2 x1)"),
       doc="elementwise maximum; ties split the derivative equally", example=("max x1 x2", ((2, 3), (3,))))
define("min", (F, F), F, lambda rt: rt.backend.xp.minimum, typing="arith",
       jvp=("dx1 * tie_weight x2 x1", "dx2 * tie_weight x1 x2"),
       vjp=("unbroadcast (like x1) (a * tie_weight x2 x1)", "unbroadcast (like x2) (a * tie_weight x1 x2)"),
       doc="elementwise minimum; ties split the derivative equally", example=("min x1 x2", ((3,), ())))


def _integer_division(op, symbol: str):
    """``//`` or ``%`` on Ints and IntTensors, floored as Python's (the remainder has the
    divisor's sign); a zero divisor is an error, where NumPy would give 0 and a warning."""
    def impl(rt):
        xp = rt.backend.xp

        def divide(x, y):
            if type(y) is int:
                if y == 0:
                    raise ZeroDivisionError(f"{x} {symbol} 0: integer division by zero")
            elif bool(xp.any(y == 0)):
                raise ZeroDivisionError(f"'{symbol}' by an IntTensor holding 0: integer division by zero")
            r = op(x, y)
            return int_in_range(r, f"{x} {symbol} {y}") if type(r) is int else r
        return divide
    return impl


define("floordiv", (A, B), A, _integer_division(operator.floordiv, "//"), typing="overloaded",
       signatures=lifted((INT, INT), INT), derivative="discrete", operator=Operator("//", 5, "left"),
       doc="integer division, rounded down (toward minus infinity), of Ints or IntTensors")
define("mod", (A, B), A, _integer_division(operator.mod, "%"), typing="overloaded",
       signatures=lifted((INT, INT), INT), derivative="discrete", operator=Operator("%", 5, "left"),
       doc="the remainder of '//', with the divisor's sign: x == (x // y) * y + x % y")


def _comparison(op):
    """A comparison: a Bool of scalars, a BoolTensor of arrays (elementwise)."""
    def compare(x, y):
        r = op(x, y)
        return r if getattr(r, "ndim", 0) else bool(r)
    return lambda rt: compare


for _name, _symbol, _op in (("lt", "<", operator.lt), ("le", "<=", operator.le), ("gt", ">", operator.gt),
                            ("ge", ">=", operator.ge), ("eq", "==", operator.eq), ("ne", "!=", operator.ne)):
    define(_name, (A, A), BOOL, _comparison(_op), typing="compare", derivative="discrete",
           operator=Operator(_symbol, 3, "none"))


def _logical(fn_name: str, on_bools):
    """A logical operation: the namespace's ``fn_name`` where an operand is an array,
    ``on_bools`` of Python's Bools otherwise (the standard's functions take arrays)."""
    def impl(rt):
        fn = getattr(rt.backend.xp, fn_name)
        return lambda *xs: fn(*xs) if any(getattr(x, "ndim", 0) for x in xs) else on_bools(*xs)
    return impl


define("not", (A,), B, _logical("logical_not", operator.not_), typing="overloaded", signatures=lifted((BOOL,), BOOL),
       derivative="discrete", doc="negation, elementwise on a BoolTensor")
define("logical_and", (A, B), A, _logical("logical_and", lambda x, y: x and y), typing="overloaded", signatures=lifted((BOOL, BOOL), BOOL),
       derivative="discrete", doc="'&&' elementwise, as it is written where an operand is a BoolTensor")
define("logical_or", (A, B), A, _logical("logical_or", lambda x, y: x or y), typing="overloaded", signatures=lifted((BOOL, BOOL), BOOL),
       derivative="discrete", doc="'||' elementwise, as it is written where an operand is a BoolTensor")
