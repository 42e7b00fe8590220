"""Probe guidance preconditioned by the embedding covariance Σ instead of its diagonal (std²).

For a linear probe ``w`` the guidance step ``Σ w`` is the natural-gradient direction under the data
distribution; for a well-fitted logistic probe it points along the class-mean difference (the
contrastive direction activation steering uses), while the diagonal step ``std² ⊙ w`` can still
find directions that satisfy the probe without changing meaning (`proposal_toxicity.py`: P(toxic)
→ 1e-12 at cosine 0.98 to the unguided proposal). Σ is estimated from the pair cache's training
continuations (unit-normalised, as the probes read them). The library's
``ProbeGuide.precondition`` is swapped for the Σ version here; proposal statistics and text cells
as in `harness_control.py`.

    python experiments/dglm/cov_guidance.py ARTIFACT PAIR_CACHE [N_PROMPTS] [sigma|diag] [sentiment|toxicity]

``diag`` keeps the library's diagonal step (the same cells, for a side-by-side reading); the last
argument restricts the run to one attribute.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from torch import Tensor

import steerlab
from steerlab.core.steerer import Steer
from steerlab.data.pairs import load_prompts
from steerlab.methods.dglm import diffusion
from steerlab.methods.dglm.data import load_pairs
from steerlab.methods.dglm.steerer import DGLMOptions, DGLMSteerer
from steerlab.models.loading import load_model
from steerlab.scoring.scorers import get_scorer

GEN = {"max_new_tokens": 20, "temperature": 1.0, "top_p": 0.9, "seed": 0, "progress": False}


def covariance(cache: str) -> Tensor:
    x = load_pairs(cache).split("train").continuation.float()  # (N, D)
    x = x / x.norm(dim=-1, keepdim=True)
    x = x - x.mean(0)
    return x.T @ x / (x.shape[0] - 1)  # (D, D)


def use_covariance(cov: Tensor) -> None:
    """Swap every probe's step direction for the natural-gradient one, ``grad @ Σ`` (B, D)."""
    diffusion.ProbeGuide.precondition = lambda self, grad: grad @ cov.to(grad)  # type: ignore[method-assign]


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    if sys.argv[4:5] != ["diag"]:
        use_covariance(covariance(sys.argv[2]))
    st = DGLMSteerer()
    out: dict[str, dict[str, float]] = {}

    def p_probe(name: str, x: Tensor) -> float:
        p = art.probes[name]
        unit = x / x.norm(dim=-1, keepdim=True)
        return float(torch.sigmoid(((unit - p.mean) / p.std) @ p.coef + p.intercept).mean())

    sets = {"sentiment": (load_prompts("sentiment_neutral")[:n], ("positive", "negative")),
            "toxicity": (load_prompts("toxic")[:n], ("clean",))}
    if len(sys.argv) > 5:
        sets = {sys.argv[5]: sets[sys.argv[5]]}
    for probe, (prompts, targets) in sets.items():
        base = torch.cat([st.proposal(art, p, 1.0, DGLMOptions(weight=0.0)) for p in prompts])
        out[f"proposal {probe} unguided"] = {"p": p_probe(probe, base)}
        for t in targets:
            for w in (10.0, 20.0, 40.0):
                x = torch.cat([st.proposal(art, p, 1.0, DGLMOptions(guide=f"{probe}:{t}", weight=w)) for p in prompts])
                cos = float(torch.nn.functional.cosine_similarity(x, base).mean())
                out[f"proposal {probe} {t} w{w:g}"] = {"p": p_probe(probe, x), "cos_to_unguided": cos}
        for k in [k for k in out if k.startswith(f"proposal {probe}")]:
            print(k, out[k], flush=True)

    lm = load_model("smollm2-135m")
    scorers = {"sentiment": (get_scorer("sentiment"), get_scorer("vader"), True),
               "toxicity": (get_scorer("toxicity"), get_scorer("profanity-lexicon"), False)}
    for probe, (prompts, targets) in sets.items():
        rows = [p for p in prompts for _ in range(2)]
        first, second, with_prompt = scorers[probe]
        cells = [("unguided", {"weight": 0.0})] + [
            (f"{t} w{w:g}", {"guide": f"{probe}:{t}", "weight": w}) for w in (20.0, 40.0) for t in targets]
        for name, opts in cells:
            texts = steerlab.generate(lm, rows, Steer(art, 1.0, opts), **GEN)
            scored = [r + t for r, t in zip(rows, texts)] if with_prompt else texts
            out[f"text {probe} {name}"] = {"scorer": float(np.mean(first(scored))),
                                           "second": float(np.mean(second(scored)))}
            print(f"text {probe} {name}", out[f"text {probe} {name}"], flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
