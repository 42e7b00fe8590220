"""Rich progress bars for long loops (silenced with STEERLAB_QUIET=1 or when not a terminal)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _enabled() -> bool:
    return os.environ.get("STEERLAB_QUIET", "") not in ("1", "true") and sys.stderr.isatty()


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich bar on stderr when interactive."""
    if not _enabled():
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as prog:
        task = prog.add_task(desc, total=total)
        yield lambda n: prog.advance(task, n)


@contextmanager
def null_bar() -> Iterator[Callable[[int], None]]:
    """A progress bar that draws nothing (for callers that pass ``progress=False``)."""
    yield lambda n: None


def maybe_bar(enabled: bool, total: int, desc: str) -> Any:
    """:func:`progress_bar` when ``enabled``, else :func:`null_bar`."""
    return progress_bar(total, desc) if enabled else null_bar()
