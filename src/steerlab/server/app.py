"""The HTTP server: OpenAI-compatible completions and chat with per-request steering.

Every request is validated, resolved (artifacts by name only, options routed to their methods,
SteerLM attributes parsed) and turned into engine jobs in the request's own task; only then does
the :class:`~steerlab.generation.engine.Engine` thread — the only code that touches the model —
decode it, batched with whatever else is running. Bad input of any kind is a 4xx in OpenAI's
error shape (``{"error": {"message", "type", "param", "code"}}``); a full queue is a 429 with
``Retry-After``. Nothing here branches on the steering method.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from steerlab.errors import SteerlabError
from steerlab.generation.engine import Engine, Event, Job, QueueFull, ServingEngine, Stream
from steerlab.models.loading import LoadedModel
from steerlab.server.config import ServerConfig
from steerlab.server.errors import ApiError, engine_error, install_handlers
from steerlab.server.lifecycle import Drain
from steerlab.server.metrics import Metrics
from steerlab.server.schemas import (
    AddArtifact,
    ChatCompletionRequest,
    CompletionRequest,
    ExplainRequest,
    unsupported,
)
from steerlab.service.jobs import build_jobs, check_messages
from steerlab.service.resolve import ArtifactStore, explain, resolve
from steerlab.service.spec import GenerationRequest, SteerSpec

STATIC = "static"
SHUTTING_DOWN = "the server is shutting down; this request was cancelled (retry on another replica)"


def create_app(lm: LoadedModel, *, config: ServerConfig | None = None, store: ArtifactStore | None = None,
               engine: ServingEngine | None = None) -> FastAPI:
    """The FastAPI app serving ``lm``; the engine starts and stops with the app."""
    config = config or ServerConfig()
    store = store or ArtifactStore(allow_paths=False)
    engine = engine or Engine(lm, max_batch=config.max_batch, max_queue=config.max_queue)
    metrics = Metrics(engine)
    born = int(time.time())  # /v1/models "created"
    for spec in config.default_steering:  # a bad default fails at start, not on the first request
        store.get(spec.artifact)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="steerlab", version=_version(), lifespan=lifespan,
                  description="OpenAI-compatible completions with per-request steering.")
    drain = Drain()  # started by the server's exit signal (see steerlab.server.lifecycle)
    app.state.engine, app.state.store, app.state.config, app.state.lm = engine, store, config, lm
    app.state.drain = drain
    install_handlers(app)

    @app.middleware("http")
    async def _limits(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            return ApiError(413, f"request body over {config.max_body_bytes} bytes").response()
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > config.max_body_bytes:
                    return ApiError(413, f"request body over {config.max_body_bytes} bytes").response()
            request._body = body  # starlette re-reads a consumed body from here
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")  # the matched route's template: unknown paths share one label
        metrics.request(getattr(route, "path", None), response.status_code, time.perf_counter() - started)
        return response

    async def auth(request: Request) -> None:
        if config.api_key is None:
            return
        given = request.headers.get("authorization", "")  # decoded as latin-1: any bytes are a str
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode("latin-1"),
                                                                     config.api_key.encode("utf-8")):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    async def admin(request: Request) -> None:
        if config.api_key is None:
            raise ApiError(403, "admin calls are off: start the server with --api-key to enable them",
                           type_="permission_error")
        await auth(request)

    # ------------------------------------------------------------------ info
    @app.get("/health")
    async def health() -> JSONResponse:
        ok = engine.alive
        return JSONResponse({"status": "ok" if ok else "engine stopped", "model": lm.name,
                             "queue": engine.stats.queued, "batch_rows": engine.stats.batch_rows},
                            status_code=200 if ok else 503)

    @app.get("/metrics", dependencies=[] if config.public_metrics else [Depends(auth)])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", dependencies=[Depends(auth)])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": lm.name, "object": "model", "created": born,
                                            "owned_by": "steerlab"}]}

    @app.get("/v1/steering/artifacts", dependencies=[Depends(auth)])
    async def list_artifacts() -> dict[str, Any]:
        return {"object": "list", "data": [_describe(store, name) for name in store.names()]}

    @app.post("/v1/steering/explain", dependencies=[Depends(auth)])
    async def explain_text(body: ExplainRequest) -> dict[str, Any]:
        """Per-token scores of ``text`` under a steer (> 0: explained by its + direction)."""
        try:
            spec = SteerSpec.from_dict(body.steer)
            n = len(lm.tokenizer(body.text)["input_ids"])
            if n > config.max_prompt_tokens:
                raise ApiError(400, f"the text has {n} tokens; at most {config.max_prompt_tokens}", param="text")
            scores = await asyncio.to_thread(explain, lm, spec, body.text, store)
        except SteerlabError as exc:
            raise ApiError(400, str(exc), param="steer") from None
        return {"object": "steering.explanation", "artifact": spec.artifact,
                "tokens": [t for t, _ in scores], "scores": [round(float(x), 5) for _, x in scores]}

    @app.post("/v1/steering/artifacts", dependencies=[Depends(admin)], status_code=201)
    async def add_artifact(body: AddArtifact) -> dict[str, Any]:
        if body.name in store.names():
            raise ApiError(409, f"an artifact named {body.name!r} is already loaded; remove it first",
                           param="name", code="conflict")
        path = Path(body.path)
        _check_artifact_dir(path)
        try:
            await asyncio.to_thread(store.add, body.name, path)
            art = store.get(body.name)
            from steerlab.core.steerer import Steer, check

            check(lm, (Steer(art, 0.0),), prompts_rewritten=True)  # made for this model (fingerprint, layers)
        except SteerlabError as exc:
            store.discard(body.name)
            raise ApiError(400, str(exc), param="path") from None
        return _describe(store, body.name)

    @app.delete("/v1/steering/artifacts/{name}", dependencies=[Depends(admin)])
    async def remove_artifact(name: str) -> dict[str, Any]:
        if store.is_shipped(name):
            raise ApiError(409, f"{name!r} is a shipped artifact; shipped artifacts are always loaded",
                           param="name", code="conflict")
        try:
            store.remove(name)
        except SteerlabError as exc:
            raise ApiError(404, str(exc), param="name") from None
        return {"id": name, "object": "steering.artifact", "deleted": True}

    # ------------------------------------------------------------ generation
    @app.post("/v1/completions", dependencies=[Depends(auth)])
    async def completions(body: CompletionRequest, request: Request) -> Response:
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        if not prompts:
            raise ApiError(400, "prompt must not be empty", param="prompt")
        if len(prompts) > config.max_prompts:
            raise ApiError(400, f"at most {config.max_prompts} prompts per request, got {len(prompts)}",
                           param="prompt")
        return await _serve(request, body, prompts, chat=body.chat, kind="text_completion",
                            max_tokens=body.max_tokens)

    @app.post("/v1/chat/completions", dependencies=[Depends(auth)])
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        if body.chat is not None:
            raise ApiError(400, "chat is a /v1/completions field; chat completions always use the template",
                           param="chat")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in body.messages]
        try:
            conversation = check_messages(messages)
        except SteerlabError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        return await _serve(request, body, [conversation], chat=True, kind="chat.completion",
                            max_tokens=body.max_tokens if body.max_completion_tokens is None
                            else body.max_completion_tokens)

    async def _serve(request: Request, body: Any, inputs: list[Any], *, chat: bool | None, kind: str,
                     max_tokens: int | None) -> Response:
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
                prompts=["chat"] if chat and not isinstance(inputs[0], str) else inputs, steering=steering,
                attributes=body.attributes, guidance=body.guidance, guidance_reference=body.guidance_reference,
                max_new_tokens=max_tokens, temperature=1.0 if body.temperature is None else body.temperature,
                top_p=1.0 if body.top_p is None else body.top_p, top_k=body.top_k, seed=body.seed,
                stop=body.stop, chat=chat, model=lm.name)
            resolved = await asyncio.to_thread(resolve, spec, store)
            # off the event loop: soft prompts (DGLM) run an encoder and a diffusion sampler
            jobs = await asyncio.to_thread(build_jobs, lm, resolved, inputs, n=body.n)
        except SteerlabError as exc:
            raise ApiError(400, str(exc), param=_param_of(str(exc))) from None
        prompt_tokens = _check_lengths(lm, jobs, config, max_tokens)
        streams = _submit(engine, jobs, asyncio.get_running_loop())
        rid = ("chatcmpl-" if kind == "chat.completion" else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        usage_in = sum(prompt_tokens[:: body.n])
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_sse(request, streams, rid, created, kind, include_usage, usage_in),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        texts, finals = await _collect(request, streams, config.request_timeout)
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

    async def _collect(request: Request, streams: list[tuple[Stream, asyncio.Queue[Event]]],
                       timeout: float) -> tuple[list[str], list[Event]]:
        deadline = time.monotonic() + timeout
        texts: list[list[str]] = [[] for _ in streams]
        finals: list[Event | None] = [None] * len(streams)
        try:
            for i, (_stream, q) in enumerate(streams):
                while finals[i] is None:
                    left = deadline - time.monotonic()
                    if drain.expired:
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

    async def _sse(request: Request, streams: list[tuple[Stream, asyncio.Queue[Event]]], rid: str, created: int,
                   kind: str, include_usage: bool, usage_in: int) -> AsyncIterator[str]:
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

    # --------------------------------------------------------------- console
    @app.get("/", include_in_schema=False)
    async def console() -> Response:
        index = _static() / "index.html"
        if not index.is_file():
            return JSONResponse({"message": "steerlab server; see /docs"})
        return FileResponse(index)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        folder = _static()
        path = folder / name
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            raise ApiError(404, f"no static file {name!r}")
        return FileResponse(path)

    return app


def _static() -> Path:
    return Path(str(resources.files("steerlab.server"))) / STATIC


def _version() -> str:
    from steerlab._version import __version__

    return __version__


def _describe(store: ArtifactStore, name: str) -> dict[str, Any]:
    art = store.get(name)
    info = store.info(name)
    return {"id": name, "object": "steering.artifact", "method": art.method,
            "model": art.model.name if art.model else None, "description": info.get("description", ""),
            "recommended": info.get("recommended", {}), "controls": art.controls(),
            "eval_card": art.meta.get("eval_card") or {}}


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


def _param_of(message: str) -> str | None:
    for name in ("attributes", "guidance", "strength", "temperature", "top_p", "top_k", "seed", "stop",
                 "max_new_tokens"):
        if name in message:
            return {"max_new_tokens": "max_tokens", "strength": "steering"}.get(name, name)
    if "artifact" in message or "option" in message or "layer" in message:
        return "steering"
    return None


def _check_artifact_dir(path: Path) -> None:
    """An admin's artifact path: a real directory (not a link) holding only JSON and safetensors
    files. Errors never list what the folder holds."""
    try:
        if path.is_symlink():
            raise ApiError(400, "the path is a symbolic link; give the artifact's own directory", param="path")
        if not path.is_dir():
            raise ApiError(400, "the path is not a directory on the server", param="path")
        others = sum(1 for p in path.iterdir() if not p.name.endswith((".json", ".safetensors")))
    except OSError as exc:
        raise ApiError(400, f"the path cannot be read: {exc.strerror or type(exc).__name__}", param="path") from None
    if others:
        raise ApiError(400, f"an artifact directory holds only JSON and safetensors files; this one holds {others} "
                            "other entries", param="path")
