"""/v1/kb/...: create, list, upload, search and delete knowledge-base documents over HTTP.

Reads are filtered by the caller's groups (kb.key_groups); writes need an admin caller (group "*", or a server
without keys). The caller is `request.state.key_id`, set by the server's API-key middleware.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from r1stack.config import Settings
from r1stack.errors import UserError
from r1stack.kb.access import Access, access_for_key
from r1stack.kb.ingest import ingest_bytes
from r1stack.kb.knowledge_base import create_kb, list_kbs, open_kb
from r1stack.kb.retrieval import search as kb_search

router = APIRouter(tags=["knowledge base"])


class PermissionDenied(UserError):
    status_code = 403
    error_type = "permission_error"


class CreateKB(BaseModel):
    name: str = Field(description="Letters, digits, '-' and '_'.")
    store: Literal["chroma", "milvus"] | None = None
    embedder: str | None = Field(None, description="Local sentence-transformers model folder on the server.")


class SearchKB(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    top_k: int | None = Field(None, ge=1, le=100)
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _access(request: Request) -> Access:
    return access_for_key(_settings(request).kb, getattr(request.state, "key_id", None))


def _require_admin(request: Request) -> None:
    if not _access(request).admin:
        raise PermissionDenied(
            "this API key may read knowledge bases but not change them; give it the group '*' in kb.key_groups",
            code="permission_denied",
        )


@router.post("/v1/kb")
def create(body: CreateKB, request: Request) -> dict:
    _require_admin(request)
    return create_kb(_settings(request), body.name, body.store, body.embedder).info()


@router.get("/v1/kb")
def list_all(request: Request) -> dict:
    settings = _settings(request)
    return {"object": "list", "data": [open_kb(settings, n).info() for n in list_kbs(settings)]}


@router.get("/v1/kb/{name}")
def show(name: str, request: Request) -> dict:
    kb = open_kb(_settings(request), name)
    access = _access(request)
    docs = [
        {"document": d.doc_id, "chunks": d.n_chunks, "groups": d.groups, "ingested_at": d.ingested_at}
        for d in kb.record.documents()
        if access.may_see(d.groups)
    ]
    return {**kb.info(), "documents": len(docs), "data": docs}


@router.post("/v1/kb/{name}/documents")
async def upload(
    name: str,
    request: Request,
    files: list[UploadFile] = File(..., description="One or more files: txt md html pdf docx csv json."),
    groups: str = Form("", description="Comma-separated groups allowed to see these documents; empty = all."),
) -> dict:
    _require_admin(request)
    kb = open_kb(_settings(request), name)
    group_list = [g.strip() for g in groups.split(",") if g.strip()]
    limit = kb.settings.kb.max_file_mb * 1024 * 1024
    results = []
    for f in files:
        filename = PurePosixPath((f.filename or "upload").replace("\\", "/")).name or "upload"
        if f.size is not None and f.size > limit:
            results.append(
                {
                    "document": filename,
                    "status": "failed",
                    "chunks": 0,
                    "message": f"{filename}: over the {kb.settings.kb.max_file_mb} MB limit",
                }
            )
            continue
        data = await f.read()
        outcome = await asyncio.to_thread(ingest_bytes, kb, filename, filename, data, group_list)
        results.append(
            {
                "document": filename,
                "status": outcome.status,
                "chunks": outcome.chunks,
                "message": outcome.message,
            }
        )
    return {"object": "list", "data": results}


@router.post("/v1/kb/{name}/search")
def search(name: str, body: SearchKB, request: Request) -> dict:
    settings = _settings(request)
    kb = open_kb(settings, name)
    hits = kb_search(kb, body.query, body.top_k or settings.kb.top_k, _access(request), body.mode)
    return {"object": "list", "data": [h.to_dict() for h in hits]}


@router.delete("/v1/kb/{name}/documents/{doc_id:path}")
def delete(name: str, doc_id: str, request: Request) -> dict:
    _require_admin(request)
    open_kb(_settings(request), name).delete_document(doc_id)
    return {"document": doc_id, "deleted": True}
