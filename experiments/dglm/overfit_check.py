"""Can the prompt generator carry an embedding's content at all? Overfit a handful of pairs:
train on N training pairs only, every row without its prefix (the soft prompt is the only source
of the text), then read the own-vs-shuffled loss gap on those same pairs. A generator that cannot
open a gap here has a design or optimisation fault, not a data or step-count problem.

    python experiments/dglm/overfit_check.py PAIR_CACHE DIFFUSION_DIR N_PAIRS N_STEPS LR [LORA_LR]
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch

from steerlab.methods.dglm import DGLMArtifact
from steerlab.methods.dglm.data import PairSet, load_pairs
from steerlab.methods.dglm.decoder import PromptGeneratorConfig, train_decoder
from steerlab.methods.dglm.train import DiffusionModel
from steerlab.models.loading import load_model

sys.path.insert(0, str(Path(__file__).parent))
from reads_check import measure  # noqa: E402


def main() -> None:
    cache, diffusion, n, steps, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    lora_lr = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    train = load_pairs(cache).split("train")
    few = PairSet(train.pairs[:n], train.prefix[:n], train.continuation[:n], train.provenance)
    lm = load_model("smollm2-135m")
    dm = DiffusionModel.load(diffusion)
    config = PromptGeneratorConfig(dim=dm.config.dim, hidden=lm.hidden_size)
    gen, factors, record = train_decoder(lm, few, config, n_steps=steps, lr=lr, lora_lr=lora_lr, prefix_drop=1.0,
                                         progress=False)
    art = DGLMArtifact(dm.model, gen, factors, 2.0, {}, "all-minilm-l6-v2", lm.fingerprint, {"name": "overfit"})
    val = dataclasses.replace(few, pairs=[dataclasses.replace(p, split="validation") for p in few.pairs])
    with torch.no_grad():
        out = measure(lm, art, val, n)
    out.update(loss_first=record["loss_first"], loss_last_20=record["loss_last_20"], seconds=record["seconds"])
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
