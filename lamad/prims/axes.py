"""Axes: swapping, moving, permuting, squeezing, flipping, tiling, repeating and padding
the axes of a tensor; cumulative sums and products along an axis; and ``einsum``.

An axis that a tensor does not have, a permutation that is not one, a negative count
and subscripts that do not fit their operands are run-time errors, raised here and
located by the evaluator at the application.  The operations that only move entries
(``swapaxes moveaxis permute squeeze flip tile repeat``) take every array type, as
``dim`` does; the others take Tensors.

Two derivatives need care:

* ``cumprod``'s is exact where entries are 0: it never divides by the input.  Its tangent
  is the linear recurrence ``dy_k = x_k dy_(k-1) + dx_k y_(k-1)`` (the private
  ``linscan``, computed as JAX computes cumulative reductions, by an associative scan in
  log2 n vectorized steps), and its transposed derivative the same recurrence run
  backwards, so ``∂y_k/∂x_j = Π_(l≤k, l≠j) x_l`` as JAX gives it.
* ``einsum``'s derivatives are einsums: the tangent is ``Σ_i einsum spec (xs with dx_i
  at i)`` and the transposed derivative in operand ``i`` is the einsum whose
  subscripts ``einsum_dual`` computes, with the cotangent in the place of operand
  ``i``.  An index repeated in operand ``i`` (a trace, a diagonal) or summed in it alone
  has no place in an einsum's output, so the dual einsum also multiplies by an identity
  tensor over its copies (ones for a lone index), from ``einsum_masks``.
"""

from __future__ import annotations

import math
import operator
import string
from dataclasses import dataclass
from functools import lru_cache, reduce

from lamad.prims.base import SHAPE, A, define
from lamad.prims.shape import ARRAYS, axis_of
from lamad.syntax import INT, STRING, TENSOR, ListType, TupleType

WIDTHS = ListType(TupleType((INT, INT)))
"""The widths of ``pad``: one ``(before, after)`` pair per axis."""


def _moving(name: str, params: tuple, impl, jvp: str, vjp: str, doc: str, example) -> None:
    """An operation that moves the entries of its last argument, an array of any type (one
    signature per type, the result of that type), linear in it, with ``jvp`` and ``vjp``
    the rules of that argument."""
    k = len(params)
    define(name, params + (A,), A, impl, typing="overloaded", signatures=tuple((params + (t,), t) for t in ARRAYS),
           linear=(k,), jvp=(None,) * k + (jvp,), vjp=(None,) * k + (vjp,), doc=doc, example=example)


def _count(n: int, what: str) -> int:
    """``n``, a count; a negative one is a ``ValueError`` that names ``what`` it counts."""
    if n < 0:
        raise ValueError(f"{what} is negative: {n}")
    return n


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# ------------------------------------------------------------------ moving entries


def _swapaxes(rt):
    xp = rt.backend.xp

    def swapaxes(i, j, x):
        """The standard has no ``swapaxes``: the permutation that exchanges the two axes."""
        order = list(range(x.ndim))
        i, j = axis_of(i, x), axis_of(j, x)
        order[i], order[j] = j, i
        return xp.permute_dims(x, tuple(order))
    return swapaxes


def _moveaxis(rt):
    xp = rt.backend.xp
    return lambda src, dst, x: xp.moveaxis(x, axis_of(src, x), axis_of(dst, x))


def _permutation(axes: list[int], x) -> tuple[int, ...]:
    """``axes`` as a permutation of the axes of ``x`` (negative axes counted from the end);
    anything else is a ``ValueError``."""
    order = tuple(axis_of(a, x) for a in axes) if len(axes) == x.ndim else ()
    if len(axes) != x.ndim or sorted(order) != list(range(x.ndim)):
        raise ValueError(f"{list(axes)} is not a permutation of the axes of a tensor of rank {x.ndim} "
                         f"(shape {tuple(x.shape)}): it must name each of its {x.ndim} axes once")
    return order


def _permute(rt):
    xp = rt.backend.xp
    return lambda axes, x: xp.permute_dims(x, _permutation(axes, x))


def _inverse_permutation(rt):
    def inverse(axes):
        n = len(axes)
        out = [0] * n
        for i, a in enumerate(axes):
            out[a % n] = i
        return out
    return inverse


def _squeeze(rt):
    xp = rt.backend.xp

    def squeeze(axis, x):
        k = axis_of(axis, x)
        if x.shape[k] != 1:
            raise ValueError(f"cannot squeeze axis {axis} of a tensor of shape {tuple(x.shape)}: "
                             f"its length is {x.shape[k]}, not 1")
        return xp.squeeze(x, axis=k)
    return squeeze


def _flip(rt):
    xp = rt.backend.xp
    return lambda axis, x: xp.flip(x, axis=axis_of(axis, x))


def _reps(reps: list[int], x) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """NumPy's ``tile`` aligned: the repetitions and the shape of ``x``, both padded on the
    left with 1s to the rank of the result."""
    for r in reps:
        _count(r, "a repetition count of tile")
    rank = max(len(reps), x.ndim)
    return (1,) * (rank - len(reps)) + tuple(reps), (1,) * (rank - x.ndim) + tuple(x.shape)


def _tile(rt):
    xp = rt.backend.xp

    def tile(reps, x):
        _reps(reps, x)
        return xp.tile(x, tuple(reps))
    return tile


def _untile(rt):
    xp = rt.backend.xp

    def untile(reps, x, a):
        """The tiles of ``a`` summed into one of the shape of ``x``: the transpose of tile."""
        reps, shape = _reps(reps, x)
        interleaved = tuple(n for pair in zip(reps, shape) for n in pair)
        summed = xp.sum(xp.reshape(a, interleaved), axis=tuple(range(0, 2 * len(reps), 2)))
        return xp.reshape(summed, x.shape)
    return untile


def _repeat(rt):
    xp = rt.backend.xp
    return lambda n, axis, x: xp.repeat(x, _count(n, "the repetition count of repeat"), axis=axis_of(axis, x))


def _unrepeat(rt):
    xp = rt.backend.xp

    def unrepeat(n, axis, x, a):
        """The ``n`` copies of each entry of ``x`` along the axis in ``a`` summed: the
        transpose of repeat."""
        k = axis_of(axis, x)
        grouped = x.shape[:k] + (x.shape[k], n) + x.shape[k + 1:]
        return xp.sum(xp.reshape(a, grouped), axis=k + 1)
    return unrepeat


_moving("swapaxes", (INT, INT), _swapaxes, "swapaxes x1 x2 dx3", "swapaxes x1 x2 a",
        "the array with two axes exchanged", ("swapaxes 0 (-1) x1", ((2, 3, 4),)))
_moving("moveaxis", (INT, INT), _moveaxis, "moveaxis x1 x2 dx3", "moveaxis x2 x1 a",
        "the array with an axis moved to a new position, the others in order", ("moveaxis 0 2 x1", ((2, 3, 4),)))
_moving("permute", (SHAPE,), _permute, "permute x1 dx2", "permute (inverse_permutation x1) a",
        "the array with its axes in the given order (NumPy's transpose with axes)",
        ("permute [2, 0, 1] x1", ((2, 3, 4),)))
define("inverse_permutation", (SHAPE,), SHAPE, _inverse_permutation, derivative="discrete", public=False,
       doc="the permutation that undoes the given one")
_moving("squeeze", (INT,), _squeeze, "squeeze x1 dx2", "reshape a (shape x2)",
        "the array without an axis of length 1", ("squeeze 1 x1", ((2, 1, 3),)))
_moving("flip", (INT,), _flip, "flip x1 dx2", "flip x1 a",
        "the array with the order of the entries along an axis reversed", ("flip 1 x1", ((2, 3),)))
_moving("tile", (SHAPE,), _tile, "tile x1 dx2", "untile x1 (like x2) a",
        "the array repeated as a whole along each axis (NumPy's tile)", ("tile [2, 1, 3] x1", ((2, 3),)))
define("untile", (SHAPE, TENSOR, TENSOR), TENSOR, _untile, linear=(2,), public=False,
       jvp=(None, None, "untile x1 x2 dx3"), vjp=(None, None, "tile x1 a"),
       doc="the tiles of a summed into one of the shape of x: the transpose of tile",
       example=("%untile [2, 1] x1 x2", ((2, 3), (4, 3))))
_moving("repeat", (INT, INT), _repeat, "repeat x1 x2 dx3", "unrepeat x1 x2 (like x3) a",
        "each entry repeated n times along an axis (NumPy's repeat)", ("repeat 2 1 x1", ((2, 3),)))
define("unrepeat", (INT, INT, TENSOR, TENSOR), TENSOR, _unrepeat, linear=(3,), public=False,
       jvp=(None, None, None, "unrepeat x1 x2 x3 dx4"), vjp=(None, None, None, "repeat x1 x2 a"),
       doc="the copies of each entry along the axis summed: the transpose of repeat",
       example=("%unrepeat 2 0 x1 x2", ((2, 3), (4, 3))))


# ------------------------------------------------------------------ padding


def _widths(widths: list[tuple[int, int]], x) -> list[tuple[int, int]]:
    """The ``(before, after)`` widths of ``pad``, one pair of counts per axis of ``x``."""
    if len(widths) != x.ndim:
        raise ValueError(f"{_counted(len(widths), 'pair')} of widths for a tensor of rank {x.ndim} "
                         f"(shape {tuple(x.shape)}): pad takes one (before, after) pair per axis")
    for before, after in widths:
        _count(before, "a width of pad")
        _count(after, "a width of pad")
    return [(before, after) for before, after in widths]


def _pad(rt):
    xp, ext = rt.backend.xp, rt.backend.ext

    def pad(widths, x):
        """Zeros of the padded shape with ``x`` written inside (the standard has no ``pad``)."""
        widths = _widths(widths, x)
        shape = tuple(before + n + after for n, (before, after) in zip(x.shape, widths))
        inside = tuple(slice(before, before + n) for n, (before, _) in zip(x.shape, widths))
        return ext.set_at(xp.zeros(shape, dtype=x.dtype), inside, x)
    return pad


def _unpad(rt):
    def unpad(widths, a):
        """The entries of ``a`` that pad did not add: the transpose of pad."""
        return a[tuple(slice(before, a.shape[k] - after) for k, (before, after) in enumerate(_widths(widths, a)))]
    return unpad


define("pad", (WIDTHS, TENSOR), TENSOR, _pad, linear=(1,), jvp=(None, "pad x1 dx2"), vjp=(None, "unpad x1 a"),
       doc="the tensor with zeros added before and after along each axis",
       example=("pad [(1, 0), (2, 1)] x1", ((2, 3),)))
define("unpad", (WIDTHS, TENSOR), TENSOR, _unpad, linear=(1,), public=False,
       jvp=(None, "unpad x1 dx2"), vjp=(None, "pad x1 a"),
       doc="the tensor without the entries pad added: the transpose of pad",
       example=("%unpad [(1, 0), (2, 1)] x1", ((3, 6),)))


# ------------------------------------------------------------------ cumulative sums and products


def _along(fn_name: str):
    def impl(rt):
        fn = getattr(rt.backend.xp, fn_name)
        return lambda axis, x: fn(x, axis=axis_of(axis, x))
    return impl


def _shift(rt):
    xp = rt.backend.xp

    def shift(axis, steps, x):
        """``x`` moved ``steps`` places along the axis (backwards if negative), zeros
        entering where it left."""
        k = axis_of(axis, x)
        n = x.shape[k]
        if abs(steps) >= n:
            return xp.zeros_like(x)
        zeros = xp.zeros(tuple(x.shape[:k]) + (abs(steps),) + tuple(x.shape[k + 1:]), dtype=x.dtype)
        kept = (slice(None),) * k + ((slice(None, n - steps),) if steps >= 0 else (slice(-steps, None),)) + (...,)
        return xp.concat([zeros, x[kept]] if steps >= 0 else [x[kept], zeros], axis=k)
    return shift


def linear_scan(xp, axis: int, c, b):
    """``s`` with ``s_k = c_k s_(k-1) + b_k`` along ``axis`` (``s_(-1) = 0``), by the
    associative scan of Hillis and Steele: ``(c, b)`` pairs compose associatively, and
    ``log2 n`` vectorized steps combine each with the one ``d`` places before it.  Only
    products and sums: exact where ``c`` has zeros, as a division by a prefix product
    would not be."""
    c, b = xp.moveaxis(c, axis, 0), xp.moveaxis(b, axis, 0)
    d = 1
    while d < b.shape[0]:
        b = xp.concat([b[:d, ...], c[d:, ...] * b[:-d, ...] + b[d:, ...]])
        c = xp.concat([c[:d, ...], c[d:, ...] * c[:-d, ...]])
        d *= 2
    return xp.moveaxis(b, 0, axis)


def _linscan(rt):
    xp = rt.backend.xp

    def linscan(axis, c, b):
        if c.shape != b.shape:
            raise ValueError(f"coefficients of shape {tuple(c.shape)} for terms of shape {tuple(b.shape)}")
        return linear_scan(xp, axis_of(axis, b), c, b)
    return linscan


def _backwards(c: str, a: str) -> str:
    """The transpose of ``b ↦ linscan x1 c b`` applied to ``a``: the same recurrence run
    from the last entry to the first, with ``c`` shifted one place back."""
    return f"flip x1 (linscan x1 (flip x1 (shift x1 (-1) {c})) (flip x1 {a}))"


_EXCLUSIVE = "(shift x1 1 y + (1.0 - shift x1 1 (ones_like x2)))"
"""The exclusive cumulative product ``[1, x_0, x_0 x_1, …]``, made from ``y = cumprod x``
without dividing by ``x``."""

define("cumsum", (INT, TENSOR), TENSOR, _along("cumulative_sum"), linear=(1,),
       jvp=(None, "cumsum x1 dx2"), vjp=(None, "flip x1 (cumsum x1 (flip x1 a))"),
       doc="the running sums along an axis", example=("cumsum 1 x1", ((2, 4),)))
define("cumprod", (INT, TENSOR), TENSOR, _along("cumulative_prod"),
       jvp=(None, f"linscan x1 x2 (dx2 * {_EXCLUSIVE})"), vjp=(None, f"{_EXCLUSIVE} * {_backwards('x2', 'a')}"),
       doc="the running products along an axis (its derivative is exact where entries are 0)",
       example=("cumprod 0 x1", ((4, 2),)))
define("shift", (INT, INT, TENSOR), TENSOR, _shift, linear=(2,), public=False,
       jvp=(None, None, "shift x1 x2 dx3"), vjp=(None, None, "shift x1 (-x2) a"),
       doc="x moved some places along the axis, zeros entering", example=("%shift 1 1 x1", ((2, 3),)))
define("linscan", (INT, TENSOR, TENSOR), TENSOR, _linscan, linear=(2,), public=False,
       jvp=(None, "linscan x1 x2 (dx2 * shift x1 1 y)", "linscan x1 x2 dx3"),
       vjp=(None, f"shift x1 1 y * {_backwards('x2', 'a')}", _backwards("x2", "a")),
       doc="s with s_k = c_k s_(k-1) + b_k along the axis: a first-order linear recurrence",
       example=("%linscan 0 x1 x2", ((5, 2), (5, 2))))


# ------------------------------------------------------------------ einsum


@dataclass(frozen=True)
class Subscripts:
    """The subscripts of an einsum, written out: one string of index letters per operand,
    and the output's."""

    inputs: tuple[str, ...]
    output: str

    def __str__(self) -> str:
        return ",".join(self.inputs) + "->" + self.output


@lru_cache(maxsize=1024)
def subscripts(spec: str) -> Subscripts:
    """``spec`` read as NumPy reads einsum subscripts, without ``...``: operands separated
    by commas, the output after ``->`` (if absent, the indices that occur once, in
    alphabetical order).  Anything else is a ``ValueError``."""
    text = spec.replace(" ", "")
    if "." in text:
        raise ValueError(f"subscripts {spec!r}: '...' is not supported; name every axis with a letter")
    lhs, arrow, output = text.partition("->")
    if "->" in output:
        raise ValueError(f"subscripts {spec!r} have more than one '->'")
    inputs = tuple(lhs.split(","))
    for part in inputs + (output,):
        bad = [ch for ch in part if ch not in string.ascii_letters]
        if bad:
            raise ValueError(f"subscripts {spec!r}: unexpected {bad[0]!r}; an index is a letter, a to z or "
                             "A to Z, operands are separated by ',' and the output follows '->'")
    letters = "".join(inputs)
    if not arrow:
        output = "".join(sorted(ch for ch in set(letters) if letters.count(ch) == 1))
    for ch in output:
        if output.count(ch) > 1:
            raise ValueError(f"subscripts {spec!r}: the index {ch!r} occurs twice in the output")
        if ch not in letters:
            raise ValueError(f"subscripts {spec!r}: the output index {ch!r} occurs in no operand")
    return Subscripts(inputs, output)


def _checked(spec: str, xs: list) -> tuple[Subscripts, dict[str, tuple[int, int]]]:
    """The subscripts of ``spec``, checked against the operands ``xs``: one per operand,
    one index per axis, and each index of one length wherever it occurs (no broadcasting);
    and the length of each index, with the operand it first occurs in."""
    sub = subscripts(spec)
    if len(sub.inputs) != len(xs):
        raise ValueError(f"subscripts {spec!r} name {_counted(len(sub.inputs), 'operand')}, "
                         f"but the list holds {_counted(len(xs), 'tensor')}")
    lengths: dict[str, tuple[int, int]] = {}
    for k, (letters, x) in enumerate(zip(sub.inputs, xs)):
        shape = tuple(getattr(x, "shape", ()))
        if len(letters) != len(shape):
            raise ValueError(f"operand {k + 1} has shape {shape}, but its subscripts {letters!r} "
                             f"name {len(letters)} ax{'is' if len(letters) == 1 else 'es'}")
        for ch, n in zip(letters, shape):
            first = lengths.setdefault(ch, (n, k))
            if first[0] != n:
                raise ValueError(f"the index {ch!r} has length {first[0]} in operand {first[1] + 1} "
                                 f"and {n} in operand {k + 1}")
    return sub, lengths


_DIRECT = 1 << 15
"""Up to this many terms (the product of the lengths of all indices), NumPy's einsum loop
is faster than a contraction path (which calls BLAS): it costs a few microseconds where
planning a path costs ten or more."""


def einsum(ext, spec: str, xs: list):
    """The einsum of ``spec`` over the tensors ``xs`` (``ext.einsum``: the standard has
    none), its subscripts checked first; contracted pairwise along an optimized path (BLAS
    where it applies) unless it is small."""
    sub, lengths = _checked(spec, xs)
    terms = math.prod(n for n, _ in lengths.values())
    return ext.einsum(str(sub), *xs, optimize=len(xs) > 1 and terms > _DIRECT)


@dataclass(frozen=True)
class Dual:
    """The transposed derivative of an einsum in one operand, as an einsum: ``subscripts``
    over the operands with the cotangent in that operand's place, then one identity
    tensor per index of ``masks``; each mask is the copies of one index (``ik`` for the
    ``i`` of ``ii``, whose second copy is renamed ``k``), ``ones`` for one copy."""

    subscripts: Subscripts
    masks: tuple[tuple[int, str], ...]
    """Each mask: the axis of the operand its index first occurs on, and its copies."""


@lru_cache(maxsize=1024)
def dual(spec: str, i: int) -> Dual:
    """The einsum transposed in operand ``i`` of ``spec``: its output is that operand's
    subscripts with each repeated index renamed afresh after its first occurrence; an index
    that the output or another operand holds needs nothing more, and each other one (a
    repeated index, or one summed in operand ``i`` alone) is multiplied by an identity
    over its copies: ``∂/∂x_ii`` of a trace is ``a δ_ik``, of ``sum_j x_ij`` is ``a_i 1_j``."""
    sub = subscripts(spec)
    if not 0 <= i < len(sub.inputs):
        raise ValueError(f"subscripts {spec!r} have no operand {i + 1}")
    own = sub.inputs[i]
    unused = iter(ch for ch in string.ascii_letters if ch not in "".join(sub.inputs) + sub.output)
    copies: dict[str, str] = {}
    renamed = []
    for ch in own:
        if ch in copies:
            fresh = next(unused, None)
            if fresh is None:
                raise ValueError(f"subscripts {spec!r} use too many indices to be differentiated "
                                 "(an einsum has 52 letters)")
            copies[ch] += fresh
            renamed.append(fresh)
        else:
            copies[ch] = ch
            renamed.append(ch)
    elsewhere = set(sub.output).union(*(s for k, s in enumerate(sub.inputs) if k != i))
    masks = tuple((own.index(ch), group) for ch, group in copies.items() if len(group) > 1 or ch not in elsewhere)
    inputs = sub.inputs[:i] + (sub.output,) + sub.inputs[i + 1:] + tuple(group for _, group in masks)
    return Dual(Subscripts(inputs, "".join(renamed)), masks)


def _identity(xp, dtype, n: int, order: int):
    """The tensor of ``order`` axes of length ``n`` that is 1 where all its indices agree."""
    if order == 1:
        return xp.ones(n, dtype=dtype)
    first, *others = (xp.reshape(xp.arange(n), (1,) * k + (n,) + (1,) * (order - 1 - k)) for k in range(order))
    agree = reduce(operator.and_, (first == other for other in others))
    return xp.astype(agree, dtype)


def _einsum_masks(rt):
    xp, dtype = rt.backend.xp, rt.backend.dtype

    def einsum_masks(spec, i, xs):
        _checked(spec, xs)  # so that xs[i] has the axes the masks are read from
        return [_identity(xp, dtype, xs[i].shape[axis], len(group)) for axis, group in dual(spec, i).masks]
    return einsum_masks


def _einsum_at(rt):
    ext = rt.backend.ext

    def einsum_at(spec, i, v, xs):
        if not 0 <= i < len(xs):
            raise ValueError(f"there is no operand {i + 1} among {len(xs)}")
        return einsum(ext, spec, xs[:i] + [v] + xs[i + 1:])
    return einsum_at


def _einsum_rules(operands: str) -> tuple[str, str]:
    """The tangent and transposed rules of the einsum ``x1`` over ``operands``, a list of
    transformed tensors: ``Σ_i einsum x1 (xs with dx_i at i)``, and the cotangent
    ``einsum (einsum_dual x1 i) (xs with a at i, and the masks)`` sent to operand ``i``."""
    given = f"let ps = {operands}; xs = map fst ps; ns = range (length xs) in "
    tangent = given + "(einsum x1 xs, sum_axis 0 (stack (map (\\(i, (_, dx)). einsum_at x1 i dx xs) (zip ns ps))))"
    transposed = given + ("(einsum x1 xs, \\(a : Tensor) -o sum_grads (map (\\(i, (_, (x' : ~Tensor))). "
                          "x' (einsum_at (einsum_dual x1 i) i a (append xs (einsum_masks x1 i xs)))) (zip ns ps)))")
    return tangent, transposed


_EINSUM = _einsum_rules("x2")
_EINSUM_AT = _einsum_rules("replace_at x2 x3 x4")

define("einsum", (STRING, ListType(TENSOR)), TENSOR, lambda rt: (lambda spec, xs: einsum(rt.backend.ext, spec, xs)),
       derivative="special", jvp=(_EINSUM[0],), vjp=(_EINSUM[1],),
       doc="the sum of products of the tensors' entries that the subscripts name, as NumPy's einsum",
       example=("einsum \"ij,jk->ik\" [x1, x2]", ((2, 3), (3, 4))))
define("einsum_at", (STRING, INT, TENSOR, ListType(TENSOR)), TENSOR, _einsum_at, linear=(2,), public=False,
       derivative="special", jvp=(_EINSUM_AT[0],), vjp=(_EINSUM_AT[1],),
       doc="the einsum over the list with its i-th tensor replaced by v (linear in v)",
       example=("%einsum_at \"ij,j->i\" 1 x3 [x1, x2]", ((2, 3), (3,), (3,))))
define("einsum_dual", (STRING, INT), STRING, lambda rt: (lambda spec, i: str(dual(spec, i).subscripts)),
       derivative="discrete", public=False,
       doc="the subscripts of the transposed derivative of an einsum in its i-th operand")
define("einsum_masks", (STRING, INT, ListType(TENSOR)), ListType(TENSOR), _einsum_masks, derivative="special",
       public=False, jvp=("let ms = einsum_masks x1 x2 (map fst x3) in zip ms (map zeros_like ms)",),
       vjp=("map (\\m. (m, \\(c : Tensor) -o 0)) (einsum_masks x1 x2 (map fst x3))",),
       doc="the identity tensors the transposed einsum in the i-th operand multiplies by (constants)",
       example=("%einsum_masks \"iij,k->k\" 0 [x1, x2]", ((3, 3, 2), (2,))))
