"""DGLM's run-time cost against plain decoding, one prompt, 32 / 64 / 128 greedy tokens (the DGLM
cases of ``steerlab bench``, alone, for an artifact that is not shipped), paired per repeat in a
rotated order, 1 torch thread.

    python experiments/dglm/speed.py ARTIFACT [REPEATS] > experiments/dglm/results/speed.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

import steerlab
from steerlab.bench import DGLM_LENGTHS, _dglm_case
from steerlab.models.loading import load_model


def main() -> None:
    torch.set_num_threads(1)
    art = steerlab.load_artifact(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    lm = load_model("smollm2-135m")
    prompt = ["The weather this morning was"]
    cases = {f"{kind}_{n}": _dglm_case(lm, prompt, art if kind == "dglm" else None, n)
             for n in DGLM_LENGTHS for kind in ("dglm", "unsteered")}
    names = list(cases)
    cases[names[0]]()  # warm-up (loads the encoder)
    runs: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            cases[name]()
            runs[name].append(time.perf_counter() - t0)
    out = {}
    for n in DGLM_LENGTHS:
        paired = [a / b for a, b in zip(runs[f"dglm_{n}"], runs[f"unsteered_{n}"])]
        out[f"time_ratio_{n}"] = {"median": statistics.median(paired), "min": min(paired), "max": max(paired)}
    out["seconds"] = {k: statistics.median(v) for k, v in runs.items()}
    out["repeats"], out["threads"] = repeats, 1
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
