"""Batched generation where every row may carry its own steering.

``generate(lm, prompts, steering=...)``: ``steering`` is one spec for all rows (a steer, or a
tuple of steers to compose) or a ``list`` with one entry per prompt (None, a steer, or a tuple).
Rows are left-padded into one batch; steering hooks read each row's strengths and real token
positions, so row i's output equals generating row i alone with its spec.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch

from steerlab.core.steerer import patch, per_row, rewrite_prompts, soft_prompts, with_option
from steerlab.core.validate import finite, offset_seed, positive_int, seed_value
from steerlab.errors import SteerlabError
from steerlab.generation.decode import decode
from steerlab.generation.guidance import check_scale, guided_merge
from steerlab.models.loading import LoadedModel
from steerlab.progress import maybe_bar


class TextEngine(Protocol):
    """Something that generates like :func:`generate` without the model argument: another engine
    for the bulk jobs (evaluation, SteerLM's annotate and bootstrap), such as vLLM's
    (:class:`steerlab.vllm.engine.VllmEngine`)."""

    @property
    def generate(self) -> Callable[..., Any]:  # (prompts, steering=..., max_new_tokens=..., ...) -> texts
        ...


def format_prompt(lm: LoadedModel, prompt: str, *, chat: bool, system: str | None = None) -> str:
    """Apply the model's chat template (as one user turn) when ``chat`` is set."""
    if not chat:
        return prompt
    if not getattr(lm.tokenizer, "chat_template", None):
        raise SteerlabError(f"{lm.name} has no chat template; generate with chat=False")
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}]
    return str(lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def generate(
    lm: LoadedModel,
    prompts: str | Sequence[str],
    steering: Any = None,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    chat: bool = False,
    system: str | None = None,
    stop: Sequence[str] | None = None,
    batch_size: int | None = None,
    allow_mismatch: bool = False,
    progress: bool = True,
    attributes: Mapping[str, Any] | str | Sequence[Mapping[str, Any] | str | None] | None = None,
    guidance: float = 1.0,
    guidance_reference: Mapping[str, Any] | str | Sequence[Mapping[str, Any] | str | None] | None = None,
    ignore_eos: bool = False,
) -> list[str]:
    """Continue each prompt; returns the new text of each row (prompt excluded).

    ``temperature=0`` is greedy decoding; otherwise sampling with ``top_p`` / ``top_k``
    (0 disables top-k) from ``seed``. ``stop`` strings end a row and are cut from its text.
    ``attributes`` (e.g. ``{"humor": 4, "toxicity": 0}``, or a list with one entry per prompt) sets
    the ``attributes`` option of every steer in the row whose method has attribute knobs (SteerLM).
    ``batch_size`` rows are decoded together (default: ``$STEERLAB_GEN_BATCH`` or 32; a GPU wants
    128 or more, since a small model's decoding step costs about the same at any batch size there).

    ``guidance`` ≠ 1 decodes with classifier-free guidance (:mod:`steerlab.generation.guidance`):
    log-probs ``ref + guidance · (cond − ref)``, where ``ref`` is each prompt unsteered, or, when
    ``guidance_reference`` is given, the row's steering with its ``attributes`` option set to
    that reference (``{}`` = every knob at its default; per row as a list). It costs a second
    batch row per prompt. ``ignore_eos`` generates exactly ``max_new_tokens`` per row (benchmarks).
    """
    single = isinstance(prompts, str)
    batch_size = positive_int("batch_size", batch_size or _env_batch())
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        return []
    for i, p in enumerate(prompt_list):
        if not isinstance(p, str):
            raise SteerlabError(f"prompt {i} must be a string, got {type(p).__name__}")
        if not chat and not p:
            raise SteerlabError(f"prompt {i} is empty: give some text to continue (or generate with chat=True)")
    positive_int("max_new_tokens", max_new_tokens)
    finite("temperature", temperature, low=0.0, max_abs=1e4)
    if not 0 < finite("top_p", top_p) <= 1:
        raise SteerlabError(f"top_p must be in (0, 1], got {top_p!r}")
    positive_int("top_k", top_k, minimum=0)
    seed_value("seed", seed)
    scale = check_scale(guidance)
    if guidance_reference is not None and scale == 1.0:
        raise SteerlabError("guidance_reference (--guidance-attr) needs guidance != 1 (1 = no guidance)")
    with lm.lock:  # one generation at a time on a shared model (hooks are per thread too)
        return _generate(lm, prompt_list, steering, single=single, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                         seed=seed, chat=chat, system=system, stop=stop, allow_mismatch=allow_mismatch,
                         progress=progress, attributes=attributes, scale=scale,
                         guidance_reference=guidance_reference, ignore_eos=ignore_eos)


def _env_batch() -> int:
    raw = os.environ.get("STEERLAB_GEN_BATCH", "32")
    try:
        return int(raw)
    except ValueError:
        raise SteerlabError(f"STEERLAB_GEN_BATCH must be an integer, got {raw!r}") from None


def _generate(lm: LoadedModel, prompt_list: list[str], steering: Any, *, single: bool, batch_size: int,
              max_new_tokens: int, temperature: float, top_p: float, top_k: int, seed: int | None, chat: bool,
              system: str | None, stop: Sequence[str] | None, allow_mismatch: bool, progress: bool,
              attributes: Any, scale: float, guidance_reference: Any, ignore_eos: bool) -> list[str]:
    rows = per_row(steering, len(prompt_list))
    if attributes is not None:
        rows = with_option(rows, "attributes", attributes)
    texts = conditioned_texts(lm, prompt_list, rows, chat=chat, system=system)
    soft = soft_prompts(lm, prompt_list, rows)  # (k, H) per row, or None
    ref_rows: list[list[Any]] = []
    ref_texts: list[str] = []
    ref_soft: list[Any] = []
    if scale != 1.0:
        ref_rows = ([[] for _ in rows] if guidance_reference is None
                    else with_option(rows, "attributes", guidance_reference))
        ref_texts = conditioned_texts(lm, prompt_list, ref_rows, chat=chat, system=system)
        ref_soft = soft_prompts(lm, prompt_list, ref_rows)
    outputs: list[str] = []
    with maybe_bar(progress, len(texts), "generating") as advance:
        for start in range(0, len(texts), batch_size):
            idx = range(start, min(start + batch_size, len(texts)))
            chunk_rows = [rows[i] for i in idx]
            shared = all(r is chunk_rows[0] for r in chunk_rows)
            steer_arg = tuple(chunk_rows[0]) if shared else [tuple(r) for r in chunk_rows]
            if seed is not None:
                torch.manual_seed(offset_seed(seed, start))
            if scale != 1.0:  # conditioned rows, then their references, in one batch
                steer_arg = [tuple(r) for r in chunk_rows] + [tuple(ref_rows[i]) for i in idx]
                shared = False
            handle = patch(lm, steer_arg, batch_size=1 if shared else len(steer_arg),
                           allow_mismatch=allow_mismatch, prompts_rewritten=True)
            try:
                chunk_soft = [soft[i] for i in idx] + ([ref_soft[i] for i in idx] if scale != 1.0 else [])
                outputs += _generate_chunk(lm, [texts[i] for i in idx],
                                           [ref_texts[i] for i in idx] if scale != 1.0 else None, scale=scale,
                                           max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                           top_k=top_k, stop=stop, chat=chat, ignore_eos=ignore_eos,
                                           soft=chunk_soft)
            finally:
                handle.remove()
            advance(len(idx))
    return outputs[:1] if single else outputs


def conditioned_texts(lm: LoadedModel, prompts: Sequence[str], rows: Sequence[Sequence[Any]], *,
                       chat: bool, system: str | None) -> list[str]:
    """The text the model continues for each row: steering's prompt rewrites around the chat template."""
    texts = [format_prompt(lm, p, chat=chat, system=system) for p in rewrite_prompts(prompts, rows)]
    return rewrite_prompts(texts, rows, formatted=True)


def _generate_chunk(lm: LoadedModel, texts: list[str], ref_texts: list[str] | None, *, scale: float,
                    max_new_tokens: int, temperature: float, top_p: float, top_k: int, stop: Sequence[str] | None,
                    chat: bool, ignore_eos: bool, soft: list[Any] | None = None) -> list[str]:
    """One batch through the decode loop; with ``ref_texts``, as two branches merged by guidance."""
    ids = decode(lm, texts + (ref_texts or []), max_new_tokens=max_new_tokens, temperature=temperature,
                 top_p=top_p, top_k=top_k, stop=stop, add_special_tokens=not chat, ignore_eos=ignore_eos,
                 branches=2 if ref_texts is not None else 1,
                 merge=guided_merge(scale) if ref_texts is not None else None, soft_prompts=soft)
    return [_cut(t, stop) for t in lm.tokenizer.batch_decode(ids, skip_special_tokens=True)]  # ids: (B, t)


def _cut(text: str, stop: Sequence[str] | None) -> str:
    if not stop:
        return text
    ends = [text.find(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text

