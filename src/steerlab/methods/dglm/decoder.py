"""DGLM's decoder side: a prompt generator that turns a (noised) continuation embedding into soft
prompts, and the decoder's LoRA adaptation that learns to follow them (Lovelace et al. 2024, §3.2).

Training, per pair: ``z = √(1 − σ²)·ê + σ·ε`` with the continuation's embedding ``e`` in the
diffusion space (``ê = √D · e / ‖e‖``, components of about unit variance, as the noise's) and
``σ² ~ U(0, 1)`` (Gaussian-noise augmentation: at σ² → 1 the soft prompt carries nothing, and
the decoder learns to fall back to plain continuation); the prompt generator maps ``(z, σ²)`` to
``k`` vectors placed before the prefix tokens; the loss is the decoder's cross-entropy on the
continuation tokens only. The prompt generator and a PEFT LoRA on the decoder's attention
projections train together (accelerate; the base weights stay untouched, so DGLM composes with
every other method). At generation, σ² (default 0.05) is a knob: the proposal from the diffusion
model is noised by it before the prompt generator reads it.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from steerlab.core.atomic import check_dir_target
from steerlab.core.checkpoint import CHECKPOINT_FILES, interrupted, load_checkpoint, save_checkpoint
from steerlab.core.validate import positive_int
from steerlab.errors import SteerlabError
from steerlab.methods.dglm.data import PairSet
from steerlab.methods.dglm.diffusion import scalar_features, standardize
from steerlab.methods.peft_lora import attention_modules, lora_modules, peft_module
from steerlab.models.loading import LoadedModel, holds_model_lock
from steerlab.progress import maybe_bar


@dataclass
class PromptGeneratorConfig:
    """Shape of the prompt generator."""

    dim: int = 384  # sentence-embedding width
    hidden: int = 576  # the decoder's embedding width
    k: int = 8  # soft-prompt vectors
    width: int = 1024  # the content network's hidden width
    noise_features: int = 64  # sinusoidal features of σ² fed to the content network

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class PromptGenerator(nn.Module):
    """(noisy embedding (B, D), σ² (B,)) -> soft prompts (B, k, hidden).

    ``soft = base + gain · content(z, σ²)``: a learned prompt shared by every row (the "domain"
    part: what kind of text follows) plus a content term read from the embedding, each free in
    size. The sum is not normalised: a generator whose every vector is rescaled to a fixed norm
    learns the shared part first and leaves the content a sliver of that norm (its prompts for
    different embeddings end up 0.97–0.999 cosine-similar and the decoder cannot tell them
    apart); kept apart, the content term is what the loss pays for.
    """

    def __init__(self, config: PromptGeneratorConfig, embed_scale: float = 1.0) -> None:
        super().__init__()
        c = self.config = config
        # shared prompt, started at the decoder's typical token-embedding norm
        self.base = nn.Parameter(torch.randn(c.k, c.hidden) / c.hidden ** 0.5 * float(embed_scale))
        self.content = nn.Sequential(nn.Linear(c.dim + c.noise_features, c.width), nn.SiLU(),
                                     nn.Linear(c.width, c.k * c.hidden))
        self.gain = nn.Parameter(torch.tensor(1.0))

    def forward(self, z: Tensor, sigma2: Tensor) -> Tensor:
        c = self.config
        x = torch.cat([z, scalar_features(sigma2, c.noise_features).to(z.dtype)], dim=-1)  # (B, D + F)
        content = self.content(x).view(-1, c.k, c.hidden)  # (B, k, hidden)
        return self.base[None] + self.gain * content


def noised(e: Tensor, sigma2: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``√(1 − σ²)·ê + σ·ε`` per row, ``ê`` the standardised embedding: e (B, D), σ² (B,)."""
    eps = torch.randn(e.shape, generator=generator, device=e.device)
    return (1 - sigma2).clamp(min=0).sqrt()[:, None] * standardize(e) + sigma2.sqrt()[:, None] * eps


def embed_scale(lm: LoadedModel) -> float:
    """Median norm of the decoder's token embeddings (the shared prompt starts at it)."""
    w = lm.model.get_input_embeddings().weight.detach().float()
    return float(w.norm(dim=-1).median())


def batch_inputs(lm: LoadedModel, soft: Tensor, prefixes: list[list[int]], continuations: list[list[int]]
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded [soft; prefix; continuation] input embeddings (B, T, H), attention mask (B, T)
    and labels (B, T) with -100 everywhere but the continuation tokens."""
    table = lm.model.get_input_embeddings()
    k = soft.shape[1]
    lengths = [k + len(p) + len(c) for p, c in zip(prefixes, continuations)]
    t = max(lengths)
    b = len(prefixes)
    embeds = soft.new_zeros((b, t, soft.shape[2]))
    mask = torch.zeros((b, t), dtype=torch.long, device=soft.device)
    labels = torch.full((b, t), -100, dtype=torch.long, device=soft.device)
    for i, (p, c) in enumerate(zip(prefixes, continuations)):
        ids = torch.tensor(p + c, dtype=torch.long, device=soft.device)
        embeds[i, :k] = soft[i]
        embeds[i, k:k + len(ids)] = table(ids).to(soft.dtype)
        mask[i, :lengths[i]] = 1
        labels[i, k + len(p):lengths[i]] = ids[len(p):]
    return embeds, mask, labels


@holds_model_lock
def train_decoder(lm: LoadedModel, data: PairSet, config: PromptGeneratorConfig | None = None, *,
                  n_steps: int = 400, batch_size: int = 8, lr: float = 1e-3, lora_lr: float | None = None,
                  prefix_drop: float = 0.0, short_prefix: float = 0.0, r: int = 8, lora_alpha: float = 16.0,
                  seed: int = 0,
                  checkpoint_dir: str | Path | None = None,
                  checkpoint_every: int = 100, restart: bool = False, progress: bool = True,
                  init: tuple[PromptGenerator, dict[str, tuple[Tensor, Tensor]]] | None = None
                  ) -> tuple[PromptGenerator, dict[str, tuple[Tensor, Tensor]], dict[str, Any]]:
    """Train the prompt generator and a LoRA on ``lm``'s attention on ``data``'s training split.
    Returns the generator, the LoRA factors by module name (A (r, in), B (out, r)) and a record of
    the run (losses by noise level). ``lm`` is left exactly as it was. ``lora_lr`` (default
    ``lr / 5``) is the LoRA's own learning rate.

    ``prefix_drop``: the share of rows trained without their prefix (``[soft; continuation]``),
    where the soft prompt is the only source of what to write. With the prefix always present it
    already predicts most of the continuation, and the generator can settle on one constant
    "domain" prompt that ignores the embedding; reconstruction rows make encoding the embedding pay.

    ``short_prefix``: the share of the rows that keep a prefix whose prefix is cut to its last
    4–16 tokens. Users prompt with a few words, the pairs have 32-token prefixes; these rows teach
    the decoder to continue a short prompt fluently into its proposal.

    ``checkpoint_dir``: every ``checkpoint_every`` steps (and on Ctrl-C) the generator, the LoRA
    and the optimiser's moments are saved there (:mod:`steerlab.core.checkpoint`, safetensors); a
    later call of the same run resumes from it, drawing the very batches it would have drawn (each
    step's draws are seeded by the step), so a long CPU run can be stopped and continued.

    ``init``: a trained generator and LoRA factors (an artifact's) to start from instead of a fresh
    initialisation — a longer run continues an earlier one with a new schedule (``n_steps`` fixes
    the learning-rate schedule, so a checkpoint cannot simply be extended). The generator's config
    and the factors' rank take precedence; ``config`` and ``r``, when they disagree, are refused."""
    positive_int("n_steps", n_steps)
    positive_int("batch_size", batch_size)
    positive_int("checkpoint_every", checkpoint_every)
    if not 0.0 <= prefix_drop <= 1.0:
        raise SteerlabError(f"prefix_drop is a probability in [0, 1], got {prefix_drop}")
    if not 0.0 <= short_prefix <= 1.0:
        raise SteerlabError(f"short_prefix is a probability in [0, 1], got {short_prefix}")
    train = data.split("train")
    if init is not None:
        config, r = _init_shapes(init, config, r)
    config = config or PromptGeneratorConfig(dim=int(train.continuation.shape[1]), hidden=lm.hidden_size)
    if config.dim != train.continuation.shape[1] or config.hidden != lm.hidden_size:
        raise SteerlabError(f"the prompt generator maps {config.dim} -> {config.hidden}; the data is "
                            f"{train.continuation.shape[1]}-d and {lm.name} has hidden size {lm.hidden_size}")
    lora_lr = lora_lr if lora_lr is not None else lr / 5
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    if ckpt is not None:
        check_dir_target(ckpt, CHECKPOINT_FILES, overwrite=True, what="DGLM decoder checkpoint")
    run = {"config": config.to_dict(), "n_steps": n_steps, "batch_size": batch_size, "lr": lr, "lora_lr": lora_lr,
           "prefix_drop": prefix_drop, "short_prefix": short_prefix, "r": r, "lora_alpha": lora_alpha, "seed": seed,
           "data": data.provenance.get("digest"), "model": lm.name,
           "init": _digest_init(init) if init is not None else None}
    torch.manual_seed(seed)
    gen_module = PromptGenerator(config, embed_scale(lm)).to(lm.device)
    if init is not None:
        gen_module.load_state_dict(init[0].state_dict())
    peft = peft_module()
    model = lm.model
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    pm = peft.get_peft_model(model, peft.LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=0.0, bias="none",
                                                    target_modules=attention_modules(model)))
    tok = lm.tokenizer
    history: list[tuple[float, float]] = []  # (σ² of the batch's mean, loss)
    t0 = time.perf_counter()
    start = done = 0
    try:
        lora = lora_modules(pm)
        if init is not None:
            _load_lora(lora, init[1])
        params = {**{f"lora.{n}": p for n, p in pm.named_parameters() if p.requires_grad},
                  **{f"generator.{n}": p for n, p in gen_module.named_parameters()}}
        opt = torch.optim.AdamW([{"params": [p for n, p in params.items() if n.startswith("lora.")], "lr": lora_lr},
                                 {"params": list(gen_module.parameters()), "lr": lr}])

        def save(path: Path) -> None:
            flat = [v for pair in history for v in pair]  # σ², loss, σ², loss, ...
            save_checkpoint(path, params, opt, done, flat, run, "DGLM decoder checkpoint")

        if ckpt is not None and (ckpt / "state.json").is_file() and not restart:
            start, flat = load_checkpoint(ckpt, params, opt, run, n_steps)
            history = list(zip(flat[0::2], flat[1::2]))
            done = start
        pm.train()
        with maybe_bar(progress, n_steps - start, f"training DGLM decoder ({len(train.pairs)} pairs)") as advance:
            for step in range(start, n_steps):
                step_seed = seed * 1_000_003 + step  # resumable draws
                rng = random.Random(step_seed)
                g = torch.Generator(device=lm.device).manual_seed(step_seed)
                idx = [rng.randrange(len(train.pairs)) for _ in range(batch_size)]
                keep = [rng.random() >= prefix_drop for _ in idx]
                pre = [tok(train.pairs[i].prefix, add_special_tokens=False)["input_ids"] if k else []
                       for i, k in zip(idx, keep)]
                if short_prefix:  # drawn after the batch's other draws: runs without it are unchanged
                    pre = [p[-rng.randint(4, 16):] if p and rng.random() < short_prefix else p for p in pre]
                cont = [tok(train.pairs[i].continuation, add_special_tokens=False)["input_ids"] for i in idx]
                e = train.continuation[torch.tensor(idx)].to(lm.device)  # (B, D)
                sigma2 = torch.rand(batch_size, generator=g, device=lm.device)
                soft = gen_module(noised(e, sigma2, g), sigma2)  # (B, k, H)
                embeds, mask, labels = batch_inputs(lm, soft, pre, cont)
                logits = pm(inputs_embeds=embeds, attention_mask=mask).logits  # (B, T, V)
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                       labels[:, 1:].reshape(-1), ignore_index=-100)
                opt.zero_grad()
                loss.backward()
                opt.step()
                history.append((float(sigma2.mean()), float(loss.detach())))
                done = step + 1
                recent = [x for _, x in history[-20:]]
                advance(1, f"loss {sum(recent) / len(recent):.3f}")
                if ckpt is not None and (done % checkpoint_every == 0 or done == n_steps):
                    save(ckpt)
        factors = {n: (m.lora_A["default"].weight.detach().float().cpu().clone(),
                       m.lora_B["default"].weight.detach().float().cpu().clone()) for n, m in lora.items()}
    except KeyboardInterrupt:
        raise interrupted(ckpt, done, start, n_steps, save) from None
    finally:
        pm.unload()
        for n, p in model.named_parameters():
            p.requires_grad_(grads.get(n, p.requires_grad))
        model.train(was_training)
    gen_module.eval()
    record = {"n_steps": n_steps, "batch_size": batch_size, "lr": lr, "lora_lr": lora_lr, "prefix_drop": prefix_drop,
              "short_prefix": short_prefix,
              "resumed_from_step": start, "warm_start": init is not None,
              "r": r, "lora_alpha": lora_alpha, "seed": seed,
              "seconds": round(time.perf_counter() - t0, 1), "loss_first": history[0][1],
              "loss_last_20": sum(x for _, x in history[-20:]) / len(history[-20:]),
              "history": [[round(s, 3), round(x, 4)] for s, x in history]}
    return gen_module.cpu(), factors, record


def _init_shapes(init: tuple[PromptGenerator, dict[str, tuple[Tensor, Tensor]]],
                 config: PromptGeneratorConfig | None, r: int) -> tuple[PromptGeneratorConfig, int]:
    """The generator config and LoRA rank a warm start fixes; a disagreeing request is refused."""
    gen, factors = init
    if config is not None and config != gen.config:
        raise SteerlabError(f"the warm start's prompt generator is {gen.config}; asked for {config}")
    ranks = {a.shape[0] for a, _ in factors.values()}
    if len(ranks) != 1:
        raise SteerlabError(f"the warm start's LoRA factors have mixed ranks {sorted(ranks)}")
    (rank,) = ranks
    if r != rank:
        raise SteerlabError(f"the warm start's LoRA has rank {rank}; asked for r={r}")
    return gen.config, rank


def _load_lora(modules: dict[str, Any], factors: dict[str, tuple[Tensor, Tensor]]) -> None:
    """Copy trained factors (A (r, in), B (out, r)) into PEFT's freshly made LoRA modules."""
    if set(modules) != set(factors):
        diff = sorted(set(modules) ^ set(factors))
        raise SteerlabError(f"the warm start adapts other modules than this model's attention: {diff[:3]}")
    with torch.no_grad():
        for name, m in modules.items():
            a, b = factors[name]
            wa, wb = m.lora_A["default"].weight, m.lora_B["default"].weight
            if a.shape != wa.shape or b.shape != wb.shape:
                raise SteerlabError(f"the warm start's LoRA on {name} is {tuple(a.shape)}/{tuple(b.shape)}; "
                                    f"this model needs {tuple(wa.shape)}/{tuple(wb.shape)}")
            wa.copy_(a.to(wa))
            wb.copy_(b.to(wb))


def _digest_init(init: tuple[PromptGenerator, dict[str, tuple[Tensor, Tensor]]]) -> str:
    """A digest of the warm start's weights: a checkpoint resumes only the run that started from them."""
    import hashlib

    h = hashlib.sha256()
    tensors = [*init[0].state_dict().items(), *((f"{n}.{i}", t) for n, ab in sorted(init[1].items())
                                                for i, t in enumerate(ab))]
    for name, t in sorted(tensors, key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
