"""Does a DGLM decoder follow its soft prompts? Three quick readings on held-out prefixes:

1. spread: how much the prompt generator's output varies across different continuation embeddings
   (relative spread, mean pairwise cosine; a collapsed generator makes one constant prompt);
2. the σ² knob: cosine between the proposal and the continuation at σ² = 0.05 vs 1 (if the decoder
   reads the prompt, the proposal's pull fades as σ² → 1);
3. probe guidance: the sentiment probe's mean on continuations guided to positive vs negative.

    python experiments/dglm/follow_check.py ARTIFACT PAIR_CACHE [N]
"""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import torch

import steerlab
from steerlab.core.steerer import Steer
from steerlab.methods.dglm.data import load_pairs
from steerlab.methods.dglm.decoder import noised
from steerlab.methods.dglm.steerer import DGLMOptions, DGLMSteerer
from steerlab.models.loading import load_model
from steerlab.scoring.encoders import encode
from steerlab.scoring.scorers import get_scorer

GEN = {"max_new_tokens": 32, "temperature": 1.0, "top_p": 0.95, "seed": 0, "progress": False}


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    data = load_pairs(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    out: dict[str, float] = {}
    e = data.split("validation").continuation[:64].float()
    with torch.no_grad():
        for s2 in (0.05, 1.0):
            sig = torch.full((64,), s2)
            flat = art.generator(noised(e, sig, torch.Generator().manual_seed(0)), sig).reshape(64, -1)
            spread = (flat - flat.mean(0, keepdim=True)).norm(dim=-1).mean() / flat.norm(dim=-1).mean()
            cos = torch.nn.functional.cosine_similarity(flat[:, None], flat[None], dim=-1).mean()
            out[f"spread_s2={s2:g}"], out[f"pairwise_cos_s2={s2:g}"] = float(spread), float(cos)
    test = data.split("test")
    prompts = [test.pairs[i].prefix for i in random.Random(0).sample(range(len(test.pairs)), n)]
    lm = load_model("smollm2-135m")
    steerer = DGLMSteerer()
    prop = torch.cat([steerer.proposal(art, p, 1.0, DGLMOptions(weight=0.0)) for p in prompts]).numpy()
    prop = prop / np.linalg.norm(prop, axis=1, keepdims=True)
    for s2 in (0.05, 1.0):
        texts = steerlab.generate(lm, prompts, Steer(art, 1.0, {"weight": 0.0, "sigma2": s2}), **GEN)
        emb = encode(texts, art.encoder)
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        out[f"cos_to_proposal_s2={s2:g}"] = float((emb * prop).sum(1).mean())
    score = get_scorer("sentiment")
    for target in ("positive", "negative"):
        texts = steerlab.generate(lm, prompts, Steer(art, 1.0, {"guide": f"sentiment:{target}", "weight": 20.0}),
                                  **GEN)
        out[f"sentiment_probe_{target}_w20"] = float(np.mean(score(texts)))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
