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

from steerlab.core.apply import patch
from steerlab.core.model import LoadedModel
from steerlab.core.plan import per_row, with_option
from steerlab.core.validate import offset_seed, positive_int
from steerlab.errors import SteerlabError
from steerlab.generation.decode import decode
from steerlab.generation.decoding import Decoding
from steerlab.generation.guidance import check_scale, guided_merge
from steerlab.generation.rows import Input, Row, build_rows, check_messages, format_prompt
from steerlab.generation.stops import cut_at_stop
from steerlab.progress import maybe_bar


class TextEngine(Protocol):
    """Something that generates like :func:`generate` without the model argument: another engine
    for the bulk jobs (evaluation, SteerLM's annotate and bootstrap), such as vLLM's
    (:class:`steerlab.vllm.engine.VllmEngine`)."""

    @property
    def generate(self) -> Callable[..., Any]:  # (prompts, steering=..., max_new_tokens=..., ...) -> texts
        ...


__all__ = ["TextEngine", "format_prompt", "generate"]


def generate(
    lm: LoadedModel,
    prompts: str | Sequence[Input],
    steering: Any = None,
    *,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    seed: int | None = None,
    decoding: Decoding | None = None,
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
    reference: Any = None,
) -> list[str]:
    """Continue each prompt; returns the new text of each row (prompt excluded). A prompt may be
    a conversation (a list of ``{"role", "content"}`` messages): the model answers its last turn,
    through the chat template.

    Decoding settings come as keywords or as one :class:`~steerlab.generation.decoding.Decoding`
    (``decoding=``; then no keyword): ``max_new_tokens`` (default 64), ``temperature=0`` greedy
    (the default), otherwise sampling with ``top_p`` / ``top_k`` (0 disables top-k) from ``seed``;
    ``stop`` strings end a row and are cut from its text; ``ignore_eos`` generates exactly
    ``max_new_tokens`` per row (benchmarks).
    ``attributes`` (e.g. ``{"humor": 4, "toxicity": 0}``, or a list with one entry per prompt) sets
    the ``attributes`` option of every steer in the row whose method has attribute knobs (SteerLM).
    ``batch_size`` rows are decoded together (default: ``$STEERLAB_GEN_BATCH`` or 32; a GPU wants
    128 or more, since a small model's decoding step costs about the same at any batch size there).

    ``guidance`` ≠ 1 decodes with classifier-free guidance (:mod:`steerlab.generation.guidance`):
    log-probs ``ref + guidance · (cond − ref)``, where ``ref`` is each prompt unsteered, or, when
    ``guidance_reference`` is given, the row's steering with its ``attributes`` option set to
    that reference (``{}`` = every knob at its default; per row as a list), or, when ``reference``
    is given, that steering (as ``steering``). It costs a second batch row per prompt.
    """
    single = isinstance(prompts, str)
    batch_size = positive_int("batch_size", batch_size or _env_batch())
    prompt_list: list[Input] = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        return []
    for i, p in enumerate(prompt_list):
        if isinstance(p, str):
            if not chat and not p:
                raise SteerlabError(f"prompt {i} is empty: give some text to continue (or generate with chat=True)")
        elif isinstance(p, Sequence):
            prompt_list[i] = check_messages(p)  # a conversation: the chat template, the model answers it
        else:
            raise SteerlabError(f"prompt {i} must be a string or a conversation, got {type(p).__name__}")
    decoding = Decoding.of_call(decoding, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                top_k=top_k, seed=seed, stop=stop, ignore_eos=ignore_eos)  # checked once, here
    scale = check_scale(guidance)
    if (guidance_reference is not None or reference is not None) and scale == 1.0:
        raise SteerlabError("guidance_reference (--guidance-attr) needs guidance != 1 (1 = no guidance)")
    if guidance_reference is not None and reference is not None:
        raise SteerlabError("give guidance_reference (attributes) or reference (steering), not both")
    lm.require_weights("generate()")
    with lm.lock:  # one generation at a time on a shared model (hooks are per thread too)
        return _generate(lm, prompt_list, steering, decoding, single=single, batch_size=batch_size, chat=chat,
                         system=system, allow_mismatch=allow_mismatch, progress=progress, attributes=attributes,
                         scale=scale, guidance_reference=guidance_reference, reference=reference)


def _env_batch() -> int:
    raw = os.environ.get("STEERLAB_GEN_BATCH", "32")
    try:
        return int(raw)
    except ValueError:
        raise SteerlabError(f"STEERLAB_GEN_BATCH must be an integer, got {raw!r}") from None


def _generate(lm: LoadedModel, prompt_list: list[Input], steering: Any, decoding: Decoding, *, single: bool,
              batch_size: int, chat: bool, system: str | None, allow_mismatch: bool, progress: bool,
              attributes: Any, scale: float, guidance_reference: Any, reference: Any) -> list[str]:
    rows = per_row(steering, len(prompt_list))
    if guidance_reference is not None:  # the reference row: the same steers, other attributes
        reference = with_option(rows, "attributes", guidance_reference)
    if attributes is not None:
        rows = with_option(rows, "attributes", attributes)
    pairs = build_rows(lm, prompt_list, rows, chat=chat, system=system, guidance=scale, reference=reference,
                       allow_mismatch=allow_mismatch)
    outputs: list[str] = []
    with maybe_bar(progress, len(pairs), "generating") as advance:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            model_rows = [p.row for p in chunk] + [p.reference for p in chunk if p.reference is not None]
            first = model_rows[0].steering
            shared = all(len(r.steering) == len(first) and all(a is b for a, b in zip(r.steering, first))
                         for r in model_rows)
            if decoding.seed is not None:
                torch.manual_seed(offset_seed(decoding.seed, start))
            handle = patch(lm, first if shared else [r.steering for r in model_rows],
                           batch_size=1 if shared else len(model_rows), allow_mismatch=allow_mismatch)
            try:
                outputs += _generate_chunk(lm, model_rows, decoding, guided=scale != 1.0, scale=scale)
            finally:
                handle.remove()
            advance(len(chunk))
    return outputs[:1] if single else outputs


def _generate_chunk(lm: LoadedModel, rows: list[Row], decoding: Decoding, *, guided: bool,
                    scale: float) -> list[str]:
    """One batch through the decode loop; with ``guided``, the second half of ``rows`` are the
    first half's references, merged by guidance."""
    ids = decode(lm, [r.text for r in rows], decoding, add_special_tokens=rows[0].add_special_tokens,
                 branches=2 if guided else 1, merge=guided_merge(scale) if guided else None,
                 soft_prompts=[r.soft_prompt for r in rows])
    texts = lm.tokenizer.batch_decode(ids, skip_special_tokens=True)  # ids: (B, t)
    return [cut_at_stop(t, decoding.stop) for t in texts]
