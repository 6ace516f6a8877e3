"""Ingest files and folders: per-file outcomes, so one bad file never stops the batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from r1stack.errors import UserError
from r1stack.kb.knowledge_base import KnowledgeBase
from r1stack.kb.models import FileOutcome, IngestReport
from r1stack.kb.readers import READERS, read_bytes


def expand_paths(paths: list[Path]) -> Iterator[tuple[Path, str]]:
    """(file, document id). A file's id is its name; files in a folder are named folder/relative/path."""
    for path in paths:
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(path)
                if f.is_file() and not any(part.startswith(".") for part in rel.parts):
                    yield f, f"{path.resolve().name}/{rel.as_posix()}"
        else:
            yield path, path.name


def ingest_bytes(kb: KnowledgeBase, doc_id: str, source: str, data: bytes, groups: list[str]) -> FileOutcome:
    """One document from memory (HTTP upload); bad content becomes a failed outcome, not an exception."""
    try:
        limit = kb.settings.kb.max_file_mb * 1024 * 1024
        if len(data) > limit:
            raise UserError(
                f"{source}: {len(data) / 2**20:.0f} MB is over the {kb.settings.kb.max_file_mb} MB limit; "
                "split it or raise kb.max_file_mb"
            )
        sections = read_bytes(data, source)
        return kb.put_document(doc_id, source, data, sections, groups, kb.embedder())
    except UserError as e:
        return FileOutcome(source, "failed", doc_id, 0, e.message)


def ingest_paths(
    kb: KnowledgeBase,
    paths: list[Path],
    groups: list[str] | None = None,
    on_file: Callable[[FileOutcome, int, int], None] | None = None,
) -> IngestReport:
    """Ingest every file; `on_file(outcome, done, total)` drives a progress bar."""
    kb.embedder()  # refuse an embedder mismatch before touching any file
    kb.sync_pending()
    files = list(expand_paths(paths))
    report = IngestReport()
    limit = kb.settings.kb.max_file_mb * 1024 * 1024
    for n, (path, doc_id) in enumerate(files, 1):
        source = str(path)
        if not path.exists():
            outcome = FileOutcome(source, "failed", None, 0, f"{source}: no such file or folder")
        elif path.suffix.lower() not in READERS:
            outcome = FileOutcome(
                source,
                "failed",
                None,
                0,
                f"{source}: unknown format; supported: {', '.join(sorted(READERS))}",
            )
        elif path.stat().st_size > limit:
            outcome = FileOutcome(
                source,
                "failed",
                doc_id,
                0,
                f"{source}: {path.stat().st_size / 2**20:.0f} MB is over the {kb.settings.kb.max_file_mb} MB limit; "
                "split it or raise kb.max_file_mb",
            )
        else:
            try:
                data = path.read_bytes()
            except OSError as e:
                outcome = FileOutcome(source, "failed", doc_id, 0, f"{source}: cannot read ({e.strerror})")
            else:
                outcome = ingest_bytes(kb, doc_id, source, data, groups or [])
        report.outcomes.append(outcome)
        if on_file is not None:
            on_file(outcome, n, len(files))
    return report
