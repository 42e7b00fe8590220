"""PEFT LoRA helpers shared by the methods that fine-tune a LoRA on the decoder (SteerLM's SFT,
DGLM's decoder): import PEFT with a clear error, name the attention projections, and find the
adapted modules of a PEFT-wrapped model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from steerlab.core.hooks import HookSet
from steerlab.core.model import LoadedModel
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


LoraFactors = Mapping[str, tuple[Tensor, Tensor]]
"""Module name -> (A (r, in), B (out, r))."""


def install_lora(lm: LoadedModel, hooks: HookSet, entries: Sequence[tuple[LoraFactors, float, Tensor]]) -> None:
    """Forward hooks adding ``strength · scaling · B(A x)`` to each adapted module's output, per
    row: ``entries`` holds (factors, scaling, strengths (B,) or (1,)) per adapter; rows at strength 0
    are unchanged. Each module computes every adapter's product once per forward."""
    dtype, device = next(lm.model.parameters()).dtype, lm.device
    by_module: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {}
    for factors, scaling, strengths in entries:
        if not bool(strengths.any()):
            continue
        scale = (strengths * scaling).to(device=device, dtype=dtype)[:, None, None]  # (B|1, 1, 1)
        for name, (a, b) in factors.items():
            by_module.setdefault(name, []).append(
                (a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype), scale))
    for name, parts in by_module.items():
        module = lm.model.get_submodule(name)

        def hook(module: Any, args: tuple[Any, ...], out: Tensor, parts: Any = parts) -> Tensor:
            x = args[0]  # (B, T, in)
            for a, b, scale in parts:
                out = out + scale * ((x @ a.T) @ b.T)  # (B, T, r) -> (B, T, out)
            return out

        hooks.forward_hook(module, hook)
