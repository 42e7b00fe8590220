"""How a completion is decoded, as one value: :class:`Decoding`.

Every stage that decodes or forwards decoding settings — :func:`~steerlab.generation.generate`,
a :class:`~steerlab.service.spec.GenerationRequest`, an engine :class:`~steerlab.generation.jobs.Job`,
the vLLM engine's sampling parameters, the CLI and the HTTP API — builds or takes this one value.
It checks itself once, when built, so a later stage never checks again, and a new knob is added
here alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from steerlab.core.validate import offset_seed, positive_int, seed_value
from steerlab.errors import SteerlabError
from steerlab.generation.sampling import check_sampling


@dataclass(frozen=True)
class Decoding:
    """Decoding settings of one completion (or of every row of a call), checked when built.

    ``temperature=0`` is greedy; otherwise sampling with ``top_p`` / ``top_k`` (0: no top-k) from
    ``seed`` (None: a fresh seed per run). ``stop`` strings end a row and are cut from its text.
    ``ignore_eos`` decodes exactly ``max_new_tokens`` (benchmarks)."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        positive_int("max_new_tokens", self.max_new_tokens)
        check_sampling(self.temperature, self.top_p, self.top_k)
        seed_value("seed", self.seed)
        stop: Any = self.stop
        if stop is None:
            stop = ()
        elif isinstance(stop, str):
            stop = (stop,)
        if not isinstance(stop, Sequence) or not all(isinstance(s, str) and s for s in stop):
            raise SteerlabError("stop must be a list of non-empty strings", param="stop")
        object.__setattr__(self, "stop", tuple(stop))
        if not isinstance(self.ignore_eos, bool):
            raise SteerlabError(f"ignore_eos must be true or false, got {self.ignore_eos!r}", param="ignore_eos")

    def for_row(self, i: int) -> Decoding:
        """The settings of row (or choice) ``i`` of a call: with a seed, row ``i`` samples from
        ``seed + i`` so rows differ; otherwise unchanged."""
        return self if self.seed is None or i == 0 else dataclasses.replace(self, seed=offset_seed(self.seed, i))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (``stop`` as a list)."""
        out = dataclasses.asdict(self)
        out["stop"] = list(self.stop)
        return out

    @classmethod
    def of_call(cls, decoding: Decoding | None, **settings: Any) -> Decoding:
        """The settings of a ``generate``-style call, which takes either ``decoding=`` or the
        settings as keywords (None: not given), never both."""
        given = {k: v for k, v in settings.items() if v is not None and v is not False}
        if decoding is None:
            return cls(**given)
        if given:
            raise SteerlabError(f"give decoding= or the settings ({', '.join(sorted(given))}), not both")
        if not isinstance(decoding, Decoding):
            raise SteerlabError(f"decoding must be a Decoding, got {type(decoding).__name__}")
        return decoding

    @classmethod
    def pick(cls, d: Mapping[str, Any]) -> tuple[Decoding, dict[str, Any]]:
        """Split a flat mapping (a request's JSON) into its decoding settings and the rest."""
        return cls(**{k: v for k, v in d.items() if k in NAMES}), {k: v for k, v in d.items() if k not in NAMES}


NAMES: frozenset[str] = frozenset(f.name for f in fields(Decoding))
"""The settings' names, as requests spell them flat."""
