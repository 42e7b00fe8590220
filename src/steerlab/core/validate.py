"""Checks for numbers entering steerlab: strengths, option values, artifact hyper-parameters and
tensors. Every number a user or a file gives must be finite and small enough that steering with it
cannot overflow the model's arithmetic; otherwise the caller gets one clear
:class:`~steerlab.errors.NonFiniteError` instead of NaN logits and empty text later.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from steerlab.errors import NonFiniteError, SteerlabError

MAX_MAGNITUDE = 1e6
"""Largest absolute strength, option value or artifact tensor element accepted. Hidden states of
the models steered here stay within ~1e4; a value past 1e6 only ever overflows float16/bfloat16
(max ~6.5e4 / ~3e38 after squaring in a norm) and produces NaN text."""


def finite(name: str, value: Any, *, max_abs: float = MAX_MAGNITUDE, low: float | None = None,
           high: float | None = None) -> float:
    """``value`` as a float, or :class:`NonFiniteError` / :class:`SteerlabError` naming ``name``.

    Refuses non-numbers (including booleans and strings), NaN, ±inf, ``|value| > max_abs`` and
    values outside ``[low, high]`` when given.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise SteerlabError(f"{name} must be a number, got {value!r}", param=name)
    try:
        v = float(value)
    except OverflowError:  # an int too large for a float
        raise NonFiniteError(f"{name} is too large: {value!r}", param=name) from None
    if not math.isfinite(v):
        raise NonFiniteError(f"{name} must be a finite number, got {value!r}", param=name)
    if abs(v) > max_abs:
        raise NonFiniteError(f"{name} = {value!r} is too large (|{name}| must be <= {max_abs:g})", param=name)
    if low is not None and v < low:
        raise SteerlabError(f"{name} must be >= {low:g}, got {value!r}", param=name)
    if high is not None and v > high:
        raise SteerlabError(f"{name} must be <= {high:g}, got {value!r}", param=name)
    return v


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, or a :class:`SteerlabError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SteerlabError(f"{name} must be an integer >= {minimum}, got {value!r}", param=name)
    return int(value)


SEED_RANGE = (-(2**63), 2**64 - 1)
"""Seeds torch's generators accept (negative ones are mapped to positive ones by torch)."""


def seed_value(name: str, value: Any) -> int | None:
    """``value`` as a seed torch accepts (or None), else a :class:`SteerlabError` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SteerlabError(f"{name} must be an integer, got {value!r}", param=name)
    low, high = SEED_RANGE
    if not low <= value <= high:
        raise SteerlabError(f"{name} must be between {low} and {high}, got {value}", param=name)
    return int(value)


def offset_seed(seed: int | None, offset: int) -> int | None:
    """The seed of choice ``offset`` of a request seeded ``seed``: ``seed + offset``, wrapped
    into :data:`SEED_RANGE` so every choice of a valid seed is valid too."""
    if seed is None:
        return None
    low, high = SEED_RANGE
    return (seed + offset - low) % (high - low + 1) + low


def check_tensor_values(name: str, t: Tensor, *, max_abs: float = MAX_MAGNITUDE) -> None:
    """Raise :class:`~steerlab.errors.ArtifactError` if a floating tensor holds NaN, inf or an
    element beyond ``max_abs``."""
    from steerlab.errors import ArtifactError

    if not t.is_floating_point() or t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        raise ArtifactError(f"{name} contains NaN or inf values")
    peak = float(t.detach().abs().max())
    if peak > max_abs:
        raise ArtifactError(f"{name} has an element of magnitude {peak:.3g} (> {max_abs:g}): too large to steer with")
