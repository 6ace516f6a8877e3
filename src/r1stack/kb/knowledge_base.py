"""One knowledge base on disk: its record, its vector index, and the operations that keep them in step."""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from r1stack.config import Settings
from r1stack.errors import NotFoundError, UserError
from r1stack.kb.chunker import Window, chunk_sections
from r1stack.kb.embedder import BUNDLED, Embedder, embedder_id, load_embedder
from r1stack.kb.models import Chunk, DocumentInfo, FileOutcome, Section
from r1stack.kb.record import Record
from r1stack.kb.stores import HNSW, STORES, VectorStore, open_store
from r1stack.kb.text import bm25_tokens

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RECORD_FILE = "record.sqlite"
INDEX_DIR = "index"


class IndexUnavailable(UserError):
    """The vector index cannot be read; `kb verify` / `kb rebuild` mend it."""


def set_embed_threads(n: int) -> None:
    """On a shared or small CPU, one torch thread embeds many times faster than oversubscribed threads."""
    if n > 0:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def embedder_window(embedder: Embedder) -> Window | None:
    tokens = embedder.window()
    return Window(tokens, embedder.count_tokens) if tokens else None


def doc_key_for(doc_id: str) -> str:
    return hashlib.sha1(doc_id.encode()).hexdigest()[:20]


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UserError(
            f"knowledge base name {name!r} is not allowed; use letters, digits, '-' and '_' (max 64)"
        )
    return name


class KnowledgeBase:
    def __init__(self, settings: Settings, name: str, record: Record):
        self.settings = settings
        self.name = name
        self.dir = settings.kb_dir / name
        self.record = record
        self.lock = threading.RLock()
        self._store: VectorStore | None = None
        self.bm25_cache: object | None = None  # owned by r1stack.kb.bm25

    # facts recorded at creation
    @property
    def store_kind(self) -> str:
        return self.record.get_meta("store") or "chroma"

    @property
    def embedder_name(self) -> str:
        return self.record.get_meta("embedder") or BUNDLED

    @property
    def dim(self) -> int:
        return int(self.record.get_meta("dim") or 0)

    @property
    def hnsw(self) -> HNSW:
        return HNSW(
            m=int(self.record.get_meta("hnsw_m") or self.settings.kb.hnsw_m),
            ef_construction=int(
                self.record.get_meta("hnsw_ef_construction") or self.settings.kb.hnsw_ef_construction
            ),
            ef_search=self.settings.kb.hnsw_ef_search,
        )

    def info(self) -> dict:
        docs = self.record.documents()
        return {
            "name": self.name,
            "store": self.store_kind,
            "embedder": self.embedder_name,
            "dim": self.dim,
            "documents": len(docs),
            "chunks": self.record.chunk_count(),
            "hnsw_m": self.hnsw.m,
            "hnsw_ef_construction": self.hnsw.ef_construction,
            "created_at": float(self.record.get_meta("created_at") or 0),
        }

    # embedder
    def embedder(self, requested: str | None = None) -> Embedder:
        """The recorded embedder; asking for another one is refused (mixed collections answer nonsense)."""
        wanted = requested if requested is not None else self.settings.kb.embedder
        if wanted is not None and embedder_id(wanted) != self.embedder_name:
            raise UserError(
                f"knowledge base {self.name!r} was built with embedder {self.embedder_name} (dim {self.dim}), "
                f"not {embedder_id(wanted)}; run `r1stack kb rebuild {self.name} --embedder {wanted}` to migrate it"
            )
        emb = load_embedder(self.embedder_name)
        set_embed_threads(self.settings.kb.embed_threads)
        if emb.dim != self.dim:
            raise UserError(
                f"embedder {self.embedder_name} now gives dimension {emb.dim} but {self.name!r} records {self.dim}; "
                f"run `r1stack kb rebuild {self.name} --embedder PATH` to re-embed"
            )
        return emb

    # vector index
    def store(self) -> VectorStore:
        with self.lock:
            if self._store is None:
                try:
                    self._store = open_store(
                        self.store_kind,
                        self.dir / INDEX_DIR,
                        self.record.get_meta("index_name") or "v1",
                        self.dim,
                        self.hnsw,
                        self.settings.kb.milvus_uri,
                    )
                except Exception as e:
                    raise IndexUnavailable(
                        f"the vector index of {self.name!r} cannot be opened ({type(e).__name__}: {e}); "
                        f"run `r1stack kb verify {self.name}` then `r1stack kb rebuild {self.name}`"
                    ) from e
            return self._store

    def close_store(self) -> None:
        with self.lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def sync_pending(self) -> int:
        """Bring the index in line with the record for documents written but not yet confirmed indexed."""
        with self.lock:
            keys = self.record.pending()
            if not keys:
                return 0
            store = self.store()
            for key in keys:
                self._sync_doc(store, key)
            return len(keys)

    def _sync_doc(self, store: VectorStore, key: str) -> None:
        try:
            store.delete_docs([key])
            ids, vectors = self.record.vectors_of_doc(key)
            if ids:
                store.add(ids, [key] * len(ids), vectors)
        except UserError:
            raise
        except Exception as e:
            raise IndexUnavailable(
                f"writing to the vector index of {self.name!r} failed ({type(e).__name__}: {e}); the document is "
                f"safe in the record: run `r1stack kb rebuild {self.name}`"
            ) from e
        self.record.clear_pending([key])

    # documents
    def put_document(
        self,
        doc_id: str,
        source: str,
        data: bytes,
        sections: list[Section],
        groups: list[str],
        embedder: Embedder,
    ) -> FileOutcome:
        sha = hashlib.sha256(data).hexdigest()
        groups = sorted(set(groups))
        with self.lock:
            old = self.record.document(doc_id)
            if old is not None and old.sha256 == sha and old.groups == groups:
                return FileOutcome(source, "unchanged", doc_id, old.n_chunks, "already ingested, unchanged")
        drafts = chunk_sections(
            sections, self.settings.kb.chunk_tokens, self.settings.kb.chunk_overlap, embedder_window(embedder)
        )
        if not drafts:
            raise UserError(f"{source}: no text to index")
        key = doc_key_for(doc_id)
        chunks = [Chunk(f"{key}-{i}", doc_id, i, d.text, d.heading, d.page) for i, d in enumerate(drafts)]
        vectors = embedder.encode([c.index_text for c in chunks])
        tokens = [bm25_tokens(c.index_text) for c in chunks]
        info = DocumentInfo(doc_id, source, sha, groups, time.time(), len(chunks))
        with self.lock:
            self.record.put_document(info, key, chunks, tokens, vectors)
            self._sync_doc(self.store(), key)
        return FileOutcome(source, "replaced" if old else "added", doc_id, len(chunks))

    def delete_document(self, doc_id: str) -> None:
        with self.lock:
            key = self.record.delete_document(doc_id)
            if key is None:
                raise NotFoundError(
                    f"no document {doc_id!r} in knowledge base {self.name!r}; `r1stack kb list {self.name}` shows them"
                )
            self._sync_doc(self.store(), key)

    def vectors_matrix(self) -> tuple[list[str], np.ndarray]:
        ids: list[str] = []
        parts: list[np.ndarray] = []
        for batch_ids, _, vecs in self.record.iter_vectors():
            ids.extend(batch_ids)
            parts.append(vecs)
        return ids, (np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32))


_open: dict[Path, KnowledgeBase] = {}
_open_lock = threading.Lock()


def kb_path(settings: Settings, name: str) -> Path:
    return settings.kb_dir / check_name(name)


def list_kbs(settings: Settings) -> list[str]:
    if not settings.kb_dir.is_dir():
        return []
    return sorted(p.name for p in settings.kb_dir.iterdir() if (p / RECORD_FILE).is_file())


def create_kb(
    settings: Settings, name: str, store: str | None = None, embedder: str | None = None
) -> KnowledgeBase:
    path = kb_path(settings, name)
    kind = store or settings.kb.store
    if kind not in STORES:
        raise UserError(f"unknown store {kind!r}; use one of: {', '.join(STORES)}")
    if (path / RECORD_FILE).exists():
        raise UserError(f"knowledge base {name!r} already exists; pick another name or ingest into it")
    emb = load_embedder(embedder if embedder is not None else settings.kb.embedder)
    path.mkdir(parents=True, exist_ok=True)
    record = Record(path / RECORD_FILE)
    record.set_meta(
        {
            "name": name,
            "store": kind,
            "embedder": emb.name,
            "dim": emb.dim,
            "index_name": "v1",
            "hnsw_m": settings.kb.hnsw_m,
            "hnsw_ef_construction": settings.kb.hnsw_ef_construction,
            "created_at": time.time(),
            "generation": 0,
        }
    )
    kb = KnowledgeBase(settings, name, record)
    kb.store()  # create the index now so a broken store fails at create time, not at first ingest
    with _open_lock:
        _open[path] = kb
    return kb


def open_kb(settings: Settings, name: str) -> KnowledgeBase:
    path = kb_path(settings, name)
    with _open_lock:
        kb = _open.get(path)
        if kb is not None:
            kb.settings = settings
            return kb
        if not (path / RECORD_FILE).is_file():
            raise NotFoundError(
                f"knowledge base {name!r} does not exist; create it with `r1stack kb create {name}`"
            )
        kb = _open[path] = KnowledgeBase(settings, name, Record(path / RECORD_FILE))
    return kb


def forget(settings: Settings, name: str) -> None:
    """Close and drop a cached knowledge base (tests and subprocess hand-offs)."""
    path = kb_path(settings, name)
    with _open_lock:
        kb = _open.pop(path, None)
    if kb is not None:
        kb.close_store()
        kb.record.close()


def drop_index_dir(kb: KnowledgeBase, index_name: str) -> None:
    target = kb.dir / INDEX_DIR / index_name
    for p in (target, target.with_suffix(".db")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
