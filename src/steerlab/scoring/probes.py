"""Embedding probes: sentence encoder + logistic regression, trained on labelled text.

Used as attribute scorers (``score(texts) -> P(positive class)``). A probe is saved as a directory
``probe_config.json`` (encoder, labels, training data, held-out accuracy) + ``probe_weights.safetensors``
(coefficients, intercept, standardisation) — no pickle, so probes can be shared safely.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from steerlab.core.atomic import atomic_dir
from steerlab.errors import ArtifactError, DataError, SteerlabError
from steerlab.scoring.encoders import DEFAULT_ENCODER, encode
from steerlab.scoring.linear import LinearHead

PROBE_CONFIG = "probe_config.json"
PROBE_WEIGHTS = "probe_weights.safetensors"


@dataclass
class EmbeddingProbe:
    """P(positive) = ``sigmoid(head(embed(text)))``: a standardised linear head on a packaged
    sentence encoder's embeddings."""

    encoder: str
    head: LinearHead
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        z = self.head(encode(list(texts), self.encoder))  # (N, D) -> (N,)
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))]

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the probe folder atomically; an earlier probe there is replaced only with ``overwrite=True``."""
        target = Path(path)
        with atomic_dir(target, {PROBE_CONFIG, PROBE_WEIGHTS}, overwrite=overwrite, what="probe") as tmp:
            (tmp / PROBE_CONFIG).write_text(json.dumps({"kind": "steerlab-embedding-probe", "format_version": 1,
                                                        "encoder": self.encoder, "intercept": self.head.intercept,
                                                        "info": self.info}, indent=2) + "\n")
            save_file(self.head.tensors(), str(tmp / PROBE_WEIGHTS))
        return target

    @classmethod
    def load(cls, path: str | Path, *, encoder: str | None = None) -> EmbeddingProbe:
        """Read a probe folder; its encoder must be a packaged one unless ``encoder`` overrides it."""
        from steerlab.scoring.encoders import packaged_encoder

        root = Path(path)
        try:
            cfg = json.loads((root / PROBE_CONFIG).read_text(encoding="utf-8"))
            w = load_file(str(root / PROBE_WEIGHTS))
            if not isinstance(cfg, dict):
                raise ValueError("config is not an object")
            head = LinearHead.from_tensors(w, "", cfg["intercept"])
            info = cfg.get("info", {})
        except SteerlabError as e:
            raise ArtifactError(f"{root} is not a readable probe: {e}") from None
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
            raise ArtifactError(f"{root} is not a readable probe: {type(e).__name__}: {e}") from None
        enc = packaged_encoder(cfg.get("encoder"), str(root), encoder)
        return cls(enc, head, info if isinstance(info, dict) else {})


def train_probe(texts: Sequence[str], labels: Sequence[int], *, encoder: str = DEFAULT_ENCODER,
                holdout: float = 0.2, seed: int = 0, c: float = 1.0, source: str = "") -> EmbeddingProbe:
    """Fit a logistic-regression probe; reports held-out accuracy in ``info``."""
    from sklearn.linear_model import LogisticRegression

    if len(texts) != len(labels) or len(set(labels)) != 2 or set(labels) - {0, 1}:
        raise DataError("a probe needs texts with 0/1 labels of both classes")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    cut = int(len(texts) * (1 - holdout))
    x = encode([texts[i] for i in order])
    y = np.asarray([labels[i] for i in order])
    head, _ = LinearHead.fit(LogisticRegression(C=c, max_iter=3000), x[:cut], y[:cut])
    acc = float(((head(x[cut:]) > 0) == y[cut:]).mean()) if cut < len(texts) else float("nan")
    majority = float(max(y[cut:].mean(), 1 - y[cut:].mean())) if cut < len(texts) else float("nan")
    info = {"source": source, "n_train": cut, "n_heldout": len(texts) - cut, "heldout_accuracy": acc,
            "majority_baseline": majority, "seed": seed, "C": c}
    return EmbeddingProbe(encoder, head, info)
