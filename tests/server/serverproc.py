"""Starting and stopping real `r1stack serve` processes on loopback ports for the server tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from r1stack.config import DEFAULT_MODEL, Settings
from r1stack.engine import store

MODEL_NAME = "smollm2-135m-instruct"
KEYS = {"alice": "alice-secret-key-0001", "bob": "bob-secret-key-00002"}


def installed_model() -> Path:
    """The default model as `make test` installs it (r1stack pull), under the data dir this shell points to."""
    data_dir = Settings().data_dir
    root = store.installed_path(DEFAULT_MODEL, data_dir)
    if root is None:
        pytest.fail(f"{DEFAULT_MODEL} is not installed under {data_dir}; run `r1stack pull {DEFAULT_MODEL}`")
    return store.resolve(DEFAULT_MODEL, data_dir).path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str  # base URL without /v1
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    keys: dict[str, str] = field(default_factory=dict)
    verify: str | bool = True

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def openai(self, key: str | None = None, **kw):
        import openai

        http = httpx.Client(verify=self.verify, timeout=120)
        return openai.OpenAI(
            base_url=self.api, api_key=key or "no-key", max_retries=0, http_client=http, **kw
        )

    def metric(self, name: str, headers: dict | None = None) -> float:
        text = httpx.get(self.url + "/metrics", verify=self.verify, headers=headers).text
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"metric {name} not exposed")


def start_server(
    tmp: Path,
    *args: str,
    scheme: str = "http",
    keys: dict[str, str] | None = None,
    verify: str | bool = True,
    timeout_s: float = 300,
    env: dict[str, str] | None = None,
    model: Path | None = None,
    code: str = "from r1stack.cli.main import main; main()",
) -> Server:
    port = free_port()
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = tmp / "server.log"
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    env.update(
        R1STACK_DATA_DIR=str(data_dir), R1STACK_CONFIG=str(tmp / "no-r1stack.toml"), PYTHONUNBUFFERED="1"
    )
    env.update(extra)
    if "--max-model-len" not in args:
        args = ("--max-model-len", "2048", *args)
    cmd = [
        sys.executable,
        "-c",
        code,  # a test may run something first in the server process (a fault to inject)
        "serve",
        "--model",
        str(model or installed_model()),
        "--served-model-name",
        MODEL_NAME,
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--kv-cache-bytes",
        str(192 * 2**20),
        *args,
    ]
    for name, key in (keys or {}).items():
        cmd += ["--api-key", f"{name}:{key}"]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(f"{scheme}://127.0.0.1:{port}", proc, data_dir, log_path, dict(keys or {}), verify)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{server.log()}")
        if isinstance(verify, str) and not Path(verify).exists():
            time.sleep(0.5)
            continue
        try:
            if httpx.get(server.url + "/health", verify=verify, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not come up within {timeout_s} s:\n{server.log()}")
        time.sleep(0.5)


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
