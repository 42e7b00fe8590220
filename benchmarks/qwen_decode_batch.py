"""Side by side on one loaded model (qwen2.5-1.5b by default): sampled generation of 64 rows x 20
tokens from the sentiment task's neutral openings, batch 32 vs 64, and the prefill computing the
logits of the last position only (the default) vs every prompt position (the old behaviour).

    .venv/bin/python benchmarks/qwen_decode_batch.py [MODEL]   # ~25 min for qwen2.5-1.5b on 2 cores
"""

from __future__ import annotations

import sys
import time
from typing import Any

import steerlab
import steerlab.generation.decode as decode_mod
from steerlab.data.pairs import load_prompts
from steerlab.eval.tasks import TASKS

CASES = ((32, False), (32, True), (64, True), (32, False), (32, True))  # (batch, last-position logits only)


def main() -> None:
    lm = steerlab.load_model(sys.argv[1] if len(sys.argv) > 1 else "qwen2.5-1.5b")
    prompts = load_prompts(TASKS.get("sentiment-negative").prompts)[:32] * 2
    keep = decode_mod.prefill_kwargs

    def every_position(lm: Any) -> dict[str, Any]:
        return {}

    times: dict[tuple[int, bool], list[float]] = {}
    for batch, last in CASES:
        decode_mod.prefill_kwargs = keep if last else every_position
        t = time.perf_counter()
        steerlab.generate(lm, prompts, None, max_new_tokens=20, temperature=1.0, top_p=0.9, seed=0,
                          batch_size=batch, progress=False, ignore_eos=True)
        times.setdefault((batch, last), []).append(time.perf_counter() - t)
        print(f"batch {batch} last-only {last}: {times[(batch, last)][-1]:.1f} s", flush=True)
    decode_mod.prefill_kwargs = keep
    base = min(times[(32, False)])
    for (batch, last), v in times.items():
        print(f"batch {batch:3d} last-only {last!s:5}: best {min(v):6.1f} s, {min(v) / base:.2f}x batch 32 all-logits")


if __name__ == "__main__":
    main()
