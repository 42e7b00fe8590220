"""Does toxicity guidance move DGLM's *proposal* on the detoxify task's prompts (openings of
offensive tweets)? The artifact's toxicity probe P(toxic) on: the prompts themselves, the
unguided proposals, and proposals guided towards ``clean`` at several weights (with their cosine
to the unguided proposal). No decoding: separates the diffusion side from the decoder side.

    python experiments/dglm/proposal_toxicity.py ARTIFACT [N_PROMPTS]
"""

from __future__ import annotations

import json
import sys

import torch

import steerlab
from steerlab.data.pairs import load_prompts
from steerlab.methods.dglm.steerer import DGLMOptions, DGLMSteerer
from steerlab.scoring.encoders import encode


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    prompts = load_prompts("toxic")[:n]
    probe = art.probes["toxicity"]
    st = DGLMSteerer()

    def p_toxic(x: torch.Tensor) -> float:  # x: (N, D)
        unit = x / x.norm(dim=-1, keepdim=True)
        return float(torch.sigmoid(((unit - probe.mean) / probe.std) @ probe.coef + probe.intercept).mean())

    base = torch.cat([st.proposal(art, p, 1.0, DGLMOptions(weight=0.0)) for p in prompts])
    out = {"prompts": {"p_toxic": p_toxic(torch.from_numpy(encode(prompts, art.encoder)).float())},
           "unguided": {"p_toxic": p_toxic(base)}}
    for w in (10.0, 20.0, 40.0, 80.0):
        x = torch.cat([st.proposal(art, p, 1.0, DGLMOptions(guide="toxicity:clean", weight=w)) for p in prompts])
        out[f"clean w{w:g}"] = {"p_toxic": p_toxic(x),
                                "cos_to_unguided": float(torch.nn.functional.cosine_similarity(x, base).mean())}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
