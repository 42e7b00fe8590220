"""SteeringVector: per-layer directions that behave like values.

``a + b``, ``a - b``, ``2 * a``, ``a / 2``, ``-a`` and ``a.normalize()`` return new vectors;
``a - a`` is exactly zero. Vectors from different models or sites refuse to combine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.validate import finite
from steerlab.errors import LayerError, SteerlabError
from steerlab.models.layout import SITES


@dataclass(eq=False)
class SteeringVector(Artifact):
    """Directions to add to hidden states, one (H,) float32 tensor per layer, at one site."""

    method: ClassVar[str] = "vectors"

    directions: dict[int, Tensor]  # layer -> (H,)
    site: str = "block"
    model: ModelFingerprint | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.directions:
            raise SteerlabError("a steering vector needs at least one layer")
        shapes = {tuple(t.shape) for t in self.directions.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise SteerlabError(f"directions must all be 1-D of one size, got shapes {shapes}")
        self.directions = {int(k): v.detach().to(torch.float32).cpu()
                           for k, v in sorted(self.directions.items())}

    # -- artifact protocol -------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        config = {"site": self.site, "layers": self.layers, "hidden_size": self.hidden_size,
                  "stats": self.meta.get("stats", {})}
        return config, {f"direction.{k}": v for k, v in self.directions.items()}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Tensor],
                   model: ModelFingerprint | None, meta: dict[str, Any]) -> SteeringVector:
        dirs: dict[int, Tensor] = {}
        for key, v in tensors.items():
            prefix, _, index = key.partition(".")
            if prefix != "direction" or not index.isdigit():
                raise SteerlabError(f"unexpected tensor {key!r}: a vector holds direction.N tensors (N >= 0)")
            dirs[int(index)] = v
        layers = config["layers"]
        if not isinstance(layers, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers):
            raise SteerlabError(f"'layers' must be a list of layer indices, got {layers!r}")
        if sorted(dirs) != sorted(layers):
            raise SteerlabError("layers in steer_config.json differ from tensors in the weights file")
        site = config.get("site", "block")
        if site not in SITES:
            raise SteerlabError(f"unknown site {site!r}; known sites: {', '.join(SITES)}")
        stats = config.get("stats")
        if stats:
            _check_stats(stats, sorted(dirs))
            meta = {**meta, "stats": stats}
        return cls(dirs, site=site, model=model, meta=meta)

    # -- inspection --------------------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        return sorted(self.directions)

    @property
    def hidden_size(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])

    def norms(self) -> dict[int, float]:
        """L2 norm of each layer's direction."""
        return {k: float(v.norm()) for k, v in self.directions.items()}

    def is_zero(self) -> bool:
        return all(bool((v == 0).all()) for v in self.directions.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        return (self.site == other.site and self.layers == other.layers
                and all(torch.equal(self.directions[k], other.directions[k]) for k in self.layers))

    __hash__ = object.__hash__  # identity hash: vectors are used as dict keys by object

    def __repr__(self) -> str:
        layers = self.layers
        span = f"{layers[0]}..{layers[-1]}" if len(layers) > 3 else ",".join(map(str, layers))
        return (f"SteeringVector({self.name!r}, site={self.site!r}, layers=[{span}], "
                f"hidden={self.hidden_size})")

    # -- value semantics ---------------------------------------------------------------------
    def _derive(self, directions: dict[int, Tensor], op: str) -> SteeringVector:
        meta = {"name": f"{op}({self.name})", "provenance": {"derived": op,
                                                             "from": self.meta.get("provenance", {})}}
        return SteeringVector(directions, site=self.site, model=self.model, meta=meta)

    def _combine(self, other: SteeringVector, sign: float, op: str) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if self.site != other.site:
            raise SteerlabError(f"cannot combine vectors at sites {self.site!r} and {other.site!r}")
        if self.hidden_size != other.hidden_size:
            raise SteerlabError(f"cannot combine vectors of sizes {self.hidden_size} and {other.hidden_size}")
        if self.model and other.model and self.model != other.model:
            raise SteerlabError(f"cannot combine vectors from models {self.model.name!r} and {other.model.name!r}")
        dirs = dict(self.directions)
        for k, v in other.directions.items():
            dirs[k] = dirs[k] + sign * v if k in dirs else sign * v
        out = SteeringVector(dirs, site=self.site, model=self.model or other.model,
                             meta={"name": f"{self.name}{op}{other.name}",
                                   "provenance": {"derived": op, "from": [self.meta.get("provenance", {}),
                                                                         other.meta.get("provenance", {})]}})
        return out

    def __add__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, -1.0, "-")

    def __neg__(self) -> SteeringVector:
        return self._derive({k: -v for k, v in self.directions.items()}, "neg")

    def __mul__(self, scalar: float) -> SteeringVector:
        if not isinstance(scalar, (int, float)) or isinstance(scalar, bool):
            return NotImplemented
        return self._derive({k: v * float(scalar) for k, v in self.directions.items()}, f"{scalar}*")

    __rmul__ = __mul__

    def __truediv__(self, scalar: float) -> SteeringVector:
        if not isinstance(scalar, (int, float)) or scalar == 0:
            raise SteerlabError("a vector can only be divided by a non-zero number")
        return self * (1.0 / float(scalar))

    def normalize(self) -> SteeringVector:
        """Each layer's direction scaled to unit L2 norm (zero layers stay zero)."""
        return self._derive({k: v / v.norm() if float(v.norm()) > 0 else v.clone()
                             for k, v in self.directions.items()}, "normalize")

    def select(self, layers: list[int]) -> SteeringVector:
        """A vector with only ``layers`` (each must exist in this vector)."""
        missing = [la for la in layers if la not in self.directions]
        if missing:
            raise LayerError(f"vector {self.name!r} has no layer(s) {missing}; it has {self.layers}")
        out = SteeringVector({la: self.directions[la] for la in layers}, site=self.site,
                             model=self.model, meta=dict(self.meta))
        return out


STATS_KEYS = ("pos_proj", "neg_proj", "accuracy", "norm")


def _check_stats(stats: Any, layers: list[int]) -> None:
    """Per-layer separation statistics, as :func:`~steerlab.methods.vectors.extract` records them:
    ``{"<layer>": {"pos_proj": float, "neg_proj": float, "accuracy": float, "norm": float}}`` for
    layers of the vector."""
    if not isinstance(stats, dict):
        raise SteerlabError(f"'stats' must map layers to statistics, got {type(stats).__name__}")
    for layer, entry in stats.items():
        if not str(layer).isdigit() or int(layer) not in layers or not isinstance(entry, dict):
            raise SteerlabError(f"'stats' entry {layer!r} must be one of the vector's layers mapped to an object")
        if sorted(entry) != sorted(STATS_KEYS):
            raise SteerlabError(f"'stats' entry {layer!r} must hold exactly {', '.join(STATS_KEYS)}")
        for key, value in entry.items():
            finite(f"stats[{layer}].{key}", value)
