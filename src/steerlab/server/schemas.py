"""Request bodies of the OpenAI-compatible API, plus steerlab's steering fields.

Fields follow OpenAI's completions and chat-completions APIs; parameters steerlab cannot honour
(log-probs, penalties, logit bias, tools, echo) are accepted only at their neutral values and
refused otherwise, never silently ignored. Unknown fields are refused with their names. The
steering fields (``steering``, ``attributes``, ``guidance``, ``guidance_reference``, ``top_k``,
``chat``) travel in the body — with the ``openai`` client, through ``extra_body``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

INT64 = (-(2**63), 2**63 - 1)


def refuse_surrogates(data: Any) -> None:
    """Raise pydantic's ``invalid_unicode`` error (with the place, e.g. ``messages[0].content``)
    if any string or key in ``data`` holds a lone surrogate: JSON can spell one (``"\\ud800"``)
    but no tokenizer can encode it."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise PydanticCustomError("invalid_unicode", "{where} is not valid Unicode text",
                                          {"where": where or "body"}) from None
        elif isinstance(value, dict):
            for k, v in value.items():
                name = str(k).encode("utf-8", "backslashreplace").decode("utf-8")  # printable even if bad
                at = f"{where}.{name}" if where else name
                stack += [(at, k), (at, v)]
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


class Body(BaseModel):
    """A request body: unknown fields refused, every string valid Unicode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        refuse_surrogates(data)
        return data


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class SteeringFields(Body):
    """What every generation request may add to OpenAI's fields."""

    steering: list[dict[str, Any] | str] | None = Field(
        default=None, description="Steers: [{artifact, strength, ...options}]; null = unsteered; "
                                  "absent = the server's default steering.")
    attributes: dict[str, Any] | str | None = Field(default=None, description="SteerLM knobs, e.g. {\"humor\": 3}.")
    guidance: float = Field(default=1.0, description="Classifier-free guidance scale (1 = off).")
    guidance_reference: dict[str, Any] | str | None = Field(
        default=None, description="Reference attributes for guidance (default: unsteered).")
    top_k: int = Field(default=0, description="Top-k sampling (0 = off).")
    chat: bool | None = Field(default=None, description="/v1/completions only: apply the chat template "
                                                        "(default: as the artifacts prefer).")


class _Common(SteeringFields):
    model: str
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=INT64[0], le=INT64[1], description="A 64-bit signed integer.")
    user: str | None = None
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None


class CompletionRequest(_Common):
    prompt: str | list[str]
    max_tokens: int | None = 16
    logprobs: int | None = None
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None


class ExplainRequest(Body):
    """Which tokens of ``text`` a steer explains (LM-Steer): the steer as in ``steering``."""
    steer: dict[str, Any] | str
    text: str = Field(min_length=1, max_length=20_000)


class AddArtifact(Body):
    """An admin call: load the artifact directory ``path`` (on the server) under ``name``."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    path: str = Field(min_length=1, max_length=4096)


def unsupported(req: _Common) -> str | None:
    """The first OpenAI parameter set to a value steerlab cannot honour, as a message."""
    checks: list[tuple[bool, str]] = [
        (bool(req.presence_penalty) or bool(req.frequency_penalty),
         "presence_penalty and frequency_penalty are not supported (leave them at 0)"),
        (bool(req.logit_bias), "logit_bias is not supported"),
    ]
    if isinstance(req, CompletionRequest):
        checks += [(req.logprobs is not None, "logprobs is not supported"),
                   (req.echo, "echo is not supported"),
                   (req.suffix is not None, "suffix is not supported"),
                   (req.best_of is not None and req.best_of != req.n, "best_of is not supported (use n)")]
    if isinstance(req, ChatCompletionRequest):
        fmt = (req.response_format or {}).get("type", "text")
        checks += [(bool(req.logprobs) or req.top_logprobs is not None, "logprobs is not supported"),
                   (bool(req.tools) or req.tool_choice not in (None, "none"), "tools are not supported"),
                   (fmt != "text", f"response_format {fmt!r} is not supported (only text)")]
    return next((msg for bad, msg in checks if bad), None)
