"""Whole programs on every array backend installed (docs/backends.md): the same values as
NumPy's — to 1e-12 in float64, to float32's precision in float32 —, the same located
errors, and the ways to choose a backend (``lamad run --backend``, ``$LAMAD_BACKEND``,
``lamad.load(..., backend=...)``, the REPL's ``:backend``).  A backend that is not
installed is skipped."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pytest

import lamad
from lamad.backend import available
from lamad.errors import LamRuntimeError
from lamad.repl import Repl

from inprocess import ok, run_lamad
from numeric import flat, host

ROOT = Path(__file__).resolve().parent.parent
OTHERS = [b for b in ("array-api-strict", "torch", "jax", "dask") if available(b)]
"""The backends compared with NumPy: each one installed here."""
ON_OTHERS = pytest.mark.parametrize("backend", OTHERS)
DTYPES = pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
"""Each float dtype, and how close to NumPy's values in that dtype a backend's must be."""

PROGRAM = """
def data : Tensor * Tensor = (randn 1 [16, 4], randn 2 [16, 1])
def init : Tensor * Tensor * Tensor * Tensor =
  (0.5 * randn 3 [4, 8], zeros [8], 0.5 * randn 4 [8, 1], zeros [1])

-- a two-layer perceptron's mean squared error
def loss (p : Tensor * Tensor * Tensor * Tensor) : Real =
  let (w1, b1, w2, b2) = p; (x, y) = data in mean (square (tanh (x @ w1 + b1) @ w2 + b2 - y))
def mlp = (loss init, grad loss init)

-- a recurrence folded over the rows of a tensor, and its gradient
def recur (x : Tensor) : Real = fold (\\acc t. 0.5 * acc + sum (sin t * t)) 0.0 (unstack x)
def folded = let x = randn 5 [6, 3] in (recur x, grad recur x)

-- steps of gradient descent, each a gradient
def descend (n : Int) : Tensor * Tensor * Tensor * Tensor =
  iterate n (\\p. let (w1, b1, w2, b2) = p; (g1, c1, g2, c2) = grad loss p in
                 (w1 - 0.1 * g1, b1 - 0.1 * c1, w2 - 0.1 * g2, b2 - 0.1 * c2)) init

-- softmax, where, sort and the maxima
def order (x : Tensor) : Real =
  sum (softmax_axis 1 x * where (x > 0.0) x (0.5 * x)) + sum (sort 1 x * max x 0.25) + dot x (min x 0.0)
"""


def _program(backend: str, dtype: str = "float64") -> lamad.LoadedProgram:
    return lamad.loads(PROGRAM, backend=backend, dtype=dtype)


@pytest.fixture(scope="module")
def numpy_values():
    """NumPy's values of the definitions, by dtype, computed once."""
    values = {}
    for dtype in ("float64", "float32"):
        p = _program("numpy", dtype)
        x = host(p.data[0])
        values[dtype] = {"mlp": host(p.mlp), "folded": host(p.folded), "descend": host(p.descend(3)),
                         "order": host(lamad.value_and_grad(p.order)(np.reshape(x[:4], (2, 8)))),
                         "jvp": host(lamad.jvp(p.recur, (x[:6, :3],), (np.ones((6, 3), dtype=dtype),)))}
    return values


def _close(got, want, rtol: float, dtype: str) -> None:
    """``got`` (a backend's value, brought to NumPy) equals ``want`` (NumPy's) to ``rtol``,
    every array of it in ``dtype``."""
    for leaf in _leaves(got):
        assert str(np.asarray(leaf).dtype) == dtype
    np.testing.assert_allclose(flat(got), flat(want), rtol=rtol, atol=rtol)


def _leaves(value):
    if isinstance(value, (tuple, list)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


@ON_OTHERS
@DTYPES
def test_programs_give_numpys_values(backend, dtype, rtol, numpy_values):
    """An MLP's loss and gradient, a fold and its gradient, three steps of gradient
    descent, a forward-mode derivative and the maxima, masks and sorting: NumPy's values,
    in the backend's own arrays brought to the host."""
    want = numpy_values[dtype]
    p = _program(backend, dtype)
    assert p.backend.owns(p.mlp[1][0]), "a gradient that is not the backend's array"
    x = host(p.data[0])
    _close(host(p.mlp), want["mlp"], rtol, dtype)
    _close(host(p.folded), want["folded"], rtol, dtype)
    _close(host(p.descend(3)), want["descend"], rtol, dtype)
    _close(host(lamad.value_and_grad(p.order)(np.reshape(x[:4], (2, 8)))), want["order"], rtol, dtype)
    _close(host(lamad.jvp(p.recur, (x[:6, :3],), (np.ones((6, 3), dtype=dtype),))), want["jvp"], rtol, dtype)


@ON_OTHERS
def test_the_wine_example_trains_as_on_numpy(backend):
    """Three Adam steps of the wine example's network: NumPy's losses and
    accuracy to 1e-12."""
    want = host(lamad.load(ROOT / "examples" / "wine.lam").train(8, 1, 3, 0.01))
    got = host(lamad.load(ROOT / "examples" / "wine.lam", backend=backend).train(8, 1, 3, 0.01))
    np.testing.assert_allclose(flat(got), flat(want), rtol=1e-12, atol=1e-12)


ERRORS = [
    ("def main : Int = let n = 0 in 3 // n", "'//': 3 // 0: integer division by zero", 1, 31),
    ("def main : Tensor =\n  ones [2, 3] @ ones [2, 3]", "'@': shapes (2, 3) and (2, 3) do not align", 2, 3),
    ("def main : Tensor = ones [2, 3] @ ones [2]", "'@': shapes (2, 3) and (2,) do not align", 1, 21),
    ("def main : Tensor = ones [3] @ ones [2, 3]", "'@': shapes (3,) and (2, 3) do not align", 1, 21),
    ("def main : Tensor = onehot 3 (fill 3.0 [2])", "'onehot': label 3 is not an integer in 0 … 2", 1, 21),
    ("def main : Tensor = ones [2, 3] + ones [4]", "'+': ", 1, 21),
    ("def main : Tensor = take 5 (ones [2, 3])", "'take': index 5 is out of range for an axis of length 2", 1, 21),
    ("def main : Tensor = sum_axis 3 (ones [2])", "'sum_axis': axis 3 is out of range for a tensor of rank 1", 1, 21),
]


@pytest.mark.parametrize("backend", ["numpy"] + OTHERS)
@pytest.mark.parametrize("source, message, line, col", ERRORS, ids=[e[1].split(":")[0] for e in ERRORS])
def test_runtime_errors_are_located_on_every_backend(backend, source, message, line, col):
    """A division by zero in Int, operands of ``@`` that do not align (matrices, and a
    matrix and a vector, which NumPy multiplies by ``dot``), a label out of
    range, operands that do not broadcast, an index and an axis out of range: the same
    located error on every backend (JAX, which clamps indices, included)."""
    with pytest.raises(LamRuntimeError) as info:
        lamad.loads(source, backend=backend).main
    assert message in info.value.message
    assert (info.value.span.line, info.value.span.column) == (line, col)


PRINTED = "def main = let x = fill 0.5 [3] in (sum x, 2.0 * x, int 2.5, x > 0.25)\n"


@pytest.fixture
def printed_program(tmp_path):
    path = tmp_path / "printed.lam"
    path.write_text(PRINTED)
    return str(path)


@ON_OTHERS
def test_lamad_run_takes_the_backend_from_the_option_and_the_environment(backend, printed_program, monkeypatch):
    """``lamad run --backend NAME`` and ``$LAMAD_BACKEND`` print NumPy's output (values
    brought to the host); an unknown backend is a usage error that names the choices."""
    want = ok(run_lamad("run", printed_program))
    assert want.strip() == "(1.5, [1., 1., 1.], 2, [true, true, true])"
    assert ok(run_lamad("run", "--backend", backend, printed_program)) == want
    monkeypatch.setenv("LAMAD_BACKEND", backend)
    assert ok(run_lamad("run", printed_program)) == want
    monkeypatch.setenv("LAMAD_BACKEND", "abacus")
    failed = run_lamad("run", printed_program)
    assert failed.returncode != 0 and "unknown backend 'abacus'" in failed.stderr


@ON_OTHERS
def test_the_repl_switches_backends(backend):
    """``:backend NAME`` evaluates what follows on it, and prints as NumPy does."""
    out = StringIO()
    repl = Repl(out=out)
    repl.execute("let x = fill 0.5 [3] in (sum x, x)")
    repl.execute(f":backend {backend}")
    repl.execute("let x = fill 0.5 [3] in (sum x, x)")
    lines = out.getvalue().splitlines()
    assert lines[-1] == lines[0] == "(1.5, f64[3] [0.5, 0.5, 0.5])"
    assert lines[1] == f"backend: {backend} (float64)"
    assert repl.program.backend.name == backend


@pytest.mark.parametrize("backend", ["numpy", *OTHERS])
def test_a_backends_own_array_of_another_dtype_is_checked_as_host_data_is(backend):
    """An array already on the backend but of another dtype is never cast in silence:
    complex numbers, float64 numbers too large for float32, integers beyond 64 bits and
    floats that are not whole are the errors host data of the same kind gives."""
    from lamad.backend import get_backend

    on = get_backend(backend)
    single = get_backend(backend, "float32")
    own = on.xp.asarray
    with pytest.raises(ValueError, match="too large for float32"):
        single.asarray(on.asarray(np.array([1e300])))
    with pytest.raises(ValueError, match="not an integer"):
        on.ints(on.asarray(np.array([1.5])))
    np.testing.assert_array_equal(host(single.asarray(on.asarray(np.array([1.5])))), [1.5])
    np.testing.assert_array_equal(host(on.ints(own(np.array([1, 2], dtype=np.int32)))), [1, 2])
    if backend == "numpy":
        with pytest.raises(ValueError, match="too large for 64 bits"):
            on.ints(np.array([2 ** 63], dtype=np.uint64))
    if backend == "torch":
        import torch

        with pytest.raises(ValueError, match="complex"):
            on.asarray(torch.tensor([1 + 2j]))
