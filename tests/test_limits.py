"""Big programs and hostile surroundings: many definitions, deep literals, running out of
memory, a bad environment.  Checking grows linearly with the program (these tests count
work at n and 2n; the timings are in docs/performance.md), and every failure is a clear
message with exit status 1, never a Python traceback."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

import lamad
import lamad.types
from lamad import cli
from lamad.syntax import ListType, REAL


def chained_definitions(n: int) -> str:
    """``def d0 = 1.0``, ``def d1 = d0 + 1.0``, …: ``d{n-1}`` is ``n``."""
    return "def d0 = 1.0\n" + "".join(f"def d{i} = d{i - 1} + 1.0\n" for i in range(1, n))


def nested_list(n: int) -> str:
    """``[[[…[1.0]…]]]``, ``n`` levels."""
    return "def main = " + "[" * n + "1.0" + "]" * n + "\n"


def test_seven_thousand_chained_definitions_evaluate():
    """Evaluating a definition looked up the values of those it names by recursion, one
    level per definition: 7,000 of them were reported as 'nested too deeply'."""
    prog = lamad.loads(chained_definitions(7_000))
    assert float(prog.d6999) == 7_000.0


def test_the_chained_definitions_run_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "chain.lam"
    path.write_text(chained_definitions(7_000))
    assert cli.main(["run", str(path), "--entry", "d6999"]) == 0
    assert capsys.readouterr().out == "7000.0\n"


class _Counting(Mapping):
    """The types of the definitions above, counting every entry visited."""

    def __init__(self, inner: Mapping, counter: list[int]):
        self.inner, self.counter = inner, counter

    def __getitem__(self, key):
        self.counter[0] += 1
        return self.inner[key]

    def __contains__(self, key):
        self.counter[0] += 1
        return key in self.inner

    def __iter__(self):
        for key in self.inner:
            self.counter[0] += 1
            yield key

    def __len__(self):
        return len(self.inner)


def test_checking_definitions_is_linear_in_their_number(monkeypatch):
    """Each definition was checked against a copy of the types of all those above it, and
    with a set of the names of all those below it: O(n²) (100,000 definitions took over
    ten minutes).  Count the entries each check visits in both, at n and 2n."""
    counter = [0]
    check_def = lamad.types.check_def

    def counting(d, globals_, later=frozenset(), scope=None, sink=None):
        counter[0] += len(later) if hasattr(later, "__len__") else 0
        return check_def(d, _Counting(globals_, counter), later, scope, sink)

    monkeypatch.setattr(lamad.types, "check_def", counting)

    def work(n: int) -> int:
        counter[0] = 0
        lamad.types.typecheck(lamad.parser.parse_program(chained_definitions(n)))
        return counter[0]

    small, large = work(500), work(1_000)
    assert large <= 2.2 * small, (small, large)  # linear: 2; quadratic: 4


def test_a_ten_thousand_level_list_literal_checks_runs_and_prints(tmp_path, capsys):
    """The types of the levels of ``[[[…]]]`` are nested n deep, and were walked whole at
    every level (defaulted, zonked, occurs-checked): O(n²), minutes for 10,000; printing
    the value and the type then overflowed Python's stack."""
    path = tmp_path / "deep.lam"
    path.write_text(nested_list(10_000))
    assert cli.main(["run", str(path)]) == 0
    assert capsys.readouterr().out == "[" * 10_000 + "1.0" + "]" * 10_000 + "\n"
    assert cli.main(["check", str(path)]) == 0
    assert capsys.readouterr().out == "main : " + "List " * 10_000 + "Real\n"
    assert cli.main(["fmt", str(path)]) == 0
    assert re.sub(r"\s", "", capsys.readouterr().out) == re.sub(r"\s", "", nested_list(10_000))  # broken into lines


def test_checking_a_nested_list_literal_is_linear_in_its_depth(monkeypatch):
    """Count the steps of the checker through its substitution at n and 2n levels."""
    counter = [0]
    resolve = lamad.types.Checker.resolve

    def counting(self, t):
        counter[0] += 1
        return resolve(self, t)

    monkeypatch.setattr(lamad.types.Checker, "resolve", counting)

    def work(n: int) -> int:
        counter[0] = 0
        ty = lamad.loads(nested_list(n)).types["main"]
        for _ in range(n):
            assert isinstance(ty, ListType)
            ty = ty.elem
        assert ty == REAL
        return counter[0]

    small, large = work(300), work(600)
    assert large <= 2.2 * small, (small, large)  # linear: 2; quadratic: 4


@pytest.mark.parametrize("command, doing", [("run", "running"), ("check", "checking"), ("grad", "differentiating")])
def test_running_out_of_memory_is_a_message_not_a_traceback(tmp_path, capsys, monkeypatch, command, doing):
    """A chain of 100,000 ``let``s run under a limit on memory (``ulimit -v 700000``)
    raised a MemoryError with its traceback; memory is made to run out at once here."""
    path = tmp_path / "chain.lam"
    path.write_text("def main = let x = 1.0 in x\n")

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(lamad.driver, "check_program", exhausted)
    argv = [command, str(path)] + (["--entry", "main"] if command == "grad" else [])
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"lamad: error: out of memory while {doing} {path}\n"


@pytest.mark.parametrize("value", ["abc", "-1", "nan", ""])
def test_a_bad_progress_delay_is_warned_about_and_the_default_used(monkeypatch, value):
    import io

    from lamad.progress import DEFAULT_DELAY, Progress

    monkeypatch.setenv("LAMAD_PROGRESS_DELAY", value)
    stream = io.StringIO()
    assert Progress(stream).delay == DEFAULT_DELAY
    assert stream.getvalue() == (f"lamad: warning: LAMAD_PROGRESS_DELAY={value!r} is not a number of seconds; "
                                 f"using {DEFAULT_DELAY}\n")
    monkeypatch.setenv("LAMAD_PROGRESS_DELAY", "0.25")
    assert Progress(stream).delay == 0.25


def test_threads_sets_the_blas_threads_and_rejects_nonsense(tmp_path, capsys, monkeypatch):
    """``lamad run examples/digits.lam`` took 18-29 s with OpenBLAS's two threads on a
    loaded two-core machine, 1.7-2.4 s with one (docs/design.md, Threads)."""
    import ctypes

    from lamad import threads

    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    told = []
    monkeypatch.setattr(cli, "limit_threads", told.append)
    path = tmp_path / "one.lam"
    path.write_text("def main = 1.0\n")
    assert cli.main(["run", str(path)]) == 0 and told == [threads.DEFAULT_THREADS]
    assert cli.main(["run", "--threads", "2", str(path)]) == 0 and told[-1] == 2
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the environment chose: left as it is
    assert cli.main(["run", str(path)]) == 0 and len(told) == 2
    capsys.readouterr()
    for bad in ("0", "x", "-1"):
        with pytest.raises(SystemExit) as info:
            cli.main(["run", "--threads", bad, str(path)])
        assert info.value.code == 2
        assert "expected a number of threads" in capsys.readouterr().err

    # every OpenBLAS loaded is told (NumPy's wheels bring one; PyTorch's or JAX's may bring another,
    # which may not export the getter)
    if threads._openblas(1):
        libraries = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower() and "/" in line}
        getters = [getattr(library, s) for library in map(ctypes.CDLL, sorted(libraries))
                   for s in ("openblas_get_num_threads", "openblas_get_num_threads64_",
                             "scipy_openblas_get_num_threads64_") if hasattr(library, s)]
        assert getters and all(getter() == 1 for getter in getters)
