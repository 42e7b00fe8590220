"""A first look at a DGLM artifact on held-out prefixes (test split of the pair cache):

* alignment: cosine between the sampled proposal and the embedding of (a) DGLM's continuation
  with no probe guidance, (b) plain decoding's continuation — DGLM's should be closer;
* control: the shipped sentiment scorer (VADER) on continuations at guidance weight 0 / +w / −w.

    python experiments/dglm/first_look.py ARTIFACT_DIR [N_PROMPTS] [OUT_JSON]
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import torch

import steerlab
from steerlab.core.steerer import Steer
from steerlab.methods.dglm.data import build_pairs
from steerlab.methods.dglm.diffusion import sample
from steerlab.models.loading import load_model
from steerlab.scoring.encoders import encode
from steerlab.scoring.scorers import get_scorer


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    lm = load_model("smollm2-135m")
    test = build_pairs(lm.tokenizer, lm.name, encoder=art.encoder).split("test")
    picks = random.Random(0).sample(range(len(test.pairs)), n)
    prompts = [test.pairs[i].prefix for i in picks]
    gen = {"max_new_tokens": 32, "progress": False}
    plain = steerlab.generate(lm, prompts, **gen)
    dglm = steerlab.generate(lm, prompts, Steer(art, 1.0, {"weight": 0.0}), **gen)
    cond = torch.from_numpy(encode(prompts, art.encoder)).float()
    proposals = torch.cat([sample(art.diffusion, cond[i:i + 1], steps=25, generator=torch.Generator().manual_seed(0))
                           for i in range(n)])  # the proposals the steerer made (seed 0)
    cos = torch.nn.functional.cosine_similarity
    e_plain = torch.from_numpy(encode(plain, art.encoder)).float()
    e_dglm = torch.from_numpy(encode(dglm, art.encoder)).float()
    e_true = test.continuation[torch.tensor(picks)]
    out: dict[str, object] = {
        "n": n,
        "cos_proposal_dglm": float(cos(proposals, e_dglm).mean()),
        "cos_proposal_plain": float(cos(proposals, e_plain).mean()),
        "cos_true_dglm": float(cos(e_true, e_dglm).mean()),
        "cos_true_plain": float(cos(e_true, e_plain).mean()),
        "cos_true_proposal": float(cos(e_true, proposals).mean()),
    }
    vader = get_scorer("vader")
    for w in (0.0, 5.0, 20.0):
        for target in ("positive", "negative"):
            texts = steerlab.generate(lm, prompts, Steer(art, 1.0, {"guide": f"sentiment:{target}", "weight": w}),
                                      **gen)
            out[f"vader_{target}_w{w:g}"] = sum(vader(texts)) / n
    out["vader_plain"] = sum(vader(plain)) / n
    out["examples"] = [{"prefix": p, "plain": a, "dglm": b} for p, a, b in list(zip(prompts, plain, dglm))[:4]]
    print(json.dumps(out, indent=1))
    if len(sys.argv) > 3:
        Path(sys.argv[3]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
