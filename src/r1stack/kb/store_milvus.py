"""Milvus through pymilvus: a Milvus Lite file under the knowledge base, or a Milvus server at a URI."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

from r1stack.kb.stores import HNSW

_BATCH = 2048
_clients: dict[str, object] = {}
_lock = threading.Lock()


def _client(uri: str):
    # Milvus Lite allows one client per file in a process; share it.
    from pymilvus import MilvusClient

    # Milvus Lite has no server clock; pymilvus warns about it on every iterator.
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    with _lock:
        if uri not in _clients:
            _clients[uri] = MilvusClient(uri)
        return _clients[uri]


def _release(uri: str) -> None:
    with _lock:
        client = _clients.pop(uri, None)
    if client is not None:
        try:
            client.close()
        except Exception:  # a damaged index may fail to close; the file is about to be replaced anyway
            pass
    # Milvus Lite serves each file from a server thread that outlives the client; stop it so the next
    # open reads the files on disk, as a restarted process would.
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


class MilvusStore:
    def __init__(self, location: Path, index_name: str, dim: int, hnsw: HNSW, uri: str | None):
        from pymilvus import DataType

        if uri:
            self.uri = uri
            self.collection = f"r1kb_{location.parent.name}_{index_name}".replace(
                "-", "_"
            )  # one per kb and rebuild
        else:
            location.mkdir(parents=True, exist_ok=True)
            self.uri = str(location / f"{index_name}.db")
            self.collection = "chunks"
        self.local = not uri
        self.hnsw = hnsw
        self.client = _client(self.uri)
        if not self.client.has_collection(self.collection):
            schema = self.client.create_schema(auto_id=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=128)
            schema.add_field("doc", DataType.VARCHAR, max_length=64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index = self.client.prepare_index_params()
            index.add_index(
                field_name="vector",
                index_type="HNSW",
                metric_type="COSINE",
                params={"M": hnsw.m, "efConstruction": hnsw.ef_construction},
            )
            self.client.create_collection(self.collection, schema=schema, index_params=index)
        self.client.load_collection(self.collection)

    def add(self, ids: list[str], doc_keys: list[str], vectors: np.ndarray) -> None:
        for i in range(0, len(ids), _BATCH):
            rows = [
                {"id": c, "doc": d, "vector": v.tolist()}
                for c, d, v in zip(
                    ids[i : i + _BATCH], doc_keys[i : i + _BATCH], vectors[i : i + _BATCH], strict=True
                )
            ]
            self.client.upsert(self.collection, rows)
        self.client.flush(self.collection)

    def delete_docs(self, doc_keys: list[str]) -> None:
        if doc_keys:
            self.client.delete(self.collection, filter=f"doc in {json.dumps(list(doc_keys))}")
            self.client.flush(self.collection)

    def search(self, vector: np.ndarray, k: int, doc_keys: list[str] | None) -> list[tuple[str, float]]:
        if doc_keys is not None and not doc_keys:
            return []
        res = self.client.search(
            self.collection,
            data=[vector.tolist()],
            limit=k,
            filter=f"doc in {json.dumps(list(doc_keys))}" if doc_keys is not None else "",
            output_fields=["id"],
            search_params={"metric_type": "COSINE", "params": {"ef": max(self.hnsw.ef_search, k)}},
        )
        return [(h["id"], float(h["distance"])) for h in res[0]]

    def ids(self) -> set[str]:
        out: set[str] = set()
        it = self.client.query_iterator(self.collection, batch_size=_BATCH, filter="", output_fields=["id"])
        try:
            while batch := it.next():
                out.update(r["id"] for r in batch)
        finally:
            it.close()
        return out

    def close(self) -> None:
        if self.local:
            _release(self.uri)

    def drop(self) -> None:
        self.client.drop_collection(self.collection)
