"""The reference docs say what the code does: the records docs/primitives.md shows are
the records lamad defines, word for word, and it names every public primitive."""

from __future__ import annotations

import re
from pathlib import Path

from lamad.prims import PRIMITIVES

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
