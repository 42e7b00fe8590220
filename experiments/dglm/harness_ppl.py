"""Where DGLM's perplexity on the harness prompts comes from: the eval harness's neutral RT plot
openings (not the corpus prefixes DGLM trained on), 2 samples × 20 tokens, top-p 0.9, scored by
qwen2.5-0.5b, for plain decoding and DGLM variants that switch off one part at a time (the LoRA,
the content term of the soft prompt, the noise knob).

    python experiments/dglm/harness_ppl.py ARTIFACT [N_PROMPTS]
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
    prompts = load_prompts("sentiment_neutral")[:n]
    rows = [p for p in prompts for _ in range(2)]
    lm = load_model("smollm2-135m")
    ref = load_model("qwen2.5-0.5b")
    vader = get_scorer("vader")
    no_lora = copy.deepcopy(art)
    no_lora.lora_scaling = 0.0
    no_content = copy.deepcopy(art)
    with torch.no_grad():
        no_content.generator.gain.zero_()
    variants = {
        "plain": None,
        "dglm": Steer(art, 1.0, {"weight": 0.0}),
        "dglm sigma2=1": Steer(art, 1.0, {"weight": 0.0, "sigma2": 1.0}),
        "dglm no LoRA": Steer(no_lora, 1.0, {"weight": 0.0}),
        "dglm no content (base prompt + LoRA)": Steer(no_content, 1.0, {"weight": 0.0}),
        "dglm cfg=1": Steer(art, 1.0, {"weight": 0.0, "cfg": 1.0}),
    }
    out = {}
    for name, steer in variants.items():
        texts = steerlab.generate(lm, rows, steer, **GEN) if steer else steerlab.generate(lm, rows, **GEN)
        ppl = conditional_perplexity(ref, rows, texts)
        out[name] = {"ppl_mean": ppl.mean, "ppl_median": float(np.nanmedian(ppl.per_sample)), "ppl_total": ppl.total,
                     "vader": float(np.mean(vader(texts))), "example": rows[0] + " ‖ " + texts[0]}
        print(name, json.dumps(out[name]), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
