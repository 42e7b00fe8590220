"""Turn a resolved request into engine jobs: the exact text each row continues, its steering and
its decoding settings — for plain prompts and for chat conversations alike.

Prompt-steering methods (SteerLM's attribute string) rewrite the user's text and the templated
text here, through :func:`~steerlab.core.steerer.rewrite_prompts`, exactly as
:func:`steerlab.generate` does, so a job run by the engine equals the same request run by
``generate``. Nothing here branches on the method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from steerlab.core.steerer import Steer, rewrite_prompts, soft_prompts, with_option
from steerlab.core.validate import offset_seed
from steerlab.errors import SteerlabError
from steerlab.generation.engine import Job
from steerlab.generation.generate import conditioned_texts
from steerlab.models.loading import LoadedModel
from steerlab.service.resolve import Resolved

Message = Mapping[str, str]
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


def conversation_text(lm: LoadedModel, messages: Sequence[Message], row: Sequence[Steer]) -> str:
    """The templated text the model continues for ``messages`` under ``row``'s steering: prompt
    rewrites apply to the last user turn, formatted rewrites to the templated text."""
    if not getattr(lm.tokenizer, "chat_template", None):
        raise SteerlabError(f"{lm.name} has no chat template; use /v1/completions")
    msgs = [dict(m) for m in messages]
    msgs[-1]["content"] = rewrite_prompts([msgs[-1]["content"]], [row])[0]
    text = str(lm.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
    return rewrite_prompts([text], [row], formatted=True)[0]


def build_jobs(lm: LoadedModel, resolved: Resolved, inputs: Sequence[str | Sequence[Message]], *,
               n: int = 1, ignore_eos: bool = False) -> list[Job]:
    """One job per input and choice (``n`` per input, input-major). A string input is a prompt
    (chat template if the request resolved to chat); a list is a conversation. With a seed,
    choice ``i`` samples from ``seed + i`` so the choices differ."""
    kw = resolved.generate_kwargs
    row = list(resolved.steering)
    attributes = kw.get("attributes")
    if attributes is not None:
        row = with_option([row], "attributes", attributes)[0]
    scale = float(kw.get("guidance", 1.0))
    ref_row: list[Steer] = []
    if scale != 1.0 and kw.get("guidance_reference") is not None:
        ref_row = with_option([list(resolved.steering)], "attributes", kw["guidance_reference"])[0]
    chat = bool(kw.get("chat"))
    jobs = []
    for item in inputs:
        guided = scale != 1.0  # only guidance decodes a reference row
        user_text = item if isinstance(item, str) else item[-1]["content"]
        soft = soft_prompts(lm, [user_text], [row])[0]
        ref_soft = soft_prompts(lm, [user_text], [ref_row])[0] if guided else None
        if isinstance(item, str):
            text = conditioned_texts(lm, [item], [row], chat=chat, system=kw.get("system"))[0]
            ref = conditioned_texts(lm, [item], [ref_row], chat=chat, system=kw.get("system"))[0] if guided else None
            special = not chat
        else:
            text, special = conversation_text(lm, item, row), False
            ref = conversation_text(lm, item, ref_row) if guided else None
        for i in range(n):
            seed = kw.get("seed")
            jobs.append(Job(text, tuple(row), max_new_tokens=kw["max_new_tokens"], temperature=kw["temperature"],
                            top_p=kw["top_p"], top_k=kw["top_k"], seed=offset_seed(seed, i),
                            stop=tuple(kw.get("stop") or ()), add_special_tokens=special, ignore_eos=ignore_eos,
                            guidance=scale, reference_text=ref, reference_steering=tuple(ref_row),
                            soft_prompt=soft, reference_soft_prompt=ref_soft))
    return jobs
