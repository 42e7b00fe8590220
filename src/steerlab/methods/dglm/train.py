"""Training the semantic diffusion model on cached (prefix, continuation) embeddings.

The loop runs on accelerate: one process unless started by ``torchrun`` / ``accelerate launch``,
where gradients are all-reduced and each process takes its share of every global batch. Each step
draws ``batch_size`` pairs (seeded, with replacement), a time per pair, noise and the prefix
dropout; AdamW with linear warm-up then cosine decay. Checkpoints (:mod:`steerlab.core.checkpoint`)
resume only the same run (data digest, settings); Ctrl-C keeps one.

The trained model is a folder: ``diffusion_config.json`` (shape, training settings, held-out
figures, data provenance) + ``diffusion_weights.safetensors``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from steerlab.core.atomic import atomic_dir, check_dir_target
from steerlab.core.checkpoint import CHECKPOINT_FILES, interrupted, load_checkpoint, save_checkpoint
from steerlab.core.validate import check_tensor_values, positive_int
from steerlab.errors import ArtifactError, SteerlabError
from steerlab.methods.dglm.data import PairSet
from steerlab.methods.dglm.diffusion import Denoiser, DiffusionConfig, diffusion_loss, sample
from steerlab.progress import maybe_bar

CONFIG = "diffusion_config.json"
WEIGHTS = "diffusion_weights.safetensors"


@dataclass
class DiffusionModel:
    """A trained denoiser with what it was trained on and how well it does."""

    model: Denoiser
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> DiffusionConfig:
        return self.model.config

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        target = Path(path)
        state = {k: v.detach().float().contiguous() for k, v in self.model.state_dict().items()}
        for k, v in state.items():
            check_tensor_values(f"diffusion tensor {k!r}", v)
        with atomic_dir(target, {CONFIG, WEIGHTS}, overwrite=overwrite, what="DGLM diffusion model") as tmp:
            save_file(state, str(tmp / WEIGHTS))
            (tmp / CONFIG).write_text(json.dumps({"kind": "steerlab-dglm-diffusion", "format_version": 1,
                                                  "config": self.config.to_dict(), "meta": self.meta}, indent=1))
        return target

    @classmethod
    def load(cls, path: str | Path) -> DiffusionModel:
        root = Path(path)
        try:
            doc = json.loads((root / CONFIG).read_text(encoding="utf-8"))
            if doc.get("kind") != "steerlab-dglm-diffusion":
                raise ValueError("not a DGLM diffusion model")
            model = Denoiser(DiffusionConfig(**doc["config"]))
            tensors = load_file(str(root / WEIGHTS))
            missing = set(model.state_dict()) ^ set(tensors)
            if missing:
                raise ValueError(f"tensors do not match the config: {sorted(missing)[:4]}")
            for k, v in tensors.items():
                check_tensor_values(f"diffusion tensor {k!r}", v)
            model.load_state_dict(tensors)
        except (OSError, ValueError, TypeError, KeyError, SafetensorError, RuntimeError) as exc:
            raise ArtifactError(f"{root} is not a DGLM diffusion model: {exc}") from None
        model.eval()
        return cls(model, doc.get("meta", {}))


def train_diffusion(data: PairSet, config: DiffusionConfig | None = None, *, n_steps: int = 6000,
                    batch_size: int = 256, lr: float = 5e-4, weight_decay: float = 0.01, warmup: int = 200,
                    seed: int = 0, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 500,
                    restart: bool = False, device: str = "cpu", progress: bool = True) -> DiffusionModel:
    """Train a denoiser on ``data``'s training split; measure it on its validation split."""
    positive_int("n_steps", n_steps)
    positive_int("batch_size", batch_size)
    positive_int("checkpoint_every", checkpoint_every)
    train, val = data.split("train"), data.split("validation")
    config = config or DiffusionConfig(dim=int(train.prefix.shape[1]))
    if config.dim != train.prefix.shape[1]:
        raise SteerlabError(f"the data's embeddings are {train.prefix.shape[1]}-d; the config says {config.dim}")
    torch.manual_seed(seed)
    model = Denoiser(config).to(device)
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    # n_steps is part of the run: the learning-rate schedule depends on it
    run = {"config": {**config.to_dict(), "lr": lr, "weight_decay": weight_decay, "warmup": warmup,
                      "batch_size": batch_size, "seed": seed, "n_steps": n_steps},
           "data": data.provenance.get("digest"), "model": None}
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    start, history = 0, list[float]()
    if ckpt is not None:
        check_dir_target(ckpt, CHECKPOINT_FILES, overwrite=True, what="DGLM checkpoint")
        if (ckpt / "state.json").is_file() and not restart:
            start, history = load_checkpoint(ckpt, params, opt, run, n_steps)
    from accelerate import Accelerator

    acc = Accelerator(cpu=device == "cpu", device_placement=False)
    rank, world = acc.process_index, acc.num_processes
    if batch_size % world:
        raise SteerlabError(f"batch_size {batch_size} must be a multiple of the {world} processes")
    wrapped, opt = acc.prepare(model, opt)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(start + s, warmup, n_steps))
    x, cond = train.continuation.to(device), train.prefix.to(device)  # (N, D) each
    t0 = time.perf_counter()
    done = start
    model.train()
    try:
        with maybe_bar(progress, n_steps - start, f"training DGLM diffusion ({len(x)} pairs)") as advance:
            for step in range(start, n_steps):
                gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)  # resumable draws
                idx = torch.randint(0, len(x), (batch_size,), generator=gen, device=device)[rank::world]
                loss = diffusion_loss(wrapped, x[idx], cond[idx], generator=gen)
                opt.zero_grad()
                acc.backward(loss)
                opt.step()
                sched.step()
                history.append(float(acc.reduce(loss.detach(), "mean")))
                done = step + 1
                recent = history[-50:]
                advance(1, f"loss {sum(recent) / len(recent):.4f}")
                if ckpt is not None and (done % checkpoint_every == 0 or done == n_steps) and acc.is_main_process:
                    save_checkpoint(ckpt, params, opt, done, history, run, "DGLM checkpoint")
    except KeyboardInterrupt:
        raise interrupted(ckpt, done, start, n_steps, lambda path: save_checkpoint(
            path, params, opt, done, history, run, "DGLM checkpoint"), acc.is_main_process) from None
    model.eval()
    figures = evaluate_diffusion(model, val, seed=seed)
    meta = {"training": {"n_steps": n_steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                         "warmup": warmup, "seed": seed, "processes": world, "resumed_from_step": start,
                         "seconds_this_run": round(time.perf_counter() - t0, 1),
                         "loss_first": history[0] if history else None,
                         "loss_last_100": sum(history[-100:]) / max(1, len(history[-100:])),
                         "loss_history_every_50": [round(v, 5) for v in history[::50]],
                         "parameters": sum(p.numel() for p in model.parameters())},
            "validation": figures, "data": data.provenance}
    return DiffusionModel(model.cpu(), meta)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    frac = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


@torch.no_grad()
def evaluate_diffusion(model: Denoiser, val: PairSet, *, n: int = 512, steps: int = 25,
                       seed: int = 0) -> dict[str, float]:
    """Held-out figures: v-loss, and how close sampled continuation embeddings come to the true
    ones (cosine) with the prefix, without it, and for a random other continuation (the floor)."""
    g = torch.Generator().manual_seed(seed)
    k = min(n, len(val.pairs))
    idx = torch.randperm(len(val.pairs), generator=g)[:k]
    x, cond = val.continuation[idx], val.prefix[idx]
    device = next(model.parameters()).device
    x, cond = x.to(device), cond.to(device)
    loss = float(diffusion_loss(model, x, cond, generator=torch.Generator(device=device).manual_seed(seed)))
    cos = torch.nn.functional.cosine_similarity
    cond_s = sample(model, cond, steps=steps, generator=torch.Generator(device=device).manual_seed(seed))
    free_s = sample(model, None, n=k, steps=steps, generator=torch.Generator(device=device).manual_seed(seed))
    other = x[torch.roll(torch.arange(k), 1)]
    return {"pairs": k, "v_loss": loss, "cos_conditional": float(cos(cond_s, x, dim=-1).mean()),
            "cos_unconditional": float(cos(free_s, x, dim=-1).mean()),
            "cos_other_continuation": float(cos(other, x, dim=-1).mean()),
            "cos_prefix_itself": float(cos(cond, x, dim=-1).mean())}
