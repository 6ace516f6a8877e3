"""/v1/watermark/detect and /v1/guard/scan: the watermark detector and the PII recognisers over HTTP, with the
same parameters and per-key policy the server applies to its own outputs."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator

from r1stack.errors import UserError
from r1stack.guard.detection import detect
from r1stack.guard.policy import PiiFilter

router = APIRouter(tags=["guard"])
MAX_CHARS = 1_000_000


class DetectRequest(BaseModel):
    text: str | None = Field(
        None, max_length=MAX_CHARS, description="Generated text; tokenised with the served model's tokenizer."
    )
    token_ids: list[int] | None = Field(None, max_length=MAX_CHARS, description="Or the generated token ids.")
    prompt_token_ids: list[int] = Field(
        default_factory=list, description="Lets the first tokens be scored too."
    )

    @model_validator(mode="after")
    def one_input(self) -> DetectRequest:
        if (self.text is None) == (self.token_ids is None):
            raise ValueError("send exactly one of text or token_ids")
        return self


class DetectResponse(BaseModel):
    z: float
    p_value: float
    verdict: str
    green: int
    scored: int
    tokens: int
    gamma: float
    z_threshold: float


class ScanRequest(BaseModel):
    text: str = Field(max_length=MAX_CHARS)


class ScanFinding(BaseModel):
    type: str
    label: str
    start: int
    end: int
    score: float


class ScanResponse(BaseModel):
    policy: str
    findings: list[ScanFinding]
    text: str  # the text with the caller's policy applied ("" when blocked)
    blocked: bool


def _tokenizer(request: Request) -> Any:
    engine = getattr(request.app.state, "engine", None)
    tokenizer = getattr(request.app.state, "tokenizer", None) or getattr(engine, "tokenizer", None)
    if tokenizer is None:
        raise UserError("this server has no tokenizer loaded; send token_ids instead of text", param="text")
    return tokenizer


@router.post("/v1/watermark/detect", response_model=DetectResponse)
async def watermark_detect(body: DetectRequest, request: Request) -> DetectResponse:
    settings = request.app.state.settings
    source = body.token_ids if body.text is None else body.text
    tokenizer = _tokenizer(request) if body.text is not None else None
    d = await asyncio.to_thread(detect, source, settings, tokenizer, body.prompt_token_ids)
    return DetectResponse(**d.as_dict(), z_threshold=settings.guard.watermark_z_threshold)


@router.post("/v1/guard/scan", response_model=ScanResponse)
async def guard_scan(body: ScanRequest, request: Request) -> ScanResponse:
    pii = PiiFilter.for_key(request.app.state.settings, getattr(request.state, "key_id", None))
    result = await asyncio.to_thread(pii.redact, body.text)
    return ScanResponse(
        policy=pii.policy,
        findings=[
            ScanFinding(type=f.entity, label=f.label, start=f.start, end=f.end, score=round(f.score, 3))
            for f in result.findings
        ],
        text=result.text,
        blocked=result.blocked,
    )
