"""Identify a model so an artifact can refuse to run on the wrong one.

A fingerprint stores the shape facts steering depends on (hidden size, layer count, vocabulary)
plus two hashes: one of the architecture config and one of the token-embedding weights. Shapes
must match exactly; a hash mismatch (e.g. a fine-tune of the same base) is refused unless the
caller opts in with ``allow_mismatch=True``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from steerlab.errors import ModelMismatchError

# Config keys that define the architecture; loader-specific keys (paths, dtypes, quantisation) are
# excluded so the same model loaded from GGUF or from a safetensors cache hashes the same.
_ARCH_KEYS = (
    "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "vocab_size", "head_dim", "hidden_act", "rms_norm_eps",
    "layer_norm_epsilon", "n_embd", "n_layer", "n_head", "tie_word_embeddings",
)


@dataclass(frozen=True)
class ModelFingerprint:
    """What an artifact records about the model it was made on."""

    name: str
    model_type: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    config_hash: str
    weights_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "artifact") -> ModelFingerprint:
        """Rebuild a fingerprint, refusing anything but a complete one with the right types."""
        from steerlab.errors import ArtifactError

        if not isinstance(d, dict):
            raise ArtifactError(f"{source}: the model fingerprint must be an object, got {d!r}")
        missing = [k for k in cls.__dataclass_fields__ if k not in d]
        if missing:
            raise ArtifactError(f"{source}: the model fingerprint lacks {', '.join(missing)}")
        ints = ("hidden_size", "num_layers", "vocab_size")
        for k in cls.__dataclass_fields__:
            v = d[k]
            ok = (isinstance(v, int) and not isinstance(v, bool) and v > 0) if k in ints else isinstance(v, str)
            if not ok:
                want = "a positive integer" if k in ints else "a string"
                raise ArtifactError(f"{source}: model fingerprint field {k!r} must be {want}, got {v!r}")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def check(self, other: ModelFingerprint, *, allow_mismatch: bool = False) -> None:
        """Raise :class:`ModelMismatchError` if an artifact for ``self`` cannot run on ``other``."""
        for field in ("hidden_size", "num_layers"):
            mine, theirs = getattr(self, field), getattr(other, field)
            if mine != theirs:
                raise ModelMismatchError(
                    f"artifact was made for {self.name!r} ({field}={mine}) but the model is "
                    f"{other.name!r} ({field}={theirs})"
                )
        if allow_mismatch:
            return
        if self.config_hash != other.config_hash or self.weights_hash != other.weights_hash:
            raise ModelMismatchError(
                f"artifact was made for {self.name!r} but the model is {other.name!r} "
                f"(same shapes, different weights hash {self.weights_hash[:12]} vs "
                f"{other.weights_hash[:12]}); to use it anyway pass allow_mismatch=True "
                f"(CLI: --allow-mismatch)"
            )


def config_hash(config: Any) -> str:
    """sha256 over the architecture-defining keys of a transformers config."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    picked = {k: d[k] for k in _ARCH_KEYS if k in d}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def weights_hash(embedding: nn.Module | torch.Tensor) -> str:
    """sha256 of the token-embedding matrix (V, H) — a module's ``weight`` or the tensor itself, as
    read from a checkpoint — as float32 bytes (cheap, and unique per checkpoint)."""
    weight: torch.Tensor = embedding if isinstance(embedding, torch.Tensor) else embedding.weight  # type: ignore[assignment]
    w = weight.detach().to(torch.float32).contiguous().cpu()  # (V, H)
    return hashlib.sha256(w.numpy().tobytes()).hexdigest()
