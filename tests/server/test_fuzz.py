"""Schemathesis against the server's own OpenAPI document: at least 500 generated requests (valid and invalid)
to every OpenAI-API route; none may answer 5xx or hang, and the server still answers afterwards.

Generation is kept cheap while every other field stays as generated: in valid bodies, max_tokens is clipped to
one token and n to two, because a CPU engine writing the context-long answers a fuzzer asks for would take hours.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from serverproc import KEYS, MODEL_NAME, start_server, stop_server

from r1stack.server.protocol import MAX_N

# examples per (method, path) and generation mode; positive + negative, 640 asked (hypothesis
# stops early where a schema has fewer distinct cases, e.g. GET /health)
BUDGET = {
    ("POST", "/v1/chat/completions"): (140, 50),
    ("POST", "/v1/completions"): (140, 50),
    ("POST", "/v1/embeddings"): (40, 20),
    ("POST", "/tokenize"): (40, 20),
    ("POST", "/detokenize"): (30, 20),
    ("GET", "/v1/models/{model_id}"): (20, 0),
    ("GET", "/v1/models"): (10, 0),
    ("GET", "/health"): (10, 0),
    ("GET", "/metrics"): (10, 0),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Its own server with a short context: the fuzzer's long prompts then cost a quick 400, not a long prefill."""
    s = start_server(tmp_path_factory.mktemp("fuzz"), "--max-model-len", "256", keys=KEYS)
    yield s
    stop_server(s)


def _cheap(body):
    """Clip generation budgets in a valid body; leave anything invalid as the fuzzer made it."""
    if not isinstance(body, dict):
        return body
    for key in ("max_tokens", "max_completion_tokens"):
        v = body.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            body[key] = 1
    if "messages" in body or "prompt" in body:
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            body["max_tokens"] = 1
        n = body.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_N:
            body["n"] = min(n, 2)
        m = body.get("min_tokens")
        if isinstance(m, int) and not isinstance(m, bool) and m >= 0:
            body["min_tokens"] = min(m, 1)
    return body


def _fuzz(server, op, mode, count: int, headers: dict, calls: list, failures: list) -> None:
    positive = mode == schemathesis.GenerationMode.POSITIVE

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        if positive:
            case.body = _cheap(case.body)
        t0 = time.perf_counter()
        r = case.call(base_url=server.url, headers=headers, timeout=120)
        calls.append((op.label, r.status_code, time.perf_counter() - t0))
        if r.status_code >= 500:
            failures.append(f"{op.label} {r.status_code}: {case.body!r:.300} -> {r.text[:300]}")

    run()


def test_fuzz_no_5xx(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {KEYS['alice']}"}
    calls: list[tuple[str, int, float]] = []
    failures: list[str] = []
    seen_ops = set()
    for result in schema.get_all_operations():
        op = result.ok()
        key = (op.method.upper(), op.path)
        if key not in BUDGET:
            continue  # routes owned by other services are fuzzed in their own suites
        seen_ops.add(key)
        for mode, count in zip(schemathesis.GenerationMode, BUDGET[key], strict=True):
            if count:
                _fuzz(server, op, mode, count, headers, calls, failures)

    assert seen_ops == set(BUDGET), f"operations missing from the schema: {set(BUDGET) - seen_ops}"
    summary = Counter((label, status) for label, status, _ in calls)
    spent = Counter()
    for label, _, dt in calls:
        spent[label] += dt
    print(f"\n{len(calls)} requests; by operation and status: {dict(summary)}; seconds: {dict(spent)}")
    assert len(calls) >= 500, len(calls)
    assert not failures, "\n".join(failures[:10])
    # Both kinds of answers were reached: the fuzzer did make valid and invalid requests.
    statuses = {s for _, s, _ in calls}
    assert 200 in statuses and 400 in statuses
    # Still alive and well.
    r = httpx.post(
        server.api + "/chat/completions",
        headers=headers,
        timeout=120,
        json={"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    assert r.status_code == 200
    assert httpx.get(server.url + "/health").status_code == 200


@pytest.mark.parametrize(
    "raw", [b"{", b"[]", b"null", b'{"messages": "x"}', b'{"messages": []}', b"\xff\xfe"]
)
def test_garbage_bodies_get_400(server, raw):
    r = httpx.post(
        server.api + "/chat/completions",
        content=raw,
        timeout=60,
        headers={"Authorization": f"Bearer {KEYS['alice']}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert set(r.json()["error"]) >= {"message", "type", "param", "code"}


def test_lone_surrogates_are_refused_cleanly(server):
    raw = b'{"messages": [{"role": "user", "content": "a\\ud800b"}], "max_tokens": 2}'
    r = httpx.post(
        server.api + "/chat/completions",
        content=raw,
        timeout=60,
        headers={"Authorization": f"Bearer {KEYS['alice']}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    raw = b'{"prompt": "a\\udfffb", "max_tokens": 2}'
    r = httpx.post(
        server.api + "/completions",
        content=raw,
        timeout=60,
        headers={"Authorization": f"Bearer {KEYS['alice']}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
