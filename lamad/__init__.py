"""lamad: a typed lambda calculus with compositional reverse-mode AD.

The passes, each a module with one entry point:
``parse_program``/``parse_term`` (parser), ``typecheck`` (types), ``evaluate``
(eval), ``pretty`` (pretty); ``load``/``loads`` run them all (api).
"""

from lamad.api import Function, LoadedProgram, load, loads
from lamad.errors import LamError, LamRuntimeError, LamSyntaxError, LamTypeError
from lamad.eval import evaluate
from lamad.parser import parse_program, parse_term, parse_type
from lamad.pretty import format_value, pretty, pretty_type
from lamad.types import typecheck

parse = parse_term

__all__ = [
    "Function", "LoadedProgram", "load", "loads", "LamError", "LamRuntimeError", "LamSyntaxError",
    "LamTypeError", "evaluate", "parse", "parse_program", "parse_term", "parse_type", "format_value",
    "pretty", "pretty_type", "typecheck",
]
__version__ = "0.1.0"
