"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``, as a JSON
response or as a server-sent event, whatever went wrong — bad input (4xx), a full queue (429), a
fault in the server (500, without a traceback)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from steerlab.errors import SteerlabError

log = logging.getLogger("steerlab.server")


class ApiError(Exception):
    """A request the server refuses: HTTP status, OpenAI error type and message."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)

    def event(self) -> str:
        """The error as a server-sent event (a stream that already started cannot change status)."""
        return f"data: {json.dumps(self.body())}\n\n"


def install_handlers(app: FastAPI) -> None:
    """Every exception a route can raise becomes a response in OpenAI's error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), code=None).response()

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return ApiError(500, f"the server failed on this request ({type(exc).__name__})",
                        type_="server_error").response()


def engine_error(exc: Exception | None) -> ApiError:
    """The error a job ended with, for its caller: the request's own fault is a 400."""
    if isinstance(exc, SteerlabError):
        return ApiError(400, str(exc), param="steering")
    return ApiError(500, f"generation failed: {type(exc).__name__}", type_="server_error")


def validation_error(exc: RequestValidationError) -> ApiError:
    """A body pydantic refused, as a 400 naming the first bad field."""
    errors = exc.errors()
    if not errors:
        return ApiError(400, "invalid request")
    first = errors[0]
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    where = ".".join(loc) or "body"
    kind = first.get("type")
    if kind == "extra_forbidden":
        return ApiError(400, f"unknown field {where!r}", param=where)
    if kind == "json_invalid":
        return ApiError(400, "the body is not valid JSON", param=None)
    if kind == "missing":
        return ApiError(400, f"missing field {where!r}", param=where)
    if kind == "invalid_unicode":
        at = str((first.get("ctx") or {}).get("where") or where)
        return ApiError(400, f"{at} is not valid Unicode text (it holds a lone surrogate)",
                        param=at.split(".")[0].split("[")[0])
    return ApiError(400, f"{where}: {first.get('msg', 'invalid value')}", param=where)
