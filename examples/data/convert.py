"""Make the data files of ``examples/`` from the copies scikit-learn ships (see README.md
beside this file; scikit-learn is not a dependency of lamad):

    pip download --no-deps scikit-learn -d /tmp/sk && (cd /tmp/sk && unzip -q scikit_learn-*.whl)
    python examples/data/convert.py /tmp/sk/sklearn/datasets/data

Wine: the 13 measurements as printed in the source (``wine.csv``) and the class as in
the UCI original, 1 to 3 (``wine_classes.csv``).  Digits: a seeded shuffle of the 1,797
images, split into 1,437 training and 360 held-out (20%) images (pixels 0 to 16) and
labels, as uint8 ``.npy`` files.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0


def wine(source: Path) -> None:
    rows = (source / "wine_data.csv").read_text().splitlines()[1:]  # the first line is a header
    features, classes = [], []
    for row in rows:
        *values, label = row.split(",")
        features.append(",".join(values))
        classes.append(str(int(label) + 1))
    assert len(features) == 178 and all(len(f.split(",")) == 13 for f in features)
    (HERE / "wine.csv").write_text("\n".join(features) + "\n")
    (HERE / "wine_classes.csv").write_text("\n".join(classes) + "\n")


def digits(source: Path) -> None:
    with gzip.open(source / "digits.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    assert table.shape == (1797, 65)
    table = table[np.random.default_rng(SEED).permutation(len(table))]
    held_out = -(-len(table) // 5)  # 20%, rounded up as scikit-learn's train_test_split does
    train, test = table[:-held_out], table[-held_out:]
    for name, part in (("train", train), ("test", test)):
        np.save(HERE / f"digits_{name}_images.npy", part[:, :64])
        np.save(HERE / f"digits_{name}_labels.npy", part[:, 64])


if __name__ == "__main__":
    wine(Path(sys.argv[1]))
    digits(Path(sys.argv[1]))
