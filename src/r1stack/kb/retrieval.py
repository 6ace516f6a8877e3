"""Hybrid retrieval: dense (vector index) and BM25 candidates fused with reciprocal rank fusion, access-filtered,
at most `kb.max_chunks_per_doc` chunks of one document in the answer."""

from __future__ import annotations

from r1stack.config import Settings
from r1stack.errors import UserError
from r1stack.kb.access import Access, access_for_key
from r1stack.kb.bm25 import bm25_search
from r1stack.kb.embedder import BUNDLED_LANGUAGES, is_bundled
from r1stack.kb.fusion import cap_per_group, rrf
from r1stack.kb.knowledge_base import KnowledgeBase, open_kb
from r1stack.kb.models import Hit
from r1stack.kb.reranker import rerank_scores
from r1stack.kb.text import has_cjk

MODES = ("hybrid", "dense", "bm25")


def visible_doc_keys(kb: KnowledgeBase, access: Access) -> list[str] | None:
    """None: no restriction (admin). Otherwise the keys of documents the caller may see."""
    if access.admin:
        return None
    return [key for key, groups in kb.record.doc_groups().items() if access.may_see(groups)]


def reads_query_language(kb: KnowledgeBase, query: str) -> bool:
    """Whether the knowledge base's embedder reads the query's script (only Chinese is told apart so far)."""
    languages = kb.settings.kb.embedder_languages
    if languages is None:
        languages = list(BUNDLED_LANGUAGES) if is_bundled(kb.embedder_name) else None
    return languages is None or not has_cjk(query) or "zh" in languages


def dense_search(
    kb: KnowledgeBase, query: str, k: int, doc_keys: list[str] | None
) -> list[tuple[str, float]]:
    vector = kb.embedder().encode([query])[0]
    kb.sync_pending()
    store = kb.store()
    try:
        return store.search(vector, k, doc_keys)
    except Exception as e:
        raise UserError(
            f"the vector index of {kb.name!r} failed to answer ({type(e).__name__}: {e}); "
            f"run `r1stack kb verify {kb.name}` and `r1stack kb rebuild {kb.name}`"
        ) from e


def candidate_pool(kb: KnowledgeBase, top_k: int) -> int:
    """How deep each ranking is read: `max(5*top_k, kb.candidate_pool)` chunks."""
    return max(top_k * 5, kb.settings.kb.candidate_pool)


def candidate_rankings(
    kb: KnowledgeBase, query: str, top_k: int, doc_keys: list[str] | None, mode: str = "hybrid"
) -> tuple[list[list[str]], list[float]]:
    """The chunk-id rankings that `search` fuses (dense and/or BM25, `candidate_pool` deep) and their weights."""
    pool = candidate_pool(kb, top_k)
    rankings: list[list[str]] = []
    weights: list[float] = []
    if mode == "hybrid" and not reads_query_language(kb, query):
        mode = "bm25"  # fusing a ranking from a model that cannot read the query only adds noise
    if mode in ("hybrid", "dense"):
        rankings.append([cid for cid, _ in dense_search(kb, query, pool, doc_keys)])
        weights.append(kb.settings.kb.rrf_dense_weight)
    if mode in ("hybrid", "bm25"):
        rankings.append([cid for cid, _ in bm25_search(kb, query, pool, doc_keys)])
        weights.append(1.0)
    return rankings, weights


def search(
    kb: KnowledgeBase, query: str, top_k: int, access: Access, mode: str = "hybrid", rerank: bool = True
) -> list[Hit]:
    if not query.strip():
        raise UserError("the query is empty; give some words to search for")
    if top_k < 1 or top_k > 100:
        raise UserError(f"top_k={top_k} is out of range; use 1..100")
    if mode not in MODES:
        raise UserError(f"unknown search mode {mode!r}; use one of: {', '.join(MODES)}")
    doc_keys = visible_doc_keys(kb, access)
    if doc_keys is not None and not doc_keys:
        return []
    rankings, weights = candidate_rankings(kb, query, top_k, doc_keys, mode)
    fused = rrf(rankings, kb.settings.kb.rrf_k, weights)

    # The record decides what exists and who may see it: a stale or foreign index entry never surfaces.
    chunks = kb.record.chunks([cid for cid, _ in fused])
    docs = {d.doc_id: d for d in kb.record.documents()}
    hits: list[Hit] = []
    for cid, score in fused:
        chunk = chunks.get(cid)
        doc = docs.get(chunk.doc_id) if chunk else None
        if chunk is None or doc is None or not access.may_see(doc.groups):
            continue
        hits.append(Hit(kb.name, doc.doc_id, cid, score, chunk.text, doc.source, chunk.heading, chunk.page))
    if rerank and kb.settings.kb.reranker and hits:
        scores = rerank_scores(kb.settings.kb.reranker, query, [h.text for h in hits])
        for h, s in zip(hits, scores, strict=True):
            h.score = s
        hits.sort(key=lambda h: -h.score)
    return cap_per_document(hits, top_k, kb.settings.kb.max_chunks_per_doc)


def cap_per_document(hits: list[Hit], top_k: int, per_doc: int) -> list[Hit]:
    """The best `top_k` hits with at most `per_doc` chunks of one document unless too few documents are left
    (0: no cap). Four chunks of one document in a top 5 repeat one citation and crowd out the others."""
    return cap_per_group(hits, top_k, per_doc, lambda h: (h.kb, h.document))


def retrieve(
    settings: Settings, kb_names: list[str], query: str, key_id: str | None = None, top_k: int | None = None
) -> list[Hit]:
    """The chat pipeline's entry: hybrid search over several knowledge bases as the caller `key_id` may see."""
    access = access_for_key(settings.kb, key_id)
    k = top_k or settings.kb.top_k
    hits: list[Hit] = []
    for name in dict.fromkeys(kb_names):
        hits.extend(search(open_kb(settings, name), query, k, access))
    hits.sort(key=lambda h: -h.score)
    return cap_per_document(hits, k, settings.kb.max_chunks_per_doc)


class Retriever:
    """`retrieve` bound to settings, for code that holds one service object (the chat pipeline)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def retrieve(
        self, kb_names: list[str], query: str, top_k: int | None = None, key_id: str | None = None
    ) -> list[Hit]:
        return retrieve(self.settings, kb_names, query, key_id, top_k)
