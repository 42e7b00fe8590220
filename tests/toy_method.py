"""A steering method defined outside the steerlab package: a learned-free logit bias.

It exists to prove the method registry is open: this module registers itself with
``register_method`` (or through the ``steerlab.methods`` entry point), and then passes the
conformance suite and works in ``generate`` and the CLI with no edit anywhere in steerlab.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.hooks import HookSet
from steerlab.core.methods import MethodSpec, register_method
from steerlab.core.positions import PositionTracker
from steerlab.core.steerer import Application, Steerer
from steerlab.errors import ModelMismatchError
from steerlab.models.layout import get_module
from steerlab.models.loading import LoadedModel


@dataclass(eq=False, repr=False)
class LogitBias(Artifact):
    """A (V,) bias added to the next-token logits, times the row's strength."""

    method: ClassVar[str] = "toy_bias"

    bias: Tensor  # (V,)
    model: ModelFingerprint | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {"vocab": int(self.bias.shape[0])}, {"bias": self.bias}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Tensor], model: ModelFingerprint | None,
                   meta: dict[str, Any]) -> LogitBias:
        return cls(tensors["bias"], model, meta)


@dataclass
class BiasOptions:
    temperature: float = 1.0  # divides the bias


class BiasSteerer(Steerer[LogitBias, BiasOptions]):
    name = "toy_bias"
    options_cls = BiasOptions

    def fit(self, lm: LoadedModel, data: Any, **config: Any) -> LogitBias:
        ids = lm.tokenizer(list(data), add_special_tokens=False)["input_ids"]
        bias = torch.zeros(int(lm.config.vocab_size))
        for row in ids:
            bias[row] += 1.0
        return LogitBias(bias, lm.fingerprint, {"name": "toy-bias"})

    def validate(self, lm: LoadedModel, app: Application, *, allow_mismatch: bool = False) -> None:
        super().validate(lm, app, allow_mismatch=allow_mismatch)
        if app.artifact.bias.shape[0] != lm.config.vocab_size:
            raise ModelMismatchError("vocabulary size differs")

    def install(self, lm: LoadedModel, apps: Sequence[Application], hooks: HookSet,
                tracker: PositionTracker) -> None:
        head = get_module(lm.model, lm.layout.lm_head)
        parts = [(app.strengths.to(lm.device)[:, None, None] / app.options.temperature,
                  app.artifact.bias.to(lm.device)) for app in apps]

        def hook(module: Any, args: Any, logits: Tensor) -> Tensor:
            for s, b in parts:
                logits = logits + s * b  # (B|1, 1, 1) * (V,) -> (B, T, V)
            return logits

        hooks.forward_hook(head, hook)


METHOD = register_method(MethodSpec("toy_bias", LogitBias, BiasSteerer, description="a test-only logit bias"))
