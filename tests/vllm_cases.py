"""The steering specs the vLLM parity checks run (tests/test_vllm.py and, on a GPU,
benchmarks/vllm_gpu_parity.py), and steerlab's own engine's texts for them. No pytest import, so
the benchmark runs where pytest is not installed."""

from __future__ import annotations

from typing import Any

MAX_TOKENS = 16
PROMPTS = ["The movie was", "My neighbour told me that", "Today the weather", "I think the new restaurant"]
SPECS: list[Any] = [
    None,
    [{"artifact": "sentiment-vec", "strength": 4, "layers": [9]}],
    [{"artifact": "sentiment-vec", "strength": -4, "layers": [6, 12], "positions": "generated"}],
    [{"artifact": "sentiment-vec", "strength": 4, "layers": [9], "positions": "prompt"}],
    [{"artifact": "sentiment-vec", "strength": 1, "layers": [9, 10], "operator": "ablate"}],
    [{"artifact": "formality-vec", "strength": 1, "layers": [10], "operator": "clamp", "positions": 3}],
    [{"artifact": "lmsteer-sentiment", "strength": 3}],
    [{"artifact": "lmsteer-toxicity", "strength": -3, "positions": "generated"}],
    [{"artifact": "sentiment-vec", "strength": 3, "layers": [9]}, {"artifact": "lmsteer-sentiment", "strength": 2}],
]
MIXED = [[{"artifact": "sentiment-vec", "strength": 0.5 * (i + 1) * (-1) ** i, "layers": [4 + i % 20]}]
         if i % 2 else [{"artifact": "lmsteer-sentiment", "strength": 0.25 * i - 4}] for i in range(32)]


def hf_texts(items: list[list[Any]]) -> list[str]:
    """Greedy texts of steerlab's own engine for [prompt, steering] pairs (the parity reference)."""
    import steerlab
    from steerlab.core.steerer import Steer
    from steerlab.models.loading import load_model
    from steerlab.service.resolve import ArtifactStore

    lm = load_model("smollm2-135m")
    store = ArtifactStore()
    out = []
    for prompt, spec in items:
        steers = tuple(Steer(store.get(s["artifact"]), s.get("strength", 1.0),
                             {k: v for k, v in s.items() if k not in ("artifact", "strength")}) for s in spec or [])
        out.append(steerlab.generate(lm, [prompt], steers or None, max_new_tokens=MAX_TOKENS, progress=False)[0])
    return out
