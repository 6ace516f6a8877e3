"""The guard routes over real HTTP: a uvicorn server on an ephemeral loopback port with the server's own error
handlers; a small middleware stands in for the API-key layer by setting request.state.key_id from a header."""

import socket
import threading
import time

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI, Request

from r1stack.config import Settings
from r1stack.guard import WatermarkProcessor, watermark_processor
from r1stack.server.errors import install_error_handlers
from r1stack.server.routes.guard import router


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, default_gguf):
    from r1stack.engine.loader import load_tokenizer
    from r1stack.engine.store import resolve

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.settings = Settings(
        data_dir=tmp_path_factory.mktemp("guard-http"),
        guard={"key_policies": {"key-ops": "mask", "key-strict": "block"}},
    )
    app.state.tokenizer = load_tokenizer(resolve(str(default_gguf), default_gguf.parent))

    @app.middleware("http")
    async def key_id(request: Request, call_next):
        request.state.key_id = request.headers.get("x-test-key-id")
        return await call_next(request)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    server.should_exit = True
    thread.join(10)


def test_scan_applies_the_callers_policy(base_url):
    url, _ = base_url
    text = "请联系13812345678或a.b@example.com"
    r = httpx.post(f"{url}/v1/guard/scan", json={"text": text})
    body = r.json()
    assert r.status_code == 200 and body["policy"] == "redact"
    assert body["text"] == "请联系[手机号]或[邮箱]"
    assert [(f["type"], text[f["start"] : f["end"]]) for f in body["findings"]] == [
        ("MOBILE", "13812345678"),
        ("EMAIL", "a.b@example.com"),
    ]
    masked = httpx.post(
        f"{url}/v1/guard/scan", json={"text": text}, headers={"x-test-key-id": "key-ops"}
    ).json()
    assert masked["text"] == "请联系*******5678或*.*@******e.com"
    blocked = httpx.post(
        f"{url}/v1/guard/scan", json={"text": text}, headers={"x-test-key-id": "key-strict"}
    ).json()
    assert blocked["blocked"] and blocked["text"] == ""


def test_detect_by_ids_and_by_text(base_url):
    url, app = base_url
    settings, tok = app.state.settings, app.state.tokenizer
    proc: WatermarkProcessor = watermark_processor(settings)
    words = [
        i
        for i in range(1000, 20000)
        if (s := tok.decode([i])).startswith(" ") and s[1:].isalpha() and s[1:].islower()
    ]
    index = torch.tensor(words)
    g = torch.Generator().manual_seed(11)
    ids = [words[0]]
    for _ in range(120):
        logits = torch.full((len(tok),), -1e9)
        logits[index] = torch.randn(len(words), generator=g) * 2
        ids.append(int(torch.multinomial(torch.softmax(proc([], ids, logits), -1), 1, generator=g)))
    by_ids = httpx.post(f"{url}/v1/watermark/detect", json={"token_ids": ids}).json()
    assert by_ids["verdict"] == "watermarked" and by_ids["z"] > 4 and by_ids["z_threshold"] == 4.0
    by_text = httpx.post(f"{url}/v1/watermark/detect", json={"text": tok.decode(ids)}).json()
    assert by_text["verdict"] == "watermarked"
    plain = httpx.post(
        f"{url}/v1/watermark/detect",
        json={
            "text": "It was a quiet morning in the harbour town, "
            "and the fishermen were mending their nets while the gulls circled over the boats."
        },
    ).json()
    assert plain["verdict"] != "watermarked"


def test_bad_input_is_an_openai_style_400(base_url):
    url, _ = base_url
    r = httpx.post(f"{url}/v1/watermark/detect", json={"text": "a", "token_ids": [1]})
    assert r.status_code == 400 and "exactly one" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/guard/scan", json={"txt": "a"})
    assert r.status_code == 400 and "error" in r.json()
