"""lamad: a typed lambda calculus with compositional reverse-mode AD.

The passes, each a module with one entry point:
``parse_program``/``parse_term`` (parser), ``typecheck`` (types), ``backprop``
(reverse: the transform ←D), ``forward`` (forward: the transform →D), ``evaluate``
(driver: compile and run), ``pretty`` (pretty); ``load``/``loads`` run them all, as the
driver assembles them, and ``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``hvp``,
``hessian``, ``jacfwd`` and ``jacrev`` differentiate the functions of a loaded program
(api), nested as deep as wanted; ``save`` and ``load_params`` write and read values in the
``.npz`` archives of ``lamad run --output`` (archive); ``Stats`` counts the work of the
gradients run since ``Stats.reset()`` (gradient).
"""

from lamad import allocator  # noqa: F401  (the heap policy, applied on import)
from lamad.api import (
    Function, LamArgumentError, LoadedProgram, grad, hessian, hvp, jacfwd, jacrev, jvp, load, load_params, loads,
    save, value_and_grad, vjp,
)
from lamad.errors import LamError, LamRuntimeError, LamSyntaxError, LamTypeError, LamWarning
from lamad.driver import evaluate
from lamad.gradient import Stats
from lamad.forward import forward
from lamad.parser import parse_program, parse_term, parse_type
from lamad.pretty import format_value, pretty, pretty_type
from lamad.reverse import backprop
from lamad.types import typecheck
from lamad.version import __version__

parse = parse_term


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext lamad`` in IPython or Jupyter: the magics ``%%lamad`` and ``%lamad``
    (lamad/notebook.py, which needs ``pip install 'lamad[notebook]'``)."""
    from lamad.notebook import register

    register(ipython)


__all__ = [
    "Function", "LoadedProgram", "load", "loads", "save", "load_params", "LamArgumentError", "LamError", "LamRuntimeError", "LamWarning",
    "LamSyntaxError", "LamTypeError", "evaluate", "parse", "parse_program", "parse_term", "parse_type",
    "format_value",
    "pretty", "pretty_type", "typecheck", "backprop", "forward", "grad", "value_and_grad", "vjp", "jvp", "hvp",
    "hessian", "jacfwd", "jacrev", "Stats",
]
