"""SearXNG's JSON API (`/search?format=json`): the self-hosted metasearch engine privacy-minded sites run."""

from __future__ import annotations

from r1stack.websearch.providers.base import JsonHttp, SearchQuery, expect, is_web_url, text_field
from r1stack.websearch.results import WebResult


class SearXNG:
    name = "searxng"

    def __init__(self, base_url: str, http: JsonHttp | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = http or JsonHttp(self.name)

    def search(self, query: SearchQuery, deadline: float) -> list[WebResult]:
        params = {"q": query.text, "format": "json", "pageno": 1}
        if query.language:
            params["language"] = query.language
        if query.time_range:
            params["time_range"] = query.time_range
        data = self.http.request("GET", f"{self.base_url}/search", deadline, params=params)
        expect(isinstance(data, dict), self.name, "the answer is not a JSON object")
        items = data.get("results")
        expect(isinstance(items, list), self.name, "no 'results' list in the answer")
        results = []
        for item in items:
            if not isinstance(item, dict):
                continue
            url = text_field(item, "url")
            if not is_web_url(url):
                continue
            results.append(
                WebResult(
                    title=text_field(item, "title") or url,
                    url=url,
                    snippet=text_field(item, "content"),
                    engine=text_field(item, "engine"),
                    published=text_field(item, "publishedDate"),
                )
            )
        return results[: query.top_k]
