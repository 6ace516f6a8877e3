"""The FastAPI application: routes, the security middleware, error bodies, and the engine's life span."""

from __future__ import annotations

import importlib
import logging
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from r1stack.server.errors import install_error_handlers
from r1stack.server.routes import chat, completions, models, system
from r1stack.server.security import ApiKeyring, IPAllowlist, SecurityMiddleware
from r1stack.server.state import ServerState

log = logging.getLogger("r1stack.server")

# Routers other services own; mounted when present (they sit under /v1, so the API keys guard them).
OPTIONAL_ROUTERS = ("r1stack.server.routes.kb", "r1stack.server.routes.guard", "r1stack.server.routes.apps")
CONSOLE_ROUTER = "r1stack.console.routes"  # the web page; left out with --no-ui


def optional_routers(ui: bool = True) -> list[tuple[str, APIRouter]]:
    found = []
    for name in OPTIONAL_ROUTERS + ((CONSOLE_ROUTER,) if ui else ()):
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            if e.name != name:  # the module exists but one of its imports failed: say so
                log.warning("router %s not mounted: %s", name, e)
            continue
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append((name, router))
    return found


def create_app(state: ServerState, keyring: ApiKeyring, allowlist: IPAllowlist, on_ready=None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.engine.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await state.engine.shutdown()
            triage = getattr(app.state, "apps_triage_engine", None)  # loaded by /v1/apps on first use
            if triage is not None:
                await triage.shutdown()

    app = FastAPI(
        title="r1stack",
        summary="OpenAI-compatible API for DeepSeek-R1-class models, served by r1stack's own engine.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.r1 = state
    app.state.settings = state.settings
    app.state.engine = state.engine
    app.state.pipeline = state.pipeline
    install_error_handlers(app)
    for router in (chat.router, completions.router, models.router, system.router):
        app.include_router(router)
    for name, router in optional_routers(ui=bool(getattr(state.settings.server, "ui", True))):
        app.include_router(router)
        log.info("mounted %s", name)
    app.add_middleware(SecurityMiddleware, keyring=keyring, allowlist=allowlist)
    return app
