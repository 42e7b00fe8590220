"""The attribute schema: which attributes a SteerLM model knows, their integer ranges and defaults.

The schema is saved inside every value model and every SteerLM adapter, and both refuse to work
with a different one: NeMo's recipe keeps the attribute list in scripts, so a model trained with
one list and queried with another silently reads the wrong knob (a known bug this avoids).

The attribute string, as SteerLM writes it: ``quality:4,toxicity:0,humor:0`` — every attribute of the
schema, in schema order, as ``name:value`` joined by commas.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from steerlab.errors import SteerlabError


@dataclass(frozen=True)
class Attribute:
    """One knob: an integer scale ``low..high`` (the SteerLM paper's 0–4) with a default and a description."""

    name: str
    description: str
    low: int = 0
    high: int = 4
    default: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.description, str):
            raise SteerlabError(f"attribute name and description must be strings, got {self.name!r}")
        for key in ("low", "high", "default"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise SteerlabError(f"attribute {self.name!r}: {key} must be an integer, got {v!r}")
        if not self.name.isidentifier():
            raise SteerlabError(f"attribute name {self.name!r} must be an identifier (letters, digits, _)")
        if not self.low < self.high:
            raise SteerlabError(f"attribute {self.name!r}: low {self.low} must be below high {self.high}")
        if not self.low <= self.default <= self.high:
            raise SteerlabError(f"attribute {self.name!r}: default {self.default} outside {self.low}..{self.high}")


@dataclass(frozen=True)
class AttributeSchema:
    """An ordered set of attributes. Immutable; compare schemas with :meth:`digest`."""

    attributes: tuple[Attribute, ...]

    def __post_init__(self) -> None:
        names = [a.name for a in self.attributes]
        if not names:
            raise SteerlabError("an attribute schema needs at least one attribute")
        if len(set(names)) != len(names):
            raise SteerlabError(f"duplicate attribute names in schema: {names}")

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def __getitem__(self, name: str) -> Attribute:
        for a in self.attributes:
            if a.name == name:
                return a
        close = difflib.get_close_matches(name, self.names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SteerlabError(f"unknown attribute {name!r}.{hint} This schema has: {', '.join(self.names)}.")

    def defaults(self) -> dict[str, int]:
        return {a.name: a.default for a in self.attributes}

    def resolve(self, values: Mapping[str, Any] | str | None) -> dict[str, int]:
        """Defaults overlaid by ``values`` (a mapping or an attribute string), validated.

        Unknown names get a did-you-mean error; values must be integers inside the attribute's range
        (``3.0`` is accepted as 3, ``3.5`` is not).
        """
        if values is None:
            values = {}
        if isinstance(values, str):
            values = self.parse(values, complete=False)
        if not isinstance(values, Mapping):
            raise SteerlabError(f"attributes must be a mapping like {{'humor': 3}} or a string like 'humor:3', "
                                f"got {values!r}")
        out = self.defaults()
        for name, raw in values.items():
            attr = self[name]
            out[name] = self._as_int(attr, raw)
        return out

    @staticmethod
    def _as_int(attr: Attribute, raw: Any) -> int:
        bad = SteerlabError(f"{attr.name} must be an integer {attr.low}..{attr.high}, got {raw!r}")
        if isinstance(raw, bool):
            raise bad
        try:
            f = float(raw)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(f) or f != int(f):
            raise bad
        v = int(f)
        if not attr.low <= v <= attr.high:
            raise SteerlabError(f"{attr.name}={v} is out of range {attr.low}..{attr.high}")
        return v

    def format(self, values: Mapping[str, Any] | str | None = None) -> str:
        """The SteerLM attribute string, every attribute in schema order: ``quality:4,toxicity:0,...``."""
        full = self.resolve(values)
        return ",".join(f"{n}:{full[n]}" for n in self.names)

    def parse(self, text: str, *, complete: bool = True) -> dict[str, int]:
        """Read ``name:value,...`` (``=`` also accepted). ``complete`` requires every attribute."""
        out: dict[str, int] = {}
        for item in (s.strip() for s in text.split(",")):
            if not item:
                continue
            sep = ":" if ":" in item else "="
            if sep not in item:
                raise SteerlabError(f"cannot read attribute {item!r}; write name:value or name=value, e.g. humor:3")
            name, raw = (s.strip() for s in item.split(sep, 1))
            if name in out:
                raise SteerlabError(f"attribute {name!r} given twice in {text!r}")
            out[name] = self._as_int(self[name], raw)
        if complete and set(out) != set(self.names):
            missing = [n for n in self.names if n not in out]
            raise SteerlabError(f"attribute string {text!r} lacks {', '.join(missing)}")
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self.attributes]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> AttributeSchema:
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise SteerlabError("malformed attribute schema: expected a list of attribute objects")
        try:
            return cls(tuple(Attribute(**d) for d in data))
        except TypeError as e:
            raise SteerlabError(f"malformed attribute schema: {e}") from None

    def digest(self) -> str:
        """sha256 over the canonical JSON (names, ranges, defaults, descriptions)."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    def check_same(self, other: AttributeSchema, what: str) -> None:
        """Refuse to combine parts trained with different schemas."""
        if self.digest() != other.digest():
            raise SteerlabError(
                f"{what} uses a different attribute schema ({', '.join(other.names)}) from this one "
                f"({', '.join(self.names)}); retrain it with the same schema")


DEFAULT_SCHEMA = AttributeSchema((
    Attribute("quality", "how well the response answers the prompt (4 = the kind of reply a person "
              "gave to it; 0 = a reply to a different conversation)", default=4),
    Attribute("toxicity", "offensive or profane language (alt-profanity-check probability × 4)", default=0),
    Attribute("sentiment", "emotional tone: 0 very negative, 2 neutral, 4 very positive", default=2),
    Attribute("verbosity", "length: 0 ≤ 5 words, 1 ≤ 12, 2 ≤ 25, 3 ≤ 50, 4 more", default=2),
    Attribute("humor", "a joke or a witty reply (chatterbot's humour conversations = 4)", default=0),
))
"""The packaged schema. Every label source is a real corpus or a packaged scorer; see
:mod:`steerlab.methods.steerlm.value_data`."""


VERBOSITY_BINS = (5, 12, 25, 50)


def verbosity_level(text: str) -> int:
    """0–4 from the word count (bins at 5, 12, 25, 50 words)."""
    n = len(text.split())
    return sum(n > b for b in VERBOSITY_BINS)
