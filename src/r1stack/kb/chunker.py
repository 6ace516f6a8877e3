"""Token-sized chunks with overlap that break at sentence ends (。！？；.!?) and never across headings."""

from __future__ import annotations

from dataclasses import dataclass

from r1stack.kb.models import Section
from r1stack.kb.text import count_tokens, split_sentences, token_spans


@dataclass
class DraftChunk:
    text: str
    heading: str | None
    page: int | None


def _split_long(sentence: str, limit: int) -> list[str]:
    """A sentence longer than a chunk is cut at token boundaries (rare: tables, minified text)."""
    spans = token_spans(sentence)
    pieces = []
    for i in range(0, len(spans), limit):
        group = spans[i : i + limit]
        pieces.append(sentence[group[0][0] : group[-1][1]])
    return pieces


def chunk_sections(sections: list[Section], chunk_tokens: int, overlap: int) -> list[DraftChunk]:
    if chunk_tokens < 8:
        raise ValueError("chunk_tokens must be at least 8")
    overlap = max(0, min(overlap, chunk_tokens // 2))
    chunks: list[DraftChunk] = []
    for section in sections:
        units: list[tuple[str, int]] = []
        for sentence in split_sentences(section.text):
            n = count_tokens(sentence)
            if n > chunk_tokens:
                units.extend((p, count_tokens(p)) for p in _split_long(sentence, chunk_tokens))
            elif n:
                units.append((sentence, n))
        current: list[tuple[str, int]] = []
        size = 0
        fresh = 0  # sentences in `current` not already emitted in the previous chunk
        for unit in units:
            if current and size + unit[1] > chunk_tokens:
                chunks.append(DraftChunk(_join(current), section.heading, section.page))
                # Carry the tail sentences that fit in the overlap into the next chunk.
                tail: list[tuple[str, int]] = []
                tail_size = 0
                for prev in reversed(current):
                    if tail_size + prev[1] > overlap or tail_size + prev[1] + unit[1] > chunk_tokens:
                        break
                    tail.insert(0, prev)
                    tail_size += prev[1]
                current, size, fresh = tail, tail_size, 0
            current.append(unit)
            size += unit[1]
            fresh += 1
        if current and fresh:
            chunks.append(DraftChunk(_join(current), section.heading, section.page))
    return chunks


def _join(units: list[tuple[str, int]]) -> str:
    # Chinese sentences join without a space; anything else with one.
    out = ""
    for text, _ in units:
        if out and not (out[-1] in "。！？；，”」』）" or text[:1] >= "\u3000"):
            out += " "
        out += text
    return out
