"""Every sampling field the server takes reaches the engine and does what its name says, through a real server
(the tiny R1-style model: fast, and its greedy text repeats tokens, which the penalties must change)."""

from __future__ import annotations

import httpx
import pytest
from serverproc import MODEL_NAME
from tinyr1 import TINY_R1_KEY

PROMPT = "Once upon a time"
N = 16


@pytest.fixture(scope="module")
def complete(tiny_r1):
    """POST /v1/completions with the prompt and N tokens (EOS ignored) plus `fields`; the whole JSON answer."""
    h = {"Authorization": f"Bearer {TINY_R1_KEY}"}

    def call(**fields) -> dict:
        body = {"model": MODEL_NAME, "prompt": PROMPT, "max_tokens": N, "ignore_eos": True, **fields}
        r = httpx.post(tiny_r1.api + "/completions", json=body, headers=h, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    return call


@pytest.fixture(scope="module")
def greedy(complete) -> dict:
    g = complete(temperature=0, logprobs=0)
    assert g["usage"]["completion_tokens"] == N
    return g


def _text(answer: dict) -> str:
    return answer["choices"][0]["text"]


def test_penalties_change_a_repetitive_greedy_text(complete, greedy):
    tokens = greedy["choices"][0]["logprobs"]["tokens"]
    assert len(set(tokens)) < len(tokens), (
        "the greedy text repeats no token: the penalties would show nothing"
    )
    for field, value in (("repetition_penalty", 2.0), ("frequency_penalty", 2.0), ("presence_penalty", 2.0)):
        penalised = complete(temperature=0, logprobs=0, **{field: value})
        out = penalised["choices"][0]["logprobs"]["tokens"]
        assert out != tokens, field
        assert len(set(out)) > len(set(tokens)), field  # fewer repeats


def test_stop_strings(complete, greedy):
    text = _text(greedy)
    word = text.split()[len(text.split()) // 2]
    cut = complete(temperature=0, stop=[word])
    c = cut["choices"][0]
    assert c["finish_reason"] == "stop" and c["stop_reason"] == word
    assert c["text"] == text[: text.index(word)]
    kept = complete(temperature=0, stop=word, include_stop_str_in_output=True)["choices"][0]["text"]
    assert kept == text[: text.index(word) + len(word)]


def test_stop_token_ids_and_min_tokens(tiny_r1, complete, greedy):
    tokens = greedy["choices"][0]["logprobs"]["tokens"]
    h = {"Authorization": f"Bearer {TINY_R1_KEY}"}
    # A token from the middle of the greedy text, as an id (the tokenizer maps its text back to it).
    k = N // 2
    ids = httpx.post(
        tiny_r1.url + "/tokenize", json={"prompt": tokens[k], "add_special_tokens": False}, headers=h
    ).json()["tokens"]
    assert len(ids) == 1
    first = tokens.index(tokens[k])
    stopped = complete(temperature=0, stop_token_ids=ids)
    c = stopped["choices"][0]
    assert c["finish_reason"] == "stop" and c["stop_reason"] == ids[0]
    assert stopped["usage"]["completion_tokens"] == first + 1
    # min_tokens holds the stop token back until that many tokens are out.
    held = complete(temperature=0, stop_token_ids=ids, min_tokens=first + 2)
    assert held["usage"]["completion_tokens"] >= first + 2


def test_seed_top_k_and_min_p(complete, greedy):
    hot = dict(temperature=1.5, top_k=0)  # top_k 0 = off, over the model's generation_config top_k=1
    a, b, other = (_text(complete(seed=s, **hot)) for s in (11, 11, 12))
    assert a == b and a != other  # a seed makes a sampled answer repeatable
    # min_p 1 keeps only the most likely token: greedy, whatever the temperature and seed.
    assert [_text(complete(seed=s, min_p=1.0, **hot)) for s in (11, 12)] == [_text(greedy)] * 2
    # top_k 1 likewise.
    assert _text(complete(seed=12, temperature=1.5, top_k=1)) == _text(greedy)


def test_chat_max_completion_tokens_and_template_kwargs(tiny_r1):
    h = {"Authorization": f"Bearer {TINY_R1_KEY}"}
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}], "ignore_eos": True}

    def chat(**fields) -> dict:
        r = httpx.post(tiny_r1.api + "/chat/completions", json={**body, **fields}, headers=h, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    assert chat(max_completion_tokens=5)["usage"]["completion_tokens"] == 5
    # max_completion_tokens wins over the older max_tokens, as in OpenAI's API.
    assert chat(max_completion_tokens=3, max_tokens=7)["usage"]["completion_tokens"] == 3
    plain = chat(max_tokens=2)["usage"]["prompt_tokens"]
    # The template closes the thought in the prompt when asked to: the kwargs reached the template.
    closed = chat(max_tokens=2, chat_template_kwargs={"thinking": False})["usage"]["prompt_tokens"]
    assert closed > plain
