"""The tiny R1-style model (tests/server/tinyr1.py) served by real `r1stack serve` processes: the reasoning
parser is on by default for an R1-family model and off with `--reasoning-parser none`; generation_config.json
supplies the sampling defaults; keys come from R1STACK_API_KEYS and --api-key-file; TLS 1.3 from certificate
files; the start-up banner; and an engine that dies mid-stream (a fault injected into its step) gives an error
chunk, then [DONE], then 503 on /health."""

from __future__ import annotations

import json
import ssl
import time

import httpx
import openai
import pytest
from serverproc import MODEL_NAME, start_server, stop_server
from tinyr1 import TINY_R1_KEY as ENV_KEY

from r1stack.server.reasoning import split_reasoning

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]
FILE_KEY = "carol-secret-key-0004"


@pytest.fixture(scope="module")
def r1_off(tiny_r1_dir, tmp_path_factory):
    """`--reasoning-parser none`; its one key comes from --api-key-file; HTTPS from --ssl-certfile/--ssl-keyfile."""
    from r1stack.server.tls import make_self_signed

    tmp = tmp_path_factory.mktemp("r1off")
    key_file = tmp / "keys.txt"
    key_file.write_text(f"# the server's keys\ncarol:{FILE_KEY}\n")
    cert, key = make_self_signed(tmp / "pem", ["127.0.0.1"])
    s = start_server(
        tmp,
        "--reasoning-parser",
        "none",
        "--api-key-file",
        str(key_file),
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        model=tiny_r1_dir,
        scheme="https",
        verify=str(cert),
    )
    yield s
    stop_server(s)


def _raw_output(server, key: str, messages: list[dict], max_tokens: int) -> str:
    """What the model writes after the chat prompt, unparsed: the same greedy prompt through /v1/completions."""
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(headers=h, verify=server.verify) as http:
        ids = http.post(server.url + "/tokenize", json={"messages": messages}).json()["tokens"]
        prompt = http.post(server.url + "/detokenize", json={"tokens": ids}).json()["prompt"]
        assert prompt.endswith("<|im_start|>assistant\n<think>\n")  # the template put <think> in the prompt
        r = http.post(
            server.api + "/completions",
            json={"prompt": ids, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True},
        )
    return r.json()["choices"][0]["text"]


def _stream_fields(client, **kw) -> tuple[str | None, str, list[dict]]:
    reasoning, content, deltas = "", "", []
    for chunk in client.chat.completions.create(stream=True, **kw):
        if chunk.choices:
            d = chunk.choices[0].delta
            deltas.append(d.model_dump())
            reasoning += (d.model_extra or {}).get("reasoning_content") or ""
            content += d.content or ""
    return reasoning or None, content, deltas


def test_auto_parser_splits_reasoning_for_an_r1_model(tiny_r1):
    raw = _raw_output(tiny_r1, ENV_KEY, QUESTION, 12)
    want_reasoning, want_content = split_reasoning(raw)
    # Cut by max_tokens with no </think>: all of it is reasoning.
    if "</think>" not in raw:
        assert want_reasoning == raw.strip() and want_content == ""
    assert want_reasoning
    client = tiny_r1.openai(ENV_KEY)
    kw = dict(
        model=MODEL_NAME, messages=QUESTION, max_tokens=12, temperature=0, extra_body={"ignore_eos": True}
    )
    msg = client.chat.completions.create(**kw).choices[0].message
    assert msg.model_extra.get("reasoning_content") == want_reasoning
    assert (msg.content or "") == want_content
    reasoning, content, deltas = _stream_fields(client, **kw)
    assert (reasoning, content) == (want_reasoning, want_content)
    assert deltas[0]["role"] == "assistant"


def test_reasoning_parser_none_leaves_the_text_whole(r1_off):
    raw = _raw_output(r1_off, FILE_KEY, QUESTION, 12)
    client = r1_off.openai(FILE_KEY)
    kw = dict(
        model=MODEL_NAME, messages=QUESTION, max_tokens=12, temperature=0, extra_body={"ignore_eos": True}
    )
    msg = client.chat.completions.create(**kw).choices[0].message
    assert "reasoning_content" not in (msg.model_extra or {}) or msg.model_extra["reasoning_content"] is None
    assert msg.content == raw
    reasoning, content, _ = _stream_fields(client, **kw)
    assert (reasoning, content) == (None, raw)


def test_generation_config_supplies_the_defaults(tiny_r1):
    client = tiny_r1.openai(ENV_KEY)
    base = dict(model=MODEL_NAME, prompt="Once upon a time", max_tokens=12, extra_body={"ignore_eos": True})

    def text(**kw) -> str:
        kw = {**base, **kw, "extra_body": {**base["extra_body"], **kw.pop("extra_body", {})}}
        return client.completions.create(**kw).choices[0].text

    greedy = text(temperature=0)
    # top_k left unset: generation_config's top_k=1 applies, so a hot temperature is still greedy.
    assert [text(temperature=1.5, seed=s) for s in (1, 2, 3)] == [greedy] * 3
    # Overriding it (top_k 0 = off, as in vLLM) samples from the model's broad distribution: the seeds differ.
    sampled = [text(temperature=1.5, seed=s, extra_body={"top_k": 0}) for s in (1, 2, 3)]
    assert len(set(sampled)) > 1 and greedy not in sampled


def test_keys_from_the_environment_and_from_a_file(tiny_r1, r1_off):
    for server, good in ((tiny_r1, ENV_KEY), (r1_off, FILE_KEY)):
        assert [m.id for m in server.openai(good).models.list().data] == [MODEL_NAME]
        with pytest.raises(openai.AuthenticationError):
            server.openai(good + "x").models.list()
    # The file's key opens only the server that read the file, and the environment's only the other.
    with pytest.raises(openai.AuthenticationError):
        r1_off.openai(ENV_KEY).models.list()


def test_tls_from_certificate_files_is_13_only(r1_off):
    old = ssl.create_default_context(cafile=r1_off.verify)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(r1_off.url + "/health", verify=old)
    assert httpx.get(r1_off.url + "/health", verify=r1_off.verify).status_code == 200
    assert "TLS: 1.3 only" in r1_off.log()


def test_banner_names_the_url_the_model_and_a_curl_line(tiny_r1):
    log = tiny_r1.log()
    assert f"r1stack serving {MODEL_NAME}" in log
    assert f"at {tiny_r1.url}/v1" in log
    assert f"curl {tiny_r1.url}/v1/chat/completions" in log
    assert "reasoning parser: deepseek_r1" in log  # auto chose it for the R1-family folder


# An engine fault injected into the real server process: once the trigger file exists, every step raises.
FAULT = """
import os, sys
import r1stack.engine.llm_engine as m
trigger = os.environ["R1STACK_TEST_FAULT_FILE"]
step = m.LLMEngine.step
def faulty(self):
    if os.path.exists(trigger):
        raise RuntimeError("injected step failure")
    return step(self)
m.LLMEngine.step = faulty
from r1stack.cli.main import main
main()
"""


def test_engine_death_mid_stream_then_health_503(tiny_r1_dir, tmp_path):
    trigger = tmp_path / "fail-now"
    s = start_server(
        tmp_path,
        "--max-model-len",
        "4096",
        model=tiny_r1_dir,
        code=FAULT,
        env={"R1STACK_TEST_FAULT_FILE": str(trigger)},
    )
    try:
        assert httpx.get(s.url + "/health").status_code == 200
        body = {
            "model": MODEL_NAME,
            "messages": QUESTION,
            "max_tokens": 4000,  # far more than it makes before the fault, however slow the machine
            "ignore_eos": True,
            "stream": True,
        }
        lines = []
        with httpx.stream("POST", s.api + "/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                lines.append(line)
                if len(lines) == 3:
                    trigger.touch()  # the engine dies while this stream is running
        assert lines[-1] == "data: [DONE]"
        error = json.loads(lines[-2][6:])["error"]
        assert error["code"] == 503 and "injected step failure" in error["message"]
        generated = sum(1 for ln in lines if '"delta"' in ln)
        assert generated < 4000  # it ended at the fault, not at max_tokens
        deadline = time.monotonic() + 30
        while httpx.get(s.url + "/health").status_code != 503:
            assert time.monotonic() < deadline, "/health never reported the dead engine"
            time.sleep(0.2)
        assert "restart" in httpx.get(s.url + "/health").json()["error"]["message"]
        with pytest.raises(openai.InternalServerError) as e:
            s.openai().chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=2)
        assert e.value.status_code == 503
    finally:
        stop_server(s)
