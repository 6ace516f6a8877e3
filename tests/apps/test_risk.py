"""Risk assessment: per-row validation, features, masking, and real constrained answers from the default model
that all validate, with CSV, HTML report and audit records written."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from r1stack.apps.backend import Job
from r1stack.apps.risk.answer import MAX_TOKENS, RISK_SCHEMA, parse_answer
from r1stack.apps.risk.evaluate import auc, precision_at
from r1stack.apps.risk.features import compute_features, rules_score
from r1stack.apps.risk.prompt import messages
from r1stack.apps.risk.report import write_csv, write_html
from r1stack.apps.risk.scorer import prepare, score_batch
from r1stack.apps.risk.synth import generate
from r1stack.apps.risk.transactions import load_file, parse_text, validate_rows
from r1stack.guard.audit import AuditLog
from r1stack.guard.policy import PiiFilter


def _settings(tmp_path: Path):
    from r1stack.config import Settings

    return Settings(data_dir=tmp_path / "data")


def test_bad_rows_are_reported_one_by_one_and_the_rest_proceeds(tmp_path: Path):
    rows = generate(6, fraud_rate=0.0, seed=3)[:5]
    rows[1]["amount"] = -5
    rows[2]["currency"] = "XYZ"
    rows[3]["account_age_days"] = "many"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue() + "T9,A1,12.0\n"  # a short, malformed row
    path = tmp_path / "t.csv"
    path.write_text(text)
    good, bad = load_file(path)
    assert [t.transaction_id for t in good] == [rows[0]["transaction_id"], rows[4]["transaction_id"]]
    by_row = {e.row: e.message for e in bad}
    assert "amount" in by_row[2] and "greater than 0" in by_row[2]
    assert "unknown currency 'XYZ'" in by_row[3]
    assert "account_age_days" in by_row[4]
    assert "malformed CSV row" in by_row[6]
    good_json, bad_json = validate_rows(json.loads(json.dumps(rows)) + ["not an object"])
    assert len(good_json) == 2 and len(bad_json) == 4


def test_features_and_rules_score():
    rows = generate(400, fraud_rate=0.2, seed=5)
    txns, bad = validate_rows(rows)
    assert not bad
    feats = compute_features(txns)
    labels = [r["label"] for r in rows]
    scores = [rules_score(f) for f in feats]
    # Injected patterns must be visible to the rules: far better than chance, and the bursts show velocity.
    assert auc(scores, labels) > 0.85
    bursts = [f.velocity_1h for f, r in zip(feats, rows, strict=True) if r["pattern"] == "card_testing"]
    assert bursts and max(bursts) >= 4
    assert auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0 and auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert precision_at([0.1, 0.9, 0.8, 0.2], [0, 1, 0, 0], 0.25) == 1.0


def test_card_numbers_never_reach_the_prompt():
    txns, _ = validate_rows(generate(20, seed=8))
    for p in prepare(txns, PiiFilter("allow")):  # even a key that allows PII in outputs
        assert p.txn.card_number and p.txn.card_number not in p.masked
        assert p.redactions.get("BANK_CARD", 0) >= 1 or any("CARD" in k for k in p.redactions)


def test_model_answers_always_validate_at_random_seeds_and_temperatures(backend):
    rng = random.Random(99)
    txns, _ = validate_rows(generate(12, fraud_rate=0.3, seed=11))
    prepared = prepare(txns, PiiFilter("redact"))
    jobs = [
        Job(
            messages(p.masked),
            RISK_SCHEMA,
            MAX_TOKENS,
            rng.choice([0.05, 0.3, 0.7, 1.0, 1.5, 2.0]),
            rng.randrange(2**31),
        )
        for p in prepared
    ]
    texts = backend.run(jobs)
    assert len(texts) == len(jobs)
    for text in texts:
        parse_answer(text)  # raises on anything that does not validate


def test_batch_scoring_writes_results_report_and_audit(backend, tmp_path: Path):
    settings = _settings(tmp_path)
    rows = generate(6, seed=21)
    txns, errors = validate_rows(rows + [{"transaction_id": "bad", "amount": "x"}])
    audit = AuditLog(settings)
    report = score_batch(backend, txns, errors, PiiFilter("redact"), audit, seed=1)
    assert len(report.results) == len(txns) and len(report.errors) == 1 and report.rows_per_s > 0
    for r in report.results:
        assert r.risk_level in ("low", "medium", "high", "critical") and 0 <= r.score <= 100
        assert 0 <= r.combined_score <= 100
    write_csv(report, tmp_path / "out.csv")
    write_html(report, tmp_path / "out.html")
    with (tmp_path / "out.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(txns)
    page = (tmp_path / "out.html").read_text()
    assert page.count("<svg") == 3 and "src=" not in page and "<script" not in page and "<link" not in page
    records = [
        json.loads(x) for f in sorted(settings.audit_dir.glob("*.jsonl")) for x in f.read_text().splitlines()
    ]
    assert len(records) == len(txns)
    assert {r["request_id"] for r in records} == {f"risk-{t.transaction_id}" for t in txns}
    assert audit.verify().ok
    raw = "\n".join(f.read_text() for f in settings.audit_dir.glob("*.jsonl"))
    assert not any(t.card_number in raw for t in txns)


def test_json_input_forms():
    rows = generate(3, seed=2)
    assert len(parse_text(json.dumps(rows), "json")) == 3
    assert len(parse_text(json.dumps({"transactions": rows}), "json")) == 3
    assert len(parse_text("\n".join(json.dumps(r) for r in rows), "json")) == 3
