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
def progress_bar(total: int, desc: str) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, info=None)``; draws a rich bar on stderr when interactive.

    ``info`` (e.g. ``"loss 4.62"``) is shown after the description and replaces the previous one.
    """
    if not _enabled():
        yield lambda n, info=None: None
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
    yield lambda n, info=None: None


def maybe_bar(enabled: bool, total: int, desc: str) -> Any:
    """:func:`progress_bar` when ``enabled``, else :func:`null_bar`."""
    return progress_bar(total, desc) if enabled else null_bar()
