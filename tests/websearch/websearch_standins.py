"""Real loopback servers for the websearch tests: stand-ins for SearXNG, Bing, Bocha and web pages; the proxy
as a real subprocess; certificates made on the spot."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# ---------------------------------------------------------------- stand-in HTTP servers


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]
Route = Callable[[Seen, "StandIn"], Reply | None]


@dataclass
class StandIn:
    """A real HTTP server on 127.0.0.1 whose routes are plain functions; it records every request."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    tls: ssl.SSLContext | None = None

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def start(self) -> StandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output quiet
                pass

            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                standin.seen.append(seen)
                route = standin.routes.get(parts.path)
                reply = (
                    route(seen, standin) if route else (404, {"content-type": "text/plain"}, b"no such page")
                )
                if reply is None:  # the route wrote the response itself
                    return
                status, headers, body = reply
                self.send_response(status)
                unsized = (
                    headers.pop("x-no-length", None) is not None
                )  # body runs until the connection closes
                for key, value in headers.items():
                    self.send_header(key, value)
                if unsized:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                elif "content-length" not in {k.lower() for k in headers}:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        # A short poll interval keeps shutdown() quick at the end of every test.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def json_reply(data: object, status: int = 200) -> Reply:
    return status, {"content-type": "application/json"}, json.dumps(data, ensure_ascii=False).encode()


def html_reply(html: str, charset: str = "utf-8") -> Reply:
    return 200, {"content-type": f"text/html; charset={charset}"}, html.encode(charset)


def redirect(location: str, status: int = 302) -> Reply:
    return status, {"location": location}, b""


def searxng_results(seen: Seen, standin: StandIn, count: int = 4) -> dict:
    """SearXNG-shaped JSON whose hits depend on the query, pointing at pages of this very server."""
    q = seen.query.get("q", [""])[0]
    results = [
        {
            "url": f"{standin.base}/doc/{n}",
            "title": f"{q} — result {n}",
            "content": f"snippet {n} about {q} (language={seen.query.get('language', [''])[0]})",
            "engine": "standin",
            "engines": ["standin"],
            "score": 1.0 / n,
            "category": "general",
            "publishedDate": None,
        }
        for n in range(1, count + 1)
    ]
    return {"query": q, "number_of_results": len(results), "results": results, "answers": [],
            "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": []}  # fmt: skip


def searxng_route(seen: Seen, standin: StandIn) -> Reply | None:
    """/search: behaves like SearXNG, except that some queries ask for misbehaviour."""
    q = seen.query.get("q", [""])[0]
    if seen.query.get("format") != ["json"]:
        return 403, {"content-type": "text/html"}, b"<h1>403 Forbidden</h1>"  # what SearXNG says too
    if q.startswith("sleep"):
        time.sleep(15)
        return json_reply(searxng_results(seen, standin))
    if q.startswith("garbage"):
        return html_reply("<html>definitely not json</html>")
    if q.startswith("down"):
        return json_reply({"error": "upstream down"}, status=503)
    return json_reply(searxng_results(seen, standin))


# ---------------------------------------------------------------- the proxy as a real process


@dataclass
class ProxyProcess:
    address: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def proxy_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1STACK_")}
    env["R1STACK_DATA_DIR"] = str(tmp_path / "data")
    env["R1STACK_CONFIG"] = str(tmp_path / "no-such-r1stack.toml")
    return env


def r1stack_command(*args: str) -> list[str]:
    """The installed `r1stack` console script of this virtualenv."""
    return [str(Path(sys.executable).with_name("r1stack")), *args]


@contextmanager
def running_proxy(tmp_path: Path, *args: str) -> Iterator[ProxyProcess]:
    """`r1stack search-proxy serve --listen 127.0.0.1:0 ARGS` until the block ends."""
    log = tmp_path / f"proxy-{time.monotonic_ns()}.log"
    command = r1stack_command("search-proxy", "serve", "--listen", "127.0.0.1:0", *args)
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=proxy_env(tmp_path)
        )
    try:
        line = process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            process.kill()
            raise AssertionError(f"proxy did not start: {line!r}\n{log.read_text()}")
        yield ProxyProcess(match.group(1), process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- certificates


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate signed by another CA
    stranger_key: Path


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key=None, cert=None) -> Path:
    from cryptography.hazmat.primitives import serialization

    if key is not None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    else:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_ca(name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),  # fmt: skip
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(ca_key, ca_cert, name: str, dns: list[str] = (), ips: list[str] = (), client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _key()
    now = dt.datetime.now(dt.UTC)
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())
