"""One minibatch step of examples/minibatch.lam does not grow with the data:

    python benchmarks/minibatch.py                  # the 1,797 digits, and 100 times as many
    python benchmarks/minibatch.py --scales 1 10    # other multiples of the data

The data are the 1,797 8×8 digits of examples/data (training and held-out images
together), repeated ``scale`` times.  Each row of the table times one call of the
example's ``step`` — the loss and gradient of the two-layer network on a batch of 32 rows
taken by indexing, ``x[rows]``, and the update — and, as the baseline, the same step with
the batch taken the way a language without indexing must: a one-hot selection matrix
(32 × rows of data) times the whole data.  The calls are interleaved and the figures are
medians of CPU time per call (``benchmarks/common.py``); the last column is the step's time
over its time on the unrepeated data.
"""

from __future__ import annotations

if __name__ == "__main__":
    import blas
    blas.one_thread()

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import lamad  # noqa: E402
from common import machine, markdown_table, median_times, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "minibatch.lam"
BATCH = 32

ONE_HOT = """
def step_onehot (x : Tensor) (labels : IntTensor) (rate : Real) (w : Tensor * Tensor * Tensor * Tensor)
                (rows : IntTensor) : Tensor * Tensor * Tensor * Tensor =
  let select = onehot (dim 0 x) (real rows);                  -- 32 × rows of data
      (w1, b1, w2, b2) = w;
      (g1, gb1, g2, gb2) = grad (loss (select @ x) (int (select @ real labels))) w
  in (w1 - rate * g1, b1 - rate * gb1, w2 - rate * g2, b2 - rate * gb2)
"""
"""The baseline, appended to the example: its batch is a one-hot matrix times the data."""


def digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images, scaled to [0, 1] as the example scales them, and their labels."""
    data = ROOT / "examples" / "data"
    images = np.concatenate([np.load(data / f"digits_{part}_images.npy") for part in ("train", "test")]) / 16.0
    labels = np.concatenate([np.load(data / f"digits_{part}_labels.npy") for part in ("train", "test")])
    return images, labels.astype(np.int64)


def step_times(scales: list[int], repeats: int) -> list[list[str]]:
    """A row per scale: rows of data, the step with indexing, with a one-hot batch (ms), and
    each over its time at the first scale."""
    prog = lamad.loads(EXAMPLE.read_text(encoding="utf-8") + ONE_HOT, base_dir=EXAMPLE.parent)
    images, labels = digits()
    rng = np.random.default_rng(0)
    w = (0.1 * rng.standard_normal((64, 128)), np.zeros(128), 0.1 * rng.standard_normal((128, 10)), np.zeros(10))
    calls = {}
    for scale in scales:
        x, y = np.tile(images, (scale, 1)), np.tile(labels, scale)
        rows = rng.permutation(len(x))[:BATCH]
        calls[f"index {scale}"] = lambda x=x, y=y, rows=rows: prog.step(x, y, 0.5, w, rows)
        calls[f"onehot {scale}"] = lambda x=x, y=y, rows=rows: prog.step_onehot(x, y, 0.5, w, rows)
    times = median_times(calls, repeats=repeats)
    first = scales[0]
    return [[f"{len(images) * s:,}", f"{times[f'index {s}'] * 1e3:.3f}", f"{times[f'index {s}'] / times[f'index {first}']:.2f}",
             f"{times[f'onehot {s}'] * 1e3:.3f}", f"{times[f'onehot {s}'] / times[f'onehot {first}']:.2f}"]
            for s in scales]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--results", type=Path, default=None, help="the folder of the results (benchmarks/results)")
    args = parser.parse_args()
    rows = step_times(args.scales, args.repeats)
    table = markdown_table(["rows of data", "step, x[rows] (ms)", "× first", "step, one-hot batch (ms)", "× first"],
                           rows)
    text = (f"# One minibatch step of {BATCH} rows\n\n{table}\n\nMachine: {machine()}.\n")
    write_results("minibatch", text, *([args.results] if args.results else []))


if __name__ == "__main__":
    main()
