"""The chat pipeline's services through a real server: knowledge-base sources (with group access), web search
through the real search proxy process and a SearXNG stand-in, the PII filter per key (whole and streamed), and
the audit log's records."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from serverproc import KEYS, MODEL_NAME, start_server, stop_server

from r1stack.config import Settings
from r1stack.guard.audit import AuditLog

PHONE = "13812345678"
HANDBOOK = """# Zorblat reactor handbook

The Zorblat reactor is cooled by liquid helium pumped through the copper jacket.
The emergency stop lever is painted orange and sits beside the east door.
"""
SECRET = """# Board minutes

The quarterly bonus pool for the Zorblat team is frozen until March.
"""


class _SearxngStandIn(BaseHTTPRequestHandler):
    """SearXNG's JSON API as the proxy calls it: results that point back at this server."""

    queries: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        q = parse_qs(url.query).get("q", [""])[0]
        type(self).queries.append(q)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        body = json.dumps({
            "query": q,
            "results": [{"url": f"{base}/page/{n}", "title": f"Page {n} on {q[:20]}", "content": f"snippet {n}",
                         "engine": "standin", "score": 1.0 / n} for n in (1, 2)],
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def searxng():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SearxngStandIn)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def proxy(searxng, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    cmd = [
        str(Path(sys.executable).with_name("r1stack")),
        "search-proxy",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--provider",
        "searxng",
        "--searxng-url",
        searxng,
        "--cache-ttl",
        "0",
    ]
    env = {
        "R1STACK_DATA_DIR": str(tmp / "data"),
        "R1STACK_CONFIG": str(tmp / "none.toml"),
        "PATH": "/usr/bin:/bin",
    }
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(tmp / "proxy.log", "w"), text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    assert m, f"proxy did not start: {line!r} {(tmp / 'proxy.log').read_text()}"
    yield m.group(1), p
    p.terminate()
    p.wait(timeout=10)


@pytest.fixture(scope="module")
def svc_server(tmp_path_factory, proxy):
    env = {
        "R1STACK_WEBSEARCH__PROXY_ADDRESS": proxy[0],
        "R1STACK_GUARD__KEY_POLICIES": json.dumps({"bob": "allow"}),
        "R1STACK_KB__KEY_GROUPS": json.dumps({"alice": ["*"], "bob": ["public"]}),
    }
    s = start_server(tmp_path_factory.mktemp("services"), keys=KEYS, env=env)
    yield s
    stop_server(s)


def _h(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def _chat(server, who: str, **body) -> dict:
    body = {"model": MODEL_NAME, "max_tokens": 16, "temperature": 0, **body}
    r = httpx.post(server.api + "/chat/completions", json=body, headers=_h(who), timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def _stream(server, who: str, **body) -> list[dict]:
    body = {"model": MODEL_NAME, "max_tokens": 16, "temperature": 0, "stream": True, **body}
    with httpx.stream("POST", server.api + "/chat/completions", json=body, headers=_h(who), timeout=120) as r:
        assert r.status_code == 200
        return [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: {")]


def test_knowledge_base_sources_and_groups(svc_server):
    r = httpx.post(svc_server.api + "/kb", json={"name": "handbook"}, headers=_h("alice"), timeout=120)
    assert r.status_code == 200, r.text
    files = {"files": ("reactor.md", HANDBOOK.encode(), "text/markdown")}
    r = httpx.post(
        svc_server.api + "/kb/handbook/documents",
        files=files,
        data={"groups": "public"},
        headers=_h("alice"),
        timeout=300,
    )
    assert r.status_code == 200 and r.json()["data"][0]["status"] != "failed", r.text
    files = {"files": ("minutes.md", SECRET.encode(), "text/markdown")}
    r = httpx.post(
        svc_server.api + "/kb/handbook/documents",
        files=files,
        data={"groups": "board"},
        headers=_h("alice"),
        timeout=300,
    )
    assert r.status_code == 200, r.text

    question = [{"role": "user", "content": "How is the Zorblat reactor cooled?"}]
    answer = _chat(svc_server, "alice", messages=question, knowledge_bases=["handbook"], top_k_sources=2)
    docs = [s["document"] for s in answer["sources"]]
    assert docs[0] == "reactor.md"
    assert all(s["kind"] == "kb" and s["knowledge_base"] == "handbook" for s in answer["sources"])
    assert [s["id"] for s in answer["sources"]] == list(range(1, len(docs) + 1))

    # Bob's key is in group "public": the board's document never reaches him, through chat either.
    bonus = [{"role": "user", "content": "What happened to the Zorblat bonus pool?"}]
    for who, may_see in (("alice", True), ("bob", False)):
        got = _chat(svc_server, who, messages=bonus, knowledge_bases=["handbook"], top_k_sources=5)
        assert ("minutes.md" in [s["document"] for s in got["sources"] or []]) is may_see

    chunks = _stream(svc_server, "alice", messages=question, knowledge_bases=["handbook"])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["sources"][0]["document"] == "reactor.md"

    r = httpx.post(
        svc_server.api + "/chat/completions",
        headers=_h("alice"),
        timeout=60,
        json={"model": MODEL_NAME, "messages": question, "knowledge_bases": ["no-such-kb"]},
    )
    assert 400 <= r.status_code < 500 and "no-such-kb" in r.json()["error"]["message"]


def test_web_search_sources_come_from_the_proxy(svc_server, searxng):
    question = [{"role": "user", "content": "latest Zorblat news"}]
    answer = _chat(svc_server, "alice", messages=question, web_search=True)
    urls = [s["url"] for s in answer["sources"]]
    assert urls and all(u.startswith(searxng + "/page/") for u in urls)
    assert "latest Zorblat news" in _SearxngStandIn.queries
    chunks = _stream(svc_server, "alice", messages=question, web_search=True)
    assert [s["url"] for s in chunks[0]["sources"]] == urls


def test_pii_is_filtered_per_key_whole_and_streamed(svc_server):
    # A repeating pattern the model continues greedily; bob's key (policy allow) shows what it writes.
    prompt = f"Phone: {PHONE}\nPhone: {PHONE}\nPhone: {PHONE}\nPhone:"
    body = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": 12, "temperature": 0}
    raw = httpx.post(svc_server.api + "/completions", json=body, headers=_h("bob"), timeout=120).json()
    assert PHONE in raw["choices"][0]["text"], "the model did not repeat the number; the test needs it to"
    guarded = httpx.post(svc_server.api + "/completions", json=body, headers=_h("alice"), timeout=120).json()
    text = guarded["choices"][0]["text"]
    assert PHONE not in text and ("[PHONE" in text or "[手机" in text or "[MOBILE" in text.upper()), text
    with httpx.stream(
        "POST",
        svc_server.api + "/completions",
        json={**body, "stream": True},
        headers=_h("alice"),
        timeout=120,
    ) as r:
        pieces = [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: {")]
    streamed = "".join(p["choices"][0]["text"] for p in pieces if p["choices"])
    assert streamed == text
    assert all(PHONE not in p["choices"][0]["text"] for p in pieces if p["choices"])


def test_audit_log_records_every_turn(svc_server):
    _chat(svc_server, "bob", messages=[{"role": "user", "content": "audit me"}], max_tokens=2)
    settings = Settings(data_dir=svc_server.data_dir)
    files = sorted(settings.audit_dir.glob("*.jsonl"))
    assert files, "no audit file was written"
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert {"alice", "bob"} <= {r["key_id"] for r in records}
    text = "\n".join(f.read_text() for f in files)
    assert all(key not in text for key in KEYS.values())  # key ids only, never keys
    assert any(r["web_queries"] == ["latest Zorblat news"] for r in records)
    assert any(any("reactor.md" in s for s in r["kb_sources"]) for r in records)
    assert any(r["redactions"] for r in records if r["key_id"] == "alice")
    assert AuditLog(settings).verify().ok


def test_web_search_down_is_a_notice_not_a_failure(svc_server, proxy):
    proxy[1].terminate()
    proxy[1].wait(timeout=10)
    answer = _chat(
        svc_server, "alice", messages=[{"role": "user", "content": "news?"}], web_search=True, max_tokens=4
    )
    assert any(n.startswith("web search unavailable") for n in answer["notices"])
    assert answer["choices"][0]["message"]["content"] is not None
