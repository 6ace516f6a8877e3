"""The proxy's work, free of gRPC: check a query, answer from the cache or the providers in turn (paced by the
rate limit, inside one time budget), drop results from refused domains; fetch pages through the SSRF guard."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from r1stack.websearch.cache import TTLCache
from r1stack.websearch.domains import DomainFilter
from r1stack.websearch.fetcher import SafeFetcher
from r1stack.websearch.providers import Provider, SearchQuery
from r1stack.websearch.ratelimit import TokenBucket
from r1stack.websearch.results import Failure, FetchedPage, SearchError, WebResult

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_FETCH_CHARS = 500_000
TIME_RANGES = ("", "day", "week", "month", "year")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class SearchAnswer:
    results: list[WebResult]
    provider: str
    cached: bool


class SearchService:
    def __init__(
        self,
        providers: Sequence[Provider],
        fetcher: SafeFetcher,
        *,
        domains: DomainFilter | None = None,
        timeout_s: float = 10.0,
        cache: TTLCache[SearchAnswer] | None = None,
        limiter: TokenBucket | None = None,
        default_top_k: int = 5,
        max_top_k: int = 20,
    ):
        if not providers:
            raise ValueError("the search proxy needs at least one provider")
        self.providers = list(providers)
        self.fetcher = fetcher
        self.domains = domains or DomainFilter()
        self.timeout_s = timeout_s
        self.cache = cache if cache is not None else TTLCache(ttl_s=300)
        self.limiter = limiter or TokenBucket(rate=0, burst=1)
        self.default_top_k = default_top_k
        self.max_top_k = max_top_k

    def check(self, text: str, top_k: int, language: str, time_range: str) -> SearchQuery:
        """The query as the providers get it, or SearchError(INVALID) saying what to mend."""
        text = " ".join(text.split())
        if not text:
            raise SearchError(Failure.INVALID, "empty query; send the words to search for")
        if len(text) > MAX_QUERY_CHARS:
            raise SearchError(
                Failure.INVALID, f"query is {len(text)} characters; keep it under {MAX_QUERY_CHARS}"
            )
        if top_k < 0:
            raise SearchError(
                Failure.INVALID, f"top_k is {top_k}; use 0 for the default or a positive number"
            )
        language = language.strip()
        if language.lower() in ("all", "auto"):
            language = ""
        if language and not _LANGUAGE.match(language):
            raise SearchError(
                Failure.INVALID, f"language {language!r} is not a tag like 'en', 'zh-CN' or 'de-DE'"
            )
        if time_range not in TIME_RANGES:
            raise SearchError(
                Failure.INVALID, f"time_range {time_range!r} is not one of: day, week, month, year (or empty)"
            )
        top_k = min(top_k or self.default_top_k, self.max_top_k)
        return SearchQuery(text=text, top_k=top_k, language=language, time_range=time_range)

    def search(
        self,
        text: str,
        top_k: int = 0,
        language: str = "",
        time_range: str = "",
        budget_s: float | None = None,
    ) -> SearchAnswer:
        """Results, or SearchError; returns or fails within `budget_s` (the configured timeout at most)."""
        query = self.check(text, top_k, language, time_range)
        key = (query.text.casefold(), query.top_k, query.language.lower(), query.time_range)
        hit = self.cache.get(key)
        if hit is not None:
            return SearchAnswer(hit.results, hit.provider, cached=True)
        budget = self.timeout_s if budget_s is None else min(self.timeout_s, budget_s)
        deadline = time.monotonic() + budget
        failure: SearchError | None = None
        for provider in self.providers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not self.limiter.acquire(timeout_s=remaining):
                failure = SearchError(
                    Failure.RATE_LIMITED,
                    f"the proxy's own rate limit ({self.limiter.rate:g} searches/s) is reached; try again shortly",
                )
                break
            try:
                results = provider.search(query, deadline)
            except SearchError as e:
                log.warning("provider %s failed: %s", provider.name, e.message)
                failure = e
                continue
            kept = [r for r in results if self.domains.refusal(urlsplit(r.url).hostname or "") is None]
            answer = SearchAnswer(kept[: query.top_k], provider.name, cached=False)
            self.cache.put(key, answer)
            return answer
        if failure is None:
            failure = SearchError(Failure.TIMEOUT, f"no provider answered within {budget:.3g} s")
        if len(self.providers) > 1:
            names = ", ".join(p.name for p in self.providers)
            failure = SearchError(failure.kind, f"{failure.message} (tried {names})")
        raise failure

    def fetch(self, url: str, max_chars: int = 0, budget_s: float | None = None) -> FetchedPage:
        if not url.strip():
            raise SearchError(Failure.INVALID, "empty URL; send the http(s) address of the page to fetch")
        if max_chars < 0:
            raise SearchError(
                Failure.INVALID, f"max_chars is {max_chars}; use 0 for the default or a positive number"
            )
        # The cap keeps the reply well under gRPC's 4 MB message limit even for 4-byte UTF-8 characters.
        max_chars = min(max_chars, MAX_FETCH_CHARS) if max_chars else None
        return self.fetcher.fetch(url, max_chars, budget_s=budget_s)

    def close(self) -> None:
        self.fetcher.close()
        for provider in self.providers:
            http = getattr(provider, "http", None)
            if http is not None:
                http.close()
