"""Everything a request handler needs, built once at start-up and kept on `app.state.r1`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from fastapi import Request

from r1stack.errors import NotFoundError
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
