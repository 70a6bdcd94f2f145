"""The primitives of lamad, one record each (:class:`Primitive`), grouped by family.

Every pass reads these records: the parser and the printer an operator's syntax, the
checker the type scheme, the transforms the rules, the simplifier the folding, the
compiler the implementation.  :func:`public` is the user's scope.
"""

from lamad.prims import arithmetic, elementwise, reductions, shape, axes, masks, indexing, linalg, conv  # noqa: F401
from lamad.prims import constructors, random, lists, helpers, ad, structures  # noqa: F401
from lamad.prims.ad import MARKS
from lamad.prims.base import PRIMITIVES, Operator, Positive, Primitive, Runtime, define, public
from lamad.prims.rules import resolve_all

resolve_all()

__all__ = ["PRIMITIVES", "MARKS", "Operator", "Positive", "Primitive", "Runtime", "define",
           "public"]
