"""Token-sized chunks with overlap that break at sentence ends (。！？；.!?) and never across headings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from r1stack.kb.models import Section
from r1stack.kb.text import count_tokens, split_sentences, token_spans


@dataclass
class DraftChunk:
    text: str
    heading: str | None
    page: int | None


@dataclass
class Window:
    """The embedder's reading limit: a chunk (with its heading) must fit, or the model never sees its tail."""

    tokens: int
    count: Callable[[str], int]  # the model's own token count


def _split_long(sentence: str, limit: int) -> list[str]:
    """A sentence longer than a chunk is cut at token boundaries (rare: tables, minified text)."""
    spans = token_spans(sentence)
    pieces = []
    for i in range(0, len(spans), limit):
        group = spans[i : i + limit]
        pieces.append(sentence[group[0][0] : group[-1][1]])
    return pieces


def _fit_window(piece: str, budget: int, window: Window) -> list[str]:
    """Halve a piece until each part fits the model's window (code and identifiers cost many sub-words)."""
    n = count_tokens(piece)
    if n <= 1 or window.count(piece) <= budget:
        return [piece]
    out: list[str] = []
    for part in _split_long(piece, (n + 1) // 2):
        out.extend(_fit_window(part, budget, window))
    return out


def chunk_sections(
    sections: list[Section], chunk_tokens: int, overlap: int, window: Window | None = None
) -> list[DraftChunk]:
    """Chunks of at most `chunk_tokens` (count_tokens) that also fit `window` when given."""
    if chunk_tokens < 8:
        raise ValueError("chunk_tokens must be at least 8")
    overlap = max(0, min(overlap, chunk_tokens // 2))
    chunks: list[DraftChunk] = []
    for section in sections:
        budget = None
        if window is not None:
            # The heading is embedded with every chunk of its section (Chunk.index_text), so it takes its share.
            heading_cost = window.count(f"{section.heading}\n") if section.heading else 0
            budget = max(8, window.tokens - heading_cost)
        # A unit: (sentence, count_tokens, model tokens or 0 when no window is given).
        units: list[tuple[str, int, int]] = []
        for sentence in split_sentences(section.text):
            n = count_tokens(sentence)
            if not n:
                continue
            pieces = _split_long(sentence, chunk_tokens) if n > chunk_tokens else [sentence]
            if budget is not None:
                pieces = [p for piece in pieces for p in _fit_window(piece, budget, window)]
            for p in pieces:
                units.append((p, count_tokens(p), window.count(p) if window is not None else 0))
        current: list[tuple[str, int, int]] = []
        size = 0
        model_size = 0
        fresh = 0  # sentences in `current` not already emitted in the previous chunk

        for unit in units:
            if current and _overflows(unit, size, model_size, len(current), chunk_tokens, budget):
                chunks.append(DraftChunk(_join(current), section.heading, section.page))
                # Carry the tail sentences that fit in the overlap into the next chunk.
                tail: list[tuple[str, int, int]] = []
                tail_size = tail_model = 0
                for prev in reversed(current):
                    if tail_size + prev[1] > overlap or _overflows(
                        unit, tail_size + prev[1], tail_model + prev[2], len(tail) + 1, chunk_tokens, budget
                    ):
                        break
                    tail.insert(0, prev)
                    tail_size += prev[1]
                    tail_model += prev[2]
                current, size, model_size, fresh = tail, tail_size, tail_model, 0
            current.append(unit)
            size += unit[1]
            model_size += unit[2]
            fresh += 1
        if current and fresh:
            chunks.append(DraftChunk(_join(current), section.heading, section.page))
    return chunks


def _overflows(
    unit: tuple[str, int, int], n: int, m: int, held: int, chunk_tokens: int, budget: int | None
) -> bool:
    """Whether `unit` no longer fits beside `held` units of n words and m model tokens."""
    # +1 per unit held: the space joining two sentences can be a token of its own.
    return n + unit[1] > chunk_tokens or (budget is not None and m + unit[2] + held > budget)


def _join(units: list[tuple[str, int, int]]) -> str:
    # Chinese sentences join without a space; anything else with one.
    out = ""
    for text, *_ in units:
        if out and not (out[-1] in "。！？；，”」』）" or text[:1] >= "\u3000"):
            out += " "
        out += text
    return out
