"""Apply DGLM: per row, embed the prompt, sample a continuation embedding from the diffusion model
(classifier-free guidance and probe guidance as options), noise it by σ², turn it into soft prompts
before the row's prompt, and adapt the decoder with the artifact's LoRA on that row only.

Options (per steer, so DGLM rows mix with any other rows in one batch)::

    guide   "sentiment:positive" or a list of such (probe:label), composing by summed losses
    weight  probe-guidance weight (times the steer's strength; 0 = the unguided proposal)
    step    the guidance step's direction: "covariance" (grad Σ, Σ the artifact's embedding
            covariance), "diagonal" (grad × std², the probe's standardised coordinates) or
            "gradient" (the raw gradient, as the paper); default "auto": covariance when the
            artifact carries Σ, else diagonal
    sigma2  noise added to the proposal before the prompt generator reads it (paper: 0.05)
    steps   diffusion sampling steps (default 10); sampler "ddim" (few steps) or "ddpm" (the paper: 250)
    cfg     classifier-free guidance on the prefix (1 = plain conditional sampling; default 2, which
            brings proposals closer to the true continuation)
    seed    the proposal's random seed (the same prompt and seed give the same proposal)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from steerlab.core.hooks import HookSet
from steerlab.core.model import LoadedModel
from steerlab.core.positions import PositionTracker
from steerlab.core.steerer import Application, Steerer
from steerlab.core.validate import finite, positive_int
from steerlab.errors import ModelMismatchError, SteerlabError
from steerlab.methods.dglm.artifact import DGLMArtifact
from steerlab.methods.dglm.decoder import noised
from steerlab.methods.dglm.diffusion import GUIDE_STEPS, ProbeGuide, sample
from steerlab.methods.peft_lora import install_lora


@dataclass
class DGLMOptions:
    guide: str | list[str] | None = None
    weight: float = 10.0
    step: str = "auto"
    sigma2: float = 0.05
    steps: int = 10
    sampler: str = "ddim"
    cfg: float = 2.0
    seed: int = 0
    pairs: tuple[tuple[str, str], ...] = field(init=False, default=())
    """``guide`` read once into (probe, label) pairs."""

    def __post_init__(self) -> None:
        if isinstance(self.guide, str):
            self.guide = [self.guide]
        if self.guide is not None and (not isinstance(self.guide, list) or not all(
                isinstance(g, str) and ":" in g for g in self.guide)):
            raise SteerlabError(f"guide must be 'probe:label' or a list of them, got {self.guide!r}")
        self.pairs = tuple((p, label) for p, _, label in (g.partition(":") for g in self.guide or []))
        self.weight = finite("weight", self.weight, max_abs=1e4)
        if self.step not in ("auto", *GUIDE_STEPS):
            raise SteerlabError(f"step must be one of auto, {', '.join(GUIDE_STEPS)}; got {self.step!r}")
        self.sigma2 = finite("sigma2", self.sigma2, low=0.0, high=1.0)
        positive_int("steps", self.steps)
        if self.steps > 1000:
            raise SteerlabError(f"steps must be <= 1000, got {self.steps}")
        if self.sampler not in ("ddim", "ddpm"):
            raise SteerlabError(f"sampler must be ddim or ddpm, got {self.sampler!r}")
        self.cfg = finite("cfg", self.cfg, max_abs=100.0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SteerlabError(f"seed must be an integer, got {self.seed!r}")


class DGLMSteerer(Steerer[DGLMArtifact, DGLMOptions]):
    """Soft prompts from a steered semantic proposal, and the decoder's LoRA, per row."""

    name = "dglm"
    options_cls = DGLMOptions
    suggested_strengths = (1.0, 2.0, 4.0)

    adapter_follows_strength = False  # the LoRA is on for every steered row; the strength steers the proposal

    def fit(self, lm: LoadedModel, data: Any, **config: Any) -> DGLMArtifact:
        raise SteerlabError("DGLM trains in stages: steerlab dglm build-pairs, train-diffusion, train-decoder")

    def adapter(self, artifact: DGLMArtifact) -> tuple[Mapping[str, tuple[Tensor, Tensor]], float]:
        return artifact.lora, artifact.lora_scaling

    def validate(self, lm: LoadedModel, app: Application, *, allow_mismatch: bool = False) -> None:
        super().validate(lm, app, allow_mismatch=allow_mismatch)
        art: DGLMArtifact = app.artifact  # type: ignore[assignment]
        if art.hidden_size != lm.hidden_size:
            raise ModelMismatchError(f"{art.name!r} makes {art.hidden_size}-d soft prompts; {lm.name!r} has "
                                     f"hidden size {lm.hidden_size}")
        modules = dict(lm.model.named_modules())
        missing = [n for n in art.lora if n not in modules]
        if missing:
            raise ModelMismatchError(f"{art.name!r} adapts {missing[0]}, which {lm.name!r} does not have")
        self.guides(art, app.options, 1.0)  # unknown probes and labels fail before anything runs

    def guides(self, art: DGLMArtifact, options: DGLMOptions, strength: float) -> list[ProbeGuide]:
        """The probe guides ``options`` ask for, at weight ``options.weight × strength``."""
        step = options.step
        if step == "auto":
            step = "covariance" if art.guide_cov is not None else "diagonal"
        elif step == "covariance" and art.guide_cov is None and options.guide:
            raise SteerlabError(f"{art.name!r} carries no embedding covariance for step 'covariance' (add one with "
                                "steerlab dglm assemble --covariance); use step 'diagonal' or 'gradient'")
        out = []
        for probe, label in options.pairs:
            if probe not in art.probes:
                close = difflib.get_close_matches(probe, list(art.probes), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise SteerlabError(f"unknown DGLM probe {probe!r}.{hint} Known: {', '.join(sorted(art.probes))}")
            out.append(art.probes[probe].guide(label, options.weight * strength, step, art.guide_cov))
        return out

    def proposal(self, artifact: DGLMArtifact, prompt: str, strength: float, options: DGLMOptions) -> Tensor:
        """The semantic proposal for ``prompt``: a continuation embedding (1, D) sampled from the
        diffusion model given the prompt's embedding, steered by the probes (deterministic given
        ``options.seed``)."""
        from steerlab.scoring.encoders import encode

        cond = torch.from_numpy(encode([prompt], artifact.encoder)).float()  # (1, D)
        g = torch.Generator().manual_seed(options.seed)
        with torch.no_grad():
            return sample(artifact.diffusion, cond, steps=options.steps, sampler=options.sampler,
                          cfg_scale=options.cfg, guides=self.guides(artifact, options, strength), generator=g)

    def soft_prompt(self, lm: LoadedModel, artifact: DGLMArtifact, prompt: str, strength: float,
                    options: DGLMOptions) -> Tensor:
        proposal = self.proposal(artifact, prompt, strength, options)  # (1, D)
        g = torch.Generator().manual_seed(options.seed + 1)
        with torch.no_grad():
            sigma2 = torch.full((1,), options.sigma2)
            soft = artifact.generator(noised(proposal, sigma2, g), sigma2)[0]  # (k, H)
        dtype = next(lm.model.parameters()).dtype
        return soft.to(device=lm.device, dtype=dtype)

    def install(self, lm: LoadedModel, apps: Sequence[Application], hooks: HookSet,
                tracker: PositionTracker) -> None:
        # The decoder's LoRA is on for every row this artifact steers (at any non-zero strength):
        # the strength steers the proposal, not the adaptation.
        entries = [(app.artifact.lora, app.artifact.lora_scaling,  # type: ignore[attr-defined]
                    (app.strengths != 0).float()) for app in apps]
        install_lora(lm, hooks, entries)
