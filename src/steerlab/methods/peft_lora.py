"""PEFT LoRA helpers shared by the methods that fine-tune a LoRA on the decoder (SteerLM's SFT,
DGLM's decoder): import PEFT with a clear error, name the attention projections, and find the
adapted modules of a PEFT-wrapped model."""

from __future__ import annotations

from typing import Any

import torch

from steerlab.errors import MissingDependencyError, SteerlabError


def peft_module() -> Any:
    """The ``peft`` package (a clear error if it is missing)."""
    try:
        import peft
    except ImportError:
        raise MissingDependencyError("LoRA training needs peft: pip install peft") from None
    return peft


def attention_modules(model: torch.nn.Module) -> list[str]:
    """Full names of the linear projections inside attention blocks (q/k/v/o, GPT-2's c_attn/c_proj).

    Full names, because PEFT matches list entries by suffix and GPT-2's MLP also has a ``c_proj``.
    """
    names = [n for n, m in model.named_modules()
             if type(m).__name__ in ("Linear", "Conv1D") and any(part in ("attn", "self_attn", "attention")
                                                                   for part in n.split(".")[:-1])]
    if not names:
        raise SteerlabError("found no linear projection inside an attention block; pass target_modules")
    return names


def lora_modules(pm: Any) -> dict[str, Any]:
    """Adapted modules by name relative to the wrapped transformers model."""
    out = {}
    for name, m in pm.named_modules():
        if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {}):
            out[name.removeprefix("base_model.model.")] = m
    if not out:
        raise SteerlabError("PEFT found no module to adapt; pass target_modules")
    return out
