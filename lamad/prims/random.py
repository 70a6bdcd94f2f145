"""Random numbers from seeds (docs/language.md, Randomness).

Every draw is a function of an Int seed: NumPy's PCG64 generator seeded with it draws on
the host, and the result is moved to the backend once, so every backend and dtype sees the
same numbers.  ``split`` derives new seeds from one as JAX splits keys, with NumPy's
``SeedSequence`` spawning, so a loop takes a fresh seed at each step without inventing
one.  Nothing here has a derivative: the reals are constants (``randn``, ``uniform``), and
the rest have no real result.
"""

from __future__ import annotations

import numpy as np

from lamad.prims.base import SHAPE, define
from lamad.prims.constructors import dimensions
from lamad.syntax import BOOL_TENSOR, INT, INT_TENSOR, REAL, TENSOR, ListType


def _seed(seed: int) -> int:
    """``seed``, which must not be negative (NumPy's seeds are not); else a ``ValueError``."""
    if seed < 0:
        raise ValueError(f"the seed is negative: {seed}; seeds are Ints ≥ 0")
    return seed


def generator(seed: int) -> np.random.Generator:
    """NumPy's PCG64 generator seeded with ``seed``."""
    return np.random.default_rng(_seed(seed))


def _count(n: int, what: str) -> int:
    if n < 0:
        raise ValueError(f"the {what} is negative: {n}")
    return n


def _reals(method: str):
    """``randn``/``uniform``: the generator's ``method`` at the shape, as reals."""
    def impl(rt):
        return lambda seed, shape: rt.backend.asarray(getattr(generator(seed), method)(dimensions(shape)))
    return impl


def _permutation(rt):
    return lambda seed, n: rt.backend.ints(generator(seed).permutation(_count(n, "length of a permutation")))


def _randint(rt):
    def randint(seed, lo, hi, shape):
        """Ints drawn uniformly from ``lo … hi - 1``, as NumPy's ``integers``."""
        if hi <= lo:
            raise ValueError(f"the range is empty: hi ({hi}) must exceed lo ({lo})")
        return rt.backend.ints(generator(seed).integers(lo, hi, size=dimensions(shape), dtype=np.int64))
    return randint


def _bernoulli(rt):
    def bernoulli(seed, p, shape):
        """``true`` with probability ``p``: a uniform draw in [0, 1) below ``p``, so that
        ``p = 0`` is never and ``p = 1`` always."""
        p = float(p)
        if not 0.0 <= p <= 1.0:  # NaN too
            raise ValueError(f"the probability {p!r} is not in [0, 1]")
        return rt.backend.bools(generator(seed).random(dimensions(shape)) < p)
    return bernoulli


SEED_MASK = np.uint64(2 ** 63 - 1)


def split(seed: int, n: int) -> list[int]:
    """``n`` seeds derived from ``seed``: the i-th is the first 64-bit word of the state of
    the i-th child that NumPy's ``SeedSequence(seed)`` spawns, its top bit cleared so that
    it is an Int ≥ 0.  The children hash the parent's entropy with their index, so their
    streams are independent of each other and of the parent's, and ``split seed n`` is the
    first ``n`` of ``split seed m`` for ``m ≥ n``."""
    children = np.random.SeedSequence(_seed(seed)).spawn(_count(n, "number of seeds"))
    return [int(child.generate_state(1, np.uint64)[0] & SEED_MASK) for child in children]


define("randn", (INT, SHAPE), TENSOR, _reals("standard_normal"), derivative="constant",
       doc="standard normal reals drawn from the seed",
       example=("randn 4 (shape x1)", ((2, 3),)))
define("uniform", (INT, SHAPE), TENSOR, _reals("random"), derivative="constant",
       doc="reals drawn uniformly from [0, 1) from the seed",
       example=("uniform 4 (shape x1)", ((2, 3),)))
define("permutation", (INT, INT), INT_TENSOR, _permutation, derivative="discrete",
       doc="a permutation of 0 … n - 1 drawn from the seed")
define("randint", (INT, INT, INT, SHAPE), INT_TENSOR, _randint, derivative="discrete",
       doc="Ints drawn uniformly from lo … hi - 1 (lo inclusive, hi exclusive) from the seed")
define("bernoulli", (INT, REAL, SHAPE), BOOL_TENSOR, _bernoulli, derivative="discrete",
       doc="a mask, each entry true with probability p, drawn from the seed")
define("split", (INT, INT), ListType(INT), lambda rt: split, derivative="discrete",
       doc="n new seeds derived from the seed, independent of it and of each other")
