"""The applications through a real `r1stack serve` process on a loopback port: the clinical flow end to end
(DICOM upload, triage, grounded diagnosis with citations) and risk scoring with a bad row in the batch."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from dicom_factory import PATIENT, make_series

from r1stack.apps.clinical.assistant import DEPARTMENTS, SAFETY_NOTICE, URGENCY
from r1stack.apps.risk.synth import generate

GUIDE = """# Community-acquired pneumonia

Community-acquired pneumonia presents with fever, productive cough, pleuritic chest pain and dyspnoea.
Chest CT or radiograph shows consolidation. First-line treatment for outpatients is amoxicillin.

# Pulmonary embolism

Pulmonary embolism presents with sudden dyspnoea, pleuritic chest pain and tachycardia. CT pulmonary
angiography confirms the diagnosis; a D-dimer test helps to exclude it when the probability is low.
"""


@pytest.fixture(scope="module")
def server(native):
    return native.url, native.data_dir


def test_clinical_flow_end_to_end(server, tmp_path: Path):
    url, data_dir = server
    http = httpx.Client(base_url=url, timeout=600)
    assert http.post("/v1/kb", json={"name": "medlit"}).status_code == 200
    up = http.post("/v1/kb/medlit/documents", files={"files": ("respiratory.md", GUIDE.encode())})
    assert up.status_code == 200 and up.json()["data"][0]["status"] != "failed", up.text

    ids = make_series(tmp_path / "dicom", n=2)
    files = [("files", (p.name, p.read_bytes())) for p in sorted((tmp_path / "dicom").iterdir())]
    files.append(("files", ("notes.txt", b"not dicom")))
    intake = http.post("/v1/apps/clinical/dicom", files=files)
    assert intake.status_code == 200, intake.text
    body = intake.json()
    assert len(body["data"]) == 2 and len(body["errors"]) == 1
    for secret in (PATIENT["PatientName"], PATIENT["PatientID"], ids["study"], "Zhang"):
        assert secret not in intake.text
    kept = list((data_dir / "apps").rglob("*"))
    assert not any(
        "inbox" in p.parent.name and p.is_file() for p in kept
    )  # uploads with identifiers are gone
    imaging = [d["summary"] for d in body["data"]]

    symptoms = "Fever, productive cough and pleuritic chest pain for three days; patient phone 13812345678."
    triage = http.post("/v1/apps/clinical/triage", json={"symptoms": symptoms, "seed": 1})
    assert triage.status_code == 200, triage.text
    t = triage.json()
    assert t["department"] in DEPARTMENTS and t["urgency"] in URGENCY

    note = http.post(
        "/v1/apps/clinical/diagnose",
        json={"symptoms": symptoms, "kb": ["medlit"], "imaging": imaging, "seed": 2},
    )
    assert note.status_code == 200, note.text
    n = note.json()
    assert n["triage"]["department"] in DEPARTMENTS
    assert isinstance(n["differential"], list) and n["safety_notice"] == SAFETY_NOTICE
    assert n["sources"] and all(s["document"] == "respiratory.md" for s in n["sources"])
    assert all(1 <= c <= 3 for c in n["citations"])
    assert n["imaging"] and "CT of CHEST" in n["imaging"][0]
    assert "13812345678" not in note.text

    audit = "\n".join(p.read_text() for p in (data_dir / "audit").glob("*.jsonl"))
    assert "clinical-triage" in audit and "clinical-diagnosis" in audit and "medlit/respiratory.md" in audit


def test_risk_score_endpoint(server):
    url, _ = server
    rows = generate(3, seed=4)[:3]
    rows.append({**rows[0], "transaction_id": "neg", "amount": -1})
    r = httpx.post(url + "/v1/apps/risk/score", json={"transactions": rows, "seed": 3}, timeout=600)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["transaction_id"] for x in body["data"]] == [x["transaction_id"] for x in rows[:3]]
    assert all(x["risk_level"] in ("low", "medium", "high", "critical") for x in body["data"])
    assert body["errors"][0]["row"] == 4 and "amount" in body["errors"][0]["message"]
    bad = httpx.post(url + "/v1/apps/risk/score", json={"transactions": []}, timeout=60)
    assert bad.status_code == 400 and "error" in bad.json()
