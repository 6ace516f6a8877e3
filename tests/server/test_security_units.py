"""Key ring, allowlist and TLS helpers on their own, and the CLI's one-line errors for bad flags."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from r1stack.errors import UserError
from r1stack.server.admission import Admission
from r1stack.server.errors import APIError
from r1stack.server.security import ApiKeyring, IPAllowlist, read_key_file
from r1stack.server.tls import check_cert_pair, make_self_signed


def test_keyring_names_and_hashes():
    ring = ApiKeyring(["ops:ops-key-123456", "plain-key-abcdef", ""])
    assert len(ring) == 2
    assert ring.authenticate("ops-key-123456") == "ops"
    anonymous = ring.authenticate("plain-key-abcdef")
    assert anonymous.startswith("key-") and "plain" not in anonymous
    assert ring.authenticate("ops-key-12345") is None
    assert ring.authenticate("") is None
    assert all(len(k.digest) == 32 for k in ring._keys)  # only digests are kept
    assert "ops-key-123456" not in repr(ring.__dict__)


def test_keyring_refuses_short_and_duplicate_keys():
    with pytest.raises(UserError, match="at least 8"):
        ApiKeyring(["short"])
    with pytest.raises(UserError, match="unique"):
        ApiKeyring(["a:key-one-1234", "a:key-two-1234"])


def test_key_file(tmp_path):
    f = tmp_path / "keys"
    f.write_text("# team keys\nalice:alice-key-0001\n\nbob-key-000002\n")
    assert read_key_file(f) == ["alice:alice-key-0001", "bob-key-000002"]
    with pytest.raises(UserError, match="cannot read"):
        read_key_file(tmp_path / "missing")


def test_allowlist():
    allow = IPAllowlist(["10.0.0.0/8", "::1/128", "192.168.1.7"])
    assert allow.allows("10.2.3.4") and allow.allows("::1") and allow.allows("192.168.1.7")
    assert allow.allows("::ffff:10.9.9.9")  # IPv4-mapped IPv6 is the IPv4 address
    assert not allow.allows("11.0.0.1") and not allow.allows("192.168.1.8")
    assert not allow.allows(None) and not allow.allows("not-an-ip")
    assert IPAllowlist([]).allows("8.8.8.8")
    with pytest.raises(UserError, match="not a CIDR"):
        IPAllowlist(["10.0.0.0/33"])


def test_admission_bounds_in_flight_sequences():
    a = Admission(max_running=2, max_waiting=1)
    s1, s2 = a.admit(2), a.admit(1)
    with pytest.raises(APIError) as e:
        a.admit(1)
    assert e.value.status_code == 429 and e.value.headers["Retry-After"] == "1"
    s1.release()
    s1.release()  # twice is once
    assert a.in_flight == 1
    s2.release()
    assert a.admit(16).release() is None  # an idle server takes any one request


def test_self_signed_certificate_is_made_once_and_reused(tmp_path):
    cert, key = make_self_signed(tmp_path, ["127.0.0.1"])
    first = cert.read_bytes()
    check_cert_pair(cert, key)
    assert make_self_signed(tmp_path, ["127.0.0.1"])[0].read_bytes() == first
    assert make_self_signed(tmp_path, ["10.1.2.3"])[0].read_bytes() != first  # new host: new certificate
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    ctx = ssl.create_default_context(cafile=str(cert))  # usable as its own CA
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_mismatched_tls_files(tmp_path):
    cert, key = make_self_signed(tmp_path / "a", ["127.0.0.1"])
    other_cert, _ = make_self_signed(tmp_path / "b", ["10.0.0.1"])
    with pytest.raises(UserError, match="both"):
        check_cert_pair(cert, None)
    with pytest.raises(UserError, match="match"):
        check_cert_pair(other_cert, key)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"quantization": "int3"}, "unknown quantization 'int3'"),
        ({"reasoning_parser": "qwen3"}, "--reasoning-parser 'qwen3'"),
        ({"allow_ip": ["10.0.0.0/40"]}, "not a CIDR"),
        ({"ssl_certfile": Path("/nonexistent.pem")}, "--ssl-keyfile"),
        ({"api_key": ["short"]}, "at least 8"),
        ({"port": 70000}, "at most 65535"),
        ({"model": "/nonexistent/model.gguf"}, "unknown model"),
    ],
)
def test_serve_refuses_bad_flags_before_loading_anything(tmp_path, monkeypatch, kwargs, message):
    from r1stack.cli.serve import serve
    from r1stack.config import get_settings

    monkeypatch.setenv("R1STACK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("R1STACK_CONFIG", str(tmp_path / "none.toml"))
    get_settings.cache_clear()
    try:
        with pytest.raises(UserError) as e:
            serve(**kwargs)
        assert message in e.value.message
    finally:
        get_settings.cache_clear()


def test_cli_says_what_is_wrong_in_one_line(tmp_path):
    env = {
        "R1STACK_DATA_DIR": str(tmp_path),
        "R1STACK_CONFIG": str(tmp_path / "none.toml"),
        "PATH": "/usr/bin",
    }
    cmd = [
        sys.executable,
        "-c",
        "from r1stack.cli.main import main; main()",
        "serve",
        "--quantization",
        "int3",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: unknown quantization 'int3'; use one of none, int8, int4, awq, gguf, fp8"
    ]
