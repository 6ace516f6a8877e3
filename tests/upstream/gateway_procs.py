"""Real `r1stack serve` processes for the gateway tests: the gateway itself (--upstream ...) and, as a real
upstream, a native server with the default model, each on its own loopback port and data directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from r1stack.config import DEFAULT_MODEL, Settings
from r1stack.engine import store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    url: str  # base URL without /v1
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def openai(self, key: str = "no-key"):
        import openai

        return openai.OpenAI(base_url=self.api, api_key=key, max_retries=0, timeout=120)

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(
    tmp: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 300, ready: int = 200
) -> Proc:
    port = free_port()
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = tmp / "server.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    full_env.update(
        R1STACK_DATA_DIR=str(data_dir),
        R1STACK_CONFIG=str(tmp / "no-r1stack.toml"),
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )
    full_env.update(env or {})
    cmd = [
        sys.executable,
        "-c",
        "from r1stack.cli.main import main; main()",
        "serve",
        "--port",
        str(port),
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=full_env)
    p = Proc(f"http://127.0.0.1:{port}", proc, data_dir, log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{p.log()}")
        try:
            if httpx.get(p.url + "/health", timeout=2).status_code == ready:
                return p
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not come up within {timeout_s} s:\n{p.log()}")
        time.sleep(0.3)


def start_native(tmp: Path, *args: str) -> Proc:
    """A real upstream: `r1stack serve` on the installed default model."""
    data_dir = Settings().data_dir
    if store.installed_path(DEFAULT_MODEL, data_dir) is None:
        pytest.fail(f"{DEFAULT_MODEL} is not installed under {data_dir}; run `r1stack pull {DEFAULT_MODEL}`")
    model = store.resolve(DEFAULT_MODEL, data_dir).path
    return start(
        tmp,
        "--model",
        str(model),
        "--served-model-name",
        DEFAULT_MODEL,
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--kv-cache-bytes",
        str(96 * 2**20),
        *args,
    )


# Short timers so ejection and return happen within a test; the defaults are for production.
FAST = {
    "R1STACK_SERVER__UPSTREAM_READ_TIMEOUT_S": "2",
    "R1STACK_SERVER__UPSTREAM_CONNECT_TIMEOUT_S": "2",
    "R1STACK_SERVER__UPSTREAM_HEALTH_INTERVAL_S": "0.3",
    "R1STACK_SERVER__UPSTREAM_COOLDOWN_S": "0.5",
    "R1STACK_SERVER__UPSTREAM_MAX_COOLDOWN_S": "1",
}


def start_gateway(
    tmp: Path, upstreams: list[str], *args: str, env: dict[str, str] | None = None, ready: int = 200
) -> Proc:
    ups = [a for u in upstreams for a in ("--upstream", u)]
    return start(tmp, *ups, *args, env={**FAST, **(env or {})}, ready=ready)


# A forced tool call through a gateway: the request both gateway suites send (native upstream and vLLM).
FORCED_WEATHER_CALL = dict(
    model="smol",
    messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    tools=[
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The current weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ],
    tool_choice={"type": "function", "function": {"name": "get_weather"}},
    max_tokens=48,
    temperature=0,
)
