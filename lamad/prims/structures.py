"""The structure maps (docs/language.md, "Generic definitions and structures"): ``tmap``,
``tmap2``, ``tsum``, ``tzeros_like`` and ``tfull_like`` over the Real and Tensor leaves of
records and tuples, as JAX's tree utilities.  They have no implementation: once the
structure's type is known, the checker writes each as the explicit construction
(``tmap f s`` of ``s : {w : Tensor, b : Tensor}`` is ``{b = f s.b, w = f s.w}``), so the
transforms and the compiler only see ordinary terms."""

from __future__ import annotations

from lamad.prims.base import A, B, C, define
from lamad.syntax import REAL, FunType

for _name, _params, _result, _doc in (
        ("tmap", (FunType(A, B), C), C, "f applied to each Real and Tensor leaf of a record or tuple"),
        ("tmap2", (FunType(A, FunType(A, B)), C, C), C, "f applied to the leaves of two structures of one shape"),
        ("tsum", (C,), REAL, "the sum of every entry of every leaf"),
        ("tzeros_like", (C,), C, "the structure with every leaf zero"),
        ("tfull_like", (REAL, C), C, "the structure with every entry of every leaf the given Real")):
    define(_name, _params, _result, None, typing="structure", derivative="written out", doc=_doc)
