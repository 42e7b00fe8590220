"""The serialisable steering request: what the CLI, the HTTP server and scripts send to steerlab.

A :class:`GenerationRequest` is plain JSON (``to_dict`` / ``from_dict`` round-trip exactly)::

    {"prompts": ["The film was"],
     "steering": [{"artifact": "sentiment-vec", "strength": 6, "layers": [9]},
                  {"artifact": "lmsteer-toxicity", "strength": -3}],
     "attributes": {"humor": 3}, "guidance": 1.0,
     "max_new_tokens": 48, "temperature": 0.7, "top_p": 0.9, "seed": 1}

Each steer names an artifact (a name the :class:`~steerlab.service.resolve.ArtifactStore` knows,
or — where the caller allows it — a directory) with a strength and its method's options, flat as
above or under ``"options"``. Validation happens here, before anything loads: unknown fields,
wrong types and non-finite numbers are :class:`~steerlab.errors.SteerlabError` s naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from steerlab.core.validate import finite
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import NAMES as DECODING_NAMES
from steerlab.generation.decoding import Decoding
from steerlab.generation.rows import Input, check_messages

_STEER_KEYS = ("artifact", "strength", "options")


@dataclass(frozen=True)
class SteerSpec:
    """One steer: an artifact reference, a strength and method options (all JSON values)."""

    artifact: str
    strength: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.artifact, str) or not self.artifact.strip():
            raise SteerlabError(f"steering artifact must be a non-empty name, got {self.artifact!r}", param="steering")
        object.__setattr__(self, "strength", finite("strength", self.strength))
        if not isinstance(self.options, Mapping) or not all(isinstance(k, str) for k in self.options):
            raise SteerlabError(f"steering options must be an object, got {self.options!r}", param="steering")
        _check_json("options", self.options)

    @classmethod
    def from_dict(cls, d: Any) -> SteerSpec:
        """``{"artifact": ..., "strength": ..., **options}`` (or options under ``"options"``)."""
        if isinstance(d, str):
            return cls(d)
        if not isinstance(d, Mapping):
            raise SteerlabError(f"a steer must be an object like {{'artifact': 'name', 'strength': 4}}, got {d!r}",
                                param="steering")
        if "artifact" not in d:
            raise SteerlabError(f"a steer needs 'artifact', got keys {sorted(d)}", param="steering")
        nested = d.get("options", {})
        if not isinstance(nested, Mapping):
            raise SteerlabError(f"steer 'options' must be an object, got {nested!r}", param="steering")
        flat = {k: v for k, v in d.items() if k not in _STEER_KEYS}
        clash = sorted(set(flat) & set(nested))
        if clash:
            raise SteerlabError(f"option(s) {clash} given both flat and under 'options'", param="steering")
        return cls(d["artifact"], d.get("strength", 1.0), {**nested, **flat})

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "strength": self.strength, **dict(self.options)}


@dataclass(frozen=True)
class GenerationRequest:
    """Prompts, their steering and decoding settings (one :class:`Decoding`). ``steering`` applies
    to every prompt; ``None`` (or ``[]``) is unsteered."""

    prompts: Sequence[Input]  # texts to continue, or conversations (lists of {role, content}) to answer
    steering: Sequence[SteerSpec] | None = None
    attributes: Mapping[str, Any] | str | None = None
    guidance: float = 1.0
    guidance_reference: Mapping[str, Any] | str | None = None
    decoding: Decoding = Decoding()  # flat in the JSON: "max_new_tokens", "temperature", ...
    chat: bool | None = None
    system: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.prompts, str) or not isinstance(self.prompts, Sequence) or not self.prompts:
            raise SteerlabError("prompts must be a non-empty list of strings", param="prompt")
        inputs: list[Input] = []
        for p in self.prompts:
            if isinstance(p, str):
                inputs.append(p)
            elif isinstance(p, Sequence):  # a conversation: the model answers its last user turn
                inputs.append(check_messages(p))
            else:
                raise SteerlabError("every prompt must be a string (or a conversation: a list of "
                                    "{role, content} messages)", param="prompt")
        object.__setattr__(self, "prompts", inputs)
        steering = [] if self.steering is None else self.steering
        if isinstance(steering, (str, Mapping)) or not isinstance(steering, Sequence):
            raise SteerlabError("steering must be a list of steers (or null)", param="steering")
        object.__setattr__(self, "steering", [s if isinstance(s, SteerSpec) else SteerSpec.from_dict(s)
                                              for s in steering])
        for name in ("attributes", "guidance_reference"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, Mapping)):
                raise SteerlabError(f"{name} must be an object like {{'humor': 3}} or a string like 'humor:3'",
                                    param=name)
        finite("guidance", self.guidance, max_abs=1e3)
        if not isinstance(self.decoding, Decoding):
            raise SteerlabError(f"decoding must be a Decoding, got {type(self.decoding).__name__}")
        for name in ("chat",):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise SteerlabError(f"{name} must be true, false or null", param=name)
        for name in ("system", "model"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise SteerlabError(f"{name} must be a string", param=name)

    @classmethod
    def from_dict(cls, d: Any) -> GenerationRequest:
        """Build from JSON, refusing unknown fields with the list of known ones."""
        if not isinstance(d, Mapping):
            raise SteerlabError(f"a request must be an object, got {type(d).__name__}")
        known = ({f.name for f in fields(cls)} - {"decoding"}) | DECODING_NAMES
        unknown = sorted(set(d) - known)
        if unknown:
            raise SteerlabError(f"unknown request field(s) {unknown}; known: {', '.join(sorted(known))}")
        decoding, rest = Decoding.pick(d)
        return cls(**rest, decoding=decoding)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, decoding settings flat (``from_dict`` reads it back exactly)."""
        out = asdict(self)
        del out["decoding"]
        out.update(self.decoding.to_dict())
        out["steering"] = [s.to_dict() for s in (self.steering or [])]
        for key in ("attributes", "guidance_reference"):
            if isinstance(out[key], Mapping):
                out[key] = dict(out[key])
        return out


def _check_json(where: str, value: Any, depth: int = 0) -> None:
    """Option values must be JSON: null, booleans, finite numbers, strings, lists and objects."""
    if depth > 8:
        raise SteerlabError(f"{where} is nested too deeply")
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SteerlabError(f"{where} holds a non-finite number")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise SteerlabError(f"{where} has a non-string key {k!r}")
            _check_json(f"{where}.{k}", v, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(f"{where}[{i}]", v, depth + 1)
        return
    raise SteerlabError(f"{where} holds a {type(value).__name__}, which is not a JSON value")
