"""Request → rows: the one place that turns prompts (or chat conversations) and their steering
into model rows, for :func:`steerlab.generate`, the serving engine's jobs and the vLLM engine.

Per row it prepares each steer once for the model (:meth:`~steerlab.core.steerer.Steerer.prepare`:
options parsed and bound, the artifact validated), applies the prompt stages of the methods that
steer through the prompt — :meth:`rewrite_prompt` on the user's text, the chat template,
:meth:`rewrite_formatted` on the templated text, :meth:`soft_prompt` from the user's text — and,
with classifier-free guidance, builds the reference row the same way. Nothing here branches on
the method; every later stage reads the prepared steers instead of parsing again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import Tensor

from steerlab.core.apply import prepare
from steerlab.core.model import LoadedModel
from steerlab.core.plan import RowEntry, per_row
from steerlab.core.steerer import Prepared
from steerlab.errors import SteerlabError

Message = Mapping[str, str]
Input = Union[str, Sequence[Message]]
"""A prompt to continue, or a chat conversation (``{"role", "content"}`` turns) to answer."""


@dataclass(frozen=True)
class Row:
    """One model row, ready to tokenise and run."""

    text: str  # the exact text the model continues (templated and rewritten)
    steering: tuple[Prepared, ...]
    soft_prompt: Tensor | None = None  # (k, hidden): placed before the text's tokens
    add_special_tokens: bool = True  # False for templated text (the template has them)


@dataclass(frozen=True)
class RowPair:
    """What one input becomes: its row and, with guidance, the reference row it is merged with."""

    row: Row
    reference: Row | None = None


def format_prompt(lm: LoadedModel, prompt: str, *, chat: bool, system: str | None = None) -> str:
    """Apply the model's chat template (as one user turn) when ``chat`` is set."""
    if not chat:
        return prompt
    return _template(lm, _messages(prompt, system), "generate with chat=False")


def build_rows(lm: LoadedModel, inputs: Sequence[Input], steering: Any = None, *, chat: bool = False,
               system: str | None = None, guidance: float = 1.0, reference: Any = None,
               allow_mismatch: bool = False, validate: bool = True, soft_prompts: bool = True) -> list[RowPair]:
    """One :class:`RowPair` per input.

    ``steering`` is per row as for :func:`~steerlab.core.plan.per_row`; with ``guidance`` ≠ 1 the
    reference rows take ``reference`` (same form; None = unsteered). ``validate=False`` only parses
    (an engine holding no model, whose workers validate); ``soft_prompts=False`` skips them (an
    engine that cannot carry them refuses those steers itself)."""
    rows = per_row(steering, len(inputs))
    ref_rows = per_row(reference, len(inputs)) if guidance != 1.0 else None
    cache: dict[tuple[Any, ...], Prepared] = {}

    def ready(entries: Sequence[RowEntry]) -> tuple[Prepared, ...]:
        out = []
        for entry in entries:
            if isinstance(entry, Prepared):  # parsed already: validated once per distinct steer
                key: tuple[Any, ...] = ("p", id(entry))
            else:
                key = ("s", id(entry.artifact), repr(sorted(entry.options.items())), float(entry.strength))
            if key not in cache:
                cache[key] = prepare(lm if validate else None, entry, allow_mismatch=allow_mismatch)
            out.append(cache[key])
        return tuple(out)

    def row(item: Input, entries: Sequence[RowEntry]) -> Row:
        prepared = ready(entries)
        text, special = conditioned_text(lm, item, prepared, chat=chat, system=system)
        soft = _soft_prompt(lm, _user_text(item), prepared) if soft_prompts else None
        return Row(text, prepared, soft, special)

    return [RowPair(row(item, rows[i]), row(item, ref_rows[i]) if ref_rows is not None else None)
            for i, item in enumerate(inputs)]


def conditioned_text(lm: LoadedModel, item: Input, steering: Sequence[Prepared], *, chat: bool,
                     system: str | None = None) -> tuple[str, bool]:
    """The text the model continues for ``item`` under ``steering`` and whether special tokens
    are added when tokenising it: prompt rewrites apply to the user's text (the last user turn of
    a conversation), formatted rewrites to the templated text."""
    if isinstance(item, str) and not chat:
        text = item
        for p in steering:
            text = p.rewrite_prompt(text)
        for p in steering:
            text = p.rewrite_formatted(text)
        return text, True
    msgs = _messages(item, system) if isinstance(item, str) else [dict(m) for m in check_messages(item)]
    last = msgs[-1]["content"]
    for p in steering:
        last = p.rewrite_prompt(last)
    msgs[-1]["content"] = last
    text = _template(lm, msgs, "generate with chat=False" if isinstance(item, str) else "use /v1/completions")
    for p in steering:
        text = p.rewrite_formatted(text)
    return text, False


ROLES = ("system", "user", "assistant")


def check_messages(messages: Any) -> list[dict[str, str]]:
    """A chat conversation: a non-empty list of ``{"role", "content"}`` with known roles, ending
    with a user turn (the model answers it)."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise SteerlabError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise SteerlabError(f"messages[{i}] must be an object with string 'role' and 'content'")
        if m["role"] not in ROLES:
            raise SteerlabError(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m['role']!r}")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "user":
        raise SteerlabError("the last message must be the user's (the model answers it)")
    return out


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def _template(lm: LoadedModel, messages: list[dict[str, str]], instead: str) -> str:
    if not getattr(lm.tokenizer, "chat_template", None):
        raise SteerlabError(f"{lm.name} has no chat template; {instead}")
    return str(lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def _user_text(item: Input) -> str:
    return item if isinstance(item, str) else str(item[-1]["content"])


def _soft_prompt(lm: LoadedModel, prompt: str, steering: Sequence[Prepared]) -> Tensor | None:
    """The row's soft prompt (k, hidden): its steers' soft prompts for the user's ``prompt``, in
    steering order, concatenated; None where no steer makes one."""
    for p in steering:
        if p.steerer.makes_soft_prompts:
            lm.require_weights(f"{p.artifact.name!r} ({p.steerer.name}: soft prompts)")
    parts = [sp for p in steering if (sp := p.soft_prompt(lm, prompt)) is not None]
    return torch.cat(parts, dim=0) if parts else None
