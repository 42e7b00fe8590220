"""The LM-Steer artifact: trained steer parameters plus the schema of its steers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.validate import finite
from steerlab.errors import SteerlabError
from steerlab.methods.lm_steer.adaptor import ADAPTOR_CLASSES

_PARAMS = {"multiply": (("projector1", "projector2"), 3), "add": (("add_vec",), 2), "offset": (("offset_vec",), 2)}
"""Tensors of each adaptor class and their rank: (K, H, r) projectors, (K, H) or (K, V) vectors."""


@dataclass(eq=False, repr=False)
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
        self.epsilon = finite("epsilon", self.epsilon)
        if self.adaptor_class not in ADAPTOR_CLASSES:
            raise SteerlabError(f"unknown adaptor_class {self.adaptor_class!r}; known: {', '.join(ADAPTOR_CLASSES)}")
        names, dims = _PARAMS[self.adaptor_class]
        if sorted(self.params) != sorted(names):
            raise SteerlabError(f"a {self.adaptor_class!r} LM-Steer holds tensors {', '.join(names)}; "
                                f"got {', '.join(sorted(self.params)) or 'none'}")
        shapes = {tuple(p.shape) for p in self.params.values()}
        if any(p.dim() != dims for p in self.params.values()) or len(shapes) != 1 or 0 in next(iter(shapes)):
            raise SteerlabError(f"{self.adaptor_class!r} LM-Steer tensors must be {dims}-D of one non-empty shape, "
                                f"got {sorted(shapes)}")
        k = next(iter(self.params.values())).shape[0]
        if k != len(self.steer_names):
            raise SteerlabError(f"{k} steers in the weights but {len(self.steer_names)} steer names")
        if self.dummy_steer is not None and not 0 <= self.dummy_steer < k:
            raise SteerlabError(f"dummy_steer {self.dummy_steer} is not a steer index (0..{k - 1})")
        if self.adaptor_class == "multiply":  # the projectors' last dim is the rank; 0 = not recorded
            r = next(iter(self.params.values())).shape[-1]
            if self.rank not in (0, r):
                raise SteerlabError(f"rank {self.rank} in the config but the projectors have rank {r}")
            self.rank = int(r)
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
        names, dummy = config["steer_names"], config.get("dummy_steer")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SteerlabError(f"steer_names must be a list of strings, got {names!r}")
        if dummy is not None and (isinstance(dummy, bool) or not isinstance(dummy, int)):
            raise SteerlabError(f"dummy_steer must be a steer index or null, got {dummy!r}")
        return cls(tensors, config["adaptor_class"], finite("epsilon", config["epsilon"]), names,
                   dummy, int(config.get("rank", 0)), model, meta)

    def __repr__(self) -> str:
        model = self.model.name if self.model else "any model"
        return (f"LMSteer({self.name!r}, adaptor={self.adaptor_class!r}, steers={self.steer_names}, "
                f"rank={self.rank}, model={model!r})")
