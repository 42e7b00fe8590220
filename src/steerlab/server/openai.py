"""The OpenAI-compatible routes: ``/v1/completions`` and ``/v1/chat/completions``, with
per-request steering, streaming (server-sent events) and OpenAI's error shapes.

A request is validated, resolved (artifacts by name only, options parsed once into their methods'
values) and turned into engine jobs by the same row builder ``steerlab.generate`` uses, in the
request's own task; only then does the engine thread decode it, batched with whatever else runs.
Nothing here branches on the steering method.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from steerlab.core.model import LoadedModel
from steerlab.errors import SteerlabError
from steerlab.generation.decoding import Decoding
from steerlab.generation.jobs import Event, Job, QueueFull, ServingEngine, Stream
from steerlab.generation.rows import check_messages
from steerlab.server.config import ServerConfig
from steerlab.server.errors import ApiError, engine_error
from steerlab.server.schemas import ChatCompletionRequest, CompletionRequest, unsupported
from steerlab.server.state import ServerState, auth, server
from steerlab.service.jobs import build_jobs
from steerlab.service.resolve import resolve
from steerlab.service.spec import GenerationRequest, SteerSpec

SHUTTING_DOWN = "the server is shutting down; this request was cancelled (retry on another replica)"

router = APIRouter()


@router.post("/v1/completions", dependencies=[Depends(auth)])
async def completions(body: CompletionRequest, request: Request, srv: ServerState = Depends(server)) -> Response:
    config = srv.config
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not prompts:
        raise ApiError(400, "prompt must not be empty", param="prompt")
    if len(prompts) > config.max_prompts:
        raise ApiError(400, f"at most {config.max_prompts} prompts per request, got {len(prompts)}",
                       param="prompt")
    return await _serve(srv, request, body, prompts, chat=body.chat, kind="text_completion",
                        max_tokens=body.max_tokens)

@router.post("/v1/chat/completions", dependencies=[Depends(auth)])
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           srv: ServerState = Depends(server)) -> Response:
    if body.chat is not None:
        raise ApiError(400, "chat is a /v1/completions field; chat completions always use the template",
                       param="chat")
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in body.messages]
    try:
        conversation = check_messages(messages)
    except SteerlabError as exc:
        raise ApiError(400, str(exc), param="messages") from None
    return await _serve(srv, request, body, [conversation], chat=True, kind="chat.completion",
                        max_tokens=body.max_tokens if body.max_completion_tokens is None
                        else body.max_completion_tokens)

async def _serve(srv: ServerState, request: Request, body: Any, inputs: list[Any], *, chat: bool | None, kind: str,
                 max_tokens: int | None) -> Response:
    lm, config, engine, store = srv.lm, srv.config, srv.engine, srv.store
    if body.model != lm.name:
        raise ApiError(404, f"the model {body.model!r} does not exist here; this server runs {lm.name!r}",
                       param="model", code="model_not_found")
    problem = unsupported(body)
    if problem:
        raise ApiError(400, problem)
    if not 1 <= body.n <= config.max_n:
        raise ApiError(400, f"n must be between 1 and {config.max_n}", param="n")
    if len(inputs) * body.n > config.max_queue:
        raise ApiError(400, f"{len(inputs)} prompts x n={body.n} is more completions than this server "
                            f"queues ({config.max_queue}); send fewer", param="n")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > config.max_stop:
        raise ApiError(400, f"at most {config.max_stop} stop sequences, got {len(stops)}", param="stop")
    if any(len(x) > config.max_stop_chars for x in stops):
        raise ApiError(400, f"a stop sequence may have at most {config.max_stop_chars} characters",
                       param="stop")
    max_tokens = max_tokens if max_tokens is not None else config.max_tokens
    if not 1 <= max_tokens <= config.max_tokens:
        raise ApiError(400, f"max_tokens must be between 1 and {config.max_tokens}", param="max_tokens")
    try:
        steering = (list(config.default_steering) if "steering" not in body.model_fields_set
                    else None if body.steering is None else [SteerSpec.from_dict(s) for s in body.steering])
        spec = GenerationRequest(
            prompts=inputs, steering=steering,
            attributes=body.attributes, guidance=body.guidance, guidance_reference=body.guidance_reference,
            decoding=Decoding(max_new_tokens=max_tokens,
                              temperature=1.0 if body.temperature is None else body.temperature,  # OpenAI's default
                              top_p=1.0 if body.top_p is None else body.top_p, top_k=body.top_k, seed=body.seed,
                              stop=tuple(stops)),
            chat=chat, model=lm.name)
        resolved = await asyncio.to_thread(resolve, spec, store)
        # off the event loop: soft prompts (DGLM) run an encoder and a diffusion sampler
        jobs = await asyncio.to_thread(build_jobs, lm, resolved, spec.prompts, n=body.n)
    except SteerlabError as exc:
        raise ApiError(400, str(exc), param=_param_of(exc)) from None
    prompt_tokens = _check_lengths(lm, jobs, config, max_tokens)
    streams = _submit(engine, jobs, asyncio.get_running_loop())
    rid = ("chatcmpl-" if kind == "chat.completion" else "cmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    usage_in = sum(prompt_tokens[:: body.n])
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_sse(srv, request, streams, rid, created, kind, include_usage, usage_in),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    texts, finals = await _collect(srv, request, streams, config.request_timeout)
    completion = sum(f.completion_tokens for f in finals)
    usage = {"prompt_tokens": usage_in, "completion_tokens": completion, "total_tokens": usage_in + completion}
    if kind == "chat.completion":
        choices = [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None,
                    "finish_reason": f.finish_reason} for i, (t, f) in enumerate(zip(texts, finals))]
    else:
        choices = [{"index": i, "text": t, "logprobs": None, "finish_reason": f.finish_reason}
                   for i, (t, f) in enumerate(zip(texts, finals))]
    return JSONResponse({"id": rid, "object": kind, "created": created, "model": lm.name, "choices": choices,
                         "usage": usage, "system_fingerprint": None})

async def _collect(srv: ServerState, request: Request, streams: list[tuple[Stream, asyncio.Queue[Event]]],
                   timeout: float) -> tuple[list[str], list[Event]]:
    deadline = time.monotonic() + timeout
    texts: list[list[str]] = [[] for _ in streams]
    finals: list[Event | None] = [None] * len(streams)
    try:
        for i, (_stream, q) in enumerate(streams):
            while finals[i] is None:
                left = deadline - time.monotonic()
                if srv.drain.expired:
                    raise ApiError(503, SHUTTING_DOWN, type_="server_error", code="shutting_down")
                if left <= 0:
                    raise ApiError(408, f"the request took over {timeout:g} s and was cancelled; lower "
                                        "max_tokens or n", type_="timeout")
                try:
                    ev = await asyncio.wait_for(q.get(), timeout=min(0.5, left))
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        raise ApiError(499, "client closed the request") from None
                    continue
                if ev.kind == "token":
                    texts[i].append(ev.text)
                elif ev.kind == "error":
                    raise engine_error(ev.error)
                else:
                    finals[i] = ev
    finally:
        for stream, _ in streams:
            stream.cancel()  # no-op for finished jobs
    return ["".join(t) for t in texts], [f for f in finals if f is not None]


async def _sse(srv: ServerState, request: Request, streams: list[tuple[Stream, asyncio.Queue[Event]]], rid: str,
               created: int, kind: str, include_usage: bool, usage_in: int) -> AsyncIterator[str]:
    lm, config, drain = srv.lm, srv.config, srv.drain
    chunk_kind = "chat.completion.chunk" if kind == "chat.completion" else "text_completion"
    merged: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()

    async def pump(i: int, q: asyncio.Queue[Event]) -> None:
        while True:
            ev = await q.get()
            await merged.put((i, ev))
            if ev.kind in ("done", "error"):
                return

    tasks = [asyncio.create_task(pump(i, q)) for i, (_, q) in enumerate(streams)]
    left, completion = len(streams), 0
    deadline = time.monotonic() + config.request_timeout

    def chunk(i: int, text: str | None, finish: str | None, first: bool = False) -> str:
        if chunk_kind == "chat.completion.chunk":
            delta: dict[str, Any] = {"role": "assistant", "content": text or ""} if first else (
                {"content": text} if text is not None else {})
            choice: dict[str, Any] = {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": i, "text": text or "", "logprobs": None, "finish_reason": finish}
        doc: dict[str, Any] = {"id": rid, "object": chunk_kind, "created": created, "model": lm.name,
                               "choices": [choice]}
        if include_usage:
            doc["usage"] = None
        return f"data: {json.dumps(doc)}\n\n"

    try:
        if chunk_kind == "chat.completion.chunk":
            for i in range(len(streams)):
                yield chunk(i, "", None, first=True)
        while left:
            if drain.expired:
                yield ApiError(503, SHUTTING_DOWN, type_="server_error", code="shutting_down").event()
                break
            try:
                i, ev = await asyncio.wait_for(merged.get(),
                                               timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                if time.monotonic() < deadline:
                    continue
                yield ApiError(408, "the request timed out and was cancelled", type_="timeout").event()
                break
            if ev.kind == "token":
                yield chunk(i, ev.text, None)
            elif ev.kind == "done":
                left -= 1
                completion += ev.completion_tokens
                yield chunk(i, None, ev.finish_reason)
            else:
                yield engine_error(ev.error).event()
                break
        if include_usage and not left:
            usage = {"prompt_tokens": usage_in, "completion_tokens": completion,
                     "total_tokens": usage_in + completion}
            yield f"data: {json.dumps({'id': rid, 'object': chunk_kind, 'created': created, 'model': lm.name, 'choices': [], 'usage': usage})}\n\n"  # noqa: E501
        yield "data: [DONE]\n\n"
    finally:  # the client went away, or we are done: stop every row still decoding
        for stream, _ in streams:
            stream.cancel()
        for t in tasks:
            t.cancel()


def _submit(engine: ServingEngine, jobs: list[Job], loop: asyncio.AbstractEventLoop) -> list[tuple[Stream,
                                                                                              asyncio.Queue[Event]]]:
    out: list[tuple[Stream, asyncio.Queue[Event]]] = []
    try:
        for job in jobs:
            q: asyncio.Queue[Event] = asyncio.Queue()

            def deliver(ev: Event, q: asyncio.Queue[Event] = q) -> None:
                loop.call_soon_threadsafe(q.put_nowait, ev)

            out.append((engine.submit(job, deliver), q))
    except QueueFull as exc:
        for stream, _ in out:
            stream.cancel()
        raise ApiError(429, str(exc), type_="rate_limit_error", headers={"Retry-After": "1"}) from None
    except SteerlabError as exc:
        for stream, _ in out:
            stream.cancel()
        raise ApiError(400, str(exc), param="steering") from None
    return out


def _check_lengths(lm: LoadedModel, jobs: list[Job], config: ServerConfig, max_tokens: int) -> list[int]:
    """Prompt tokens of each job; too long a prompt (or prompt + max_tokens past the model's
    context) is a 400."""
    limit = getattr(lm.config, "max_position_embeddings", None) or getattr(lm.config, "n_positions", None)
    counts = []
    seen: dict[tuple[str, bool], int] = {}  # n choices share one text
    for job in jobs:
        key = (job.text, job.add_special_tokens)
        if key not in seen:
            seen[key] = len(lm.tokenizer(job.text, add_special_tokens=job.add_special_tokens)["input_ids"])
        n = seen[key]
        if n > config.max_prompt_tokens:
            raise ApiError(400, f"the prompt has {n} tokens; this server takes at most {config.max_prompt_tokens}",
                           param="prompt", code="context_length_exceeded")
        if limit and n + max_tokens > int(limit):
            raise ApiError(400, f"prompt ({n} tokens) + max_tokens ({max_tokens}) exceeds the model's context "
                                f"of {limit} tokens", param="max_tokens", code="context_length_exceeded")
        counts.append(n)
    return counts


REQUEST_PARAMS = frozenset({"prompt", "messages", "n", "max_tokens", "temperature", "top_p", "top_k", "seed",
                            "stop", "attributes", "guidance", "guidance_reference", "steering"})
ALIASES = {"max_new_tokens": "max_tokens", "prompts": "prompt", "strength": "steering"}


def _param_of(exc: SteerlabError) -> str:
    """The API field an error names (:attr:`SteerlabError.param`, in the API's spelling); errors
    naming something inside a steer (an option, a layer) or nothing are about ``steering``."""
    param = ALIASES.get(exc.param or "", exc.param or "")
    return param if param in REQUEST_PARAMS else "steering"
