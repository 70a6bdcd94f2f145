"""The ``lamad`` command run in this process (a subprocess per call would cost a second each)."""

from __future__ import annotations

import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

from lamad import cli

ROOT = Path(__file__).resolve().parent.parent


def run_lamad(*args: str) -> subprocess.CompletedProcess:
    """``lamad ARGS`` run in this process, from the root of the repository: an exception
    that escapes is a failure."""
    out, err = StringIO(), StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
