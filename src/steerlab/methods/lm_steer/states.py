"""The frozen model's final hidden states for LM-Steer training batches, computed once per text.

LM-Steer only reads the final hidden state (after the last norm), and the model is frozen, so a
text's states never change during training. For a large model on CPU the frozen forward is most
of a step's cost (Qwen2.5-1.5B: ~3 GFLOP per token against the head's ~0.5), so when a run
revisits its texts (several epochs over a training subset) :class:`StateCache` keeps each text's
states after its first visit and later steps only pay for the head. Without caching every batch
runs the model (the same numbers, recomputed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from steerlab.core.model import LoadedModel


class StateCache:
    """Final hidden states (T_i, H) and token ids (T_i,) per example index; ``cache=False``
    recomputes every batch. States are kept in float32, as training uses them."""

    def __init__(self, lm: LoadedModel, texts: Sequence[str], max_length: int, cache: bool) -> None:
        self.lm, self.texts, self.max_length, self.cache = lm, texts, max_length, cache
        self._states: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._states)

    def _encode(self, indices: Sequence[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        # Right padding for this call only: the shared tokenizer's own side is left untouched.
        enc = self.lm.tokenizer([self.texts[i] for i in indices], return_tensors="pt", padding=True,
                                padding_side="right", truncation=True,
                                max_length=self.max_length).to(self.lm.device)
        with torch.no_grad():
            h = self.lm.base(**enc).last_hidden_state.float()  # (B, T, H) after the final norm
        return enc, h

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, labels)`` for these examples, right-padded: h (B, T, H) and labels (B, T-1) with
        −100 on padding — what one forward of the batch would give."""
        if not self.cache:
            enc, h = self._encode(indices)
            labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)[:, 1:]  # (B, T-1)
            return h, labels
        missing = sorted({i for i in indices if i not in self._states})
        if missing:
            enc, h = self._encode(missing)
            lengths = enc["attention_mask"].sum(dim=1).tolist()
            for row, (i, n) in enumerate(zip(missing, lengths)):
                self._states[i] = (h[row, :n].clone(), enc["input_ids"][row, :n].clone())
        width = max(self._states[i][0].shape[0] for i in indices)
        hidden = self.lm.hidden_size
        h_out = torch.zeros(len(indices), width, hidden, device=self.lm.device)  # (B, T, H)
        ids = torch.full((len(indices), width), -100, dtype=torch.long, device=self.lm.device)  # (B, T)
        for row, i in enumerate(indices):
            states, tokens = self._states[i]
            h_out[row, : states.shape[0]] = states
            ids[row, : tokens.shape[0]] = tokens
        return h_out, ids[:, 1:]
