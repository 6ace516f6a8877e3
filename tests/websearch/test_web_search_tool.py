"""The `web_search` tool end to end: a real server offering it to SmolLM2, the real search proxy process and a
stand-in SearXNG. A forced call is run by the stack itself and the answer comes back with the stand-in's URLs
as sources; a provider that sleeps past the timeout gives an answer that says search was unavailable."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from websearch_standins import StandIn, running_proxy, searxng_route

from r1stack.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverproc import KEYS, MODEL_NAME, start_server, stop_server  # noqa: E402

pytestmark = pytest.mark.timeout(300)

TIMEOUT_S = 3  # the stack's websearch.timeout_s in this server
WEB_SEARCH = {"type": "function", "function": {"name": "web_search"}}
FORCED = {"type": "function", "function": {"name": "web_search"}}
ASK = [{"role": "user", "content": "What is new with the Zorblat reactor?"}]


@pytest.fixture(scope="module")
def web() -> StandIn:
    """Stand-in SearXNG; `web.slow = True` makes every search sleep 15 s (the model picks the query)."""
    server = StandIn()
    server.slow = False

    def search(seen, standin):
        if standin.slow:
            time.sleep(15)
            return None  # by now the proxy has hung up; there is no one left to answer
        return searxng_route(seen, standin)

    server.routes["/search"] = search
    server.start()
    yield server
    server.slow = False
    server.stop()


@pytest.fixture(scope="module")
def stack(web: StandIn, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web-tool")
    with running_proxy(tmp, "--provider", "searxng", "--searxng-url", web.base, "--cache-ttl", "0") as proxy:
        env = {
            "R1STACK_WEBSEARCH__PROXY_ADDRESS": proxy.address,
            "R1STACK_WEBSEARCH__TIMEOUT_S": str(TIMEOUT_S),
        }
        server = start_server(tmp, keys=KEYS, env=env)
        yield server
        stop_server(server)


@pytest.fixture
def client(stack):
    return stack.openai(KEYS["alice"])


def _searches(web: StandIn) -> list[str]:
    return [s.query["q"][0] for s in web.seen if s.path == "/search"]


def _audit(stack, request_id: str) -> dict:
    files = sorted(Settings(data_dir=stack.data_dir).audit_dir.glob("*.jsonl"))
    (rec,) = [
        r for f in files for r in map(json.loads, f.read_text().splitlines()) if r["request_id"] == request_id
    ]
    return rec


def test_a_forced_web_search_answers_with_the_standins_urls(client, stack, web: StandIn):
    before = len(_searches(web))
    r = client.chat.completions.create(
        model=MODEL_NAME, messages=ASK, tools=[WEB_SEARCH], tool_choice=FORCED, max_tokens=24, temperature=0
    )
    choice = r.choices[0]
    # The stack ran the call itself: the client gets the answer, not a tool call to carry out.
    assert not choice.message.tool_calls and choice.finish_reason in ("stop", "length")
    assert choice.message.content
    (query,) = _searches(web)[before:]
    sources = r.model_extra["sources"]
    assert [s["url"] for s in sources] == [f"{web.base}/doc/{n}" for n in (1, 2, 3)]  # websearch.top_k = 3
    assert [s["id"] for s in sources] == [1, 2, 3] and all(s["kind"] == "web" for s in sources)
    assert all(query in s["title"] for s in sources)
    assert _audit(stack, r.id)["web_queries"] == [query]
    # Two generations (the call, then the answer) are both counted.
    assert r.usage.prompt_tokens > 2 * len(ASK[0]["content"]) // 4


def test_a_streamed_forced_web_search_sends_sources_before_the_answer(client, web: StandIn):
    stream = client.chat.completions.create(
        model=MODEL_NAME, messages=ASK, tools=[WEB_SEARCH], tool_choice=FORCED, max_tokens=16, stream=True
    )
    chunks = list(stream)
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    with_sources = [i for i, c in enumerate(chunks) if (c.model_extra or {}).get("sources")]
    with_text = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content]
    assert with_sources and with_text and with_sources[0] < with_text[0]
    urls = [s["url"] for s in chunks[with_sources[0]].model_extra["sources"]]
    assert urls == [f"{web.base}/doc/{n}" for n in (1, 2, 3)]
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_a_provider_sleeping_past_the_timeout_still_gets_an_answer(client, web: StandIn):
    web.slow = True
    try:
        started = time.monotonic()
        r = client.chat.completions.create(
            model=MODEL_NAME, messages=ASK, tools=[WEB_SEARCH], tool_choice=FORCED, max_tokens=8
        )
        elapsed = time.monotonic() - started
    finally:
        web.slow = False
    (notice,) = r.model_extra["notices"]
    m = re.fullmatch(r"web search unavailable: searxng did not answer within (\d+\.\d+) s", notice)
    # The budget the proxy was given is the stack's websearch.timeout_s, not the 10 s default nor the 15 s sleep.
    assert m and float(m.group(1)) <= TIMEOUT_S, notice
    assert r.model_extra["sources"] is None
    assert r.choices[0].message.content and not r.choices[0].message.tool_calls
    assert elapsed < 15  # it did not wait for the provider


def test_a_client_tool_beside_web_search_comes_back_to_the_client(client, web: StandIn):
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    before = len(_searches(web))
    r = client.chat.completions.create(
        model=MODEL_NAME,
        messages=ASK,
        tools=[WEB_SEARCH, weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=24,
    )
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and isinstance(
        json.loads(call.function.arguments)["city"], str
    )
    assert len(_searches(web)) == before  # nothing was searched for a call that is the client's
