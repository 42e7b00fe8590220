"""Choosing the next token from scores: greedy, or sampling with temperature, top-k and top-p
(transformers' warpers), shared by the batch decode loop and the serving engine so both sample
the same way."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from steerlab.core.validate import finite, positive_int
from steerlab.errors import SteerlabError


def check_sampling(temperature: float, top_p: float, top_k: int) -> None:
    """Refuse sampling settings no decode loop can use, naming the setting."""
    finite("temperature", temperature, low=0.0, max_abs=1e4)
    if not 0 < finite("top_p", top_p) <= 1:
        raise SteerlabError(f"top_p must be in (0, 1], got {top_p!r}", param="top_p")
    positive_int("top_k", top_k, minimum=0)


def warpers(temperature: float, top_p: float, top_k: int) -> Any:
    """The score warpers for these settings (transformers' ``LogitsProcessorList``; empty for
    greedy decoding)."""
    from transformers.generation import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    out = LogitsProcessorList()
    if temperature > 0:
        out.append(TemperatureLogitsWarper(temperature))
        if top_k > 0:
            out.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            out.append(TopPLogitsWarper(top_p))
    return out


def choose(scores: Tensor, temperature: float, warp: Any, seq: Tensor | None = None,
           generator: torch.Generator | None = None) -> Tensor:
    """The next token of each row (B,) from scores (B, V): argmax when ``temperature`` is 0, else
    a draw from the warped distribution (from ``generator``, or the global RNG)."""
    if temperature == 0:
        return scores.argmax(dim=-1)
    scores = warp(seq, scores)
    return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(1)
