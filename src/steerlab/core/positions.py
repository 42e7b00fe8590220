"""Absolute token positions for every forward call, with or without a KV cache.

Steering "only the prompt" or "only generated tokens" must select the same tokens whether the model
sees the whole sequence in one call or one token at a time with a cache, and whether the batch is
left-padded or not. A :class:`PositionTracker` is a pre-hook on the decoder stack that computes, for
the current call, each token's index in its own (unpadded) sequence and each row's prompt length.
Hooks then build masks from these, never from the shape of the current call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from steerlab.core.hooks import HookSet


class PositionTracker:
    """Keeps ``index`` (B, T) and ``prompt_len`` (B,) for the forward call in progress."""

    def __init__(self) -> None:
        self.index: Tensor | None = None  # (B, T) position of each token in its row; -1 on padding
        self.prompt_len: Tensor | None = None  # (B,) tokens in each row's prompt
        self._pad: Tensor | None = None  # (B,) left padding of each row
        self._last_ids: Tensor | None = None  # (B, T) ids of the last uncached call

    def resume(self, pad: Tensor, prompt_len: Tensor) -> None:
        """Take over rows whose prompts were seen by another tracker (a batch assembled from rows
        prefilled separately, as continuous batching does): ``pad`` (B,) is each row's left padding
        in the KV cache, ``prompt_len`` (B,) its prompt length. Cached calls then index from these."""
        self._pad = pad.to(dtype=torch.long)
        self.prompt_len = prompt_len.to(dtype=torch.long)
        self._last_ids = None

    def install(self, base: nn.Module, hooks: HookSet) -> None:
        """Attach to ``base`` (the module that owns the decoder layers)."""
        hooks.forward_pre_hook(base, self._pre_hook)

    def _continues(self, ids: Tensor | None, batch: int) -> bool:
        """True when an uncached call re-feeds the last call's ids plus new tokens (generation
        without a KV cache): the prompt length seen first must be kept."""
        last = self._last_ids
        if ids is None or last is None or last.shape[0] != batch or ids.shape[1] <= last.shape[1]:
            return False
        return bool(torch.equal(ids[:, : last.shape[1]], last))

    def _pre_hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        embeds = kwargs.get("inputs_embeds")
        ref = ids if ids is not None else embeds
        if ref is None:
            return
        batch, steps = ref.shape[0], ref.shape[1]
        cache = kwargs.get("past_key_values")
        offset = int(cache.get_seq_length()) if cache is not None else 0
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        device = ref.device
        if offset == 0 and not self._continues(ids, batch):
            if isinstance(mask, Tensor) and mask.dim() == 2:
                # Left padding: the first 1 in each row. All-ones rows give 0.
                pad = (mask != 0).int().argmax(dim=1)  # (B,)
            else:
                pad = torch.zeros(batch, dtype=torch.long, device=device)
            self._pad = pad.to(device=device, dtype=torch.long)
            self.prompt_len = steps - self._pad  # (B,)
        elif self._pad is None or self._pad.shape[0] != batch:
            # a cached call with no prompt seen by us: everything before it counts as prompt
            self._pad = torch.zeros(batch, dtype=torch.long, device=device)
            self.prompt_len = torch.full((batch,), offset, dtype=torch.long, device=device)
        self._last_ids = ids if offset == 0 else None
        absolute = torch.arange(offset, offset + steps, device=device)  # (T,)
        self.index = absolute.unsqueeze(0) - self._pad.unsqueeze(1)  # (B, T)


PositionRule = str | int
"""``"all"``, ``"prompt"``, ``"generated"``, or an int k meaning every position >= k."""

POSITION_RULES = ("all", "prompt", "generated")


def validate_positions(rule: PositionRule) -> PositionRule:
    """Check a position rule, returning it unchanged."""
    from steerlab.errors import SteerlabError

    if isinstance(rule, bool) or not (isinstance(rule, int) or rule in POSITION_RULES):
        raise SteerlabError(
            f"positions must be one of {', '.join(POSITION_RULES)} or an integer index, got {rule!r}"
        )
    if isinstance(rule, int) and rule < 0:
        raise SteerlabError(f"a position index must be >= 0, got {rule}")
    return rule


def position_mask(tracker: PositionTracker, rule: PositionRule) -> Tensor | None:
    """(B, T) boolean mask of the tokens a rule selects in the current call.

    ``"all"``: every real (non-padding) token. ``"prompt"``: index < prompt length.
    ``"generated"``: index >= prompt length (tokens the model produced; the first new token is
    predicted from the last prompt position, so it is not itself steered by this rule).
    An int k: index >= k. Returns None when no tracker data exists (then every token is steered).
    """
    idx = tracker.index
    if idx is None:
        return None
    if rule == "all":
        return idx >= 0
    plen = tracker.prompt_len
    assert plen is not None
    if rule == "prompt":
        return (idx >= 0) & (idx < plen.unsqueeze(1))
    if rule == "generated":
        return idx >= plen.unsqueeze(1)
    return idx >= int(rule)


def rule_active(rule: PositionRule, pos: int, prompt_len: int) -> bool:
    """Whether ``rule`` steers the token at absolute position ``pos`` of a sequence whose prompt
    has ``prompt_len`` tokens: :func:`position_mask` for one token (the tables of steerlab's vLLM
    plugin precompute a row per segment with it)."""
    if rule == "all":
        return pos >= 0
    if rule == "prompt":
        return 0 <= pos < prompt_len
    if rule == "generated":
        return pos >= prompt_len
    return pos >= int(rule)


def rule_cuts(rules: Sequence[PositionRule], prompt_len: int) -> list[int]:
    """The positions where a set of rules changes what is active, sorted: between two cuts every
    token is steered by the same rules (a *segment*)."""
    return sorted({prompt_len if r in ("prompt", "generated") else int(r) for r in rules if r != "all"})
