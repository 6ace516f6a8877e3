"""The official `openai` client against a real `r1stack serve`: every endpoint, streamed and not, and the
client's exception classes for our error statuses."""

from __future__ import annotations

import math

import httpx
import numpy as np
import openai
import pytest
from serverproc import KEYS, MODEL_NAME

QUESTION = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def client(server):
    return server.openai(KEYS["alice"])


def test_models_lists_the_served_name(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL_NAME]
    assert client.models.retrieve(MODEL_NAME).id == MODEL_NAME


def test_chat_streamed_equals_whole(client):
    whole = client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=24, temperature=0)
    choice = whole.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens > 0
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model=MODEL_NAME,
            messages=QUESTION,
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        choice.finish_reason
    ]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens


def test_chat_n_and_logprobs(client):
    r = client.chat.completions.create(
        model=MODEL_NAME,
        messages=QUESTION,
        max_tokens=6,
        n=2,
        temperature=0.8,
        seed=7,
        logprobs=True,
        top_logprobs=3,
    )
    assert sorted(c.index for c in r.choices) == [0, 1]
    for c in r.choices:
        tokens = c.logprobs.content
        assert len(tokens) >= 1
        for t in tokens:
            assert t.logprob <= 0
            assert 1 <= len(t.top_logprobs) <= 3
            assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob


def test_completions_echo_and_logprobs(client, server):
    prompt = "The capital of France is"
    r = client.completions.create(
        model=MODEL_NAME, prompt=prompt, max_tokens=5, temperature=0, echo=True, logprobs=2
    )
    c = r.choices[0]
    assert c.text.startswith(prompt)
    n_prompt = r.usage.prompt_tokens
    lp = c.logprobs
    assert len(lp.tokens) == n_prompt + r.usage.completion_tokens
    assert lp.token_logprobs[0] is None  # nothing predicts the first token
    assert all(x <= 0 for x in lp.token_logprobs[1:])
    assert "".join(lp.tokens) == c.text
    assert lp.text_offset == sorted(lp.text_offset)

    streamed = client.completions.create(
        model=MODEL_NAME, prompt=prompt, max_tokens=5, temperature=0, stream=True
    )
    assert prompt + "".join(ch.choices[0].text for ch in streamed) == c.text


def test_completions_several_prompts_and_token_ids(client, server):
    ids = httpx.post(
        server.url + "/tokenize",
        json={"prompt": "Once upon a time"},
        headers={"Authorization": f"Bearer {KEYS['bob']}"},
    ).json()["tokens"]
    r = client.completions.create(
        model=MODEL_NAME, prompt=["Once upon a time", "One, two,"], max_tokens=4, temperature=0
    )
    assert sorted(c.index for c in r.choices) == [0, 1]
    by_ids = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=4, temperature=0)
    first = next(c for c in r.choices if c.index == 0)
    assert by_ids.choices[0].text == first.text


def test_embeddings(client):
    texts = [
        "The cat sat on the mat.",
        "A cat was sitting on a rug.",
        "Quarterly revenue rose by ten percent.",
    ]
    r = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the client asks for base64
    vecs = np.array([d.embedding for d in r.data])
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    floats = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0], encoding_format="float")
    assert np.allclose(floats.data[0].embedding, vecs[0], atol=1e-5)
    assert r.usage.prompt_tokens > 0


def test_tokenize_detokenize(server):
    h = {"Authorization": f"Bearer {KEYS['alice']}"}
    t = httpx.post(server.url + "/tokenize", json={"prompt": "Hello world"}, headers=h).json()
    assert t["count"] == len(t["tokens"]) > 0 and t["max_model_len"] == 2048
    d = httpx.post(server.url + "/detokenize", json={"tokens": t["tokens"]}, headers=h).json()
    assert "Hello world" in d["prompt"]
    chat = httpx.post(server.url + "/tokenize", json={"messages": QUESTION}, headers=h).json()
    assert chat["count"] > t["count"]


def test_errors_map_to_the_clients_exceptions(client, server):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=5000)
    msg = e.value.body["message"]
    assert "2048" in msg and "5000" in msg  # the numbers, as the issue asks
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, temperature=-1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_NAME, messages=[])
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-large", input="x")
    with pytest.raises(openai.AuthenticationError):
        server.openai("not-a-key-at-all").models.list()
    r = httpx.get(server.api + "/models")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_health_and_metrics_use_vllm_names(client, server):
    client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=3)
    assert httpx.get(server.url + "/health").status_code == 200
    text = httpx.get(server.url + "/metrics").text
    for name in (
        "num_requests_running",
        "num_requests_waiting",
        "kv_cache_usage_perc",
        "prefix_cache_queries_total",
        "prefix_cache_hits_total",
        "num_preemptions_total",
        "prompt_tokens_total",
        "generation_tokens_total",
        "time_to_first_token_seconds_count",
        "time_per_output_token_seconds_count",
        "e2e_request_latency_seconds_count",
        "request_queue_time_seconds_count",
    ):
        assert f"r1stack:{name}" in text, name
    assert server.metric("r1stack:e2e_request_latency_seconds_count") >= 1
    assert server.metric("r1stack:generation_tokens_total") >= 3
    assert not math.isnan(server.metric("r1stack:kv_cache_usage_perc"))
