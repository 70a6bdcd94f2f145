"""The systems lamad is measured against, each used only when it is installed
(``pip install -e ".[bench]"``): autograd, PyTorch eager (CPU), JAX eager and JAX jit.

``peers(workload)`` gives, for every installed system, a function of no arguments that
computes the workload's loss and its gradient (waiting for the result where the system
is asynchronous) and returns ``(loss, gradients)``, the gradients a tuple in the order
of ``workload.argnums``.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

import numpy as np

from workloads import Workload

SYSTEMS = ("autograd", "PyTorch", "JAX eager", "JAX jit")
_MODULES = {"autograd": "autograd", "PyTorch": "torch", "JAX eager": "jax", "JAX jit": "jax"}


def installed() -> list[str]:
    return [s for s in SYSTEMS if importlib.util.find_spec(_MODULES[s]) is not None]


def convert(value: Any, to_array: Callable) -> Any:
    """Arrays (in tuples and lists) through ``to_array``; ints and the like unchanged."""
    if isinstance(value, (tuple, list)):
        return type(value)(convert(v, to_array) for v in value)
    if isinstance(value, (np.ndarray, np.floating)):
        return to_array(value)
    return value


def _split(w: Workload, args: tuple) -> tuple[tuple, Callable[[tuple], tuple]]:
    """The differentiated arguments, and how to put them back among the others."""
    params = tuple(args[i] for i in w.argnums)

    def merge(values: tuple) -> tuple:
        full = list(args)
        for i, v in zip(w.argnums, values):
            full[i] = v
        return tuple(full)
    return params, merge


def _autograd(w: Workload) -> Callable[[], tuple]:
    import autograd
    import autograd.numpy as anp

    params, merge = _split(w, w.args)
    value_and_grad = autograd.value_and_grad(lambda p: w.loss(anp, *merge(p)))
    return lambda: value_and_grad(params)


def _torch(w: Workload) -> Callable[[], tuple]:
    import torch

    torch.set_num_threads(1)
    args = convert(w.args, lambda a: torch.tensor(a, dtype=torch.float64))
    params, merge = _split(w, args)
    for p in params:
        p.requires_grad_(True)

    def value_and_grad():
        loss = w.torch_loss(torch, *merge(params))
        return loss.detach(), torch.autograd.grad(loss, params)
    return value_and_grad


def _jax(w: Workload, jit: bool) -> Callable[[], tuple]:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    params, merge = _split(w, convert(w.args, jnp.asarray))
    value_and_grad = jax.value_and_grad(lambda p: w.loss(jnp, *merge(p)))
    if jit:
        value_and_grad = jax.jit(value_and_grad)
    return lambda: jax.block_until_ready(value_and_grad(params))


def peers(w: Workload, systems: list[str] | None = None) -> dict[str, Callable[[], tuple]]:
    """The installed systems (or those of ``systems``) on workload ``w``."""
    make = {"autograd": _autograd, "PyTorch": _torch, "JAX eager": lambda w: _jax(w, jit=False),
            "JAX jit": lambda w: _jax(w, jit=True)}
    return {s: make[s](w) for s in (installed() if systems is None else systems)}
