"""What every route of one server shares — the model, the engine, the artifact store, the
settings, the metrics and the drain clock — and the dependencies that read it and check the key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Request

from steerlab.core.model import LoadedModel
from steerlab.generation.jobs import ServingEngine
from steerlab.server.config import ServerConfig
from steerlab.server.errors import ApiError
from steerlab.server.lifecycle import Drain
from steerlab.server.metrics import Metrics
from steerlab.service.resolve import ArtifactStore


@dataclass
class ServerState:
    """One app's shared objects, at ``app.state.server``."""

    lm: LoadedModel
    engine: ServingEngine
    store: ArtifactStore
    config: ServerConfig
    metrics: Metrics
    drain: Drain
    born: int  # /v1/models "created"


def server(request: Request) -> ServerState:
    """The state of the app serving ``request`` (a FastAPI dependency)."""
    state: ServerState = request.app.state.server
    return state


async def auth(request: Request) -> None:
    """Require ``Authorization: Bearer <key>`` when the server has an API key."""
    key = server(request).config.api_key
    if key is None:
        return
    given = request.headers.get("authorization", "")  # decoded as latin-1: any bytes are a str
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode("latin-1"),
                                                                 key.encode("utf-8")):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")


async def admin(request: Request) -> None:
    """Admin calls need a key: off when the server has none."""
    if server(request).config.api_key is None:
        raise ApiError(403, "admin calls are off: start the server with --api-key to enable them",
                       type_="permission_error")
    await auth(request)
