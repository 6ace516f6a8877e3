"""`r1stack kb ...` as a user runs it: a real subprocess, exit codes, one-line errors, per-file messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1stack.config import Settings

CODE = "from r1stack.cli.main import main; main()"


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "R1STACK_DATA_DIR": str(settings.data_dir), "R1STACK_KB__STORE": settings.kb.store}
    return subprocess.run(
        [sys.executable, "-c", CODE, "kb", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_round_trip(settings: Settings, corpus: Path, store: str):
    if store != "chroma":
        pytest.skip("one store is enough to check the command line; the library tests cover both")
    (corpus / "broken.json").write_text("{oops", encoding="utf-8")
    script = [
        ("create", "cli"),
        ("ingest", "cli", str(corpus), "--groups", "staff"),
        ("search", "cli", "不良贷款包括哪些", "--top-k", "1", "--json"),
        ("verify", "cli"),
        ("delete", "cli", "corpus/banking.md"),
        ("list", "cli"),
    ]
    # One process for the happy path keeps the test quick: the same Typer app, invoked per command.
    runner = (
        "import sys, json\n"
        "from r1stack.cli.main import app\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        app(['kb', *argv], standalone_mode=False)\n"
        "    except SystemExit as e:\n"
        "        print(f'exit {e.code}')\n"
        "    print('=====')\n"
    )
    env = {**os.environ, "R1STACK_DATA_DIR": str(settings.data_dir)}
    out = subprocess.run(
        [sys.executable, "-c", runner, json.dumps(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    parts = out.stdout.split("=====\n")
    assert "created cli" in parts[0]
    assert "4 added" in parts[1] and "1 failed" in parts[1] and "exit 1" in parts[1]
    assert "broken.json: not valid JSON" in out.stderr
    hits = json.loads(parts[2])
    assert hits[0]["document"] == "corpus/banking.md" and "次级" in hits[0]["text"]
    assert parts[3].startswith("ok:")
    assert "deleted corpus/banking.md" in parts[4]
    assert "corpus/hospital.md" in parts[5] and "corpus/banking.md" not in parts[5] and "staff" in parts[5]

    # Bad input: exit code 2 and one line that says what to do.
    missing = _run(settings, "search", "nope", "x")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: knowledge base 'nope' does not exist; create it with `r1stack kb create nope`"
    ]
