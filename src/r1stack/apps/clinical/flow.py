"""The clinical flow end to end over any backend pair: redact, triage, retrieve, diagnose. One async flow for
the server and the CLI (which runs it with asyncio.run over the offline backend)."""

from __future__ import annotations

import asyncio
import inspect
import uuid

from r1stack.apps.clinical.assistant import (
    Note,
    Triage,
    diagnosis_job,
    parse_note,
    parse_triage,
    redact,
    triage_job,
)
from r1stack.guard.audit import AuditEvent, AuditLog
from r1stack.guard.policy import PiiFilter


def gather_context(settings, kb_names: list[str], query: str, key_id: str | None, top_k: int = 3):
    """(prompt context, sources payload) from the medical knowledge bases; empty when none are named."""
    if not kb_names:
        return "", []
    from r1stack.kb import Retriever, format_context, sources_payload

    hits = Retriever(settings).retrieve(kb_names, query, top_k, key_id)
    return format_context(hits), sources_payload(hits)


def _audit(audit: AuditLog | None, stage: str, model: str, prompt: str, output: str, key_id, red, sources=()):
    if audit is not None:
        audit.append(
            AuditEvent(
                request_id=f"clinical-{stage}-{uuid.uuid4().hex[:16]}",
                key_id=key_id,
                model=model,
                prompt=prompt,
                output=output,
                redactions=red,
                kb_sources=[f"{s['kb']}/{s['document']}#{s['chunk_id']}" for s in sources],
            )
        )


async def _run(backend, job):
    """One job on any backend: the server's are coroutines, the offline one answers at once."""
    out = backend.run([job])
    return (await out if inspect.isawaitable(out) else out)[0]


async def triage(
    backend, symptoms: str, pii: PiiFilter, audit=None, key_id=None, seed=None
) -> tuple[Triage, dict]:
    text, red = redact(symptoms, pii)
    out = await _run(backend, triage_job(text, seed))
    _audit(audit, "triage", backend.name, text, out, key_id, red)
    return parse_triage(out), red


async def diagnose(
    small,
    large,
    settings,
    symptoms: str,
    kb_names: list[str],
    pii: PiiFilter,
    imaging: list[str] = (),
    audit=None,
    key_id=None,
    seed=None,
    top_k: int = 3,
) -> Note:
    stage1, red = await triage(small, symptoms, pii, audit, key_id, seed)
    text, _ = redact(symptoms, pii)
    context, sources = await asyncio.to_thread(gather_context, settings, kb_names, text, key_id, top_k)
    job = diagnosis_job(text, stage1, context, list(imaging), len(sources), seed)
    out = await _run(large, job)
    _audit(audit, "diagnosis", large.name, job.messages[-1]["content"], out, key_id, red, sources)
    return parse_note(out, stage1, sources, list(imaging), red)
