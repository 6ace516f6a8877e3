"""The clinical flow as the CLI runs it (asyncio.run over the offline backend): triage constrained to the label
sets, then a diagnosis note with its safety notice, and both stages in the audit log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from r1stack.apps.clinical.assistant import DEPARTMENTS, SAFETY_NOTICE, URGENCY
from r1stack.apps.clinical.flow import diagnose, triage
from r1stack.config import Settings
from r1stack.guard.audit import AuditLog
from r1stack.guard.policy import PiiFilter

SYMPTOMS = "Wheezing and shortness of breath at night for a week; patient phone 13812345678."


def test_triage_and_diagnosis_on_the_offline_backend(backend, tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    audit = AuditLog(settings)
    result, red = asyncio.run(triage(backend, SYMPTOMS, PiiFilter("redact"), audit, seed=4))
    assert result.department in DEPARTMENTS and result.urgency in URGENCY
    assert sum(red.values()) >= 1  # the phone number
    note = asyncio.run(
        diagnose(
            backend, backend, settings, SYMPTOMS, [], PiiFilter("redact"), ["CT of CHEST"], audit, seed=4
        )
    )
    assert note.triage.department in DEPARTMENTS and note.safety_notice == SAFETY_NOTICE
    assert isinstance(note.differential, list) and note.citations == [] and note.imaging == ["CT of CHEST"]
    logged = "\n".join(p.read_text() for p in settings.audit_dir.glob("*.jsonl"))
    assert logged.count("clinical-triage") == 2 and "clinical-diagnosis" in logged
    assert "13812345678" not in logged
