"""The filter on a token stream: feed text deltas, get back the text that is safe to send now. Only the
shortest tail that could still become (or change) an identifier is held back; `flush()` releases the rest."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from r1stack.guard.policy import render
from r1stack.guard.scanner import CONTEXT_BEFORE, Finding

if TYPE_CHECKING:
    from r1stack.guard.policy import PiiFilter

# Sent text kept for the context words and look-behind boundaries of what comes next.
_KEEP = CONTEXT_BEFORE + 8


class StreamRedactor:
    """The concatenated output equals `PiiFilter.redact` of the concatenated input, for any split into deltas
    (under the block policy: the text before the first identifier, then nothing)."""

    def __init__(self, pii_filter: PiiFilter):
        self.filter = pii_filter
        self.findings: list[Finding] = []
        self.blocked = False
        self._sent = ""  # tail of text already released, unredacted, for context only
        self._pending = ""
        self._released = 0  # input characters released so far; findings carry offsets in the whole input

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(f.entity for f in self.findings))

    @property
    def held(self) -> int:
        """Characters received but not yet released."""
        return len(self._pending)

    def feed(self, delta: str) -> str:
        if self.blocked:
            return ""
        self._pending += delta
        return self._release(final=False)

    def flush(self) -> str:
        if self.blocked:
            return ""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        scanner = self.filter.scanner
        text = self._sent + self._pending
        base = len(self._sent)
        found, cut = scanner.candidates(text, base, final)
        # A settled finding that reaches past the cut may lose to a match still forming: hold it back too.
        moved = True
        while moved:
            moved = False
            for f in found:
                if f.start < cut < f.end:
                    cut, moved = f.start, True
        chosen = scanner.resolve([f for f in found if f.end <= cut])
        shift = self._released - base  # window offsets -> offsets in the whole input
        if self.filter.policy == "block" and chosen:
            first = chosen[0]
            self.blocked = True
            self.findings.append(replace(first, start=first.start + shift, end=first.end + shift))
            self._pending = ""
            return text[base : first.start]
        self.findings.extend(replace(f, start=f.start + shift, end=f.end + shift) for f in chosen)
        out = render(text, chosen, self.filter.policy, base, cut)
        self._released += cut - base
        self._sent = text[max(0, cut - _KEEP) : cut]
        self._pending = text[cut:]
        return out
