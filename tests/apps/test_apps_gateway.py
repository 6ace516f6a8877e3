"""The applications through a gateway (`r1stack serve --upstream ...`, a real process): the schema travels
upstream, the gateway validates every answer, asks once more when one does not validate, and otherwise says so
with a 502. First against a scripted stand-in upstream (so each path is forced), then against a real
`r1stack serve` upstream with the default model."""

from __future__ import annotations

import json

import httpx
import pytest
from gateway_procs import start_gateway
from standin_upstream import StandIn

from r1stack.apps.backend import response_format
from r1stack.apps.clinical.assistant import DEPARTMENTS, URGENCY
from r1stack.apps.risk.answer import RISK_SCHEMA
from r1stack.apps.risk.synth import generate
from r1stack.engine.constrained import schema_error

VALID = '{"risk_level": "high", "score": 81, "reasons": ["new device", "night-time"]}'
INVALID = "The risk is high, about 80 out of 100."  # what a model says when nothing constrains it


class Scripted(StandIn):
    """A stand-in that answers from a script, one answer per generation request; the last one repeats."""

    def __init__(self) -> None:
        super().__init__("scripted")
        self.script: list[str] = [VALID]

    def pieces(self) -> list[tuple[str, str]]:
        with self._lock:
            self.answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return super().pieces()


@pytest.fixture(scope="module")
def standin():
    s = Scripted()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(standin, tmp_path_factory):
    g = start_gateway(tmp_path_factory.mktemp("apps-gw-standin"), [standin.url], "--served-model-name", "gw")
    yield g
    g.stop()


def _score(url: str, n: int = 1, seed: int = 5) -> httpx.Response:
    rows = generate(n, seed=seed)[:n]
    return httpx.post(url + "/v1/apps/risk/score", json={"transactions": rows, "seed": 1}, timeout=600)


def test_an_answer_that_does_not_validate_is_asked_for_once_more(standin, gw):
    standin.script = [INVALID, VALID]
    before = len(standin.requests)
    r = _score(gw.url)
    assert r.status_code == 200, r.text
    row = r.json()["data"][0]
    assert (row["risk_level"], row["score"], row["reasons"]) == ("high", 81, ["new device", "night-time"])
    sent = standin.requests[before:]
    assert len(sent) == 2
    # The retry is a fresh draw, not the same seeded one again.
    assert sent[0]["seed"] != sent[1]["seed"]
    # The schema travels in the prompt too, for an upstream that does not enforce it.
    system = sent[0]["messages"][0]
    assert (
        system["role"] == "system"
        and json.dumps(response_format(RISK_SCHEMA)["json_schema"]["schema"]) in (system["content"])
    )


def test_two_answers_that_do_not_validate_give_a_clear_502(standin, gw):
    standin.script = [INVALID]
    before = len(standin.requests)
    r = _score(gw.url)
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert "did not match the output schema in 2 tries" in err["message"] and "not JSON" in err["message"]
    assert err["code"] == "upstream_invalid_answer"
    assert len(standin.requests) - before == 2
    # The gateway keeps serving.
    standin.script = [VALID]
    assert _score(gw.url).status_code == 200


def test_triage_through_the_gateway_validates_against_the_label_sets(standin, gw):
    standin.script = [
        '{"department": "cardiology", "urgency": "emergency"}',
        '{"department": "cardiology", "urgency": "urgent"}',
    ]
    r = httpx.post(gw.url + "/v1/apps/clinical/triage", json={"symptoms": "Crushing chest pain."}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["department"] == "cardiology" and r.json()["urgency"] == "urgent"


def test_the_schema_goes_upstream_as_response_format(standin, gw):
    standin.script = [VALID]
    before = len(standin.requests)
    assert _score(gw.url).status_code == 200
    body = standin.requests[before]
    assert body["response_format"] == response_format(RISK_SCHEMA)
    assert body["response_format"]["type"] == "json_schema"


# ---- a real upstream ----------------------------------------------------------------------------------------
def test_risk_and_triage_through_a_gateway_to_a_real_upstream(gateway):
    """Risk scoring goes upstream with the schema as response_format, which the native upstream enforces while
    it generates: every row validates. Triage runs on the gateway's own small model (apps.triage_model),
    constrained while it generates."""
    r = _score(gateway.url, n=2, seed=7)
    assert r.status_code == 200, r.text
    for row in r.json()["data"]:
        answer = {k: row[k] for k in ("risk_level", "score", "reasons")}
        assert schema_error(RISK_SCHEMA, json.dumps(answer)) is None
    t = httpx.post(
        gateway.url + "/v1/apps/clinical/triage",
        json={"symptoms": "Sudden crushing chest pain spreading to the left arm.", "seed": 3},
        timeout=600,
    )
    assert t.status_code == 200, t.text
    assert t.json()["department"] in DEPARTMENTS and t.json()["urgency"] in URGENCY
    records = [
        json.loads(line)
        for p in sorted((gateway.data_dir / "audit").glob("*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    triaged = [x for x in records if x["request_id"].startswith("clinical-triage")]
    scored = [x for x in records if x["request_id"].startswith("risk-")]
    assert triaged and all(x["model"] not in ("smol", "") for x in triaged)  # the local triage model
    assert scored and all(x["model"] == "smol" for x in scored)


def test_a_diagnosis_model_the_server_does_not_serve_is_refused_clearly(gateway):
    r = httpx.post(gateway.url + "/v1/apps/clinical/diagnose", json={"symptoms": "Cough."}, timeout=60)
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert "deepseek-r1-elsewhere" in msg and "'smol'" in msg and "unset apps.diagnosis_model" in msg
