"""The vector index behind one interface: Chroma (embedded, default) or Milvus (Lite file or a server URI)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from r1stack.errors import UserError


@dataclass
class HNSW:
    m: int = 16
    ef_construction: int = 40
    ef_search: int = 64


class VectorStore(Protocol):
    """Cosine similarity over unit vectors; each vector carries its chunk id and its document's key."""

    def add(self, ids: list[str], doc_keys: list[str], vectors: np.ndarray) -> None: ...

    def delete_docs(self, doc_keys: list[str]) -> None: ...

    def search(self, vector: np.ndarray, k: int, doc_keys: list[str] | None) -> list[tuple[str, float]]: ...

    def ids(self) -> set[str]: ...

    def close(self) -> None: ...


STORES = ("chroma", "milvus")


def open_store(
    kind: str, location: Path, index_name: str, dim: int, hnsw: HNSW, milvus_uri: str | None
) -> VectorStore:
    """`location` is the index folder under the knowledge base; `index_name` changes on every rebuild."""
    if kind == "chroma":
        from r1stack.kb.store_chroma import ChromaStore

        return ChromaStore(location / index_name, dim, hnsw)
    if kind == "milvus":
        from r1stack.kb.store_milvus import MilvusStore

        return MilvusStore(location, index_name, dim, hnsw, milvus_uri)
    raise UserError(f"unknown store {kind!r}; use one of: {', '.join(STORES)}")
