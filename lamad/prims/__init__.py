"""The primitives of lamad, one record each (:class:`Primitive`), grouped by family.

Every pass reads these records: the parser and the printer an operator's syntax, the
checker the type scheme, the transforms the rules, the simplifier the folding, the
compiler the implementation.  :func:`public` is the user's scope.
"""

from lamad.prims import arithmetic, elementwise, reductions, shape, constructors, lists, helpers, ad  # noqa: F401
from lamad.prims.ad import MARKS
from lamad.prims.base import PRIMITIVES, Operator, Positive, Primitive, Runtime, define, primitive, public
from lamad.prims.rules import instantiate, resolve_all

resolve_all()

OPERATORS = {p.operator.symbol: p for p in PRIMITIVES.values() if p.operator is not None and p.arity == 2}
"""The binary operators by symbol (``"+"`` is ``add``)."""

__all__ = ["PRIMITIVES", "OPERATORS", "MARKS", "Operator", "Positive", "Primitive", "Runtime", "define", "instantiate",
           "primitive", "public"]
