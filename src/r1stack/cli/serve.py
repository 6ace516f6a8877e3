"""`r1stack serve`: the OpenAI-compatible server on the native engine, or as a gateway in front of upstream
OpenAI-compatible servers (--upstream URL ...); flags as vLLM names them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from r1stack.errors import UserError

Opt = typer.Option


def _split_keys(raw: str) -> list[str]:
    return [k.strip() for k in raw.replace("\n", ",").split(",") if k.strip()]


def serve(
    model: Annotated[
        str | None, Opt("--model", help="Catalogue name or local path (HF folder or .gguf).")
    ] = None,
    host: Annotated[str | None, Opt(help="Address to listen on.")] = None,
    port: Annotated[int | None, Opt(help="Port to listen on.")] = None,
    api_key: Annotated[
        list[str] | None, Opt("--api-key", help="An API key (KEY or NAME:KEY); repeatable.")
    ] = None,
    api_key_file: Annotated[Path | None, Opt(help="File with one key (KEY or NAME:KEY) per line.")] = None,
    allow_ip: Annotated[
        list[str] | None, Opt("--allow-ip", help="CIDR allowed to connect; repeatable.")
    ] = None,
    ssl_certfile: Annotated[Path | None, Opt(help="PEM certificate: serve HTTPS (TLS 1.3 only).")] = None,
    ssl_keyfile: Annotated[Path | None, Opt(help="PEM private key for --ssl-certfile.")] = None,
    self_signed: Annotated[
        bool, Opt(help="Make (or reuse) a self-signed certificate under the data dir.")
    ] = False,
    max_model_len: Annotated[int | None, Opt(help="Context length (default: the model's).")] = None,
    served_model_name: Annotated[str | None, Opt(help="Name(s) clients use, comma-separated.")] = None,
    dtype: Annotated[str | None, Opt(help="auto | float32 | bfloat16 | float16")] = None,
    device: Annotated[str | None, Opt(help="auto | cpu | cuda")] = None,
    kv_cache_bytes: Annotated[
        int | None, Opt(help="KV-cache budget in bytes (wins over the fraction).")
    ] = None,
    kv_cache_fraction: Annotated[float | None, Opt(help="Fraction of free memory for the KV cache.")] = None,
    max_num_seqs: Annotated[int | None, Opt(help="Most sequences in one batch.")] = None,
    max_num_batched_tokens: Annotated[int | None, Opt(help="Token budget per engine step.")] = None,
    max_waiting: Annotated[
        int | None, Opt(help="Queued sequences allowed beyond the batch; then 429.")
    ] = None,
    request_timeout: Annotated[float | None, Opt(help="Seconds one request may take (0: no limit).")] = None,
    quantization: Annotated[
        str | None,
        Opt(
            help="Weight-only quantization: none | int8 | int4 | awq | gguf (GGUF blocks packed) | fp8 (kept FP8)."
        ),
    ] = None,
    enforce_eager: Annotated[
        bool | None,
        Opt(
            "--enforce-eager/--compile",
            help="Run the decode step eagerly, or compile it (torch.compile; CUDA graphs on GPU). "
            "Default: compiled on CUDA, eager on CPU (compiling costs more than it saves for short CPU jobs).",
        ),
    ] = None,
    reasoning_parser: Annotated[str | None, Opt(help="auto | deepseek_r1 | none")] = None,
    no_ui: Annotated[bool, Opt("--no-ui", help="Serve no web console at / (the API is unchanged).")] = False,
    upstream: Annotated[
        list[str] | None,
        Opt(
            "--upstream",
            help="Gateway mode: an OpenAI-compatible server (vLLM, SGLang, r1stack) that generates, "
            "e.g. http://gpu-node-1:8000/v1; repeatable (replicas).",
        ),
    ] = None,
    upstream_key_file: Annotated[Path | None, Opt(help="File holding the key the upstreams expect.")] = None,
    upstream_model: Annotated[
        str | None, Opt(help="Model name the upstreams serve (default: the first they list).")
    ] = None,
) -> None:
    """Serve the OpenAI API (chat, completions, embeddings, models) with R1 reasoning split out."""
    from r1stack.config import get_settings
    from r1stack.server.run import REASONING_PARSERS
    from r1stack.server.run import serve as run_server

    for name, value in (
        ("--port", port),
        ("--max-model-len", max_model_len),
        ("--max-num-seqs", max_num_seqs),
    ):
        if value is not None and value < (0 if name == "--port" else 1):
            raise UserError(f"{name} must be positive, got {value}")
    if port is not None and port > 65535:
        raise UserError(f"--port must be at most 65535, got {port}")
    if kv_cache_fraction is not None and not 0 < kv_cache_fraction <= 1:
        raise UserError(f"--kv-cache-fraction must be in (0, 1], got {kv_cache_fraction}")
    if reasoning_parser is not None and reasoning_parser not in REASONING_PARSERS:
        raise UserError(f"--reasoning-parser {reasoning_parser!r}: use one of {', '.join(REASONING_PARSERS)}")
    if max_waiting is not None and max_waiting < 0:
        raise UserError(f"--max-waiting must be >= 0, got {max_waiting}")

    from r1stack.engine.quant.loading import METHODS

    if quantization is not None and quantization not in METHODS:
        raise UserError(f"unknown quantization {quantization!r}; use one of {', '.join(METHODS)}")
    settings = get_settings()
    server_update = {
        k: v
        for k, v in dict(
            host=host,
            port=port,
            api_key_file=api_key_file,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            served_model_name=served_model_name,
            reasoning_parser=reasoning_parser,
            max_waiting=max_waiting,
            request_timeout_s=request_timeout,
            upstreams=list(upstream) if upstream else None,
            upstream_key_file=upstream_key_file,
            upstream_model=upstream_model,
        ).items()
        if v is not None
    }
    keys = list(settings.server.api_keys) + list(api_key or [])
    # The issue names R1STACK_API_KEYS (comma-separated) beside the settings' own R1STACK_SERVER__API_KEYS.
    keys += _split_keys(os.environ.get("R1STACK_API_KEYS", ""))
    server_update["api_keys"] = keys
    if allow_ip:
        server_update["allow_ips"] = list(settings.server.allow_ips) + list(allow_ip)
    if no_ui:
        server_update["ui"] = False
    engine_update = {
        k: v
        for k, v in dict(
            dtype=dtype,
            device=device,
            kv_cache_bytes=kv_cache_bytes,
            kv_cache_fraction=kv_cache_fraction,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            max_model_len=max_model_len,
            quantization=quantization,
            enforce_eager=enforce_eager,
        ).items()
        if v is not None
    }
    settings = settings.model_copy(
        update={
            "model": model or settings.model,
            "server": settings.server.model_copy(update=server_update),
            "engine": settings.engine.model_copy(update=engine_update),
        }
    )
    run_server(settings, self_signed=self_signed)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
