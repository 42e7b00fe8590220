"""The decode loop steerlab owns: prefill, then one token per step with the KV cache.

``generate`` (plain and guided) runs through it, and so will the server. Owning the loop is what
lets a step see every row's logits (classifier-free guidance, method logits processors), report
tokens as they come (streaming) and stop each row on its own — none of which ``model.generate``
exposes per row.

The batch may hold several *branches* of the same rows (``branches`` model rows per output row:
guidance decodes each prompt as a conditioned and a reference row). ``merge`` turns the model's
(branches·B, V) logits into the (B, V) scores a token is sampled from; every branch of a row is
then fed that one token, so per-row steering hooks and the position tracker see one consistent
batch. Position ids come from the attention mask, so a left-padded row decodes exactly as it would
alone — the row-equals-solo and cache-parity tests run through this loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from steerlab.core.model import LoadedModel
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.generation.finite import check_finite_logits
from steerlab.generation.sampling import choose, warpers
from steerlab.generation.stops import StopScanner

Merge = Callable[[Tensor], Tensor]
"""(branches·B, V) model logits of the last position -> (B, V) scores to sample from."""

LogitsHook = Callable[[Tensor, Tensor], Tensor]
"""(sequences (B, T), scores (B, V)) -> scores: a per-step processor (after ``merge``, before warpers)."""

OnStep = Callable[[int, Tensor, Tensor], None]
"""Called after every step with (step, new tokens (B,), finished (B,) bool): streaming."""


def eos_ids(lm: LoadedModel) -> list[int]:
    """The token ids that end a row (the model's generation config, else the tokenizer's)."""
    eos = getattr(lm.model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def prefill_kwargs(lm: LoadedModel) -> dict[str, Any]:
    """Extra forward arguments for a prefill whose caller reads only the last position's logits.

    A causal LM computes logits at every position by default: (R, T, V) floats, which for a
    151,936-token vocabulary is ~600 KB per prompt token in float32 and ~15% of a 1.5B model's
    prefill FLOPs, all thrown away. Models that take ``logits_to_keep`` (transformers' causal LMs,
    also behind a PEFT wrapper) return (R, 1, V) instead; hooks on the head then see only the last
    position (the LM-Steer hooks slice their position masks to the positions they are given).
    """
    model: Any = lm.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    takes = "logits_to_keep" in inspect.signature(base.forward).parameters  # ~20 µs, once a prefill
    return {"logits_to_keep": 1} if takes else {}


def decode(
    lm: LoadedModel,
    texts: Sequence[str],
    decoding: Decoding,
    *,
    add_special_tokens: bool = True,
    branches: int = 1,
    merge: Merge | None = None,
    processors: Sequence[LogitsHook] = (),
    on_step: OnStep | None = None,
    soft_prompts: Sequence[Tensor | None] | None = None,
) -> Tensor:
    """New token ids (B, ≤ max_new_tokens) for ``texts`` (branches·B model rows, branch-major:
    rows 0..B-1 are branch 0); finished rows are padded with the pad id.

    The caller installs the steering for all model rows. Sampling (``temperature > 0``) uses the
    global torch RNG, like ``model.generate`` (``decoding.seed`` is the caller's to apply); greedy
    otherwise. ``ignore_eos`` decodes exactly ``max_new_tokens`` per row (benchmarks; stop strings
    still apply).

    ``soft_prompts`` (one per model row, or None) are vectors (k, H) placed before that row's
    prompt tokens in the input embeddings (DGLM's soft prompts): the prefill then runs on
    ``inputs_embeds``, the soft vectors count as prompt positions, and decoding goes on from the
    KV cache as usual.
    """
    if branches < 1 or len(texts) % branches:
        raise SteerlabError(f"{len(texts)} model rows cannot form {branches} branches")
    if branches > 1 and merge is None:
        raise SteerlabError("several branches need a merge function")
    tok = lm.tokenizer
    n = len(texts) // branches
    enc = tok(list(texts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens).to(lm.device)
    mask: Tensor = enc["attention_mask"]  # (R, T)
    if int(mask.sum(dim=1).min()) == 0:
        raise SteerlabError("a prompt has no tokens: give some text to continue")
    embeds = None
    if soft_prompts is not None and any(sp is not None for sp in soft_prompts):
        embeds, mask = with_soft_prompts(lm, enc["input_ids"], mask, soft_prompts)  # (R, T', H), (R, T')
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (R, T)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    eos = torch.tensor(eos_ids(lm), device=lm.device, dtype=torch.long)
    temperature, max_new_tokens, stop = decoding.temperature, decoding.max_new_tokens, decoding.stop
    warp = warpers(temperature, decoding.top_p, decoding.top_k)
    scanners = [StopScanner(stop) for _ in range(n)] if stop else None  # as the serving engine scans
    seq = enc["input_ids"][:n]  # (B, T + t): branch 0's rows so far, for processors
    done = torch.zeros(n, dtype=torch.bool, device=lm.device)
    new: list[Tensor] = []
    keep = prefill_kwargs(lm)
    with torch.no_grad():
        if embeds is None:
            out = lm.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=pos, use_cache=True, **keep)
        else:
            out = lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True, **keep)
        for step in range(max_new_tokens):
            logits = out.logits[:, -1, :]  # (R, V)
            check_finite_logits(logits)
            scores = merge(logits) if merge is not None else logits.float()  # (B, V)
            for hook in processors:
                scores = hook(seq, scores)
            nxt = choose(scores, temperature, warp, seq)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            new.append(nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            if eos.numel() and not decoding.ignore_eos:
                done |= torch.isin(nxt, eos)
            if scanners is not None:  # a stop string anywhere in a row's new text ends it
                texts = tok.batch_decode(torch.stack(new, dim=1), skip_special_tokens=True)
                for i, (scanner, text) in enumerate(zip(scanners, texts)):
                    if not done[i] and scanner.feed(text.rstrip("\ufffd")) >= 0:
                        done[i] = True
            if on_step is not None:
                on_step(step, nxt, done.clone())
            if bool(done.all()) or len(new) == max_new_tokens:
                break
            feed = nxt.repeat(branches)[:, None]  # (R, 1): every branch of a row takes its token
            mask = torch.cat([mask, torch.ones_like(feed)], dim=1)
            pos = pos[:, -1:] + 1
            out = lm.model(input_ids=feed, attention_mask=mask, position_ids=pos,
                           past_key_values=out.past_key_values, use_cache=True)
    return torch.stack(new, dim=1)  # (B, t)


def with_soft_prompts(lm: LoadedModel, ids: Tensor, mask: Tensor, soft: Sequence[Tensor | None]) -> tuple[Tensor,
                                                                                                        Tensor]:
    """Input embeddings with each row's soft prompt (k_i, H) placed right before its first real
    token, left-padded to one length. ``ids``/``mask`` (R, T) are left-padded token ids; returns
    embeddings (R, T + max k, H) and the matching mask."""
    if len(soft) != ids.shape[0]:
        raise SteerlabError(f"{len(soft)} soft prompts for {ids.shape[0]} rows")
    table = lm.model.get_input_embeddings()
    tok_emb = table(ids)  # (R, T, H)
    hidden = tok_emb.shape[-1]
    for sp in soft:
        if sp is not None and (sp.dim() != 2 or sp.shape[1] != hidden):
            raise SteerlabError(f"a soft prompt must be (k, {hidden}), got {tuple(sp.shape)}")
    k_max = max((sp.shape[0] for sp in soft if sp is not None), default=0)
    rows = []
    for r, sp in enumerate(soft):
        real = mask[r].bool()
        parts = [tok_emb[r][real]]  # (n_r, H)
        if sp is not None:
            parts.insert(0, sp.to(device=tok_emb.device, dtype=tok_emb.dtype))
        rows.append(torch.cat(parts, dim=0))  # (k_r + n_r, H)
    length = ids.shape[1] + k_max
    out = tok_emb.new_zeros((len(rows), length, hidden))
    new_mask = torch.zeros((len(rows), length), dtype=mask.dtype, device=mask.device)
    for r, row in enumerate(rows):
        out[r, length - row.shape[0]:] = row
        new_mask[r, length - row.shape[0]:] = 1
    return out, new_mask
