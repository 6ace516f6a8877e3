"""/health, /metrics, /tokenize and /detokenize: what operators and evaluation tools call besides the OpenAI API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from r1stack.errors import UserError
from r1stack.server.errors import error_response
from r1stack.server.protocol import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from r1stack.server.state import get_state

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> Response:
    st = get_state(request)
    dead = getattr(st.engine, "dead_error", None)
    if dead is not None:
        return error_response(
            503, f"the engine has stopped: {type(dead).__name__}: {dead}; restart the server"
        )
    pool = getattr(st.engine, "pool", None)
    if pool is not None:  # an upstream gateway is healthy while one replica may take requests
        replicas = {r.url: r.state for r in pool.replicas}
        if not pool.any_usable():
            return error_response(503, f"no healthy upstream replica: {replicas}")
        return JSONResponse({"status": "ok", "model": st.model_name, "upstreams": replicas})
    return JSONResponse({"status": "ok", "model": st.model_name})


def _tokenizer(st):
    if st.engine.tokenizer is None:
        raise UserError(
            "this gateway's upstream backend tokenizes on the replicas; ask them (/tokenize there)"
        )
    return st.engine.tokenizer


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(get_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(req: TokenizeRequest, request: Request) -> TokenizeResponse:
    st = get_state(request)
    st.check_model(req.model)
    _tokenizer(st)
    if (req.prompt is None) == (req.messages is None):
        raise UserError("give exactly one of prompt or messages", param="prompt")
    if req.messages is not None:
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages
        ]
        prepared = await st.pipeline.prepare_chat(messages, add_generation_prompt=req.add_generation_prompt)
        ids = prepared.prompt_token_ids
    else:
        ids = st.engine.tokenizer(req.prompt, add_special_tokens=req.add_special_tokens)["input_ids"]
    return TokenizeResponse(
        count=len(ids), max_model_len=st.engine.model_info.max_model_len, tokens=list(ids)
    )


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(req: DetokenizeRequest, request: Request) -> DetokenizeResponse:
    st = get_state(request)
    st.check_model(req.model)
    vocab = len(_tokenizer(st))
    bad = [t for t in req.tokens if t >= vocab]
    if bad:
        raise UserError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})", param="tokens")
    return DetokenizeResponse(prompt=st.engine.tokenizer.decode(req.tokens))
