"""DGLM's control / fluency trade-off on the eval harness's neutral RT plot openings: for a few
noise levels σ², unguided vs guided positive / negative at a few weights — sentiment probe,
VADER and perplexity (qwen2.5-0.5b), 2 samples × 20 tokens, top-p 0.9. Plain decoding and the
prompting baseline's rows are printed first for reference.

    python experiments/dglm/harness_control.py ARTIFACT [N_PROMPTS] [SIGMA2,...] [WEIGHT,...] [GAIN,...]

GAIN multiplies the prompt generator's content term (1 = as trained): does amplifying what the
soft prompt says about the proposal make the decoder follow it (and the guidance) more?
"""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import torch

import steerlab
from steerlab.core.steerer import Steer
from steerlab.data.pairs import load_prompts
from steerlab.eval.perplexity import conditional_perplexity
from steerlab.models.loading import load_model
from steerlab.scoring.scorers import get_scorer

GEN = {"max_new_tokens": 20, "temperature": 1.0, "top_p": 0.9, "seed": 0, "progress": False}


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    sigmas = [float(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0.05, 0.3, 0.5]
    weights = [float(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else [20.0, 40.0]
    gains = [float(s) for s in sys.argv[5].split(",")] if len(sys.argv) > 5 else [1.0]
    prompts = load_prompts("sentiment_neutral")[:n]
    rows = [p for p in prompts for _ in range(2)]
    lm = load_model("smollm2-135m")
    ref = load_model("qwen2.5-0.5b")
    probe, vader = get_scorer("sentiment"), get_scorer("vader")
    out = {}

    def report(name: str, texts: list[str]) -> None:
        full = [r + t for r, t in zip(rows, texts)]  # the harness scores prompt + continuation
        ppl = conditional_perplexity(ref, rows, texts)
        out[name] = {"probe": float(np.mean(probe(full))), "vader": float(np.mean(vader(full))),
                     "ppl": ppl.mean, "ppl_total": ppl.total}
        print(f"{name:36s} " + " ".join(f"{k} {v:7.3f}" for k, v in out[name].items()), flush=True)

    report("plain", steerlab.generate(lm, rows, **GEN))
    for gain in gains:
        a = copy.deepcopy(art)
        with torch.no_grad():
            a.generator.gain.mul_(gain)
        tag = f"gain x{gain:g} " if gain != 1.0 else ""
        for s2 in sigmas:
            report(f"{tag}s2={s2:g} unguided", steerlab.generate(
                lm, rows, Steer(a, 1.0, {"weight": 0.0, "sigma2": s2}), **GEN))
            for w in weights:
                for t in ("positive", "negative"):
                    st = Steer(a, 1.0, {"guide": f"sentiment:{t}", "weight": w, "sigma2": s2})
                    report(f"{tag}s2={s2:g} {t} w{w:g}", steerlab.generate(lm, rows, st, **GEN))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
