"""UpstreamEngine: the AsyncEngine's face (generate, abort, start, shutdown, stats, model_info) over a pool of
OpenAI-compatible replicas, so the pipeline and routes above it run unchanged.

A request goes to the replica with the fewest requests in flight. If that replica fails before anything has
been passed on to the client, the request is retried on another replica; once a token has gone out it never is
(the client would see the answer twice). With no usable replica the caller gets a 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from r1stack.engine.llm_engine import EngineStats
from r1stack.engine.outputs import CompletionOutput, RequestOutput
from r1stack.engine.sampling_params import SamplingParams
from r1stack.errors import UserError
from r1stack.server.errors import APIError
from r1stack.upstream.client import UpstreamFailed, UpstreamRejected, list_models, stream_chunks
from r1stack.upstream.metrics import UpstreamMetrics
from r1stack.upstream.pool import Replica, ReplicaPool
from r1stack.upstream.request import body_fields

log = logging.getLogger("r1stack.upstream")
# The vllm_xargs switch of r1stack.integrations.vllm's watermark processor (spelled here too, so that this
# module does not import torch for it; a test checks the two agree).
WATERMARK_XARG = "r1stack_watermark"
# Names that say "reasoning model" (deepseek-r1, DeepSeek-R1-Distill-*, deepseek-reasoner, QwQ, *-thinking).
_REASONING_NAME = re.compile(r"(^|[^a-z0-9])r1([^a-z0-9]|$)|reasoner|qwq|think", re.IGNORECASE)


@dataclass
class UpstreamModelInfo:
    """What the routes read of a model; for an upstream we know its name and, if it says, its context length."""

    name: str
    path: str
    max_model_len: int | None = None
    # With `--reasoning-parser auto`: judged from the names we are given (the replicas' templates are theirs).
    is_reasoning_model: bool = False
    generation_defaults: dict = field(default_factory=dict)  # the upstream applies its own
    format: str = "upstream"


@dataclass
class UpstreamConfig:
    urls: list[str]
    served_name: str
    model: str | None = None  # the name the replicas serve it under; None: the first a replica lists
    api_key: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # longest silence between two chunks of a stream
    health_interval_s: float = 5.0
    eject_after: int = 2
    cooldown_s: float = 2.0
    max_cooldown_s: float = 60.0
    # guard.watermark: ask each replica to apply r1stack's watermark (vLLM with our logits processor loaded
    # reads it from vllm_xargs; other servers ignore the field).
    watermark: bool = False

    @classmethod
    def from_settings(cls, settings) -> UpstreamConfig:
        s = settings.server
        key = None
        if s.upstream_key_file is not None:
            path = Path(s.upstream_key_file)
            if not path.is_file():
                raise UserError(f"--upstream-key-file {path} does not exist; give a file holding the key")
            key = path.read_text().strip() or None
        served = (s.served_model_name or s.upstream_model or "upstream").split(",")[0].strip()
        return cls(
            urls=list(s.upstreams),
            served_name=served,
            model=s.upstream_model,
            api_key=key,
            connect_timeout_s=s.upstream_connect_timeout_s,
            read_timeout_s=s.upstream_read_timeout_s,
            health_interval_s=s.upstream_health_interval_s,
            eject_after=s.upstream_eject_after,
            cooldown_s=s.upstream_cooldown_s,
            max_cooldown_s=s.upstream_max_cooldown_s,
            watermark=bool(getattr(getattr(settings, "guard", None), "watermark", False)),
        )


class _Choice:
    def __init__(self, index: int):
        self.index = index
        self.text = ""
        self.reasoning = ""
        self.finish_reason: str | None = None
        self.stop_reason = None


class UpstreamEngine:
    upstream = True
    tokenizer = None  # the upstream tokenizes; routes that need token ids say so
    dead_error = None

    def __init__(self, config: UpstreamConfig):
        for u in config.urls:
            if not u.startswith(("http://", "https://")):
                raise UserError(
                    f"--upstream {u!r} is not an http(s) URL; give e.g. http://gpu-node-1:8000/v1"
                )
        if not config.urls:
            raise UserError("no upstream given; pass --upstream URL (repeatable)")
        self.config = config
        self.pool = ReplicaPool(config.urls, config.eject_after, config.cooldown_s, config.max_cooldown_s)
        names = f"{config.served_name} {config.model or ''}"
        self.model_info = UpstreamModelInfo(
            name=config.served_name,
            path=", ".join(config.urls),
            is_reasoning_model=bool(_REASONING_NAME.search(names)),
        )
        self.upstream_model = config.model
        self.metrics: UpstreamMetrics | None = None
        self._http: aiohttp.ClientSession | None = None
        self._health: asyncio.Task | None = None
        self._headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}

    def register_metrics(self, registry) -> None:
        self.metrics = UpstreamMetrics(registry, self.pool)

    # --- life span ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        c = self.config
        # aiohttp, not httpx, on this path: its C HTTP parser and lighter read loop cost the gateway a third of
        # httpx's CPU per streamed chunk (benchmarks/gateway.py), which at 64 streams on 2 cores is the added
        # TTFT. sock_read is the longest silence between two chunks; no total limit, answers may be long.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=c.connect_timeout_s, sock_read=c.read_timeout_s
        )
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        # trust_env off: replicas sit on the cluster network, never behind the site's outbound proxy.
        self._http = aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False)
        await self.check_health()  # learn the model name before the first request
        self._health = asyncio.create_task(self._health_loop())

    async def shutdown(self) -> None:
        if self._health is not None:
            self._health.cancel()
        if self._http is not None:
            await self._http.close()

    def stats(self) -> EngineStats:
        running = sum(r.outstanding for r in self.pool.replicas)
        return EngineStats(running, 0, 0, 0, 0.0, 0, 0, 0, 0, 0)

    # --- health --------------------------------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            try:
                await self.check_health()
            except Exception:  # the loop must outlive any one bad answer
                log.exception("upstream health check round failed")

    async def check_health(self) -> None:
        """Probe every replica that may take traffic or whose cool-down is over; return or eject accordingly."""
        now = time.monotonic()
        due = [
            r
            for r in self.pool.replicas
            if r.state == "closed" or (now >= r.open_until and r.outstanding == 0)
        ]
        await asyncio.gather(*(self._probe(r) for r in due))

    async def _probe(self, r: Replica) -> None:
        try:
            models = await list_models(self._http, r.url, self._headers, self.config.connect_timeout_s)
            if self.upstream_model is None and models:
                self.upstream_model = models[0]
                log.info("upstream model: %s (from %s)", models[0], r.url)
            if self.upstream_model not in models:
                raise UpstreamFailed(f"serves {', '.join(models) or 'nothing'}, not {self.upstream_model}")
        except UpstreamFailed as e:
            self._failed(r, f"health: {e}", "health")
            return
        if r.state != "closed":
            # Back in rotation, on probation: its failure counts stand until it serves a request well, so a
            # replica that passes health checks but fails requests is ejected again at once, for longer.
            log.warning("upstream %s passes its health check; back in rotation", r.url)
            r.state = "closed"

    def _failed(self, r: Replica, reason: str, kind: str) -> None:
        ejected = self.pool.failed(r, reason)
        if self.metrics:
            self.metrics.errors.labels(r.url, kind).inc()
            if ejected:
                self.metrics.ejections.labels(r.url).inc()
        if ejected:
            log.warning("upstream %s ejected: %s", r.url, reason)

    def check_available(self) -> None:
        """Raise the 503 (with Retry-After) a client gets while no replica may take a request."""
        if not self.pool.any_usable():
            wait = self.pool.retry_after_s()
            raise APIError(
                503,
                f"no healthy upstream replica for {self.model_info.name} "
                f"({'; '.join(f'{r.url}: {r.last_error or r.state}' for r in self.pool.replicas)}); "
                f"retry after {wait} s",
                code="upstream_unavailable",
                headers={"Retry-After": str(wait)},
            )

    # --- generation ----------------------------------------------------------------------------------------------

    async def abort(self, request_id: str) -> None:
        """Nothing to do: closing the generator closed the connection, which is how replicas hear of it."""

    async def generate(
        self,
        prompt: str | None,
        params: SamplingParams,
        request_id: str,
        prompt_token_ids: list[int] | None = None,
        messages: list[dict] | None = None,
        response_format: dict | None = None,
    ) -> AsyncIterator[RequestOutput]:
        """Cumulative RequestOutputs as the engine gives them; `extra` holds the upstream's reasoning per choice,
        its usage and the replica that served."""
        self.check_available()
        body = {"model": self.upstream_model or self.model_info.name, **body_fields(params), "stream": True}
        body["stream_options"] = {"include_usage": True}
        if response_format is not None:  # structured output, as vLLM and SGLang accept it
            body["response_format"] = response_format
        if self.config.watermark:
            body["vllm_xargs"] = {WATERMARK_XARG: 1}
        if messages is not None:
            path, body["messages"] = "/chat/completions", messages
        else:
            path, body["prompt"] = "/completions", prompt or prompt_token_ids
        tried: set[str] = set()
        last_error = ""
        while True:
            r = self.pool.pick(tried)
            if r is None:
                raise APIError(
                    503 if not tried else 502,
                    f"no upstream replica could answer ({last_error or 'none healthy'}); retry later",
                    code="upstream_unavailable",
                    headers={"Retry-After": str(self.pool.retry_after_s())},
                )
            if tried and self.metrics:
                self.metrics.retries.inc()
            tried.add(r.url)
            sent = False
            try:
                async with aclosing(self._one(r, path, body, request_id, prompt, params.n)) as outs:
                    async for out in outs:
                        sent = True
                        yield out
                return
            except UpstreamFailed as e:
                last_error = f"{r.url} {e}"
                self._failed(r, str(e), "request")
                if sent:
                    # Tokens already went to the client: a retry would repeat them. Say what happened.
                    raise APIError(
                        502, f"upstream {r.url} failed mid-answer: {e}", code="upstream_error"
                    ) from None
                log.warning(
                    "upstream %s failed before the first token (%s); trying another replica", r.url, e
                )

    async def _one(
        self, r: Replica, path: str, body: dict, request_id: str, prompt: str | None, n: int
    ) -> AsyncIterator[RequestOutput]:
        choices = {i: _Choice(i) for i in range(n)}
        usage = None
        sent_at = time.monotonic()
        first = True
        r.outstanding += 1
        if self.metrics:
            self.metrics.requests.labels(r.url).inc()
        try:
            # aclosing: a client that leaves closes this generator, which must close the upstream connection now.
            async with aclosing(stream_chunks(self._http, r.url + path, body, self._headers)) as chunks:
                async for chunk in chunks:
                    if chunk.get("usage"):
                        u = chunk["usage"]
                        usage = (int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
                    grew = False
                    for c in chunk.get("choices") or []:
                        ch = choices.setdefault(int(c.get("index", 0)), _Choice(int(c.get("index", 0))))
                        delta = c.get("delta") or {}
                        text = delta.get("content") if "delta" in c else c.get("text")
                        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                        if text:
                            ch.text += text
                            grew = True
                        if reasoning:
                            ch.reasoning += reasoning
                            grew = True
                        if c.get("finish_reason"):
                            ch.finish_reason = c["finish_reason"]
                            ch.stop_reason = c.get("stop_reason")
                    if grew:
                        if first and self.metrics:
                            self.metrics.ttft.labels(r.url).observe(time.monotonic() - sent_at)
                        first = False
                        yield self._output(request_id, prompt, choices, usage, r, finished=False)
            for c in choices.values():
                c.finish_reason = c.finish_reason or "stop"
            self.pool.succeeded(r)
            yield self._output(request_id, prompt, choices, usage, r, finished=True)
        except UpstreamRejected as e:
            # The replica is well; the request is not. Client errors keep their status.
            self.pool.succeeded(r)
            raise APIError(e.status, f"upstream: {e.message}", code="upstream_rejected") from None
        finally:
            r.outstanding -= 1

    def _output(self, request_id, prompt, choices, usage, r: Replica, finished: bool) -> RequestOutput:
        outs = [
            CompletionOutput(
                index=c.index,
                text=c.text,
                token_ids=[],
                # Only the last output carries the reason, as the engine's do: routes close a choice on it.
                finish_reason=c.finish_reason if finished else None,
                stop_reason=c.stop_reason if finished else None,
            )
            for c in sorted(choices.values(), key=lambda c: c.index)
        ]
        extra = {"reasoning": {c.index: c.reasoning for c in choices.values()}, "replica": r.url}
        if usage is not None:
            extra["usage"] = usage
        return RequestOutput(request_id, prompt, [], outs, finished=finished, extra=extra)
