"""Does a SteerLM adapter read an attribute's digit? A likelihood check, no sampling.

Sampled sweeps (``steerlab.eval.controllability``) need hundreds of generations to see a small
effect, and cannot tell "the adapter never learnt the digit" from "it learnt it but sampling at
this temperature hides it". Here each response of a set labelled low or high on one attribute is
scored (mean per-token loss) under a low and a high digit, the other attributes at the record's
labels. An adapter that reads the digit makes high responses likelier under the high digit and
low responses likelier under the low digit:

    effect = mean over high responses [loss(low digit) - loss(high digit)]
           + mean over low responses  [loss(high digit) - loss(low digit)]   (nats/token; 0 = ignored)

It costs one forward pass per response and digit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from steerlab.errors import DataError
from steerlab.methods.steerlm.artifact import SteerLMAdapter
from steerlab.methods.steerlm.records import Example
from steerlab.models import LoadedModel


def response_losses(lm: LoadedModel, adapter: SteerLMAdapter, examples: Sequence[Example], attribute: str,
                    digit: int, *, batch_size: int = 16, max_length: int = 160) -> list[float]:
    """Mean per-token loss of each example's response with ``attribute`` set to ``digit``.

    NaN where truncation to ``max_length`` tokens leaves no response token. The adapter is
    installed once for all batches and removed afterwards.
    """
    from steerlab.core.apply import apply, prepare
    from steerlab.methods.steerlm.sft import collate_examples, encode_example

    adapter.schema.resolve({attribute: digit})  # unknown attribute / out-of-range digit → clear error
    pad = lm.tokenizer.pad_token_id or 0
    out: list[float] = []
    with torch.no_grad(), apply(lm, prepare(lm, adapter)):  # prepared: the texts carry the attribute strings
        for i in range(0, len(examples), batch_size):
            chunk = [Example(e.prompt, e.response, {**e.attributes, attribute: digit})
                     for e in examples[i:i + batch_size]]
            enc = [encode_example(lm, e, adapter.schema, adapter.template, adapter.chat, max_length,
                                  adapter.placement) for e in chunk]
            kept = [e for e in enc if e is not None]
            values: Any = iter([])
            if kept:
                ids, labels, mask = collate_examples(kept, pad)  # (B, T) each
                logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits  # (B, T, V)
                tgt = labels[:, 1:].to(lm.device)  # (B, T-1)
                tok = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), tgt,
                                                        ignore_index=-100, reduction="none")  # (B, T-1)
                n = (tgt != -100).sum(1).clamp(min=1)
                values = iter((tok.sum(1) / n).tolist())
            out += [next(values) if e is not None else math.nan for e in enc]
    return out


@dataclass(frozen=True)
class DigitSensitivity:
    """How much an adapter's likelihoods follow one attribute's digit (nats/token)."""

    attribute: str
    low_digit: int
    high_digit: int
    n_high: int                # high-labelled responses scored
    n_low: int                 # low-labelled responses scored
    high_gain: float           # mean loss(low digit) - loss(high digit) over high responses
    low_gain: float            # mean loss(high digit) - loss(low digit) over low responses
    high_favoured: float       # share of high responses made likelier by the high digit
    low_favoured: float        # share of low responses made likelier by the low digit

    @property
    def effect(self) -> float:
        """``high_gain + low_gain``; 0 when the adapter ignores the digit."""
        return self.high_gain + self.low_gain

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "effect": self.effect}


def digit_sensitivity(lm: LoadedModel, adapter: SteerLMAdapter, examples: Sequence[Example], attribute: str,
                      *, low: int | None = None, high: int | None = None, low_max: int | None = None,
                      high_min: int | None = None, limit: int | None = None, seed: int = 0,
                      batch_size: int = 16) -> DigitSensitivity:
    """Score ``examples`` labelled ≤ ``low_max`` (low) or ≥ ``high_min`` (high) on ``attribute``.

    Digits default to the attribute's range ends; the label cut-offs to one level in from them.
    ``limit`` scores a seeded random draw of at most that many low and that many high responses.
    """
    a = adapter.schema[attribute]
    low = a.low if low is None else low
    high = a.high if high is None else high
    low_max = a.low + 1 if low_max is None else low_max
    high_min = a.high - 1 if high_min is None else high_min
    lo = [e for e in examples if e.attributes[attribute] <= low_max]
    hi = [e for e in examples if e.attributes[attribute] >= high_min]
    if limit is not None and limit > 0:
        rng = random.Random(seed)
        lo, hi = rng.sample(lo, min(limit, len(lo))), rng.sample(hi, min(limit, len(hi)))
    if not lo or not hi:
        raise DataError(f"need responses labelled both <= {low_max} and >= {high_min} on {attribute!r}; "
                        f"got {len(lo)} low and {len(hi)} high")

    def gains(group: Sequence[Example], worse: int, better: int) -> list[float]:
        w = response_losses(lm, adapter, group, attribute, worse, batch_size=batch_size)
        b = response_losses(lm, adapter, group, attribute, better, batch_size=batch_size)
        return [x - y for x, y in zip(w, b) if not (math.isnan(x) or math.isnan(y))]

    d_hi, d_lo = gains(hi, low, high), gains(lo, high, low)
    if not d_hi or not d_lo:
        raise DataError("every response of one group was lost to truncation")
    return DigitSensitivity(attribute, low, high, len(d_hi), len(d_lo), sum(d_hi) / len(d_hi),
                            sum(d_lo) / len(d_lo), sum(d > 0 for d in d_hi) / len(d_hi),
                            sum(d > 0 for d in d_lo) / len(d_lo))
