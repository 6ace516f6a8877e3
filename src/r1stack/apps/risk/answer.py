"""The answer the model must give: its JSON schema (enforced while generating) and the parsed result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from r1stack.errors import UserError

RISK_LEVELS = ("low", "medium", "high", "critical")
# As the deployment guide sets them for risk scoring.
TEMPERATURE = 0.3
MAX_TOKENS = 100

RISK_SCHEMA = {
    "type": "object",
    "properties": {
        "risk_level": {"enum": list(RISK_LEVELS)},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "reasons": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
}


@dataclass
class RiskAnswer:
    risk_level: str
    score: int
    reasons: list[str] = field(default_factory=list)


def parse_answer(text: str) -> RiskAnswer:
    """Read and check a model answer against RISK_SCHEMA (constrained output always passes)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"the answer is not JSON: {e}") from None
    if not isinstance(data, dict) or set(data) != {"risk_level", "score", "reasons"}:
        raise UserError("the answer must have exactly risk_level, score and reasons")
    level, score, reasons = data["risk_level"], data["score"], data["reasons"]
    if level not in RISK_LEVELS:
        raise UserError(f"risk_level {level!r} is not one of {RISK_LEVELS}")
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 100:
        raise UserError(f"score {score!r} is not an integer 0-100")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise UserError("reasons must be a list of strings")
    return RiskAnswer(level, score, reasons)
