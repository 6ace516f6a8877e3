"""One choice's text on its way out: split into reasoning and content, then through the output filter (PII),
field by field. Streaming and whole responses go through the same object, so they agree."""

from __future__ import annotations

from collections.abc import Callable

from r1stack.pipeline import TextFilter
from r1stack.server.reasoning import ReasoningDelta, ReasoningParser


class ChoiceShaper:
    def __init__(self, reasoning: bool, filter_factory: Callable[[], TextFilter] | None = None):
        self._parser = ReasoningParser() if reasoning else None
        self._filters = (filter_factory(), filter_factory()) if filter_factory else None
        self._split = False  # an upstream split the reasoning off itself: pass its fields through
        self._started = [False, False]

    def feed(self, text: str, reasoning: str = "") -> ReasoningDelta:
        """Text to split; `reasoning` is what an upstream already sent as reasoning_content (then no parsing)."""
        if reasoning and not self._split:
            self._split = True
            self._parser = None
        if self._split:
            return self._filter(ReasoningDelta(self._trim(0, reasoning), self._trim(1, text)))
        d = self._parser.feed(text) if self._parser else ReasoningDelta(content=text)
        return self._filter(d)

    def _trim(self, field: int, text: str) -> str:
        # As the parser does: the stray newlines R1 writes at the start of each field are dropped.
        if not self._started[field]:
            text = text.lstrip()
            self._started[field] = bool(text)
        return text

    def finish(self) -> ReasoningDelta:
        d = self._parser.finish() if self._parser else ReasoningDelta()
        d = self._filter(d)
        if self._filters:
            d.reasoning += self._filters[0].flush()
            d.content += self._filters[1].flush()
        return d

    def _filter(self, d: ReasoningDelta) -> ReasoningDelta:
        if not self._filters:
            return d
        return ReasoningDelta(
            reasoning=self._filters[0].feed(d.reasoning) if d.reasoning else "",
            content=self._filters[1].feed(d.content) if d.content else "",
        )


def shape_whole(
    text: str, reasoning: bool, filter_factory=None, upstream_reasoning: str = ""
) -> tuple[str | None, str]:
    s = ChoiceShaper(reasoning, filter_factory)
    a, b = s.feed(text, upstream_reasoning), s.finish()
    r = a.reasoning + b.reasoning
    return (r or None), a.content + b.content
