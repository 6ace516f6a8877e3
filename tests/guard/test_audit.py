"""The audit log's hash chain: any one changed byte is named at its record, appends keep the chain valid, days
link to each other, and `r1stack audit verify` says the same from the command line."""

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest

from r1stack.config import Settings
from r1stack.guard import AuditEvent, AuditLog

DAY1 = dt.datetime(2026, 11, 27, 23, 59, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 11, 28, 0, 1, tzinfo=dt.UTC)


def event(i: int, **kw) -> AuditEvent:
    return AuditEvent(
        request_id=f"req-{i}",
        key_id="key-ops",
        model="smollm2-135m-instruct",
        prompt=f"客户13812345678问题{i}",
        output=f"answer {i}",
        kb_sources=["policies/loans.pdf#3"],
        web_queries=["LPR 2026"],
        redactions={"MOBILE": 1},
        watermark=i % 2 == 0,
        **kw,
    )


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path)


def test_records_chain_and_hide_text_by_default(settings):
    log = AuditLog(settings)
    recs = [log.append(event(i), now=DAY2) for i in range(3)]
    assert [r["seq"] for r in recs] == [0, 1, 2]
    assert recs[1]["prev"] == recs[0]["hash"] and recs[2]["prev"] == recs[1]["hash"]
    raw = (settings.audit_dir / "audit-2026-11-28.jsonl").read_text()
    assert "13812345678" not in raw and "prompt_sha256" in raw
    assert recs[0]["key_id"] == "key-ops" and recs[0]["kb_sources"] == ["policies/loans.pdf#3"]
    assert log.verify().ok and log.verify().records == 3


def test_record_fields(settings):
    rec = AuditLog(settings).append(event(0), now=DAY2)
    assert rec["request_id"] == "req-0" and rec["key_id"] == "key-ops"
    assert rec["time"] == "2026-11-28T00:01:00.000+00:00" and rec["model"] == "smollm2-135m-instruct"
    assert rec["kb_sources"] == ["policies/loans.pdf#3"] and rec["web_queries"] == ["LPR 2026"]
    assert rec["redactions"] == {"MOBILE": 1} and rec["watermark"] is True and rec["status"] == "ok"
    assert rec["prompt_sha256"] == hashlib.sha256("客户13812345678问题0".encode()).hexdigest()
    assert rec["output_sha256"] == hashlib.sha256(b"answer 0").hexdigest()
    assert "prompt" not in rec and "output" not in rec


def test_full_text_when_configured(tmp_path):
    log = AuditLog(Settings(data_dir=tmp_path, guard={"audit_full_text": True}))
    rec = log.append(event(0))
    assert rec["prompt"] == "客户13812345678问题0" and "prompt_sha256" not in rec


def test_every_changed_byte_names_its_record(settings):
    log = AuditLog(settings)
    for i in range(4):
        log.append(event(i), now=DAY2)
    path = settings.audit_dir / "audit-2026-11-28.jsonl"
    original = path.read_bytes()
    lines = original.split(b"\n")
    start = len(lines[0]) + 1 + len(lines[1]) + 1  # record 3 (line 3) begins here
    end = start + len(lines[2]) + 1  # its newline included
    for pos in range(start, end):
        data = bytearray(original)
        data[pos] ^= 0x01
        path.write_bytes(bytes(data))
        report = log.verify()
        assert not report.ok and report.bad_line == 3, (pos, report)
    path.write_bytes(original)
    assert log.verify().ok


def test_appending_after_verify_keeps_the_chain(settings):
    AuditLog(settings).append(event(0), now=DAY1)
    assert AuditLog(settings).verify().records == 1
    AuditLog(settings).append(event(1), now=DAY2)  # a new day, a new file, linked to yesterday's last record
    assert AuditLog(settings).verify().ok
    AuditLog(settings).append(event(2), now=DAY2)
    report = AuditLog(settings).verify()
    assert report.ok and report.records == 3 and report.files == 2
    (settings.audit_dir / "audit-2026-11-27.jsonl").unlink()  # a whole day removed
    report = AuditLog(settings).verify()
    assert not report.ok and report.bad_file.name == "audit-2026-11-28.jsonl" and report.bad_line == 1


def test_removed_record_is_found(settings):
    log = AuditLog(settings)
    for i in range(3):
        log.append(event(i), now=DAY2)
    path = settings.audit_dir / "audit-2026-11-28.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    report = log.verify()
    assert report.bad_line == 2 and report.request_id == "req-2"


def test_hmac_key_is_needed_to_verify(tmp_path):
    keyed = Settings(data_dir=tmp_path, guard={"audit_hmac_key": "s3cret"})
    AuditLog(keyed).append(event(0))
    assert AuditLog(keyed).verify().ok
    assert not AuditLog(Settings(data_dir=tmp_path)).verify().ok  # a forger without the key cannot re-chain


def test_concurrent_appends_keep_one_chain(settings):
    log = AuditLog(settings)
    threads = [
        threading.Thread(target=lambda k=k: [log.append(event(k * 10 + j)) for j in range(10)])
        for k in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = log.verify()
    assert report.ok and report.records == 50


def _cli(args, data_dir):
    env = {**os.environ, "R1STACK_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "r1stack.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_verify(settings, tmp_path):
    log = AuditLog(settings)
    for i in range(3):
        log.append(event(i), now=DAY2)
    ok = _cli(["audit", "verify"], tmp_path)
    assert ok.returncode == 0 and "3 record(s)" in ok.stdout
    path = settings.audit_dir / "audit-2026-11-28.jsonl"
    rec = json.loads(path.read_text().splitlines()[1])
    path.write_text(path.read_text().replace(rec["request_id"], "req-X"))
    bad = _cli(["audit", "verify", str(path)], tmp_path)
    assert bad.returncode == 1 and "line 2" in bad.stdout and "req-X" in bad.stdout
    missing = _cli(["audit", "verify", str(tmp_path / "nothing")], tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error:")
