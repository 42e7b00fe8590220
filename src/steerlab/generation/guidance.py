"""Classifier-free guidance between each row's steering and a reference steering.

At every decoding step the next-token log-probabilities are

    guided = ref + scale · (cond − ref)        # (B, V), log-softmax of each branch

(Sanchez et al. 2023, "Stay on topic with classifier-free guidance"), where ``cond`` is the row
as requested and ``ref`` the same prompt under a reference: the unsteered model, or — for methods
with attribute knobs (SteerLM) — the same adapter asked for reference attributes. ``scale = 1`` is
ordinary decoding; ``scale > 1`` multiplies every difference the steering makes to the
log-probabilities, so differences between requested levels (``humor:3`` vs ``humor:4``) grow by
the same factor.

Both branches run as one batch of 2B rows (rows 0..B-1 conditioned, B..2B-1 reference), each with
its own per-row steering, and are fed the same sampled token, so the position tracker and every
per-row hook see one consistent batch. Position ids come from the attention mask, so a
left-padded row decodes exactly as it would alone. Transformers' own CFG processor runs the
reference as a second, unbatched model call with positions that ignore padding; this loop
avoids both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from transformers.generation import (
    LogitsProcessorList,
    StopStringCriteria,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from steerlab.core.validate import finite
from steerlab.errors import SteerlabError
from steerlab.generation.finite import check_finite_logits
from steerlab.models.loading import LoadedModel


def guided_log_probs(cond_logits: Tensor, ref_logits: Tensor, scale: float) -> Tensor:
    """``ref + scale · (cond − ref)`` on log-softmaxed logits; (B, V) each, float32 out."""
    cond = torch.log_softmax(cond_logits.float(), dim=-1)
    ref = torch.log_softmax(ref_logits.float(), dim=-1)
    return ref + scale * (cond - ref)


def _eos_ids(lm: LoadedModel) -> list[int]:
    eos = getattr(lm.model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def guided_generate_ids(
    lm: LoadedModel,
    texts: Sequence[str],
    ref_texts: Sequence[str],
    *,
    scale: float,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    stop: Sequence[str] | None,
    add_special_tokens: bool,
) -> Tensor:
    """New token ids (B, ≤ max_new_tokens) of each conditioned row; finished rows are padded.

    The caller installs the steering for all 2B rows (conditioned rows first). Sampling uses the
    global torch RNG, like ``model.generate``.
    """
    if len(texts) != len(ref_texts):
        raise SteerlabError(f"{len(texts)} prompts but {len(ref_texts)} reference prompts")
    tok = lm.tokenizer
    n = len(texts)
    enc = tok(list(texts) + list(ref_texts), return_tensors="pt", padding=True,
              add_special_tokens=add_special_tokens).to(lm.device)
    mask: Tensor = enc["attention_mask"]  # (2B, T)
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (2B, T)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    eos = torch.tensor(_eos_ids(lm), device=lm.device, dtype=torch.long)
    warpers = LogitsProcessorList()
    if temperature > 0:
        warpers.append(TemperatureLogitsWarper(temperature))
        if top_k > 0:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p))
    stopper = StopStringCriteria(tok, list(stop)) if stop else None
    seq = enc["input_ids"][:n]  # (B, T + t) the conditioned rows so far, for warpers and stop strings
    done = torch.zeros(n, dtype=torch.bool, device=lm.device)
    new: list[Tensor] = []
    with torch.no_grad():
        out = lm.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=pos, use_cache=True)
        for _ in range(max_new_tokens):
            logits = out.logits[:, -1, :]  # (2B, V)
            check_finite_logits(logits)
            scores = warpers(seq, guided_log_probs(logits[:n], logits[n:], scale))  # type: ignore[arg-type]  # (B, V)
            if temperature > 0:
                nxt = torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(1)  # (B,)
            else:
                nxt = scores.argmax(dim=-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            new.append(nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            if eos.numel():
                done |= torch.isin(nxt, eos)
            if stopper is not None:
                done |= stopper(seq, scores).to(done.device)
            if bool(done.all()) or len(new) == max_new_tokens:
                break
            step = torch.cat([nxt, nxt])[:, None]  # (2B, 1) both branches take the sampled token
            mask = torch.cat([mask, torch.ones_like(step)], dim=1)
            pos = pos[:, -1:] + 1
            out = lm.model(input_ids=step, attention_mask=mask, position_ids=pos,
                           past_key_values=out.past_key_values, use_cache=True)
    return torch.stack(new, dim=1)  # (B, t)


def check_scale(scale: Any) -> float:
    """A guidance scale must be a finite number; 1 turns guidance off."""
    return finite("guidance", scale, max_abs=1e3)
