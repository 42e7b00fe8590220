"""Conditional perplexity of continuations under a reference LM (fluency).

Per sample, as LM-Steer's ``conditional_perplexity``: the continuation's mean token NLL given the
prompt, ``exp((NLL(prompt + text) − NLL(prompt)) / (len(prompt + text) − len(prompt)))``, in the
reference model's own tokenisation. Samples with perplexity ≥ ``max_ppl`` (default 1e4, LM-Steer's
sanity filter) are left out of the mean and counted in ``n_filtered``; the token-weighted total
perplexity keeps every sample. Computed in batches (right padding, masked).

The reference model should not be the steered model (a model always likes its own text); by
default it is the bigger packaged ``qwen2.5-0.5b`` when installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from steerlab.models.loading import LoadedModel, holds_model_lock
from steerlab.progress import progress_bar


@dataclass
class PerplexityResult:
    per_sample: list[float]  # nan where filtered out or empty
    nll: list[float]  # summed continuation NLL per sample (every sample, for token-weighted totals)
    tokens: list[int]  # continuation tokens per sample
    mean: float  # mean of kept per-sample perplexities
    total: float  # exp(total NLL / total tokens) over every sample
    n_filtered: int
    model: str


@holds_model_lock
def _token_nll(lm: LoadedModel, texts: list[str], batch_size: int) -> list[tuple[float, int]]:
    """(summed NLL of tokens 1.., number of predicted tokens) per text."""
    tok = lm.tokenizer
    out: list[tuple[float, int]] = []
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start:start + batch_size], return_tensors="pt", padding=True).to(lm.device)
            ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
            with torch.no_grad():
                logits = lm.model(**enc).logits[:, :-1].float()  # (B, T-1, V)
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            m = mask[:, 1:].float()  # (B, T-1)
            nll = -(logp * m).sum(1)
            out += [(float(a), int(b)) for a, b in zip(nll, m.sum(1))]
    finally:
        tok.padding_side = side
    return out


def conditional_perplexity(ref: LoadedModel, prompts: Sequence[str], texts: Sequence[str], *,
                           batch_size: int = 16, max_ppl: float = 1e4) -> PerplexityResult:
    """Perplexity of each ``texts[i]`` given ``prompts[i]`` under ``ref``."""
    uniq = sorted(set(prompts))
    per: list[float] = []
    nlls: list[float] = []
    toks: list[int] = []
    total_nll, total_tok, filtered = 0.0, 0, 0
    with progress_bar(len(texts), f"perplexity ({ref.name})") as advance:
        prompt_nll = dict(zip(uniq, _token_nll(ref, uniq, batch_size)))
        full = _token_nll(ref, [p + t for p, t in zip(prompts, texts)], batch_size)
        advance(len(texts))
    for p, (nll, n) in zip(prompts, full):
        pn, pt = prompt_nll[p]
        new_tokens = n - pt
        nlls.append(nll - pn if new_tokens > 0 else 0.0)
        toks.append(max(new_tokens, 0))
        if new_tokens <= 0:
            per.append(float("nan"))
            continue
        loss = (nll - pn) / new_tokens
        total_nll += nll - pn
        total_tok += new_tokens
        ppl = math.exp(min(loss, 50.0))
        if ppl >= max_ppl:
            filtered += 1
            per.append(float("nan"))
        else:
            per.append(ppl)
    kept = [x for x in per if not math.isnan(x)]
    return PerplexityResult(per, nlls, toks, sum(kept) / len(kept) if kept else float("nan"),
                            math.exp(total_nll / total_tok) if total_tok else float("nan"), filtered, ref.name)
