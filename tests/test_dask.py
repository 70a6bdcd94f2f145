"""The Dask backend on a cluster (docs/backends.md, "Dask"): a ``LocalCluster`` of two
workers, each allowed less memory than the data, trains logistic regression and the wine
network of examples/wine.lam by full-batch gradient descent on data read lazily from
``.npy`` files, chunk by chunk, and finds the NumPy backend's numbers to 1e-10; the
loops persist their state each step, so that the task graph stays the size of one step.

The workers are threads of this process (``processes=False``: no interpreter to start,
on a two-core CI machine): their memory limit bounds the data they hold (``target``,
above which Dask spills it to disk); the pause and spill thresholds, which Dask measures
on the whole process's memory, are off, as the process is the test runner's."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402

import lamad  # noqa: E402
from lamad import cluster  # noqa: E402
from lamad.backend import BackendError, get_backend  # noqa: E402
from inprocess import ok, run_lamad  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER_MEMORY = 300_000
"""Bytes a worker may hold: each dataset below is bigger than both workers' together."""
CHUNK = "128KiB"
"""Dask's chunk size here: each dataset is several chunks of rows."""


@pytest.fixture(scope="module")
def client():
    config = {"array.chunk-size": CHUNK, "distributed.worker.memory.spill": False,
              "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False}
    with dask.config.set(config), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, memory_limit=WORKER_MEMORY,
                                     dashboard_address=":0") as local, distributed.Client(local) as c:
        yield c


LOGISTIC = """
def x : Tensor = load "x.npy"
def y : Tensor = load "y.npy"
def loss (w : Tensor) : Real = mean (softplus (x @ w) - y * (x @ w))
def fit (steps : Int) (rate : Real) : Tensor = iterate steps (\\w. w - rate * grad loss w) (zeros [dim 1 x])
"""


@pytest.fixture(scope="module")
def logistic_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("logistic")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20_000, 8))
    y = (x @ rng.normal(size=8) + rng.normal(size=20_000) > 0).astype(float)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    assert x.nbytes > 2 * WORKER_MEMORY
    return folder


@pytest.fixture(scope="module")
def wine_data(tmp_path_factory) -> Path:
    """The wine data of examples/wine.lam, each wine 40 times: 7,120 wines."""
    folder = tmp_path_factory.mktemp("wine")
    data = ROOT / "examples" / "data"
    x = np.tile(np.loadtxt(data / "wine.csv", delimiter=","), (40, 1))
    np.save(folder / "wine.npy", x)
    np.save(folder / "wine_classes.npy", np.tile(np.loadtxt(data / "wine_classes.csv", delimiter=","), 40))
    assert x.nbytes > 2 * WORKER_MEMORY
    return folder


def test_load_reads_a_npy_file_lazily_in_chunks_of_rows(logistic_data):
    with dask.config.set({"array.chunk-size": CHUNK}):
        x = lamad.loads(LOGISTIC, backend="dask", base_dir=logistic_data).x
    assert isinstance(x, da.Array) and x.shape == (20_000, 8)
    assert len(x.chunks[0]) > 5 and x.chunks[1] == (8,)  # whole rows
    graph = pickle.dumps(dict(x.__dask_graph__()))
    assert len(graph) < x.nbytes / 20  # the chunks read the file: the data is not in the graph
    np.testing.assert_array_equal(np.asarray(x.compute()), np.load(logistic_data / "x.npy"))


LOOPS = {
    "iterate": "iterate n step (t, 0.0)",
    "fold": "fold (\\s _. step s) (t, 0.0) (range n)",
    "scan": "fold (\\_ s. s) (t, 0.0) (scan (\\s _. step s) (t, 0.0) (range n))",
    "while": "fst (while (\\(_, k). k < n) (\\(s, k). (step s, k + 1)) ((t, 0.0), 0))",
}
"""Loops of ``n`` steps of ``step``, whose state is a tuple of a Tensor and a Real."""


@pytest.mark.parametrize("loop", LOOPS)
def test_a_loop_persists_its_state_each_step(loop):
    """The graph of a loop's result is that of its last step, however many steps ran."""
    program = lamad.loads("def step (s : Tensor * Real) : Tensor * Real = (fst s * 0.5 + 1.0, snd s + sum (fst s))\n"
                          f"def f (n : Int) (t : Tensor) : Tensor * Real = {LOOPS[loop]}", backend="dask")
    t = da.from_array(np.arange(6.0), chunks=2)
    short, long = program.f(2, t), program.f(30, t)
    assert len(long[0].__dask_graph__()) == len(short[0].__dask_graph__())
    np.testing.assert_allclose(long[0].compute(), 2.0 + (np.arange(6.0) - 2.0) * 0.5 ** 30)


def test_a_scheduler_needs_the_dask_backend(monkeypatch):
    with pytest.raises(BackendError, match="needs the dask backend"):
        cluster.use(get_backend("numpy"), "tcp://127.0.0.1:8786")
    done = run_lamad("run", "--scheduler", "tcp://127.0.0.1:8786", "examples/hello.lam")
    assert done.returncode == 2 and "(set by --scheduler or $LAMAD_SCHEDULER)" in done.stderr
    monkeypatch.setenv("LAMAD_SCHEDULER", "tcp://127.0.0.1:8786")  # for the dask backend alone
    assert ok(run_lamad("run", "examples/hello.lam")) == ok(run_lamad("run", "--backend", "numpy", "examples/hello.lam"))


def test_the_command_line_prints_the_numbers_of_numpy(logistic_data):
    (logistic_data / "fit.lam").write_text(LOGISTIC + "def main = fit 3 0.5\n")
    on_numpy = ok(run_lamad("run", str(logistic_data / "fit.lam")))
    assert ok(run_lamad("run", "--backend", "dask", str(logistic_data / "fit.lam"))) == on_numpy


def test_logistic_regression_on_a_cluster_matches_numpy(client, logistic_data):
    on_numpy = lamad.loads(LOGISTIC, base_dir=logistic_data).fit(5, 0.5)
    on_dask = lamad.loads(LOGISTIC, backend="dask", base_dir=logistic_data).fit(5, 0.5)
    assert isinstance(on_dask, da.Array)  # computed at output
    assert distributed.futures_of(on_dask)  # the loop's state persisted on the cluster
    workers = client.scheduler_info()["workers"].values()
    assert len(workers) == 2 and all(w["memory_limit"] == WORKER_MEMORY for w in workers)
    np.testing.assert_allclose(on_dask.compute(), on_numpy, rtol=1e-10, atol=1e-10)
    assert np.abs(on_numpy).max() > 0.1  # it learned


def test_wine_network_on_a_cluster_matches_numpy(client, wine_data):
    source = (ROOT / "examples" / "wine.lam").read_text()
    source = re.sub(r'load "data/(\w+)\.csv"', r'load "\1.npy"', source)
    assert source.count('.npy"') == 2
    on_numpy = lamad.loads(source, base_dir=wine_data, progress=False).train(8, 2, 3, 0.01)
    program = lamad.loads(source, backend="dask", base_dir=wine_data)
    (losses, accuracy) = program.train(8, 2, 3, 0.01)
    assert [step for step, _ in losses] == [0, 3, 6]
    backend = program.backend
    np.testing.assert_allclose([float(backend.to_host(loss)) for _, loss in losses], [loss for _, loss in on_numpy[0]],
                               rtol=1e-10, atol=1e-10)
    assert float(backend.to_host(accuracy)) == on_numpy[1]
    assert on_numpy[0][-1][1] < on_numpy[0][0][1]  # it learned


def test_a_npy_of_python_objects_is_the_same_located_error_on_dask(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([1.0, None], dtype=object), allow_pickle=True)
    (tmp_path / "objects.lam").write_text('def main : Tensor = load "objects.npy"\n')
    errors = [run_lamad("run", "--backend", backend, str(tmp_path / "objects.lam")) for backend in ("numpy", "dask")]
    assert [e.returncode for e in errors] == [1, 1]
    assert errors[0].stderr == errors[1].stderr
    assert "holds Python objects (dtype object), not numbers" in errors[1].stderr
