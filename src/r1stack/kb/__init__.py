"""Local knowledge base: documents into Chroma or Milvus, hybrid (dense + BM25) retrieval, citations, groups.

The chat pipeline needs only `retrieve`, `format_context` and `sources_payload`.
"""

from r1stack.kb.access import Access, access_for_key
from r1stack.kb.context import format_context, sources_payload
from r1stack.kb.knowledge_base import KnowledgeBase, create_kb, list_kbs, open_kb
from r1stack.kb.models import Hit
from r1stack.kb.retrieval import Retriever, retrieve, search

__all__ = [
    "Access",
    "Hit",
    "KnowledgeBase",
    "access_for_key",
    "create_kb",
    "format_context",
    "list_kbs",
    "open_kb",
    "Retriever",
    "retrieve",
    "search",
    "sources_payload",
]
