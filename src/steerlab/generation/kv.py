"""The KV cache of a running batch, row by row: rows join (their cache left-padded to the
batch's length) and leave (their rows dropped, padding no row needs trimmed). Only
transformers' full-attention dynamic caches can do this; sliding-window caches cannot.

Shapes: a layer's keys and values are (rows, heads, tokens, head_dim)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from steerlab.errors import SteerlabError


@dataclass
class Batch:
    """The running batch's model state, R rows, left-padded to T cache columns."""

    cache: Any  # transformers' DynamicCache
    mask: Tensor  # (R, T) 1 on real tokens
    pad: Tensor  # (R,) left padding in the cache
    plen: Tensor  # (R,) prompt tokens
    next_pos: Tensor  # (R,) position id of the next fed token
    feed: Tensor  # (R,) the token each row feeds next

    def append(self, new: Batch) -> None:
        """Append ``new`` 's rows (a prefill's state); the shorter side is left-padded."""
        t_run, t_new = self.mask.shape[1], new.mask.shape[1]
        t = max(t_run, t_new)
        append_rows(self.cache, new.cache, t)
        self.mask = torch.cat([left_pad_2d(self.mask, t), left_pad_2d(new.mask, t)], dim=0)
        self.pad = torch.cat([self.pad + (t - t_run), new.pad + (t - t_new)])
        self.plen = torch.cat([self.plen, new.plen])
        self.next_pos = torch.cat([self.next_pos, new.next_pos])
        self.feed = torch.cat([self.feed, new.feed])

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` and trim the cache columns that are padding in every one of them."""
        idx = torch.tensor(rows, device=self.mask.device)
        self.mask, self.pad, self.plen = self.mask[idx], self.pad[idx], self.plen[idx]
        self.next_pos, self.feed = self.next_pos[idx], self.feed[idx]
        lead = int(self.pad.min())
        keep_rows(self.cache, idx, lead)
        self.mask = self.mask[:, lead:]
        self.pad = self.pad - lead


def mergeable(cache: Any) -> bool:
    """Whether rows can join and leave ``cache`` (every layer a full-attention dynamic layer)."""
    layers = getattr(cache, "layers", None)
    return layers is not None and all(not getattr(layer, "is_sliding", False) and hasattr(layer, "keys")
                                      and type(layer).__name__ == "DynamicLayer" for layer in layers)


def append_rows(cache: Any, new: Any, t: int) -> None:
    """Append ``new`` 's rows to ``cache`` in place, both left-padded to ``t`` tokens."""
    for run_layer, new_layer in zip(_layers(cache), _layers(new)):
        run_layer.keys = torch.cat([_left_pad(run_layer.keys, t), _left_pad(new_layer.keys, t)], dim=0)
        run_layer.values = torch.cat([_left_pad(run_layer.values, t), _left_pad(new_layer.values, t)], dim=0)


def keep_rows(cache: Any, idx: Tensor, lead: int) -> None:
    """Keep rows ``idx`` (K,) of ``cache`` in place and drop its first ``lead`` token columns."""
    for layer in _layers(cache):
        layer.keys = layer.keys[idx, :, lead:]
        layer.values = layer.values[idx, :, lead:]


def left_pad_2d(x: Tensor, t: int) -> Tensor:
    """(B, T') -> (B, t), zeros on the left."""
    extra = t - x.shape[1]
    if extra == 0:
        return x
    return torch.cat([x.new_zeros(x.shape[0], extra), x], dim=1)


def _layers(cache: Any) -> list[Any]:
    """The cache's per-layer key/value holders; continuous batching needs full-attention layers."""
    layers = getattr(cache, "layers", None)
    if layers is None or any(getattr(layer, "is_sliding", False) or not hasattr(layer, "keys") for layer in layers):
        raise SteerlabError("continuous batching needs a full-attention KV cache (this model's cache has "
                            "sliding-window or other layers)")
    return list(layers)


def _left_pad(x: Tensor, t: int) -> Tensor:
    """(B, H, T', D) -> (B, H, t, D), zeros on the left."""
    extra = t - x.shape[2]
    if extra == 0:
        return x
    return torch.cat([x.new_zeros(x.shape[0], x.shape[1], extra, x.shape[3]), x], dim=2)
