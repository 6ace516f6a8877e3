"""One chat turn: gather context (knowledge bases, web search), build the prompt, generate, guard the output,
and leave an audit record. Knows nothing about HTTP; the server turns its results into OpenAI responses.

`Pipeline.from_settings` connects the services the settings switch on: knowledge-base retrieval, the web search
proxy's client, the PII filter, the watermark and the audit log. A turn that asks for a service that is off
gets a notice beside its answer instead of a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from r1stack.engine.outputs import RequestOutput
from r1stack.engine.sampling_params import SamplingParams
from r1stack.errors import UserError

log = logging.getLogger("r1stack.pipeline")


class TurnTimeout(UserError):
    status_code = 408
    error_type = "timeout_error"


@dataclass
class Source:
    """A chunk or page the answer may cite as [id]."""

    id: int
    kind: str  # "kb" | "web"
    text: str
    title: str | None = None
    url: str | None = None
    knowledge_base: str | None = None
    document: str | None = None
    chunk: int | str | None = None
    score: float | None = None


@dataclass
class PreparedPrompt:
    prompt: str
    prompt_token_ids: list[int]
    sources: list[Source] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    web_queries: list[str] = field(default_factory=list)
    # The grounded conversation itself, for an upstream backend that applies its own chat template.
    messages: list[dict[str, Any]] | None = None
    # OpenAI `response_format` for an upstream backend, which enforces it itself (the native engine uses a
    # logits processor instead: server/structured.py).
    response_format: dict[str, Any] | None = None


@dataclass
class Grounding:
    """A conversation after context gathering: its grounded messages and what was found on the way."""

    messages: list[dict[str, Any]]
    sources: list[Source] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    web_queries: list[str] = field(default_factory=list)


NO_PROXY = "web search unavailable: no search proxy is configured (websearch.proxy_address)"


class TextFilter(Protocol):
    """A streaming output filter: feed() returns what is safe to show now, flush() the rest at the end."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


class OutputFilters:
    """Makes one streaming PII filter per output field of a request and adds up what they redacted."""

    def __init__(self, pii_filter):
        self._filter = pii_filter
        self._made = []

    def __call__(self) -> TextFilter:
        f = self._filter.stream()
        self._made.append(f)
        return f

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for f in self._made:
            for k, v in f.counts.items():
                total[k] = total.get(k, 0) + v
        return total

    @property
    def blocked(self) -> bool:
        return any(f.blocked for f in self._made)


@dataclass
class TurnRecord:
    """What the audit log keeps of one request."""

    request_id: str
    key_id: str | None
    model: str
    endpoint: str
    prompt: str
    output: str
    sources: list[Source]
    web_queries: list[str]
    redactions: dict[str, int]
    blocked: bool
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


GROUNDING_INSTRUCTION = (
    "Answer the question using the numbered sources below. Cite the sources you use as [1], [2], ... "
    "If the sources do not contain the answer, say so.\n\n{sources}\n\nQuestion: {question}"
)


def format_sources(sources: list[Source], max_chars: int = 2000) -> str:
    lines = []
    for s in sources:
        label = s.title or s.document or s.url or f"source {s.id}"
        where = f" ({s.url})" if s.url else ""
        lines.append(f"[{s.id}] {label}{where}\n{s.text[:max_chars].strip()}")
    return "\n\n".join(lines)


class Pipeline:
    def __init__(self, engine, settings, *, kb=None, websearch=None, pii=None, watermark=None, audit=None):
        self.engine = engine
        self.settings = settings
        self.kb = kb  # kb.retrieval.Retriever
        self.websearch = websearch  # websearch.client.WebSearchClient
        self.pii = pii  # key id -> guard.policy.PiiFilter (None: outputs pass unfiltered)
        self.watermark = watermark  # a logits processor, or None
        self.audit_log = audit  # guard.audit.AuditLog

    @classmethod
    def from_settings(cls, engine, settings) -> tuple[Pipeline, list[str]]:
        """The pipeline with the services the settings switch on, and a line for each one that is off."""
        from r1stack.kb.retrieval import Retriever

        off = []
        websearch = None
        if settings.websearch.proxy_address:
            from r1stack.websearch.client import WebSearchClient

            websearch = WebSearchClient(settings.websearch)
        else:
            off.append("web search (set websearch.proxy_address to a running `r1stack search-proxy serve`)")
        pii = None
        if settings.guard.pii_policy != "allow" or any(
            p != "allow" for p in settings.guard.key_policies.values()
        ):
            from r1stack.guard.policy import PiiFilter

            PiiFilter.for_key(settings, None)  # a bad policy or pattern fails at start, not per request
            pii = _PiiFilters(settings)
        else:
            off.append("PII filter (guard.pii_policy is allow)")
        watermark = None
        if settings.guard.watermark and getattr(engine, "upstream", False):
            # The replicas sample the tokens, so the gateway asks them to watermark (vllm_xargs); only a vLLM
            # started with r1stack's logits processor does it, hence the hint.
            off.append(
                "watermark in this process (replicas are asked to apply it: start vLLM with --logits-processors "
                "r1stack.integrations.vllm:WatermarkLogitsProcessor)"
            )
        elif settings.guard.watermark:
            from r1stack.guard.watermark import watermark_processor

            watermark = watermark_processor(settings)
        audit = None
        if settings.guard.audit:
            from r1stack.guard.audit import AuditLog

            audit = AuditLog(settings)
        else:
            off.append("audit log (guard.audit is off)")
        return cls(
            engine,
            settings,
            kb=Retriever(settings),
            websearch=websearch,
            pii=pii,
            watermark=watermark,
            audit=audit,
        ), off

    # --- prompt building -------------------------------------------------------------------------------------

    @property
    def tokenizer(self):
        return self.engine.tokenizer  # None for an upstream backend

    @property
    def upstream(self) -> bool:
        return bool(getattr(self.engine, "upstream", False))

    async def prepare_chat(
        self,
        messages: list[dict[str, Any]],
        *,
        key_id: str | None = None,
        knowledge_bases: list[str] | None = None,
        web_search: bool = False,
        top_k_sources: int | None = None,
        add_generation_prompt: bool = True,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> PreparedPrompt:
        grounded = await self.ground_chat(
            messages,
            key_id=key_id,
            knowledge_bases=knowledge_bases,
            web_search=web_search,
            top_k_sources=top_k_sources,
        )
        prepared = self.render_prompt(
            grounded.messages,
            add_generation_prompt=add_generation_prompt,
            chat_template_kwargs=chat_template_kwargs,
        )
        prepared.sources, prepared.notices, prepared.web_queries = (
            grounded.sources,
            grounded.notices,
            grounded.web_queries,
        )
        return prepared

    async def ground_chat(
        self,
        messages: list[dict[str, Any]],
        *,
        key_id: str | None = None,
        knowledge_bases: list[str] | None = None,
        web_search: bool = False,
        top_k_sources: int | None = None,
    ) -> Grounding:
        """The conversation with knowledge-base and web sources written into its last user message."""
        messages = [dict(m) for m in messages]
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "") or ""
        sources: list[Source] = []
        notices: list[str] = []
        web_queries: list[str] = []
        if knowledge_bases:
            if self.kb is None:
                notices.append("knowledge bases are not available on this server")
            elif not question.strip():
                notices.append("no knowledge-base search: the last user message is empty")
            else:
                k = top_k_sources or self.settings.kb.top_k
                hits = await asyncio.to_thread(self.kb.retrieve, knowledge_bases, question, k, key_id)
                sources.extend(_kb_source(h) for h in hits)
        if web_search:
            if self.websearch is None:
                notices.append(NO_PROXY)
            elif not question.strip():
                notices.append("web search skipped: the last user message is empty")
            else:
                k = top_k_sources or self.settings.websearch.top_k
                web_queries.append(question)
                outcome = await asyncio.to_thread(self.websearch.search, question, k)
                if outcome.ok:
                    sources.extend(_web_source(r) for r in outcome.results)
                else:
                    notices.append(outcome.error)
        for i, s in enumerate(sources, start=1):
            s.id = i
        if sources:
            for m in reversed(messages):
                if m["role"] == "user":
                    m["content"] = GROUNDING_INSTRUCTION.format(
                        sources=format_sources(sources), question=question
                    )
                    break
        return Grounding(messages, sources, notices, web_queries)

    def render_prompt(
        self,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> PreparedPrompt:
        """The conversation through the model's chat template, and its token ids."""
        if self.tokenizer is None:
            # An upstream backend renders the template and counts tokens itself; the audit log keeps a transcript.
            transcript = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in messages)
            return PreparedPrompt(transcript, [], messages=messages)
        try:
            prompt = self.engine.render_chat(
                messages, add_generation_prompt=add_generation_prompt, **(chat_template_kwargs or {})
            )
        except UserError:
            raise
        except Exception as e:  # a template that rejects the conversation (e.g. roles out of order)
            raise UserError(
                f"the model's chat template rejected these messages: {e}", param="messages"
            ) from e
        # The template already holds BOS and friends; adding them again would double them.
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return PreparedPrompt(prompt, list(ids))

    async def web_search_tool(self, arguments: str, fallback_query: str, start_index: int):
        """Runs one `web_search` tool call through the proxy: (tool message text, sources, query, outcome).
        Never raises and never waits past websearch.timeout_s: failures come back as "web search unavailable"."""
        from r1stack.websearch.client import SearchOutcome
        from r1stack.websearch.context import run_web_search_tool, tool_query

        query = tool_query(arguments, fallback_query)
        if self.websearch is None:
            return NO_PROXY, [], query, SearchOutcome(error=NO_PROXY)
        text, outcome = await asyncio.to_thread(
            run_web_search_tool,
            self.websearch,
            arguments,
            start_index,
            fallback_query=fallback_query,
        )
        found = [_web_source(r) for r in outcome.results] if outcome.ok else []
        for i, s in enumerate(found, start=start_index):
            s.id = i
        return text, found, query, outcome

    def prepare_text(self, prompt: str | list[int]) -> PreparedPrompt:
        if isinstance(prompt, str):
            if not prompt:
                raise UserError("prompt is empty; give some text or token ids", param="prompt")
            if self.tokenizer is None:
                return PreparedPrompt(prompt, [])
            ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
            return PreparedPrompt(prompt, list(ids))
        if not prompt:
            raise UserError("prompt is an empty token list", param="prompt")
        if self.tokenizer is None:
            return PreparedPrompt("", list(prompt))  # the upstream checks the ids against its vocabulary
        vocab = len(self.tokenizer)
        bad = [t for t in prompt if not 0 <= t < vocab]
        if bad:
            raise UserError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})", param="prompt")
        return PreparedPrompt(self.tokenizer.decode(prompt), list(prompt))

    def resolve_max_tokens(
        self, prepared: PreparedPrompt, requested: int | None, param: str = "max_tokens"
    ) -> int:
        """The request's budget, or what is left of the context; a budget that does not fit is a 400 with numbers."""
        if self.tokenizer is None:
            return requested  # an upstream counts the prompt's tokens and enforces its own context length
        limit = self.engine.model_info.max_model_len
        n = len(prepared.prompt_token_ids)
        if requested is None:
            if n >= limit:
                raise UserError(
                    f"This model's maximum context length is {limit} tokens, but the prompt has {n} tokens; "
                    "shorten the prompt.",
                    param="messages",
                    code="context_length_exceeded",
                )
            return limit - n
        if n + requested > limit:
            raise UserError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{n + requested} tokens ({n} in the prompt, {requested} for the completion). "
                f"Reduce the prompt or {param}.",
                param=param,
                code="context_length_exceeded",
            )
        return requested

    # --- generation ------------------------------------------------------------------------------------------

    async def generate(
        self,
        prepared: PreparedPrompt,
        params: SamplingParams,
        request_id: str,
        timeout_s: float | None = None,
    ) -> AsyncIterator[RequestOutput]:
        """The engine's cumulative outputs; ends (and frees the request) on timeout or when the caller stops."""
        deadline = None if not timeout_s else asyncio.get_running_loop().time() + timeout_s
        if self.watermark is not None:
            params.logits_processors = [*params.logits_processors, self.watermark]
        kw = {"messages": prepared.messages} if prepared.messages is not None else {}
        if prepared.response_format is not None:
            kw["response_format"] = prepared.response_format
        stream = self.engine.generate(
            prepared.prompt, params, request_id, prompt_token_ids=prepared.prompt_token_ids, **kw
        )
        finished = False
        try:
            async with asyncio.timeout_at(deadline):
                async for out in stream:
                    finished = out.finished
                    yield out
        except TimeoutError:
            raise TurnTimeout(
                f"the request ran past the server's per-request timeout of {timeout_s:g} s; "
                "ask for fewer tokens or raise --request-timeout"
            ) from None
        finally:
            # Starlette cancels a stream whose client left; anyio re-raises that cancellation at every await,
            # so the clean-up runs shielded (and bounded), or the request would keep its KV blocks.
            with anyio.move_on_after(10, shield=True):
                await stream.aclose()
                if not finished:
                    await self.engine.abort(request_id)

    # --- guarding and audit ----------------------------------------------------------------------------------

    def output_filter_factory(self, key_id: str | None) -> OutputFilters | None:
        """Per request: a maker of streaming PII filters under the caller's policy (None: no filtering)."""
        if self.pii is None:
            return None
        f = self.pii.for_key(key_id)
        return None if f.policy == "allow" else OutputFilters(f)

    def record(self, rec: TurnRecord) -> None:
        if self.audit_log is None:
            return
        from r1stack.guard.audit import AuditEvent

        prompt = rec.prompt
        if self.pii is not None and self.settings.guard.pii_on_prompts:
            prompt = self.pii.for_key(rec.key_id).redact(prompt).text
        event = AuditEvent(
            request_id=rec.request_id,
            key_id=rec.key_id,
            model=rec.model,
            prompt=prompt,
            output=rec.output,
            kb_sources=[f"{s.knowledge_base}/{s.document}#{s.chunk}" for s in rec.sources if s.kind == "kb"],
            web_queries=list(rec.web_queries),
            redactions=dict(rec.redactions),
            watermark=self.watermark is not None,
            status="blocked" if rec.blocked else ("error" if rec.finish_reason == "error" else "ok"),
        )
        try:
            self.audit_log.append(event)
        except Exception:  # the answer was already given; a failing audit write must be loud, not fatal
            log.exception("audit log write failed for request %s", rec.request_id)


class _PiiFilters:
    """One compiled PiiFilter per policy, shared by the requests of all keys that have it."""

    def __init__(self, settings):
        self.settings = settings
        self._by_key: dict[str | None, object] = {}

    def for_key(self, key_id: str | None):
        f = self._by_key.get(key_id)
        if f is None:
            from r1stack.guard.policy import PiiFilter

            f = self._by_key[key_id] = PiiFilter.for_key(self.settings, key_id)
        return f


def _kb_source(hit) -> Source:
    title = hit.document + (f" ({hit.heading})" if hit.heading else "")
    return Source(
        id=0,
        kind="kb",
        text=hit.text,
        title=title,
        knowledge_base=hit.kb,
        document=hit.document,
        chunk=hit.chunk_id,
        score=round(float(hit.score), 6),
    )


def _web_source(result) -> Source:
    return Source(id=0, kind="web", text=result.snippet or "", title=result.title, url=result.url)
