"""Classifier-free guidance between each row's steering and a reference steering.

At every decoding step the next-token log-probabilities are

    guided = ref + scale · (cond − ref)        # (B, V), log-softmax of each branch

(Sanchez et al. 2023, "Stay on topic with classifier-free guidance"), where ``cond`` is the row
as requested and ``ref`` the same prompt under a reference: the unsteered model, or — for methods
with attribute knobs (SteerLM) — the same adapter asked for reference attributes. ``scale = 1`` is
ordinary decoding; ``scale > 1`` multiplies every difference the steering makes to the
log-probabilities, so differences between requested levels (``humor:3`` vs ``humor:4``) grow by
the same factor.

Both branches run as one batch of 2B rows (rows 0..B-1 conditioned, B..2B-1 reference) through
steerlab's decode loop (:mod:`steerlab.generation.decode`), each with its own per-row steering,
and are fed the same sampled token, so the position tracker and every per-row hook see one
consistent batch. Transformers' own CFG processor runs the reference as a second, unbatched model
call with positions that ignore padding; this avoids both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from steerlab.core.validate import finite


def guided_log_probs(cond_logits: Tensor, ref_logits: Tensor, scale: float) -> Tensor:
    """``ref + scale · (cond − ref)`` on log-softmaxed logits; (B, V) each, float32 out."""
    cond = torch.log_softmax(cond_logits.float(), dim=-1)
    ref = torch.log_softmax(ref_logits.float(), dim=-1)
    return ref + scale * (cond - ref)


def guided_merge(scale: float) -> Callable[[Tensor], Tensor]:
    """The decode loop's ``merge`` for guidance: model logits (2B, V), conditioned rows first, ->
    guided log-probs (B, V)."""
    def merge(logits: Tensor) -> Tensor:
        half = logits.shape[0] // 2
        return guided_log_probs(logits[:half], logits[half:], scale)

    return merge


def check_scale(scale: Any) -> float:
    """A guidance scale must be a finite number; 1 turns guidance off."""
    return finite("guidance", scale, max_abs=1e3)
