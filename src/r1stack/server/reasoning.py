"""Splits DeepSeek-R1 output into `reasoning_content` and `content`, incrementally, so streams and whole
responses agree for every way the text may be cut into chunks.

What R1 output looks like in practice: the chat template already put `<think>\\n` in the prompt, so the output
holds only `</think>`; some builds still emit `<think>` themselves; output cut by max_tokens has no `</think>`
at all and is all reasoning. Partial tags are held back until they resolve, so reasoning never leaks into
content. Whitespace around the boundary (R1 writes `\\n</think>\\n\\n`) is trimmed from both fields.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass
class ReasoningDelta:
    reasoning: str = ""
    content: str = ""

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag` (a tag cut by a chunk edge)."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ReasoningParser:
    """Feed it text deltas; it returns what may safely be shown in each field so far."""

    def __init__(self) -> None:
        self._state = "start"  # start -> reasoning -> content
        self._held = ""
        self._reasoning_started = False
        self._content_started = False

    @property
    def in_reasoning(self) -> bool:
        return self._state != "content"

    def feed(self, text: str) -> ReasoningDelta:
        self._held += text
        out = ReasoningDelta()
        while True:
            if self._state == "start":
                head = self._held.lstrip()
                if head.startswith(THINK_OPEN):
                    self._held = head[len(THINK_OPEN) :]
                    self._state = "reasoning"
                    continue
                if THINK_OPEN.startswith(head):
                    break  # still might become <think>: wait
                self._state = "reasoning"
                continue
            if self._state == "reasoning":
                end = self._held.find(THINK_CLOSE)
                if end >= 0:
                    out.reasoning += self._reasoning(self._held[:end].rstrip())
                    self._held = self._held[end + len(THINK_CLOSE) :]
                    self._state = "content"
                    continue
                keep = _partial_suffix(self._held, THINK_CLOSE)
                head = self._held[: len(self._held) - keep]
                # Trailing whitespace is held too: if </think> follows, it is trimmed, not shown.
                shown = head.rstrip()
                self._held = self._held[len(shown) :]
                out.reasoning += self._reasoning(shown)
                break
            out.content += self._content(self._held)
            self._held = ""
            break
        return out

    def finish(self) -> ReasoningDelta:
        """The stream ended: whatever was held back is reasoning (no `</think>` came), trimmed."""
        out = ReasoningDelta()
        if self._state != "content":
            out.reasoning = self._reasoning(
                self._held.strip() if self._state == "start" else self._held.rstrip()
            )
        self._held = ""
        return out

    def _reasoning(self, text: str) -> str:
        if not self._reasoning_started:
            text = text.lstrip()
            self._reasoning_started = bool(text)
        return text

    def _content(self, text: str) -> str:
        if not self._content_started:
            text = text.lstrip()
            self._content_started = bool(text)
        return text


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Whole-text form: (reasoning or None, content)."""
    parser = ReasoningParser()
    a, b = parser.feed(text), parser.finish()
    reasoning = a.reasoning + b.reasoning
    return (reasoning or None), a.content + b.content
