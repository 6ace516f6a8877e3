"""POST /v1/completions: raw-text completion, with `echo` and `logprobs` so evaluation harnesses can score text.

Several prompts in one request run as concurrent engine requests; choice i*n+j is prompt i's j-th sample.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from r1stack.engine.async_engine import EngineDeadError
from r1stack.errors import UserError
from r1stack.pipeline import PreparedPrompt, TurnRecord
from r1stack.server.admission import SlotStreamingResponse
from r1stack.server.logprobs import completion_logprobs
from r1stack.server.protocol import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Usage,
    new_id,
)
from r1stack.server.sampling import completion_params
from r1stack.server.shaping import ChoiceShaper
from r1stack.server.sse import DONE, error_event, event
from r1stack.server.state import (
    ClientGone,
    ServerState,
    get_state,
    key_id,
    replica_of,
    until_disconnect,
    upstream_usage,
)
from r1stack.server.usage import RequestClock

log = logging.getLogger("r1stack.server")
router = APIRouter()
MAX_PROMPTS = 64


def _prompts(req: CompletionRequest) -> list[str | list[int]]:
    p = req.prompt
    if isinstance(p, str):
        return [p]
    if not p:
        raise UserError("prompt is empty; give some text or token ids", param="prompt")
    if isinstance(p[0], int):
        return [p]
    if len(p) > MAX_PROMPTS:
        raise UserError(f"at most {MAX_PROMPTS} prompts per request, got {len(p)}", param="prompt")
    return list(p)


class _Prompt:
    """One prompt of the request and what it has produced so far."""

    def __init__(self, index: int, prepared: PreparedPrompt, request_id: str, n: int, filter_factory):
        self.index = index
        # Generated text passes the output filter (PII) like chat does; an echoed prompt is the caller's own.
        self.filters = filter_factory
        self.shapers = [ChoiceShaper(False, filter_factory) for _ in range(n)]
        self.prepared = prepared
        self.request_id = request_id
        self.seen_chars = [0] * n
        self.seen_tokens = [0] * n
        self.final = None


@router.post("/v1/completions", response_model=CompletionResponse)
async def completions(req: CompletionRequest, request: Request) -> Response:
    st = get_state(request)
    model = st.check_model(req.model)
    st.check_backend(logprobs=req.logprobs is not None)
    caller = key_id(request)
    base_id = new_id("cmpl")
    prompts = []
    params = None
    factory = st.pipeline.output_filter_factory(caller)
    for i, raw in enumerate(_prompts(req)):
        prepared = st.pipeline.prepare_text(raw)
        max_tokens = st.pipeline.resolve_max_tokens(prepared, req.max_tokens)
        p = completion_params(req, st.engine.model_info.generation_defaults, max_tokens)
        params = params or p
        prompts.append((_Prompt(i, prepared, f"{base_id}-{i}", req.n, factory), p))
    slot = st.admission.admit(req.n * len(prompts))
    clock = RequestClock()
    if req.stream:
        body = _stream(st, req, prompts, base_id, model, caller, clock, slot)
        return SlotStreamingResponse(
            body, slot, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    try:
        result = await until_disconnect(request, _whole(st, req, prompts, base_id, model, caller, clock))
    except ClientGone:
        return Response(status_code=499)
    finally:
        slot.release()
    return JSONResponse(result.model_dump())


async def _run(
    st: ServerState, pr: _Prompt, params, clock: RequestClock, queue: asyncio.Queue | None
) -> None:
    async with aclosing(
        st.pipeline.generate(pr.prepared, params, pr.request_id, st.request_timeout_s)
    ) as outs:
        async for out in outs:
            clock.saw(out)
            pr.final = out
            if queue is not None:
                await queue.put((pr, out))


def _choice(
    st: ServerState,
    req: CompletionRequest,
    pr: _Prompt,
    o,
    k,
    start_chars: int,
    start_tokens: int,
    first: bool,
) -> CompletionChoice:
    tok = st.engine.tokenizer
    shaper = pr.shapers[o.index]
    d = shaper.feed(o.text[start_chars:])
    text = d.content + (shaper.finish().content if o.finish_reason is not None else "")
    lp = None
    if req.echo and first:
        text = pr.prepared.prompt + text
    if k is not None and o.logprobs is not None:
        ids, positions, offset = o.token_ids[start_tokens:], o.logprobs[start_tokens:], 0
        if req.echo and first:
            plp = pr.final.prompt_logprobs if pr.final is not None else None
            p_ids = pr.prepared.prompt_token_ids
            p_pos = plp if plp is not None else [None] * len(p_ids)
            ids, positions = p_ids + ids, list(p_pos) + list(positions)
        elif start_chars:
            offset = start_chars + (len(pr.prepared.prompt) if req.echo else 0)
        lp = completion_logprobs(tok, ids, positions, k, text_offset=offset)
    return CompletionChoice(
        index=pr.index * req.n + o.index,
        text=text,
        logprobs=lp,
        finish_reason=o.finish_reason,
        stop_reason=o.stop_reason,
    )


async def _whole(st: ServerState, req, prompts, base_id, model, caller, clock) -> CompletionResponse:
    await asyncio.gather(*(_run(st, pr, params, clock, None) for pr, params in prompts))
    choices, n_prompt, n_gen = [], 0, 0
    for pr, params in prompts:
        n_prompt += len(pr.prepared.prompt_token_ids)
        for o in sorted(pr.final.outputs, key=lambda o: o.index):
            n_gen += len(o.token_ids)
            choices.append(_choice(st, req, pr, o, params.logprobs, 0, 0, True))
    usage = _upstream_counts(
        prompts, Usage(prompt_tokens=n_prompt, completion_tokens=n_gen, total_tokens=n_prompt + n_gen)
    )
    await _finish(
        st, clock, base_id, caller, model, prompts, usage, [c.text for c in choices], prompts[0][0].filters
    )
    return CompletionResponse(id=base_id, model=model, choices=choices, usage=usage)


async def _stream(st: ServerState, req, prompts, base_id, model, caller, clock, slot):
    created = int(time.time())
    queue: asyncio.Queue = asyncio.Queue()
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    tasks = [asyncio.ensure_future(_run(st, pr, params, clock, queue)) for pr, params in prompts]
    texts: dict[int, str] = {}

    def chunk(choices, usage=None) -> str:
        return event(
            CompletionResponse(id=base_id, created=created, model=model, choices=choices, usage=usage)
        )

    try:
        pending = set(tasks)
        while pending or not queue.empty():
            if queue.empty():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(pending | {getter}, return_when=asyncio.FIRST_COMPLETED)
                for t in done - {getter}:
                    pending.discard(t)
                    t.result()  # a failed prompt fails the stream (reported below)
                if getter not in done:
                    getter.cancel()
                    continue
                pr, out = getter.result()
            else:
                pr, out = queue.get_nowait()
            params = next(p for q, p in prompts if q is pr)
            for o in out.outputs:
                i = o.index
                first = pr.seen_tokens[i] == 0 and pr.seen_chars[i] == 0
                c = _choice(st, req, pr, o, params.logprobs, pr.seen_chars[i], pr.seen_tokens[i], first)
                grew = len(o.token_ids) > pr.seen_tokens[i] or len(o.text) > pr.seen_chars[i]
                pr.seen_chars[i], pr.seen_tokens[i] = len(o.text), len(o.token_ids)
                if grew or o.finish_reason is not None:
                    texts[c.index] = texts.get(c.index, "") + c.text
                    yield chunk([c])
        n_prompt = sum(len(pr.prepared.prompt_token_ids) for pr, _ in prompts)
        n_gen = sum(sum(pr.seen_tokens) for pr, _ in prompts)
        usage = _upstream_counts(
            prompts, Usage(prompt_tokens=n_prompt, completion_tokens=n_gen, total_tokens=n_prompt + n_gen)
        )
        if include_usage:
            yield chunk([], usage)
        await _finish(
            st, clock, base_id, caller, model, prompts, usage, list(texts.values()), prompts[0][0].filters
        )
    except UserError as e:
        yield error_event(e.message, e.error_type, e.status_code, e.param)
    except EngineDeadError as e:
        yield error_event(f"{e}; the server must be restarted", "service_unavailable_error", 503)
    except Exception as e:
        log.exception("stream %s failed", base_id)
        yield error_event(f"internal error: {type(e).__name__}: {e}", "server_error", 500)
    finally:
        for t in tasks:
            t.cancel()
        slot.release()
    yield DONE


def _upstream_counts(prompts, usage: Usage) -> Usage:
    """An upstream's own token counts, summed over the prompts, in place of ours (it has the tokenizer)."""
    counted = [upstream_usage(pr.final) for pr, _ in prompts]
    if not counted or any(c is None for c in counted):
        return usage
    p, c = sum(x[0] for x in counted), sum(x[1] for x in counted)
    return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


async def _finish(st: ServerState, clock, request_id, caller, model, prompts, usage, texts, filters) -> None:
    reason = None
    replica = None
    for pr, _ in prompts:
        if pr.final is not None and pr.final.outputs:
            reason = reason or pr.final.outputs[0].finish_reason
            replica = replica or replica_of(pr.final)
    clock.observe(st.metrics, usage.prompt_tokens, usage.completion_tokens, reason)
    # In a worker thread: the audit append waits for fsync, which must not stall every other stream.
    await asyncio.to_thread(
        st.pipeline.record,
        TurnRecord(
            request_id=request_id,
            key_id=caller,
            model=f"{model} via {replica}" if replica else model,
            endpoint="completions",
            prompt="\n".join(pr.prepared.prompt for pr, _ in prompts),
            output="\n".join(texts),
            sources=[],
            web_queries=[],
            redactions=filters.counts() if filters else {},
            blocked=bool(filters and filters.blocked),
            finish_reason=reason,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        ),
    )
