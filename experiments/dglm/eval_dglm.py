"""DGLM on held-out prefixes (test split of the pair cache, documents never trained on):

* alignment: cosine between the proposal and the embedding of DGLM's continuation (no probe
  guidance) vs a plain-decoding continuation's; both also against the true continuation;
* the σ² knob: perplexity under the reference model, dist-3 and MAUVE (packaged-encoder features,
  against the human continuations) of DGLM at σ² = 0.05 / 0.25 / 0.5 / 1 beside plain decoding;
* control on held-out prefixes: sentiment guidance both ways at weights 5 / 10 / 20, under the
  sentiment probe and VADER (the second scorer);
* composition: on the detoxify task's prompts, probes toxicity:clean and sentiment:positive alone
  and together; both attributes are measured (alt-profanity-check, the sentiment probe).

Sampling: temperature 1, top-p 0.95, 32 new tokens, seed 0, 2 samples per prefix.

    python experiments/dglm/eval_dglm.py ARTIFACT PAIR_CACHE [N_PREFIXES] [OUT_JSON]

PAIR_CACHE is the pair cache folder the artifact was trained from (its test split is held out).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

import steerlab
from steerlab.core.steerer import Steer
from steerlab.eval.harness import load_reference, with_protocol
from steerlab.eval.metrics import distinct_n, mauve_score
from steerlab.eval.perplexity import conditional_perplexity
from steerlab.eval.protocol import QUICK, prompts_for
from steerlab.eval.tasks import TASKS
from steerlab.methods.dglm.data import load_pairs
from steerlab.methods.dglm.steerer import DGLMOptions, DGLMSteerer
from steerlab.models.loading import load_model
from steerlab.scoring.encoders import encode
from steerlab.scoring.scorers import get_scorer

GEN = {"max_new_tokens": 32, "temperature": 1.0, "top_p": 0.95, "seed": 0, "progress": False}
SAMPLES = 2


def cos_rows(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).mean())


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    pairs = load_pairs(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 96
    out_path = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    lm = load_model("smollm2-135m")
    ref = load_reference(lm)
    test = pairs.split("test")
    picks = random.Random(0).sample(range(len(test.pairs)), n)
    prompts = [test.pairs[i].prefix for i in picks]
    human = [p.continuation for p in test.pairs]  # every held-out continuation: MAUVE's reference side
    rows = [p for p in prompts for _ in range(SAMPLES)]
    steerer = DGLMSteerer()
    proposals = torch.cat([steerer.proposal(art, p, 1.0, DGLMOptions(weight=0.0)) for p in prompts]).numpy()
    prop_rows = np.repeat(proposals, SAMPLES, axis=0)
    true_rows = np.repeat(test.continuation[torch.tensor(picks)].float().numpy(), SAMPLES, axis=0)
    out: dict[str, object] = {"n_prefixes": n, "samples": SAMPLES, "generation": {k: v for k, v in GEN.items()
                                                                                 if k != "progress"},
                              "reference": ref.name, "cos_proposal_true": cos_rows(proposals, true_rows[::SAMPLES])}
    conditions = {"plain": None, **{f"dglm s2={s:g}": Steer(art, 1.0, {"weight": 0.0, "sigma2": s})
                                   for s in (0.05, 0.25, 0.5, 1.0)}}
    table = {}
    for name, steer in conditions.items():
        t0 = time.perf_counter()
        texts = steerlab.generate(lm, rows, steer, **GEN)
        secs = time.perf_counter() - t0
        emb = encode(texts, art.encoder)
        ppl = conditional_perplexity(ref, rows, texts)
        per_prompt = [texts[i:i + SAMPLES] for i in range(0, len(texts), SAMPLES)]
        table[name] = {"cos_to_proposal": cos_rows(emb, prop_rows), "cos_to_true": cos_rows(emb, true_rows),
                       "perplexity": ppl.mean,
                       "dist3": distinct_n(per_prompt, 3), "mauve": mauve_score(texts, human, encoder=art.encoder),
                       "seconds": round(secs, 1), "example": texts[0]}
        print(name, json.dumps({k: v for k, v in table[name].items() if k != "example"}), flush=True)
    out["heldout"] = table
    # control on held-out prefixes (documents never trained on)
    sent_probe, vader = get_scorer("sentiment"), get_scorer("vader")
    ctrl = {}
    for target in ("positive", "negative"):
        for w in (0.0, 5.0, 10.0, 20.0):
            if w == 0.0 and target == "negative":
                continue
            texts = steerlab.generate(lm, rows, Steer(art, 1.0, {"guide": f"sentiment:{target}", "weight": w}), **GEN)
            key = "unguided" if w == 0.0 else f"{target} w{w:g}"
            ctrl[key] = {"sentiment_probe": float(np.mean(sent_probe(texts))), "vader": float(np.mean(vader(texts))),
                         "perplexity": conditional_perplexity(ref, rows, texts).mean}
            print("control", key, ctrl[key], flush=True)
    out["control_heldout"] = ctrl
    # composition on the detoxify task's prompts
    task = TASKS.get("detoxify")
    dprompts = prompts_for(task, with_protocol(QUICK, n_prompts=24))
    drows = [p for p in dprompts for _ in range(SAMPLES)]
    tox, sent = get_scorer("toxicity"), get_scorer("sentiment")
    comp = {}
    for name, guide in (("none", None), ("toxicity:clean", ["toxicity:clean"]),
                        ("sentiment:positive", ["sentiment:positive"]),
                        ("both", ["toxicity:clean", "sentiment:positive"])):
        steer = Steer(art, 1.0, {"weight": 10.0, "guide": guide}) if guide else Steer(art, 1.0, {"weight": 0.0})
        texts = steerlab.generate(lm, drows, steer, **{**GEN, "max_new_tokens": 20})
        comp[name] = {"toxicity": float(np.mean(tox(texts))), "sentiment": float(np.mean(sent(texts)))}
        print("compose", name, comp[name], flush=True)
    out["composition"] = {"prompts": len(dprompts), "weight": 10.0, "results": comp}
    print(json.dumps(out, indent=1))
    if out_path:
        out_path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
