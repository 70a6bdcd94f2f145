"""NumPy transcriptions of the optimizers of PyTorch's ``torch.optim`` (``SGD``, with and
without momentum, ``Adam``, ``AdamW``), over structures as the API gives them: dicts for
records, tuples, and arrays or floats at the leaves.  The tests compare lamad's
``nn.sgd``, ``nn.momentum``, ``nn.adam`` and ``nn.adamw`` with them step by step."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def tree_map(f: Callable[..., Any], tree: Any, *others: Any) -> Any:
    """``f`` applied to the leaves of ``tree`` and the corresponding leaves of ``others``."""
    if isinstance(tree, dict):
        return {k: tree_map(f, tree[k], *(o[k] for o in others)) for k in tree}
    if isinstance(tree, tuple):
        return tuple(tree_map(f, t, *o) for t, *o in zip(tree, *others))
    return f(tree, *others)


def sgd(rate: float, p: Any, g: Any) -> Any:
    """``p ← p - lr · g``."""
    return tree_map(lambda x, dx: x - rate * dx, p, g)


def momentum(rate: float, beta: float, buf: Any, p: Any, g: Any) -> tuple[Any, Any]:
    """PyTorch's SGD with momentum (no dampening, not Nesterov): ``buf ← β buf + g`` (``g``
    at the first step, which a zero buffer gives too), ``p ← p - lr · buf``."""
    buf = tree_map(lambda b, dx: beta * b + dx, buf, g)
    return sgd(rate, p, buf), buf


def adam_init(p: Any) -> dict:
    return {"m": tree_map(np.zeros_like, p), "v": tree_map(np.zeros_like, p), "step": 0}


def adam(rate: float, state: dict, p: Any, g: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         decay: float = 0.0) -> tuple[Any, dict]:
    """PyTorch's Adam (``decay`` 0) and AdamW: ``p ← p (1 - lr λ)``; ``m ← β1 m + (1 - β1) g``,
    ``v ← β2 v + (1 - β2) g²``; ``p ← p - (lr / (1 - β1ᵗ)) m / (√v / √(1 - β2ᵗ) + ε)``."""
    t = state["step"] + 1
    m = tree_map(lambda m, dx: b1 * m + (1 - b1) * dx, state["m"], g)
    v = tree_map(lambda v, dx: b2 * v + (1 - b2) * dx * dx, state["v"], g)
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    p = tree_map(lambda x, m, v: x * (1 - rate * decay) - (rate / c1) * m / (np.sqrt(v) / np.sqrt(c2) + eps), p, m, v)
    return p, {"m": m, "v": v, "step": t}
