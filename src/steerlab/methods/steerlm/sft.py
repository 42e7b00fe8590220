"""Attribute-conditioned SFT (SteerLM step 3) with a LoRA adapter from PEFT.

Each example becomes ``chat_template(prompt) + template(attribute string) + response + EOS`` (the
attribute string opens the assistant turn; see :data:`~steerlab.methods.steerlm.artifact.PLACEMENTS`
for the older in-user-turn layout); the loss covers the response and EOS only (the SteerLM paper's
``answer_only_loss``). Examples whose response
does not survive truncation to ``max_length`` are dropped and counted (the SteerLM paper's data-cleaning
step). PEFT injects the LoRA layers for training and is unloaded afterwards, so the
:class:`~steerlab.models.loading.LoadedModel` is left exactly as it was; the factors are copied
into a :class:`SteerLMAdapter`.

Defaults for SmolLM2-135M on 2 CPU cores: rank 8, alpha 16 on the attention projections q, k,
v and o (``target_modules="attention"``), lr 5e-3, 150 steps of 8 examples at ≤128 tokens. Why:
the attribute digits barely reach the response position in the frozen model (the last prompt
token's hidden state differs by ~1% between ``toxicity:0`` and ``toxicity:4``), so the adapter
must learn to *attend* to them. On a synthetic check (same prompt, response decided by one
digit) LoRA on all linear layers at lr 2e-3 settled at the unconditional optimum, at lr 1e-2 it
diverged, while q/k/v/o at 5e-3 learnt the rule (loss 0.0003 with the right digit, 0.88 with
the wrong one). A step is one forward and backward pass through the whole model.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch

from steerlab.errors import MissingDependencyError, SteerlabError
from steerlab.generation.generate import format_prompt
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


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise MissingDependencyError("SteerLM training needs peft: pip install peft") from None
    return peft


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
    """
    peft = _peft()
    if init is not None:
        if schema is not None:
            schema.check_same(init.schema, "the adapter to continue from")
        schema, template, chat, placement = init.schema, init.template, init.chat, init.placement
    schema = schema or DEFAULT_SCHEMA
    template = template or (USER_TEMPLATE if placement == "user" else DEFAULT_TEMPLATE)
    check_template(template, placement)
    if chat is None:
        chat = bool(getattr(lm.tokenizer, "chat_template", None))
    if n_steps < 1 or batch_size < 1 or max_length < 8:
        raise SteerlabError("n_steps and batch_size must be >= 1 and max_length >= 8")
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
        lora = _lora_modules(pm)
        if init is not None:
            _load_factors(lora, init)
        params = [p for n, p in pm.named_parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        rng = random.Random(seed)
        order: list[int] = []
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
        pm.train()
        with maybe_bar(progress, n_steps, f"SteerLM SFT ({len(kept)} examples)") as advance:
            for _step in range(n_steps):
                batch = []
                for _ in range(min(batch_size, len(kept))):
                    if not order:
                        order = list(range(len(kept)))
                        rng.shuffle(order)
                    batch.append(kept[order.pop()])
                ids, labels, mask = _collate(batch, pad)
                loss = pm(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                          labels=labels.to(lm.device)).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                history.append(float(loss.detach()))
                recent = history[-20:]
                advance(1, f"loss {sum(recent) / len(recent):.3f}")
        factors = {name: (m.lora_A["default"].weight.detach().clone(), m.lora_B["default"].weight.detach().clone())
                   for name, m in lora.items()}
    finally:
        pm.unload()  # puts the original modules back into lm.model
        for n, p in model.named_parameters():
            p.requires_grad_(grads.get(n, p.requires_grad))
        model.train(was_training)
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
                     "max_length": max_length, "seed": seed, "examples": len(kept), "dropped_truncated": dropped,
                     "seconds": round(seconds, 1), "loss_first": history[0], "loss_last_20":
                     sum(history[-20:]) / len(history[-20:]), "parameters": n_params,
                     "params_percent_of_model": 100.0 * n_params / n_model, "rounds": rounds},
        "provenance": {"examples": len(examples), "sources": sorted({ex.source for ex in examples if ex.source})},
    }
    return art


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


def attention_modules(model: torch.nn.Module) -> list[str]:
    """Full names of the linear projections inside attention blocks (q/k/v/o, GPT-2's c_attn/c_proj).

    Full names, because PEFT matches list entries by suffix and GPT-2's MLP also has a ``c_proj``.
    """
    names = [n for n, m in model.named_modules()
             if type(m).__name__ in ("Linear", "Conv1D") and any(part in ("attn", "self_attn", "attention")
                                                                   for part in n.split(".")[:-1])]
    if not names:
        raise SteerlabError("found no linear projection inside an attention block; pass target_modules")
    return names


def _lora_modules(pm: Any) -> dict[str, Any]:
    """Adapted modules by name relative to the wrapped transformers model."""
    out = {}
    for name, m in pm.named_modules():
        if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {}):
            out[name.removeprefix("base_model.model.")] = m
    if not out:
        raise SteerlabError("PEFT found no module to adapt; pass target_modules")
    return out


def _load_factors(lora: dict[str, Any], init: SteerLMAdapter) -> None:
    if set(lora) != set(init.lora):
        raise SteerlabError("the adapter to continue from adapts different modules")
    with torch.no_grad():
        for name, m in lora.items():
            a, b = init.lora[name]
            m.lora_A["default"].weight.copy_(a)
            m.lora_B["default"].weight.copy_(b)


def _collate(batch: list[tuple[list[int], list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids, labels (-100 on padding) and attention mask."""
    t = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), t), pad, dtype=torch.long)
    labels = torch.full((len(batch), t), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), t), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return ids, labels, mask
