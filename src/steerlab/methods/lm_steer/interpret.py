"""Interpretation of an LM-Steer steer (paper §5): which tokens and embedding dimensions it moves,
and which spans of a text it explains ("evidence words").

* :func:`token_shifts`: mean logit change per token over real contexts at a steer value —
  the tokens the steer promotes and suppresses.
* :func:`dimensions`: SVD of W_k = P1_k P2_kᵀ; for each top singular direction, the tokens whose
  output embeddings project most (both ends).
* :func:`evidence`: per-token score = loss at −value minus loss at +value (the official
  ``evidence_words``), plus the highest-scoring spans; rendered with rich colours or as HTML.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from steerlab.core.apply import patch
from steerlab.core.model import LoadedModel
from steerlab.core.steerer import Steer
from steerlab.methods.lm_steer.adaptor import dense_transform
from steerlab.methods.lm_steer.artifact import LMSteer


def _decode(lm: LoadedModel, ids: Sequence[int]) -> list[str]:
    return [lm.tokenizer.decode([i]) for i in ids]


def mean_logit_shift(lm: LoadedModel, steer: LMSteer, texts: Sequence[str], *, value: float = 5.0,
                     steer_index: int | str = 0) -> torch.Tensor:
    """(V,) mean change of every logit over the real positions of ``texts`` at ``value``."""
    enc = lm.tokenizer(list(texts), return_tensors="pt", padding=True).to(lm.device)
    mask = enc["attention_mask"].bool()
    with torch.no_grad():
        base = lm.model(**enc).logits
        with patch(lm, Steer(steer, value, {"steer": steer_index})):
            steered = lm.model(**enc).logits
    return (steered - base)[mask].float().mean(0).cpu()


def token_shifts(lm: LoadedModel, steer: LMSteer, texts: Sequence[str], *, value: float = 5.0,
                 steer_index: int | str = 0, k: int = 20) -> dict[str, list[tuple[str, float]]]:
    """Tokens whose logits rise / fall most on average when the steer is applied at ``value``."""
    shift = mean_logit_shift(lm, steer, texts, value=value, steer_index=steer_index)  # (V,)
    up, down = shift.topk(k), (-shift).topk(k)
    return {"up": list(zip(_decode(lm, up.indices.tolist()), up.values.tolist())),
            "down": list(zip(_decode(lm, down.indices.tolist()), (-down.values).tolist()))}


def dimensions(lm: LoadedModel, steer: LMSteer, *, steer_index: int | str = 0, n_dims: int = 4, k: int = 10
               ) -> list[dict[str, Any]]:
    """Top singular directions of W_k with the tokens at each end of each direction."""
    w = dense_transform(steer.params, steer.steer_index(steer_index))  # (H, H)
    _, s, vh = torch.linalg.svd(w)
    emb = lm.head_weight()  # (V, H)
    out = []
    for i in range(min(n_dims, len(s))):
        proj = emb @ vh[i]  # (V,)
        hi, lo = proj.topk(k).indices.tolist(), (-proj).topk(k).indices.tolist()
        out.append({"dim": i, "singular_value": float(s[i]), "share": float(s[i] ** 2 / (s ** 2).sum()),
                    "positive_end": _decode(lm, hi), "negative_end": _decode(lm, lo)})
    return out


@dataclass
class Evidence:
    tokens: list[str]
    scores: list[float]  # per token; > 0: explained by +value, < 0: by −value (first token: 0)
    spans: list[tuple[int, int]]  # [start, end) token ranges of the strongest evidence

    def rich(self) -> object:
        """A rich Text with green (positive) / red (negative) backgrounds by score."""
        from rich.text import Text

        top = max((abs(s) for s in self.scores), default=1.0) or 1.0
        text = Text()
        for tok, sc in zip(self.tokens, self.scores):
            a = min(1.0, abs(sc) / top)
            shade = int(255 * (1 - 0.7 * a))
            colour = f"rgb({shade},255,{shade})" if sc > 0 else f"rgb(255,{shade},{shade})"
            text.append(tok, style=f"black on {colour}" if a > 0.15 else "")
        return text

    def html(self) -> str:
        top = max((abs(s) for s in self.scores), default=1.0) or 1.0
        parts = []
        for tok, sc in zip(self.tokens, self.scores):
            a = min(1.0, abs(sc) / top)
            rgb = "40,160,60" if sc > 0 else "200,40,40"
            parts.append(f'<span title="{sc:+.3f}" style="background: rgba({rgb},{a:.2f})">{html.escape(tok)}</span>')
        return ("<div style=\"font-family: sans-serif; line-height: 1.8; white-space: pre-wrap\">"
                + "".join(parts) + "</div>")


def evidence(lm: LoadedModel, steer: LMSteer, text: str, *, value: float = 5.0, steer_index: int | str = 0,
             max_segments: int = 4, max_length: int = 10) -> Evidence:
    """Per-token evidence that ``text`` follows the steer's + direction rather than its − direction."""
    enc = lm.tokenizer([text], return_tensors="pt").to(lm.device)
    ids = enc["input_ids"]
    losses = []
    with torch.no_grad():
        for v in (value, -value):
            with patch(lm, Steer(steer, v, {"steer": steer_index})):
                logits = lm.model(**enc).logits[0, :-1]
            losses.append(F.cross_entropy(logits.float(), ids[0, 1:], reduction="none"))
    scores = [0.0] + (losses[1] - losses[0]).tolist()
    return Evidence(_decode(lm, ids[0].tolist()), scores, max_subspans(scores, max_segments, max_length))


def max_subspans(scores: Sequence[float], max_segments: int, max_length: int) -> list[tuple[int, int]]:
    """Greedy non-overlapping spans (≤ max_length tokens) with the largest positive score sums."""
    n = len(scores)
    candidates = []
    for i in range(n):
        total = 0.0
        for j in range(i, min(n, i + max_length)):
            total += scores[j]
            candidates.append((total, i, j + 1))
    chosen: list[tuple[int, int]] = []
    for total, i, j in sorted(candidates, reverse=True):
        if total <= 0 or len(chosen) >= max_segments:
            break
        if all(j <= a or i >= b for a, b in chosen):
            chosen.append((i, j))
    return sorted(chosen)
