"""The traces of one evaluation of a function and of its derivative (README.md, "Seeing a
derivative"; docs/differentiation.md, "Reading a trace").

``lamad trace FILE --entry f --at ARGS [--forward] [--seed NAME]`` and the REPL's
``:trace`` print the tables of Baydin et al.'s survey of AD in machine learning (its
Figures 2 and 3):

* the **forward primal trace**: the inputs ``v₁₋ₙ … v₀``, then each application of a
  primitive in the order it is computed, ``vᵢ = f vⱼ vₖ``, its value and where it is in
  the source.  The values are those of the circuit ``lamad graph`` draws
  (:func:`lamad.graph.trace`, computed by lamad's evaluator).  ``vᵢ`` (``i ≥ 1``) numbers
  the applications that ←D gives a backpropagator, in the order the backward pass makes
  them; the others (computed from constants only, or without a derivative) are ``cᵢ``.
* with a **forward tangent trace** beside it (``--forward``): ``v̇ᵢ``, the tangent of each
  value when the tangent of one input is 1 (all ones, for a tensor) and the others' 0, by
  the →D rules of the primitives (:func:`lamad.graph.tangents`).
* the **reverse adjoint trace**, recorded from ``grad`` itself as it runs, by an observer
  of :func:`lamad.gradient.force`: each backpropagator in the order forcing runs it, the
  cotangents sent to it (one per use of its value), the sum it ran on (once), and the
  cotangents it sent on; then the inputs' cotangents, the gradient.

A backpropagator is named after the value it was made for: ids count up in the order
backpropagators are made, the inputs' first (:func:`lamad.autodiff.Gradient`), then one
per ``vᵢ``.  The trace checks that the gradient made exactly that many, and refuses to
name them otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Callable
from unicodedata import combining

from lamad import driver, graph
from lamad.gradient import Backpropagator, next_id, observed
from lamad.graph import Graph, LamGraphError
from lamad.parser import parse_term
from lamad.prims import PRIMITIVES
from lamad.prims.base import FUSED_BACKWARD
from lamad.syntax import REAL, TENSOR, Span


class UnknownInput(LookupError):
    """The input named to seed the tangent trace is not one of the function's."""


@dataclass(frozen=True)
class Run:
    """One backpropagator run: the node it was made for, the cotangent it ran on (the
    sum of those sent to it) and what its body sent on, node by node."""

    node: int
    cotangent: Any
    sent: tuple[tuple[int, Any], ...]


@dataclass
class Trace:
    """The traces of ``entry`` at one point.  ``graph`` holds the primal trace (every value
    computed, used or not); ``seed`` the cotangent 1 sent to the output's
    backpropagator; ``received`` the cotangents sent to each node, in the order sent;
    ``tangents`` the tangent trace (a node missing has the tangent 0), seeded at input
    ``wrt``."""

    entry: str
    source: str
    graph: Graph
    seed: tuple[tuple[int, Any], ...]
    runs: list[Run]
    received: dict[int, list[Any]]
    tangents: dict[int, Any] | None = None
    wrt: int | None = None

    @property
    def real_inputs(self) -> list[int]:
        return real_inputs(self.graph)

    def gradient(self, node: int) -> Any:
        """The cotangent of an input: the sum of those sent to it (``None``: none was)."""
        cts = self.received.get(node)
        if not cts:
            return None
        total = cts[0]
        for ct in cts[1:]:
            total = total + ct
        return total


def real_inputs(primal: Graph) -> list[int]:
    """The inputs that a gradient pairs with a backpropagator: reals and tensors."""
    return [i for i in primal.inputs if primal.nodes[i].ty in (REAL, TENSOR)]


class _Recorder:
    """The observer of :func:`lamad.gradient.force` (:class:`lamad.gradient.Observer`):
    what was sent and run, as it happened; arrays are copied, in case a later sum
    reuses them."""

    def __init__(self) -> None:
        self.made: int | None = None
        self.seed: list[tuple[Backpropagator, Any]] = []
        self.runs: list[tuple[Backpropagator, Any, list[tuple[Backpropagator, Any]]]] = []

    def forcing(self, gradient: Any) -> None:
        self.made, self.seed, self.runs = next_id(), _records(gradient), []

    def ran(self, target: Backpropagator, cotangent: Any, sent: Any) -> None:
        self.runs.append((target, _copy(cotangent), _records(sent)))


def _copy(value: Any) -> Any:
    return value.copy() if hasattr(value, "copy") else value


def _records(gradient: Any) -> list[tuple[Backpropagator, Any]]:
    """The records ``(x', v)`` of a gradient value, in the order :func:`force` scatters
    them (a sum's left part first)."""
    records, stack = [], [gradient]
    while stack:
        node = stack.pop()
        if type(node) is tuple:
            records.append((node[0], _copy(node[1])))
        elif type(node) is list:
            stack += reversed(node)
    return records


def of_program(prog: Any, entry: str, at: Any, forward: bool = False, wrt: str | None = None,
               source: str | None = None) -> Trace:
    """The traces of definition ``entry`` of the loaded program ``prog`` at ``at`` (as for
    :func:`lamad.graph.of_program`), its spans in ``source`` (by default the program's
    text: the REPL's is the file's lines and those typed); with ``forward``, the tangent
    trace seeded at the input named ``wrt`` (the first real one by default;
    :class:`UnknownInput` names the inputs if there is none of that name).  Errors are
    left unlocated."""
    primal = graph.of_program(prog, entry, at, grad=False, pruned=False)
    graph.check_real(primal, prog, entry, "the trace")
    seeded = _seeded(primal, entry, wrt) if forward else None
    recorder = _Recorder()
    gradient = _gradient(prog, entry, len(graph.parameters(prog, entry)[0]))
    start = next_id()
    unfused = FUSED_BACKWARD.set(False)  # one backpropagator per primitive, as the paper's
    try:
        with observed(recorder):
            driver.apply(gradient, [at])
    finally:
        FUSED_BACKWARD.reset(unfused)
    made_for = _made_for(primal, entry, start, recorder.made, prog.typed.program[entry].name_span)

    def node(bp: Backpropagator) -> int:
        if not start <= bp.id < recorder.made:  # pragma: no cover - the count of made_for rules it out
            raise LamGraphError(f"the trace cannot follow the backpropagators of '{entry}'")
        return made_for[bp.id - start]

    runs = [Run(node(bp), ct, tuple((node(t), c) for t, c in sent)) for bp, ct, sent in recorder.runs]
    seed = tuple((node(t), c) for t, c in recorder.seed)
    received: dict[int, list[Any]] = {}
    for target, ct in [*seed, *(s for run in runs for s in run.sent)]:
        received.setdefault(target, []).append(ct)
    dots = graph.tangents(primal, graph.program_code(prog), seeded) if seeded is not None else None
    return Trace(entry, prog.source if source is None else source, primal, seed, runs, received, dots, seeded)


def _gradient(prog: Any, entry: str, arity: int) -> Any:
    """``grad (λ(x1, …, xk). entry x1 … xk)``: the gradient of ``entry`` in all its
    parameters, as a lamad function value of their tuple."""
    names = [f"x{i + 1}" for i in range(arity)]
    param = names[0] if arity == 1 else f"({', '.join(names)})"
    term = driver.check_term(parse_term(f"grad (\\{param}. f {' '.join(names)})"), {"f": prog.types[entry]})
    return driver.compile(term, prog.runtime, prog.value, ["f"])(prog.value(entry))


def _made_for(primal: Graph, entry: str, start: int, made: int | None, where: Span | None) -> list[int]:
    """The node each backpropagator made from id ``start`` on was made for: the real
    inputs, then the applications ←D gives one (:attr:`lamad.graph.Node.backprop`), in
    order; refused unless the gradient made (``made - start``) exactly as many."""
    order = real_inputs(primal) + [i for i, n in enumerate(primal.nodes) if n.backprop]
    if made is None or made - start != len(order):
        count = "no backpropagators" if made is None else f"{made - start} backpropagators"
        raise LamGraphError(f"the trace cannot follow the gradient of '{entry}': it made {count} where the "
                            f"primal trace has {len(order)} values to differentiate", where)
    return order


def _seeded(primal: Graph, entry: str, wrt: str | None) -> int:
    """The input named ``wrt`` (the first real one when ``None``), whose tangent is 1; a
    :class:`UnknownInput` if there is none of that name."""
    inputs = real_inputs(primal)
    if wrt is None:
        return inputs[0]
    for i in inputs:
        if primal.nodes[i].label == wrt:
            return i
    names = ", ".join(primal.nodes[i].label for i in inputs)
    raise UnknownInput(f"'{entry}' has no real input '{wrt}' to seed (its inputs: {names})")


# --------------------------------------------------------------------- printing

_SUBSCRIPTS = str.maketrans("-0123456789", "₋₀₁₂₃₄₅₆₇₈₉")

_WIDTH = 28
"""The most characters of source text a row shows."""


Where = Callable[[Span], str]
"""How a position in the program's text is written (``LINE:COL`` by default)."""


def _line_column(span: Span) -> str:
    return f"{span.line}:{span.column}"


class _Names:
    """How the values of a trace are named: ``vᵢ`` (and ``v̄ᵢ``, ``v̇ᵢ``) for the inputs and
    the values with a backpropagator, ``cᵢ`` for the others, a constant by its text; and
    where they are computed, written by ``where``."""

    def __init__(self, trace: Trace, ascii: bool, where: Where):
        self.trace, self.ascii, self.where = trace, ascii, where
        nodes, inputs = trace.graph.nodes, trace.graph.inputs
        self.numbers = {i: f"v{k - len(inputs) + 1}" for k, i in enumerate(inputs)}
        self.numbers |= {i: f"v{k + 1}" for k, i in enumerate(i for i, n in enumerate(nodes) if n.backprop)}
        others = (i for i, n in enumerate(nodes) if n.kind == "primitive" and not n.backprop)
        self.numbers |= {i: f"c{k + 1}" for k, i in enumerate(others)}

    def of(self, node: int, mark: str = "") -> str:
        """The name of a value (``mark``: ``"bar"`` for its cotangent, ``"dot"`` for its tangent)."""
        n = self.trace.graph.nodes[node]
        if n.kind == "constant":
            return n.label
        name = self.numbers[node]
        letter, index = name[0], name[1:]
        if self.ascii:
            return f"{letter}{mark}[{index}]"
        return letter + {"": "", "bar": "\u0304", "dot": "\u0307"}[mark] + index.translate(_SUBSCRIPTS)

    def expression(self, node: int) -> str:
        """What a value is: an input's name, or its primitive applied (operators infix)."""
        n = self.trace.graph.nodes[node]
        if n.kind == "input":
            return n.label
        args = [self.of(a) for a in n.args]
        if n.label[0].isalpha() or len(args) > 2:
            return " ".join([n.label, *args])
        return f"{args[0]} {n.label} {args[1]}" if len(args) == 2 else n.label + args[0]

    def place(self, node: int) -> str:
        """Where a value is computed (``LINE:COL``, after its file's name in an imported
        module) and its source text, cut short."""
        span = self.trace.graph.nodes[node].span
        if span is None:
            return ""
        lines = (span.source.text if span.source is not None else self.trace.source).split("\n")
        where = f"{PurePath(span.source.filename).name}:{_line_column(span)}" if span.source is not None \
            else self.where(span)
        text = "\n".join(lines[span.line - 1:span.end_line])[span.column - 1:]
        text = " ".join(text[:len(text) - len(lines[span.end_line - 1]) + span.end_column - 1].split())
        if len(text) > _WIDTH:
            text = text[:_WIDTH - 1] + ("~" if self.ascii else "…")
        return f"{where}  {text}"

    def value(self, value: Any) -> str:
        """A number as the survey prints it (three decimals); a tensor by its shape and its
        mean, minimum and maximum, or its one value."""
        shape = getattr(value, "shape", ())
        if not shape:
            return _number(value)
        dims = ("x" if self.ascii else "×").join(map(str, shape))
        low, high = value.min(), value.max()
        if low == high:
            return f"[{dims}] all {_number(low)}"
        return f"[{dims}] mean {_number(value.mean())}, min {_number(low)}, max {_number(high)}"


def _number(x: Any) -> str:
    """Three decimals, trailing zeros dropped (``0.693``, ``10``); three significant digits
    when that would show a nonzero number as 0."""
    if isinstance(x, (bool, int)):
        return str(x)
    x = float(x)
    if x != 0 and abs(x) < 5e-4:
        return f"{x:.3g}"
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _table(rows: list[list[str]]) -> list[str]:
    """Rows as columns padded to their widest cell, two spaces apart (a combining mark,
    the bar of ``v̄``, takes no room)."""
    widths = [max(_width(r[k]) if k < len(r) else 0 for r in rows) for k in range(max(map(len, rows)))]
    return ["  " + "  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths)).rstrip() for r in rows]


def _width(text: str) -> int:
    return sum(not combining(c) for c in text)


def format_trace(trace: Trace, ascii: bool = False, forward: bool = True, reverse: bool = True,
                 where: Where = _line_column) -> str:
    """The tables: the forward primal trace (with the tangent trace when it was computed
    and ``forward``), then, with ``reverse``, the reverse adjoint trace; positions in the
    program's text written by ``where``."""
    names = _Names(trace, ascii, where)
    parts = [_primal(trace, names, forward and trace.tangents is not None)]
    if reverse:
        parts.append(_adjoint(trace, names))
    return "\n\n".join(parts)


def _primal(trace: Trace, names: _Names, tangents: bool) -> str:
    nodes = trace.graph.nodes
    eq = "="
    head = "forward primal trace"
    if tangents:
        assert trace.tangents is not None and trace.wrt is not None
        head = (f"forward primal and tangent traces, seeded {names.of(trace.wrt, 'dot')} = 1 "
                f"({nodes[trace.wrt].label}; the other inputs' tangents 0)")
    rows = []
    for i, n in enumerate(nodes):
        if n.kind == "constant":
            continue
        row = [names.of(i), eq, names.expression(i), eq, names.value(n.value)]
        if tangents:
            dot = trace.tangents.get(i)  # type: ignore[union-attr]
            row += [names.of(i, "dot"), eq, names.value(dot) if dot is not None else "0"]
        rows.append(row + [names.place(i) if n.kind == "primitive" else ""])
    (out,) = trace.graph.outputs
    rows.append(["y", eq, names.of(out), eq, names.value(nodes[out].value)])
    return "\n".join([head + ":", *_table(rows)])


def _adjoint(trace: Trace, names: _Names) -> str:
    arrow = "<-" if names.ascii else "←"
    plus = " + "

    def sent(records: tuple[tuple[int, Any], ...]) -> str:
        return ", ".join(f"{names.of(t, 'bar')} {arrow} {names.value(c)}" for t, c in records) or "nothing"

    lines = [f"reverse adjoint trace, from the seed {sent(trace.seed)} (backpropagators in the order forcing "
             f"ran them):"]
    rows = [["run", "backpropagator", "received", "ran on", "sent", "made at"]]
    for k, run in enumerate(trace.runs, 1):
        op = PRIMITIVES[trace.graph.nodes[run.node].op].surface
        received = plus.join(names.value(c) for c in trace.received[run.node])
        rows.append([str(k), f"{names.of(run.node, 'bar')} ({op})", received, names.value(run.cotangent),
                     sent(run.sent), names.place(run.node)])
    lines += _table(rows)
    lines.append("the inputs' cotangents, the gradient:")
    rows = []
    for i in trace.real_inputs:
        total = trace.gradient(i)
        received = plus.join(names.value(c) for c in trace.received.get(i, []))
        label = trace.graph.nodes[i].label
        bar = f"{label}bar" if names.ascii else f"{label[0]}\u0304{label[1:]}"
        rows.append([f"{bar} = {names.of(i, 'bar')}", "=", received or "nothing sent",
                     "=", names.value(total) if total is not None else "0"])
    lines += _table(rows)
    return "\n".join(lines)
