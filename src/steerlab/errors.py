"""Exception hierarchy.

Every error a user can cause by bad input derives from :class:`SteerlabError`; the CLI prints
these as one line (no traceback) and exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class SteerlabError(Exception):
    """Base class for user-facing errors (bad input, mismatched files, missing packages).

    ``param`` names the input at fault when the code that raised knows it (a validator's field
    name, ``"attributes"``...); front ends report it (the HTTP API's ``param``) instead of
    guessing from the message."""

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        self.param = param


@contextmanager
def about(param: str) -> Iterator[None]:
    """Errors raised inside name ``param`` as the input at fault, unless they already name one."""
    try:
        yield
    except SteerlabError as exc:
        if exc.param is None:
            exc.param = param
        raise


class ModelNotFoundError(SteerlabError):
    """A model name or path that resolves to nothing."""


class ModelMismatchError(SteerlabError):
    """An artifact made for one model applied to another."""


class ArtifactError(SteerlabError):
    """A missing, malformed, corrupt or truncated artifact directory or file."""


class DataError(SteerlabError):
    """Malformed or empty training / prompt data."""


class LayerError(SteerlabError):
    """A layer index or intervention site that does not exist in the model."""


class MissingDependencyError(SteerlabError):
    """An optional extra is not installed; the message says what to install."""


class OutputError(SteerlabError):
    """An output path that would destroy something steerlab did not write, or cannot be written."""


class CheckpointMismatchError(SteerlabError):
    """A training checkpoint made with other data or settings than the run asked to resume it."""


class NonFiniteError(SteerlabError):
    """A number that is NaN, infinite or too large to compute with (an input, or a generation that
    overflowed)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long job; ``str()`` says what was kept (e.g. the checkpoint to resume from)."""
