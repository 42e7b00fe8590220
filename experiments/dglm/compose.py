"""Composing two probes: toxicity:clean and sentiment:positive alone and together, on the detoxify
task's prompts, with the covariance step (the library's default for artifacts carrying Σ) and the
diagonal one. Both attributes are read under two scorers each: toxicity (alt-profanity-check,
profanity lexicon) and sentiment (the sentiment probe, VADER), on the continuation alone.

    python experiments/dglm/compose.py ARTIFACT [N_PROMPTS] [OUT_JSON]

Sampling as the eval tasks: temperature 1, top-p 0.9, 20 new tokens, seed 0, 2 samples per prompt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import steerlab
from steerlab.core.steerer import Steer
from steerlab.eval.harness import with_protocol
from steerlab.eval.protocol import QUICK, prompts_for
from steerlab.eval.tasks import TASKS
from steerlab.models.loading import load_model
from steerlab.scoring.scorers import get_scorer

GEN = {"max_new_tokens": 20, "temperature": 1.0, "top_p": 0.9, "seed": 0, "progress": False}
GUIDES = {"none": None, "toxicity:clean": ["toxicity:clean"], "sentiment:positive": ["sentiment:positive"],
          "both": ["toxicity:clean", "sentiment:positive"]}


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 48
    out_path = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    prompts = prompts_for(TASKS.get("detoxify"), with_protocol(QUICK, n_prompts=n))
    rows = [p for p in prompts for _ in range(2)]
    lm = load_model("smollm2-135m")
    scorers = {k: get_scorer(k) for k in ("toxicity", "profanity-lexicon", "sentiment", "vader")}
    out: dict[str, dict[str, float]] = {}
    cells = [("none", "auto", 0.0)] + [(g, step, w) for step in ("covariance", "diagonal") for w in (20.0, 40.0)
                                       for g in GUIDES if g != "none"]
    for guide, step, weight in cells:
        opts = {"guide": GUIDES[guide], "weight": weight, "step": step} if GUIDES[guide] else {"weight": 0.0}
        texts = steerlab.generate(lm, rows, Steer(art, 1.0, opts), **GEN)
        key = "unguided" if guide == "none" else f"{guide} {step} w{weight:g}"
        out[key] = {k: float(np.mean(f(texts))) for k, f in scorers.items()}
        print(key, {k: round(v, 3) for k, v in out[key].items()}, flush=True)
    doc = {"artifact": art.name, "prompts": len(prompts), "rows": len(rows), "results": out}
    print(json.dumps(doc, indent=1))
    if out_path:
        out_path.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
