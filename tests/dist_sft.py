"""Run by torchrun from tests/test_distributed.py: a short SteerLM SFT on a tiny model; the main
process writes the loss history and the trained factors' norms."""

from __future__ import annotations

import json
import sys

import torch

from steerlab.methods.steerlm import train_sft
from tests.helpers import EXAMPLES, build_tokenizer, make_tiny

torch.set_num_threads(1)
tok = build_tokenizer()  # the fixture's function, called directly
lm = make_tiny("llama", tok)
art = train_sft(lm, EXAMPLES * 3, r=4, lora_alpha=8, lora_dropout=0.0, n_steps=int(sys.argv[2]), batch_size=4,
                max_length=120, lr=1e-2, progress=False)
from accelerate import PartialState  # noqa: E402

if PartialState().is_main_process:
    with open(sys.argv[1], "w") as f:
        json.dump({"history": art.meta["training"]["loss_history"], "processes": art.meta["training"]["processes"],
                   "norms": {k: [float(a.norm()), float(b.norm())] for k, (a, b) in art.lora.items()}}, f)

# Tear the process group down before exit: left to interpreter shutdown, gloo's threads can be
# destroyed while still joinable and abort the process ("terminate called without an active exception").
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
