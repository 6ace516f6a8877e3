"""Bocha (博查) Web Search API (`POST /v1/web-search`, Bearer key): a Chinese-first index with summaries.
It takes no language parameter; its index answers Chinese and English queries alike."""

from __future__ import annotations

from r1stack.websearch.providers.base import JsonHttp, SearchQuery, expect, is_web_url, text_field
from r1stack.websearch.results import Failure, SearchError, WebResult

DEFAULT_ENDPOINT = "https://api.bochaai.com/v1/web-search"
_FRESHNESS = {"": "noLimit", "day": "oneDay", "week": "oneWeek", "month": "oneMonth", "year": "oneYear"}


class Bocha:
    name = "bocha"

    def __init__(self, api_key: str, endpoint: str = DEFAULT_ENDPOINT, http: JsonHttp | None = None):
        self.api_key = api_key
        self.endpoint = endpoint
        self.http = http or JsonHttp(self.name)

    def search(self, query: SearchQuery, deadline: float) -> list[WebResult]:
        body = {
            "query": query.text,
            "count": min(query.top_k, 50),
            "freshness": _FRESHNESS.get(query.time_range, "noLimit"),
            "summary": True,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"}
        data = self.http.request("POST", self.endpoint, deadline, json=body, headers=headers)
        expect(isinstance(data, dict), self.name, "the answer is not a JSON object")
        code = data.get("code", 200)
        if code != 200:
            raise SearchError(Failure.UNAVAILABLE, f"{self.name} reported error {code}: {data.get('msg')}")
        payload = data.get("data", data)
        expect(isinstance(payload, dict), self.name, "'data' is not an object")
        pages = payload.get("webPages") or {}
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
                        # The summary is longer and written for machines; the snippet is the fallback.
                        snippet=text_field(item, "summary") or text_field(item, "snippet"),
                        engine=text_field(item, "siteName") or self.name,
                        published=text_field(item, "datePublished"),
                    )
                )
        return results[: query.top_k]
