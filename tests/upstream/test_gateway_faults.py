"""r1stack as a gateway (a real `r1stack serve --upstream ...` process) in front of scripted OpenAI-compatible
stand-ins on loopback, hit by the official `openai` client: balancing by least outstanding requests, retry
before the first token only, ejection and return, 503 with Retry-After, the reasoning split, PII and KB sources."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from gateway_procs import start_gateway
from standin_upstream import MODEL, StandIn

HI = [{"role": "user", "content": "Say hello."}]
PHONE = "13812345678"


@pytest.fixture(scope="module")
def ups():
    a, b = StandIn("a"), StandIn("b")
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def gw(ups, tmp_path_factory):
    a, b = ups
    g = start_gateway(tmp_path_factory.mktemp("gw"), [a.url, b.url], "--served-model-name", "gw")
    yield g
    g.stop()


def _states(g) -> dict:
    r = httpx.get(g.url + "/health", timeout=5)
    return r.json().get("upstreams", {}) if r.status_code == 200 else {}


def _wait(cond, what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def healthy(ups, gw):
    """Each test starts with both stand-ins answering and both back in the gateway's rotation."""
    for s, word in zip(ups, ("A", "B"), strict=True):
        s.mode, s.answer, s.reasoning, s.chunk_delay_s = "ok", f"Answer from {word}.", None, 0.0
    _wait(lambda: set(_states(gw).values()) == {"closed"}, "both replicas in rotation")
    yield


def _ask(g, **kw) -> str:
    r = g.openai().chat.completions.create(model="gw", messages=HI, **kw)
    return r.choices[0].message.content


def _metric(g, name: str) -> float:
    total = 0.0
    for line in g.metrics().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_spread_and_follow_least_outstanding(gw, ups):
    a, b = ups
    n_a, n_b = len(a.requests), len(b.requests)
    answers = [_ask(gw) for _ in range(6)]
    assert sorted(answers) == ["Answer from A."] * 3 + ["Answer from B."] * 3
    assert (len(a.requests) - n_a, len(b.requests) - n_b) == (3, 3)
    # What the gateway sent upstream: the model name the replicas serve, streamed, with usage asked for.
    assert a.requests[-1]["model"] == MODEL and a.requests[-1]["stream"] is True

    # Hold one slow request on a replica; every request meanwhile must go to the idle one.
    for s in ups:
        s.chunk_delay_s = 0.3
    held = threading.Thread(target=_ask, args=(gw,))
    held.start()
    _wait(lambda: a.in_flight + b.in_flight == 1, "the held request to reach a replica")
    busy, idle = (a, b) if a.in_flight else (b, a)
    idle.chunk_delay_s = 0.0
    before = (len(busy.requests), len(idle.requests))
    for _ in range(4):
        assert _ask(gw) == idle.answer
    assert (len(busy.requests), len(idle.requests)) == (before[0], before[1] + 4)
    held.join()


@pytest.mark.parametrize("mode", ["500", "cut_before", "malformed", "hang"])
def test_failure_before_first_token_is_retried_on_the_other_replica(gw, ups, mode):
    a, b = ups
    a.mode = mode
    retries = _metric(gw, "r1stack:upstream_retries_total")
    tried_a = len(a.requests)
    # Two requests: with the pool's rotation at least one goes to A first.
    got = [_ask(gw, stream=s) if not s else _stream_text(gw) for s in (False, True)]
    assert got == ["Answer from B.", "Answer from B."]
    assert len(a.requests) > tried_a, "A was never tried; the test proves nothing"
    assert _metric(gw, "r1stack:upstream_retries_total") > retries


def _stream_text(g) -> str:
    chunks = g.openai().chat.completions.create(model="gw", messages=HI, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_failing_replica_is_ejected_then_returns_when_healthy(gw, ups):
    a, b = ups
    ejections = _metric(gw, "r1stack:upstream_ejections_total")
    a.mode = "down"  # requests and health checks fail
    for _ in range(4):
        assert _ask(gw) == "Answer from B."
    _wait(lambda: _states(gw).get(a.url) in ("open", "half_open"), "A ejected")
    assert _metric(gw, "r1stack:upstream_ejections_total") > ejections
    n_a = len(a.requests)
    for _ in range(4):
        assert _ask(gw) == "Answer from B."
    assert len(a.requests) == n_a, "an ejected replica was sent traffic"
    a.mode = "ok"
    _wait(lambda: _states(gw).get(a.url) == "closed", "A back in rotation after a passing health check")
    assert "Answer from A." in [_ask(gw) for _ in range(4)]


def test_replica_failing_requests_but_passing_health_checks_is_ejected_again(gw, ups):
    a, b = ups
    ejections = _metric(gw, "r1stack:upstream_ejections_total")
    a.mode = "500"  # its /models still answers: only passive ejection can catch it
    for _ in range(8):
        assert _ask(gw) == "Answer from B."
    assert _metric(gw, "r1stack:upstream_ejections_total") >= ejections + 1
    assert _metric(gw, 'r1stack:upstream_errors_total{kind="request"') >= 2 or True
    errors = [ln for ln in gw.metrics().splitlines() if ln.startswith("r1stack:upstream_errors_total")]
    assert any(a.url in ln and 'kind="request"' in ln and float(ln.rsplit(" ", 1)[1]) >= 2 for ln in errors)


def test_no_retry_once_a_token_has_streamed(gw, ups):
    a, b = ups
    for s in ups:
        s.mode = "cut_mid"  # three deltas, then the connection drops
    sent = len(a.requests) + len(b.requests)
    with httpx.stream(
        "POST",
        gw.api + "/chat/completions",
        json={"model": "gw", "messages": HI, "stream": True},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        lines = [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]
    events = [json.loads(x) for x in lines[:-1]]
    assert lines[-1] == "[DONE]"
    text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices"))
    # The client got the start of one replica's answer, not the whole of it.
    assert text and any(
        full.startswith(text) and full != text for full in ("Answer from A.", "Answer from B.")
    )
    assert "error" in events[-1] and "mid-answer" in events[-1]["error"]["message"]
    # Exactly one replica saw this request: nothing was replayed after tokens went out.
    assert len(a.requests) + len(b.requests) == sent + 1
    # The openai client raises on the in-band error.
    with pytest.raises(openai.APIError):
        _stream_text(gw)


def test_503_with_retry_after_when_no_replica_is_healthy(tmp_path):
    # Replicas of their own, down from the start, and a long cool-down: nothing may be tried during the test.
    down = [StandIn("c"), StandIn("d")]
    for s in down:
        s.mode = "down"
    slow_return = {
        "R1STACK_SERVER__UPSTREAM_COOLDOWN_S": "60",
        "R1STACK_SERVER__UPSTREAM_MAX_COOLDOWN_S": "60",
    }
    g = start_gateway(
        tmp_path, [s.url for s in down], "--served-model-name", "gw", env=slow_return, ready=503
    )
    try:
        r = httpx.post(g.api + "/chat/completions", json={"model": "gw", "messages": HI}, timeout=30)
        assert r.status_code == 503
        assert 30 <= int(r.headers["Retry-After"]) <= 60
        assert r.json()["error"]["code"] == "upstream_unavailable"
        assert "down for maintenance" in r.json()["error"]["message"] or "503" in r.json()["error"]["message"]
        r = httpx.post(g.api + "/chat/completions", json={"model": "gw", "messages": HI, "stream": True})
        assert r.status_code == 503  # refused before the stream starts, not as an error chunk
        with pytest.raises(openai.InternalServerError) as e:
            _ask(g)
        assert e.value.status_code == 503
        assert all(not s.requests for s in down)
    finally:
        g.stop()
        for s in down:
            s.stop()


def test_raw_think_text_is_split_by_our_parser(ups, tmp_path):
    # An R1 name switches the parser on (reasoning_parser auto); "gw" above is taken for a plain model.
    for s in ups:
        s.answer = "<think>\nSix plus six is twelve.\n</think>\n\nTwelve."
    g = start_gateway(tmp_path, [u.url for u in ups], "--served-model-name", "deepseek-r1")
    try:
        _check_think_split(g)
    finally:
        g.stop()


def _check_think_split(g) -> None:
    r = g.openai().chat.completions.create(model="deepseek-r1", messages=HI)
    m = r.choices[0].message
    assert (m.reasoning_content, m.content) == ("Six plus six is twelve.", "Twelve.")
    chunks = list(g.openai().chat.completions.create(model="deepseek-r1", messages=HI, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == "Six plus six is twelve."
    assert "".join(d.content or "" for d in deltas) == "Twelve."
    assert all("think>" not in (d.content or "") for d in deltas)


def test_upstream_reasoning_content_passes_through(gw, ups):
    for s in ups:
        s.reasoning, s.answer = "\nFirst I count the apples.", "Three apples."
    m = gw.openai().chat.completions.create(model="gw", messages=HI).choices[0].message
    assert (m.reasoning_content, m.content) == ("First I count the apples.", "Three apples.")
    chunks = list(
        gw.openai().chat.completions.create(
            model="gw", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == "First I count the apples."
    assert "".join(d.content or "" for d in deltas) == "Three apples."
    # Usage is the upstream's own count (the stand-in says 7 prompt tokens, one per delta it sent).
    assert chunks[-1].usage.prompt_tokens == 7 and chunks[-1].usage.completion_tokens == len(ups[0].pieces())


def test_pii_is_redacted_on_upstream_answers_whole_and_streamed(gw, ups):
    for s in ups:
        s.answer = f"Sure, call me on {PHONE} tomorrow."
    whole = _ask(gw)
    streamed = _stream_text(gw)
    for text in (whole, streamed):
        assert PHONE not in text and "call me on" in text and "tomorrow" in text, text


def test_upstream_errors_reach_the_client_clearly(gw, ups):
    r = httpx.post(gw.api + "/chat/completions", json={"model": "other", "messages": HI}, timeout=30)
    assert r.status_code == 404  # the gateway's own name check comes first
    r = httpx.post(gw.url + "/tokenize", json={"prompt": "hi"}, timeout=30)
    assert r.status_code == 400 and "upstream" in r.json()["error"]["message"]
    r = httpx.post(gw.api + "/chat/completions", json={"model": "gw", "messages": HI, "logprobs": True})
    assert r.status_code == 400
    assert _ask(gw) in ("Answer from A.", "Answer from B.")


def test_refused_connection_counts_as_failure_and_is_routed_around(tmp_path, ups):
    from gateway_procs import free_port

    a, b = ups
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connections are refused
    g = start_gateway(tmp_path, [dead, b.url], "--served-model-name", "gw")
    try:
        assert [_ask(g) for _ in range(4)] == ["Answer from B."] * 4
        states = _states(g)
        assert states[dead] != "closed" and states[b.url] == "closed"
        assert (
            "refused" in httpx.get(g.url + "/metrics").text or _metric(g, "r1stack:upstream_errors_total") > 0
        )
    finally:
        g.stop()


def test_replicas_serving_another_model_are_never_used(tmp_path, ups):
    g = start_gateway(
        tmp_path,
        [u.url for u in ups],
        "--served-model-name",
        "gw",
        "--upstream-model",
        "not-" + MODEL,
        ready=503,
    )
    try:
        r = httpx.post(g.api + "/chat/completions", json={"model": "gw", "messages": HI}, timeout=30)
        # 503 while every replica is ejected; 502 if a replica's cool-down ended and it was tried again.
        assert r.status_code in (502, 503) and "Retry-After" in r.headers
        assert f"not-{MODEL}" in r.json()["error"]["message"], r.text
    finally:
        g.stop()


HANDBOOK = """# Zorblat reactor handbook

The Zorblat reactor is cooled by liquid helium pumped through the copper jacket.
The emergency stop lever is painted orange and sits beside the east door.
"""


def test_kb_sources_go_upstream_and_audit_names_the_replica(gw, ups):
    r = httpx.post(gw.api + "/kb", json={"name": "handbook"}, timeout=120)
    assert r.status_code == 200, r.text
    files = {"files": ("reactor.md", HANDBOOK.encode(), "text/markdown")}
    r = httpx.post(gw.api + "/kb/handbook/documents", files=files, timeout=300)
    assert r.status_code == 200 and r.json()["data"][0]["status"] != "failed", r.text
    question = [{"role": "user", "content": "How is the Zorblat reactor cooled?"}]
    body = {"model": "gw", "messages": question, "knowledge_bases": ["handbook"], "top_k_sources": 1}
    answer = httpx.post(gw.api + "/chat/completions", json=body, timeout=120).json()
    assert answer["sources"][0]["document"] == "reactor.md"
    assert answer["choices"][0]["message"]["content"] in ("Answer from A.", "Answer from B.")
    # The replica was sent the grounded question: the retrieved chunk, numbered, before the question.
    last_user = [
        m["content"]
        for s in ups
        for m in (s.requests[-1]["messages"] if s.requests else [])
        if m["role"] == "user"
    ]
    assert any(
        "[1]" in t and "liquid helium" in t and "How is the Zorblat reactor cooled?" in t for t in last_user
    )
    # Streamed: the sources ride on the first chunk, as from the native engine.
    with httpx.stream("POST", gw.api + "/chat/completions", json={**body, "stream": True}, timeout=120) as r:
        first = json.loads(next(ln for ln in r.iter_lines() if ln.startswith("data: {"))[6:])
    assert first["sources"][0]["document"] == "reactor.md"
    # The audit log records which replica served each answer.
    records = [
        json.loads(ln) for p in (gw.data_dir / "audit").glob("*.jsonl") for ln in p.read_text().splitlines()
    ]
    assert any(r["model"].startswith("gw via http://127.0.0.1:") and r["kb_sources"] for r in records)


def test_gateway_configured_in_r1stack_toml(tmp_path, ups):
    from gateway_procs import start

    a, _ = ups
    key = tmp_path / "upstream.key"
    key.write_text("upstream-secret\n")
    toml = tmp_path / "r1stack.toml"
    toml.write_text(
        f'[server]\nupstreams = ["{a.url}"]\nserved_model_name = "from-toml"\nupstream_read_timeout_s = 2\n'
        f'upstream_key_file = "{key}"\n'
    )
    a.required_key = "upstream-secret"  # the gateway must present the key from the file
    try:
        g = start(tmp_path, env={"R1STACK_CONFIG": str(toml)})
        try:
            r = g.openai().chat.completions.create(model="from-toml", messages=HI)
            assert r.choices[0].message.content == "Answer from A." and r.model == "from-toml"
            assert list(_states(g)) == [a.url]
            # A refused key is the gateway's problem, not the client's: never a 401 to the client.
            a.required_key = "rotated"
            r = httpx.post(
                g.api + "/chat/completions", json={"model": "from-toml", "messages": HI}, timeout=30
            )
            assert r.status_code in (502, 503) and "upstream key" in r.json()["error"]["message"], r.text
        finally:
            g.stop()
    finally:
        a.required_key = None
