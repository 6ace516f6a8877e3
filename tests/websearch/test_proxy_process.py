"""The acceptance path with real processes on loopback: a stand-in SearXNG, the proxy started as
`r1stack search-proxy serve`, and the stack's WebSearchClient calling it over gRPC."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest
from websearch_standins import (
    StandIn,
    html_reply,
    proxy_env,
    r1stack_command,
    redirect,
    running_proxy,
    searxng_route,
)

from r1stack.config import WebSearchSettings
from r1stack.websearch import WebSearchClient, format_context, run_web_search_tool, sources

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def web() -> StandIn:
    """Stand-in SearXNG at /search, plus pages the proxy may fetch."""
    server = StandIn()
    server.routes["/search"] = searxng_route
    server.routes["/doc/1"] = lambda seen, s: html_reply(
        "<title>Doc one</title><main><p>First source.</p></main>"
    )
    server.routes["/to-metadata"] = lambda seen, s: redirect("http://169.254.169.254/latest/meta-data/")
    server.routes["/to-loopback"] = lambda seen, s: redirect(f"http://127.0.0.2:{s.port}/doc/1")
    server.routes["/setup.exe"] = lambda seen, s: (
        200,
        {"content-type": "application/octet-stream"},
        b"MZ\x90",
    )
    server.routes["/huge"] = lambda seen, s: (
        200,
        {"content-type": "text/html", "content-length": "2147483648"},
        b"",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(web: StandIn, tmp_path_factory):
    # The stand-ins live on 127.0.0.1, so the proxy may fetch from there only because this CIDR is trusted.
    args = ("--provider", "searxng", "--searxng-url", web.base, "--trust-cidr", "127.0.0.1/32")
    with running_proxy(tmp_path_factory.mktemp("proxy"), *args) as process:
        yield process


def client_for(address: str, **settings) -> WebSearchClient:
    return WebSearchClient(WebSearchSettings(proxy_address=address, **settings))


def test_search_returns_the_standin_urls_as_numbered_sources(proxy, web: StandIn):
    with client_for(proxy.address) as client:
        outcome = client.search("DeepSeek R1 推理", top_k=3, language="zh-CN")
        assert outcome.ok, outcome.error
        assert [r.url for r in outcome.results] == [f"{web.base}/doc/{n}" for n in (1, 2, 3)]
        assert outcome.provider == "searxng" and not outcome.cached
        asked = [s for s in web.seen if s.path == "/search" and s.query["q"] == ["DeepSeek R1 推理"]]
        assert asked[0].query["language"] == ["zh-CN"]
        context = format_context(outcome.results, start_index=2)
        assert context.startswith(f"[2] DeepSeek R1 推理 — result 1\nURL: {web.base}/doc/1\n")
        assert f"[4] DeepSeek R1 推理 — result 3\nURL: {web.base}/doc/3" in context
        assert [s["url"] for s in sources(outcome.results)] == [r.url for r in outcome.results]
        again = client.search("DeepSeek R1 推理", top_k=3, language="zh-CN")
        assert again.cached and again.results == outcome.results
        assert len([s for s in web.seen if s.query.get("q") == ["DeepSeek R1 推理"]]) == 1
    log = proxy.log_text()
    assert "Search -> OK" in log and "DeepSeek" not in log  # the audit line names no query


def test_the_web_search_tool_call_runs_through_the_proxy(proxy, web: StandIn):
    with client_for(proxy.address) as client:
        text, outcome = run_web_search_tool(client, '{"query": "kv cache", "top_k": 2}', start_index=5)
        assert outcome.ok and text.startswith("[5] kv cache — result 1") and "[6] kv cache — result 2" in text
        text, outcome = run_web_search_tool(client, '{"top_k": 2}')
        assert text == "web search unavailable: bad web_search arguments ('query' must be a non-empty string)"


def test_fetch_reads_a_page_inside_the_trusted_cidr(proxy, web: StandIn):
    with client_for(proxy.address) as client:
        outcome = client.fetch(f"{web.base}/doc/1")
    assert outcome.ok, outcome.error
    assert (outcome.page.title, outcome.page.text, outcome.page.final_url) == (
        "Doc one", "First source.", f"{web.base}/doc/1"
    )  # fmt: skip


@pytest.mark.parametrize(
    "path,message",
    [("/to-metadata", "169.254.169.254 is a cloud metadata address"),
     ("/to-loopback", "127.0.0.2 is a loopback address"),
     ("/setup.exe", "is application/octet-stream, not text"),
     ("/huge", "2147483648 bytes, over the limit")],
)  # fmt: skip
def test_fetch_refusals_come_back_as_clear_messages(proxy, web: StandIn, path, message):
    with client_for(proxy.address) as client:
        outcome = client.fetch(f"{web.base}{path}")
    assert outcome.page is None and outcome.error.startswith("web search unavailable: ")
    assert message in outcome.error


@pytest.mark.parametrize(
    "query,message",
    [("", "web search unavailable: empty query; send the words to search for"),
     ("garbage please", "web search unavailable: searxng answered garbage, not JSON"),
     ("down again", "web search unavailable: searxng failed (HTTP 503)")],
)  # fmt: skip
def test_bad_input_and_bad_providers_come_back_as_clear_messages(proxy, query, message):
    with client_for(proxy.address) as client:
        outcome = client.search(query)
    assert outcome.results == [] and outcome.error.startswith(message)


def test_a_provider_sleeping_15_s_ends_within_the_default_timeout(proxy):
    settings = WebSearchSettings(proxy_address=proxy.address)
    assert settings.timeout_s == 10.0
    started = time.monotonic()
    with WebSearchClient(settings) as client:
        outcome = client.search("sleep for fifteen seconds")
    elapsed = time.monotonic() - started
    # The proxy answers 0.25 s before the caller's deadline; what is left of it depends on the machine's speed.
    m = re.fullmatch(r"searxng did not answer within (\d+\.\d+) s", outcome.reason)
    assert m and 9.0 <= float(m.group(1)) <= 10.0, outcome.reason  # within the 10 s default, never past it
    assert outcome.error == f"web search unavailable: {outcome.reason}"
    assert elapsed < 15  # it did not wait for the provider


def test_the_caller_timeout_reaches_the_proxy(proxy):
    with client_for(proxy.address, timeout_s=1.5) as client:
        outcome = client.search("sleep shorter")
    m = re.fullmatch(r"web search unavailable: searxng did not answer within (\d+\.\d+) s", outcome.error)
    # The proxy keeps a 0.25 s margin from what gRPC says is left; clocks and rounding make the figure approximate,
    # so the bar is what matters to the caller: a budget taken from its 1.5 s, never the 10 s default.
    assert m and 0.9 <= float(m.group(1)) <= 1.5, outcome.error


def test_a_proxy_that_is_not_running_is_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with client_for(f"127.0.0.1:{port}", timeout_s=3) as client:
        outcome = client.search("anything")
    assert outcome.error.startswith(
        f"web search unavailable: cannot reach the search proxy at 127.0.0.1:{port}"
    )
    assert (
        WebSearchClient(WebSearchSettings())
        .search("x")
        .error.startswith("web search unavailable: no search proxy is configured")
    )


def test_a_client_outside_the_allowlist_is_refused(tmp_path):
    web = StandIn()
    web.routes["/search"] = searxng_route
    web.start()
    try:
        args = ("--searxng-url", web.base, "--allow-client", "10.0.0.0/8", "--allow-client", "fd00::/8")
        with running_proxy(tmp_path, *args) as proxy, client_for(proxy.address) as client:
            outcome = client.search("who may ask")
            fetched = client.fetch(f"{web.base}/search")
        assert "is not in the search proxy's allowlist" in outcome.error
        assert "is not in the search proxy's allowlist" in fetched.error
        assert web.seen == []
        assert "refused client" in proxy.log_text()
    finally:
        web.stop()


def test_mutual_tls_refuses_a_client_without_the_certificate(tmp_path, certs):
    web = StandIn()
    web.routes["/search"] = searxng_route
    web.start()
    tls = (
        "--tls-cert",
        str(certs.server_cert),
        "--tls-key",
        str(certs.server_key),
        "--client-ca",
        str(certs.ca),
    )
    try:
        with running_proxy(tmp_path, "--searxng-url", web.base, *tls) as proxy:
            good = dict(tls_ca=certs.ca, tls_cert=certs.client_cert, tls_key=certs.client_key, timeout_s=5)
            with client_for(proxy.address, **good) as client:
                outcome = client.search("with certificate")
            assert outcome.ok, outcome.error
            assert outcome.results[0].url == f"{web.base}/doc/1"
            refused = {
                "no certificate": dict(tls_ca=certs.ca, timeout_s=5),
                "another CA's certificate": dict(
                    tls_ca=certs.ca, tls_cert=certs.stranger_cert, tls_key=certs.stranger_key, timeout_s=5
                ),
                "plaintext": dict(timeout_s=5),
            }
            for name, settings in refused.items():
                with client_for(proxy.address, **settings) as client:
                    outcome = client.search(f"without certificate: {name}")
                assert not outcome.ok, name
                assert outcome.error.startswith("web search unavailable: cannot reach the search proxy"), name
        assert [s.query["q"] for s in web.seen] == [["with certificate"]]
    finally:
        web.stop()


def run_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        r1stack_command(*args), capture_output=True, text=True, env=proxy_env(tmp_path), timeout=60
    )


def test_the_cli_asks_the_proxy_and_reports_failures_in_one_line(proxy, web: StandIn, tmp_path):
    done = run_cli(
        tmp_path, "search-proxy", "search", "cli check", "--top-k", "2", "--address", proxy.address
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"[1] cli check — result 1\nURL: {web.base}/doc/1")
    done = run_cli(tmp_path, "search-proxy", "search", "  ", "--address", proxy.address)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: web search unavailable: empty query; send the words to search for"
    done = run_cli(tmp_path, "search-proxy", "fetch", f"{web.base}/doc/1", "--address", proxy.address)
    assert done.returncode == 0 and "First source." in done.stdout


@pytest.mark.parametrize(
    "args,message",
    [(("--provider", "google"), "unknown provider 'google'"),
     (("--searxng-url", "http://127.0.0.1:9", "--trust-cidr", "intranet"), "--trust-cidr: 'intranet' is not a CIDR"),
     (("--searxng-url", "http://127.0.0.1:9", "--tls-cert", "cert.pem"), "--tls-cert and --tls-key go together"),
     (("--provider", "bocha"), "R1STACK_WEBSEARCH__BOCHA_API_KEY")],
)  # fmt: skip
def test_serve_rejects_bad_configuration_in_one_line(tmp_path, args, message):
    done = run_cli(tmp_path, "search-proxy", "serve", "--listen", "127.0.0.1:0", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_a_slow_page_ends_at_the_callers_deadline(proxy, web: StandIn):
    def slow(seen, s):
        time.sleep(15)
        return html_reply("<p>too late</p>")

    web.routes["/slow-page"] = slow
    with client_for(proxy.address, timeout_s=1.5) as client:
        outcome = client.fetch(f"{web.base}/slow-page")
    # The proxy's budget is the caller's 1.5 s less its 0.25 s margin, as gRPC's deadline arithmetic gives it at
    # the proxy: 1.25 s give or take the hop (one CI run saw 1.26).
    got = re.fullmatch(
        rf"web search unavailable: {re.escape(web.base)}/slow-page did not answer within ([\d.]+) s",
        outcome.error,
    )
    assert got and abs(float(got.group(1)) - 1.25) <= 0.03, outcome.error


def test_serve_on_a_busy_port_says_so(proxy, tmp_path):
    done = run_cli(
        tmp_path, "search-proxy", "serve", "--listen", proxy.address, "--searxng-url", "http://127.0.0.1:9"
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: cannot listen on {proxy.address}")
