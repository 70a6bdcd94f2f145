"""The reference docs say what the code does: the records docs/primitives.md shows are
the records lamad defines, word for word, and it names every public primitive."""

from __future__ import annotations

import os
import re
from pathlib import Path

from lamad.prims import PRIMITIVES
from lamad.syntax import Base, TVar, map_type, pretty_type

ROOT = Path(__file__).resolve().parent.parent
PRIMITIVES_DOC = (ROOT / "docs" / "primitives.md").read_text(encoding="utf-8")


def test_the_records_shown_in_adding_a_primitive_are_the_ones_defined():
    source = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "lamad" / "prims").glob("*.py")))
    records = re.findall(r"```python\n(define\(.*?)```", PRIMITIVES_DOC, re.S)
    assert [re.match(r'define\("(\w+)"', r)[1] for r in records] == ["softplus", "log_sigmoid", "logaddexp"]
    for record in records:
        assert record in source


def test_the_families_name_every_public_primitive():
    table = PRIMITIVES_DOC[PRIMITIVES_DOC.index("| module |"):PRIMITIVES_DOC.index("Every pass reads")]
    named = set(re.findall(r"[a-z_0-9]+", " ".join(re.findall(r"`([^`]*)`", table))))
    public = {n for n, p in PRIMITIVES.items() if p.public and p.operator is None}
    assert public <= named



def scheme(prim) -> str:
    """A primitive's type as the reference shows it: ``F`` for Real or Tensor, ``N`` for
    Int, Real, Tensor or IntTensor, ``'a``, ``'b`` … for any type; an overloaded primitive's
    signatures, one after the other."""
    if prim.typing == "overloaded":
        return "`; `".join(" → ".join(map(pretty_type, params + (result,))) for params, result in prim.signatures)
    letters, seen = iter("abcdefgh"), {}

    def variable(t):
        if not isinstance(t, TVar):
            return None
        if t.id not in seen:
            seen[t.id] = Base({"float": "F", "num": "N"}.get(t.kind) or f"'{next(letters)}")
        return seen[t.id]
    return pretty_type(map_type(prim.type, variable))


KINDS = {"constant": ("0", "0"), "structural": ("commutes with →D", "commutes with ←D"),
         "discrete": ("none: no real result", "none: no real result"),
         "special": ("one rule for the whole application", "one rule for the whole application"),
         "ad": ("nested: see differentiation.md", "nested: see differentiation.md"),
         "written out": ("that of the construction it is written as", "that of the construction it is written as")}


def reference() -> str:
    """The table of every public primitive — its type and its derivative rules, one per
    argument — as docs/language.md shows it, made from the records."""
    rows = ["| primitive | type | tangent (→D) | cotangent (←D) |", "|---|---|---|---|"]
    for prim in PRIMITIVES.values():
        if not prim.public:
            continue
        if prim.derivative == "rules":
            jvp, vjp = ("; ".join(f"`{r}`" for r in rules if r is not None) for rules in (prim.jvp, prim.vjp))
        else:
            jvp, vjp = KINDS[prim.derivative]
        surface = prim.surface.replace("|", "\\|")
        rows.append(f"| `{surface}` | `{scheme(prim)}` | {jvp} | {vjp} |")
    return "\n".join(rows) + "\n"


def test_the_reference_lists_every_public_primitive_with_its_type_and_rules():
    """docs/language.md's table is the records' (regenerate with LAMAD_REGENERATE=1)."""
    path = ROOT / "docs" / "language.md"
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    if os.environ.get("LAMAD_REGENERATE"):
        text = text[:start] + "\n" + reference() + text[end:]
        path.write_text(text, encoding="utf-8")
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    assert text[start:end] == "\n" + reference()


BEGIN, END = "<!-- reference: made from the records by tests/test_docs.py -->", "<!-- end of reference -->"
