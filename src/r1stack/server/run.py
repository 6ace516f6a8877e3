"""Start the server from settings: check the security options, load the engine, build the pipeline, run uvicorn."""

from __future__ import annotations

import gc
import json
import logging
import sys
from pathlib import Path

from r1stack.config import DEFAULT_MODEL, Settings
from r1stack.errors import UserError
from r1stack.pipeline import Pipeline
from r1stack.server.admission import Admission
from r1stack.server.metrics import ServerMetrics
from r1stack.server.security import ApiKeyring, IPAllowlist, read_key_file
from r1stack.server.state import ServerState
from r1stack.server.tls import check_cert_pair, make_self_signed, tls13_context_factory

log = logging.getLogger("r1stack.server")
REASONING_PARSERS = ("auto", "deepseek_r1", "none")


def security_from_settings(settings: Settings) -> tuple[ApiKeyring, IPAllowlist]:
    s = settings.server
    entries = list(s.api_keys)
    if s.api_key_file is not None:
        entries += read_key_file(s.api_key_file)
    return ApiKeyring(entries), IPAllowlist(s.allow_ips)


def tls_files(settings: Settings, self_signed: bool) -> tuple[Path | None, Path | None]:
    s = settings.server
    if self_signed:
        if s.ssl_certfile or s.ssl_keyfile:
            raise UserError(
                "--self-signed makes its own certificate; drop --ssl-certfile/--ssl-keyfile or it"
            )
        return make_self_signed(settings.data_dir / "tls", [s.host])
    check_cert_pair(s.ssl_certfile, s.ssl_keyfile)
    return s.ssl_certfile, s.ssl_keyfile


def load_engine(settings: Settings):
    from r1stack.engine import store
    from r1stack.engine.async_engine import AsyncEngine
    from r1stack.engine.config import EngineArgs

    if settings.model == DEFAULT_MODEL and store.installed_path(DEFAULT_MODEL, settings.data_dir) is None:
        print(f"first start: installing the default model {DEFAULT_MODEL} ...", file=sys.stderr, flush=True)
        store.pull(DEFAULT_MODEL, settings.data_dir)
    return AsyncEngine(EngineArgs.from_settings(settings))


def load_backend(settings: Settings):
    """The served model's backend: the native engine, or the upstream pool when upstreams are configured."""
    if not settings.server.upstreams:
        return load_engine(settings)
    from r1stack.upstream.backend import UpstreamConfig, UpstreamEngine

    if not (settings.server.served_model_name or settings.server.upstream_model):
        raise UserError(
            "with --upstream, name the model: --served-model-name NAME (what clients ask for) "
            "and/or --upstream-model NAME (what the upstreams serve)"
        )
    return UpstreamEngine(UpstreamConfig.from_settings(settings))


def build_state(engine, settings: Settings) -> tuple[ServerState, list[str]]:
    s = settings.server
    if s.reasoning_parser not in REASONING_PARSERS:
        raise UserError(
            f"--reasoning-parser {s.reasoning_parser!r}: use one of {', '.join(REASONING_PARSERS)}"
        )
    info = engine.model_info
    reasoning = {"auto": bool(info.is_reasoning_model), "deepseek_r1": True, "none": False}[
        s.reasoning_parser
    ]
    names = [n.strip() for n in (s.served_model_name or info.name).split(",") if n.strip()]
    pipeline, missing = Pipeline.from_settings(engine, settings)
    metrics = ServerMetrics(engine.stats, names[0])
    state = ServerState(
        engine=engine,
        pipeline=pipeline,
        settings=settings,
        metrics=metrics,
        admission=Admission(
            settings.engine.max_num_seqs, s.max_waiting, on_reject=metrics.rejected.labels(names[0]).inc
        ),
        served_names=names,
        reasoning=reasoning,
        request_timeout_s=s.request_timeout_s or None,
    )
    if hasattr(engine, "register_metrics"):
        engine.register_metrics(state.metrics.registry)
    return state, missing


def serve(settings: Settings, *, self_signed: bool = False) -> None:
    import uvicorn

    from r1stack.server.app import create_app

    s = settings.server
    keyring, allowlist = security_from_settings(settings)
    certfile, keyfile = tls_files(settings, self_signed)
    engine = load_backend(settings)
    state, missing = build_state(engine, settings)
    scheme = "https" if certfile else "http"
    host = f"[{s.host}]" if ":" in s.host else s.host
    base = f"{scheme}://{host}:{s.port}"

    def banner() -> None:
        auth = ' -H "Authorization: Bearer $R1STACK_API_KEY"' if keyring.enabled else ""
        tls = f" --cacert {certfile}" if self_signed else ""
        body = json.dumps({"model": state.model_name, "messages": [{"role": "user", "content": "Hello!"}]})
        print(f"r1stack serving {state.model_name} ({engine.model_info.path}) at {base}/v1", flush=True)
        print(
            f"  reasoning parser: {'deepseek_r1' if state.reasoning else 'none'};"
            f" API keys: {len(keyring) or 'off'}; IP allowlist: {len(allowlist.networks) or 'off'};"
            f" TLS: {'1.3 only' if certfile else 'off'};"
            f" capacity: {settings.engine.max_num_seqs} running + {s.max_waiting} queued",
            flush=True,
        )
        for m in missing:
            print(f"  off: {m}", flush=True)
        print(
            f"  try: curl{tls} {base}/v1/chat/completions{auth} -H 'Content-Type: application/json' "
            f"-d '{body}'",
            flush=True,
        )

    app = create_app(state, keyring, allowlist, on_ready=banner)
    config = uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        ssl_context_factory=tls13_context_factory if certfile else None,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    # Everything loaded so far (torch, transformers, the model, the app) lives as long as the process: move it out
    # of the collector's sight, or every full collection walks millions of objects and stalls all streams at once
    # (100+ ms pauses at 64 streams, benchmarks/gateway.py).
    gc.collect()
    gc.freeze()
    server.run()
    if not server.started:
        raise UserError(
            f"could not listen on {s.host}:{s.port} (in use, or not an address of this machine); "
            "pick another --port or --host"
        )
