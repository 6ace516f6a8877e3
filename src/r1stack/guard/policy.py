"""What happens to found identifiers, per API key: redact with a type label, mask all but the last four
characters, block the whole response, or allow it through (still counted for the audit log)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from r1stack.errors import UserError
from r1stack.guard.recognizers import BUILTIN, custom_recognizers
from r1stack.guard.scanner import Finding, Scanner

if TYPE_CHECKING:
    from r1stack.guard.stream import StreamRedactor

POLICIES = ("redact", "mask", "block", "allow")


def mask(value: str, keep: int = 4) -> str:
    """Star out letters and digits except the last `keep`; separators stay so the shape remains readable."""
    alnum = [i for i, c in enumerate(value) if c.isalnum()]
    hidden = set(alnum[: max(0, len(alnum) - keep)])
    return "".join("*" if i in hidden else c for i, c in enumerate(value))


def replacement(finding: Finding, policy: str) -> str:
    if policy == "redact":
        return f"[{finding.label}]"
    if policy == "mask":
        return mask(finding.text)
    return finding.text


def render(text: str, findings: list[Finding], policy: str, start: int = 0, end: int | None = None) -> str:
    """text[start:end] with each finding (sorted, disjoint, inside the range) replaced as the policy says."""
    end = len(text) if end is None else end
    out, at = [], start
    for f in findings:
        out.append(text[at : f.start])
        out.append(replacement(f, policy))
        at = f.end
    out.append(text[at:end])
    return "".join(out)


@dataclass
class RedactionResult:
    text: str  # what may be shown; empty when blocked
    findings: list[Finding] = field(default_factory=list)
    blocked: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(f.entity for f in self.findings))


def _guard_settings(settings: Any) -> Any:
    return getattr(settings, "guard", settings)  # accepts Settings or its GuardSettings section


class PiiFilter:
    """One policy over one set of recognisers. `redact` handles whole texts, `stream()` a token stream."""

    def __init__(
        self, policy: str = "redact", custom_patterns: dict[str, str] | None = None, threshold: float = 0.5
    ):
        if policy not in POLICIES:
            raise UserError(f"unknown PII policy {policy!r}; use one of {', '.join(POLICIES)}")
        self.policy = policy
        self.scanner = Scanner(BUILTIN + custom_recognizers(custom_patterns or {}), threshold)

    @classmethod
    def for_key(cls, settings: Any, key_id: str | None) -> PiiFilter:
        """The filter for an API key: its entry in guard.key_policies, else guard.pii_policy."""
        g = _guard_settings(settings)
        policy = g.key_policies.get(key_id, g.pii_policy) if key_id is not None else g.pii_policy
        return cls(policy, g.custom_patterns, g.pii_threshold)

    def scan(self, text: str) -> list[Finding]:
        return self.scanner.scan(text)

    def redact(self, text: str) -> RedactionResult:
        findings = self.scan(text)
        if self.policy == "block" and findings:
            return RedactionResult("", findings, blocked=True)
        return RedactionResult(render(text, findings, self.policy), findings)

    def stream(self) -> StreamRedactor:
        from r1stack.guard.stream import StreamRedactor

        return StreamRedactor(self)
