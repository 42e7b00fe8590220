"""Speed of steering relative to no steering, measured side by side in one run.

Cases (fixed-length greedy generation, so every case produces the same number of tokens):
  batch 1: unsteered, one steered layer, every layer steered;
  batch B: one shared spec for all rows (homogeneous) vs a different vector and strength per row.
Cases are interleaved over repeats and the median is kept, because 2-core machines are noisy.
Ratios (steered / unsteered tokens per second) are the numbers to report.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from steerlab.core.steerer import Steer, patch
from steerlab.methods.vectors.vector import SteeringVector
from steerlab.models.loading import LoadedModel


def _run(lm: LoadedModel, prompts: list[str], steering: Any, batch: int, new_tokens: int) -> float:
    """Tokens per second for one fixed-length greedy generation."""
    tok = lm.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True).to(lm.device)
    handle = patch(lm, steering, batch_size=batch)
    try:
        start = time.perf_counter()
        with torch.no_grad():
            lm.model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                              do_sample=False, temperature=None, top_p=None, top_k=None,
                              pad_token_id=tok.pad_token_id)
        elapsed = time.perf_counter() - start
    finally:
        handle.remove()
    return len(prompts) * new_tokens / elapsed


def bench_steering(lm: LoadedModel, vec: SteeringVector, *, new_tokens: int = 32, batch: int = 32,
                   repeats: int = 3, layer: int | None = None) -> dict[str, Any]:
    """Median tokens/s of each case and the ratios the issue targets."""
    layer = layer if layer is not None else vec.layers[len(vec.layers) // 2]
    one = [Steer(vec, 4.0, {"layers": [layer]})]
    every = [Steer(vec, 0.5)]
    prompt = ["The weather this morning was"]
    prompts_b = [f"Story number {i}: the weather this morning was" for i in range(batch)]
    hetero = [Steer(vec * (1.0 + 0.01 * i), float(i % 7 - 3), {"layers": [layer]}) for i in range(batch)]
    homo = Steer(vec, 2.0, {"layers": [layer]})
    cases = {
        "b1_unsteered": lambda: _run(lm, prompt, None, 1, new_tokens),
        "b1_one_layer": lambda: _run(lm, prompt, tuple(one), 1, new_tokens),
        "b1_all_layers": lambda: _run(lm, prompt, tuple(every), 1, new_tokens),
        f"b{batch}_homogeneous": lambda: _run(lm, prompts_b, homo, 1, new_tokens),
        f"b{batch}_per_row": lambda: _run(lm, prompts_b, hetero, batch, new_tokens),
    }
    cases["b1_unsteered"]()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        "one_layer_vs_unsteered": med["b1_one_layer"] / med["b1_unsteered"],
        "all_layers_vs_unsteered": med["b1_all_layers"] / med["b1_unsteered"],
        "per_row_vs_homogeneous": med[f"b{batch}_per_row"] / med[f"b{batch}_homogeneous"],
    }
    targets = {"one_layer_vs_unsteered": 0.97, "all_layers_vs_unsteered": 0.93,
               "per_row_vs_homogeneous": 0.9}
    return {"tokens_per_s": med, "all_runs": times, "ratios": ratios, "targets": targets,
            "threads": torch.get_num_threads(), "new_tokens": new_tokens, "batch": batch,
            "repeats": repeats, "layer": layer, "model": lm.name}
