"""The BM25 side of retrieval: a bm25s index over the record's pre-tokenised chunks, cached per generation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from r1stack.kb.knowledge_base import KnowledgeBase
from r1stack.kb.text import bm25_tokens


@dataclass
class BM25Index:
    generation: int
    chunk_ids: list[str]
    doc_keys: np.ndarray
    retriever: object | None  # None when the knowledge base is empty


def bm25_index(kb: KnowledgeBase) -> BM25Index:
    with kb.lock:
        gen = kb.record.generation()
        cached = kb.bm25_cache
        if isinstance(cached, BM25Index) and cached.generation == gen:
            return cached
        import bm25s

        rows = kb.record.bm25_rows()
        retriever = None
        if rows:
            retriever = bm25s.BM25()
            # An empty chunk still needs one token for bm25s to keep row positions aligned.
            retriever.index([r[2].split() or ["\x00"] for r in rows], show_progress=False)
        kb.bm25_cache = BM25Index(gen, [r[0] for r in rows], np.array([r[1] for r in rows]), retriever)
        return kb.bm25_cache


def bm25_search(kb: KnowledgeBase, query: str, k: int, doc_keys: list[str] | None) -> list[tuple[str, float]]:
    """Top-k (chunk id, score) with score > 0, only from `doc_keys` when given."""
    index = bm25_index(kb)
    tokens = bm25_tokens(query)
    if index.retriever is None or not tokens:
        return []
    scores = np.asarray(index.retriever.get_scores(tokens), dtype=np.float64)
    if doc_keys is not None:
        scores = np.where(np.isin(index.doc_keys, list(doc_keys)), scores, 0.0)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(index.chunk_ids[i], float(scores[i])) for i in top if scores[i] > 0]
