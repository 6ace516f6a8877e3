"""Bing Web Search API v7 (`/v7.0/search`, key in Ocp-Apim-Subscription-Key); markets such as zh-CN cover
Chinese. The endpoint is configurable, so a compatible gateway can stand in for Microsoft's."""

from __future__ import annotations

import datetime as dt

from r1stack.websearch.providers.base import JsonHttp, SearchQuery, expect, is_web_url, text_field
from r1stack.websearch.results import Failure, SearchError, WebResult

DEFAULT_ENDPOINT = "https://api.bing.microsoft.com/v7.0/search"
_FRESHNESS = {"day": "Day", "week": "Week", "month": "Month"}


def _freshness(time_range: str) -> str | None:
    if time_range == "year":  # Bing has no "Year" keyword but takes a date range
        today = dt.date.today()
        return f"{today - dt.timedelta(days=365)}..{today}"
    return _FRESHNESS.get(time_range)


class Bing:
    name = "bing"

    def __init__(self, api_key: str, endpoint: str = DEFAULT_ENDPOINT, http: JsonHttp | None = None):
        self.api_key = api_key
        self.endpoint = endpoint
        self.http = http or JsonHttp(self.name)

    def search(self, query: SearchQuery, deadline: float) -> list[WebResult]:
        params: dict[str, str | int] = {
            "q": query.text,
            "count": min(query.top_k, 50),
            "textDecorations": "false",
        }
        if query.language:
            params["mkt"] = query.language
            params["setLang"] = query.language
        freshness = _freshness(query.time_range)
        if freshness:
            params["freshness"] = freshness
        headers = {"Ocp-Apim-Subscription-Key": self.api_key}
        data = self.http.request("GET", self.endpoint, deadline, params=params, headers=headers)
        expect(isinstance(data, dict), self.name, "the answer is not a JSON object")
        if data.get("_type") == "ErrorResponse":
            errors = data.get("errors") or [{}]
            message = errors[0].get("message", "unknown error") if isinstance(errors[0], dict) else "unknown"
            raise SearchError(Failure.UNAVAILABLE, f"{self.name} reported an error: {message}")
        pages = data.get("webPages", {})
        expect(isinstance(pages, dict), self.name, "'webPages' is not an object")
        items = pages.get("value", [])
        expect(isinstance(items, list), self.name, "'webPages.value' is not a list")
        results = []
        for item in items:
            if isinstance(item, dict) and is_web_url(text_field(item, "url")):
                url = text_field(item, "url")
                results.append(
                    WebResult(
                        title=text_field(item, "name") or url,
                        url=url,
                        snippet=text_field(item, "snippet"),
                        engine=self.name,
                        published=text_field(item, "datePublished") or text_field(item, "dateLastCrawled"),
                    )
                )
        return results[: query.top_k]
