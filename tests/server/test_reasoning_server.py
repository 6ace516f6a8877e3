"""R1 reasoning through a real server whose reasoning parser is forced on: what the server returns, whole and
streamed, is exactly what the parser makes of the raw text the same greedy prompt yields via /v1/completions."""

from __future__ import annotations

import httpx
import pytest
from serverproc import KEYS, MODEL_NAME, start_server, stop_server

from r1stack.server.reasoning import split_reasoning

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def r1_server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("r1"), "--reasoning-parser", "deepseek_r1", keys=KEYS)
    yield s
    stop_server(s)


def _auth(name: str = "alice") -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def test_r1_reasoning_split_on_real_output(r1_server):
    """The parser is forced on: the split the server returns must be exactly what the parser makes of the raw
    text the same greedy prompt produces through /v1/completions, streamed and not."""
    client = r1_server.openai(KEYS["alice"])
    prompts = [
        [{"role": "user", "content": "Say </think> and then say hello."}],
        [
            {
                "role": "user",
                "content": "Write the tag <think> then a short thought then </think> then an answer.",
            }
        ],
        QUESTION,
    ]
    for messages in prompts:
        prompt = httpx.post(
            r1_server.url + "/tokenize",
            json={"messages": messages},
            headers=_auth(),
            verify=r1_server.verify,
        ).json()["tokens"]
        raw = (
            client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=16, temperature=0)
            .choices[0]
            .text
        )
        want_reasoning, want_content = split_reasoning(raw)
        whole = client.chat.completions.create(
            model=MODEL_NAME, messages=messages, max_tokens=16, temperature=0
        )
        msg = whole.choices[0].message
        assert msg.model_extra.get("reasoning_content") == want_reasoning
        assert (msg.content or "") == want_content
        reasoning, content = "", ""
        for chunk in client.chat.completions.create(
            model=MODEL_NAME, messages=messages, max_tokens=16, temperature=0, stream=True
        ):
            if chunk.choices:
                d = chunk.choices[0].delta
                reasoning += (d.model_extra or {}).get("reasoning_content") or ""
                content += d.content or ""
        assert (reasoning or None) == want_reasoning
        assert content == want_content
