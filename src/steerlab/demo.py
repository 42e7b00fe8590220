"""The main job (``make demo`` / ``steerlab demo``): a sentiment vector on the default model.

1. Extract a sentiment vector from the shipped contrast pairs (every layer, one pass).
2. Pick the layer: steer each candidate layer alone at +k and −k, score with VADER, keep the layer
   with the widest spread.
3. Generate for neutral prompts at −k, 0, +k (one per-row-steered batch) and report the mean
   sentiment per strength, with samples.
4. Save the artifact (with the sweep in its eval card), a llama.cpp GGUF and ``results.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from steerlab.core.artifact import update_eval_card
from steerlab.core.atomic import atomic_file, prepare_folder
from steerlab.core.steerer import Steer
from steerlab.data.pairs import load_prompts
from steerlab.defaults import DEFAULT_MODEL
from steerlab.generation.generate import generate
from steerlab.methods.vectors import export_gguf, extract, sweep_layers
from steerlab.models.loading import LoadedModel, load_model
from steerlab.scoring.scorers import vader

DEMO_FILES = ("sentiment-vector.gguf", "results.json")
"""The files the demo writes into its output folder (besides the ``sentiment-vector`` artifact)."""


def run_demo(
    model: str = DEFAULT_MODEL,
    out_dir: str | Path = "results/demo",
    *,
    strength: float = 6.0,
    n_prompts: int = 10,
    samples: int = 3,
    max_new_tokens: int = 32,
    candidate_layers: tuple[int, ...] | None = None,
    seed: int = 0,
    lm: LoadedModel | None = None,
) -> dict[str, Any]:
    """Run the demo and return every number it printed (also written to ``results.json``)."""
    out = Path(out_dir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    lm = lm or load_model(model)
    timings["load_s"] = lm.load_seconds
    t = time.perf_counter()
    vec = extract(lm, "sentiment", name="sentiment")
    timings["extract_s"] = time.perf_counter() - t

    prompts = load_prompts("neutral")[:n_prompts]
    layers = list(candidate_layers or range(lm.num_layers // 6, lm.num_layers // 2 + 1, 2))
    t = time.perf_counter()
    up = sweep_layers(lm, vec, prompts, vader, strength=strength, layers=layers, max_new_tokens=16)
    down = sweep_layers(lm, vec, prompts, vader, strength=-strength, layers=layers, max_new_tokens=16)
    spread = {la: up.effects[la] - down.effects[la] for la in layers}
    layer = max(spread, key=lambda la: spread[la])
    timings["layer_sweep_s"] = time.perf_counter() - t

    strengths = [-strength, 0.0, strength]
    rows, texts, keys = [], [], []
    for s in strengths:
        for p in prompts:
            for k in range(samples):
                texts.append(p)
                rows.append(Steer(vec, s, {"layers": [layer]}) if s else None)
                keys.append((s, p, k))
    t = time.perf_counter()
    outs = generate(lm, texts, steering=rows, max_new_tokens=max_new_tokens, temperature=1.0,
                    top_p=0.9, seed=seed)
    timings["generate_s"] = time.perf_counter() - t
    scores = vader(outs)
    table = []
    for s in strengths:
        sc = [v for (ks, _, _), v in zip(keys, scores) if ks == s]
        samples_s = [o for (ks, _, k), o in zip(keys, outs) if ks == s and k == 0]
        table.append({"strength": s, "mean_sentiment": sum(sc) / len(sc),
                      "positive_share": sum(v > 0.05 for v in sc) / len(sc),
                      "negative_share": sum(v < -0.05 for v in sc) / len(sc),
                      "n": len(sc), "samples": list(zip(prompts, samples_s))[:3]})
    timings["total_s"] = time.perf_counter() - t0

    vec.meta["eval_card"] = {
        "demo": {"layer": layer, "strength": strength,
                 "mean_sentiment": {str(r["strength"]): r["mean_sentiment"] for r in table}},
        "layer_sweep": {"strength": strength, "spread": {str(k): v for k, v in spread.items()},
                        "plus": up.to_dict(), "minus": down.to_dict()},
    }
    # The demo refreshes its own outputs (make demo is idempotent); anything else in the folder is
    # left alone, and a foreign file or folder under one of these names is refused, never replaced.
    prepare_folder(out, DEMO_FILES, overwrite=True, what="demo results")
    artifact_dir = vec.save(out / "sentiment-vector", overwrite=True)
    gguf_path = export_gguf(vec.select([layer]), out / "sentiment-vector.gguf", strength=strength, overwrite=True)
    result = {"model": lm.name, "layer": layer, "strengths": strengths, "table": table,
              "layer_spread": spread, "timings": timings, "artifact": str(artifact_dir),
              "gguf": str(gguf_path), "n_prompts": n_prompts, "samples_per_prompt": samples,
              "max_new_tokens": max_new_tokens, "seed": seed, "scorer": "vader"}
    import json

    with atomic_file(out / "results.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    update_eval_card(artifact_dir, {"demo_results": str(out / "results.json")})
    return result
