"""Plain data that flows through the knowledge base: sections read from files, chunks, hits, reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    """A run of text from one place in a file (a page of a PDF, the body under one heading)."""

    text: str
    heading: str | None = None
    page: int | None = None


@dataclass
class Chunk:
    chunk_id: str
    doc_id: str
    ord: int
    text: str
    heading: str | None = None
    page: int | None = None

    @property
    def index_text(self) -> str:
        # The heading travels with its body into both indexes: "Installation" alone is a strong clue.
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass
class DocumentInfo:
    doc_id: str
    source: str
    sha256: str
    groups: list[str]
    ingested_at: float
    n_chunks: int


@dataclass
class Hit:
    """One retrieved chunk with where it came from; `score` is the fused (or reranked) score."""

    kb: str
    document: str
    chunk_id: str
    score: float
    text: str
    source: str
    heading: str | None = None
    page: int | None = None

    def to_dict(self) -> dict:
        return {
            "kb": self.kb,
            "document": self.document,
            "chunk_id": self.chunk_id,
            "score": self.score,
            "text": self.text,
            "source": self.source,
            "heading": self.heading,
            "page": self.page,
        }


@dataclass
class FileOutcome:
    path: str
    status: str  # added | replaced | unchanged | failed
    doc_id: str | None = None
    chunks: int = 0
    message: str = ""


@dataclass
class IngestReport:
    outcomes: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


@dataclass
class VerifyReport:
    ok: bool
    record_chunks: int
    index_chunks: int | None
    problems: list[str]
