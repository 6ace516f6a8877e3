"""Guarded web search: the stack's client, and the search proxy (its own process) that alone reaches the web.

The stack calls `WebSearchClient(settings.websearch).search(...)`; the proxy runs `r1stack search-proxy serve`.
"""

from __future__ import annotations

from r1stack.websearch.client import UNAVAILABLE, FetchOutcome, SearchOutcome, WebSearchClient
from r1stack.websearch.context import WEB_SEARCH_TOOL, format_context, run_web_search_tool, sources
from r1stack.websearch.results import FetchedPage, WebResult

__all__ = [
    "UNAVAILABLE",
    "WEB_SEARCH_TOOL",
    "FetchOutcome",
    "FetchedPage",
    "SearchOutcome",
    "WebResult",
    "WebSearchClient",
    "format_context",
    "run_web_search_tool",
    "sources",
]
