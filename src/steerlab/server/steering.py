"""The steering routes: the artifact catalogue (list; add and remove for admins) and per-token
explanations of a text under a steer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends

from steerlab.core.apply import prepare
from steerlab.core.steerer import Steer
from steerlab.errors import SteerlabError
from steerlab.server.errors import ApiError
from steerlab.server.schemas import AddArtifact, ExplainRequest
from steerlab.server.state import ServerState, admin, auth, server
from steerlab.service.resolve import ArtifactStore, explain
from steerlab.service.spec import SteerSpec

router = APIRouter()


@router.get("/v1/steering/artifacts", dependencies=[Depends(auth)])
async def list_artifacts(srv: ServerState = Depends(server)) -> dict[str, Any]:
    store = srv.store
    return {"object": "list", "data": [_describe(store, name) for name in store.names()]}

@router.post("/v1/steering/explain", dependencies=[Depends(auth)])
async def explain_text(body: ExplainRequest, srv: ServerState = Depends(server)) -> dict[str, Any]:
    """Per-token scores of ``text`` under a steer (> 0: explained by its + direction)."""
    lm, config, store = srv.lm, srv.config, srv.store
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

@router.post("/v1/steering/artifacts", dependencies=[Depends(admin)], status_code=201)
async def add_artifact(body: AddArtifact, srv: ServerState = Depends(server)) -> dict[str, Any]:
    lm, store = srv.lm, srv.store
    if body.name in store.names():
        raise ApiError(409, f"an artifact named {body.name!r} is already loaded; remove it first",
                       param="name", code="conflict")
    path = Path(body.path)
    _check_artifact_dir(path)
    try:
        await asyncio.to_thread(store.add, body.name, path)
        art = store.get(body.name)
        prepare(lm, Steer(art, 0.0))  # made for this model (fingerprint, layers)
    except SteerlabError as exc:
        store.discard(body.name)
        raise ApiError(400, str(exc), param="path") from None
    return _describe(store, body.name)

@router.delete("/v1/steering/artifacts/{name}", dependencies=[Depends(admin)])
async def remove_artifact(name: str, srv: ServerState = Depends(server)) -> dict[str, Any]:
    store = srv.store
    if store.is_shipped(name):
        raise ApiError(409, f"{name!r} is a shipped artifact; shipped artifacts are always loaded",
                       param="name", code="conflict")
    try:
        store.remove(name)
    except SteerlabError as exc:
        raise ApiError(404, str(exc), param="name") from None
    return {"id": name, "object": "steering.artifact", "deleted": True}


def _describe(store: ArtifactStore, name: str) -> dict[str, Any]:
    art = store.get(name)
    info = store.info(name)
    return {"id": name, "object": "steering.artifact", "method": art.method,
            "model": art.model.name if art.model else None, "description": info.get("description", ""),
            "recommended": info.get("recommended", {}), "controls": art.controls(),
            "eval_card": art.meta.get("eval_card") or {}}


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
