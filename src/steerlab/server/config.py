"""Server settings: where it listens, who may call it, and the limits that keep it up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from steerlab.core.validate import finite, positive_int
from steerlab.errors import SteerlabError
from steerlab.service.spec import SteerSpec


@dataclass
class ServerConfig:
    """Every limit is enforced before a request reaches the engine (a 4xx, never a 5xx)."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # bearer token for every call; admin calls need one set
    max_batch: int = 32  # model rows decoded together
    max_queue: int = 256  # jobs waiting beyond the batch before 429
    max_tokens: int = 512  # cap on max_tokens per choice
    max_prompt_tokens: int = 2048
    max_n: int = 8
    max_prompts: int = 32  # prompts in one /v1/completions request
    max_stop: int = 4  # stop sequences per request (OpenAI's limit)
    max_stop_chars: int = 256  # characters per stop sequence
    max_body_bytes: int = 1_000_000
    request_timeout: float = 300.0  # seconds a request may take before it is cancelled
    shutdown_grace: float = 30.0  # seconds in-flight requests may finish after SIGTERM, then cancelled
    public_metrics: bool = False  # /metrics without the API key (traffic and token counts)
    default_steering: list[SteerSpec] = field(default_factory=list)  # used when a request has no 'steering'

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise SteerlabError("the API key is empty: give a non-empty --api-key (or none, to serve without one)")
        for name in ("max_batch", "max_queue", "max_tokens", "max_prompt_tokens", "max_n", "max_prompts",
                     "max_stop", "max_stop_chars", "max_body_bytes"):
            positive_int(name, getattr(self, name))
        finite("request_timeout", self.request_timeout, low=0.001, max_abs=1e7)
        finite("shutdown_grace", self.shutdown_grace, low=0.0, max_abs=1e7)


def parse_default_steer(values: list[str]) -> list[SteerSpec]:
    """``--default-steer`` values: ``NAME``, ``NAME:STRENGTH`` or a JSON steer object each."""
    out = []
    for raw in values:
        text = raw.strip()
        if text.startswith("{"):
            try:
                doc: Any = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SteerlabError(f"--default-steer {raw!r} is not valid JSON: {exc.msg}") from None
            out.append(SteerSpec.from_dict(doc))
            continue
        name, _, strength = text.partition(":")
        try:
            out.append(SteerSpec(name, float(strength) if strength else 1.0))
        except ValueError:
            raise SteerlabError(f"--default-steer {raw!r}: strength must be a number") from None
    return out
