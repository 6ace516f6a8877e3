"""/v1/apps/...: transaction risk scoring and the clinical assistant over HTTP, on the server's backend.

Generation runs through `app.state.engine`: the native AsyncEngine (app requests join the running batch beside
chat traffic, constrained while generating) or, on a gateway, the upstream pool (schema sent as response_format,
answers validated here). Clinical stage 2 runs on the served model; stage 1 too, unless `apps.triage_model` names
another model, which is then loaded on this server beside the served one, on first use.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel, Field

from r1stack.apps.backend import server_backend
from r1stack.apps.clinical.dicom_intake import intake
from r1stack.apps.clinical.flow import diagnose, triage
from r1stack.apps.risk.scorer import finish, jobs_for, prepare
from r1stack.apps.risk.transactions import validate_rows
from r1stack.errors import UserError
from r1stack.guard.policy import PiiFilter

router = APIRouter(tags=["apps"])
MAX_ROWS = 5000
MAX_DICOM_MB = 200


class RiskRequest(BaseModel):
    transactions: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)
    seed: int | None = Field(None, description="Base seed; transaction i uses seed + i.")


class TriageRequest(BaseModel):
    symptoms: str = Field(min_length=1, max_length=8000)
    seed: int | None = None


class DiagnoseRequest(TriageRequest):
    kb: list[str] = Field(default_factory=list, description="Medical knowledge bases to ground on.")
    imaging: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Summaries from /v1/apps/clinical/dicom (de-identified).",
    )
    top_k: int = Field(3, ge=1, le=10)


def _backend(request: Request):
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise UserError("this server has no engine loaded")
    return server_backend(engine)


def _serves(request: Request, model: str) -> bool:
    """Whether `model` (a name or a path) is what this server serves already."""
    info = request.app.state.engine.model_info
    state = getattr(request.app.state, "r1", None)
    names = {info.name, str(info.path), *(getattr(state, "served_names", None) or [])}
    if model in names:
        return True
    try:
        return Path(model).resolve() == Path(str(info.path)).resolve()
    except OSError:
        return False


async def _triage_backend(request: Request):
    """Stage 1's backend: the served model, or `apps.triage_model` loaded once beside it (a small model: one
    thread and its own small KV cache, so it does not crowd the served model)."""
    settings = request.app.state.settings
    name = settings.apps.triage_model
    if not name or _serves(request, name):
        return _backend(request)
    state = request.app.state
    if getattr(state, "apps_triage_lock", None) is None:
        state.apps_triage_lock = asyncio.Lock()
    async with state.apps_triage_lock:
        engine = getattr(state, "apps_triage_engine", None)
        if engine is None:
            engine = await asyncio.to_thread(_load_triage_engine, settings, name)
            await engine.start()
            state.apps_triage_engine = engine
    return server_backend(engine)


def _load_triage_engine(settings, name: str):
    from r1stack.engine.async_engine import AsyncEngine
    from r1stack.engine.config import EngineArgs

    args = EngineArgs.from_settings(
        settings, model=name, kv_cache_bytes=settings.apps.triage_kv_cache_bytes, threads=1
    )
    try:
        return AsyncEngine(args)
    except UserError as e:
        raise UserError(
            f"apps.triage_model {name!r} could not be loaded ({e}); install it with `r1stack pull {name}`, "
            "give a local path, or unset apps.triage_model to triage with the served model"
        ) from None


def _diagnosis_backend(request: Request):
    """Stage 2 runs on the served model: a server holds one large model, and a gateway sends it upstream."""
    name = request.app.state.settings.apps.diagnosis_model
    if name and not _serves(request, name):
        raise UserError(
            f"apps.diagnosis_model is {name!r}, but this server serves "
            f"{request.app.state.engine.model_info.name!r} and runs stage 2 on it; serve {name!r} "
            "(r1stack serve --model ..., or a gateway in front of it) or unset apps.diagnosis_model"
        )
    return _backend(request)


def _pii(request: Request) -> PiiFilter:
    return PiiFilter.for_key(request.app.state.settings, getattr(request.state, "key_id", None))


def _audit(request: Request):
    pipeline = getattr(request.app.state, "pipeline", None)
    return getattr(pipeline, "audit_log", None)


@router.post("/v1/apps/risk/score")
async def risk_score(body: RiskRequest, request: Request) -> dict:
    txns, errors = validate_rows(body.transactions)
    results = []
    if txns:
        backend = _backend(request)
        prepared = await asyncio.to_thread(prepare, txns, _pii(request))
        texts = await backend.run(jobs_for(prepared, body.seed))
        key_id = getattr(request.state, "key_id", None)
        results = await asyncio.to_thread(finish, prepared, texts, _audit(request), backend.name, key_id)
    return {
        "object": "list",
        "data": [asdict(r) for r in results],
        "errors": [asdict(e) for e in errors],
    }


@router.post("/v1/apps/clinical/triage")
async def clinical_triage(body: TriageRequest, request: Request) -> dict:
    result, red = await triage(
        await _triage_backend(request),
        body.symptoms,
        _pii(request),
        _audit(request),
        getattr(request.state, "key_id", None),
        body.seed,
    )
    return {"department": result.department, "urgency": result.urgency, "redactions": red}


@router.post("/v1/apps/clinical/diagnose")
async def clinical_diagnose(body: DiagnoseRequest, request: Request) -> dict:
    large = _diagnosis_backend(request)
    small = await _triage_backend(request)
    pii = _pii(request)
    imaging = [PiiFilter("redact").redact(s).text for s in body.imaging]
    note = await diagnose(
        small,
        large,
        request.app.state.settings,
        body.symptoms,
        body.kb,
        pii,
        imaging,
        _audit(request),
        getattr(request.state, "key_id", None),
        body.seed,
        body.top_k,
    )
    return note.as_dict()


@router.post("/v1/apps/clinical/dicom")
async def clinical_dicom(request: Request, files: list[UploadFile] = File(...)) -> dict:
    """De-identify uploaded DICOM files; the copies stay on the server under the data directory."""
    settings = request.app.state.settings
    batch = uuid.uuid4().hex
    inbox = Path(settings.data_dir) / "apps" / "dicom-inbox" / batch
    inbox.mkdir(parents=True, exist_ok=True)
    limit = MAX_DICOM_MB * 2**20
    too_big = []
    try:
        for n, f in enumerate(files):
            suffix = PurePosixPath((f.filename or "").replace("\\", "/")).suffix[:8]
            if f.size is not None and f.size > limit:
                too_big.append(
                    {"source": f"file-{n}{suffix}", "message": f"over the {MAX_DICOM_MB} MB limit"}
                )
                continue
            (inbox / f"{n:05d}{suffix}").write_bytes(await f.read())
        out = Path(settings.data_dir) / "apps" / "dicom" / batch
        result = await asyncio.to_thread(intake, [inbox], out)
    finally:
        # The uploads still carry identifiers: only the de-identified copies are kept.
        for p in inbox.iterdir():
            p.unlink()
        inbox.rmdir()
    return {
        "batch": batch,
        "data": [{**s.as_dict(), "summary": s.text()} for s in result.summaries],
        "errors": [asdict(e) for e in result.errors] + too_big,
    }
