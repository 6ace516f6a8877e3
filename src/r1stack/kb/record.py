"""The durable record of a knowledge base (SQLite): documents, chunks and their embeddings.

It is the source of truth. The vector store is an index derived from it: a document is written here in one
transaction, so a crash leaves it whole or absent, and the index can always be rebuilt without re-embedding.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from r1stack.kb.models import Chunk, DocumentInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, doc_key TEXT NOT NULL UNIQUE, source TEXT NOT NULL, sha256 TEXT NOT NULL,
    groups TEXT NOT NULL, ingested_at REAL NOT NULL, n_chunks INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, ord INTEGER NOT NULL, text TEXT NOT NULL,
    heading TEXT, page INTEGER, tokens TEXT NOT NULL, embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
-- Documents whose vectors may differ from the record (written here, not yet confirmed in the index).
CREATE TABLE IF NOT EXISTS pending (doc_key TEXT PRIMARY KEY);
"""


class Record:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, values: dict[str, object]) -> None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for k, v in values.items():
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, str(v)))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def generation(self) -> int:
        return int(self.get_meta("generation", "0") or 0)

    # documents
    def document(self, doc_id: str) -> DocumentInfo | None:
        row = self.db.execute(
            "SELECT doc_id, source, sha256, groups, ingested_at, n_chunks FROM documents WHERE doc_id=?",
            (doc_id,),
        ).fetchone()
        return _doc(row) if row else None

    def documents(self) -> list[DocumentInfo]:
        rows = self.db.execute(
            "SELECT doc_id, source, sha256, groups, ingested_at, n_chunks FROM documents ORDER BY doc_id"
        ).fetchall()
        return [_doc(r) for r in rows]

    def doc_key(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT doc_key FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def doc_groups(self) -> dict[str, list[str]]:
        """doc_key -> groups, for access filtering."""
        return {k: json.loads(g) for k, g in self.db.execute("SELECT doc_key, groups FROM documents")}

    def put_document(
        self,
        info: DocumentInfo,
        doc_key: str,
        chunks: list[Chunk],
        tokens: list[list[str]],
        vectors: np.ndarray,
    ) -> None:
        """Replace a document and its chunks in one transaction, and mark its vectors pending."""
        rows = [
            (
                c.chunk_id,
                c.doc_id,
                c.ord,
                c.text,
                c.heading,
                c.page,
                " ".join(t),
                v.astype(np.float32).tobytes(),
            )
            for c, t, v in zip(chunks, tokens, vectors, strict=True)
        ]
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM chunks WHERE doc_id=?", (info.doc_id,))
                self.db.execute("DELETE FROM documents WHERE doc_id=?", (info.doc_id,))
                self.db.execute(
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        info.doc_id,
                        doc_key,
                        info.source,
                        info.sha256,
                        json.dumps(info.groups),
                        info.ingested_at,
                        len(rows),
                    ),
                )
                self.db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self.db.execute("INSERT OR IGNORE INTO pending VALUES (?)", (doc_key,))
                self._bump()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def delete_document(self, doc_id: str) -> str | None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                key = self.doc_key(doc_id)
                if key is not None:
                    self.db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
                    self.db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
                    self.db.execute("INSERT OR IGNORE INTO pending VALUES (?)", (key,))
                    self._bump()
                self.db.execute("COMMIT")
                return key
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _bump(self) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(self.generation() + 1),))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('updated_at', ?)", (str(time.time()),))

    # pending index work
    def pending(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT doc_key FROM pending")]

    def clear_pending(self, doc_keys: list[str]) -> None:
        with self._lock:
            self.db.executemany("DELETE FROM pending WHERE doc_key=?", [(k,) for k in doc_keys])

    # chunks
    def chunk_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def chunk_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT chunk_id FROM chunks")}

    def chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        for i in range(0, len(chunk_ids), 500):
            part = chunk_ids[i : i + 500]
            q = f"SELECT chunk_id, doc_id, ord, text, heading, page FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})"
            for row in self.db.execute(q, part):
                out[row[0]] = Chunk(*row)
        return out

    def vectors_of_doc(self, doc_key: str) -> tuple[list[str], np.ndarray]:
        rows = self.db.execute(
            "SELECT c.chunk_id, c.embedding FROM chunks c JOIN documents d ON c.doc_id=d.doc_id WHERE d.doc_key=?",
            (doc_key,),
        ).fetchall()
        return [r[0] for r in rows], _stack(r[1] for r in rows)

    def iter_vectors(self, batch: int = 2048) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        """(chunk ids, doc keys, vectors) in batches, in a stable order."""
        cur = self.db.execute(
            "SELECT c.chunk_id, d.doc_key, c.embedding FROM chunks c JOIN documents d ON c.doc_id=d.doc_id "
            "ORDER BY c.rowid"
        )
        while rows := cur.fetchmany(batch):
            yield [r[0] for r in rows], [r[1] for r in rows], _stack(r[2] for r in rows)

    def iter_texts(self, batch: int = 2048) -> Iterator[list[tuple[str, str | None, str]]]:
        cur = self.db.execute("SELECT chunk_id, heading, text FROM chunks ORDER BY rowid")
        while rows := cur.fetchmany(batch):
            yield rows

    def bm25_rows(self) -> list[tuple[str, str, str]]:
        """(chunk id, doc key, space-joined tokens) for every chunk."""
        return self.db.execute(
            "SELECT c.chunk_id, d.doc_key, c.tokens FROM chunks c JOIN documents d ON c.doc_id=d.doc_id "
            "ORDER BY c.rowid"
        ).fetchall()

    def replace_embeddings(self, updates: list[tuple[str, np.ndarray]], meta: dict[str, object]) -> None:
        """Swap every embedding (an embedder migration) and the recorded embedder in one transaction."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "UPDATE chunks SET embedding=? WHERE chunk_id=?",
                    [(v.astype(np.float32).tobytes(), cid) for cid, v in updates],
                )
                for k, v in meta.items():
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, str(v)))
                self._bump()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise


def _stack(blobs) -> np.ndarray:
    arrays = [np.frombuffer(b, dtype=np.float32) for b in blobs]
    return np.stack(arrays) if arrays else np.zeros((0, 0), dtype=np.float32)


def _doc(row) -> DocumentInfo:
    return DocumentInfo(
        doc_id=row[0],
        source=row[1],
        sha256=row[2],
        groups=json.loads(row[3]),
        ingested_at=row[4],
        n_chunks=row[5],
    )
