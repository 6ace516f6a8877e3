"""Score transactions: features, guard-masked prompt, constrained generation, parsed answer, audit record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from r1stack.apps.backend import Job
from r1stack.apps.risk.answer import MAX_TOKENS, RISK_SCHEMA, TEMPERATURE, RiskAnswer, parse_answer
from r1stack.apps.risk.features import Features, compute_features, rules_score
from r1stack.apps.risk.prompt import messages, transaction_text
from r1stack.apps.risk.transactions import RowError, Transaction
from r1stack.guard.audit import AuditEvent, AuditLog
from r1stack.guard.policy import PiiFilter

# The combined score trusts the computed features and the model equally.
MODEL_WEIGHT = 0.5


@dataclass
class RiskResult:
    transaction_id: str
    risk_level: str
    score: int  # the model's score
    rules_score: float
    combined_score: float
    reasons: list[str]
    flags: list[str]
    features: dict
    redactions: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict:
        return {
            "transaction_id": self.transaction_id,
            "risk_level": self.risk_level,
            "score": self.score,
            "rules_score": self.rules_score,
            "combined_score": self.combined_score,
            "reasons": " | ".join(self.reasons),
            "flags": " | ".join(self.flags),
            **self.features,
        }


@dataclass
class Prepared:
    txn: Transaction
    features: Features
    masked: str
    redactions: dict[str, int]


@dataclass
class BatchReport:
    results: list[RiskResult]
    errors: list[RowError]
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return len(self.results) / self.seconds if self.seconds > 0 else 0.0


def prompt_filter(pii: PiiFilter) -> PiiFilter:
    """The filter for prompts: the key's own if it hides identifiers, else a redacting one with its recognisers."""
    if pii.policy in ("redact", "mask"):
        return pii
    f = PiiFilter("redact")
    f.scanner = pii.scanner
    return f


def prepare(txns: list[Transaction], pii: PiiFilter) -> list[Prepared]:
    """Features and the prompt text with card and ID numbers masked, whatever the key's output policy."""
    feats = compute_features(txns)
    guard = prompt_filter(pii)
    out = []
    for t, f in zip(txns, feats, strict=True):
        red = guard.redact(transaction_text(t, f))
        out.append(Prepared(t, f, red.text, red.counts))
    return out


def jobs_for(
    prepared: list[Prepared], seed: int | None = None, temperature: float = TEMPERATURE
) -> list[Job]:
    return [
        Job(messages(p.masked), RISK_SCHEMA, MAX_TOKENS, temperature, None if seed is None else seed + i)
        for i, p in enumerate(prepared)
    ]


def finish(
    prepared: list[Prepared], texts: list[str], audit: AuditLog | None, model: str, key_id: str | None = None
) -> list[RiskResult]:
    results = []
    for p, text in zip(prepared, texts, strict=True):
        answer: RiskAnswer = parse_answer(text)
        rules = rules_score(p.features)
        combined = round(MODEL_WEIGHT * answer.score + (1 - MODEL_WEIGHT) * rules, 2)
        r = RiskResult(
            p.txn.transaction_id,
            answer.risk_level,
            answer.score,
            rules,
            combined,
            answer.reasons,
            p.features.flags(),
            p.features.as_dict(),
            p.redactions,
        )
        results.append(r)
        if audit is not None:
            audit.append(
                AuditEvent(
                    request_id=f"risk-{p.txn.transaction_id}",
                    key_id=key_id,
                    model=model,
                    prompt=p.masked,
                    output=text,
                    redactions=p.redactions,
                )
            )
    return results


def score_batch(
    backend,
    txns: list[Transaction],
    errors: list[RowError],
    pii: PiiFilter,
    audit: AuditLog | None,
    seed: int | None = None,
    progress: bool = False,
) -> BatchReport:
    """All rows in one generate call (continuous batching), with a progress bar when asked."""
    start = time.perf_counter()
    prepared = prepare(txns, pii)
    texts = backend.run(jobs_for(prepared, seed), progress=progress)
    results = finish(prepared, texts, audit, backend.name)
    return BatchReport(results, errors, time.perf_counter() - start)
