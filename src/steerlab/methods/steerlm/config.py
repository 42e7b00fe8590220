"""Settings of attribute-conditioned SFT: one typed field per knob, with help text.

The CLI's ``steerlab steerlm sft`` options are built from these fields, and the method's
:class:`~steerlab.core.methods.MethodSpec` names this class as its training config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from steerlab.errors import SteerlabError
from steerlab.methods.steerlm.artifact import PLACEMENTS


@dataclass
class SFTConfig:
    """How to fine-tune a SteerLM adapter (defaults: SmolLM2-135M on 2 CPU cores)."""

    r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    modules: str = field(default="attention", metadata={"help": "LoRA targets: attention (q/k/v/o), all-linear, "
                                                                 "or names like q_proj,v_proj."})
    placement: str = field(default="assistant", metadata={"help": "Attribute string at the start of the model's "
                                                                   "turn (assistant) or after the user's text (user)."})
    lr: float = field(default=5e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    n_steps: int = field(default=150, metadata={"help": "Optimiser steps."})
    batch_size: int = field(default=8, metadata={"help": "Examples per optimiser step (the global batch: split "
                                                           "over processes and accumulation steps)."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation: micro-batches per step."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "Clip the gradient norm to this (0 = no clipping)."})
    mixed_precision: str = field(default="no", metadata={"help": "Autocast: no, bf16 or fp16 (LoRA factors stay "
                                                                  "float32)."})
    max_length: int = field(default=128, metadata={"help": "Tokens per example (longer ones are cut; "
                                                            "examples that lose their response are dropped)."})
    seed: int = field(default=0, metadata={"help": "Initialisation and data-order seed."})

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise SteerlabError(f"placement must be one of {', '.join(PLACEMENTS)}, got {self.placement!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise SteerlabError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")

    def train_kwargs(self, *, continuing: bool = False) -> dict[str, Any]:
        """Keyword arguments for :func:`~steerlab.methods.steerlm.sft.train_sft`. When continuing
        an adapter, it fixes the modules and placement, so they are left out."""
        out: dict[str, Any] = {"r": self.r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout,
                               "lr": self.lr, "weight_decay": self.weight_decay, "n_steps": self.n_steps,
                               "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                               "max_grad_norm": self.max_grad_norm, "mixed_precision": self.mixed_precision,
                               "max_length": self.max_length, "seed": self.seed}
        if not continuing:
            out["placement"] = self.placement
            out["target_modules"] = (self.modules if self.modules in ("all-linear", "attention")
                                     else [m.strip() for m in self.modules.split(",") if m.strip()])
        return out
