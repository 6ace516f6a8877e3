"""The SSRF-safe fetcher against real loopback servers, with an injected resolver standing in for DNS."""

from __future__ import annotations

import ipaddress
import ssl
import time

import pytest
from websearch_standins import StandIn, _write, html_reply, make_ca, make_leaf, redirect

from r1stack.websearch.addresses import AddressPolicy
from r1stack.websearch.domains import DomainFilter
from r1stack.websearch.fetcher import FetchLimits, SafeFetcher
from r1stack.websearch.results import Failure, SearchError

pytestmark = pytest.mark.timeout(60)

LOOPBACK_ONLY = AddressPolicy.from_cidrs(["127.0.0.1/32"])
ARTICLE = """<html><head><title>Paged attention
explained</title><script>var secret = "do-not-leak";</script><style>p{color:red}</style></head>
<body><nav>Home | About | Login</nav><main><h1>Paged attention</h1><p>KV cache blocks are fixed size.</p>
<p>Prefixes are shared.</p></main><footer>Copyright</footer></body></html>"""


class Resolver:
    """Answers from a table and counts its calls; any name not in the table does not resolve."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str):
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"[test resolver] {host} does not resolve")
        return [ipaddress.ip_address(a) for a in self.table[host]]


def fetcher(policy=LOOPBACK_ONLY, resolver=None, **limits) -> SafeFetcher:
    return SafeFetcher(policy, DomainFilter(), FetchLimits(**limits), resolver=resolver or Resolver({}))


def refused(f: SafeFetcher, url: str, kind: Failure = Failure.REFUSED) -> str:
    with pytest.raises(SearchError) as info:
        f.fetch(url)
    assert info.value.kind is kind, info.value.message
    return info.value.message


def test_html_becomes_readable_text_through_a_trusted_cidr(standin: StandIn):
    standin.routes["/article"] = lambda seen, s: html_reply(ARTICLE)
    page = fetcher().fetch(f"{standin.base}/article#section")
    assert page.title == "Paged attention explained"
    assert "KV cache blocks are fixed size.\nPrefixes are shared." in page.text
    for noise in ("do-not-leak", "color:red", "Login", "Copyright"):
        assert noise not in page.text
    assert page.final_url == f"{standin.base}/article" and page.content_type == "text/html"


def test_loopback_is_refused_without_trust_and_nothing_connects(standin: StandIn):
    standin.routes["/article"] = lambda seen, s: html_reply(ARTICLE)
    message = refused(fetcher(policy=AddressPolicy()), f"{standin.base}/article")
    assert "127.0.0.1 is a loopback address" in message
    assert standin.seen == []


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.7", "192.168.0.1", "169.254.169.254", "100.100.100.200", "fd00:ec2::254",
     "::ffff:127.0.0.1", "::1", "fe80::1", "224.0.0.1", "0.0.0.0"],
)  # fmt: skip
def test_a_name_resolving_to_a_refused_address_is_refused(address):
    resolver = Resolver({"innocent.test": [address]})
    message = refused(fetcher(policy=AddressPolicy(), resolver=resolver), "http://innocent.test/")
    assert str(ipaddress.ip_address(address)) in message
    assert resolver.calls == ["innocent.test"]


def test_one_bad_record_among_good_ones_condemns_the_name(standin: StandIn):
    resolver = Resolver({"mixed.test": ["127.0.0.1", "10.0.0.1"]})
    message = refused(fetcher(resolver=resolver), f"http://mixed.test:{standin.port}/")
    assert "10.0.0.1 is a private address" in message and standin.seen == []


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(standin: StandIn):
    # "pinned.test" exists only in the injected resolver: if anything resolved it again, the fetch would fail.
    standin.routes["/article"] = lambda seen, s: html_reply(ARTICLE)
    resolver = Resolver({"pinned.test": ["127.0.0.1"]})
    page = fetcher(resolver=resolver).fetch(f"http://pinned.test:{standin.port}/article")
    assert "Prefixes are shared." in page.text
    assert resolver.calls == ["pinned.test"]
    assert standin.seen[0].headers["host"] == f"pinned.test:{standin.port}"
    assert page.final_url == f"http://pinned.test:{standin.port}/article"


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.2:{port}/article", "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/",
     "http://[::ffff:127.0.0.1]:{port}/", "http://100.100.100.200/", "http://[fd00:ec2::254]/",
     "http://10.0.0.1/", "http://rebind.test/"],
)  # fmt: skip
def test_a_redirect_chain_ending_at_a_refused_address_is_refused(standin: StandIn, target: str):
    target = target.format(port=standin.port)
    standin.routes["/r1"] = lambda seen, s: redirect("/r2", 301)
    standin.routes["/r2"] = lambda seen, s: redirect(target, 307)
    resolver = Resolver({"rebind.test": ["10.9.8.7"]})
    message = refused(fetcher(resolver=resolver), f"{standin.base}/r1")
    assert message.startswith("refused http")
    assert standin.paths() == ["/r1", "/r2"]


def test_redirects_inside_the_trusted_range_are_followed_and_a_loop_is_cut(standin: StandIn):
    standin.routes["/old"] = lambda seen, s: redirect(f"{s.base}/article")
    standin.routes["/article"] = lambda seen, s: html_reply(ARTICLE)
    standin.routes["/loop"] = lambda seen, s: redirect("/loop")
    page = fetcher().fetch(f"{standin.base}/old")
    assert page.final_url == f"{standin.base}/article" and page.url == f"{standin.base}/old"
    assert "redirects more than 3 times" in refused(fetcher(max_redirects=3), f"{standin.base}/loop")
    assert standin.paths().count("/loop") == 4


@pytest.mark.parametrize(
    "url,why",
    [("file:///etc/passwd", "only http and https"), ("ftp://example.com/x", "only http and https"),
     ("gopher://127.0.0.1:70/", "only http and https"), ("http://user:pw@example.com/", "credentials"),
     ("http:///nohost", "no host"), ("not a url", "only http and https")],
)  # fmt: skip
def test_bad_urls_are_invalid(url, why):
    assert why in refused(fetcher(), url, Failure.INVALID)


def test_binary_types_are_refused(standin: StandIn):
    standin.routes["/file.zip"] = lambda seen, s: (
        200,
        {"content-type": "application/zip"},
        b"PK\x03\x04" * 10,
    )
    standin.routes["/untyped"] = lambda seen, s: (200, {}, b"\x89PNG\x00\x00\x00binary")
    assert "application/zip, not text" in refused(fetcher(), f"{standin.base}/file.zip", Failure.UNSUITABLE)
    assert "looks binary" in refused(fetcher(), f"{standin.base}/untyped", Failure.UNSUITABLE)


def test_a_huge_page_is_refused_by_its_declared_length_and_by_counting(standin: StandIn):
    huge = 2 * 1024**3
    standin.routes["/huge"] = lambda seen, s: (
        200,
        {"content-type": "text/plain", "content-length": str(huge)},
        b"x",
    )

    def endless(seen, s):  # no length declared: the fetcher must count and stop
        return (
            200,
            {"content-type": "text/plain", "x-no-length": "1"},
            b"a" * 60_000,
        )

    standin.routes["/long"] = endless
    message = refused(fetcher(), f"{standin.base}/huge", Failure.UNSUITABLE)
    assert f"{huge} bytes, over the limit of 2000000 bytes" in message
    message = refused(fetcher(max_bytes=10_000), f"{standin.base}/long", Failure.UNSUITABLE)
    assert "larger than the limit of 10000 bytes" in message
    assert len(fetcher(max_bytes=60_000).fetch(f"{standin.base}/long").text) == 20_000  # cut at max_chars


def test_a_slow_page_ends_at_the_fetch_timeout(standin: StandIn):
    def slow(seen, s):
        time.sleep(5)
        return html_reply(ARTICLE)

    standin.routes["/slow"] = slow
    assert "did not answer within 0.5 s" in refused(
        fetcher(timeout_s=0.5), f"{standin.base}/slow", Failure.TIMEOUT
    )


def test_text_in_a_declared_charset_is_decoded(standin: StandIn):
    text = "深度求索发布推理模型。"
    standin.routes["/gbk"] = lambda seen, s: (
        200,
        {"content-type": "text/plain; charset=gbk"},
        text.encode("gbk"),
    )
    standin.routes["/gbk.html"] = lambda seen, s: html_reply(
        f"<title>标题</title><p>{text}</p>", charset="gbk"
    )
    assert fetcher().fetch(f"{standin.base}/gbk").text == text
    page = fetcher().fetch(f"{standin.base}/gbk.html")
    assert (page.title, page.text) == ("标题", text)


def test_a_denied_domain_is_refused_before_resolving():
    resolver = Resolver({"tracker.example": ["8.8.8.8"]})
    f = SafeFetcher(AddressPolicy(), DomainFilter.build(deny=["example"]), resolver=resolver)
    assert "deny list" in refused(f, "http://tracker.example/")
    assert resolver.calls == []


def test_https_to_the_pinned_address_verifies_the_certificate_for_the_name(tmp_path):
    ca_key, ca = make_ca("fetch test CA")
    key, cert = make_leaf(ca_key, ca, "site.test", dns=["site.test"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(_write(tmp_path / "c.pem", cert=cert), _write(tmp_path / "k.pem", key=key))
    server = StandIn(tls=server_ctx)
    server.routes["/article"] = lambda seen, s: html_reply(ARTICLE)
    server.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(_write(tmp_path / "ca.pem", cert=ca)))
        resolver = Resolver({"site.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        f = SafeFetcher(LOOPBACK_ONLY, resolver=resolver, verify=client_ctx)
        page = f.fetch(f"https://site.test:{server.port}/article")
        assert page.title == "Paged attention explained"
        assert server.seen[0].headers["host"] == f"site.test:{server.port}"
        # Same address, a name the certificate does not cover: verification is by name, so it fails.
        message = refused(f, f"https://other.test:{server.port}/article", Failure.UNAVAILABLE)
        assert "certificate" in message.lower() or "hostname" in message.lower()
    finally:
        server.stop()
