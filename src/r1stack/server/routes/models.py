"""GET /v1/models and POST /v1/embeddings."""

from __future__ import annotations

import asyncio
import base64
import threading

import numpy as np
from fastapi import APIRouter, Request

from r1stack.errors import NotFoundError, UserError
from r1stack.server.protocol import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    Usage,
)
from r1stack.server.state import ServerState, get_state

router = APIRouter()
MAX_INPUTS = 2048
MAX_CHARS = 100_000
_load_lock = threading.Lock()


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    st = get_state(request)
    info = st.engine.model_info
    cards = [
        ModelCard(id=name, root=str(info.path), max_model_len=info.max_model_len, created=int(st.started))
        for name in st.served_names
    ]
    return ModelList(data=cards)


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, request: Request) -> ModelCard:
    st = get_state(request)
    if model_id not in st.served_names:
        raise NotFoundError(f"The model `{model_id}` does not exist.", param="model", code="model_not_found")
    info = st.engine.model_info
    return ModelCard(
        id=model_id, root=str(info.path), max_model_len=info.max_model_len, created=int(st.started)
    )


def _embedder(st: ServerState):
    with _load_lock:
        if st.embedder is None:
            from r1stack.server.embeddings import Embedder

            st.embedder = Embedder(st.settings.kb.embedder)
    return st.embedder


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def embeddings(req: EmbeddingRequest, request: Request) -> EmbeddingResponse:
    st = get_state(request)
    texts = [req.input] if isinstance(req.input, str) else list(req.input)
    if not texts:
        raise UserError("input is empty; give a string or a list of strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise UserError(f"at most {MAX_INPUTS} inputs per request, got {len(texts)}", param="input")
    for i, t in enumerate(texts):
        if not t:
            raise UserError(f"input[{i}] is an empty string", param="input")
        if len(t) > MAX_CHARS:
            raise UserError(f"input[{i}] has {len(t)} characters; the limit is {MAX_CHARS}", param="input")
    emb = await asyncio.to_thread(_embedder, st)
    if not emb.answers_to(req.model):
        raise NotFoundError(
            f"The model `{req.model}` does not exist. Embeddings are served by `{emb.name}`.",
            param="model",
            code="model_not_found",
        )
    if req.dimensions is not None and req.dimensions != emb.dimension:
        raise UserError(
            f"{emb.name} makes {emb.dimension}-dimensional vectors and cannot shorten them; omit dimensions",
            param="dimensions",
        )
    vectors, n_tokens = await asyncio.to_thread(lambda: (emb.encode(texts), emb.count_tokens(texts)))
    data = []
    for i, v in enumerate(vectors):
        if req.encoding_format == "base64":
            # What the openai client asks for by default: little-endian float32, base64.
            payload = base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
        else:
            payload = v
        data.append(EmbeddingData(index=i, embedding=payload))
    return EmbeddingResponse(
        data=data, model=emb.name, usage=Usage(prompt_tokens=n_tokens, total_tokens=n_tokens)
    )
