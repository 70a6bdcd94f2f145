"""Numerical checks shared by the tests of the transforms: central finite differences
(float64) of lamad functions — along a direction, component by component, of a
gradient — and structural comparison of cotangents.  Values are as the API gives them:
arrays, tuples, lists, and dicts for records (their leaves in the order of their sorted
keys, as lamad orders a record's fields)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

STEP = 1e-6
"""The step of the central differences."""

# ------------------------------------------------------------------ along a direction (forward mode)


def is_discrete(x) -> bool:
    """Whether ``x`` carries no real: an Int, a Bool, an IntTensor or a BoolTensor."""
    return isinstance(x, (bool, int, np.integer, np.bool_)) or (isinstance(x, np.ndarray) and x.dtype.kind in "iub")


def flat(value) -> np.ndarray:
    """The real leaves of a lamad value (arrays, tuples, lists, dicts) as one float64 vector."""
    if isinstance(value, dict):
        return flat([value[k] for k in sorted(value)])
    if isinstance(value, (tuple, list)):
        parts = [flat(v) for v in value]
        return np.concatenate(parts) if parts else np.zeros(0)
    return np.asarray(value, dtype=np.float64).ravel()


def moved(point: tuple, direction: tuple, h: float) -> tuple:
    """``point + h · direction``, argument by argument, through tuples and lists; Ints and
    Bools stay (their tangents are ``()``)."""
    return tuple(_shifted(x, d, h) for x, d in zip(point, direction))


def _shifted(x, d, h: float):
    if isinstance(x, dict):
        return {k: _shifted(x[k], d[k], h) for k in x}
    if isinstance(x, (tuple, list)):
        return type(x)(_shifted(a, b, h) for a, b in zip(x, d))
    if is_discrete(x):
        return x
    return np.asarray(x) + h * np.asarray(d)


def directional_difference(f, point: tuple, direction: tuple) -> np.ndarray:
    """Central finite difference of ``f`` at ``point`` along ``direction``."""
    return (flat(f(*moved(point, direction, STEP))) - flat(f(*moved(point, direction, -STEP)))) / (2 * STEP)


def gradient_difference(grad, point, direction, step: float = 1e-5) -> np.ndarray:
    """Central finite difference of a gradient along ``direction``: the Hessian applied to it."""
    return (flat(grad(*moved(point, direction, step))) - flat(grad(*moved(point, direction, -step)))) / (2 * step)


def host(value: Any) -> Any:
    """A lamad value from any backend with its arrays as NumPy's (tuples, lists and
    dicts kept; Ints, Bools and ``()`` as they are)."""
    if isinstance(value, dict):
        return {k: host(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(host(v) for v in value)
    if isinstance(value, (int, float, bool, np.ndarray, np.generic)):
        return value
    return np.asarray(value)


def like(value, rng):
    """A random tangent or cotangent of ``value``: its structure and shapes, standard
    normal entries, and ``()`` for an Int or a Bool."""
    if isinstance(value, dict):
        return {k: like(value[k], rng) for k in sorted(value)}
    if isinstance(value, (tuple, list)):
        return type(value)(like(v, rng) for v in value)
    if is_discrete(value):
        return ()
    return rng.standard_normal(np.shape(value))


# ------------------------------------------------------------------ component by component (reverse mode)


def _leaves(x: Any) -> list:
    """The real leaves of a point (floats, arrays) in order; ints and bools are discrete."""
    if isinstance(x, dict):
        return _leaves([x[k] for k in sorted(x)])
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in _leaves(item)]
    if is_discrete(x):
        return []
    return [np.array(x, dtype=np.float64)]


def _rebuild(like: Any, leaves: list, discrete: Any = None) -> Any:
    """``like`` with its real leaves replaced, in order, by ``leaves`` (consumed), and its
    discrete leaves kept, or replaced by ``discrete`` when one is given (``()``: the
    cotangent of a discrete leaf)."""
    if isinstance(like, dict):
        return {k: _rebuild(like[k], leaves, discrete) for k in sorted(like)}
    if isinstance(like, tuple):
        return tuple(_rebuild(item, leaves, discrete) for item in like)
    if isinstance(like, list):
        return [_rebuild(item, leaves, discrete) for item in like]
    if is_discrete(like):
        return like if discrete is None else discrete
    leaf = leaves.pop(0)
    return float(leaf) if isinstance(like, float) and discrete is None else leaf


def numeric_gradient(f: Callable[[Any], Any], x: Any, step: float = STEP) -> Any:
    """Central differences ``(f(x + h e) - f(x - h e)) / 2h`` for every real component of
    the point ``x``, in the structure of lamad's cotangent of ``x`` (``()`` for discrete
    leaves)."""
    leaves = _leaves(x)
    grads = []
    for i, leaf in enumerate(leaves):
        g = np.zeros_like(leaf)
        for index in np.ndindex(leaf.shape):
            values = []
            for sign in (1, -1):
                shifted = [l.copy() for l in leaves]
                shifted[i][index] += sign * step
                values.append(float(f(_rebuild(x, shifted))))
            g[index] = (values[0] - values[1]) / (2 * step)
        grads.append(g)
    return _rebuild(x, grads, discrete=())


def assert_same_gradient(got: Any, want: Any, rtol: float = 1e-6, atol: float = 1e-6, where: str = "gradient"):
    """Structural comparison of two cotangents: tuples and lists item by item, dicts key by
    key, leaves elementwise with equal shapes (a Real's cotangent is 0-d)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: {got!r} vs {want!r}"
        for k in want:
            assert_same_gradient(got[k], want[k], rtol, atol, f"{where}.{k}")
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_gradient(g, w, rtol, atol, f"{where}[{i}]")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_gradient(g, w, rtol, atol, f"{where}[{i}]")
    else:
        got, want = np.asarray(got), np.asarray(want)
        assert got.shape == want.shape, f"{where}: shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=where)


def assert_derivatives_parse_back(source: str, name: str = "f") -> None:
    """←D and →D of the definition ``name`` of ``source``, raw and simplified, are of the
    transformed type, and print in Unicode and ASCII to text that parses back to a term of
    that type."""
    import lamad
    from lamad.adtypes import backprop_type, forward_type
    from lamad.types import infer_term

    prog = lamad.loads(source)
    for transform, type_of in ((prog.backprop, backprop_type), (prog.forward, forward_type)):
        for simplified in (False, True):
            _, ty, term = transform(name, simplified=simplified)
            assert ty == type_of(prog.types[name])
            for ascii in (False, True):
                assert infer_term(lamad.parse(lamad.pretty(term, ascii=ascii)), {}).ty == ty
