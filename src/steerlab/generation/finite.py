"""The last guard against overflowing steering: stop a generation whose logits turn non-finite.

Inputs are validated where they enter (strengths, options, artifact tensors: see
:mod:`steerlab.core.validate`), but a combination of valid numbers can still overflow a model's
arithmetic (a strong vector on a large-activation layer in float16, several steers stacked).
Then the model's logits become NaN and decoding would silently emit padding or empty text;
instead the generation fails with one clear :class:`~steerlab.errors.NonFiniteError`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from steerlab.errors import NonFiniteError

MESSAGE = ("generation produced NaN or infinite logits: the steering overflowed the model's arithmetic. "
           "Lower the strength (or the number of stacked steers), or check the artifact's values")


def check_finite_logits(logits: Tensor) -> None:
    """Raise :class:`NonFiniteError` if raw model logits (B, V) hold NaN or +inf, or a row is all -inf."""
    if bool(torch.isfinite(logits).all()):  # the common case: one reduction per step
        return
    if bool(torch.isnan(logits).any()) or bool(torch.isposinf(logits).any()):
        raise NonFiniteError(MESSAGE)
    if bool(torch.isneginf(logits).all(dim=-1).any()):
        raise NonFiniteError(MESSAGE)
