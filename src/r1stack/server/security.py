"""Who may talk to the server: API keys (stored as SHA-256 digests, compared in constant time) and an IP
allowlist of CIDRs, enforced by one ASGI middleware in front of every route."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

from r1stack.errors import UserError
from r1stack.server.errors import error_body

# Keys guard the API; /health and /metrics stay open to the allowlist so probes and Prometheus need no key.
PROTECTED_PREFIXES = ("/v1/", "/tokenize", "/detokenize")
_NAMED = re.compile(r"^([A-Za-z0-9_.\-]{1,64}):(\S+)$")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    digest: bytes


class ApiKeyring:
    """Keys as `KEY` or `NAME:KEY`; the name (or `key-` + a digest prefix) is the key id logs and policies see."""

    def __init__(self, entries: list[str]):
        self._keys: list[StoredKey] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            m = _NAMED.match(entry)
            name, key = (m.group(1), m.group(2)) if m else (None, entry)
            if len(key) < 8:
                raise UserError(f"API key {name or '(unnamed)'} is {len(key)} characters; use at least 8")
            digest = _digest(key)
            self._keys.append(StoredKey(name or "key-" + digest.hex()[:12], digest))
        ids = [k.key_id for k in self._keys]
        if len(ids) != len(set(ids)):
            raise UserError(
                "two API keys share a name (or the same key is given twice); names must be unique"
            )

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, presented: str) -> str | None:
        """The key id for `presented`, or None. Every stored digest is compared, so timing tells nothing."""
        digest = _digest(presented)
        found = None
        for k in self._keys:
            if hmac.compare_digest(digest, k.digest):
                found = k.key_id
        return found


def read_key_file(path: Path) -> list[str]:
    """One key per line (`KEY` or `NAME:KEY`); blank lines and `#` comments skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise UserError(f"cannot read API key file {path}: {e.strerror}; give a readable file") from e
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


class IPAllowlist:
    def __init__(self, cidrs: list[str]):
        self.networks = []
        for c in cidrs:
            try:
                self.networks.append(ipaddress.ip_network(c.strip(), strict=False))
            except ValueError as e:
                raise UserError(f"--allow-ip {c!r} is not a CIDR (e.g. 10.0.0.0/8 or 127.0.0.1/32)") from e

    @property
    def enabled(self) -> bool:
        return bool(self.networks)

    def allows(self, host: str | None) -> bool:
        if not self.networks:
            return True
        if not host:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)


def _presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            v = value.decode("latin-1").strip()
            if v.lower().startswith("bearer "):
                return v[7:].strip()
            return v
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
    return None


class SecurityMiddleware:
    """Pure ASGI (streaming responses pass through untouched). Sets scope state `key_id` (None = no keys)."""

    def __init__(self, app, keyring: ApiKeyring, allowlist: IPAllowlist):
        self.app = app
        self.keyring = keyring
        self.allowlist = allowlist

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        if not self.allowlist.allows(client[0] if client else None):
            return await _reject(
                send, 403, "permission_error", "your address is not in this server's allowlist"
            )
        key_id = None
        if self.keyring.enabled and scope["path"].startswith(PROTECTED_PREFIXES):
            presented = _presented_key(scope.get("headers", []))
            if not presented:
                return await _reject(
                    send,
                    401,
                    "authentication_error",
                    "missing API key: send it as 'Authorization: Bearer <key>'",
                )
            key_id = self.keyring.authenticate(presented)
            if key_id is None:
                return await _reject(send, 401, "authentication_error", "invalid API key")
        scope.setdefault("state", {})["key_id"] = key_id
        return await self.app(scope, receive, send)


async def _reject(send, status: int, etype: str, message: str) -> None:
    body = json.dumps(error_body(message, etype, None, None)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
