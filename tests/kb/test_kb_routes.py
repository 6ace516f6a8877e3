"""The /v1/kb router on a real uvicorn server (loopback, ephemeral port), exercised with httpx.

The app mounts only this router; a small middleware stands in for the server's API-key check by turning the
bearer token into `request.state.key_id`, as the real middleware does.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from r1stack.config import Settings
from r1stack.server.errors import install_error_handlers
from r1stack.server.routes.kb import router


@pytest.fixture
def server(settings: Settings):
    settings.kb.key_groups = {"admin-key": ["*"], "nurse-key": ["hospital"], "teller-key": ["bank"]}
    app = FastAPI()
    app.state.settings = settings
    install_error_handlers(app)

    @app.middleware("http")
    async def key_id(request: Request, call_next):
        auth = request.headers.get("authorization", "")
        request.state.key_id = auth.removeprefix("Bearer ") or None
        return await call_next(request)

    app.include_router(router)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def test_http_create_upload_search_delete_with_groups(server: str, corpus_texts: dict[str, str]):
    admin = _client(server, "admin-key")
    nurse = _client(server, "nurse-key")
    r = admin.post("/v1/kb", json={"name": "web"})
    assert r.status_code == 200, r.text
    assert r.json()["documents"] == 0

    files = [
        ("files", ("banking.md", corpus_texts["banking.md"].encode(), "text/markdown")),
        ("files", ("empty.txt", b"", "text/plain")),
        ("files", ("notes.exe", b"MZ", "application/octet-stream")),
    ]
    r = admin.post("/v1/kb/web/documents", files=files, data={"groups": "bank"})
    assert r.status_code == 200, r.text
    status = {d["document"]: (d["status"], d["message"]) for d in r.json()["data"]}
    assert status["banking.md"][0] == "added"
    assert status["empty.txt"][0] == "failed" and "empty" in status["empty.txt"][1]
    assert status["notes.exe"][0] == "failed" and "unknown format" in status["notes.exe"][1]
    r = admin.post(
        "/v1/kb/web/documents",
        files=[("files", ("hospital.md", corpus_texts["hospital.md"].encode(), "text/markdown"))],
        data={"groups": "hospital"},
    )
    assert r.json()["data"][0]["status"] == "added"

    r = admin.post("/v1/kb/web/search", json={"query": "不良贷款包括哪些", "top_k": 2})
    assert r.status_code == 200
    top = r.json()["data"][0]
    assert top["document"] == "banking.md" and top["heading"] == "信用风险" and top["kb"] == "web"

    # A nurse never gets the bank's chunks, however the question is put; the hospital's are there.
    for q in ("不良贷款包括哪些", "流动性风险管理", "胸痛"):
        docs = [
            h["document"]
            for h in nurse.post("/v1/kb/web/search", json={"query": q, "top_k": 10}).json()["data"]
        ]
        assert "banking.md" not in docs
    assert (
        nurse.post("/v1/kb/web/search", json={"query": "胸痛患者"}).json()["data"][0]["document"]
        == "hospital.md"
    )
    listing = nurse.get("/v1/kb/web").json()
    assert [d["document"] for d in listing["data"]] == ["hospital.md"]

    # Readers may not write.
    r = nurse.delete("/v1/kb/web/documents/hospital.md")
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"

    assert admin.delete("/v1/kb/web/documents/banking.md").json()["deleted"] is True
    assert [k["name"] for k in admin.get("/v1/kb").json()["data"]] == ["web"]
    docs = [h["document"] for h in admin.post("/v1/kb/web/search", json={"query": "不良贷款"}).json()["data"]]
    assert "banking.md" not in docs


def test_http_errors_have_openai_bodies(server: str):
    admin = _client(server, "admin-key")
    r = admin.post("/v1/kb/nope/search", json={"query": "x"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert "does not exist" in err["message"] and err["type"] == "not_found_error"
    r = admin.post("/v1/kb", json={"name": "bad/name"})
    assert r.status_code == 400 and "not allowed" in r.json()["error"]["message"]
    admin.post("/v1/kb", json={"name": "e"})
    r = admin.delete("/v1/kb/e/documents/missing.txt")
    assert r.status_code == 404
    r = admin.post("/v1/kb/e/search", json={"query": ""})
    assert r.status_code == 400 and "error" in r.json()
