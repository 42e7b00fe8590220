"""vLLM's ``vllm.logits_processors`` entry point, used for its admission check: vLLM calls
:meth:`SteeringAdmission.validate_params` on every request as it is admitted (in the frontend,
before anything is scheduled) and answers a ``ValueError`` with HTTP 400. So a steering spec that
names an unknown artifact, a method vLLM cannot run, or a bad option is refused with steerlab's
own message, and never reaches the worker. The processor itself leaves logits untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import LogitsProcessor

from steerlab.errors import SteerlabError
from steerlab.vllm.requests import SERVED, parse_steering, request_steers, shared_store


class SteeringAdmission(LogitsProcessor):
    """Checks ``extra_args["steering"]`` at admission; a no-op on logits."""

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        try:
            steers = request_steers(parse_steering(getattr(sampling_params, "extra_args", None)), shared_store(),
                                    SERVED[-1] if SERVED else None)
            if getattr(sampling_params, "prompt_logprobs", None) is not None and any(
                    s.site_ops is None for s in steers):
                raise SteerlabError("prompt_logprobs are not available beside a steer at the LM head (LM-Steer): "
                                    "the head hooks steer the sampled rows only, so the prompt's logprobs would "
                                    "be unsteered")
        except SteerlabError as e:  # ModelMismatchError and LayerError are SteerlabErrors
            raise ValueError(f"steering: {e}") from None

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        pass

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def is_argmax_invariant(self) -> bool:
        return True

    def update_state(self, batch_update: Any) -> None:
        return None
