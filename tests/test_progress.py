"""``lamad run`` shows a progress bar for long loops on a terminal, and nothing when stderr
is not a terminal or with ``--quiet`` (lamad/progress.py).  The terminal is a real
pseudo-terminal with a window size, as a user's would be."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import lamad

ROOT = Path(__file__).resolve().parent.parent

# Each loop runs for a good part of a second, far longer than the bar is told to wait for
# (LAMAD_PROGRESS_DELAY below): how long a loop runs depends on the machine.
LONG_LOOP = "def main = iterate 1000000 (\\x. x * 0.5 + 1.0) 0.0\n"
NESTED = "def main = iterate 30 (\\x. fold (\\a i. a * 0.5 + 1.0) x (range 100000)) 0.0\n"
WHILE_LOOP = "def main = fst (while (\\(_, n). n < 300000) (\\(x, n). (x * 0.5 + 1.0, n + 1)) (0.0, 0))\n"
FAILS_LATE = ("def main =\n"
              "  iterate 1000000 (\\x. x + (if x < 900000.0 then 1.0 else scalar (fill 1.0 [2]))) 0.0\n")


def run_on_terminal(tmp_path: Path, source: str, *flags: str) -> tuple[int, str, str]:
    """Run ``lamad run`` with stderr on an 80-column pseudo-terminal; returns the exit
    status, stdout and everything written to the terminal."""
    program = tmp_path / "loop.lam"
    program.write_text(source)
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "LAMAD_PROGRESS_DELAY": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "lamad.cli", "run", str(program), *flags],
                            stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closes when the program exits
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=60), stdout, screen.decode()


def test_a_long_loop_shows_a_bar_on_a_terminal_and_erases_it(tmp_path):
    code, stdout, screen = run_on_terminal(tmp_path, LONG_LOOP)
    assert code == 0 and float(stdout) == pytest.approx(2.0)
    assert "iterate:" in screen and "/1000000 [" in screen and "step/s" in screen
    assert screen.endswith("\r") and screen.rsplit("\r", 2)[1].strip() == ""  # erased, not left behind


def test_a_while_loop_shows_a_count_of_its_steps_for_want_of_a_total(tmp_path):
    code, stdout, screen = run_on_terminal(tmp_path, WHILE_LOOP)
    assert code == 0 and float(stdout) == pytest.approx(2.0)
    assert re.search(r"while: \d+step \[", screen) and "step/s" in screen
    assert "/300000" not in screen and "%" not in screen  # no bar to fill: its length is not known
    assert screen.endswith("\r") and screen.rsplit("\r", 2)[1].strip() == ""


def test_quiet_turns_the_bar_off(tmp_path):
    code, stdout, screen = run_on_terminal(tmp_path, LONG_LOOP, "--quiet")
    assert code == 0 and float(stdout) == pytest.approx(2.0)
    assert screen == ""


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path):
    program = tmp_path / "loop.lam"
    program.write_text(LONG_LOOP)
    proc = subprocess.run([sys.executable, "-m", "lamad.cli", "run", str(program)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and float(proc.stdout) == pytest.approx(2.0)
    assert proc.stderr == ""


def test_nested_loops_show_one_bar_for_the_outermost(tmp_path):
    code, _, screen = run_on_terminal(tmp_path, NESTED)
    assert code == 0
    assert "iterate:" in screen and "/30 [" in screen
    assert "fold" not in screen


def test_an_error_inside_a_loop_erases_the_bar_before_the_message(tmp_path):
    code, stdout, screen = run_on_terminal(tmp_path, FAILS_LATE)
    assert code == 1 and stdout == ""
    assert "iterate:" in screen
    message = screen.replace("\r\n", "\n").rsplit("\r", 1)[1]  # what follows the erased bar
    assert message.startswith(f"{tmp_path / 'loop.lam'}:2:")
    assert "expected a tensor of one element" in message and "Traceback" not in screen


def test_ctrl_c_erases_the_bar_even_when_the_loop_runs_on_the_big_stack(tmp_path):
    """A program nested deeper than Python's stack runs on lamad's big-stack worker thread,
    its loop included; Ctrl-C used to leave that loop running and its bar on the screen
    after 'interrupted'.  Now the loop is interrupted and its bar erased first."""
    program = tmp_path / "loop.lam"
    program.write_text("def main = iterate 100000000 (\\x. x * 0.5 + 1.0) (" + "-(" * 3000 + "0.0" + ")" * 3000 + ")\n")
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "LAMAD_PROGRESS_DELAY": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "lamad.cli", "run", str(program)],
                            stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    screen, sent = b"", False
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
        if not sent and b"step/s" in screen:  # the bar shows: the loop runs
            proc.send_signal(signal.SIGINT)
            sent = True
    os.close(primary)
    proc.stdout.close()
    assert proc.wait(timeout=60) == 130
    text = screen.decode()
    assert text.replace("\r\n", "\n").rsplit("\r", 1)[1] == "interrupted\n"  # after the erased bar
    assert "Traceback" not in text and "Fatal Python error" not in text


def test_the_python_api_has_no_bar_unless_asked(capsys):
    assert lamad.loads(LONG_LOOP).runtime.progress is None
    prog = lamad.loads(NESTED.replace("30000", "10").replace("30", "3"), progress=True)
    assert float(prog.main) == pytest.approx(2.0 - 2.0 ** -29)
    assert capsys.readouterr().err == ""  # short loops finish before a bar would appear
