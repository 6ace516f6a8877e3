"""What the chat pipeline does with search results: numbered sources for the prompt, the source list for the
answer, and the `web_search` tool (OpenAI function-calling schema) a model may call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from r1stack.websearch.client import SearchOutcome, WebSearchClient
from r1stack.websearch.results import WebResult

WEB_SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": (
            "Search the web for current information. Returns numbered sources; cite them as [n] in the answer."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to search for, in the user's language."},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "description": "How many results."},
                "language": {"type": "string", "description": "Language tag such as 'en' or 'zh-CN'."},
                "time_range": {"type": "string", "enum": ["day", "week", "month", "year"]},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}


def format_context(results: Sequence[WebResult], start_index: int = 1) -> str:
    """Results as numbered sources ("[n] title / URL / snippet"), numbering from `start_index` so that web
    sources can follow knowledge-base sources in one list."""
    blocks = []
    for n, result in enumerate(results, start=start_index):
        lines = [f"[{n}] {result.title}", f"URL: {result.url}"]
        if result.published:
            lines.append(f"Published: {result.published}")
        if result.snippet:
            lines.append(result.snippet)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def sources(results: Sequence[WebResult], start_index: int = 1) -> list[dict[str, Any]]:
    """The list returned beside the answer: index (as cited), title and URL of each source."""
    return [
        {"index": n, "title": r.title, "url": r.url, "type": "web"}
        for n, r in enumerate(results, start=start_index)
    ]


def _arguments(arguments: str | dict[str, Any]) -> dict[str, Any]:
    args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
    if not isinstance(args, dict):
        raise ValueError("arguments are not a JSON object")
    return args


def tool_query(arguments: str | dict[str, Any], fallback_query: str = "") -> str:
    """The query a `web_search` call will run: its own, or `fallback_query` when it gave none."""
    try:
        query = _arguments(arguments).get("query")
    except (ValueError, TypeError):
        return ""
    if isinstance(query, str) and query.strip():
        return query.strip()
    return fallback_query.strip() if query in (None, "") else ""


def run_web_search_tool(
    client: WebSearchClient,
    arguments: str | dict[str, Any],
    start_index: int = 1,
    *,
    fallback_query: str = "",
    timeout_s: float | None = None,
) -> tuple[str, SearchOutcome]:
    """Carries out one `web_search` tool call: (the tool message's content, the outcome). Never raises: bad
    arguments from the model and search failures both come back as text the model can read.

    `fallback_query` (the user's question) stands in for a missing or empty query: a small model often calls
    the tool without one, and searching for what the user asked is what it meant."""
    try:
        args = _arguments(arguments)
        query = args.get("query")
        if query in (None, "") and fallback_query.strip():
            query = fallback_query.strip()
        if not isinstance(query, str) or not query.strip():
            raise ValueError("'query' must be a non-empty string")
        top_k = args.get("top_k")
        top_k = int(top_k) if isinstance(top_k, (int, float)) and not isinstance(top_k, bool) else None
        language = args.get("language") if isinstance(args.get("language"), str) else None
        time_range = args.get("time_range") if isinstance(args.get("time_range"), str) else ""
    except (ValueError, TypeError) as e:
        outcome = SearchOutcome(error=f"web search unavailable: bad web_search arguments ({e})")
        return outcome.error or "", outcome
    outcome = client.search(query, top_k=top_k, language=language, time_range=time_range, timeout_s=timeout_s)
    if not outcome.ok:
        return outcome.error or "", outcome
    if not outcome.results:
        return "web search found no results", outcome
    return format_context(outcome.results, start_index), outcome
