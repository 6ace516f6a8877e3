"""OpenAI-style error bodies for every failure the server can answer with, and the handlers that make them."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from r1stack.engine.async_engine import EngineDeadError
from r1stack.errors import UserError

log = logging.getLogger("r1stack.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class APIError(UserError):
    """An error with an HTTP status other than 400 (auth, throttling, a dead engine)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.status_code = status_code
        self.error_type = _TYPES.get(
            status_code, "server_error" if status_code >= 500 else "invalid_request_error"
        )
        self.headers = headers or {}


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | int | None = None
) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | int | None = None,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    etype = error_type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse(error_body(message, etype, param, code), status_code=status, headers=headers)


def user_error_response(e: UserError) -> JSONResponse:
    return error_response(
        e.status_code,
        e.message,
        param=e.param,
        code=e.code,
        error_type=e.error_type,
        headers=getattr(e, "headers", None),
    )


def _validation_message(e: RequestValidationError) -> tuple[str, str | None]:
    errors = e.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"{param}: {msg}{more}" if param else f"{msg}{more}"), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def _user_error(request: Request, e: UserError) -> JSONResponse:
        return user_error_response(e)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        # OpenAI (and vLLM) answer 400 for a malformed body, not FastAPI's 422.
        message, param = _validation_message(e)
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        detail = e.detail if isinstance(e.detail, str) else json.dumps(e.detail)
        return error_response(e.status_code, detail, headers=getattr(e, "headers", None))

    @app.exception_handler(EngineDeadError)
    async def _dead(request: Request, e: EngineDeadError) -> JSONResponse:
        return error_response(
            503, f"{e}; the server must be restarted", error_type="service_unavailable_error"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}", error_type="server_error")
