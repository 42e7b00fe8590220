"""Speed of steering relative to no steering, measured side by side in one run.

Every case generates exactly ``new_tokens`` greedy tokens per row (``ignore_eos``), so tokens/s
compare directly:

  batch 1: unsteered, one steered layer, every layer steered (steerlab's decode loop);
  batch B: one shared vector for all rows (homogeneous); B independent vectors at different
           layers and position rules, one per row (per-row, the hard case); a SteerLM adapter
           asking each row for different attributes (when one is shipped for the model), beside
           the very same conditioned, chat-templated texts decoded unsteered (so the adapter's
           cost and the longer prompt's cost are told apart); and the same unsteered batch
           through transformers' ``generate`` (the decode loop's reference);
  DGLM:    when a DGLM artifact is given, one prompt decoded for 32, 64 and 128 tokens with it
           (prompt embedding, diffusion proposal with the artifact's default sampler, soft
           prompts, the decoder's LoRA) beside the same prompt unsteered: DGLM's run-time cost.

Two-core machines are noisy (one-layer ratios ranged 0.96–1.01 across runs of a fixed-order
benchmark), so each repeat runs every case in a rotated order, a ratio is formed *within* each
repeat (numerator and denominator measured back to back), and the report gives the median and
the min–max of those paired ratios. A ratio is ``pass`` when its median meets the target,
``fail`` when it does not, and ``noise`` when the spread of its paired ratios straddles the
target by more than the measurement can resolve, or the median is implausible (steering cannot
make decoding much faster than no steering).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from steerlab.core.apply import patch
from steerlab.core.plan import per_row, with_option
from steerlab.core.steerer import Steer
from steerlab.generation.decode import decode
from steerlab.generation.decoding import Decoding
from steerlab.generation.generate import generate
from steerlab.generation.rows import build_rows
from steerlab.methods.vectors.vector import SteeringVector
from steerlab.models.loading import LoadedModel

IMPLAUSIBLE = 1.25
"""A steered case measured faster than this multiple of its baseline is noise, not speed."""

RATIOS = {  # name: (numerator case, denominator case, target)
    "one_layer_vs_unsteered": ("b1_one_layer", "b1_unsteered", 0.97),
    "all_layers_vs_unsteered": ("b1_all_layers", "b1_unsteered", 0.93),
    "per_row_vs_homogeneous": ("bB_per_row", "bB_homogeneous", 0.90),
    "steerlm_adapter_vs_same_prompts": ("bB_steerlm_per_row", "bB_steerlm_prompts_unsteered", 0.85),
    "steerlm_per_row_vs_unsteered": ("bB_steerlm_per_row", "bB_unsteered", 0.50),
    "decode_loop_vs_hf_generate": ("bB_unsteered", "bB_hf_generate", 0.95),
    # DGLM: run time ≤ 1.3× plain decoding at 64 tokens (throughput ≥ 1 / 1.3); the paper's is ~1.7×
    "dglm_vs_unsteered_32": ("b1_dglm_32", "b1_unsteered_32", 0.70),
    "dglm_vs_unsteered_64": ("b1_dglm_64", "b1_unsteered_64", 0.77),
    "dglm_vs_unsteered_128": ("b1_dglm_128", "b1_unsteered_128", 0.80),
}
DGLM_LENGTHS = (32, 64, 128)


def _timed(fn: Callable[[], int]) -> float:
    """Tokens per second of ``fn`` (which returns the number of tokens it generated)."""
    start = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - start)


def _loop(lm: LoadedModel, prompts: list[str], steering: Any, new_tokens: int) -> int:
    with patch(lm, steering, batch_size=len(prompts) if isinstance(steering, list) else 1):
        decode(lm, prompts, Decoding(max_new_tokens=new_tokens, ignore_eos=True))
    return len(prompts) * new_tokens


def _hf(lm: LoadedModel, prompts: list[str], new_tokens: int) -> int:
    tok = lm.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True).to(lm.device)
    with torch.no_grad():
        lm.model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                          temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
    return len(prompts) * new_tokens


def _dglm_case(lm: LoadedModel, prompt: list[str], art: Any, n: int) -> Callable[[], int]:
    """One prompt, ``n`` greedy tokens, with the DGLM artifact (or unsteered), through ``generate``
    (which builds the soft prompts): everything DGLM adds at run time is inside the timing."""
    steer = Steer(art, 1.0) if art is not None else None

    def run() -> int:
        generate(lm, prompt, steer, max_new_tokens=n, ignore_eos=True, progress=False)
        return n

    return run


def per_row_vectors(lm: LoadedModel, vec: SteeringVector, batch: int, seed: int = 0) -> list[Steer]:
    """``batch`` independent random directions (each scaled like ``vec`` at its layer), at different
    layers and position rules, with different strengths: the hard per-row case."""
    gen = torch.Generator().manual_seed(seed)
    rules: list[Any] = ["all", "prompt", "generated", 2]
    steers = []
    for i in range(batch):
        layer = vec.layers[(i * 7) % len(vec.layers)]
        d = torch.randn(vec.hidden_size, generator=gen)
        d = d / d.norm() * vec.directions[layer].norm()
        one = SteeringVector({layer: d}, site=vec.site, model=vec.model, meta={"name": f"random-{i}"})
        steers.append(Steer(one, float(i % 7 - 3) or 1.0, {"positions": rules[i % len(rules)]}))
    return steers


def bench_steering(lm: LoadedModel, vec: SteeringVector, *, new_tokens: int = 32, batch: int = 32,
                   repeats: int = 7, layer: int | None = None, steerlm: Any = None,
                   dglm: Any = None) -> dict[str, Any]:
    """Tokens/s per case (median) and paired ratios with their spread and a verdict each.

    ``steerlm``: a SteerLM adapter for ``lm`` to add the SteerLM per-row case (None: left out).
    ``dglm``: a DGLM artifact for ``lm`` to add the DGLM cases (None: left out).
    """
    layer = layer if layer is not None else vec.layers[len(vec.layers) // 2]
    prompt = ["The weather this morning was"]
    prompts_b = [f"Story number {i}: the weather this morning was" for i in range(batch)]
    hetero = per_row_vectors(lm, vec, batch)
    cases: dict[str, Callable[[], int]] = {
        "b1_unsteered": lambda: _loop(lm, prompt, None, new_tokens),
        "b1_one_layer": lambda: _loop(lm, prompt, (Steer(vec, 4.0, {"layers": [layer]}),), new_tokens),
        "b1_all_layers": lambda: _loop(lm, prompt, (Steer(vec, 0.5),), new_tokens),
        "bB_unsteered": lambda: _loop(lm, prompts_b, None, new_tokens),
        "bB_homogeneous": lambda: _loop(lm, prompts_b, Steer(vec, 2.0, {"layers": [layer]}), new_tokens),
        "bB_per_row": lambda: _loop(lm, prompts_b, list(hetero), new_tokens),
        "bB_hf_generate": lambda: _hf(lm, prompts_b, new_tokens),
    }
    if steerlm is not None:
        levels = [{"humor": i % 5, "toxicity": (i // 5) % 5} for i in range(batch)]

        def steerlm_rows() -> int:
            generate(lm, prompts_b, steerlm, attributes=levels, max_new_tokens=new_tokens, ignore_eos=True,
                     batch_size=batch, progress=False, chat=True)
            return batch * new_tokens

        rows = with_option(per_row(steerlm, batch), "attributes", levels)
        texts = [p.row.text for p in build_rows(lm, prompts_b, rows, chat=True)]  # what steerlm_rows decodes

        def steerlm_prompts_unsteered() -> int:
            decode(lm, texts, Decoding(max_new_tokens=new_tokens, ignore_eos=True), add_special_tokens=False)
            return batch * new_tokens

        cases["bB_steerlm_per_row"] = steerlm_rows
        cases["bB_steerlm_prompts_unsteered"] = steerlm_prompts_unsteered
    if dglm is not None:
        for n in DGLM_LENGTHS:
            cases[f"b1_dglm_{n}"] = _dglm_case(lm, prompt, dglm, n)
            cases[f"b1_unsteered_{n}"] = _dglm_case(lm, prompt, None, n)
    names = list(cases)
    cases["b1_unsteered"]()  # warm-up
    runs: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every repeat
            runs[name].append(_timed(cases[name]))
    ratios = {}
    for key, (num, den, target) in RATIOS.items():
        if num not in runs or den not in runs:
            continue
        paired = [a / b for a, b in zip(runs[num], runs[den])]
        med = statistics.median(paired)
        lo, hi = min(paired), max(paired)
        if med > IMPLAUSIBLE or (lo < target <= hi and (hi - lo) > 0.1):
            verdict = "noise"
        else:
            verdict = "pass" if med >= target else "fail"
        ratios[key] = {"median": med, "min": lo, "max": hi, "target": target, "verdict": verdict,
                       "paired": paired}
    return {"tokens_per_s": {k: statistics.median(v) for k, v in runs.items()}, "all_runs": runs,
            "ratios": ratios, "threads": torch.get_num_threads(), "new_tokens": new_tokens, "batch": batch,
            "repeats": repeats, "layer": layer, "model": lm.name}
