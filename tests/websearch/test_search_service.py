"""The proxy's core without gRPC: query checks, cache, rate limit, provider fallback, domain filtering."""

from __future__ import annotations

import pytest
from websearch_standins import StandIn, searxng_route

from r1stack.websearch.addresses import AddressPolicy
from r1stack.websearch.cache import TTLCache
from r1stack.websearch.domains import DomainFilter
from r1stack.websearch.fetcher import SafeFetcher
from r1stack.websearch.providers import JsonHttp, SearXNG
from r1stack.websearch.ratelimit import TokenBucket
from r1stack.websearch.results import Failure, SearchError
from r1stack.websearch.service import SearchService

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def service(*bases: str, **kwargs) -> SearchService:
    providers = [SearXNG(base, http=JsonHttp("searxng", retries=0)) for base in bases]
    return SearchService(providers, SafeFetcher(AddressPolicy()), **kwargs)


@pytest.mark.parametrize(
    "args,message",
    [(("   ",), "empty query"), (("x" * 501,), "keep it under 500"), (("q", -1), "top_k is -1"),
     (("q", 3, "zh_CN!"), "not a tag like"), (("q", 3, "", "decade"), "time_range 'decade'")],
)  # fmt: skip
def test_bad_queries_are_invalid(args, message):
    with pytest.raises(SearchError) as info:
        service("http://127.0.0.1:9").search(*args)
    assert info.value.kind is Failure.INVALID and message in info.value.message


def test_results_are_cached_until_the_ttl_passes(standin: StandIn):
    standin.routes["/search"] = searxng_route
    clock = Clock()
    s = service(standin.base, cache=TTLCache(ttl_s=60, clock=clock))
    first = s.search("paged attention", top_k=2)
    again = s.search("  Paged   ATTENTION ", top_k=2)
    assert (first.cached, again.cached, again.results) == (False, True, first.results)
    assert len(standin.seen) == 1
    clock.now += 61
    assert s.search("paged attention", top_k=2).cached is False
    assert len(standin.seen) == 2


def test_the_rate_limit_refuses_when_no_token_comes_in_time(standin: StandIn):
    standin.routes["/search"] = searxng_route
    clock = Clock()
    s = service(standin.base, limiter=TokenBucket(rate=0.01, burst=1, clock=clock, sleep=clock.sleep))
    s.search("one")
    with pytest.raises(SearchError) as info:
        s.search("two")
    assert info.value.kind is Failure.RATE_LIMITED and "0.01 searches/s" in info.value.message
    assert len(standin.seen) == 1


def test_the_token_bucket_waits_when_the_wait_fits():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=2, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire(0) for _ in range(3)] == [True, True, False]
    assert bucket.acquire(timeout_s=1.0) and clock.now == pytest.approx(100.5)


def test_a_failing_provider_falls_through_to_the_next(standin: StandIn):
    standin.routes["/search"] = searxng_route
    answer = service("http://127.0.0.1:9", standin.base).search("fallback")
    assert answer.provider == "searxng" and answer.results[0].url.startswith(standin.base)
    with pytest.raises(SearchError) as info:
        service("http://127.0.0.1:9", standin.base).search("down now")  # the stand-in answers 503 to "down"
    assert info.value.kind is Failure.UNAVAILABLE
    assert "searxng failed (HTTP 503) (tried searxng, searxng)" == info.value.message


def test_results_from_refused_domains_are_dropped(standin: StandIn):
    standin.routes["/search"] = searxng_route
    kept = service(standin.base, domains=DomainFilter.build(deny=["127.0.0.1"])).search("q").results
    assert kept == []
    kept = service(standin.base, domains=DomainFilter.build(allow=["127.0.0.1"])).search("q", top_k=3).results
    assert len(kept) == 3
