"""Pick where to steer: score each layer's effect on generations, in one batched pass.

Every (prompt, layer) pair becomes one batch row steered at that layer alone, plus unsteered rows
for the baseline, so the whole sweep is a single per-row-steered ``generate`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from steerlab.core.model import LoadedModel
from steerlab.core.steerer import Steer
from steerlab.generation.generate import generate
from steerlab.methods.vectors.vector import SteeringVector

Scorer = Callable[[Sequence[str]], Sequence[float]]


@dataclass
class LayerSweep:
    """Mean score per layer, and the unsteered baseline."""

    strength: float
    baseline: float
    scores: dict[int, float]
    samples: dict[int, list[str]] = field(default_factory=dict)

    @property
    def effects(self) -> dict[int, float]:
        """Score change versus unsteered, per layer."""
        return {k: v - self.baseline for k, v in self.scores.items()}

    def best(self) -> int:
        """The layer whose steering moved the score most in the strength's direction."""
        sign = 1.0 if self.strength >= 0 else -1.0
        return max(self.effects, key=lambda k: sign * self.effects[k])

    def to_dict(self) -> dict[str, Any]:
        return {"strength": self.strength, "baseline": self.baseline,
                "scores": {str(k): v for k, v in self.scores.items()},
                "effects": {str(k): v for k, v in self.effects.items()}, "best": self.best()}


def sweep_layers(
    lm: LoadedModel,
    vector: SteeringVector,
    prompts: Sequence[str],
    scorer: Scorer,
    *,
    strength: float,
    layers: Sequence[int] | None = None,
    max_new_tokens: int = 24,
    batch_size: int = 32,
    **gen: Any,
) -> LayerSweep:
    """Steer each layer alone with ``strength`` and score the continuations of ``prompts``."""
    layer_list = list(layers) if layers is not None else vector.layers
    rows: list[Any] = []
    texts: list[str] = []
    for layer in [None, *layer_list]:
        for p in prompts:
            texts.append(p)
            rows.append(None if layer is None else Steer(vector, strength, {"layers": [layer]}))
    outs = generate(lm, texts, steering=rows, max_new_tokens=max_new_tokens, batch_size=batch_size, **gen)
    scores = list(scorer(outs))
    n = len(prompts)
    base = sum(scores[:n]) / n
    result: dict[int, float] = {}
    samples: dict[int, list[str]] = {}
    for i, layer in enumerate(layer_list, start=1):
        chunk = scores[i * n:(i + 1) * n]
        result[layer] = sum(chunk) / n
        samples[layer] = outs[i * n:(i + 1) * n]
    return LayerSweep(strength, base, result, samples)
