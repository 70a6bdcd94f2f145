"""lamad's version, as pyproject.toml declares it: a module of its own, so that a module
that prints it (the REPL's banner) need not import the package, whose ``__init__`` loads
the notebook extension, which is built on the REPL."""

__version__ = "0.1.0"
