"""Progress bars for long loops (``lamad run`` on a terminal; docs/design.md, Reporting progress).

The loop builtins (``iterate``, ``fold``, ``scan``, ``while``) walk their steps through
:meth:`Progress.steps`.  The outermost loop that runs for longer than ``delay``
seconds shows a tqdm bar on the terminal; loops nested inside it run plain, so
a training loop of 300 steps shows one bar of 300 steps whatever its steps do.
Without a :class:`Progress` (the default, and ``--quiet`` or a redirected
stderr) the builtins are the plain loops: no cost per step.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import IO, Iterable, Iterator


class Progress:
    """One bar at a time on ``stream``, for the outermost running loop; it appears after
    ``delay`` seconds (short loops never show one; default ``$LAMAD_PROGRESS_DELAY`` or
    half a second) and is erased when the loop ends."""

    def __init__(self, stream: IO[str], delay: float | None = None):
        self.stream = stream
        self.delay = _delay_from_environment(stream) if delay is None else delay
        self.busy = False

    @contextmanager
    def steps(self, items: Iterable, total: int | None, label: str) -> Iterator[Iterable]:
        """``items`` shown as a bar of ``total`` steps, or, where ``total`` is ``None``
        (``while``), as a count of the steps taken and their rate."""
        if self.busy:
            yield items
            return
        from tqdm import tqdm

        self.busy = True
        stream = _Watched(self.stream)
        bar = tqdm(items, total=total, desc=label, unit="step", file=stream, delay=self.delay, leave=False,
                   dynamic_ncols=True)
        try:
            yield bar
        except BaseException:
            # A Ctrl-C that lands while tqdm draws the bar for the first time, before it
            # records having drawn it, makes its close() erase nothing: erase the line here.
            bar.close()
            if stream.written:
                self.stream.write("\r" + " " * (_width(self.stream) - 1) + "\r")
                self.stream.flush()
            raise
        finally:
            bar.close()
            self.busy = False


class _Watched:
    """A stream that notes whether anything was written to it."""

    def __init__(self, stream: IO[str]):
        self.stream, self.written = stream, False

    def write(self, text: str) -> int:
        self.written = True
        return self.stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _width(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


DEFAULT_DELAY = 0.5


def _delay_from_environment(stream: IO[str]) -> float:
    """``$LAMAD_PROGRESS_DELAY`` in seconds; one that is not a number of seconds (``abc``,
    ``-1``, ``nan``) is reported on ``stream`` and the default used instead."""
    text = os.environ.get("LAMAD_PROGRESS_DELAY")
    if text is None:
        return DEFAULT_DELAY
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        print(f"lamad: warning: LAMAD_PROGRESS_DELAY={text!r} is not a number of seconds; "
              f"using {DEFAULT_DELAY}", file=stream)
        return DEFAULT_DELAY
    return value
