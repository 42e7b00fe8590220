"""Sentiment of DGLM's *text* under probe guidance on held-out prefixes (fast version of
eval_dglm.py's control block): guided positive / negative at a few weights, scored by the
sentiment probe and VADER, 2 samples per prefix, 24 tokens.

    python experiments/dglm/text_control.py ARTIFACT PAIR_CACHE [N]
"""

from __future__ import annotations

import json
import random
import sys

import numpy as np

import steerlab
from steerlab.core.steerer import Steer
from steerlab.methods.dglm.data import load_pairs
from steerlab.models.loading import load_model
from steerlab.scoring.scorers import get_scorer

GEN = {"max_new_tokens": 24, "temperature": 1.0, "top_p": 0.95, "seed": 0, "progress": False}


def main() -> None:
    art = steerlab.load_artifact(sys.argv[1])
    test = load_pairs(sys.argv[2]).split("test")
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    picks = random.Random(0).sample(range(len(test.pairs)), n)
    rows = [test.pairs[i].prefix for i in picks for _ in range(2)]
    lm = load_model("smollm2-135m")
    probe, vader = get_scorer("sentiment"), get_scorer("vader")
    out = {}
    for name, opts in (("unguided", {"weight": 0.0}),
                       *[(f"{t} w{w:g}", {"guide": f"sentiment:{t}", "weight": w})
                         for w in (10.0, 20.0, 40.0) for t in ("positive", "negative")]):
        texts = steerlab.generate(lm, rows, Steer(art, 1.0, opts), **GEN)
        out[name] = {"sentiment_probe": float(np.mean(probe(texts))), "vader": float(np.mean(vader(texts)))}
        print(name, out[name], flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
