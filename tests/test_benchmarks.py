"""The benchmark harness (benchmarks/run.py) cannot rot: its quick mode runs end to end on
tiny sizes, its hand-written NumPy baselines agree with central finite differences, and
its gradient check rejects a wrong gradient; the second-order benchmark
(benchmarks/second_order.py) runs end to end on tiny sizes too, and so do the minibatch
and convolution benchmarks (benchmarks/minibatch.py, benchmarks/cnn.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import peers  # noqa: E402
from lamad.backend import available, get_backend  # noqa: E402
import workloads  # noqa: E402
from workloads import Workload  # noqa: E402

QUICK = workloads.workloads(quick=True)


def test_quick_run_reports_every_workload(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--no-peers", "--repeats", "1",
                           "--results", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "benchmarks-quick.md").read_text()
    for w in QUICK:
        row = next(line for line in table.splitlines() if line.startswith(f"| {w.name} |"))
        cells = [c.strip(" *") for c in row.split("|")[1:-1]]
        assert float(cells[3]) > 0  # lamad / NumPy
    chain_rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith(("| 10 |", "| 100 |"))]
    assert [int(r[6].replace(",", "")) for r in chain_rows] == [1, 4]  # one per FUSED_MOST + 1 links
    assert "Machine:" in table and "BLAS threads 1" in table


@pytest.mark.parametrize("backend", ["dask", "torch"])
def test_quick_run_on_another_backend_is_measured_against_hand_numpy(backend, tmp_path):
    """lamad on ``--backend``, computed in each call, against the same hand NumPy."""
    if not available(backend):
        pytest.skip(f"the {backend} backend is not installed")
    done = run_with_lamad("run.py", "--quick", "--no-peers", "--repeats", "1", "--only", "wine_mlp",
                          "--backend", backend, "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr
    table = (tmp_path / f"benchmarks-{backend}-quick.md").read_text()
    assert table.startswith(f"# lamad benchmark on {backend} (quick")
    row = next(line for line in table.splitlines() if line.startswith("| wine_mlp h=4 |"))
    numpy_us, lamad_us, ratio = (float(c.strip(" *").replace(",", "")) for c in row.split("|")[2:5])
    assert min(numpy_us, lamad_us, ratio) > 0


def test_quick_second_order_run_reports_both_tables(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "second_order.py"), "--quick", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "second-order-quick.md").read_text()
    chain_rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith(("| 5 |", "| 10 |"))]
    runs = [[int(r) for r in row[6].split("/")] for row in chain_rows]
    assert [(grad, hvp) for grad, hvp, _ in runs] == [(1, 5), (1, 10)]  # grad's fused; one per link
    for name in ("grad", "hvp", "hessian in w1", "hessian in w2"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert float(row.split("|")[2]) > 0
    assert "Machine:" in table and "BLAS threads 1" in table


def _central_differences(w: Workload, eps: float = 1e-6) -> list[np.ndarray]:
    grads = []
    for i in w.argnums:
        x = np.array(w.args[i], dtype=float)
        g = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            up, down = x.copy(), x.copy()
            up[j] += eps
            down[j] -= eps
            at = lambda v: w.loss(np, *w.args[:i], v if v.ndim else np.float64(v), *w.args[i + 1:])  # noqa: E731
            g[j] = (at(up) - at(down)) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("w", [w for w in QUICK if not w.name.startswith("chain")] + [workloads.chain(6, x0=1.01)],
                         ids=lambda w: w.name)
def test_hand_written_baselines_match_finite_differences(w):
    value, grads = w.value_and_grad(*w.args)
    np.testing.assert_allclose(value, w.loss(np, *w.args), rtol=1e-12)
    for g, fd in zip(grads, _central_differences(w)):
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_the_gradient_check_rejects_a_wrong_gradient():
    from run import check, lamad_functions

    w = QUICK[0]
    reference = w.value_and_grad(*w.args)
    _, value_and_grad = lamad_functions(w, get_backend("numpy"))
    check("lamad", value_and_grad(), reference)
    wrong = (reference[1][0] * (1 + 1e-6), reference[1][1])
    with pytest.raises(AssertionError, match="gradient 0"):
        check("wrong", (reference[0], wrong), reference)


@pytest.mark.parametrize("system", peers.SYSTEMS)
def test_installed_peers_agree_with_the_baseline(system):
    if system not in peers.installed():
        pytest.skip(f"{system} is not installed (pip install -e '.[bench]')")
    from run import check

    w = QUICK[0]
    check(system, peers.peers(w, [system])[system](), w.value_and_grad(*w.args), rtol=1e-7)


def run_with_lamad(script: str, *args: str) -> subprocess.CompletedProcess:
    """``benchmarks/script args``, with this checkout's lamad on the path."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": path})


def test_cnn_benchmark_checks_and_times_each_system(tmp_path):
    """lamad and hand NumPy always, PyTorch where it is installed (their losses and
    gradients checked against each other first): a time per system and lamad's ratio."""
    done = run_with_lamad("cnn.py", "--repeats", "1", "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "cnn.md").read_text()
    rows = {cells[0]: cells[1:] for line in table.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.split("|")[1:-1]]]}
    systems = ["NumPy", "lamad"] + (["PyTorch"] if importlib.util.find_spec("torch") else [])
    assert [name for name in rows if name != "system"] == systems
    assert all(float(cell) > 0 for name in systems for cell in rows[name])
    assert float(rows["lamad"][2]) == 1.0 and "BLAS threads 1" in table
    assert ("PyTorch eager (CPU), one thread" in table) == ("PyTorch" in systems)


def test_minibatch_benchmark_reports_both_steps_at_each_scale(tmp_path):
    done = run_with_lamad("minibatch.py", "--scales", "1", "2", "--repeats", "1", "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "minibatch.md").read_text()
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith(("| 1,797 |", "| 3,594 |"))]
    assert len(rows) == 2 and all(float(cell) > 0 for row in rows for cell in row[1:])
    assert "BLAS threads 1" in table


def test_quick_first_call_run_reports_every_phase(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "first_call.py"), "--sizes", "20", "--repeats", "1",
                           "--results", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "first-call.md").read_text().splitlines()
    header = [c.strip() for c in next(line for line in lines if line.startswith("| n |")).split("|")]
    row = [c.strip(" *") for c in next(line for line in lines if line.startswith("| 20 |")).split("|")]
    assert float(row[header.index("lamad / CPython")]) > 0
    assert float(row[header.index("second call (ms)")]) > 0


def test_the_first_call_of_a_gradient_holds_under_20_kb_a_link():
    """Parsing, checking, ←D, compiling and running the gradient of the benchmark's chain,
    then compiling and running it again fused, as its second call does, peak at under
    20 KB a link (about 14 KB on Python 3.11): Python's compile of the
    derivative's code, which held its whole syntax at once (30 KB a link), compiles it
    in chunks.  Measured in a process of its own, as the benchmark measures it: how often
    the collector frees the passes' garbage, and so the peak, depends on how many objects
    the process already holds (a test worker that imported IPython peaked at 22 KB)."""
    import first_call

    n = 500
    measure = f"import first_call as f; print(f.peak_bytes(f.lamad_source({n}), f.POINT))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(BENCHMARKS),
                                                                      os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) / n < first_call.TARGET_BYTES_PER_LINK
