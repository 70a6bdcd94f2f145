"""The AD operators (``grad``, ``value_and_grad``, ``vjp``, ``jvp``), which the evaluator
runs on function values, and those written with them (``hvp``, ``hessian``, ``jacfwd``,
``jacrev``), whose rules the checker instantiates.

An AD operator met inside a term that a transform differentiates is kept, *marked* with
that transform (:attr:`lamad.syntax.Prim.marks`): ``grad`` inside →D of ←D of a term
has marks ``"rf"``, innermost first, and is printed ``%grad'rf``.
"""

from __future__ import annotations

from lamad.prims.base import A, B, C, define

MARKS = {"r": "←D", "f": "→D"}
"""The letter that marks each transform."""

for _name, _params in (("grad", (A,)), ("value_and_grad", (A,)), ("vjp", (A, B)), ("jvp", (A, B, C))):
    define(_name, _params, B, None, typing="ad", derivative="ad")

define("hvp", (A, B, C), B, None, typing="derived", derivative="ad",
       derived="\\f x v. snd (jvp (grad f) x v)",
       doc="forward-over-reverse: the tangent of jvp (grad f)")
define("hessian", (A, B), B, None, typing="derived", derivative="ad",
       derived=("\\f x. snd (jvp (grad f) x 1.0)", "\\f x. jacfwd (grad f) x"),
       doc="jacfwd of grad")
define("jacfwd", (A, B), B, None, typing="derived", derivative="ad",
       derived=("\\f x. snd (jvp f x 1.0)",
                "\\f x. let y = f x; cols = map (\\e. snd (jvp f x (reshape e (shape x)))) (unstack (eye (size x)))"
                " in reshape (transpose (reshape (stack cols) [size x, -1])) (append (shape y) (shape x))"),
       doc="one jvp per component of the argument: the columns of the Jacobian")
define("jacrev", (A, B), B, None, typing="derived", derivative="ad",
       derived=("\\f x. let (y, pullback) = vjp f x in pullback 1.0",
                "\\f x. let (y, pullback) = vjp f x;"
                " rows = map (\\e. pullback (reshape e (shape y))) (unstack (eye (size y)))"
                " in reshape (stack rows) (append (shape y) (shape x))"),
       doc="one pullback per component of the result: the rows of the Jacobian")
