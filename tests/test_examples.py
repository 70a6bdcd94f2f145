"""Every program in ``examples/`` runs through the CLI and prints the value that an
independent NumPy / plain-Python computation of the same thing gives."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def randn(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """lamad's ``randn seed shape``: standard normals from NumPy's PCG64 seeded with ``seed``."""
    return np.random.default_rng(seed).standard_normal(shape)


def lamad(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LAMAD_BACKEND", "LAMAD_DTYPE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "lamad.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def parse_output(text: str):
    """A printed lamad value as Python data: reals and ints as numbers, tensors as
    (nested) lists, tuples as tuples (format_value prints them all as Python literals)."""
    return ast.literal_eval(text.strip().replace("true", "True").replace("false", "False"))


# ------------------------------------------------------------ expected values

def expect_hello():
    x, y, z = -2.0, 5.0, -4.0
    return (x + y) * z


def expect_mlp_forward():
    w1, b1 = 0.5 * randn(1, (3, 4)), np.full(4, 0.1)
    w2, b2 = 0.5 * randn(2, (4, 1)), np.zeros(1)
    x, y = randn(3, (8, 3)), randn(4, (8, 1))
    hidden = np.tanh(x @ w1 + b1)
    prediction = hidden @ w2 + b2
    return float(np.mean((prediction - y) ** 2))


def expect_rnn():
    w, u, b = 0.5 * randn(1, (3, 3)), randn(2, (3, 2)), np.full(3, 0.1)
    h, total = np.zeros(3), 0.0
    for x in randn(7, (5, 2)):
        h = np.tanh(w @ h + u @ x + b)
        total += float(np.sum(h ** 2))
    return (h, total)


def expect_higher_order():
    xs = [float(i) for i in range(5)]
    ys = [4 * x + 3 for x in xs]  # twice (compose inc double) = inc . double . inc . double
    fixpoint = 0.0
    for _ in range(20):
        fixpoint = fixpoint / 2 + 1
    eight = 0.0 + 2 ** 3  # twice applied 3 times to inc: inc 8 times
    return (ys, sum(x * y for x, y in zip(xs, ys)), sum(1 for y in ys if y > 10), fixpoint, eight)


def expect_data():
    table = np.genfromtxt(EXAMPLES / "data" / "measurements.csv", delimiter=",")
    assert table.shape == (5, 3)
    return (table.mean(axis=0), table.std(axis=0), table.shape[0])


def expect_gate():
    x, y, z = -2.0, 5.0, -4.0
    return ((x + y) * z, (z, z, x + y))  # the seed's published -12 and (-4, -4, 3)


def expect_neuron():
    w, x, b = 2.0, 3.0, -4.0
    e = np.exp(w * x + b)
    return (e, (x * e, w * e, e))  # the seed's 22.17, 14.78, 7.389


def expect_log_sin():
    x1, x2 = 2.0, 5.0
    return (np.log(x1) + x1 * x2 - np.sin(x2), (1 / x1 + x2, x1 - np.cos(x2)))  # 11.652, (5.5, 1.716)


def expect_symbolic():
    x1, x2 = 1.5, 0.5
    d = x1 - x2
    slope = 2 * d * np.cos(d * d)
    return (np.sin(d * d), (slope, -slope))


EXPECTED = {
    "gate.lam": (expect_gate, "Real × (Real × Real × Real)"),
    "neuron.lam": (expect_neuron, "Real × (Real × Real × Real)"),
    "log_sin.lam": (expect_log_sin, "Real × (Real × Real)"),
    "symbolic.lam": (expect_symbolic, "Real × (Real × Real)"),
    "hello.lam": (expect_hello, "Real"),
    "mlp_forward.lam": (expect_mlp_forward, "Real"),
    "rnn.lam": (expect_rnn, "Tensor × Real"),
    "higher_order.lam": (expect_higher_order, "List Real × Real × Int × Real × Real"),
    "data.lam": (expect_data, "Tensor × Tensor × Int"),
}


def assert_close(actual, expected, where: str = "result"):
    """Structural comparison: tuples item by item, lists/arrays elementwise, ints exactly."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), f"{where}: {actual!r} vs {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
        assert actual == expected and isinstance(actual, int), f"{where}: {actual!r} != {expected!r}"
    else:
        a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
        assert a.shape == e.shape, f"{where}: shape {a.shape} != {e.shape}"
        # tensors are printed with NumPy's default 8 significant decimals
        np.testing.assert_allclose(a, e, rtol=1e-7, atol=1e-8, err_msg=where)


# ------------------------------------------------------------ tests

def example_files() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.lam"))


def test_every_example_has_an_expected_value():
    assert len(example_files()) >= 5
    assert set(example_files()) == set(EXPECTED), "add the new example's expected value to EXPECTED"


@pytest.mark.parametrize("name", example_files())
def test_example_runs_and_prints_the_expected_value(name):
    proc = lamad("run", f"examples/{name}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    expect, _ = EXPECTED[name]
    assert_close(parse_output(proc.stdout), expect())


@pytest.mark.parametrize("name", example_files())
def test_example_type_checks(name):
    proc = lamad("check", f"examples/{name}")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(" : " in line for line in lines)
    assert f"main : {EXPECTED[name][1]}" in lines


def test_examples_run_from_another_directory(tmp_path):
    """``load`` paths are relative to the program file, not to the working directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("LAMAD_BACKEND", "LAMAD_DTYPE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "lamad.cli", "run", str(EXAMPLES / "data.lam")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert_close(parse_output(proc.stdout), expect_data())
