"""The DGLM artifact: the diffusion model, the prompt generator, the decoder's LoRA and the
linear probes that steer the proposal, in one directory (JSON config + safetensors)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from steerlab.core.artifact import Artifact
from steerlab.core.fingerprint import ModelFingerprint
from steerlab.core.validate import finite
from steerlab.errors import ArtifactError
from steerlab.methods.dglm.decoder import PromptGenerator, PromptGeneratorConfig
from steerlab.methods.dglm.diffusion import Denoiser, DiffusionConfig, ProbeGuide
from steerlab.scoring.linear import LinearHead

RECORDS = ("training", "diffusion_validation", "assembled_from")
"""Meta entries saved in the artifact's config (training runs, held-out figures, assembly)."""


@dataclass
class Probe(LinearHead):
    """A logistic-regression probe on the embedding space: P(``labels[1]``) = σ(head(x))."""

    labels: tuple[str, str] = ("negative", "positive")
    info: dict[str, Any] = field(default_factory=dict)

    def guide(self, target: str, weight: float, step: str = "diagonal", cov: Tensor | None = None) -> ProbeGuide:
        """A guide towards ``target`` (one of ``labels``) with gradient weight ``weight``, stepping
        in direction ``step`` (:data:`~steerlab.methods.dglm.diffusion.GUIDE_STEPS`; ``covariance``
        takes ``cov``, (D, D))."""
        if target not in self.labels:
            raise ArtifactError(f"target {target!r} is not one of this probe's labels {list(self.labels)}")
        sign = 1.0 if target == self.labels[1] else -1.0
        return ProbeGuide(self.coef, self.intercept, self.mean, self.std, target=sign, weight=weight, step=step,
                          cov=cov)


@dataclass(eq=False, repr=False)
class DGLMArtifact(Artifact):
    """Everything DGLM needs at generation for one decoder (see the package docs). ``guide_cov``
    (D, D), when present, is the covariance of the training continuations' unit embeddings
    (:meth:`~steerlab.methods.dglm.data.PairSet.guidance_covariance`): probe guidance then steps
    along ``grad Σ`` by default. Stored scaled to mean variance about 1 (only its direction matters)."""

    method: ClassVar[str] = "dglm"

    diffusion: Denoiser
    generator: PromptGenerator
    lora: dict[str, tuple[Tensor, Tensor]]  # module -> (A (r, in), B (out, r))
    lora_scaling: float
    probes: dict[str, Probe]
    encoder: str
    model: ModelFingerprint | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    guide_cov: Tensor | None = None  # (D, D)

    def __post_init__(self) -> None:
        self.diffusion.eval()
        self.generator.eval()
        # Stored in float16 (half the size; the networks compute in float32): rounding here makes
        # a saved and reloaded artifact identical to the one in memory.
        with torch.no_grad():
            for t in [*self.diffusion.state_dict().values(), *self.generator.state_dict().values()]:
                t.copy_(_fp16_round(t))
        self.lora = {n: (_fp16_round(a), _fp16_round(b)) for n, (a, b) in self.lora.items()}
        finite("lora_scaling", self.lora_scaling)
        dim = self.diffusion.config.dim
        if self.generator.config.dim != dim:
            raise ArtifactError(f"the prompt generator reads {self.generator.config.dim}-d embeddings; the "
                                f"diffusion model makes {dim}-d ones")
        for name, p in self.probes.items():
            if p.dim != dim:
                raise ArtifactError(f"probe {name!r} does not fit {dim}-d embeddings")
        if self.guide_cov is not None:
            self.guide_cov = _checked_covariance(self.guide_cov, dim)

    @property
    def hidden_size(self) -> int:
        return self.generator.config.hidden

    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        tensors: dict[str, Tensor] = {}
        for k, v in self.diffusion.state_dict().items():
            tensors[f"diffusion.{k}"] = v.detach().half()
        for k, v in self.generator.state_dict().items():
            tensors[f"generator.{k}"] = v.detach().half()
        for name, (a, b) in self.lora.items():
            tensors[f"lora.{name}.A"], tensors[f"lora.{name}.B"] = a.half(), b.half()
        for name, p in self.probes.items():
            tensors.update(p.tensors(f"probe.{name}."))
        if self.guide_cov is not None:
            tensors["guide_cov"] = self.guide_cov.half()
        config = {"diffusion": self.diffusion.config.to_dict(), "generator": self.generator.config.to_dict(),
                  "lora_scaling": self.lora_scaling, "lora_modules": sorted(self.lora), "encoder": self.encoder,
                  "probes": {n: {"intercept": p.intercept, "labels": list(p.labels), "info": p.info}
                             for n, p in self.probes.items()}}
        for key in RECORDS:  # how the parts were trained and measured travel with the weights
            if self.meta.get(key):
                config[key] = self.meta[key]
        return config, {k: v.contiguous() for k, v in tensors.items()}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Tensor], model: ModelFingerprint | None,
                   meta: dict[str, Any]) -> DGLMArtifact:
        try:
            diffusion = Denoiser(DiffusionConfig(**config["diffusion"]))
            diffusion.load_state_dict(_part(tensors, "diffusion."))
            generator = PromptGenerator(PromptGeneratorConfig(**config["generator"]))
            generator.load_state_dict(_part(tensors, "generator."))
            lora = {n: (tensors[f"lora.{n}.A"].float(), tensors[f"lora.{n}.B"].float()) for n in config["lora_modules"]}
            probes = {n: Probe(tensors[f"probe.{n}.coef"], spec["intercept"], tensors[f"probe.{n}.mean"],
                               tensors[f"probe.{n}.std"], tuple(spec["labels"]), spec.get("info", {}))
                      for n, spec in config["probes"].items()}
            known = ({f"diffusion.{k}" for k in diffusion.state_dict()} | {f"generator.{k}" for k in
                     generator.state_dict()} | {f"lora.{n}.{x}" for n in lora for x in "AB"}
                     | {f"probe.{n}.{x}" for n in probes for x in ("coef", "mean", "std")}
                     | ({"guide_cov"} & set(tensors)))
            if set(tensors) != known:
                raise ValueError(f"unexpected or missing tensors: {sorted(set(tensors) ^ known)[:4]}")
            records = {k: config[k] for k in RECORDS if config.get(k)}
            cov = tensors["guide_cov"].float() if "guide_cov" in tensors else None
            return cls(diffusion, generator, lora, float(config["lora_scaling"]), probes, str(config["encoder"]),
                       model, {**meta, **records}, cov)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"malformed DGLM artifact: {type(exc).__name__}: {exc}") from None


def _checked_covariance(cov: Tensor, dim: int) -> Tensor:
    """``cov`` (dim, dim) made exactly symmetric, scaled to mean variance about 1, rounded to float16;
    refused unless it is a finite covariance (symmetric, positive semi-definite up to rounding)."""
    if not isinstance(cov, Tensor) or cov.shape != (dim, dim):
        shape = tuple(cov.shape) if isinstance(cov, Tensor) else type(cov).__name__
        raise ArtifactError(f"the guidance covariance must be ({dim}, {dim}) for {dim}-d embeddings, got {shape}")
    c = cov.detach().double()
    if not bool(torch.isfinite(c).all()):
        raise ArtifactError("the guidance covariance has non-finite values")
    scale = float(torch.diagonal(c).mean())
    if not scale > 0 or float((c - c.T).abs().max()) > 1e-3 * scale:
        raise ArtifactError("the guidance covariance is not a covariance (not symmetric, or no variance)")
    c = (c + c.T) / 2 / 2.0 ** round(math.log2(scale))  # a power of two: rescaling a loaded one is exact
    eig = torch.linalg.eigvalsh(c)  # ascending
    if float(eig[0]) < -1e-2 * float(eig[-1]):
        raise ArtifactError(f"the guidance covariance is not positive semi-definite (eigenvalue {float(eig[0]):.3g})")
    return c.float().half().float()


def _fp16_round(t: Tensor) -> Tensor:
    """``t`` rounded to the nearest float16 value, in its own dtype; values float16 cannot hold
    are refused rather than turned into infinities."""
    if t.is_floating_point() and t.numel():
        if float(t.detach().abs().max()) > torch.finfo(torch.float16).max:
            raise ArtifactError("a DGLM weight exceeds float16's range; the artifact stores float16")
        return t.detach().half().to(t.dtype)
    return t


def _part(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def probe_from_embedding_probe(probe: Any, labels: tuple[str, str] = ("negative", "positive")) -> Probe:
    """A :class:`Probe` from a :class:`~steerlab.scoring.probes.EmbeddingProbe` (same encoder)."""
    head = probe.head
    return Probe(head.coef, head.intercept, head.mean, head.std, labels, dict(getattr(probe, "info", {}) or {}))
