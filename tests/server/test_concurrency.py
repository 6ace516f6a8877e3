"""Many streaming clients at once get what each gets alone; a client that hangs up frees its KV blocks."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
from serverproc import KEYS, MODEL_NAME

N_CLIENTS = 32
TOPICS = [
    "rivers",
    "cats",
    "bread",
    "rain",
    "music",
    "stars",
    "trains",
    "tea",
    "maps",
    "snow",
    "bees",
    "clocks",
    "paper",
    "salt",
    "wind",
    "glass",
    "boats",
    "honey",
    "roads",
    "ink",
    "moss",
    "kites",
    "coal",
    "silk",
    "owls",
    "iron",
    "lamps",
    "wool",
    "frogs",
    "dust",
    "pearls",
    "bells",
]


def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Write one sentence about {TOPICS[i]}."}]


def test_32_streams_match_their_solo_runs(server):
    sync = server.openai(KEYS["alice"])
    solo = []
    for i in range(N_CLIENTS):
        r = sync.chat.completions.create(model=MODEL_NAME, messages=_messages(i), max_tokens=8, temperature=0)
        solo.append((r.choices[0].message.content, r.usage.completion_tokens))

    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, int]:
        stream = await client.chat.completions.create(
            model=MODEL_NAME,
            messages=_messages(i),
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, tokens = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        return text, tokens

    async def all_at_once() -> list[tuple[str, int]]:
        limits = httpx.Limits(max_connections=N_CLIENTS + 4)
        async with httpx.AsyncClient(timeout=300, limits=limits) as http:
            client = openai.AsyncOpenAI(
                base_url=server.api, api_key=KEYS["bob"], max_retries=0, http_client=http
            )
            return await asyncio.gather(*(one(client, i) for i in range(N_CLIENTS)))

    together = asyncio.run(all_at_once())
    assert together == solo


def _wait_for(predicate, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_disconnect_frees_kv_blocks(server):
    h = {"Authorization": f"Bearer {KEYS['alice']}"}
    _wait_for(lambda: server.metric("r1stack:num_requests_running") == 0, "an idle engine")
    initial = server.metric("r1stack:num_free_blocks")
    generated = server.metric("r1stack:generation_tokens_total")
    body = {
        "model": MODEL_NAME,
        "messages": _messages(0),
        "max_tokens": 1500,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.stream("POST", server.api + "/chat/completions", json=body, headers=h, timeout=60) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        got = 0
        for line in lines:
            got += line.startswith("data: ")
            if got >= 6:
                break
        assert server.metric("r1stack:num_free_blocks") < initial  # it holds blocks while it runs
    # The connection is closed here, long before 1500 tokens.
    _wait_for(lambda: server.metric("r1stack:num_free_blocks") == initial, "the blocks to come back")
    assert server.metric("r1stack:num_requests_running") == 0
    # Aborted, not run to the end: far fewer than the 1500 tokens it asked for were made.
    assert server.metric("r1stack:generation_tokens_total") - generated < 1500


def test_disconnect_of_a_whole_response_request_aborts_it(server):
    h = {"Authorization": f"Bearer {KEYS['alice']}"}
    _wait_for(lambda: server.metric("r1stack:num_requests_running") == 0, "an idle engine")
    initial = server.metric("r1stack:num_free_blocks")
    generated = server.metric("r1stack:generation_tokens_total")
    body = {"model": MODEL_NAME, "messages": _messages(1), "max_tokens": 1500, "ignore_eos": True}
    try:
        httpx.post(server.api + "/chat/completions", json=body, headers=h, timeout=3)
    except httpx.ReadTimeout:
        pass
    _wait_for(lambda: server.metric("r1stack:num_free_blocks") == initial, "the blocks to come back")
    assert server.metric("r1stack:generation_tokens_total") - generated < 1500
