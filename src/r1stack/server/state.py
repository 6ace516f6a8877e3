"""Everything a request handler needs, built once at start-up and kept on `app.state.r1`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from fastapi import Request

from r1stack.errors import NotFoundError, UserError
from r1stack.pipeline import Pipeline
from r1stack.server.admission import Admission
from r1stack.server.metrics import ServerMetrics


@dataclass
class ServerState:
    engine: object
    pipeline: Pipeline
    settings: object
    metrics: ServerMetrics
    admission: Admission
    served_names: list[str]
    reasoning: bool  # split <think> output into reasoning_content
    request_timeout_s: float | None
    embedder: object | None = None  # server.embeddings.Embedder, loaded on first use
    started: float = field(default_factory=time.time)

    @property
    def model_name(self) -> str:
        return self.served_names[0]

    def check_model(self, name: str | None) -> str:
        """The served name a request addressed; an unknown one is a 404 as OpenAI answers it."""
        if name is None or name in self.served_names:
            return self.model_name
        raise NotFoundError(
            f"The model `{name}` does not exist. This server serves: {', '.join(self.served_names)}",
            param="model",
            code="model_not_found",
        )

    def check_backend(self, logprobs: bool = False) -> None:
        """Before any work: a 503 with Retry-After when an upstream backend has no usable replica, and a 400
        for what an upstream backend cannot do."""
        check = getattr(self.engine, "check_available", None)
        if check is not None:
            check()
        if logprobs and self.engine.tokenizer is None:
            raise UserError(
                "logprobs are not available through this gateway's upstream backend yet; leave them out",
                param="logprobs",
            )


def upstream_reasoning(out, index: int) -> str:
    """The reasoning an upstream sent apart (reasoning_content) for choice `index` so far; '' otherwise."""
    return out.extra.get("reasoning", {}).get(index, "") if out.extra else ""


def upstream_usage(out) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) as an upstream counted them; None for the native engine."""
    return out.extra.get("usage") if out is not None and out.extra else None


def replica_of(out) -> str | None:
    return out.extra.get("replica") if out is not None and out.extra else None


def get_state(request: Request) -> ServerState:
    return request.app.state.r1


def key_id(request: Request) -> str | None:
    return getattr(request.state, "key_id", None)


class ClientGone(Exception):
    pass


async def until_disconnect(request: Request, coro):
    """Run `coro`; if the client hangs up first, cancel it (its finally-blocks abort the engine request)."""
    task = asyncio.ensure_future(coro)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task in done:
        watcher.cancel()
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    raise ClientGone()
