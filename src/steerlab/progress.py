"""Progress for long loops: a rich bar on a terminal, a plain line now and then in a log.

Training and evaluation on CPU run for tens of minutes, often under ``nohup``, a batch scheduler or
CI, where a bar draws nothing. There, a loop that is still running after
``STEERLAB_PROGRESS_INTERVAL`` seconds (default 60; 0 turns the lines off) writes one line to
stderr per interval — done/total, the loop's latest info (e.g. its loss), the rate and the time
left — and one closing line; loops shorter than the interval write nothing. ``STEERLAB_QUIET=1``
silences both.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_INTERVAL = 60.0


def _noop(n: int, info: str | None = None) -> None:
    """``advance`` for a loop that reports nothing."""


def _quiet() -> bool:
    return os.environ.get("STEERLAB_QUIET", "") in ("1", "true")


def log_interval() -> float:
    """Seconds between progress lines when stderr is not a terminal (0: no lines)."""
    raw = os.environ.get("STEERLAB_PROGRESS_INTERVAL", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_INTERVAL
    except ValueError:  # a typo should not stop a long run where it reaches its first loop
        warnings.warn(f"STEERLAB_PROGRESS_INTERVAL={raw!r} is not a number of seconds; using "
                      f"{DEFAULT_INTERVAL:g}", stacklevel=2)
        value = DEFAULT_INTERVAL
    return max(0.0, value)


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _LogLines:
    """Counts progress and writes a line to stderr at most once per ``interval`` seconds."""

    def __init__(self, total: int, desc: str, interval: float, clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.interval, self.clock = total, desc, interval, clock
        self.done, self.info = 0, ""
        self.t0 = self.last = clock()
        self.lines = 0

    def advance(self, n: int, info: str | None = None) -> None:
        self.done += n
        if info:
            self.info = info
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self._line(now))

    def close(self, stopped: bool = False) -> None:
        """A loop long enough to have reported says how it ended (finished, or stopped early)."""
        if self.lines:
            how = "stopped at" if stopped else "done:"
            self._write(f"{self.desc}: {how} {self.done}/{self.total} in {_clock(self.clock() - self.t0)}"
                        + (f" · {self.info}" if self.info else ""))

    def _line(self, now: float) -> str:
        elapsed = now - self.t0
        parts = [f"{self.desc}: {self.done}/{self.total}"
                 + (f" ({100.0 * self.done / self.total:.0f}%)" if self.total > 0 else "")]
        if self.info:
            parts.append(self.info)
        if self.done > 0 and elapsed > 0:
            per = elapsed / self.done
            parts.append(f"{per:.2f} s/it" if per >= 1 else f"{1 / per:.1f} it/s")
            if self.total > self.done:
                parts.append(f"~{_clock(per * (self.total - self.done))} left")
        return " · ".join(parts)

    def _write(self, line: str) -> None:
        self.lines += 1
        print(line, file=sys.stderr, flush=True)


@contextmanager
def _logged(total: int, desc: str) -> Iterator[Callable[..., None]]:
    """The non-terminal form of :func:`progress_bar`: :class:`_LogLines`, closed with how the loop
    ended."""
    interval = log_interval()
    if interval <= 0:
        yield _noop
        return
    lines = _LogLines(total, desc, interval)
    try:
        yield lines.advance
    except BaseException:
        lines.close(stopped=True)
        raise
    lines.close()


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, info=None)``; draws a rich bar on stderr when interactive, else writes a
    line per :func:`log_interval` (see the module docs).

    ``info`` (e.g. ``"loss 4.62"``) is shown after the description and replaces the previous one.
    """
    if _quiet():
        yield _noop
        return
    if not sys.stderr.isatty():
        with _logged(total, desc) as advance:
            yield advance
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as prog:
        task = prog.add_task(desc, total=total)

        def advance(n: int, info: str | None = None) -> None:
            prog.update(task, advance=n, description=f"{desc} · {info}" if info else desc)

        yield advance


@contextmanager
def null_bar() -> Iterator[Callable[..., None]]:
    """A progress bar that draws nothing (for callers that pass ``progress=False``)."""
    yield _noop


def maybe_bar(enabled: bool, total: int, desc: str) -> Any:
    """:func:`progress_bar` when ``enabled``, else :func:`null_bar`."""
    return progress_bar(total, desc) if enabled else null_bar()
