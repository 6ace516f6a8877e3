"""A real `r1stack serve` with the console router mounted (the server mounts it from OPTIONAL_ROUTERS; until that
line lands, the launcher adds it), and a headless Debian chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverproc import MODEL_NAME, Server, free_port, installed_model  # noqa: E402

KEYS = {"alice": "alice-console-key-0001", "bob": "bob-console-key-00002"}
ROUTER = "r1stack.console.routes"
# The server mounts the console itself (server.app.CONSOLE_ROUTER, left out with --no-ui); on a server that
# predates that, the launcher lists the router among the optional ones.
LAUNCH = (
    "import r1stack.server.app as a; "
    f"known = a.OPTIONAL_ROUTERS + (getattr(a, 'CONSOLE_ROUTER', None),); "
    f"a.OPTIONAL_ROUTERS += () if {ROUTER!r} in known else ({ROUTER!r},); "
    "from r1stack.cli.main import main; main()"
)
CHROMIUM = os.environ.get("R1STACK_CHROMIUM", "/usr/bin/chromium")


def start(
    tmp: Path, *args: str, port: int | None = None, timeout_s: float = 300, env: dict[str, str] | None = None
) -> Server:
    """`r1stack serve` with the console's two keys; `env` adds R1STACK_* settings (e.g. the search proxy)."""
    port = port or free_port()
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"server-{port}-{time.monotonic_ns()}.log"
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    env.update(
        R1STACK_DATA_DIR=str(data_dir),
        R1STACK_CONFIG=str(tmp / "no-r1stack.toml"),
        R1STACK_KB__KEY_GROUPS='{"alice": ["*"]}',  # alice administers; bob only reads
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    env.update(extra)
    cmd = [sys.executable, "-c", LAUNCH, "serve", "--model", str(installed_model())]
    cmd += ["--served-model-name", MODEL_NAME, "--port", str(port), "--dtype", "float32"]
    cmd += ["--kv-cache-bytes", str(192 * 2**20), "--max-model-len", "2048", *args]
    for name, key in KEYS.items():
        cmd += ["--api-key", f"{name}:{key}"]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", proc, data_dir, log_path, dict(KEYS))
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not come up within {timeout_s} s:\n{server.log()}")
        time.sleep(0.3)


def require_browser() -> str:
    """The chromium binary; missing is a skip locally and a failure under CI=true."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    missing = None
    if not path:
        missing = "Debian's chromium is not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            missing = "the playwright Python package is not installed (pip install playwright)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    return path


def launch_browser(playwright, user_data: Path):
    return playwright.chromium.launch_persistent_context(
        str(user_data),
        executable_path=require_browser(),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-default-apps",
        ],
        viewport={"width": 1280, "height": 860},
        locale="en-US",
    )
