"""Chroma PersistentClient as the vector index: one folder, one collection, HNSW parameters from settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from r1stack.kb.stores import HNSW

_COLLECTION = "chunks"
_BATCH = 4096


class ChromaStore:
    def __init__(self, path: Path, dim: int, hnsw: HNSW):
        import chromadb
        from chromadb.config import Settings

        self.path = path
        self.dim = dim
        path.mkdir(parents=True, exist_ok=True)
        self.client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        self.collection = self.client.get_or_create_collection(
            _COLLECTION,
            embedding_function=None,
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "max_neighbors": hnsw.m,
                    "ef_construction": hnsw.ef_construction,
                    "ef_search": hnsw.ef_search,
                }
            },
        )

    def add(self, ids: list[str], doc_keys: list[str], vectors: np.ndarray) -> None:
        for i in range(0, len(ids), _BATCH):
            self.collection.upsert(
                ids=ids[i : i + _BATCH],
                embeddings=vectors[i : i + _BATCH],
                metadatas=[{"doc": k} for k in doc_keys[i : i + _BATCH]],
            )

    def delete_docs(self, doc_keys: list[str]) -> None:
        if doc_keys:
            self.collection.delete(where={"doc": {"$in": list(doc_keys)}})

    def search(self, vector: np.ndarray, k: int, doc_keys: list[str] | None) -> list[tuple[str, float]]:
        if doc_keys is not None and not doc_keys:
            return []
        where = {"doc": {"$in": list(doc_keys)}} if doc_keys is not None else None
        res = self.collection.query(
            query_embeddings=[vector], n_results=k, where=where, include=["distances"]
        )
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True)]

    def ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        while True:
            got = self.collection.get(include=[], limit=_BATCH, offset=offset)["ids"]
            out.update(got)
            if len(got) < _BATCH:
                return out
            offset += len(got)

    def close(self) -> None:
        # Chroma keeps one system per path for the whole process; drop it so a later open reads the disk afresh.
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(str(self.path), None)

    @staticmethod
    def destroy(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
