"""LM-Steer behind the shared Steerer interface.

Applying an :class:`LMSteer` hooks the LM head: a pre-hook adds ε·Σ_k v_k·f_k(h) to the final
hidden state (``multiply`` / ``add``), or a hook adds the logit offset (``offset``). Steer values
per row are ``strength × base`` where ``base`` selects the steer (option ``steer``) or is given
explicitly (option ``values``), so a batch can mix strengths and even different LM-Steer artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from steerlab.core.hooks import HookSet
from steerlab.core.model import LoadedModel
from steerlab.core.positions import PositionRule, PositionTracker, position_mask, validate_positions
from steerlab.core.steerer import Application, Steerer
from steerlab.core.validate import finite
from steerlab.errors import ModelMismatchError, SteerlabError
from steerlab.methods.lm_steer.adaptor import hidden_delta, logit_offset
from steerlab.methods.lm_steer.artifact import LMSteer
from steerlab.models.layout import get_module
from steerlab.models.loading import as_loaded


@dataclass
class LMSteerOptions:
    """Per-application knobs of an LM-Steer artifact."""

    steer: int | str = 0  # the steer that ``strength`` drives (index or name)
    values: list[float] | None = None  # explicit per-steer values, multiplied by strength
    dummy_value: float = 0.0  # value of the dummy steer, not scaled (the paper generates with 1)
    positions: PositionRule = "all"

    def __post_init__(self) -> None:
        validate_positions(self.positions)
        if isinstance(self.steer, bool) or not isinstance(self.steer, (int, str)):
            raise SteerlabError(f"steer must be a steer index or name, got {self.steer!r}")
        if self.values is not None:
            if not isinstance(self.values, (list, tuple)):
                raise SteerlabError(f"values must be a list of numbers, one per steer, got {self.values!r}")
            self.values = [finite(f"values[{i}]", v) for i, v in enumerate(self.values)]
        self.dummy_value = finite("dummy_value", self.dummy_value)


class LMSteerSteerer(Steerer[LMSteer, LMSteerOptions]):
    """Train and apply LM-Steer steers."""

    name = "lm_steer"
    options_cls = LMSteerOptions
    suggested_strengths = (1.0, 2.0, 4.0, 6.0)  # the paper steers with values around ±5
    head_only = True

    def explain(self, lm: LoadedModel, artifact: LMSteer, text: str, strength: float,
                options: LMSteerOptions) -> list[tuple[str, float]]:
        """Per-token evidence (:func:`~steerlab.methods.lm_steer.interpret.evidence`): the loss
        under ``-strength`` minus the loss under ``+strength`` for each token."""
        from steerlab.methods.lm_steer.interpret import evidence

        ev = evidence(lm, artifact, text, value=abs(strength) or 5.0, steer_index=options.steer)
        return list(zip(ev.tokens, ev.scores))

    def fit(self, lm: LoadedModel, data: Any, **config: Any) -> LMSteer:
        from steerlab.methods.lm_steer.train import train

        return train(as_loaded(lm), data, **config)

    def validate(self, lm: LoadedModel, app: Application, *, allow_mismatch: bool = False) -> None:
        super().validate(lm, app, allow_mismatch=allow_mismatch)
        art: LMSteer = app.artifact  # type: ignore[assignment]
        size = lm.config.vocab_size if art.adaptor_class == "offset" else lm.hidden_size
        have = next(iter(art.params.values())).shape[1]
        if have != size:
            raise ModelMismatchError(f"{art.name!r} has width {have}, model {lm.name!r} needs {size}")
        self.base_values(art, app.options)

    @staticmethod
    def base_values(art: LMSteer, opts: LMSteerOptions) -> Tensor:
        """(K,) steer values at strength 1 (before the unscaled dummy value)."""
        if opts.values is not None:
            if len(opts.values) != art.num_steers:
                raise SteerlabError(f"values has {len(opts.values)} entries; {art.name!r} has {art.num_steers} steers")
            return torch.tensor([float(v) for v in opts.values])
        base = torch.zeros(art.num_steers)
        base[art.steer_index(opts.steer)] = 1.0
        return base

    def install(self, lm: LoadedModel, apps: Sequence[Application], hooks: HookSet,
                tracker: PositionTracker) -> None:
        dtype, device = next(lm.model.parameters()).dtype, lm.device
        hidden: list[tuple[str, dict[str, Tensor], Tensor, float, PositionRule]] = []
        offsets: list[tuple[Tensor, PositionRule]] = []
        for app in apps:
            art: LMSteer = app.artifact  # type: ignore[assignment]
            opts: LMSteerOptions = app.options
            values = app.strengths[:, None] * self.base_values(art, opts)  # (B|1, K)
            if art.dummy_steer is not None and opts.dummy_value:
                values[:, art.dummy_steer] += opts.dummy_value
            values = values.to(device=device, dtype=dtype)
            params = {n: p.to(device=device, dtype=dtype) for n, p in art.params.items()}
            if art.adaptor_class == "offset":
                offsets.append((logit_offset(params, values, art.epsilon), opts.positions))  # (B|1, 1, V)
            else:
                hidden.append((art.adaptor_class, params, values, art.epsilon, opts.positions))
        head = get_module(lm.model, lm.layout.lm_head)

        def mask_for(rule: PositionRule, steps: int, like: Tensor) -> Tensor | None:
            m = position_mask(tracker, rule)  # (B, T_call) or None
            return None if m is None else m[:, -steps:].unsqueeze(-1).to(like.dtype)  # (B, T, 1)

        if hidden:
            def pre_hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                h = args[0]  # (B, T, H): the final hidden state (only kept positions)
                out = h
                for adaptor, params, values, eps, rule in hidden:
                    delta = hidden_delta(adaptor, params, h, values, eps)
                    assert delta is not None
                    m = mask_for(rule, h.shape[1], h)
                    out = out + (delta if m is None else delta * m)
                return (out, *args[1:]), kwargs

            hooks.forward_pre_hook(head, pre_hook)
        if offsets:
            def hook(module: Any, args: Any, logits: Tensor) -> Tensor:
                for off, rule in offsets:
                    m = mask_for(rule, logits.shape[1], logits)
                    logits = logits + (off if m is None else off * m)
                return logits

            hooks.forward_hook(head, hook)
