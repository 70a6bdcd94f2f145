"""The data of the benchmark workloads: UCI wine (13 features × 178 samples) and the
8×8 digits (1,797 × 64), read from ``examples/data/`` when the files are there, else a
deterministic synthetic stand-in of the same shape and statistics.

The timings depend on the shapes (and, through ``relu``, a little on the values), not on
what the numbers mean, so the synthetic sets give the same figures; the loaders report
which one they used (``source``) so that the results table says it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
WINE_FILE = DATA / "wine.csv"
"""178 rows of 13 features, comma-separated, no header (see examples/data/README.md)."""
WINE_CLASSES_FILE = DATA / "wine_classes.csv"
"""The class (1, 2, 3) of each row of ``WINE_FILE``."""
DIGITS_FILES = [(DATA / f"digits_{part}_images.npy", DATA / f"digits_{part}_labels.npy") for part in ("train", "test")]
"""The 1,797 digits, split 1,437 + 360 for digits.lam: 64 pixel values 0..16, labels 0..9."""

WINE_CLASS_SIZES = (59, 71, 48)


class Dataset(NamedTuple):
    x: np.ndarray
    labels: np.ndarray
    source: str


def wine() -> Dataset:
    """X : 13×178, every feature normalised to mean 0 and variance 1 over the samples;
    labels = class − 1."""
    if WINE_FILE.is_file() and WINE_CLASSES_FILE.is_file():
        features = np.loadtxt(WINE_FILE, delimiter=",", ndmin=2)
        labels, source = np.loadtxt(WINE_CLASSES_FILE, delimiter=",") - 1, WINE_FILE.name
    else:
        # Three classes of the real sizes, each a Gaussian cloud around its own centre.
        rng = np.random.default_rng(178)
        labels = np.repeat(np.arange(3.0), WINE_CLASS_SIZES)
        centres = rng.normal(size=(3, 13))
        features, source = centres[labels.astype(int)] + rng.normal(size=(178, 13)), "synthetic"
    features = (features - features.mean(axis=0)) / features.std(axis=0)
    return Dataset(np.ascontiguousarray(features.T), labels, source)


def digits() -> Dataset:
    """X : 1797×64, pixel values 0..16 divided by 16; labels 0..9."""
    if all(path.is_file() for pair in DIGITS_FILES for path in pair):
        images = np.concatenate([np.load(i, allow_pickle=False) for i, _ in DIGITS_FILES]).reshape(-1, 64)
        labels = np.concatenate([np.load(t, allow_pickle=False) for _, t in DIGITS_FILES])
        source = "digits_*.npy"
    else:
        # Ten classes of about 180 noisy copies of a random stroke pattern inside the
        # central 6×6 pixels (the real border columns are blank too), integers 0..16 with
        # mean 4.9 and 41% zeros (the real set: 4.9 and 49%).
        rng = np.random.default_rng(1797)
        labels = np.arange(1797) % 10
        prototypes = np.zeros((10, 8, 8))
        prototypes[:, 1:7, 1:7] = rng.random((10, 6, 6)) > 0.55
        noisy = 16 * prototypes[labels].reshape(-1, 64) + rng.normal(scale=4.0, size=(1797, 64))
        images, source = np.clip(np.round(noisy), 0, 16), "synthetic"
    return Dataset(images.astype(float) / 16, labels.astype(int), source)
