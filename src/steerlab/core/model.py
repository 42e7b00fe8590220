"""What the core needs of a loaded model, as a protocol.

The core (the steering interface, hooks, positions) describes models through this protocol so it
does not depend on how they are loaded; :class:`steerlab.models.loading.LoadedModel` is the
implementation every engine passes in.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from steerlab.core.fingerprint import ModelFingerprint


class LoadedModel(Protocol):
    """A causal LM, its tokenizer, where to intervene in it, and the lock its users share."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    layout: Any  # steerlab.models.layout.Layout: module paths of the decoder's parts
    name: str
    lock: Any  # held by every call that runs or changes the shared model

    @property
    def config(self) -> Any: ...

    @property
    def num_layers(self) -> int: ...

    @property
    def hidden_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def base(self) -> nn.Module: ...

    @property
    def fingerprint(self) -> ModelFingerprint: ...

    def head_weight(self) -> torch.Tensor: ...

    def check_layers(self, layers: Any) -> list[int]: ...

    def site_module(self, layer: int, site: str) -> nn.Module: ...

    def require_weights(self, what: str) -> None:
        """Refuse ``what`` where the model was loaded without its weights (another engine runs it)."""
