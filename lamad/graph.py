"""The computational graph of one evaluation of a function (README.md, "Seeing a derivative").

``lamad graph FILE --entry f --at ARGS [--grad]`` and the REPL's ``:graph`` draw a circuit
as the CS231n lecture on backpropagation draws it: one node per input, per constant and
per application of a primitive, the forward value on each wire, and with ``--grad`` the
cotangent each wire carried back.  Inputs are on the left, the output on the right.

**Tracing.**  :func:`trace` walks the elaborated term of the definition with a small
interpreter whose values are nodes: ``let`` binds a node, so a value bound once and used
twice is one node with two out-edges; tuples are tuples of nodes; a lambda (a definition
of the program, or one written in place) applied to arguments is inlined.  Each node's
value is its primitive's application compiled by lamad's own evaluator
(:func:`lamad.driver.compile`), so it is the value ``lamad run`` computes.  What is not
straight-line code — ``if``, lists, ``map``/``fold`` and the other primitives that take
functions, the AD operators — is refused with a located error naming it.

**Cotangents.**  :func:`backward` runs the reverse pass over the nodes, last first: the
output's cotangent is 1, and each primitive node sends ``∂ᵢf* a`` to its ``i``-th
argument, ``∂ᵢf*`` the transposed derivative in the primitive's record
(lamad/prims/base.py, ``vjp``), instantiated typed (lamad/instances.py) and compiled as
←D itself does.  A node's cotangent is the sum of those its out-edges sent it.
"""

from __future__ import annotations

import itertools
import shutil
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from lamad import driver
from lamad.errors import LamError
from lamad.adtypes import has_leaves
from lamad.instances import instantiate
from lamad.prims import PRIMITIVES
from lamad.transform import built_from_literals
from lamad.syntax import (
    REAL, TENSOR, Ann, App, Lam, Let, ListLit, ListType, Lit, Pattern, Prim, Proj, PRecord, PTuple, PVar, PWild,
    Record, RecordType, Span, Term, Tuple, TupleType, Type, Var, free_variables, record_order,
)

FORMATS = ("dot", "svg", "png")
"""The files ``-o`` writes, by extension: DOT text, or a picture rendered by Graphviz."""


class LamGraphError(LamError):
    """What the graph cannot draw, located at the construct."""

    kind = "graph error"


@dataclass(frozen=True)
class Node:
    """An input (``label`` its name), a constant (``label`` its text) or the application of
    the primitive ``op`` to the nodes ``args``; ``value`` its value, of type ``ty``.
    ``backprop``: whether ←D gives the application a backpropagator of its own
    (lamad/reverse.py): its primitive has rules, its result carries reals, and an
    argument that has a rule carries reals and is not a constant (built from literals)."""

    label: str
    kind: str
    value: Any
    ty: Type
    op: str | None = None
    args: tuple[int, ...] = ()
    span: Span | None = None
    backprop: bool = False


@dataclass
class Graph:
    """The nodes in the order they were computed (arguments before their uses); the
    result, one node per leaf of the entry's result; after :func:`backward`, the
    cotangent each edge ``(node, position)`` sent back to ``nodes[node].args[position]``
    and the cotangent of each node, their sum."""

    nodes: list[Node]
    outputs: list[int]
    sent: dict[tuple[int, int], Any] = field(default_factory=dict)
    cotangents: dict[int, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.kind == "input"]


@dataclass(frozen=True)
class _Closure:
    lam: Lam
    env: dict[str, Any]


Code = Callable[[Term, list[str], list[Any]], Any]
"""``code(term, params, values)``: ``term``, open in ``params``, compiled and applied to ``values``."""


class _Tracer:
    """The interpreter of :func:`trace`: a term's value is a node index, a tuple of values,
    or a closure."""

    def __init__(self, terms: dict[str, Term], code: Code):
        self.terms = terms
        self.code = code
        self.nodes: list[Node] = []
        self.definitions: dict[str, Any] = {}
        self.constants: dict[int, bool] = {}  # built_from_literals' memo

    def add(self, node: Node) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def inputs(self, pattern_name: str, ty: Type, value: Any) -> Any:
        """Input nodes for a parameter: one per leaf of a tuple (``p.0``, ``p.1``) or a
        record (``p.w``, ``p.b``)."""
        if isinstance(ty, TupleType):
            return tuple(self.inputs(f"{pattern_name}.{i}", t, v) for i, (t, v) in enumerate(zip(ty.items, value)))
        if isinstance(ty, RecordType):
            return tuple(self.inputs(f"{pattern_name}.{f}", t, v) for f, t, v in zip(ty.fields, ty.items, value))
        return self.add(Node(pattern_name, "input", value, ty))

    def eval(self, t: Term, env: dict[str, Any]) -> Any:
        method = getattr(self, "eval_" + type(t).__name__.lower(), None)
        if method is None:
            raise LamGraphError(f"the graph draws straight-line code (let, tuples, primitives, lambdas applied); "
                                f"{_construct(t)} is not", t.span)
        return method(t, env)

    def eval_var(self, t: Var, env: dict[str, Any]) -> Any:
        if t.name in env:
            return env[t.name]
        if t.name not in self.definitions:
            self.definitions[t.name] = self.eval(self.terms[t.name], {})
        return self.definitions[t.name]

    def eval_lit(self, t: Lit, env: dict[str, Any]) -> int:
        return self.constant(t)

    def eval_listlit(self, t: ListLit, env: dict[str, Any]) -> int:
        """A list written with constants only (a shape, ``[2, 3]``) is one constant node."""
        if free_variables(t):
            raise LamGraphError("the graph draws lists of constants only (a shape); this list holds computed values",
                                t.span)
        return self.constant(t)

    def constant(self, t: Term) -> int:
        value = self.code(t, [], [])
        text = driver.pretty(t, ascii=True) if isinstance(t, ListLit) else _show(value, t.ty)
        return self.add(Node(text, "constant", value, t.ty, span=t.span))

    def eval_tuple(self, t: Tuple, env: dict[str, Any]) -> tuple:
        return tuple(self.eval(i, env) for i in t.items)

    def eval_record(self, t: Record, env: dict[str, Any]) -> tuple:
        """A record is traced as its value is made: the tuple of its fields in order."""
        items = [self.eval(i, env) for i in t.items]  # in the order written
        return tuple(items[i] for i in record_order(t.fields))

    def eval_proj(self, t: Proj, env: dict[str, Any]) -> Any:
        record = self.eval(t.term, env)
        if not isinstance(record, tuple):
            raise LamGraphError("the graph takes fields only of records written as records or given as arguments",
                                t.span)
        return record[t.term.ty.fields.index(t.field)]

    def eval_ann(self, t: Ann, env: dict[str, Any]) -> Any:
        return self.eval(t.term, env)

    def eval_let(self, t: Let, env: dict[str, Any]) -> Any:
        """A chain of ``let``s in a loop, not a recursion: a long straight-line program is
        a deep term."""
        body: Term = t
        while isinstance(body, Let):
            env = env | _bind(body.pattern, self.eval(body.bound, env))
            body = body.body
        return self.eval(body, env)

    def eval_lam(self, t: Lam, env: dict[str, Any]) -> _Closure:
        return _Closure(t, env)

    def eval_app(self, t: App, env: dict[str, Any]) -> Any:
        fn = self.eval(t.fn, env)
        if not isinstance(fn, _Closure):
            raise LamGraphError("the graph inlines lambdas applied to their arguments; this applies something "
                                "else", t.span)
        return self.eval(fn.lam.body, fn.env | _bind(fn.lam.param, self.eval(t.arg, env)))

    def eval_prim(self, t: Prim, env: dict[str, Any]) -> Any:
        prim = PRIMITIVES[t.op]
        args = [self.eval(a, env) for a in t.args]
        if t.op in ("fst", "snd") and isinstance(args[0], tuple):
            return args[0][t.op == "snd"]
        if prim.typing == "ad" or prim.derivative == "ad":
            raise LamGraphError(f"'{prim.surface}' differentiates inside the program: draw the function it "
                                f"differentiates, with --grad", t.span)
        if prim.derivative in ("structural", "special") or not all(isinstance(a, int) for a in args):
            raise LamGraphError(f"the graph draws straight-line code over numbers and arrays; '{prim.surface}' "
                                f"{_refused(t, args)} (inline it by hand, or draw the function it applies)", t.span)
        names = [f"x{i + 1}" for i in range(len(args))]
        vars_ = tuple(Var(n, ty=t.args[i].ty) for i, n in enumerate(names))
        value = self.code(Prim(t.op, vars_, t.marks, span=t.span, ty=t.ty), names,
                          [self.nodes[a].value for a in args])
        backprop = prim.derivative == "rules" and has_leaves(t.ty) and any(
            rule is not None and has_leaves(a.ty) and not built_from_literals(a, self.constants)
            for rule, a in zip(prim.vjp_terms, t.args))
        return self.add(Node(prim.surface, "primitive", value, t.ty, t.op, tuple(args), t.span, backprop))


def _refused(t: Prim, args: list[Any]) -> str:
    """Why an application of a primitive is not drawn."""
    if any(isinstance(a, _Closure) for a in args):
        return "takes a function"
    if any(isinstance(a.ty, ListType) for a in t.args) or isinstance(t.ty, ListType):
        return "works on lists"
    return "takes or makes a tuple the graph does not take apart"


def _construct(t: Term) -> str:
    """How an unsupported construct is named in an error."""
    names = {"If": "'if'", "LinLam": "a linear lambda", "DZero": "a zero cotangent", "DAdd": "a sum of cotangents"}
    return names.get(type(t).__name__, type(t).__name__)


def _bind(p: Pattern, value: Any) -> dict[str, Any]:
    """The names a pattern binds to the parts of a traced value."""
    if isinstance(p, PVar):
        return {p.name: value}
    if isinstance(p, PWild):
        return {}
    assert isinstance(p, (PTuple, PRecord))
    if not isinstance(value, tuple):
        raise LamGraphError("the graph takes apart only tuples and records written as such or given as arguments",
                            p.span)
    items = p.items if isinstance(p, PTuple) else [p.items[i] for i in record_order(p.fields)]
    bound: dict[str, Any] = {}
    for item, v in zip(items, value):
        bound |= _bind(item, v)
    return bound


def _leaves(value: Any) -> list[int]:
    if isinstance(value, tuple):
        return [n for v in value for n in _leaves(v)]
    if isinstance(value, _Closure):
        raise LamGraphError("the graph draws a function's evaluation to data; this result is a function",
                            value.lam.span)
    return [value]


def trace(terms: dict[str, Term], entry: str, params: list[tuple[str, Type]], args: list[Any], code: Code,
          pruned: bool = True) -> Graph:
    """The graph of ``entry`` (whose elaborated term is ``terms[entry]``, a lambda per
    parameter ``params``) applied to the lamad values ``args``; ``code`` compiles and runs
    each node's term.  Unless ``pruned``, the values computed and never used are kept."""
    tracer = _Tracer(terms, code)
    value = tracer.eval(terms[entry], {})
    for (name, ty), arg in zip(params, args):
        if not isinstance(value, _Closure):  # pragma: no cover - the entry has a lambda per parameter
            raise LamGraphError(f"'{entry}' takes fewer arguments than given")
        value = tracer.eval(value.lam.body, value.env | _bind(value.lam.param, tracer.inputs(name, ty, arg)))
    outputs = _leaves(value)
    return _pruned(tracer.nodes, outputs) if pruned else Graph(tracer.nodes, outputs)


def _pruned(nodes: list[Node], outputs: list[int]) -> Graph:
    """The graph of the nodes the outputs depend on, and the inputs: a value computed and
    never used (``fst (x, 2.0)``'s ``2.0``) is not part of the circuit."""
    used = {i for i, n in enumerate(nodes) if n.kind == "input"} | set(outputs)
    for i in range(len(nodes) - 1, -1, -1):
        if i in used:
            used.update(nodes[i].args)
    index = {old: new for new, old in enumerate(sorted(used))}
    kept = [replace(nodes[old], args=tuple(index[a] for a in nodes[old].args)) for old in sorted(used)]
    return Graph(kept, [index[o] for o in outputs])


def backward(graph: Graph, code: Code) -> None:
    """The reverse pass: the cotangent 1 at the (single, Real) output, then, node by node
    from the last, each argument's share ``∂ᵢf* a`` by the primitive's ``vjp`` rule, summed
    where a node has several uses (the chain rule)."""
    (out,) = graph.outputs
    cts = graph.cotangents
    cts[out] = code(Lit(1.0, ty=REAL), [], [])
    for i in range(len(graph.nodes) - 1, -1, -1):
        node = graph.nodes[i]
        if i not in cts or not _has_rules(node):
            continue
        rules = PRIMITIVES[node.op].vjp_terms
        for k, rule in enumerate(rules):
            if rule is None or graph.nodes[node.args[k]].ty not in (REAL, TENSOR):
                continue
            share = _run_rule(graph, node, rule, {"a": (node.ty, cts[i])}, code)
            graph.sent[i, k] = share
            a = node.args[k]
            cts[a] = share if a not in cts else cts[a] + share


def tangents(graph: Graph, code: Code, seed: int) -> dict[int, Any]:
    """The forward pass of →D over the nodes, first first: the tangent 1 (ones, for a
    tensor) at input ``seed`` and 0 at the others, then each primitive node's tangent
    ``Σᵢ ∂ᵢf dxᵢ`` by the primitive's ``jvp`` rules over its arguments that have one.  A
    node missing from the result has the tangent 0."""
    seeded = graph.nodes[seed]
    dots = {seed: code(Prim("ones_like", (Var("x1", ty=seeded.ty),), ty=seeded.ty), ["x1"], [seeded.value])}
    for i, node in enumerate(graph.nodes):
        if not _has_rules(node):
            continue
        args = [graph.nodes[a] for a in node.args]
        known = {f"dx{k + 1}": (a.ty, dots[n]) for k, (n, a) in enumerate(zip(node.args, args)) if n in dots}
        for k, rule in enumerate(PRIMITIVES[node.op].jvp_terms):
            if rule is not None and f"dx{k + 1}" in known:
                part = _run_rule(graph, node, rule, known, code)
                dots[i] = part if i not in dots else dots[i] + part
    return dots


def _has_rules(node: Node) -> bool:
    """Whether a node applies a primitive whose derivative its rules give."""
    if node.kind != "primitive":
        return False
    prim = PRIMITIVES[node.op]
    if prim.derivative not in ("rules", "constant", "discrete"):  # pragma: no cover - refused by trace
        raise LamGraphError(f"'{prim.surface}' has no derivative rule the graph can run", node.span)
    return prim.derivative == "rules"


_NAMES_MADE = itertools.count(1)


def _run_rule(graph: Graph, node: Node, rule: Term, given: dict[str, tuple[Type, Any]], code: Code) -> Any:
    """A rule of a node's primitive (lamad/prims/base.py) run at the node: ``x1 … xk`` its
    arguments' values, ``y`` its value and ``given`` the others (``a``, ``dx1``), each
    name's type and value; instantiated typed (lamad/instances.py) and compiled as the
    transforms do."""
    args = [graph.nodes[a] for a in node.args]
    typed = {f"x{k + 1}": (a.ty, a.value) for k, a in enumerate(args)} | {"y": (node.ty, node.value)} | given
    names = {name: Var(name, ty=ty) for name, (ty, _) in typed.items()}
    term = instantiate(rule, names, lambda base: f"{base}_g{next(_NAMES_MADE)}", node.span)
    return code(term, list(names), [value for _, value in typed.values()])


def parameters(prog: Any, entry: str) -> tuple[list[tuple[str, Type]], Type]:
    """The parameters of definition ``entry`` of the loaded program ``prog``
    (:class:`lamad.api.LoadedProgram`) and the type of the value the graph is drawn at:
    the tuple of their types, or the one parameter's type."""
    definition = prog.typed.program[entry]  # the types with the aliases the annotations name expanded
    params = [(p.name, t) for p, t in zip(definition.params, prog.function_types(entry))]
    if not params:
        raise LamGraphError(f"'{entry}' takes no arguments: the graph draws a function at a point",
                            definition.name_span)
    return params, params[0][1] if len(params) == 1 else TupleType(tuple(t for _, t in params))


def program_code(prog: Any) -> Code:
    """How the nodes of a graph of the loaded program ``prog`` are computed: by lamad's own
    evaluator, with its definitions."""
    def code(term: Term, names: list[str], values: list[Any]) -> Any:
        return driver.compile(term, prog.runtime, prog.value, names)(*values)
    return code


def of_program(prog: Any, entry: str, at: Any, grad: bool, pruned: bool = True) -> Graph:
    """The graph of definition ``entry`` of the loaded program ``prog`` at ``at``, a lamad
    value of the type :func:`parameters` gives; with ``grad``, its cotangents too (the
    result must be a Real); ``pruned`` as for :func:`trace`.  Errors are left unlocated:
    the caller knows the text."""
    params, _ = parameters(prog, entry)
    args = [at] if len(params) == 1 else list(at)
    try:
        graph = trace(prog.typed.terms, entry, params, args, program_code(prog), pruned)
    except RecursionError:
        raise LamGraphError(f"'{entry}' nests its terms too deeply to draw: the graph is for circuits one can read",
                            prog.typed.program[entry].name_span) from None
    if grad:
        check_real(graph, prog, entry, "--grad")
        backward(graph, program_code(prog))
    return graph


def check_real(graph: Graph, prog: Any, entry: str, what: str) -> None:
    """Refuse, for ``what``, a graph whose result is not one Real: a gradient needs one."""
    if len(graph.outputs) != 1 or graph.nodes[graph.outputs[0]].ty != REAL:
        raise LamGraphError(f"{what} needs a function to Real, as grad does; '{entry}' is "
                            f"{driver.pretty_type(prog.types[entry], ascii=True)}",
                            prog.typed.program[entry].name_span)


# --------------------------------------------------------------------- drawing

_VALUE_COLOUR = "#1a7f37"
_GRAD_COLOUR = "#cf222e"


def _show(value: Any, ty: Type) -> str:
    """A value as a wire shows it: a number to 4 significant digits; an array by its
    shape, with its entries when it has at most 6."""
    if ty == REAL or isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value)
    shape = getattr(value, "shape", None)
    if shape is None:
        return str(value)
    dims = "×".join(str(d) for d in shape) or "scalar"
    if getattr(value, "size", 7) <= 6:
        flat = value.reshape(-1).tolist()
        return f"[{dims}] " + " ".join(_number(x) for x in flat)
    return f"[{dims}]"


def _number(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "__float__"):
        return str(x)
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return f"{float(x):.4g}"


def _wire(value: str, grad: str | None) -> str:
    """An edge's HTML label: the value in green above, the cotangent in red below."""
    text = f'<font color="{_VALUE_COLOUR}">{_escape(value)}</font>'
    if grad is not None:
        text += f'<br/><font color="{_GRAD_COLOUR}">{_escape(grad)}</font>'
    return f"<{text}>"


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_dot(graph: Graph, grad: bool, title: str = "graph") -> Any:
    """The graph as a ``graphviz.Digraph`` (``rankdir=LR``): a node per input (a box),
    constant (plain text) and primitive application (a circle with its symbol), an edge
    per use with the value (green) and, when ``grad``, the cotangent sent back along it
    (red); an output wire to a point on the right.  A node with several uses shows its
    cotangent, their sum, under its symbol."""
    try:
        import graphviz
    except ImportError:
        raise LamGraphError("drawing a graph needs the graphviz package: pip install 'lamad[graph]'") from None

    dot = graphviz.Digraph(title, graph_attr={"rankdir": "LR", "fontname": "Helvetica"},
                           node_attr={"fontname": "Helvetica"}, edge_attr={"fontname": "Helvetica", "fontsize": "11"})
    uses: dict[int, int] = {}
    for node in graph.nodes:
        for a in node.args:
            uses[a] = uses.get(a, 0) + 1
    for i, node in enumerate(graph.nodes):
        attrs = {"input": {"shape": "box"}, "constant": {"shape": "plaintext"},
                 "primitive": {"shape": "circle"}}[node.kind]
        label = _escape(node.label)
        if grad and uses.get(i, 0) + graph.outputs.count(i) > 1 and i in graph.cotangents:
            label += f'<br/><font color="{_GRAD_COLOUR}">∑ {_escape(_show(graph.cotangents[i], node.ty))}</font>'
        dot.node(f"n{i}", f"<{label}>", **attrs)
        for k, a in enumerate(node.args):
            share = graph.sent.get((i, k)) if grad else None
            g = _show(share, graph.nodes[a].ty) if share is not None else None
            dot.edge(f"n{a}", f"n{i}", label=_wire(_show(graph.nodes[a].value, graph.nodes[a].ty), g))
    for j, out in enumerate(graph.outputs):
        dot.node(f"out{j}", "", shape="point")
        ct = graph.cotangents.get(out) if grad else None
        node = graph.nodes[out]
        dot.edge(f"n{out}", f"out{j}",
                 label=_wire(_show(node.value, node.ty), _show(ct, node.ty) if ct is not None else None))
    return dot


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program, which renders SVG and PNG, is installed."""
    return shutil.which("dot") is not None


def write(dot: Any, path: str) -> str:
    """Write the graph to ``path``, whose extension is one of :data:`FORMATS`: DOT text
    for ``.dot`` (and for any format when ``dot`` is missing, to ``path`` with ``.dot``
    added, said on stderr), else rendered by ``dot``.  Returns the path written."""
    fmt = path.rsplit(".", 1)[-1].lower()
    if fmt == "dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot.source)
        return path
    if not dot_available():
        fallback = path + ".dot"
        with open(fallback, "w", encoding="utf-8") as f:
            f.write(dot.source)
        print(f"lamad: Graphviz's 'dot' is not installed, so {path} cannot be rendered; wrote the DOT text to "
              f"{fallback} (install it: apt-get install graphviz, or brew install graphviz)", file=sys.stderr)
        return fallback
    with open(path, "wb") as f:
        f.write(dot.pipe(format=fmt))
    return path
