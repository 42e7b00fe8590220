"""Train LM-Steer steers with the LM frozen, as the paper does: language-modelling loss on
attribute-labelled text with the training steer's value set to the label (+1 / −1) and the dummy
steer (if any) set to 1.

Only the final hidden state feeds the steer, so the frozen model runs once per batch without
gradients and backpropagation covers just the adaptor and the LM head: a step costs about one
forward pass. Checkpoints (parameters, Adam state, step) are safetensors + JSON and training
resumes from the last one — only when the checkpoint was made with the same data, settings and
model (a digest of all three is stored with it; ``restart=True`` starts afresh instead). Ctrl-C
saves a checkpoint at the last finished step. Data order and initialisation follow ``seed``.

Defaults for a 135M model on 2 CPU cores: each step still needs one forward pass of the frozen
model over ``batch_size`` texts (~2 s for 16 review snippets), so 300 steps × 16 texts (about 10
minutes; ~4,800 texts, most of the Rotten Tomatoes training half seen once) with lr 1e-2 (the
official sentiment setting), rank 256 (2 × 576 × 256 = 295k parameters = 0.22% of SmolLM2 per
steer, the paper's ~0.2%; the adaptor costs little next to the LM head), ε 1e-3 and init_var 1e-2
as in the official code.

Larger models: the frozen forward dominates a step (Qwen2.5-1.5B: ~3 GFLOP per token against the
head's ~0.5), so ``max_examples`` trains on a fixed subset for several epochs and
``cache_states=True`` keeps each text's final hidden states after its first visit
(:mod:`~steerlab.methods.lm_steer.states`): later epochs cost only the head's forward and backward.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from steerlab.core.atomic import check_dir_target
from steerlab.core.checkpoint import CHECKPOINT_FILES, interrupted, load_checkpoint, save_checkpoint
from steerlab.core.validate import finite, positive_int
from steerlab.data.pairs import ContrastSet, as_contrast, text_hashes
from steerlab.errors import SteerlabError
from steerlab.methods.lm_steer.adaptor import hidden_delta, init_params, logit_offset, regularization
from steerlab.methods.lm_steer.artifact import LMSteer
from steerlab.methods.lm_steer.states import StateCache
from steerlab.models.layout import get_module
from steerlab.models.loading import LoadedModel, holds_model_lock


def _logits(lm: LoadedModel, h: torch.Tensor, adaptor: str, params: dict[str, torch.Tensor],
            values: torch.Tensor, epsilon: float) -> torch.Tensor:
    head = get_module(lm.model, lm.layout.lm_head)
    delta = hidden_delta(adaptor, params, h, values, epsilon)
    logits = head(h + delta if delta is not None else h)  # (B, T, V)
    if adaptor == "offset":
        logits = logits + logit_offset(params, values, epsilon)
    return logits


@holds_model_lock
def train(
    lm: LoadedModel,
    data: Any,
    *,
    adaptor_class: str = "multiply",
    num_steers: int = 2,
    dummy_steer: int | None = 1,
    training_steer: int = 0,
    steer_names: Sequence[str] | None = None,
    rank: int = 256,
    epsilon: float = 1e-3,
    init_var: float = 1e-2,
    regularization_weight: float = 0.0,
    lr: float = 1e-2,
    n_steps: int = 300,
    batch_size: int = 16,
    max_length: int = 64,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 100,
    max_examples: int = 0,
    cache_states: bool = False,
    restart: bool = False,
    name: str | None = None,
    progress: bool = True,
) -> LMSteer:
    """Train an :class:`LMSteer` on positive (+1) / negative (−1) texts. Knob names follow the
    official code; defaults are chosen for a 135M model on 2 CPU cores (see the module docs).

    With ``checkpoint_dir`` the run resumes from a checkpoint there if it was made with the same
    data, settings (all but ``n_steps``) and model; a different one raises
    :class:`~steerlab.errors.CheckpointMismatchError` unless ``restart=True``, which trains from
    step 0 and replaces it. Ctrl-C saves a checkpoint and raises :class:`~steerlab.errors.Interrupted`.
    """
    contrast: ContrastSet = as_contrast(data)
    if max_examples < 0:
        raise SteerlabError(f"max_examples must be >= 0 (0: every example), got {max_examples}")
    for knob, value in (("num_steers", num_steers), ("rank", rank), ("n_steps", n_steps), ("batch_size", batch_size),
                        ("max_length", max_length), ("checkpoint_every", checkpoint_every)):
        positive_int(knob, value)
    for knob, fvalue in (("epsilon", epsilon), ("init_var", init_var), ("regularization", regularization_weight),
                         ("lr", lr)):
        finite(knob, fvalue)
    if not 0 <= training_steer < num_steers or (dummy_steer is not None and not 0 <= dummy_steer < num_steers):
        raise SteerlabError(f"training_steer / dummy_steer must be steer indices 0..{num_steers - 1}")
    if dummy_steer == training_steer:
        raise SteerlabError("dummy_steer must differ from training_steer")
    names = list(steer_names) if steer_names else [
        "dummy" if k == dummy_steer else (contrast.name if k == training_steer else f"steer{k}")
        for k in range(num_steers)]
    examples = _subset([(t, 1.0) for t in contrast.positive], [(t, -1.0) for t in contrast.negative],
                       max_examples, seed)
    gen = torch.Generator().manual_seed(seed)
    vocab = int(lm.config.vocab_size)
    adaptor = _Adaptor(init_params(adaptor_class, num_steers, lm.hidden_size, vocab, rank, init_var, gen))
    params = dict(adaptor.params)  # the module's own parameters, for checkpoints and the artifact
    opt = torch.optim.Adam(adaptor.parameters(), lr=lr)
    accelerator = _accelerator(lm, batch_size)
    start, history = 0, list[float]()
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    run = {"config": {"adaptor_class": adaptor_class, "num_steers": num_steers, "dummy_steer": dummy_steer,
                      "training_steer": training_steer, "rank": rank, "epsilon": epsilon, "init_var": init_var,
                      "regularization": regularization_weight, "lr": lr, "batch_size": batch_size,
                      "max_length": max_length, "seed": seed},
           "data": _data_digest(examples), "model": lm.fingerprint.weights_hash[:16]}
    if ckpt is not None:
        check_dir_target(ckpt, CHECKPOINT_FILES, overwrite=True, what="LM-Steer checkpoint")
        if (ckpt / "state.json").is_file() and not restart:
            start, history = load_checkpoint(ckpt, params, opt, run, n_steps)
    # One process: nothing changes. Under `accelerate launch`: gradients are all-reduced (DDP) and
    # each process takes its share of every batch (the same global batch as one process).
    model, opt = accelerator.prepare(adaptor, opt)
    proc, world = accelerator.process_index, accelerator.num_processes
    order_rng = random.Random(seed)
    order = _epoch_order(len(examples), order_rng)
    consumed = start * batch_size
    for _ in range(consumed // max(1, len(examples))):  # replay the data order up to the resume point
        order = _epoch_order(len(examples), order_rng)
    pos = consumed % max(1, len(examples))
    states = StateCache(lm, [t for t, _ in examples], max_length, cache_states)
    for prm in lm.model.parameters():
        prm.requires_grad_(False)
    t0 = time.perf_counter()
    from steerlab.progress import maybe_bar

    done = start
    try:
        with maybe_bar(progress, n_steps - start, f"training lm-steer ({name or contrast.name})") as advance:
            for step in range(start, n_steps):
                batch: list[int] = []
                while len(batch) < batch_size:
                    if pos >= len(order):
                        order, pos = _epoch_order(len(examples), order_rng), 0
                    batch.append(order[pos])
                    pos += 1
                batch = batch[proc::world]  # this process's share of the global batch
                values = torch.zeros(len(batch), num_steers)
                values[:, training_steer] = torch.tensor([examples[i][1] for i in batch])
                if dummy_steer is not None:
                    values[:, dummy_steer] = 1.0
                h, labels = states.batch(batch)  # (B, T, H), (B, T-1)
                logits = model(lm, h, adaptor_class, values, epsilon)  # (B, T, V)
                nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                      ignore_index=-100, reduction="sum")
                # Mean over the *global* batch's tokens: DDP averages gradients over processes, so
                # scaling by the process count makes them equal one process's on the whole batch.
                tokens = accelerator.reduce((labels != -100).sum(), "sum").clamp(min=1)
                loss = nll * world / tokens
                total = loss + regularization_weight * regularization(params) if regularization_weight else loss
                opt.zero_grad()
                accelerator.backward(total)
                opt.step()
                history.append(float(accelerator.reduce(nll.detach(), "sum") / tokens))  # global mean NLL
                done = step + 1
                recent = history[-20:]
                advance(1, f"loss {sum(recent) / len(recent):.3f}")
                if ckpt is not None and (done % checkpoint_every == 0 or done == n_steps):
                    if accelerator.is_main_process:
                        save_checkpoint(ckpt, params, opt, done, history, run, "LM-Steer checkpoint")
                    accelerator.wait_for_everyone()
    except KeyboardInterrupt:
        raise interrupted(ckpt, done, start, n_steps, lambda path: save_checkpoint(
            path, params, opt, done, history, run, "LM-Steer checkpoint"), accelerator.is_main_process) from None
    seconds = time.perf_counter() - t0
    n_model = sum(p.numel() for p in lm.model.parameters())
    n_steer = sum(p.numel() for p in params.values())
    config = {"adaptor_class": adaptor_class, "num_steers": num_steers, "dummy_steer": dummy_steer,
              "training_steer": training_steer, "rank": rank, "epsilon": epsilon, "init_var": init_var,
              "regularization": regularization_weight, "lr": lr, "n_steps": n_steps, "batch_size": batch_size,
              "max_length": max_length, "seed": seed, "max_examples": max_examples,
              "cache_states": cache_states}
    meta = {"name": name or f"{contrast.name}-lm-steer",
            "training": {**config, "seconds_this_run": seconds, "resumed_from_step": start,
                         "loss_first": history[0] if history else None,
                         "loss_last_50": sum(history[-50:]) / max(1, len(history[-50:])),
                         "loss_history": [round(x, 4) for x in history],
                         "examples_used": len(examples), "epochs": done * batch_size / max(1, len(examples)),
                         "processes": world,
                         "params_per_steer": n_steer // num_steers,
                         "params_percent_of_model_per_steer": 100.0 * n_steer / num_steers / n_model},
            "provenance": {"data": contrast.source, "n_positive": len(contrast.positive),
                           "n_negative": len(contrast.negative), "text_hashes": text_hashes(
                               contrast.positive + contrast.negative)}}
    return LMSteer({n: p.detach() for n, p in params.items()}, adaptor_class, epsilon, names, dummy_steer, rank,
                   lm.fingerprint, meta)


class _Adaptor(torch.nn.Module):
    """The trainable steer parameters as a module, so accelerate can wrap them (the frozen LM and
    its head stay outside: only these gradients are all-reduced)."""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in params.items()})

    def forward(self, lm: LoadedModel, h: torch.Tensor, adaptor: str, values: torch.Tensor,
                epsilon: float) -> torch.Tensor:
        return _logits(lm, h, adaptor, dict(self.params), values, epsilon)  # (B, T, V)


def _accelerator(lm: LoadedModel, batch_size: int) -> Any:
    """An ``accelerate.Accelerator`` for this run: one process unless started by ``accelerate launch``."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=lm.device.type == "cpu", device_placement=False)
    if batch_size % acc.num_processes:
        raise SteerlabError(f"batch_size {batch_size} must be a multiple of the {acc.num_processes} processes")
    return acc


def _subset(positive: list[tuple[str, float]], negative: list[tuple[str, float]], max_examples: int,
            seed: int) -> list[tuple[str, float]]:
    """Every example, or ``max_examples`` of them (half per label where both have enough), drawn
    with ``seed``: a smaller set that a run revisits, so cached states pay off."""
    if not max_examples or max_examples >= len(positive) + len(negative):
        return positive + negative
    rng = random.Random(seed)
    n_pos = min(len(positive), max(max_examples // 2, max_examples - len(negative)))
    n_neg = min(len(negative), max_examples - n_pos)
    return rng.sample(positive, n_pos) + rng.sample(negative, n_neg)


def _epoch_order(n: int, rng: random.Random) -> list[int]:
    order = list(range(n))
    rng.shuffle(order)
    return order


def _data_digest(examples: Sequence[tuple[str, float]]) -> str:
    """sha256 of the training texts and labels in order (the order drives the data schedule)."""
    h = hashlib.sha256()
    for text, label in examples:
        h.update(json.dumps([text, label]).encode())
    return h.hexdigest()
