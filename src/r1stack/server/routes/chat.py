"""POST /v1/chat/completions: one pipeline turn, answered whole or streamed, with R1 reasoning split out."""

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
from r1stack.server.logprobs import chat_logprobs
from r1stack.server.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatStreamChoice,
    DeltaMessage,
    Source,
    Usage,
    new_id,
)
from r1stack.server.sampling import chat_params
from r1stack.server.shaping import ChoiceShaper
from r1stack.server.sse import DONE, error_event, event
from r1stack.server.state import (
    ClientGone,
    ServerState,
    get_state,
    key_id,
    replica_of,
    until_disconnect,
    upstream_reasoning,
    upstream_usage,
)
from r1stack.server.structured import apply_response_format
from r1stack.server.tool_turn import CallArgs, CallStart, Done, Found, Text, ToolTurn
from r1stack.server.tools import ToolPlan, conversation, hf_messages, plan_tools, template_takes_tools
from r1stack.server.usage import RequestClock

log = logging.getLogger("r1stack.server")
router = APIRouter()


def _messages(req: ChatCompletionRequest, tokenizer) -> list[dict]:
    # Earlier R1 reasoning is not sent back to the model (DeepSeek's guidance); only the answers are.
    out = hf_messages(req.messages)
    if any(m.get("tool_calls") or m["role"] == "tool" for m in out) and tokenizer is not None:
        # A conversation that used tools, continued without offering them: earlier calls still render.
        out, _ = conversation(out, ToolPlan([], "none"), False, template_takes_tools(tokenizer))
    return out


def _sources(prepared: PreparedPrompt) -> list[Source] | None:
    if not prepared.sources:
        return None
    return [
        Source(
            id=s.id,
            kind=s.kind,
            title=s.title,
            url=s.url,
            knowledge_base=s.knowledge_base,
            document=s.document,
            chunk=s.chunk,
            score=s.score,
            text=s.text,
        )
        for s in prepared.sources
    ]


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(req: ChatCompletionRequest, request: Request) -> Response:
    st = get_state(request)
    model = st.check_model(req.model)
    st.check_backend(logprobs=req.logprobs)
    caller = key_id(request)
    clock = RequestClock()
    plan = plan_tools(req)
    if plan is not None:
        return await _with_tools(st, req, plan, request, model, caller, clock)
    prepared = await st.pipeline.prepare_chat(
        _messages(req, st.pipeline.tokenizer),
        key_id=caller,
        knowledge_bases=req.knowledge_bases,
        web_search=req.web_search,
        top_k_sources=req.top_k_sources,
        add_generation_prompt=req.add_generation_prompt,
        chat_template_kwargs=req.chat_template_kwargs,
    )
    requested = req.max_completion_tokens or req.max_tokens
    param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
    max_tokens = st.pipeline.resolve_max_tokens(prepared, requested, param)
    params = chat_params(req, st.engine.model_info.generation_defaults, max_tokens)
    apply_response_format(req, st.engine, params, prepared)
    request_id = new_id("chatcmpl")
    slot = st.admission.admit(params.n)
    if req.stream:
        body = _stream(st, req, prepared, params, request_id, model, caller, clock, slot)
        return SlotStreamingResponse(
            body,
            slot,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        result = await until_disconnect(
            request, _whole(st, req, prepared, params, request_id, model, caller, clock)
        )
    except ClientGone:
        return Response(status_code=499)
    finally:
        slot.release()
    return JSONResponse(result.model_dump(exclude_none=False))


async def _whole(
    st: ServerState, req, prepared, params, request_id, model, caller, clock
) -> ChatCompletionResponse:
    final = None
    async with aclosing(st.pipeline.generate(prepared, params, request_id, st.request_timeout_s)) as outs:
        async for out in outs:
            clock.saw(out)
            final = out
    choices = []
    factory = st.pipeline.output_filter_factory(caller)
    completion_tokens = 0
    texts = []
    for o in sorted(final.outputs, key=lambda o: o.index):
        shaper = ChoiceShaper(st.reasoning, factory)
        a, b = shaper.feed(o.text, upstream_reasoning(final, o.index)), shaper.finish()
        reasoning = (a.reasoning + b.reasoning) or None
        content = a.content + b.content
        texts.append(content)
        completion_tokens += len(o.token_ids)
        lp = None
        if params.logprobs is not None and o.logprobs is not None:
            lp = chat_logprobs(st.engine.tokenizer, o.token_ids, o.logprobs, params.logprobs)
        choices.append(
            ChatChoice(
                index=o.index,
                message=AssistantMessage(
                    content=content if (content or not reasoning) else None, reasoning_content=reasoning
                ),
                logprobs=lp,
                finish_reason=o.finish_reason,
                stop_reason=o.stop_reason,
            )
        )
    n_prompt = len(prepared.prompt_token_ids)
    counted = upstream_usage(final)
    if counted is not None:
        n_prompt, completion_tokens = counted
    usage = Usage(
        prompt_tokens=n_prompt, completion_tokens=completion_tokens, total_tokens=n_prompt + completion_tokens
    )
    await _finish(
        st,
        clock,
        request_id,
        caller,
        model,
        prepared,
        usage,
        final.outputs[0].finish_reason,
        texts,
        factory,
        replica_of(final),
    )
    return ChatCompletionResponse(
        id=request_id,
        model=model,
        choices=choices,
        usage=usage,
        sources=_sources(prepared),
        notices=prepared.notices or None,
    )


async def _stream(st: ServerState, req, prepared, params, request_id, model, caller, clock, slot):
    created = int(time.time())
    n = params.n
    factory = st.pipeline.output_filter_factory(caller)
    shapers = [ChoiceShaper(st.reasoning, factory) for _ in range(n)]
    seen_chars = [0] * n
    seen_tokens = [0] * n
    seen_reasoning = [0] * n  # of an upstream's separate reasoning_content
    texts = [""] * n
    last = None
    finish_reason = None
    usage = Usage(prompt_tokens=len(prepared.prompt_token_ids))
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def chunk(choices, **extra) -> str:
        return event(
            ChatCompletionChunk(id=request_id, created=created, model=model, choices=choices, **extra)
        )

    try:
        for i in range(n):
            first = {"sources": _sources(prepared), "notices": prepared.notices or None} if i == 0 else {}
            yield chunk(
                [ChatStreamChoice(index=i, delta=DeltaMessage(role="assistant", content=""))], **first
            )
        outs = aclosing(st.pipeline.generate(prepared, params, request_id, st.request_timeout_s))
        async with outs as gen:
            async for out in gen:
                clock.saw(out)
                last = out
                for o in out.outputs:
                    i = o.index
                    delta_text = o.text[seen_chars[i] :]
                    new_ids = o.token_ids[seen_tokens[i] :]
                    lp = None
                    if params.logprobs is not None and o.logprobs is not None and new_ids:
                        lp = chat_logprobs(
                            st.engine.tokenizer, new_ids, o.logprobs[seen_tokens[i] :], params.logprobs
                        )
                    seen_chars[i], seen_tokens[i] = len(o.text), len(o.token_ids)
                    r_text = upstream_reasoning(out, i)
                    d = shapers[i].feed(delta_text, r_text[seen_reasoning[i] :])
                    seen_reasoning[i] = len(r_text)
                    if o.finish_reason is not None:
                        tail = shapers[i].finish()
                        d.reasoning += tail.reasoning
                        d.content += tail.content
                        finish_reason = finish_reason or o.finish_reason
                    texts[i] += d.content
                    if d or lp is not None or o.finish_reason is not None:
                        delta = DeltaMessage(content=d.content or None, reasoning_content=d.reasoning or None)
                        yield chunk(
                            [
                                ChatStreamChoice(
                                    index=i,
                                    delta=delta,
                                    logprobs=lp,
                                    finish_reason=o.finish_reason,
                                    stop_reason=o.stop_reason,
                                )
                            ]
                        )
        usage.completion_tokens = sum(seen_tokens)
        counted = upstream_usage(last)
        if counted is not None:
            usage.prompt_tokens, usage.completion_tokens = counted
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        if include_usage:
            yield chunk([], usage=usage)
        await _finish(
            st,
            clock,
            request_id,
            caller,
            model,
            prepared,
            usage,
            finish_reason,
            texts,
            factory,
            replica_of(last),
        )
    except UserError as e:
        yield error_event(e.message, e.error_type, e.status_code, e.param)
    except EngineDeadError as e:
        yield error_event(f"{e}; the server must be restarted", "service_unavailable_error", 503)
    except Exception as e:  # the stream has started: report in-band, never as a broken connection
        log.exception("stream %s failed", request_id)
        yield error_event(f"internal error: {type(e).__name__}: {e}", "server_error", 500)
    finally:
        slot.release()
    yield DONE


async def _finish(
    st: ServerState,
    clock,
    request_id,
    caller,
    model,
    prepared,
    usage,
    finish_reason,
    texts,
    filters,
    replica=None,
) -> None:
    clock.observe(st.metrics, usage.prompt_tokens, usage.completion_tokens, finish_reason)
    # In a worker thread: the audit append waits for fsync, which must not stall every other stream.
    await asyncio.to_thread(
        st.pipeline.record,
        TurnRecord(
            request_id=request_id,
            key_id=caller,
            # The audit record names the replica that served (its schema has no field of its own for it).
            model=f"{model} via {replica}" if replica else model,
            endpoint="chat",
            prompt=prepared.prompt,
            output="\n".join(texts),
            sources=prepared.sources,
            web_queries=prepared.web_queries,
            redactions=filters.counts() if filters else {},
            blocked=bool(filters and filters.blocked),
            finish_reason=finish_reason,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        ),
    )


# --- requests that offer tools ------------------------------------------------------------------------------------


async def _with_tools(
    st: ServerState, req, plan: ToolPlan, request: Request, model, caller, clock
) -> Response:
    request_id = new_id("chatcmpl")
    turn = ToolTurn(st, req, plan, hf_messages(req.messages), caller, request_id, clock)
    turn.check()
    slot = st.admission.admit(1)
    if req.stream:
        return SlotStreamingResponse(
            _tool_stream(st, req, turn, model, clock, slot),
            slot,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        result = await until_disconnect(request, _tool_whole(st, turn, model, clock))
    except ClientGone:
        return Response(status_code=499)
    finally:
        slot.release()
    return JSONResponse(result.model_dump(exclude_none=False))


def _tool_usage(turn: ToolTurn) -> Usage:
    return Usage(
        prompt_tokens=turn.prompt_tokens,
        completion_tokens=turn.completion_tokens,
        total_tokens=turn.prompt_tokens + turn.completion_tokens,
    )


def _sources_of(turn: ToolTurn) -> list[Source] | None:
    return _sources(PreparedPrompt("", [], turn.sources)) if turn.sources else None


async def _finish_turn(st: ServerState, turn: ToolTurn, model, clock, usage: Usage, finish_reason) -> None:
    await _finish(
        st,
        clock,
        turn.request_id,
        turn.caller,
        model,
        turn.record(),
        usage,
        finish_reason,
        ["".join(turn.output)],
        turn.filters,
    )


async def _tool_whole(st: ServerState, turn: ToolTurn, model, clock) -> ChatCompletionResponse:
    reasoning, content, finish = "", "", None
    calls: dict[int, dict] = {}
    async with aclosing(turn.events()) as events:
        async for ev in events:
            if isinstance(ev, Text):
                reasoning += ev.reasoning
                content += ev.content
            elif isinstance(ev, CallStart):
                calls[ev.index] = {
                    "id": ev.id,
                    "type": "function",
                    "function": {"name": ev.name, "arguments": ""},
                }
            elif isinstance(ev, CallArgs):
                calls[ev.index]["function"]["arguments"] += ev.text
            elif isinstance(ev, Done):
                finish = ev.finish_reason
    usage = _tool_usage(turn)
    await _finish_turn(st, turn, model, clock, usage, finish)
    message = AssistantMessage(
        content=content if (content or not (reasoning or calls)) else None,
        reasoning_content=reasoning or None,
        tool_calls=[calls[i] for i in sorted(calls)],
    )
    return ChatCompletionResponse(
        id=turn.request_id,
        model=model,
        choices=[ChatChoice(index=0, message=message, finish_reason=finish)],
        usage=usage,
        sources=_sources_of(turn),
        notices=turn.notices or None,
    )


async def _tool_stream(st: ServerState, req, turn: ToolTurn, model, clock, slot):
    created = int(time.time())
    finish = None

    def chunk(choices, **extra) -> str:
        return event(
            ChatCompletionChunk(id=turn.request_id, created=created, model=model, choices=choices, **extra)
        )

    def delta(d: DeltaMessage, finish_reason=None) -> str:
        return chunk([ChatStreamChoice(index=0, delta=d, finish_reason=finish_reason)])

    try:
        yield delta(DeltaMessage(role="assistant", content=""))
        async with aclosing(turn.events()) as events:
            async for ev in events:
                if isinstance(ev, Found):
                    # Sources come as soon as they are known: before the answer that cites them.
                    yield chunk(
                        [ChatStreamChoice(index=0, delta=DeltaMessage())],
                        sources=_sources_of(turn),
                        notices=ev.notices or None,
                    )
                elif isinstance(ev, Text):
                    yield delta(
                        DeltaMessage(content=ev.content or None, reasoning_content=ev.reasoning or None)
                    )
                elif isinstance(ev, CallStart):
                    call = {"index": ev.index, "id": ev.id, "type": "function"}
                    yield delta(
                        DeltaMessage(tool_calls=[{**call, "function": {"name": ev.name, "arguments": ""}}])
                    )
                elif isinstance(ev, CallArgs):
                    yield delta(
                        DeltaMessage(tool_calls=[{"index": ev.index, "function": {"arguments": ev.text}}])
                    )
                elif isinstance(ev, Done):
                    finish = ev.finish_reason
                    yield delta(DeltaMessage(), finish_reason=finish)
        usage = _tool_usage(turn)
        if req.stream_options and req.stream_options.include_usage:
            yield chunk([], usage=usage)
        await _finish_turn(st, turn, model, clock, usage, finish)
    except UserError as e:
        yield error_event(e.message, e.error_type, e.status_code, e.param)
    except EngineDeadError as e:
        yield error_event(f"{e}; the server must be restarted", "service_unavailable_error", 503)
    except Exception as e:  # the stream has started: report in-band, never as a broken connection
        log.exception("stream %s failed", turn.request_id)
        yield error_event(f"internal error: {type(e).__name__}: {e}", "server_error", 500)
    finally:
        slot.release()
    yield DONE
