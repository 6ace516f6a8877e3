"""The gateway in front of a real upstream: a second `r1stack serve` process with the default model. Answers
through the gateway are the upstream's own (greedy, so comparable), and a client that leaves the gateway
mid-stream frees the upstream's request and its KV blocks."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from gateway_procs import FORCED_WEATHER_CALL, start_gateway, start_native

MODEL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    p = start_native(tmp_path_factory.mktemp("native"))
    yield p
    p.stop()


@pytest.fixture(scope="module")
def gw(native, tmp_path_factory):
    # A real model on a shared CPU may think for a while before its first token: no hang detection here.
    slow_ok = {"R1STACK_SERVER__UPSTREAM_READ_TIMEOUT_S": "120"}
    g = start_gateway(
        tmp_path_factory.mktemp("gw-native"), [native.api], "--served-model-name", "smol", env=slow_ok
    )
    yield g
    g.stop()


def _metric(p, name: str) -> float:
    for line in p.metrics().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


def test_chat_through_the_gateway_is_the_upstream_answer(native, gw):
    kw = dict(messages=QUESTION, max_tokens=24, temperature=0, seed=1)
    direct = native.openai().chat.completions.create(model=MODEL, **kw)
    via = gw.openai().chat.completions.create(model="smol", **kw)
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.choices[0].finish_reason == direct.choices[0].finish_reason
    assert via.usage.prompt_tokens == direct.usage.prompt_tokens
    assert via.usage.completion_tokens == direct.usage.completion_tokens
    assert via.model == "smol"
    chunks = list(
        gw.openai().chat.completions.create(
            model="smol", stream=True, stream_options={"include_usage": True}, **kw
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == direct.usage.completion_tokens


def test_completions_through_the_gateway(native, gw):
    kw = dict(prompt="The capital of France is", max_tokens=12, temperature=0)
    direct = native.openai().completions.create(model=MODEL, **kw)
    via = gw.openai().completions.create(model="smol", **kw)
    assert via.choices[0].text == direct.choices[0].text and via.choices[0].text
    streamed = "".join(
        c.choices[0].text for c in gw.openai().completions.create(model="smol", stream=True, **kw)
    )
    assert streamed == direct.choices[0].text


def test_client_disconnect_cancels_the_upstream_request(native, gw):
    free = _metric(native, "r1stack:num_free_blocks")
    body = {
        "model": "smol",
        "messages": QUESTION,
        "max_tokens": 1900,  # far more than can finish while we wait below
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", gw.api + "/chat/completions", json=body, timeout=60) as r:
        got = 0
        for line in r.iter_lines():
            if '"content"' in line:
                got += 1
            if got >= 3:
                break
    deadline = time.monotonic() + 30
    while (
        _metric(native, "r1stack:num_requests_running") != 0
        or _metric(native, "r1stack:num_free_blocks") != free
    ):
        assert time.monotonic() < deadline, "the upstream kept generating after the client left the gateway"
        time.sleep(0.2)
    # It stopped early: far fewer tokens generated, in all this module's requests, than the one asked for.
    assert _metric(native, "r1stack:generation_tokens_total") < 1900


def test_tool_calls_through_the_gateway(gw):
    """A forced call: the gateway asks the upstream for the arguments under response_format and checks them."""
    kw = FORCED_WEATHER_CALL
    r = gw.openai().chat.completions.create(**kw)
    assert r.choices[0].finish_reason == "tool_calls"
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    assert r.usage.completion_tokens > 0  # the upstream's count
    chunks = list(gw.openai().chat.completions.create(stream=True, **kw))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls if tc.function.name] == ["get_weather"]
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == json.loads(
        call.function.arguments
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
