"""The HTTP server: OpenAI-compatible completions and chat with per-request steering.

:func:`create_app` builds the FastAPI app around one model and its engine (which starts and stops
with the app) from three routers: the OpenAI routes (:mod:`steerlab.server.openai`), the
steering routes (:mod:`steerlab.server.steering`) and the service routes here (health, metrics,
models, the web console). Bad input of any kind is a 4xx in OpenAI's error shape
(``{"error": {"message", "type", "param", "code"}}``, :mod:`steerlab.server.errors`); a full
queue is a 429 with ``Retry-After``. Nothing here branches on the steering method.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from steerlab.core.model import LoadedModel
from steerlab.generation.engine import Engine
from steerlab.generation.jobs import ServingEngine
from steerlab.server import openai, steering
from steerlab.server.config import ServerConfig
from steerlab.server.errors import ApiError, install_handlers
from steerlab.server.lifecycle import Drain
from steerlab.server.metrics import Metrics
from steerlab.server.state import ServerState, auth, server
from steerlab.service.resolve import ArtifactStore

STATIC = "static"

router = APIRouter()


def create_app(lm: LoadedModel, *, config: ServerConfig | None = None, store: ArtifactStore | None = None,
               engine: ServingEngine | None = None) -> FastAPI:
    """The FastAPI app serving ``lm``; the engine starts and stops with the app."""
    config = config or ServerConfig()
    store = store or ArtifactStore(allow_paths=False)
    engine = engine or Engine(lm, max_batch=config.max_batch, max_queue=config.max_queue)
    for spec in config.default_steering:  # a bad default fails at start, not on the first request
        store.get(spec.artifact)
    state = ServerState(lm, engine, store, config, Metrics(engine), Drain(), int(time.time()))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="steerlab", version=_version(), lifespan=lifespan,
                  description="OpenAI-compatible completions with per-request steering.")
    app.state.server = state
    app.state.engine, app.state.store, app.state.config, app.state.lm = engine, store, config, lm
    app.state.drain = state.drain  # started by the server's exit signal (see steerlab.server.lifecycle)
    install_handlers(app)
    app.middleware("http")(_limits)
    app.add_api_route("/metrics", _prometheus, methods=["GET"],
                      dependencies=[] if config.public_metrics else [Depends(auth)])
    app.include_router(router)
    app.include_router(openai.router)
    app.include_router(steering.router)
    return app


async def _limits(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse bodies over the size limit (declared or streamed) and record each request's metrics
    under its route template (unknown paths share one label)."""
    srv = server(request)
    limit = srv.config.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return ApiError(413, f"request body over {limit} bytes").response()
    if length is None and request.method in ("POST", "PUT", "PATCH"):
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return ApiError(413, f"request body over {limit} bytes").response()
        request._body = body  # starlette re-reads a consumed body from here
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    srv.metrics.request(getattr(route, "path", None), response.status_code, time.perf_counter() - started)
    return response


async def _prometheus(srv: ServerState = Depends(server)) -> Response:
    return Response(srv.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/health")
async def health(srv: ServerState = Depends(server)) -> JSONResponse:
    ok = srv.engine.alive
    return JSONResponse({"status": "ok" if ok else "engine stopped", "model": srv.lm.name,
                         "queue": srv.engine.stats.queued, "batch_rows": srv.engine.stats.batch_rows},
                        status_code=200 if ok else 503)


@router.get("/v1/models", dependencies=[Depends(auth)])
async def models(srv: ServerState = Depends(server)) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": srv.lm.name, "object": "model", "created": srv.born,
                                        "owned_by": "steerlab"}]}


@router.get("/", include_in_schema=False)
async def console() -> Response:
    index = _static() / "index.html"
    if not index.is_file():
        return JSONResponse({"message": "steerlab server; see /docs"})
    return FileResponse(index)


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    path = _static() / name
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, f"no static file {name!r}")
    return FileResponse(path)


def _static() -> Path:
    return Path(str(resources.files("steerlab.server"))) / STATIC


def _version() -> str:
    from steerlab._version import __version__

    return __version__
