"""Server settings: where it listens, who may call it, and the limits that keep it up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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
    max_body_bytes: int = 1_000_000
    request_timeout: float = 300.0  # seconds a request may take before it is cancelled
    default_steering: list[SteerSpec] = field(default_factory=list)  # used when a request has no 'steering'


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
