"""The locked server: TLS 1.3 only, API keys, an IP allowlist, backpressure (429 + Retry-After) and the
per-request timeout."""

from __future__ import annotations

import json
import ssl
import threading

import httpx
import openai
import pytest
from serverproc import KEYS, MODEL_NAME

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


def _auth(name: str = "alice") -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def test_tls12_only_client_is_refused(locked_server):
    ctx = ssl.create_default_context(cafile=locked_server.verify)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(locked_server.url + "/health", verify=ctx)
    ctx13 = ssl.create_default_context(cafile=locked_server.verify)
    ctx13.minimum_version = ssl.TLSVersion.TLSv1_3
    assert httpx.get(locked_server.url + "/health", verify=ctx13).status_code == 200


def test_plain_http_is_not_served(locked_server):
    with pytest.raises(httpx.HTTPError):
        httpx.get(locked_server.url.replace("https://", "http://") + "/health", timeout=5)


def test_keys(locked_server):
    with pytest.raises(openai.AuthenticationError):
        locked_server.openai("wrong-key-123456").models.list()
    with pytest.raises(openai.AuthenticationError):
        locked_server.openai(KEYS["alice"] + "x").models.list()
    for name in KEYS:
        assert locked_server.openai(KEYS[name]).models.list().data[0].id == MODEL_NAME
    # Keys guard the API; probes stay reachable without one.
    assert httpx.get(locked_server.url + "/health", verify=locked_server.verify).status_code == 200


def test_address_outside_the_allowlist_gets_403(locked_server):
    # 127.0.0.2 is loopback too, but not in the server's allowlist (127.0.0.1/32).
    transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=locked_server.verify)
    with httpx.Client(transport=transport) as outsider:
        r = outsider.get(locked_server.api + "/models", headers=_auth())
        assert r.status_code == 403
        assert r.json()["error"]["type"] == "permission_error"
        assert outsider.get(locked_server.url + "/health").status_code == 403
    client = openai.OpenAI(
        base_url=locked_server.api,
        api_key=KEYS["alice"],
        max_retries=0,
        http_client=httpx.Client(
            transport=httpx.HTTPTransport(local_address="127.0.0.2", verify=locked_server.verify)
        ),
    )
    with pytest.raises(openai.PermissionDeniedError):
        client.models.list()


def test_full_queue_answers_429_with_retry_after(locked_server):
    # The server takes one sequence and queues none: while a long stream runs, the next request is refused.
    body = {"model": MODEL_NAME, "messages": QUESTION, "max_tokens": 1000, "ignore_eos": True, "stream": True}
    started = threading.Event()
    with httpx.stream(
        "POST",
        locked_server.api + "/chat/completions",
        json=body,
        headers=_auth(),
        verify=locked_server.verify,
        timeout=60,
    ) as r:
        assert r.status_code == 200
        lines = r.iter_lines()  # kept referenced: a dropped iterator closes the connection
        for line in lines:
            if line.startswith("data: "):
                started.set()
                break
        assert started.is_set()
        rejected = locked_server.metric("r1stack:request_rejected_total")
        client = locked_server.openai(KEYS["bob"])
        with pytest.raises(openai.RateLimitError) as e:
            client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=2)
        assert e.value.response.headers["retry-after"].isdigit()
        assert e.value.body["type"] == "rate_limit_error"
        assert locked_server.metric("r1stack:request_rejected_total") == rejected + 1
    # The stream was dropped: the slot comes back and requests are served again.
    client = locked_server.openai(KEYS["bob"])
    for _ in range(100):
        try:
            client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=2)
            break
        except openai.RateLimitError:
            threading.Event().wait(0.2)
    else:
        pytest.fail("the server never took a request again")


def test_request_past_the_timeout_is_ended_with_an_error(locked_server):
    body = {"model": MODEL_NAME, "messages": QUESTION, "max_tokens": 1900, "ignore_eos": True}
    r = httpx.post(
        locked_server.api + "/chat/completions",
        json=body,
        headers=_auth(),
        verify=locked_server.verify,
        timeout=120,
    )
    assert r.status_code == 408
    assert "timeout" in r.json()["error"]["message"]
    # Streamed: an error chunk, then [DONE].
    lines = []
    with httpx.stream(
        "POST",
        locked_server.api + "/chat/completions",
        json={**body, "stream": True},
        headers=_auth(),
        verify=locked_server.verify,
        timeout=120,
    ) as s:
        lines = [ln for ln in s.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert "error" in json.loads(lines[-2][6:])
