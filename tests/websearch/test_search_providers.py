"""Providers against real loopback stand-ins shaped like SearXNG, Bing Web Search v7 and Bocha."""

from __future__ import annotations

import json
import time

import pytest
from websearch_standins import StandIn, html_reply, json_reply, searxng_route

from r1stack.websearch.providers import Bing, Bocha, JsonHttp, SearchQuery, SearXNG, build_provider
from r1stack.websearch.results import Failure, SearchError

pytestmark = pytest.mark.timeout(60)


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def failure(call) -> SearchError:
    with pytest.raises(SearchError) as info:
        call()
    return info.value


def test_searxng_passes_language_and_time_range_through(standin: StandIn):
    standin.routes["/search"] = searxng_route
    provider = SearXNG(standin.base + "/")
    results = provider.search(
        SearchQuery("深度求索 推理模型", top_k=3, language="zh-CN", time_range="week"), soon()
    )
    assert [r.url for r in results] == [f"{standin.base}/doc/{n}" for n in (1, 2, 3)]
    assert results[0].title == "深度求索 推理模型 — result 1" and "language=zh-CN" in results[0].snippet
    (seen,) = standin.seen
    assert seen.query == {
        "q": ["深度求索 推理模型"], "format": ["json"], "pageno": ["1"], "language": ["zh-CN"], "time_range": ["week"]
    }  # fmt: skip


def test_searxng_skips_results_that_are_not_web_links(standin: StandIn):
    answer = {"results": [{"url": "javascript:alert(1)", "title": "x"}, "junk", {"title": "no url"},
                          {"url": "https://ok.example/a", "title": "", "content": 7}]}  # fmt: skip
    standin.routes["/search"] = lambda seen, s: json_reply(answer)
    (result,) = SearXNG(standin.base).search(SearchQuery("q", top_k=5), soon())
    assert (result.url, result.title, result.snippet) == ("https://ok.example/a", "https://ok.example/a", "")


def test_bing_sends_key_market_and_freshness_and_reads_web_pages(standin: StandIn):
    def bing(seen, s):
        if seen.headers.get("ocp-apim-subscription-key") != "bing-secret":
            return json_reply({"_type": "ErrorResponse", "errors": [{"message": "bad key"}]}, status=401)
        count = int(seen.query["count"][0])
        pages = [{"name": f"第{n}条", "url": f"https://news.example.cn/{n}", "snippet": f"摘要{n}",
                  "dateLastCrawled": "2026-11-01T00:00:00Z"} for n in range(1, count + 1)]  # fmt: skip
        return json_reply({"_type": "SearchResponse", "webPages": {"value": pages}})

    standin.routes["/v7.0/search"] = bing
    provider = Bing("bing-secret", endpoint=f"{standin.base}/v7.0/search")
    results = provider.search(SearchQuery("人工智能", top_k=2, language="zh-CN", time_range="week"), soon())
    assert [(r.title, r.url, r.snippet) for r in results] == [
        ("第1条", "https://news.example.cn/1", "摘要1"), ("第2条", "https://news.example.cn/2", "摘要2")
    ]  # fmt: skip
    query = standin.seen[0].query
    assert (query["q"], query["mkt"], query["freshness"], query["count"]) == (
        ["人工智能"],
        ["zh-CN"],
        ["Week"],
        ["2"],
    )
    wrong = Bing("wrong", endpoint=f"{standin.base}/v7.0/search", http=JsonHttp("bing", retries=0))
    assert (
        "bing refused the request (HTTP 401)"
        in failure(lambda: wrong.search(SearchQuery("x", 2), soon())).message
    )


def test_bocha_posts_json_with_bearer_key_and_prefers_summaries(standin: StandIn):
    def bocha(seen, s):
        body = json.loads(seen.body)
        assert seen.headers["authorization"] == "Bearer bocha-secret"
        value = [{"name": f"{body['query']} {n}", "url": f"https://example.cn/{n}", "snippet": "短",
                  "summary": "更长的摘要" if n == 1 else "", "siteName": "示例网"} for n in range(1, 4)]  # fmt: skip
        return json_reply({"code": 200, "log_id": "x", "msg": None,
                           "data": {"_type": "SearchResponse", "webPages": {"value": value}}})  # fmt: skip

    standin.routes["/v1/web-search"] = bocha
    provider = Bocha("bocha-secret", endpoint=f"{standin.base}/v1/web-search")
    results = provider.search(SearchQuery("大模型 私有化部署", top_k=2, time_range="month"), soon())
    assert [(r.title, r.snippet, r.engine) for r in results] == [
        ("大模型 私有化部署 1", "更长的摘要", "示例网"), ("大模型 私有化部署 2", "短", "示例网")
    ]  # fmt: skip
    body = json.loads(standin.seen[0].body)
    assert (body["freshness"], body["count"], body["summary"]) == ("oneMonth", 2, True)


def test_429_and_5xx_are_retried_with_backoff_until_an_answer(standin: StandIn):
    statuses = iter([429, 503])

    def flaky(seen, s):
        status = next(statuses, 200)
        return json_reply({"results": []} if status == 200 else {"error": "busy"}, status=status)

    standin.routes["/search"] = flaky
    provider = SearXNG(standin.base, http=JsonHttp("searxng", retries=2, backoff_s=0.05))
    assert provider.search(SearchQuery("q", 3), soon()) == []
    assert len(standin.seen) == 3


def test_retries_end_in_a_clear_failure(standin: StandIn):
    standin.routes["/search"] = lambda seen, s: json_reply({"error": "slow down"}, status=429)
    provider = SearXNG(standin.base, http=JsonHttp("searxng", retries=1, backoff_s=0.05))
    error = failure(lambda: provider.search(SearchQuery("q", 3), soon()))
    assert (error.kind, error.message) == (Failure.RATE_LIMITED, "searxng is rate limiting (HTTP 429)")
    assert len(standin.seen) == 2
    standin.routes["/search"] = lambda seen, s: (500, {"retry-after": "30"}, b"oops")
    error = failure(lambda: provider.search(SearchQuery("q", 3), soon()))
    # Retry-After of 30 s does not fit in the 5 s budget: fail now rather than sleep past the deadline.
    assert (error.kind, error.message) == (Failure.UNAVAILABLE, "searxng failed (HTTP 500)")
    assert len(standin.seen) == 3


def test_garbage_answers_are_reported_not_crashed_on(standin: StandIn):
    provider = SearXNG(standin.base, http=JsonHttp("searxng", retries=0))
    standin.routes["/search"] = lambda seen, s: html_reply("<html>captcha</html>")
    assert (
        "searxng answered garbage, not JSON"
        in failure(lambda: provider.search(SearchQuery("q", 3), soon())).message
    )
    standin.routes["/search"] = lambda seen, s: json_reply({"results": "nope"})
    assert "no 'results' list" in failure(lambda: provider.search(SearchQuery("q", 3), soon())).message
    standin.routes["/search"] = lambda seen, s: json_reply([1, 2, 3])
    assert "not a JSON object" in failure(lambda: provider.search(SearchQuery("q", 3), soon())).message


def test_a_slow_provider_ends_at_the_deadline(standin: StandIn):
    standin.routes["/search"] = searxng_route  # "sleep..." queries sleep 15 s
    error = failure(lambda: SearXNG(standin.base).search(SearchQuery("sleep please", 3), soon(0.5)))
    assert error.kind is Failure.TIMEOUT and "searxng did not answer within 0.5 s" == error.message


def test_a_provider_that_is_down_is_unavailable():
    provider = SearXNG("http://127.0.0.1:9", http=JsonHttp("searxng", retries=0))
    error = failure(lambda: provider.search(SearchQuery("q", 3), soon()))
    assert error.kind is Failure.UNAVAILABLE and error.message.startswith("cannot reach searxng")


@pytest.mark.parametrize(
    "name,kwargs,message",
    [("bing", {}, "R1STACK_WEBSEARCH__BING_API_KEY"), ("bocha", {}, "R1STACK_WEBSEARCH__BOCHA_API_KEY"),
     ("searxng", {}, "--searxng-url"), ("google", {}, "unknown provider 'google'")],
)  # fmt: skip
def test_build_provider_says_what_is_missing(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_provider(name, **kwargs)
