"""The console's HTTP side: the page at `/` and its assets under `/console/static/` (public, behind a strict
Content-Security-Policy; off with `--no-ui`), and `/v1/conversations` and `/v1/console/...`, which sit under /v1
so the server's API-key middleware guards them like any other API call."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from r1stack.console.export import filename, to_json, to_markdown
from r1stack.console.store import ConversationStore
from r1stack.errors import NotFoundError, UserError

router = APIRouter(tags=["console"])
STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Everything from this origin only; no inline script or style, no plugins, no framing, no form posts elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'none'; object-src 'none'; media-src 'none'; frame-src 'none'; "
    "worker-src 'none'; manifest-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
MAX_MESSAGES = 2000
MAX_TEXT = 400_000


class Forbidden(UserError):
    status_code = 403
    error_type = "permission_error"


class StoredMessage(BaseModel, extra="allow"):
    role: Literal["system", "user", "assistant"]
    content: str = Field("", max_length=MAX_TEXT)
    reasoning: str | None = Field(None, max_length=MAX_TEXT)


class ConversationBody(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    settings: dict[str, Any] | None = None
    messages: list[StoredMessage] | None = Field(None, max_length=MAX_MESSAGES)


def _ui_on(request: Request) -> bool:
    return bool(getattr(request.app.state.settings.server, "ui", True))


def _asset(name: str) -> Response:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file() or path.suffix not in _TYPES:
        raise NotFoundError(f"no console asset {name!r}")
    headers = {**PAGE_HEADERS, "Cache-Control": "no-cache"}
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix], headers=headers)


@router.get("/", include_in_schema=False)
def page(request: Request) -> Response:
    if not _ui_on(request):
        raise NotFoundError("this server runs without its web console (--no-ui); use the API under /v1")
    return _asset("index.html")


@router.get("/console/static/{name:path}", include_in_schema=False)
def asset(name: str, request: Request) -> Response:
    if not _ui_on(request):
        raise NotFoundError("this server runs without its web console (--no-ui)")
    return _asset(name)


# --- conversations ----------------------------------------------------------------------------------------------


def _store(request: Request) -> ConversationStore:
    return ConversationStore(request.app.state.settings.data_dir)


def _key(request: Request) -> str | None:
    return getattr(request.state, "key_id", None)


def _dump(messages: list[StoredMessage] | None) -> list[dict] | None:
    return None if messages is None else [m.model_dump(exclude_none=True) for m in messages]


@router.get("/v1/conversations")
def list_conversations(request: Request) -> dict:
    return {"object": "list", "data": [c.summary() for c in _store(request).list(_key(request))]}


@router.post("/v1/conversations")
def create_conversation(body: ConversationBody, request: Request) -> dict:
    conv = _store(request).create(
        _key(request), body.title or "New conversation", body.settings or {}, _dump(body.messages) or []
    )
    return conv.to_dict()


@router.get("/v1/conversations/{conv_id}")
def get_conversation(conv_id: str, request: Request) -> dict:
    return _store(request).get(_key(request), conv_id).to_dict()


@router.patch("/v1/conversations/{conv_id}")
def update_conversation(conv_id: str, body: ConversationBody, request: Request) -> dict:
    conv = _store(request).update(
        _key(request), conv_id, title=body.title, settings=body.settings, messages=_dump(body.messages)
    )
    return conv.to_dict()


@router.delete("/v1/conversations/{conv_id}")
def delete_conversation(conv_id: str, request: Request) -> dict:
    _store(request).delete(_key(request), conv_id)
    return {"id": conv_id, "object": "conversation", "deleted": True}


@router.get("/v1/conversations/{conv_id}/export")
def export_conversation(
    conv_id: str, request: Request, format: Literal["markdown", "json"] = "markdown"
) -> Response:
    conv = _store(request).get(_key(request), conv_id)
    if format == "json":
        body, ext, media = to_json(conv), "json", "application/json"
    else:
        body, ext, media = to_markdown(conv), "md", "text/markdown; charset=utf-8"
    disposition = f'attachment; filename="{filename(conv, ext)}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


# --- who am I, and the operator's audit view ------------------------------------------------------------------------


def _is_admin(request: Request) -> bool:
    from r1stack.kb.access import access_for_key

    return access_for_key(request.app.state.settings.kb, _key(request)).admin


@router.get("/v1/console/me")
def me(request: Request) -> dict:
    return {"key_id": _key(request), "admin": _is_admin(request)}


@router.get("/v1/console/audit")
def audit(request: Request, limit: int = 20) -> JSONResponse:
    """Recent audit records, whether the hash chain verifies, and redactions by type over the whole log."""
    if not _is_admin(request):
        raise Forbidden(
            "the audit view needs an admin key (group '*' in kb.key_groups)", code="permission_denied"
        )
    from r1stack.guard.audit import AuditLog, log_files

    settings = request.app.state.settings
    directory = Path(settings.audit_dir)
    records: list[dict] = []
    redactions: dict[str, int] = {}
    if directory.is_dir():
        for path in log_files(directory):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                for kind, n in (rec.get("redactions") or {}).items():
                    redactions[kind] = redactions.get(kind, 0) + int(n)
                records.append(rec)
    report = AuditLog(settings).verify() if directory.is_dir() else None
    recent = records[-max(1, min(limit, 200)) :][::-1]
    keep = (
        "time",
        "seq",
        "request_id",
        "key_id",
        "model",
        "status",
        "redactions",
        "kb_sources",
        "web_queries",
    )
    return JSONResponse(
        {
            "enabled": bool(settings.guard.audit),
            "records": len(records),
            "verified": None if report is None else report.ok,
            "problem": None
            if report is None or report.ok
            else f"{report.bad_file.name}:{report.bad_line}: {report.reason}",
            "redactions": redactions,
            "recent": [{k: r.get(k) for k in keep} for r in recent],
        }
    )


# --- de-identified DICOM previews -------------------------------------------------------------------------------

_BATCH = re.compile(r"[0-9a-f]{32}")
_PREVIEW = re.compile(r"anon-\d{1,6}\.png")


@router.get("/v1/console/dicom/{batch}/{name}")
def dicom_preview(batch: str, name: str, request: Request) -> Response:
    """The PNG preview that /v1/apps/clinical/dicom wrote for a de-identified file (that route returns only its
    path on the server); the batch id is a random 128-bit name, so only the uploader's page knows it."""
    if not _BATCH.fullmatch(batch) or not _PREVIEW.fullmatch(name):
        raise UserError("not a DICOM preview name", param="name")
    path = Path(request.app.state.settings.data_dir) / "apps" / "dicom" / batch / name
    if not path.is_file():
        raise NotFoundError(f"no preview {name} in batch {batch}")
    return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "private, no-store"})
