"""The semantic diffusion model: a transformer that denoises a continuation's sentence embedding,
conditioned on the prefix's embedding (Lovelace et al. 2024, §3).

* **Schedule**: variance-preserving, cosine (``ᾱ(t) = cos²(((t + s) / (1 + s)) · π/2)``, t ∈ [0, 1]);
  ``z_t = α_t x + σ_t ε`` with ``α_t = √ᾱ``, ``σ_t = √(1 − ᾱ)``.
* **Parameterisation**: v-prediction, ``v = α_t ε − σ_t x``; the loss is the mean squared error on v.
  From a predicted v: ``x̂ = α_t z_t − σ_t v``, ``ε̂ = σ_t z_t + α_t v``.
* **Space**: sentence embeddings are unit vectors whose components are ~1/√D, far below the
  unit-variance noise (the signal-to-noise ratio would sit D times below the schedule's). The model
  works on ``√D · e / ‖e‖`` (components of about unit variance, as the noise); :func:`sample` returns
  embeddings divided back by √D.
* **Denoiser**: the D-dim embedding is split into ``n_tokens`` feature tokens (D / n each), the
  prefix embedding likewise; both are projected to ``width``, given learned positions, and a
  transformer encoder reads [prefix tokens; noisy tokens] with the time embedding added to every
  token. The prefix is dropped (replaced by a learned null) with probability ``cond_dropout`` in
  training, which gives classifier-free guidance at sampling time.
* **Samplers**: DDPM (ancestral, ``steps`` of the discretised schedule) and DDIM (``eta = 0``,
  deterministic, few steps). Classifier-free guidance: ``v = v_∅ + w · (v_c − v_∅)``. Probe guidance
  (plug-and-play control): at each step the predicted ``x̂`` is normalised, every probe's loss
  ``−log σ(±logit)`` is differentiated with respect to it, and ``x̂`` moves against the summed
  gradient, a step of ``0.01 · weight · ‖x̂‖``, before the step is taken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from steerlab.errors import SteerlabError
from steerlab.scoring.linear import LinearHead


@dataclass
class DiffusionConfig:
    """Shape of the denoiser (defaults: 384-d MiniLM embeddings on 2 CPU cores)."""

    dim: int = 384  # embedding width D
    n_tokens: int = 8  # feature tokens the embedding is split into (D % n_tokens == 0)
    width: int = 256  # transformer width
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0
    cond_dropout: float = 0.1  # P(prefix replaced by the null token) in training
    schedule_offset: float = 0.008  # s of the cosine schedule

    def __post_init__(self) -> None:
        if self.dim % self.n_tokens:
            raise SteerlabError(f"dim {self.dim} does not split into {self.n_tokens} feature tokens")
        if self.width % self.heads:
            raise SteerlabError(f"width {self.width} does not split into {self.heads} heads")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise SteerlabError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def alpha_sigma(t: Tensor, s: float = 0.008) -> tuple[Tensor, Tensor]:
    """(α_t, σ_t) of the cosine schedule at times ``t`` ∈ [0, 1]; α² + σ² = 1."""
    abar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = abar.clamp(1e-6, 1.0 - 1e-6)  # keep both ends invertible
    return abar.sqrt(), (1 - abar).sqrt()


def standardize(e: Tensor) -> Tensor:
    """Sentence embeddings (B, D) -> the diffusion space: unit-normalised, times √D."""
    return e / e.norm(dim=-1, keepdim=True).clamp(min=1e-12) * math.sqrt(e.shape[-1])


def scalar_features(t: Tensor, width: int) -> Tensor:
    """Sinusoidal features of a scalar per row in [0, 1] (diffusion time, noise level): (B,) -> (B, width)."""
    half = width // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * 1000.0 * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Denoiser(nn.Module):
    """Predicts v for a noisy continuation embedding, given the prefix embedding (or none)."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        piece = c.dim // c.n_tokens
        self.z_in = nn.Linear(piece, c.width)
        self.cond_in = nn.Linear(piece, c.width)
        self.null = nn.Parameter(torch.zeros(c.n_tokens, c.width))  # the dropped prefix
        self.pos = nn.Parameter(torch.randn(2 * c.n_tokens, c.width) * 0.02)
        self.time = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        layer = nn.TransformerEncoderLayer(c.width, c.heads, 4 * c.width, c.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, piece)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: Tensor, t: Tensor, cond: Tensor | None, drop: Tensor | None = None) -> Tensor:
        """z (B, D), t (B,), cond (B, D) or None (unconditional), drop (B,) bool: rows whose prefix
        is replaced by the null token. Returns v (B, D)."""
        c = self.config
        b = z.shape[0]
        zt = self.z_in(z.view(b, c.n_tokens, -1))  # (B, n, W)
        if cond is None:
            ct = self.null.expand(b, -1, -1)
        else:
            ct = self.cond_in(cond.view(b, c.n_tokens, -1))  # (B, n, W)
            if drop is not None:
                ct = torch.where(drop[:, None, None], self.null.expand(b, -1, -1), ct)
        h = torch.cat([ct, zt], dim=1) + self.pos  # (B, 2n, W)
        h = h + self.time(scalar_features(t, c.width))[:, None, :]
        h = self.norm(self.encoder(h))
        return self.out(h[:, c.n_tokens:]).reshape(b, c.dim)  # (B, D)


def diffusion_loss(model: Denoiser, x: Tensor, cond: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """v-prediction MSE for clean continuation embeddings ``x`` (B, D) given prefix embeddings
    ``cond`` (B, D), at uniform random times, with prefix dropout (both standardised first)."""
    x, cond = standardize(x), standardize(cond)
    b = x.shape[0]
    t = torch.rand(b, generator=generator, device=x.device)
    eps = torch.randn(x.shape, generator=generator, device=x.device)
    drop = torch.rand(b, generator=generator, device=x.device) < model.config.cond_dropout
    a, s = alpha_sigma(t, model.config.schedule_offset)
    z = a[:, None] * x + s[:, None] * eps
    v = a[:, None] * eps - s[:, None] * x
    return ((model(z, t, cond, drop) - v) ** 2).mean()


@dataclass
class ProbeGuide(LinearHead):
    """A linear probe on the embedding space steering the sample: its logit on the
    unit-normalised predicted embedding; ``target`` +1 raises P(positive class), −1 lowers it;
    ``weight`` scales its gradient step; ``step`` picks the step's direction (see
    :meth:`precondition`; ``covariance`` needs ``cov``, the embedding covariance (D, D))."""

    target: float = 1.0
    weight: float = 1.0
    step: str = "diagonal"
    cov: Tensor | None = None  # (D, D), symmetric positive semi-definite; any scale

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.step not in GUIDE_STEPS:
            raise SteerlabError(f"guidance step must be one of {', '.join(GUIDE_STEPS)}, got {self.step!r}")
        if self.step == "covariance" and self.cov is None:
            raise SteerlabError("the covariance guidance step needs the embedding covariance")

    def loss(self, x: Tensor) -> Tensor:
        """−log σ(target · logit) per row: (B, D) -> (B,)."""
        return -torch.nn.functional.logsigmoid(self.target * self(x))

    def precondition(self, grad: Tensor) -> Tensor:
        """The step direction for this probe's loss gradient (B, D) -> (B, D).

        ``gradient``: the raw gradient (the paper's plain step); it is ∝ coef / std, so it points
        along the embedding's lowest-variance dimensions, where the probe is satisfied (P → 1) by
        moves that change no meaning. ``diagonal``: the gradient in the probe's standardised
        coordinates mapped back (× std²); still adversarial against an over-confident probe.
        ``covariance``: ``grad Σ``, the natural-gradient direction under the embeddings'
        distribution; for a linear probe it is close to the class-mean difference, so the probe
        moves only as far as meaning does (docs: DGLM, for the measurements)."""
        if self.step == "covariance":
            assert self.cov is not None  # __post_init__
            return grad @ self.cov.to(grad)
        if self.step == "diagonal":
            return grad * self.std.to(grad) ** 2
        return grad


GUIDE_STEPS = ("covariance", "diagonal", "gradient")
"""The directions a probe's guidance step can take (:meth:`ProbeGuide.precondition`)."""

GUIDE_STEP = 0.01
"""Length of one unit of guidance weight, as a fraction of the predicted embedding's norm."""


def _guided_x0(x0: Tensor, guides: Sequence[ProbeGuide]) -> Tensor:
    """Move each predicted embedding against the probes' weighted loss gradients. The loss reads
    the unit-normalised embedding; each probe's gradient is taken in its standardised coordinates
    and given a share ``|weight|`` of the step; the step has length ``GUIDE_STEP · Σ|weights| · ‖x̂‖``,
    so a probe's arbitrary logit scale cannot blow the proposal up."""
    active = [g for g in guides if g.weight != 0]
    if not active:
        return x0
    with torch.enable_grad():
        x = x0.detach().requires_grad_(True)
        unit = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        grad = torch.zeros_like(x0)
        for g in active:
            (part,) = torch.autograd.grad((g.weight * g.loss(unit)).sum(), x, retain_graph=True)
            part = g.precondition(part)
            grad = grad + part / part.norm(dim=-1, keepdim=True).clamp(min=1e-12) * abs(g.weight)
    scale = GUIDE_STEP * sum(abs(g.weight) for g in active)
    direction = grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return x0 - scale * x0.norm(dim=-1, keepdim=True) * direction


@torch.no_grad()
def sample(model: Denoiser, cond: Tensor | None, *, steps: int = 25, sampler: str = "ddim", cfg_scale: float = 1.0,
           guides: Sequence[ProbeGuide] = (), generator: torch.Generator | None = None,
           n: int | None = None) -> Tensor:
    """Continuation embeddings (B, D) for prefix embeddings ``cond`` (B, D) (or ``n`` unconditional
    samples). ``sampler``: ``ddim`` (deterministic given the start noise) or ``ddpm`` (ancestral).
    ``cfg_scale`` 1 is plain conditional sampling; 0 unconditional. The result is the sample in the
    diffusion space divided by √D (about unit norm)."""
    if sampler not in ("ddim", "ddpm"):
        raise SteerlabError(f"sampler must be ddim or ddpm, got {sampler!r}")
    if steps < 1:
        raise SteerlabError(f"steps must be >= 1, got {steps}")
    c = model.config
    b = cond.shape[0] if cond is not None else int(n or 1)
    device = next(model.parameters()).device
    cond = standardize(cond) if cond is not None else None
    z = torch.randn((b, c.dim), generator=generator, device=device)
    times = torch.linspace(1.0, 0.0, steps + 1, device=device)
    for i in range(steps):
        t, t_next = times[i].expand(b), times[i + 1].expand(b)
        a, s = alpha_sigma(t, c.schedule_offset)
        a_n, s_n = alpha_sigma(t_next, c.schedule_offset)
        if cond is None or cfg_scale == 0.0:
            v = model(z, t, None)
        elif cfg_scale == 1.0:
            v = model(z, t, cond)
        else:
            v_c, v_u = model(torch.cat([z, z]), torch.cat([t, t]), torch.cat([cond, cond]),
                             torch.cat([torch.zeros(b, dtype=torch.bool, device=device),
                                        torch.ones(b, dtype=torch.bool, device=device)])).chunk(2)
            v = v_u + cfg_scale * (v_c - v_u)
        x0 = a[:, None] * z - s[:, None] * v
        x0 = _guided_x0(x0, guides)
        eps = (z - a[:, None] * x0) / s[:, None]
        if i == steps - 1:
            z = x0
        elif sampler == "ddim":
            z = a_n[:, None] * x0 + s_n[:, None] * eps
        else:  # ancestral: the posterior q(z_next | z, x0)
            # DDIM with eta = 1: var = (σ_next² / σ_t²) (1 − α_t² / α_next²)
            var = ((s_n ** 2) / (s ** 2) * (1 - (a / a_n) ** 2)).clamp(min=0.0)
            mean_eps = (s_n ** 2 - var).clamp(min=0.0).sqrt()
            z = (a_n[:, None] * x0 + mean_eps[:, None] * eps
                 + var.sqrt()[:, None] * torch.randn(z.shape, generator=generator, device=device))
    return z / math.sqrt(c.dim)
