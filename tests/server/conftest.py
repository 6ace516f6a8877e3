"""Real `r1stack serve` processes shared by the server tests (per session: an open one with API keys, a locked
one with TLS, an allowlist, a tiny queue and a short timeout, and one serving a tiny R1-style model)."""

from __future__ import annotations

import pytest
from serverproc import KEYS, Server, start_server, stop_server
from tinyr1 import TINY_R1_KEY, build_tiny_r1


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    """Open server: two API keys, everything else default."""
    s = start_server(tmp_path_factory.mktemp("server"), keys=KEYS)
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def locked_server(tmp_path_factory) -> Server:
    """TLS 1.3 (self-signed), keys, allowlist 127.0.0.1/32 only, one running + zero queued sequences, a short
    per-request timeout."""
    tmp = tmp_path_factory.mktemp("locked")
    cert = tmp / "data" / "tls" / "cert.pem"
    s = start_server(
        tmp,
        "--self-signed",
        "--host",
        "127.0.0.1",
        "--allow-ip",
        "127.0.0.1/32",
        "--max-num-seqs",
        "1",
        "--max-waiting",
        "0",
        "--request-timeout",
        "2",
        scheme="https",
        keys=KEYS,
        verify=str(cert),
    )
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def tiny_r1_dir(tmp_path_factory):
    return build_tiny_r1(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_r1(tiny_r1_dir, tmp_path_factory) -> Server:
    """The tiny R1-style model, reasoning parser left at auto; its one key comes from R1STACK_API_KEYS."""
    s = start_server(
        tmp_path_factory.mktemp("tiny-r1"), model=tiny_r1_dir, env={"R1STACK_API_KEYS": TINY_R1_KEY}
    )
    s.keys = {"env": TINY_R1_KEY}
    yield s
    stop_server(s)
