"""The guard as `r1stack serve` mounts it: /v1/guard/scan and /v1/watermark/detect behind the API keys with each
key's policy, and a completion the server watermarked (guard.watermark on) found by the server's own detector."""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

KEYS = {"alice": "alice-guard-key-0001", "ops": "ops-guard-key-000002"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, default_gguf):
    tmp = tmp_path_factory.mktemp("guard-serve")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    env.update(
        R1STACK_DATA_DIR=str(tmp / "data"),
        R1STACK_CONFIG=str(tmp / "none.toml"),
        R1STACK_GUARD__WATERMARK="true",
        R1STACK_GUARD__KEY_POLICIES=json.dumps({"ops": "mask"}),
    )
    cmd = [
        sys.executable,
        "-c",
        "from r1stack.cli.main import main; main()",
        "serve",
        "--model",
        str(default_gguf),
        "--served-model-name",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--kv-cache-bytes",
        str(64 << 20),
        "--max-model-len",
        "1024",
        "--no-ui",
        *[a for name, key in KEYS.items() for a in ("--api-key", f"{name}:{key}")],
    ]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to about five minutes on a busy machine
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(tmp / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", headers=_h("alice"), timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"server did not come up: {(tmp / 'server.log').read_text()[-3000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _h(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def test_scan_needs_a_key_and_applies_its_policy(server):
    body = {"text": "请联系13812345678"}
    assert httpx.post(f"{server}/v1/guard/scan", json=body, timeout=30).status_code == 401
    alice = httpx.post(f"{server}/v1/guard/scan", json=body, headers=_h("alice"), timeout=30).json()
    assert alice["policy"] == "redact" and alice["text"] == "请联系[手机号]"
    ops = httpx.post(f"{server}/v1/guard/scan", json=body, headers=_h("ops"), timeout=30).json()
    assert ops["policy"] == "mask" and ops["text"] == "请联系*******5678"


def test_a_watermarked_completion_is_detected_by_the_server(server):
    body = {
        "model": "smollm2",
        "prompt": "Write a short story about a lighthouse keeper.\n",
        "max_tokens": 150,
        "min_tokens": 150,
        "temperature": 1.0,
        "seed": 3,
    }
    r = httpx.post(f"{server}/v1/completions", json=body, headers=_h("alice"), timeout=300)
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["text"]
    d = httpx.post(
        f"{server}/v1/watermark/detect", json={"text": text}, headers=_h("alice"), timeout=60
    ).json()
    assert d["verdict"] == "watermarked" and d["z"] > 4, d
    plain = httpx.post(
        f"{server}/v1/watermark/detect",
        json={
            "text": "The committee met on Tuesday to review the quarterly report. Revenue rose slightly, "
            "costs fell, and the board agreed to publish the figures next month."
        },
        headers=_h("alice"),
        timeout=60,
    ).json()
    assert plain["verdict"] == "not watermarked"
    assert httpx.post(f"{server}/v1/watermark/detect", json={"text": text}, timeout=30).status_code == 401
