"""The LM-Steer artifact: trained steer parameters plus the schema of its steers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.errors import SteerlabError
from steerlab.methods.lm_steer.adaptor import ADAPTOR_CLASSES


@dataclass(eq=False)
class LMSteer(Artifact):
    """Steers of one model. ``steer_names[k]`` names steer k (e.g. ``["sentiment", "dummy"]``);
    ``dummy_steer`` is the index trained with value 1 on every example (absorbs the data's domain)."""

    method: ClassVar[str] = "lm_steer"

    params: dict[str, Tensor]
    adaptor_class: str
    epsilon: float
    steer_names: list[str]
    dummy_steer: int | None = None
    rank: int = 0
    model: ModelFingerprint | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.adaptor_class not in ADAPTOR_CLASSES:
            raise SteerlabError(f"unknown adaptor_class {self.adaptor_class!r}; known: {', '.join(ADAPTOR_CLASSES)}")
        k = next(iter(self.params.values())).shape[0]
        if k != len(self.steer_names):
            raise SteerlabError(f"{k} steers in the weights but {len(self.steer_names)} steer names")
        if self.dummy_steer is not None and not 0 <= self.dummy_steer < k:
            raise SteerlabError(f"dummy_steer {self.dummy_steer} is not a steer index (0..{k - 1})")
        self.params = {n: p.detach().float().cpu().contiguous() for n, p in self.params.items()}

    @property
    def num_steers(self) -> int:
        return len(self.steer_names)

    def steer_index(self, steer: int | str) -> int:
        if isinstance(steer, str):
            if steer not in self.steer_names:
                raise SteerlabError(f"no steer {steer!r}; steers: {', '.join(self.steer_names)}")
            return self.steer_names.index(steer)
        if not 0 <= steer < self.num_steers:
            raise SteerlabError(f"steer index {steer} out of range 0..{self.num_steers - 1}")
        return steer

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        cfg = {"adaptor_class": self.adaptor_class, "epsilon": self.epsilon, "steer_names": self.steer_names,
               "dummy_steer": self.dummy_steer, "rank": self.rank, "num_steers": self.num_steers,
               "parameters": self.parameter_count(), "training": self.meta.get("training", {})}
        return cfg, dict(self.params)

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Tensor], model: ModelFingerprint | None,
                   meta: dict[str, Any]) -> LMSteer:
        if config.get("training"):
            meta = {**meta, "training": config["training"]}
        return cls(tensors, config["adaptor_class"], float(config["epsilon"]), list(config["steer_names"]),
                   config.get("dummy_steer"), int(config.get("rank", 0)), model, meta)
