"""The console's HTTP side on a real server: the page and its headers, the per-key conversation store and its
exports, the admin-only audit view; and `--no-ui` on the router itself."""

from __future__ import annotations

import json

import httpx
from consoleproc import KEYS, start
from fastapi import FastAPI
from fastapi.testclient import TestClient
from serverproc import stop_server

from r1stack.config import Settings
from r1stack.console import routes


def _auth(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def test_page_is_public_and_locked_down(console_server):
    r = httpx.get(console_server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    # Nothing inline and nothing from another origin in the page itself.
    assert (
        "<script>" not in r.text and "style=" not in r.text and "//" not in r.text.replace("http-equiv", "")
    )
    js = httpx.get(console_server.url + "/console/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "content-security-policy" in js.headers
    for bad in ("../routes.py", "..%2Froutes.py", "nope.js", "../../config.py"):
        assert httpx.get(console_server.url + "/console/static/" + bad).status_code == 404


def test_conversations_are_kept_per_key(console_server):
    api = console_server.api
    assert httpx.get(api + "/conversations").status_code == 401
    body = {
        "title": "Risk <b>review</b>",
        "settings": {"temperature": 0.2, "knowledge_bases": ["policies"]},
        "messages": [
            {"role": "user", "content": "What is `x`?"},
            {"role": "assistant", "content": "It is 42 [1].", "reasoning": "think", "sources": [{"id": 1}]},
        ],
    }
    made = httpx.post(api + "/conversations", json=body, headers=_auth("alice")).json()
    cid = made["id"]
    assert made["messages"][1]["sources"] == [{"id": 1}]  # extra fields the page stores come back
    listed = httpx.get(api + "/conversations", headers=_auth("alice")).json()["data"]
    assert [c["id"] for c in listed] == [cid] and listed[0]["messages"] == 2
    # Another key sees none of it, and cannot read or delete it by id.
    assert httpx.get(api + "/conversations", headers=_auth("bob")).json()["data"] == []
    assert httpx.get(f"{api}/conversations/{cid}", headers=_auth("bob")).status_code == 404
    assert httpx.delete(f"{api}/conversations/{cid}", headers=_auth("bob")).status_code == 404
    renamed = httpx.patch(
        f"{api}/conversations/{cid}", json={"title": "Renamed"}, headers=_auth("alice")
    ).json()
    assert renamed["title"] == "Renamed" and len(renamed["messages"]) == 2
    md = httpx.get(f"{api}/conversations/{cid}/export?format=markdown", headers=_auth("alice"))
    assert md.status_code == 200 and 'filename="Renamed.md"' in md.headers["content-disposition"]
    assert "# Renamed" in md.text and "It is 42 [1]." in md.text and "Thinking" in md.text
    js = httpx.get(f"{api}/conversations/{cid}/export?format=json", headers=_auth("alice"))
    assert json.loads(js.text)["messages"][0]["content"] == "What is `x`?"
    files = list((console_server.data_dir / "conversations").rglob("*.json"))
    assert [f.stem for f in files] == [cid] and files[0].parent.name == "k-alice"
    # Bad input gets an OpenAI-style 4xx, never a 500.
    assert httpx.get(f"{api}/conversations/../../etc", headers=_auth("alice")).status_code == 404
    assert httpx.get(f"{api}/conversations/{'0' * 32}", headers=_auth("alice")).status_code == 404
    bad = httpx.post(api + "/conversations", json={"messages": [{"role": "wizard"}]}, headers=_auth("alice"))
    assert bad.status_code == 400 and "error" in bad.json()
    assert httpx.delete(f"{api}/conversations/{cid}", headers=_auth("alice")).json()["deleted"] is True
    assert httpx.get(api + "/conversations", headers=_auth("alice")).json()["data"] == []


def test_me_and_audit_view(console_server):
    me = httpx.get(console_server.api + "/console/me", headers=_auth("bob")).json()
    assert me == {"key_id": "bob", "admin": False}
    assert httpx.get(console_server.api + "/console/audit", headers=_auth("bob")).status_code == 403
    client = console_server.openai(KEYS["alice"])
    client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    audit = httpx.get(console_server.api + "/console/audit", headers=_auth("alice")).json()
    assert audit["records"] >= 1 and audit["verified"] is True
    assert audit["recent"][0]["key_id"] == "alice"


def test_no_ui_server_has_no_page(tmp_path):
    """`r1stack serve --no-ui`: no page, no assets; the OpenAI API is untouched."""
    server = start(tmp_path, "--no-ui")
    try:
        assert httpx.get(server.url + "/").status_code == 404
        assert httpx.get(server.url + "/console/static/app.js").status_code == 404
        assert httpx.get(server.api + "/models", headers=_auth("alice")).status_code == 200
    finally:
        stop_server(server)


def test_no_ui_router_serves_no_page(tmp_path):
    """--no-ui sets server.ui False: the page and its assets are gone; the conversation API stays."""
    app = FastAPI()
    app.state.settings = Settings(data_dir=tmp_path, server={"ui": False})
    app.include_router(routes.router)
    from r1stack.server.errors import install_error_handlers

    install_error_handlers(app)
    client = TestClient(app)
    assert client.get("/").status_code == 404
    assert "--no-ui" in client.get("/").json()["error"]["message"]
    assert client.get("/console/static/app.js").status_code == 404
    assert client.get("/v1/conversations").json() == {"object": "list", "data": []}
    app.state.settings = Settings(data_dir=tmp_path)
    assert client.get("/").status_code == 200


def test_dicom_preview_route(console_server, tmp_path):
    """The de-identified PNG the clinical intake wrote is served under the key's auth; nothing else is."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
    from dicom_factory import make_series

    make_series(tmp_path, n=1)
    dcm = next(tmp_path.glob("*.dcm"))
    up = httpx.post(
        console_server.api + "/apps/clinical/dicom",
        files=[("files", (dcm.name, dcm.read_bytes()))],
        headers=_auth("alice"),
        timeout=120,
    ).json()
    batch, name = up["batch"], Path(up["data"][0]["preview"]).name
    url = f"{console_server.api}/console/dicom/{batch}/{name}"
    assert httpx.get(url).status_code == 401
    png = httpx.get(url, headers=_auth("alice"))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert (console_server.data_dir / "apps" / "dicom" / batch / name).read_bytes() == png.content
    base = f"{console_server.api}/console/dicom"
    assert httpx.get(f"{base}/{batch}/anon-9.png", headers=_auth("alice")).status_code == 404
    for bad in (f"{batch}/anon-0.dcm", f"{batch}/summary.json", f"{'z' * 32}/{name}", f"{batch}/..%2F{name}"):
        r = httpx.get(f"{base}/{bad}", headers=_auth("alice"))
        assert r.status_code in (400, 404) and "error" in r.json(), bad
