"""Running the recognisers over text: candidates with context-adjusted confidence, and the choice among
overlapping ones. The same code serves whole texts and the streaming redactor, which is what keeps them equal."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import regex

from r1stack.guard.recognizers import BUILTIN, LABELS, NEGATIVE_CONTEXT, Recognizer

CONTEXT_BEFORE = 24  # characters before a match searched for context words
CONTEXT_AFTER = 12  # ... and after it; the streaming redactor waits this long past a candidate
NEGATIVE_BEFORE = 16  # negative words must sit close: "订单号2023…", "order 2023…"
POSITIVE_BOOST = 0.35
NEGATIVE_PENALTY = 0.4
_CJK = regex.compile(r"[\p{Han}]")
# Four or more groups of four digits read as one number (a card): a phone or ID found inside it is not one.
_GROUPED = regex.compile(r"(?<![0-9][ -]?)\d{4}(?:[ -]\d{4}){3,}(?:[ -]\d{1,4})?(?![ -]?[0-9])")
_DIGIT_ENTITIES = frozenset({"ID_CARD", "MOBILE", "LANDLINE", "BANK_CARD"})
# Context words count only inside the match's own clause: the next clause may be about another number.
_CLAUSE_END = regex.compile(r"[。；;！？!?\n，]|, ")
_LATIN_WORD = regex.compile(r"[A-Za-z]+")
_DIGIT = regex.compile(r"\d")


@dataclass(frozen=True)
class Finding:
    entity: str
    start: int
    end: int
    score: float
    text: str
    lang: str  # "zh" or "en": the language of the words around it, for the redaction label

    @property
    def label(self) -> str:
        zh, en = LABELS.get(self.entity, (self.entity, self.entity))
        return zh if self.lang == "zh" else en


def _words_pattern(words: tuple[str, ...]) -> regex.Pattern | None:
    if not words:
        return None
    # Latin words must stand alone ("ip" is not in "ship"); Chinese words have no spaces to stand between.
    parts = [
        rf"(?<![a-z]){regex.escape(w)}(?![a-z])" if w.isascii() else regex.escape(w)
        for w in sorted(words, key=len, reverse=True)
    ]
    return regex.compile("|".join(parts), regex.IGNORECASE)


def text_language(clause: str, before: str) -> str:
    """zh or en: the words of the identifier's own clause decide, else those before it."""
    for window in (clause, before):
        cjk, latin = len(_CJK.findall(window)), len(_LATIN_WORD.findall(window))
        if cjk or latin:
            return "zh" if cjk >= latin else "en"
    return "en"


def _settled(text: str, end: int) -> bool:
    """No further text can change a match ending at `end`: its after-window is full or its clause has ended."""
    return end + CONTEXT_AFTER <= len(text) or _CLAUSE_END.search(text, end, end + CONTEXT_AFTER) is not None


def _inside_group(groups: list[tuple[int, int]], longest: int, start: int, end: int) -> bool:
    """Whether [start, end) overlaps a card-shaped digit group without being exactly it (groups sorted by start)."""
    i = bisect.bisect_left(groups, (end, -1))
    while i > 0:
        i -= 1
        g = groups[i]
        if g[0] < start - longest:
            break
        if g[1] > start and g != (start, end):
            return True
    return False


class Scanner:
    """All recognisers of one configuration. `scan` is the whole-text answer; `candidates` is the piece the
    streaming redactor reuses on a window of text that may still grow."""

    def __init__(self, recognizers: tuple[Recognizer, ...] = BUILTIN, threshold: float = 0.5):
        self.recognizers = recognizers
        self.threshold = threshold
        self._context = [_words_pattern(r.context) for r in recognizers]
        self._unless = [_words_pattern(r.context_unless) for r in recognizers]
        self._negative = _words_pattern(NEGATIVE_CONTEXT)

    def _finding(self, i: int, text: str, start: int, end: int) -> Finding | None:
        rec = self.recognizers[i]
        base = rec.score(text[start:end])
        if base is None:
            return None
        before = text[max(0, start - CONTEXT_BEFORE) : start]
        after = text[end : end + CONTEXT_AFTER]
        cuts = list(_CLAUSE_END.finditer(before))
        own_before = before[cuts[-1].end() :] if cuts else before
        cut = _CLAUSE_END.search(after)
        own_after = after[: cut.start()] if cut else after
        # Words between this match and a further number lead in to that one: in "交易号6200… and 信用卡：3462…"
        # 信用卡 names the second number, not the first.
        if _DIGIT.search(own_after):
            own_after = ""
        score = base
        ctx, unless = self._context[i], self._unless[i]
        if ctx is not None and (ctx.search(own_before) or ctx.search(own_after)):
            if unless is None or not (unless.search(own_before) or unless.search(own_after)):
                score += POSITIVE_BOOST
        # Negative words look backwards only: "order 2023…" names what follows, not what came before.
        if self._negative.search(own_before[-NEGATIVE_BEFORE:]):
            score -= NEGATIVE_PENALTY
        return Finding(
            rec.entity,
            start,
            end,
            min(score, 1.0),
            text[start:end],
            text_language(own_before + " " + own_after, before),
        )

    def candidates(self, text: str, pos: int = 0, final: bool = True) -> tuple[list[Finding], int]:
        """Findings at or above the threshold that start at `pos` or later and that no further text can change,
        and the earliest start of a match that further text could still make or change (len(text) if none).
        With `final` the text is complete, so everything is settled."""
        found: list[Finding] = []
        live = len(text)
        groups = []
        for m in _GROUPED.finditer(text, pos, partial=not final, overlapped=True):
            if not final and (m.partial or not _settled(text, m.end())):
                live = min(live, m.start())
            else:
                groups.append(m.span())
        groups.sort()
        longest = max((b - a for a, b in groups), default=0)
        for i, rec in enumerate(self.recognizers):
            for m in rec.pattern.finditer(text, pos, partial=not final, overlapped=True):
                start, end = m.span()
                if start == end:
                    continue
                if not final and (m.partial or not _settled(text, end)):
                    live = min(live, start)
                    continue
                if rec.entity in _DIGIT_ENTITIES and _inside_group(groups, longest, start, end):
                    continue
                f = self._finding(i, text, start, end)
                if f is not None and f.score >= self.threshold:
                    found.append(f)
        return found, live

    @staticmethod
    def resolve(findings: list[Finding]) -> list[Finding]:
        """Overlaps: the more confident finding wins, then the longer one, then the earlier one."""
        chosen: list[Finding] = []  # disjoint, kept sorted by start so each check looks at two neighbours
        starts: list[int] = []
        for f in sorted(findings, key=lambda f: (-f.score, f.start - f.end, f.start)):
            i = bisect.bisect_left(starts, f.start)
            if i > 0 and chosen[i - 1].end > f.start:
                continue
            if i < len(chosen) and chosen[i].start < f.end:
                continue
            chosen.insert(i, f)
            starts.insert(i, f.start)
        return chosen

    def scan(self, text: str) -> list[Finding]:
        return self.resolve(self.candidates(text)[0])
