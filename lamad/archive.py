"""Values of lamad in NumPy ``.npz`` archives (docs/language.md, "Saving and loading
values"): what ``lamad run --output`` writes and ``load_params`` reads.

A value is stored as its arrays, one per leaf — a Real, an Int, a Bool or a String as a
0-d array, a Tensor, an IntTensor or a BoolTensor as it is — each under the *path* that
leads to it: the indices of the tuple components and list elements and the names of
the record fields on the way, joined by dots (``0``, ``1.0``, ``1.1``, ``2`` for
``(losses, (w1, b1), w2)``; ``hidden.w`` for a record's; ``value`` for a value that is
itself a leaf).  A Unit has no array.  Beside them, ``__type__`` holds the
value's type as lamad prints it in ASCII (``List Real * (Tensor * Tensor) * Tensor``),
and ``__lengths__`` the length of every list, in the order a depth-first walk meets
them, so that lists of Units or of empty lists keep their lengths.  Reading checks the
archive against the type the program expects: the stored type, the arrays' names, their
kinds and the rank of each scalar; a mismatch is a ``ValueError`` that names it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import numpy as np

from lamad.backend import Backend
from lamad.syntax import (
    BOOL, BOOL_TENSOR, INT, INT_TENSOR, PRODUCTS, REAL, STRING, TENSOR, UNIT, ListType, RecordType, Type,
    pretty_type,
)

TYPE_KEY = "__type__"
LENGTHS_KEY = "__lengths__"
LEAF_KEY = "value"
"""The name of the one array of a value that is a leaf itself (a Tensor)."""

LEAVES = (REAL, TENSOR, INT, BOOL, STRING, INT_TENSOR, BOOL_TENSOR)
"""The types whose values are stored as one array each."""

_INT_RANGE = (-2 ** 63, 2 ** 63 - 1)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
_NPY_MAGIC = b"\x93NUMPY"

Path_ = tuple["int | str", ...]


def key(path: Path_) -> str:
    """The name of the array at ``path``: its indices and field names joined by dots."""
    return ".".join(map(str, path)) if path else LEAF_KEY


def not_data(t: Type) -> Type | None:
    """The part of ``t`` that an archive cannot hold (a function, a linear function, the
    gradient module ``d``), or ``None`` when it holds values of type ``t``."""
    if t in LEAVES or t == UNIT:
        return None
    if isinstance(t, PRODUCTS):
        return next((bad for bad in map(not_data, t.items) if bad is not None), None)
    if isinstance(t, ListType):
        return not_data(t.elem)
    return t


# --------------------------------------------------------------------- writing


def arrays(value: Any, t: Type, to_host: Callable[[Any], Any]) -> dict[str, np.ndarray]:
    """The arrays that store ``value`` of type ``t`` (which :func:`not_data` accepts),
    with ``__type__`` and, where there are lists, ``__lengths__``; ``to_host`` brings a
    backend array to NumPy."""
    stored: dict[str, np.ndarray] = {}
    lengths: list[int] = []

    def walk(v: Any, t: Type, path: Path_) -> None:
        if isinstance(t, PRODUCTS):
            for i, (item, it) in zip(_steps(t), zip(v, t.items)):
                walk(item, it, (*path, i))
        elif isinstance(t, ListType):
            lengths.append(len(v))
            for i, item in enumerate(v):
                walk(item, t.elem, (*path, i))
        elif t == INT:
            stored[key(path)] = np.array(v, dtype=np.int64)
        elif t != UNIT:
            stored[key(path)] = np.asarray(to_host(v) if hasattr(v, "shape") else v)

    walk(value, t, ())
    stored[TYPE_KEY] = np.array(pretty_type(t, ascii=True))
    if lengths:
        stored[LENGTHS_KEY] = np.array(lengths, dtype=np.int64)
    return stored


def write(path: Any, value: Any, t: Type, to_host: Callable[[Any], Any]) -> None:
    """Write ``value`` of type ``t`` to the file ``path`` as a ``.npz`` archive, under
    exactly that name (NumPy would add ``.npz`` to a name without it)."""
    stored = arrays(value, t, to_host)
    with open(path, "wb") as f:
        np.savez(f, **stored)


# --------------------------------------------------------------------- reading


def read(path: Any, name: str) -> dict[str, Any]:
    """The arrays of the ``.npz`` archive ``path`` (``name`` in messages) by name, read
    without pickles; a missing file, a file of another format or arrays of Python objects
    are a ``ValueError`` that says so."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise ValueError(f"cannot load '{name}': there is no such file") from None
    except OSError as e:
        raise ValueError(f"cannot load '{name}': {e.strerror or e}") from None
    if not head.startswith(_ZIP_MAGIC):
        kind = "a .npy file (read it with load)" if head == _NPY_MAGIC else "a file of another format"
        raise ValueError(f"'{name}' is not a .npz archive: it is {kind}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"'{name}' holds Python objects (dtype object), not numbers: lamad never unpickles") from None
        raise ValueError(f"'{name}' is not a valid .npz archive: {e}") from None
    except Exception as e:  # a damaged zip: BadZipFile, EOFError, zlib's error, …
        raise ValueError(f"'{name}' is not a valid .npz archive: {e}") from None


def value(stored: Mapping[str, Any], t: Type, backend: Backend, name: str) -> Any:
    """The value of type ``t`` that the arrays ``stored`` (of the archive ``name``) hold,
    on ``backend``; a ``ValueError`` naming the mismatch where they do not hold one."""
    expected = pretty_type(t, ascii=True)
    if TYPE_KEY in stored:
        found = stored[TYPE_KEY]
        found = str(found[()]) if isinstance(found, np.ndarray) and found.dtype.kind == "U" else repr(found)
        if found != expected:
            raise ValueError(f"'{name}' holds a value of type {found}, not {expected}")
    lengths = _lengths(stored, name)
    used: set[str] = set()

    def walk(t: Type, path: Path_) -> Any:
        if isinstance(t, PRODUCTS):
            return tuple([walk(it, (*path, i)) for i, it in zip(_steps(t), t.items)])
        if isinstance(t, ListType):
            n = next(lengths, None) if lengths is not None else _count(stored, path)
            if n is None:
                raise ValueError(f"'{name}' has fewer list lengths in {LENGTHS_KEY} than {expected} has lists")
            return [walk(t.elem, (*path, i)) for i in range(n)]
        if t == UNIT:
            return ()
        k = key(path)
        if k not in stored:
            held = ", ".join(_arrays(stored)) or "no arrays"
            raise ValueError(f"'{name}' has no array '{k}' for the {t} at {_where(path)} of {expected} "
                             f"(it holds {held})")
        used.add(k)
        return leaf(stored[k], t, backend, f"'{name}': the array '{k}'")

    result = walk(t, ())
    extra = [k for k in _arrays(stored) if k not in used]
    if extra:
        raise ValueError(f"'{name}' holds arrays that {expected} has no place for: {', '.join(extra)}")
    if lengths is not None and next(lengths, None) is not None:
        raise ValueError(f"'{name}' has more list lengths in {LENGTHS_KEY} than {expected} has lists")
    return result


def leaf(array: Any, t: Type, backend: Backend, what: str) -> Any:
    """The value of type ``t`` (one of :data:`LEAVES`) that ``array`` holds, on
    ``backend``, checked as ``load``, ``load_ints`` and the Python API check theirs:
    a scalar is a 0-d array, a Real or a Tensor any real numbers, an Int integers, a
    Bool truth values, a String text.  ``what`` names the array in messages."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what} is not a NumPy array")
    if t in (REAL, INT, BOOL, STRING) and array.ndim != 0:
        raise ValueError(f"{what} has shape {array.shape}, but a {t} is a 0-d array")
    try:
        if t == REAL:
            return backend.asarray(array)[()]
        if t == TENSOR:
            return backend.asarray(array)
        if t == INT_TENSOR:
            return backend.ints(array)
        if t == BOOL_TENSOR:
            return backend.bools(array)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    kinds = {INT: "iu", BOOL: "b", STRING: "U"}[t]
    if array.dtype.kind not in kinds:
        raise ValueError(f"{what} is of dtype {array.dtype}, not a {t}")
    if t == INT:
        n = int(array)
        if not _INT_RANGE[0] <= n <= _INT_RANGE[1]:
            raise ValueError(f"{what} holds {n}, beyond the 64 bits of an Int")
        return n
    return bool(array) if t == BOOL else str(array)


def _lengths(stored: Mapping[str, Any], name: str) -> Iterator[int] | None:
    """The list lengths the archive records, in order, or ``None`` where it records none
    (an archive NumPy wrote: they are then counted from the arrays' names)."""
    if LENGTHS_KEY not in stored:
        return None
    lengths = stored[LENGTHS_KEY]
    if not (isinstance(lengths, np.ndarray) and lengths.ndim == 1 and lengths.dtype.kind in "iu"
            and (lengths >= 0).all()):
        raise ValueError(f"'{name}': {LENGTHS_KEY} is not a list of lengths")
    return iter(lengths.tolist())


def _count(stored: Mapping[str, Any], path: Path_) -> int:
    """The length of the list at ``path``, from the names of the arrays: one more than the
    largest index that follows the path."""
    prefix = key(path) + "." if path else ""
    indices = [k[len(prefix):].split(".")[0] for k in stored if k.startswith(prefix)]
    return max((int(i) + 1 for i in indices if i.isdecimal()), default=0)


def _arrays(stored: Mapping[str, Any]) -> list[str]:
    """The names of the value's arrays: all but ``__type__`` and ``__lengths__``."""
    return [k for k in stored if k not in (TYPE_KEY, LENGTHS_KEY)]


def _steps(t: Type) -> Iterator["int | str"]:
    """The steps of the paths into the components of a tuple (their indices) or a record
    (their fields' names)."""
    return iter(t.fields) if isinstance(t, RecordType) else iter(range(len(t.items)))


def _where(path: Path_) -> str:
    return f"'{key(path)}'" if path else "the top"
