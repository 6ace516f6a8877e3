"""Keep the vector index honest: verify it against the record, rebuild it from the record, measure its recall."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from r1stack.kb.embedder import embedder_id, load_embedder
from r1stack.kb.knowledge_base import INDEX_DIR, KnowledgeBase, drop_index_dir
from r1stack.kb.models import VerifyReport
from r1stack.kb.stores import open_store

Progress = Callable[[int, int], None]


def _sample(ids: list[str], n: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(len(ids), size=min(n, len(ids)), replace=False).tolist()) if ids else []


def verify(kb: KnowledgeBase, probes: int = 64) -> VerifyReport:
    """Compare the index with the record: same ids, and each probed chunk finds itself among its neighbours."""
    problems: list[str] = []
    with kb.lock:
        kb.close_store()  # read the files on disk afresh, not a cached view
        record_ids = kb.record.chunk_ids()
        try:
            # Documents committed to the record but not yet confirmed in the index (a crash between the two)
            # are replayed first, as every search does; failing to replay is itself a finding.
            kb.sync_pending()
            store = kb.store()
            index_ids = store.ids()
        except Exception as e:
            problems.append(f"the vector index cannot be read: {type(e).__name__}: {e}")
            return VerifyReport(False, len(record_ids), None, problems)
        missing = record_ids - index_ids
        extra = index_ids - record_ids
        if missing:
            problems.append(f"{len(missing)} chunk(s) in the record are missing from the index")
        if extra:
            problems.append(f"{len(extra)} chunk(s) in the index are not in the record")
        ids, matrix = kb.vectors_matrix()
        found = 0
        picks = _sample(ids, probes)
        try:
            for i in picks:
                got = [cid for cid, _ in store.search(matrix[i], 10, None)]
                found += ids[i] in got
        except Exception as e:
            problems.append(f"the vector index fails to answer queries: {type(e).__name__}: {e}")
            return VerifyReport(False, len(record_ids), len(index_ids), problems)
        if picks and found < 0.9 * len(picks):
            problems.append(
                f"only {found}/{len(picks)} probed chunks find themselves in the index: it is damaged"
            )
        return VerifyReport(not problems, len(record_ids), len(index_ids), problems)


def rebuild(kb: KnowledgeBase, embedder: str | None = None, progress: Progress | None = None) -> dict:
    """Build a fresh index from the record (re-embedding only when migrating to another embedder)."""
    with kb.lock:
        reembedded = 0
        if embedder is not None and embedder_id(embedder) != kb.embedder_name:
            reembedded = _migrate_embeddings(kb, embedder, progress)
        old = kb.record.get_meta("index_name") or "v1"
        new = f"v{int(old.lstrip('v') or 1) + 1}"
        kb.close_store()
        drop_index_dir(kb, new)  # leftovers of a rebuild that crashed
        store = open_store(kb.store_kind, kb.dir / INDEX_DIR, new, kb.dim, kb.hnsw, kb.settings.kb.milvus_uri)
        total = kb.record.chunk_count()
        done = 0
        for ids, keys, vectors in kb.record.iter_vectors():
            store.add(ids, keys, vectors)
            done += len(ids)
            if progress:
                progress(done, total)
        store.close()
        # The switch is one committed row: a crash before it leaves the old index in charge.
        kb.record.set_meta({"index_name": new})
        kb.record.clear_pending(kb.record.pending())
        if kb.settings.kb.milvus_uri and kb.store_kind == "milvus":
            try:
                old_store = open_store(
                    "milvus", kb.dir / INDEX_DIR, old, kb.dim, kb.hnsw, kb.settings.kb.milvus_uri
                )
                old_store.drop()
            except Exception:  # the old collection may be what was damaged
                pass
        drop_index_dir(kb, old)
        return {"chunks": done, "index": new, "reembedded": reembedded, "embedder": kb.embedder_name}


def _migrate_embeddings(kb: KnowledgeBase, spec: str, progress: Progress | None) -> int:
    emb = load_embedder(spec)
    updates: list[tuple[str, np.ndarray]] = []
    total = kb.record.chunk_count()
    for rows in kb.record.iter_texts():
        texts = [f"{h}\n{t}" if h else t for _, h, t in rows]
        vectors = emb.encode(texts)
        updates.extend(zip([r[0] for r in rows], vectors, strict=True))
        if progress:
            progress(len(updates), total)
    kb.record.replace_embeddings(updates, {"embedder": emb.name, "dim": emb.dim})
    return len(updates)


@dataclass
class IndexMeasure:
    chunks: int
    queries: int
    recall_at_10: float
    p50_ms: float
    p99_ms: float
    exact_p50_ms: float


def measure_index(kb: KnowledgeBase, queries: int = 200, k: int = 10, seed: int = 1) -> IndexMeasure:
    """HNSW recall@k against exact (brute-force) search over the record's vectors, and query latency."""
    ids, matrix = kb.vectors_matrix()
    if not ids:
        return IndexMeasure(0, 0, 0.0, 0.0, 0.0, 0.0)
    rng = np.random.default_rng(seed)
    # Queries near, not on, stored vectors: a stored vector finds itself too easily.
    picks = rng.choice(len(ids), size=min(queries, len(ids)), replace=False)
    noise = rng.normal(scale=0.05, size=(len(picks), matrix.shape[1])).astype(np.float32)
    qs = matrix[picks] + noise
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    store = kb.store()
    recalls, lat, exact_lat = [], [], []
    for q in qs:
        t0 = time.perf_counter()
        got = {cid for cid, _ in store.search(q, k, None)}
        lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sims = matrix @ q
        top = np.argpartition(-sims, min(k, len(ids)) - 1)[:k]
        exact_lat.append(time.perf_counter() - t0)
        truth = {ids[i] for i in top}
        recalls.append(len(got & truth) / len(truth))
    return IndexMeasure(
        chunks=len(ids),
        queries=len(qs),
        recall_at_10=float(np.mean(recalls)),
        p50_ms=float(np.percentile(lat, 50) * 1e3),
        p99_ms=float(np.percentile(lat, 99) * 1e3),
        exact_p50_ms=float(np.percentile(exact_lat, 50) * 1e3),
    )
