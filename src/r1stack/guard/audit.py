"""The audit log: one append-only JSONL file per UTC day under the audit directory, each record carrying the
hash of the one before it (across days too), so that changing, dropping or reordering a record breaks the chain
at that record. Prompts and outputs are kept as SHA-256 digests unless full text is configured."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
_PREFIX, _SUFFIX = "audit-", ".jsonl"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical(record: dict[str, Any]) -> str:
    """The one serialisation of a record: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class AuditEvent:
    """What the server knows about one request. Never the API key itself: only its id."""

    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    key_id: str | None = None
    model: str = ""
    prompt: str = ""
    output: str = ""
    kb_sources: list[str] = field(default_factory=list)
    web_queries: list[str] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)  # entity -> count, prompts and outputs together
    watermark: bool = False
    status: str = "ok"  # ok | blocked | error


def _day_file(directory: Path, day: dt.date) -> Path:
    return directory / f"{_PREFIX}{day.isoformat()}{_SUFFIX}"


def log_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(f"{_PREFIX}*{_SUFFIX}") if p.is_file())


def _last_line(path: Path) -> str | None:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        chunk, at = b"", end
        while at > 0:
            step = min(4096, at)
            at -= step
            fh.seek(at)
            chunk = fh.read(step) + chunk
            lines = chunk.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or at == 0:
                last = lines[-1]
                return last.decode() if last else None
    return None


class AuditLog:
    """`AuditLog(settings).append(AuditEvent(...))` from any thread or process: a file lock keeps the chain whole."""

    def __init__(self, settings: Any):
        g = getattr(settings, "guard", None)
        self.directory = Path(settings.audit_dir)
        self.full_text = bool(g and g.audit_full_text)
        key = g.audit_hmac_key if g else None
        self._key = key.encode() if key else None
        self._lock = threading.Lock()

    def digest(self, body: dict[str, Any]) -> str:
        data = canonical(body).encode()
        if self._key:
            return hmac.new(self._key, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    def _previous(self, today: Path) -> tuple[str, int]:
        """Hash and sequence number of the last record written, today's file first, else the latest day before."""
        for path in [today] + [p for p in reversed(log_files(self.directory)) if p.name < today.name]:
            if path.exists():
                line = _last_line(path)
                if line:
                    rec = json.loads(line)
                    return rec["hash"], rec["seq"]
        return GENESIS, -1

    def append(self, event: AuditEvent, now: dt.datetime | None = None) -> dict[str, Any]:
        now = now or dt.datetime.now(dt.UTC)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = _day_file(self.directory, now.date())
        body: dict[str, Any] = {
            "time": now.isoformat(timespec="milliseconds"),
            "request_id": event.request_id,
            "key_id": event.key_id,
            "model": event.model,
            "kb_sources": list(event.kb_sources),
            "web_queries": list(event.web_queries),
            "redactions": dict(event.redactions),
            "watermark": event.watermark,
            "status": event.status,
        }
        if self.full_text:
            body["prompt"], body["output"] = event.prompt, event.output
        else:
            body["prompt_sha256"], body["output_sha256"] = (
                sha256_text(event.prompt),
                sha256_text(event.output),
            )
        with self._lock, path.open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # the previous hash must be read and extended atomically
            try:
                prev, seq = self._previous(path)
                body["prev"], body["seq"] = prev, seq + 1
                record = {**body, "hash": self.digest(body)}
                fh.write(canonical(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return record

    def verify(self, target: Path | None = None) -> VerifyReport:
        return verify(target or self.directory, self)


@dataclass
class VerifyReport:
    records: int
    files: int
    bad_file: Path | None = None
    bad_line: int | None = None  # 1-based line in bad_file
    reason: str = ""
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_file is None


def verify(target: Path, log: AuditLog | Any) -> VerifyReport:
    """Walk the chain over a directory of daily files (or one file) and name the first record that does not hold."""
    target = Path(target)
    files = log_files(target) if target.is_dir() else [target]
    prev: str | None = GENESIS if target.is_dir() else None  # a lone file's first link points outside it
    seq: int | None = None
    report = VerifyReport(0, len(files))
    for path in files:
        for lineno, problem, rec in _check_file(path, log):
            if problem is None:
                if prev is not None and rec["prev"] != prev:
                    problem = "its prev does not match the hash of the record before it (a record was changed, removed or reordered)"
                elif seq is not None and rec["seq"] != seq + 1:
                    problem = f"sequence number {rec['seq']} does not follow {seq}"
            if problem is not None:
                report.bad_file, report.bad_line, report.reason = path, lineno, problem
                report.request_id = rec.get("request_id") if isinstance(rec, dict) else None
                return report
            prev, seq = rec["hash"], rec["seq"]
            report.records += 1
    return report


def _check_file(path: Path, log: Any) -> Iterable[tuple[int, str | None, Any]]:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8")
            rec = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            yield i, "not a valid JSON line", None
            return
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("hash"), str)
            or not isinstance(rec.get("seq"), int)
        ):
            yield i, "not an audit record", rec
            return
        body = {k: v for k, v in rec.items() if k != "hash"}
        if text != canonical(rec):
            yield i, "not in canonical form (edited by hand)", rec
            return
        if not hmac.compare_digest(rec["hash"], log.digest(body)):
            yield i, "its hash does not match its content (the record was changed)", rec
            return
        yield i, None, rec
    if raw and not raw.endswith(b"\n"):
        yield len(lines), "the last record does not end in a newline (the file was cut)", None
