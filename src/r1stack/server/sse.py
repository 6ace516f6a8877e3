"""Server-sent events as OpenAI streams them: `data: {json}` blocks, an error chunk on failure, `data: [DONE]`."""

from __future__ import annotations

import json

from pydantic import BaseModel

from r1stack.server.errors import error_body

DONE = "data: [DONE]\n\n"


def event(payload: BaseModel | dict) -> str:
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json(exclude_none=True)
    else:
        data = json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def error_event(
    message: str, error_type: str = "server_error", code: int | str | None = None, param: str | None = None
) -> str:
    return event(error_body(message, error_type, param, code))
