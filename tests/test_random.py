"""Random numbers from seeds (docs/language.md, "Randomness"): every draw is NumPy's from
the same seed, on every backend and dtype; the ranges hold; ``split`` makes distinct seeds
whose streams are independent; bad arguments are located errors; the draws have no
derivative; and the training loop the docs show runs as a NumPy re-implementation does."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import lamad
from lamad import LamError
from numeric import assert_same_gradient, numeric_gradient

ROOT = Path(__file__).resolve().parent.parent
INT_MAX = 2 ** 63 - 1

PROGRAM = lamad.loads(r"""
def perm (seed : Int) (n : Int) : IntTensor = permutation seed n
def ints (seed : Int) (lo : Int) (hi : Int) (shape : List Int) : IntTensor = randint seed lo hi shape
def coins (seed : Int) (p : Real) (shape : List Int) : BoolTensor = bernoulli seed p shape
def seeds (seed : Int) (n : Int) : List Int = split seed n
def stream (seed : Int) : Tensor = uniform seed [1000]
def streams (seed : Int) (n : Int) : List Tensor = map stream (split seed n)
""")


def error(source: str) -> str:
    """The message, as printed, of the error that running ``main`` gives."""
    with pytest.raises(LamError) as info:
        lamad.loads(source, "t.lam").main
    return str(info.value)


# ---------------------------------------------------------------------- the draws


def test_the_draws_are_numpys_from_the_seed():
    rng = np.random.default_rng
    np.testing.assert_array_equal(PROGRAM.perm(3, 10), rng(3).permutation(10))
    np.testing.assert_array_equal(PROGRAM.ints(4, -5, 5, [2, 3]), rng(4).integers(-5, 5, size=(2, 3)))
    np.testing.assert_array_equal(PROGRAM.coins(5, 0.3, [4, 2]), rng(5).random((4, 2)) < 0.3)
    children = np.random.SeedSequence(6).spawn(3)
    assert PROGRAM.seeds(6, 3) == [int(c.generate_state(1, np.uint64)[0]) % 2 ** 63 for c in children]


def test_the_types_of_the_draws():
    assert PROGRAM.perm(0, 4).dtype == np.int64 and PROGRAM.ints(0, 0, 9, [3]).dtype == np.int64
    assert PROGRAM.coins(0, 0.5, [3]).dtype == np.bool_
    assert all(type(k) is int for k in PROGRAM.seeds(0, 3))
    assert str(PROGRAM.types["seeds"]) == "Int -> Int -> List Int"


def test_the_same_seed_gives_the_same_numbers_and_another_seed_others():
    for name, args in (("perm", (50,)), ("ints", (0, 1000, [50])), ("coins", (0.5, [50])), ("seeds", (4,))):
        f = PROGRAM[name]
        assert np.array_equal(f(1, *args), f(1, *args))
        assert not np.array_equal(f(1, *args), f(2, *args))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_dtype_draws_the_same_integers_and_masks(dtype):
    prog = lamad.loads("def main = (permutation 1 20, randint 2 0 7 [20], bernoulli 3 0.25 [20], split 4 3)",
                       dtype=dtype)
    perm, ints, coins, seeds = prog.main
    np.testing.assert_array_equal(perm, PROGRAM.perm(1, 20))
    np.testing.assert_array_equal(ints, PROGRAM.ints(2, 0, 7, [20]))
    np.testing.assert_array_equal(coins, PROGRAM.coins(3, 0.25, [20]))
    assert seeds == PROGRAM.seeds(4, 3)


@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000])
def test_a_permutation_is_a_permutation(n):
    for seed in range(3):
        perm = PROGRAM.perm(seed, n)
        assert perm.shape == (n,)
        np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    if n >= 17:
        assert not np.array_equal(PROGRAM.perm(0, n), np.arange(n))


def test_randint_stays_in_its_range_and_reaches_both_ends():
    got = PROGRAM.ints(0, -2, 3, [10000])
    assert set(np.unique(got)) == {-2, -1, 0, 1, 2}  # lo inclusive, hi exclusive
    assert np.all(PROGRAM.ints(1, 7, 8, [5]) == 7)
    extreme = PROGRAM.ints(2, -INT_MAX - 1, INT_MAX, [1000])  # the whole of Int but its largest
    assert extreme.min() < -2 ** 62 and extreme.max() > 2 ** 62
    assert PROGRAM.ints(3, 0, 5, [2, 0, 3]).shape == (2, 0, 3)


def test_bernoulli_is_true_with_probability_p():
    n = 100000
    for p in (0.1, 0.5, 0.9):
        mean = PROGRAM.coins(0, p, [n]).mean()
        assert abs(mean - p) < 5 * np.sqrt(p * (1 - p) / n)  # five standard deviations
    assert not PROGRAM.coins(1, 0.0, [1000]).any() and PROGRAM.coins(1, 1.0, [1000]).all()


# ---------------------------------------------------------------------- split


def test_split_gives_distinct_nonnegative_ints_and_extends_as_a_prefix():
    seeds = PROGRAM.seeds(0, 1000)
    assert len(set(seeds)) == 1000 and 0 not in seeds
    assert all(0 <= k <= INT_MAX for k in seeds)
    assert PROGRAM.seeds(0, 10) == seeds[:10] and PROGRAM.seeds(0, 0) == []
    nested = [k for s in PROGRAM.seeds(0, 30) for k in PROGRAM.seeds(s, 30)]
    assert len(set(nested) | set(seeds)) == 30 * 30 + 1000  # no seed of a child's is one of its parent's


def test_split_seeds_draw_independent_streams():
    """Each stream, the parent's included, is uncorrelated with every other: the sample
    correlations of 1000 uniforms stay within five standard errors of zero."""
    streams = np.array(PROGRAM.streams(7, 8) + [PROGRAM.stream(7)])
    correlations = np.corrcoef(streams)[np.triu_indices(len(streams), 1)]
    assert np.all(np.abs(correlations) < 5 / np.sqrt(1000))
    assert len({tuple(s[:4]) for s in streams}) == len(streams)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("source, message", [
    ("permutation 0 (-1)", "'permutation': the length of a permutation is negative: -1"),
    ("randint 0 5 5 [2]", "'randint': the range is empty: hi (5) must exceed lo (5)"),
    ("randint 0 5 4 [2]", "'randint': the range is empty: hi (4) must exceed lo (5)"),
    ("randint 0 0 5 [2, -1]", "'randint': negative dimension in shape [2, -1]"),
    ("bernoulli 0 1.5 [2]", "'bernoulli': the probability 1.5 is not in [0, 1]"),
    ("bernoulli 0 (-0.5) [2]", "'bernoulli': the probability -0.5 is not in [0, 1]"),
    ("bernoulli 0 (log (-1.0)) [2]", "'bernoulli': the probability nan is not in [0, 1]"),
    ("split 0 (-2)", "'split': the number of seeds is negative: -2"),
    ("split (-1) 2", "'split': the seed is negative: -1; seeds are Ints ≥ 0"),
    ("randn (-3) [2]", "'randn': the seed is negative: -3; seeds are Ints ≥ 0"),
])
def test_bad_arguments_are_located_errors(source, message):
    msg = error(f"def main =\n  {source}")
    assert f"t.lam:2:3: runtime error: {message}" in msg
    assert f"\n      {source}\n      {'^' * len(source)}" in msg and "Traceback" not in msg


# ---------------------------------------------------------------------- derivatives


def test_a_dropout_mask_is_a_constant_of_the_gradient():
    prog = lamad.loads(r"""
def loss (w : Tensor) : Real = sum (square (w * real (bernoulli 3 0.5 [6]) / 0.5))
def in_p (p : Real) : Real = p * real (length (split 1 3)) + sum (real (bernoulli 0 p [4]))
""")
    w = np.linspace(-1.0, 1.0, 6)
    mask = np.random.default_rng(3).random(6) < 0.5
    got = lamad.grad(prog.loss)(w)
    np.testing.assert_allclose(got, 8.0 * w * mask, rtol=1e-15)
    assert_same_gradient(got, numeric_gradient(prog.loss, w))
    _, tangent = lamad.jvp(prog.loss, (w,), (np.ones(6),))
    assert float(tangent) == pytest.approx(float(np.sum(8.0 * w * mask)), rel=1e-14)
    assert float(lamad.grad(prog.in_p)(0.3)) == 3.0  # the mask's part is 0, as in JAX


# ---------------------------------------------------------------------- the docs' training loop


def docs_epoch_loop() -> str:
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    start = text.index("\n## Randomness\n")
    section = text[start:text.index("\n## ", start + 1)]
    return re.search(r"```\n(def rows.*?)```", section, re.S)[1]


def epoch_loop_reference(seed: int, epochs: int) -> np.ndarray:
    """The docs' loop in NumPy: each epoch shuffles the rows, then takes a step per
    minibatch of two, with noise drawn from the minibatch's seed."""
    rows = np.random.default_rng(0).standard_normal((8, 3))
    w = np.zeros(2)
    for epoch_seed in PROGRAM.seeds(seed, epochs):
        shuffled = rows[np.random.default_rng(epoch_seed).permutation(8)]
        for k, batch in zip(PROGRAM.seeds(epoch_seed, 4), shuffled.reshape(4, 2, 3)):
            x, y = batch[:, :2], batch[:, 2]
            gradient = 2 * x.T @ (x @ w - y) / len(y)
            w = w - 0.1 * gradient + 0.01 * np.random.default_rng(k).standard_normal(2)
    return w


def test_the_training_loop_of_the_docs_runs_as_numpy_does():
    prog = lamad.loads(docs_epoch_loop())
    for seed, epochs in ((7, 3), (8, 3), (7, 1)):
        np.testing.assert_allclose(prog.train(seed, epochs), epoch_loop_reference(seed, epochs), rtol=1e-12)
    assert not np.allclose(prog.train(7, 3), prog.train(8, 3))
