"""Exception hierarchy.

Every error a user can cause by bad input derives from :class:`SteerlabError`; the CLI prints
these as one line (no traceback) and exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SteerlabError(Exception):
    """Base class for user-facing errors (bad input, mismatched files, missing packages)."""


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
