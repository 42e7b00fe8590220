"""Attribute-conditioned SFT (SteerLM step 3): a PEFT LoRA adapter trained by TRL's ``SFTTrainer``.

Each example becomes ``chat_template(prompt) + template(attribute string) + response + EOS`` (the
attribute string opens the assistant turn; see :data:`~steerlab.methods.steerlm.artifact.PLACEMENTS`
for the older in-user-turn layout); the loss covers the response and EOS only (the SteerLM paper's
``answer_only_loss``). Examples whose response
does not survive truncation to ``max_length`` are dropped and counted (the SteerLM paper's data-cleaning
step). The trainer (transformers ``Trainer`` on accelerate) brings mixed precision, gradient
accumulation and multi-process / multi-GPU runs under ``torchrun`` or ``accelerate launch``; the
examples are tokenised here (so training and inference see the same prompt) and handed to it with
a ``completion_mask``. PEFT injects the LoRA layers for training and is unloaded afterwards, so the
:class:`~steerlab.models.loading.LoadedModel` is left exactly as it was; the factors are copied
into a :class:`SteerLMAdapter`.

Defaults for SmolLM2-135M on 2 CPU cores: rank 8, alpha 16 on the attention projections q, k,
v and o (``target_modules="attention"``), lr 5e-3, 150 steps of 8 examples at ≤128 tokens. Why:
the attribute digits barely reach the response position in the frozen model (the last prompt
token's hidden state differs by ~1% between ``toxicity:0`` and ``toxicity:4``), so the adapter
must learn to *attend* to them. On a synthetic check (same prompt, response decided by one
digit) LoRA on all linear layers at lr 2e-3 settled at the unconditional optimum, at lr 1e-2 it
diverged, while q/k/v/o at 5e-3 learnt the rule (loss 0.0003 with the right digit, 0.88 with
the wrong one). A step is one forward and backward pass through the whole model per micro-batch.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from steerlab.errors import MissingDependencyError, SteerlabError
from steerlab.generation.generate import format_prompt
from steerlab.methods.peft_lora import attention_modules, lora_modules, peft_module
from steerlab.methods.steerlm.artifact import (
    DEFAULT_TEMPLATE,
    USER_TEMPLATE,
    SteerLMAdapter,
    check_template,
    conditioned_prompt,
)
from steerlab.methods.steerlm.records import Example, as_examples
from steerlab.methods.steerlm.schema import DEFAULT_SCHEMA, AttributeSchema
from steerlab.models.loading import LoadedModel, holds_model_lock
from steerlab.progress import maybe_bar


def encode_example(lm: LoadedModel, ex: Example, schema: AttributeSchema, template: str, chat: bool,
                   max_length: int, placement: str = "assistant") -> tuple[list[int], list[int]] | None:
    """(input ids, labels with -100 on the prompt) or None when truncation leaves no response."""
    tok = lm.tokenizer
    prompt = conditioned_prompt(lambda text: format_prompt(lm, text, chat=chat), ex.prompt,
                                schema.format(ex.attributes), template, placement)
    p_ids = tok(prompt, add_special_tokens=not chat)["input_ids"]
    r_ids = tok(ex.response, add_special_tokens=False)["input_ids"]
    if tok.eos_token_id is not None:
        r_ids = [*r_ids, tok.eos_token_id]
    ids = (p_ids + r_ids)[:max_length]
    labels = ([-100] * len(p_ids) + r_ids)[:max_length]
    if all(x == -100 for x in labels) or not ex.response.strip():
        return None
    return ids, labels


@holds_model_lock
def train_sft(
    lm: LoadedModel,
    data: Any,
    *,
    schema: AttributeSchema | None = None,
    template: str | None = None,
    placement: str = "assistant",
    chat: bool | None = None,
    r: int = 8,
    lora_alpha: float = 16.0,
    lora_dropout: float = 0.05,
    target_modules: list[str] | str | None = "attention",
    lr: float = 5e-3,
    weight_decay: float = 0.0,
    n_steps: int = 150,
    batch_size: int = 8,
    grad_accum: int = 1,
    max_grad_norm: float = 0.0,
    mixed_precision: str = "no",
    max_length: int = 128,
    seed: int = 0,
    init: SteerLMAdapter | None = None,
    name: str | None = None,
    progress: bool = True,
) -> SteerLMAdapter:
    """Fine-tune a LoRA adapter on ``data`` (a VALUE_TO_TEXT jsonl path or a list of :class:`Example`).

    ``template`` defaults to the one for ``placement`` (:data:`DEFAULT_TEMPLATE` or
    :data:`USER_TEMPLATE`). ``chat`` defaults to whether the tokenizer has a chat template.
    ``init`` continues from an existing adapter (the bootstrap round), which fixes schema,
    template, placement, rank and the adapted modules.

    Training runs on TRL's ``SFTTrainer`` (completion-only loss from a ``completion_mask``): a step
    is ``batch_size`` examples, split over the processes of a launcher (``torchrun`` /
    ``accelerate launch``; each takes ``batch_size / world_size``) and over ``grad_accum``
    micro-batches; the loss is a mean over the global batch's response tokens, so any split trains
    like one process. ``mixed_precision`` is ``no``, ``bf16`` or ``fp16`` (autocast; the LoRA
    factors stay float32); ``max_grad_norm`` > 0 clips the gradient norm.
    """
    peft = peft_module()
    if init is not None:
        if schema is not None:
            schema.check_same(init.schema, "the adapter to continue from")
        schema, template, chat, placement = init.schema, init.template, init.chat, init.placement
    schema = schema or DEFAULT_SCHEMA
    template = template or (USER_TEMPLATE if placement == "user" else DEFAULT_TEMPLATE)
    check_template(template, placement)
    if chat is None:
        chat = bool(getattr(lm.tokenizer, "chat_template", None))
    if n_steps < 1 or batch_size < 1 or grad_accum < 1 or max_length < 8:
        raise SteerlabError("n_steps, batch_size and grad_accum must be >= 1 and max_length >= 8")
    if mixed_precision not in MIXED_PRECISION:
        raise SteerlabError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}")
    if not max_grad_norm >= 0:
        raise SteerlabError(f"max_grad_norm must be >= 0 (0 = no clipping), got {max_grad_norm!r}")
    world = _world_size()
    if batch_size % (world * grad_accum):
        raise SteerlabError(f"batch_size {batch_size} does not split into {world} process(es) x "
                            f"{grad_accum} accumulation step(s)")
    limit = getattr(lm.config, "max_position_embeddings", None) or getattr(lm.config, "n_positions", None)
    if limit:
        max_length = min(max_length, int(limit))
    examples = as_examples(data, schema)
    encoded = [encode_example(lm, ex, schema, template, chat, max_length, placement) for ex in examples]
    kept = [e for e in encoded if e is not None]
    dropped = len(encoded) - len(kept)
    if not kept:
        raise SteerlabError(f"all {len(encoded)} examples lost their response to truncation at "
                            f"max_length={max_length}; raise it")

    torch.manual_seed(seed)
    model = lm.model
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    pad_ids = _pad_ids(model)
    if init is not None:
        r, target_modules = init.rank, sorted(init.lora)  # full names: leaf names are ambiguous (GPT-2 c_proj)
        lora_alpha = init.scaling * r
    if target_modules == "attention":
        target_modules = attention_modules(model)
    config = peft.LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, bias="none",
                             target_modules=target_modules)
    pm = peft.get_peft_model(model, config)
    t0 = time.perf_counter()
    history: list[float] = []
    try:
        lora = lora_modules(pm)
        if init is not None:
            _load_factors(lora, init)
        with maybe_bar(progress, n_steps, f"SteerLM SFT ({len(kept)} examples)") as advance:
            _run_trainer(lm, pm, kept, history, advance, lr=lr, weight_decay=weight_decay, n_steps=n_steps,
                         per_device=batch_size // (world * grad_accum), grad_accum=grad_accum,
                         max_grad_norm=max_grad_norm, mixed_precision=mixed_precision, seed=seed)
        factors = {name: (m.lora_A["default"].weight.detach().float().cpu().clone(),
                          m.lora_B["default"].weight.detach().float().cpu().clone())
                   for name, m in lora.items()}
    finally:
        pm.unload()  # puts the original modules back into lm.model
        for n, p in model.named_parameters():
            p.requires_grad_(grads.get(n, p.requires_grad))
        model.train(was_training)
        _restore_pad_ids(model, pad_ids)
    seconds = time.perf_counter() - t0
    n_model = sum(p.numel() for p in model.parameters())
    art = SteerLMAdapter(factors, lora_alpha / r, schema, template, chat, lm.fingerprint, placement=placement)
    n_params = art.parameter_count()
    rounds = (init.meta.get("training", {}).get("rounds", 1) + 1) if init is not None else 1
    art.meta = {
        "name": name or "steerlm",
        "training": {"r": r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
                     "target_modules": sorted({n.rsplit(".", 1)[-1] for n in factors}), "lr": lr,
                     "weight_decay": weight_decay, "n_steps": n_steps, "batch_size": batch_size,
                     "grad_accum": grad_accum, "max_grad_norm": max_grad_norm, "mixed_precision": mixed_precision,
                     "processes": world, "engine": "trl.SFTTrainer",
                     "max_length": max_length, "seed": seed, "examples": len(kept), "dropped_truncated": dropped,
                     "seconds": round(seconds, 1), "loss_first": history[0], "loss_last_20":
                     sum(history[-20:]) / len(history[-20:]), "loss_history": [round(x, 5) for x in history],
                     "parameters": n_params, "params_percent_of_model": 100.0 * n_params / n_model,
                     "rounds": rounds},
        "provenance": {"examples": len(examples), "sources": sorted({ex.source for ex in examples if ex.source})},
    }
    return art


MIXED_PRECISION = ("no", "bf16", "fp16")


def _trl() -> Any:
    try:
        import trl
    except ImportError:
        raise MissingDependencyError("SteerLM training needs trl: pip install trl") from None
    return trl


def _world_size() -> int:
    """Processes of the launcher this runs under (1 without one)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def _run_trainer(lm: LoadedModel, pm: Any, kept: list[tuple[list[int], list[int]]], history: list[float],
                 advance: Any, *, lr: float, weight_decay: float, n_steps: int, per_device: int, grad_accum: int,
                 max_grad_norm: float, mixed_precision: str, seed: int) -> None:
    """Train ``pm``'s LoRA factors on ``kept`` with TRL's SFTTrainer; per-step losses go to ``history``."""
    trl = _trl()
    import datasets
    from transformers import TrainerCallback

    rows = {"input_ids": [ids for ids, _ in kept],
            "completion_mask": [[int(y != -100) for y in labels] for _, labels in kept]}
    dataset = datasets.Dataset.from_dict(rows)  # (N,) rows of (T_i,) ids and 0/1 masks

    class _Steps(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs and len(history) < state.global_step:
                history.append(float(logs["loss"]))
                recent = history[-20:]
                advance(1, f"loss {sum(recent) / len(recent):.3f}")

    with tempfile.TemporaryDirectory(prefix="steerlab-sft-") as out:
        args = trl.SFTConfig(
            output_dir=out, max_steps=n_steps, per_device_train_batch_size=per_device,
            gradient_accumulation_steps=grad_accum, learning_rate=lr, weight_decay=weight_decay,
            lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=max_grad_norm,
            optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
            seed=seed, data_seed=seed, logging_steps=1, logging_first_step=True, save_strategy="no",
            report_to=[], disable_tqdm=True, use_cpu=lm.device.type == "cpu",
            bf16=mixed_precision == "bf16", fp16=mixed_precision == "fp16",
            completion_only_loss=True, max_length=None, packing=False, gradient_checkpointing=False,
            dataloader_num_workers=0, average_tokens_across_devices=True, ddp_find_unused_parameters=False,
        )
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # TRL's one-pass label building needs no bar of its own
        try:
            trainer = trl.SFTTrainer(model=pm, args=args, train_dataset=dataset, processing_class=lm.tokenizer,
                                     callbacks=[_Steps()])
        finally:
            if bars:
                datasets.enable_progress_bars()
        trainer.remove_callback(_printer_callback())
        trainer.train()


def _printer_callback() -> Any:
    from transformers.trainer_callback import PrinterCallback

    return PrinterCallback


def _text_config(model: Any) -> Any:
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def _pad_ids(model: Any) -> tuple[Any, Any]:
    gen = getattr(model, "generation_config", None)
    return getattr(_text_config(model), "pad_token_id", None), getattr(gen, "pad_token_id", None)


def _restore_pad_ids(model: Any, ids: tuple[Any, Any]) -> None:
    """The trainer mirrors the tokenizer's pad id onto the model's configs; put them back."""
    _text_config(model).pad_token_id = ids[0]
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = ids[1]


def round_examples(data: str | Path, schema: AttributeSchema, contrast_gap: int = 0) -> list[Example]:
    """A round's training records: every record of ``data``, or with ``contrast_gap`` > 0 only the
    contrast pairs (per prompt and attribute, the lowest- and highest-labelled responses at least
    that many levels apart; quality is a property of the pair and is left out)."""
    from steerlab.methods.steerlm.records import contrast_subset, read_records

    if isinstance(contrast_gap, bool) or not isinstance(contrast_gap, int) or contrast_gap < 0:
        raise SteerlabError(f"contrast_gap must be an integer >= 0, got {contrast_gap!r}")
    examples = read_records(data, schema)
    if not contrast_gap:
        return examples
    attrs = [a for a in schema.names if a != "quality"]
    picked = contrast_subset(examples, attrs, contrast_gap)
    if not picked:
        raise SteerlabError(f"no prompt has responses {contrast_gap} levels apart on any of {attrs}")
    return picked


def _load_factors(lora: dict[str, Any], init: SteerLMAdapter) -> None:
    if set(lora) != set(init.lora):
        raise SteerlabError("the adapter to continue from adapts different modules")
    with torch.no_grad():
        for name, m in lora.items():
            a, b = init.lora[name]
            m.lora_A["default"].weight.copy_(a)
            m.lora_B["default"].weight.copy_(b)


def collate_examples(batch: list[tuple[list[int], list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """Right-padded (B, T) ids, labels (-100 on padding) and attention mask of encoded examples."""
    t = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), t), pad, dtype=torch.long)
    labels = torch.full((len(batch), t), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), t), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return ids, labels, mask
