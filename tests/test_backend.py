"""Backends: the evaluator reaches arrays only through its backend's namespace,
never copies device data to the host behind the user's back, and runs in float32.

The CuPy path is checked on CPU with a *guarded* namespace: NumPy's functions wrapped so
that their arrays refuse every host conversion (``__array__``, ``float()``, ``.item()``,
``.tolist()``), as a device array's would be a hidden copy.  A NumPy function called on
such an array fails, and so does any implicit conversion.  The tests marked ``gpu`` run
the same programs on CuPy when a CUDA device is present."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import lamad
from lamad.api import LoadedProgram
from lamad.backend import Backend
from lamad.extensions import host_erf, numpy_like
from lamad.prims import Runtime
from lamad.types import typecheck
from lamad.parser import parse_program


class HostTransfer(AssertionError):
    """A device array was converted to host data implicitly."""


def _unwrap(x):
    if isinstance(x, DeviceArray):
        return x.data
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(i) for i in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, (np.ndarray, np.generic)) and not isinstance(x, np.bool_):
        return DeviceArray(np.asarray(x))
    if isinstance(x, list):
        return [_wrap(i) for i in x]
    if isinstance(x, tuple):  # a named tuple of results too (linalg's), as a plain one
        return tuple(_wrap(i) for i in x)
    return x


class DeviceArray:
    """An array that lives 'on the device': operations stay on it, conversions raise."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray):
        self.data = data

    def __array__(self, *args, **kwargs):
        raise HostTransfer("implicit conversion of a device array to NumPy")

    def __float__(self):
        raise HostTransfer("float() of a device array")

    def __int__(self):
        raise HostTransfer("int() of a device array")

    def item(self):
        raise HostTransfer(".item() of a device array")

    def tolist(self):
        raise HostTransfer(".tolist() of a device array")

    def __bool__(self):  # `if` on a comparison of Reals: an explicit, visible synchronisation
        return bool(self.data)

    def get(self):
        """CuPy's explicit device-to-host copy."""
        return np.array(self.data)

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    T = property(lambda self: DeviceArray(self.data.T))

    def astype(self, dtype):
        return DeviceArray(self.data.astype(dtype))

    def __getitem__(self, key):
        return _wrap(self.data[_unwrap(key)])

    def __setitem__(self, key, value):
        self.data[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return f"DeviceArray(shape={self.shape})"


def _operator(name):
    def op(self, *args):
        return _wrap(getattr(self.data, name)(*_unwrap(args)))
    return op


for _name in ("add", "sub", "mul", "truediv", "pow", "matmul", "lt", "le", "gt", "ge", "eq", "ne"):
    setattr(DeviceArray, f"__{_name}__", _operator(f"__{_name}__"))
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(DeviceArray, f"__r{_name}__", _operator(f"__r{_name}__"))
DeviceArray.__neg__ = _operator("__neg__")
DeviceArray.__hash__ = None


class GuardedNumPy:
    """NumPy's namespace over DeviceArrays (CuPy's shape), with ``asnumpy`` as the one
    explicit way back to the host; its submodules (``linalg``) are guarded as it is."""

    dtype = staticmethod(np.dtype)
    float32, float64, bool, int64 = np.float32, np.float64, np.bool_, np.int64

    def __init__(self, module: ModuleType = np):
        self.module = module

    def __getattr__(self, name):
        fn = getattr(self.module, name)
        if isinstance(fn, ModuleType):
            return GuardedNumPy(fn)
        if not callable(fn):
            return fn
        return lambda *args, **kwargs: _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))

    @staticmethod
    def asarray(value, dtype=None, copy=None):
        if isinstance(value, DeviceArray):
            return DeviceArray(np.asarray(value.data, dtype=dtype, copy=copy))
        return DeviceArray(np.asarray(value, dtype=dtype, copy=copy))

    @staticmethod
    def asnumpy(value):
        return value.get()


def guarded(src: str, dtype: str = "float64", base_dir: Path | None = None) -> LoadedProgram:
    xp = GuardedNumPy()
    ext = numpy_like(xp, GuardedNumPy.asnumpy, GuardedNumPy.asarray, erf=lambda x: DeviceArray(host_erf(x.data)))
    backend = Backend("guarded", xp, np.dtype(dtype), ext)
    return LoadedProgram(typecheck(parse_program(src)), Runtime(backend, base_dir or Path.cwd()), src, "<t>")


PROGRAM = """
def mlp (p : Tensor * Tensor) (x : Tensor) (y : Tensor) : Real =
    let (w1, w2) = p;
        h = tanh (w1 @ x);
        out = sigmoid (w2 @ h)
    in mean (square (out - y)) + 0.01 * (sum (w1 * w1) + sum (w2 * w2))
def logits (w : Tensor) (x : Tensor) : Real =
    let z = transpose (w @ x) in mean (logsumexp_axis 1 z - max_axis 1 z) + sum (softmax_axis 1 z) / real 10
def data = (randn 0 [8, 5], randn 1 [1, 8], randn 2 [5, 12], uniform 3 [1, 12])
def grads =
    let (w1, w2, x, y) = data in
    (grad (\\p. mlp p x y) (w1, w2), grad (\\w. logits w x) (concat 0 [w1, w1]),
     value_and_grad (\\(a, b). if a > b then relu (a - b) * abs b else max a b + min a b) (2.0, 0.5),
     fold (\\acc t. acc + dot t t) 0.0 (unstack x), scalar (reshape (sum_axis 0 (mean_axis 1 x)) [1]),
     stack (map (\\t. outer t t) [ones [2], fill 2.0 [2]]), onehot 3 (ones [2]) @ eye 3)
"""


SECOND_ORDER = """
def f (x : Tensor) : Real = sum (tanh (x * x)) * mean (exp x) + scalar (logsumexp_axis 0 x)
def g (x : Tensor) : Tensor = softmax_axis 0 (x * x) @ outer x x
def second =
    let x = randn 4 [3] in
    (jvp f x (ones [3]), hvp f x (ones [3]), hessian f x, jacfwd g x, jacrev g x,
     grad (grad (\\t. sin t * t)) 0.3, jvp (\\x. concat 0 [stack (unstack x), x * x]) x x)
"""
"""Forward mode, second derivatives and Jacobians through the same guards."""


def to_numpy(v):
    if isinstance(v, DeviceArray):
        return v.get()
    if isinstance(v, (tuple, list)):
        return type(v)(to_numpy(i) for i in v)
    return v


def assert_tree_close(a, b, rtol, dtype=None):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_tree_close(x, y, rtol, dtype)
    else:
        if dtype is not None:
            assert np.asarray(a).dtype == dtype
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=rtol)


def test_evaluation_and_gradients_make_no_hidden_host_copies():
    prog = guarded(PROGRAM)
    result = prog.value("grads")  # raises HostTransfer on any implicit conversion
    expected = lamad.loads(PROGRAM).value("grads")
    assert_tree_close(to_numpy(result), expected, rtol=1e-12)


def test_forward_mode_and_second_derivatives_make_no_hidden_host_copies():
    result = guarded(SECOND_ORDER).value("second")
    assert_tree_close(to_numpy(result), lamad.loads(SECOND_ORDER).value("second"), rtol=1e-12)


def test_forward_mode_and_second_derivatives_in_float32():
    single = lamad.loads(SECOND_ORDER, dtype="float32").value("second")
    assert_tree_close(single[:5], lamad.loads(SECOND_ORDER).value("second")[:5], rtol=2e-4, dtype=np.float32)
    assert_tree_close(to_numpy(guarded(SECOND_ORDER, "float32").value("second")), single, rtol=1e-6)


def test_the_guard_catches_a_numpy_call_on_a_device_array():
    with pytest.raises(HostTransfer):
        np.sum(GuardedNumPy.asarray(np.ones(3)))
    with pytest.raises(HostTransfer):
        float(GuardedNumPy.asarray(np.float64(1.0)))


def test_float32_end_to_end():
    single = lamad.loads(PROGRAM, dtype="float32").value("grads")
    double = lamad.loads(PROGRAM).value("grads")
    assert_tree_close(single[:2], double[:2], rtol=2e-5, dtype=np.float32)
    assert_tree_close(single, double, rtol=2e-5)


def test_float32_on_the_guarded_backend():
    result = to_numpy(guarded(PROGRAM, "float32").value("grads"))
    assert_tree_close(result[:2], lamad.loads(PROGRAM).value("grads")[:2], rtol=2e-5, dtype=np.float32)


def _cuda_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, or no driver/device
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs CuPy and a CUDA device")
def test_cupy_backend_matches_numpy():
    import cupy

    prog = lamad.loads(PROGRAM, backend="cupy")
    result = prog.value("grads")
    assert isinstance(result[0][0], cupy.ndarray)
    host = [prog.backend.to_host(g) for g in result[0]]
    assert_tree_close(host, lamad.loads(PROGRAM).value("grads")[0], rtol=1e-10)


def test_the_cotangents_of_constants_are_never_computed(monkeypatch):
    """``x' t`` with ``x' = λa ⊸ 0`` is 0 without evaluating ``t``: in ``grad (λw. sum (w @ x))``
    the backward pass computes ``a @ xᵀ`` for ``w`` and not ``wᵀ @ a`` for the constant ``x``."""
    products = []
    matmul = DeviceArray.__matmul__
    monkeypatch.setattr(DeviceArray, "__matmul__", lambda self, other: products.append(1) or matmul(self, other))
    prog = guarded("def x = randn 1 [3, 4]\n"
                   "def main = grad (\\w. sum (w @ x) + real 2 * sum w) (randn 0 [2, 3])")
    gradient = to_numpy(prog.value("main"))
    np.testing.assert_allclose(gradient, np.ones((2, 4)) @ np.random.default_rng(1).standard_normal((3, 4)).T + 2)
    assert len(products) == 1


def test_load_moves_the_data_to_the_device_once(tmp_path, monkeypatch):
    """``load`` reads the file on the host and moves it to the device in one transfer; the
    loss and two gradients then use it there, and nothing comes back to the host."""
    data = np.random.default_rng(2).normal(size=(4, 3))
    np.save(tmp_path / "x.npy", data)
    uploads, downloads = [], []
    upload, download = GuardedNumPy.asarray, DeviceArray.get

    def counted_upload(value, dtype=None):
        if not isinstance(value, DeviceArray):
            uploads.append(np.shape(value))
        return upload(value, dtype)
    monkeypatch.setattr(GuardedNumPy, "asarray", staticmethod(counted_upload))
    monkeypatch.setattr(DeviceArray, "get", lambda self: downloads.append(self.shape) or download(self))
    prog = guarded('def x = load "x.npy"\ndef loss (w : Tensor) : Real = sum (tanh (x @ w))\n'
                   'def main = (loss (ones [3]), grad loss (ones [3]), grad loss (fill 2.0 [3]))', base_dir=tmp_path)
    value, g1, g2 = prog.value("main")
    assert uploads.count((4, 3)) == 1 and all(shape == () for shape in uploads if shape != (4, 3))
    assert downloads == []
    for w, g in ((np.ones(3), g1), (np.full(3, 2.0), g2)):
        np.testing.assert_allclose(g.get(), data.T @ (1 - np.tanh(data @ w) ** 2), rtol=1e-12)
    np.testing.assert_allclose(value.get(), np.sum(np.tanh(data @ np.ones(3))), rtol=1e-12)


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("name, args, argnums", [
    ("rnn_fold", lambda r: (r.normal(size=(5, 5)), r.normal(size=(5, 3)), r.normal(size=5), np.zeros(5),
                            list(r.normal(size=(4, 3)))), (0, 1, 2)),
    ("digits_mlp", lambda r: (r.normal(size=(6, 4)), r.normal(size=4), r.normal(size=(4, 3)), r.normal(size=3),
                              r.random((7, 6)), np.eye(3)[r.integers(0, 3, 7)]), (0, 1, 2, 3)),
])
def test_benchmark_workloads_make_no_hidden_host_copies(name, args, argnums):
    """The evaluator's fast paths (vector matmuls, folds, softmax cross-entropy) stay on
    the device: the benchmark programs' gradients on the guarded backend equal NumPy's."""
    src = (BENCHMARKS / f"{name}.lam").read_text()
    values = args(np.random.default_rng(3))
    on_device = lamad.value_and_grad(guarded(src).loss, argnums=argnums)(*values)
    on_host = lamad.value_and_grad(lamad.loads(src).loss, argnums=argnums)(*values)
    assert_tree_close(to_numpy(on_device), on_host, rtol=1e-12)
