"""Does probe guidance move the *proposal*? On held-out prefixes, the sentiment probe's P(positive)
on DGLM's proposals (no decoding) at several guidance weights, both ways, and how far the guided
proposal moves from the unguided one (cosine). Separates "the guidance does not steer the
diffusion sample" from "the decoder does not carry the steered proposal into text".

    python experiments/dglm/proposal_control.py ARTIFACT PAIR_CACHE [N]
"""

from __future__ import annotations

import json
import random
import sys

import torch

import steerlab
from steerlab.methods.dglm.data import load_pairs
from steerlab.methods.dglm.steerer import DGLMOptions, DGLMSteerer
from steerlab.scoring.encoders import encode


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    test = load_pairs(sys.argv[2]).split("test")
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    picks = random.Random(0).sample(range(len(test.pairs)), n)
    prompts = [test.pairs[i].prefix for i in picks]
    probe = art.probes["sentiment"]
    st = DGLMSteerer()

    def p_pos(x: torch.Tensor) -> float:
        unit = x / x.norm(dim=-1, keepdim=True)
        return float(torch.sigmoid(((unit - probe.mean) / probe.std) @ probe.coef + probe.intercept).mean())

    base = torch.cat([st.proposal(art, p, 1.0, DGLMOptions(weight=0.0)) for p in prompts])
    out = {"unguided": {"p_positive": p_pos(base)},
           "true_continuations": {"p_positive": p_pos(test.continuation[torch.tensor(picks)].float())},
           "prefixes": {"p_positive": p_pos(torch.from_numpy(encode(prompts, art.encoder)).float())}}
    for target in ("positive", "negative"):
        for w in (5.0, 10.0, 20.0, 50.0):
            x = torch.cat([st.proposal(art, p, 1.0, DGLMOptions(guide=f"sentiment:{target}", weight=w))
                           for p in prompts])
            cos = float(torch.nn.functional.cosine_similarity(x, base, dim=-1).mean())
            out[f"{target} w{w:g}"] = {"p_positive": p_pos(x), "cos_to_unguided": cos}
            print(f"{target} w{w:g}", out[f"{target} w{w:g}"], flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
