"""One loss + gradient step of the convolutional network of examples/cnn.lam:

    python benchmarks/cnn.py                 # lamad, hand-written NumPy, PyTorch eager if installed
    python benchmarks/cnn.py --no-torch      # without PyTorch

The step is the loss of examples/cnn.lam (two rounds of 3 × 3 convolution with padding 1,
relu and 2 × 2 max pooling, then a dense layer and the softmax cross-entropy) and its
gradient in the six parameters, on a batch of 32 training images: lamad's
``value_and_grad`` of the example's own ``loss``; the same model with its backward pass
written by hand in NumPy (``numpy_step``: im2col windows and one matrix product per
convolution, as lamad's primitives compute them); and PyTorch eager on the CPU
(``torch.nn.functional``, ``torch.autograd.grad``) when ``torch`` is importable.  The three
losses and gradients are checked against each other before timing.  The calls are
interleaved and the figures are medians of CPU time per call (``benchmarks/common.py``),
with one BLAS thread and one PyTorch thread.
"""

from __future__ import annotations

if __name__ == "__main__":
    import blas
    blas.one_thread()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

import lamad  # noqa: E402
from common import machine, markdown_table, median_times, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cnn.lam"
BATCH = 32

STEP = """
def loss_and_grad (x : Tensor) (labels : IntTensor) (ps : List Tensor) : Real * List Tensor =
  value_and_grad (loss x labels) ps
"""
"""Appended to the example: the step timed."""


# ------------------------------------------------------------------ the model by hand, in NumPy


def windows(x: np.ndarray, k: int) -> np.ndarray:
    """The k × k windows, stride 1, of the last two axes: ``(…, H', W', k, k)``, a view."""
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(-2, -1))


def conv_forward(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 3 × 3 convolution with padding 1, stride 1: the result ``N × O × H × W`` and the
    im2col matrix (``N·H·W × C·9``) its kernel gradient needs."""
    n, c, h, wd = x.shape
    cols = windows(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), 3).transpose(0, 2, 3, 1, 4, 5)
    cols = cols.reshape(n * h * wd, c * 9)
    out = cols @ w.reshape(len(w), -1).T                                   # N·H·W × O
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def conv_kernel_grad(w: np.ndarray, cols: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """The gradient in the kernels of :func:`conv_forward`, given the gradient of its result
    as an ``N·H·W × O`` matrix ``g2``: ``g2ᵀ`` times the im2col matrix."""
    return (g2.T @ cols).reshape(w.shape)


def conv_input_grad(x_shape: tuple[int, ...], w: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """The gradient in the images of :func:`conv_forward`: the windows' gradients, ``g2``
    times the kernels, scattered back (col2im) and the padding sliced off."""
    n, c, h, wd = x_shape
    dcols = (g2 @ w.reshape(len(w), -1)).reshape(n, h, wd, c, 3, 3)
    dpadded = np.zeros((n, c, h + 2, wd + 2))
    for i in range(3):
        for j in range(3):
            dpadded[:, :, i:i + h, j:j + wd] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dpadded[:, :, 1:-1, 1:-1]


def as_rows(g: np.ndarray) -> np.ndarray:
    """An ``N × O × H × W`` gradient as the ``N·H·W × O`` matrix the products take."""
    return g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])


def pool_forward(z: np.ndarray) -> np.ndarray:
    """2 × 2 max pooling, stride 2: the largest of each window's four corners."""
    return np.maximum(np.maximum(z[:, :, 0::2, 0::2], z[:, :, 0::2, 1::2]),
                      np.maximum(z[:, :, 1::2, 0::2], z[:, :, 1::2, 1::2]))


def pool_backward(z: np.ndarray, out: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The gradient of :func:`pool_forward`'s input: each window's gradient ``g`` split
    equally among the window's maxima, as lamad splits a tie."""
    n, c, h, w = z.shape
    hit = (z.reshape(n, c, h // 2, 2, w // 2, 2) == out[:, :, :, None, :, None]).astype(z.dtype)
    count = hit[:, :, :, 0, :, 0] + hit[:, :, :, 0, :, 1] + hit[:, :, :, 1, :, 0] + hit[:, :, :, 1, :, 1]
    return (hit * (g / count)[:, :, :, None, :, None]).reshape(z.shape)


def numpy_step(images: np.ndarray, labels: np.ndarray, ps: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    """The loss of examples/cnn.lam and its gradient in ``ps``, forward and backward by hand."""
    k1, b1, k2, b2, w3, b3 = ps
    n = len(images)
    a1, cols1 = conv_forward(images, k1)
    z1 = np.maximum(a1 + b1, 0.0)
    h1 = pool_forward(z1)
    a2, cols2 = conv_forward(h1, k2)
    z2 = np.maximum(a2 + b2, 0.0)
    h2 = pool_forward(z2)
    flat = h2.reshape(n, -1)
    s = flat @ w3 + b3
    m = s.max(axis=1, keepdims=True)
    e = np.exp(s - m)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(total[:, 0]) + m[:, 0] - s[rows, labels]))
    ds = e / total
    ds[rows, labels] -= 1.0
    ds /= n
    dw3, db3 = flat.T @ ds, ds.sum(axis=0)
    dz2 = pool_backward(z2, h2, (ds @ w3.T).reshape(h2.shape)) * (z2 > 0)
    dz1 = pool_backward(z1, h1, conv_input_grad(h1.shape, k2, as_rows(dz2))) * (z1 > 0)
    dk1, dk2 = conv_kernel_grad(k1, cols1, as_rows(dz1)), conv_kernel_grad(k2, cols2, as_rows(dz2))
    return loss, [dk1, dz1.sum(axis=(0, 2, 3)).reshape(b1.shape), dk2, dz2.sum(axis=(0, 2, 3)).reshape(b2.shape),
                  dw3, db3]


# ------------------------------------------------------------------ PyTorch


def torch_step(torch) -> Callable:
    """The same loss in PyTorch eager, and its gradient by ``torch.autograd.grad``."""
    functional = torch.nn.functional
    torch.set_num_threads(1)

    def step(images, labels, ps):
        k1, b1, k2, b2, w3, b3 = ps
        h1 = functional.max_pool2d(torch.relu(functional.conv2d(images, k1, padding=1) + b1), 2)
        h2 = functional.max_pool2d(torch.relu(functional.conv2d(h1, k2, padding=1) + b2), 2)
        loss = functional.cross_entropy(h2.reshape(len(images), -1) @ w3 + b3, labels)
        return loss.detach(), torch.autograd.grad(loss, ps)
    return step


# ------------------------------------------------------------------ the benchmark


def batch() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """32 training images (N × 1 × 8 × 8, as the example makes them), their labels, and
    the example's initial parameters."""
    prog = lamad.load(EXAMPLE)
    rows = np.random.default_rng(0).permutation(1437)[:BATCH]
    return (np.asarray(prog.train_images)[rows], np.asarray(prog.train_labels)[rows],
            [np.asarray(p) for p in prog.init])


def steps(use_torch: bool) -> dict[str, Callable[[], object]]:
    """The step of each system, its loss and gradient checked against the hand-written one."""
    images, labels, ps = batch()
    prog = lamad.loads(EXAMPLE.read_text(encoding="utf-8") + STEP, base_dir=EXAMPLE.parent)
    calls = {"NumPy": lambda: numpy_step(images, labels, ps),
             "lamad": lambda: prog.loss_and_grad(images, labels, ps)}
    if use_torch:
        import torch
        step = torch_step(torch)
        args = (torch.tensor(images), torch.tensor(labels), [torch.tensor(p, requires_grad=True) for p in ps])
        calls["PyTorch"] = lambda: step(*args)
    want_loss, want_grads = numpy_step(images, labels, ps)
    for name, call in calls.items():
        loss, grads = call()
        assert abs(float(loss) - want_loss) <= 1e-12 * abs(want_loss), (name, float(loss), want_loss)
        for got, want in zip(grads, want_grads):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-12, err_msg=name)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    parser.add_argument("--results", type=Path, default=None, help="the folder of the results (benchmarks/results)")
    args = parser.parse_args()
    use_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    times = median_times(steps(use_torch), repeats=args.repeats)
    rows = [[name, f"{t * 1e3:.3f}", f"{t / times['NumPy']:.2f}", f"{times['lamad'] / t:.2f}"]
            for name, t in times.items()]
    table = markdown_table(["system", "loss + gradient (ms)", "× NumPy", "lamad ×"], rows)
    peers = "PyTorch eager (CPU), one thread" if use_torch else "PyTorch not installed or left out: not timed"
    text = (f"# One loss + gradient step of examples/cnn.lam, batch {BATCH}\n\n{table}\n\n{peers}.\n\n"
            f"Machine: {machine()}.\n")
    write_results("cnn", text, *([args.results] if args.results else []))


if __name__ == "__main__":
    main()
