"""The `r1stack app` command group without a model: DICOM intake, the synthetic set, and bad input as one line."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from dicom_factory import PATIENT, make_series

SCRIPT = (
    "from r1stack.cli import main as m, apps\n"
    # The lead registers the group in cli/main.py; until then this adds it the same way.
    "if 'app' not in [g.name for g in m.app.registered_groups]: apps.register(m.app)\n"
    "m.main()\n"
)


def run(*args: str, data_dir: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {
        "R1STACK_DATA_DIR": str(data_dir),
        "PATH": "/usr/bin:/bin",
        "R1STACK_CONFIG": str(data_dir / "none"),
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_dicom_command_writes_deidentified_copies(tmp_path: Path):
    make_series(tmp_path / "in", n=2)
    r = run(
        "app", "clinical", "dicom", str(tmp_path / "in"), "--out", str(tmp_path / "out"), data_dir=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "CT of CHEST" in r.stdout and PATIENT["PatientName"] not in r.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "anon-0.dcm",
        "anon-0.png",
        "anon-1.dcm",
        "anon-1.png",
        "summary.json",
    ]


def test_synth_writes_a_labelled_set(tmp_path: Path):
    r = run("app", "risk", "synth", "300", str(tmp_path / "t.csv"), "--fraud-rate", "0.1", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    with (tmp_path / "t.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    share = sum(int(x["label"]) for x in rows) / len(rows)
    assert len(rows) >= 300 and 0.05 < share < 0.4  # bursts make fraud rows outnumber fraud events


def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path):
    r = run("app", "risk", "score", str(tmp_path / "missing.csv"), data_dir=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    (tmp_path / "t.xlsx").write_text("x")
    r = run("app", "risk", "score", str(tmp_path / "t.xlsx"), data_dir=tmp_path)
    assert r.returncode == 2 and "unknown file type" in r.stderr
    r = run("app", "clinical", "dicom", str(tmp_path / "nowhere"), data_dir=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_the_triage_model_comes_from_the_settings_unless_named(tmp_path: Path):
    # Neither model exists, so the run stops at loading it: which name it tried shows which one was chosen.
    r = run(
        "app",
        "clinical",
        "triage",
        "chest pain",
        data_dir=tmp_path,
        R1STACK_APPS__TRIAGE_MODEL="no-such-triage",
    )
    assert r.returncode == 2 and "no-such-triage" in r.stderr, r.stderr
    r = run(
        "app",
        "clinical",
        "triage",
        "chest pain",
        "--model",
        "no-such-other",
        data_dir=tmp_path,
        R1STACK_APPS__TRIAGE_MODEL="no-such-triage",
    )
    assert r.returncode == 2 and "no-such-other" in r.stderr and "no-such-triage" not in r.stderr
