"""Retrieved chunks as prompt text: numbered sources and the instruction to cite them."""

from __future__ import annotations

from r1stack.kb.models import Hit

INSTRUCTION = (
    "Answer using the numbered sources below. Cite each fact with its source number in square brackets, "
    "like [1] or [2]. If the sources do not contain the answer, say so."
)


def source_label(hit: Hit) -> str:
    where = hit.document
    if hit.page is not None:
        where += f", page {hit.page}"
    if hit.heading:
        where += f', section "{hit.heading}"'
    return where


def format_context(hits: list[Hit]) -> str:
    """The text to put before the user's question (as a system message or a prompt prefix)."""
    if not hits:
        return ""
    lines = [INSTRUCTION, ""]
    for i, hit in enumerate(hits, 1):
        lines.append(f"[{i}] ({source_label(hit)})")
        lines.append(hit.text.strip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def sources_payload(hits: list[Hit]) -> list[dict]:
    """The `sources` list returned beside an answer: the same numbering as format_context."""
    return [{"id": i, **hit.to_dict()} for i, hit in enumerate(hits, 1)]
