"""Record activations at chosen layers, sites and token positions.

Used by vector extraction (and later by probes and value models). One batched forward pass records
every requested layer at once; the pass stops after the deepest requested layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from steerlab.core.hooks import HookSet, output_hidden
from steerlab.core.validate import positive_int
from steerlab.errors import SteerlabError
from steerlab.models.loading import LoadedModel, holds_model_lock
from steerlab.progress import progress_bar

READ_POSITIONS = ("last", "mean", "all")


class _StopForward(Exception):
    """Raised by the deepest hook to skip the layers nobody asked for."""


@holds_model_lock
def record(
    lm: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    site: str = "block",
    positions: str = "last",
    batch_size: int = 16,
    max_length: int = 256,
    desc: str = "recording",
) -> dict[int, Tensor]:
    """Hidden states of ``texts`` at ``layers``.

    ``positions``: ``"last"`` → (N, H) last real token of each text; ``"mean"`` → (N, H) mean over
    real tokens but the first (the attention sink; kept for one-token texts); ``"all"`` →
    (total_tokens, H) every real token, texts concatenated in order.
    Returned tensors are float32 on CPU.
    """
    if positions not in READ_POSITIONS:
        raise SteerlabError(f"read positions must be one of {', '.join(READ_POSITIONS)}, got {positions!r}")
    if not texts:
        raise SteerlabError("no texts to record")
    positive_int("batch_size", batch_size)
    positive_int("max_length", max_length)
    layers = lm.check_layers(layers)
    deepest = max(layers)
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    captured: dict[int, Tensor] = {}
    tok = lm.tokenizer

    def make_hook(layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            captured[layer] = output_hidden(output).detach()  # (B, T, H)
            if layer == deepest:
                raise _StopForward
        return hook

    hooks = HookSet()
    try:
        for layer in layers:
            hooks.forward_hook(lm.site_module(layer, site), make_hook(layer))
        with torch.no_grad(), progress_bar(len(texts), desc) as advance:
            for start in range(0, len(texts), batch_size):
                chunk = list(texts[start:start + batch_size])
                enc = tok(chunk, return_tensors="pt", padding=True, truncation=True,
                          max_length=max_length).to(lm.device)
                mask = enc["attention_mask"].bool()  # (B, T)
                captured.clear()
                try:
                    lm.model(**enc, use_cache=False)
                except _StopForward:
                    pass
                for layer in layers:
                    h = captured[layer].float()  # (B, T, H)
                    out[layer].append(_select(h, mask, positions).cpu())
                advance(len(chunk))
    finally:
        hooks.remove()
    return {layer: torch.cat(chunks) for layer, chunks in out.items()}


def _select(h: Tensor, mask: Tensor, positions: str) -> Tensor:
    """Pick positions from (B, T, H) hidden states with a (B, T) mask of real tokens."""
    if positions == "all":
        return h[mask]  # (sum real tokens, H)
    if positions == "mean":
        # without each text's first real token where it has others: that token is the attention
        # sink, whose hidden state is orders of magnitude larger than the rest in many models
        # (Qwen2, Llama), so it would dominate the mean and make the difference of two sets' means
        # a measure of their lengths, not of their content
        first = mask.long().argmax(1)  # (B,) index of the first True
        keep = mask.clone()
        rows = torch.arange(h.shape[0])
        keep[rows, first] = mask.sum(1) < 2  # (B, T)
        m = keep.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return (h * m).sum(1) / m.sum(1).clamp(min=1)  # (B, H)
    # last real token: with left padding it is the final column; handle right padding too
    last = mask.long().cumsum(1).argmax(1)  # (B,) index of the last True
    return h[torch.arange(h.shape[0]), last]  # (B, H)
