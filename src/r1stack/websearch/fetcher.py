"""Fetches one web page without SSRF: vetted addresses only, pinned connections, every redirect re-checked,
size and time capped, text types only, HTML reduced to readable text."""

from __future__ import annotations

import ipaddress
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import httpx

from r1stack.websearch.addresses import AddressPolicy, IPAddress, Resolver, system_resolver
from r1stack.websearch.domains import DomainFilter
from r1stack.websearch.readable import decode_text, html_to_text
from r1stack.websearch.results import Failure, FetchedPage, SearchError

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"application/json", "application/xml", "application/rss+xml", "application/atom+xml"})
USER_AGENT = "r1stack-search-proxy/0.1 (+https://github.com/r1stack)"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 2_000_000
    timeout_s: float = 10.0
    max_redirects: int = 5
    max_chars: int = 20_000


def _is_text(mime: str) -> bool:
    return mime.startswith("text/") or mime in HTML_TYPES or mime in TEXT_TYPES or mime.endswith("+xml")


class SafeFetcher:
    """Each hop: parse, check the domain, resolve once, check every address, connect to the checked one."""

    def __init__(
        self,
        policy: AddressPolicy,
        domains: DomainFilter | None = None,
        limits: FetchLimits | None = None,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
    ):
        self.policy = policy
        self.domains = domains or DomainFilter()
        self.limits = limits or FetchLimits()
        self._resolver = resolver
        # trust_env=False: an HTTP(S)_PROXY variable must not reroute the vetted connection somewhere else.
        # No keep-alive: a pooled connection must never carry a request for a host it was not vetted for.
        self._client = httpx.Client(
            follow_redirects=False,
            trust_env=False,
            verify=verify,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT, "Accept": "text/html,text/plain;q=0.9,*/*;q=0.1"},
        )
        # getaddrinfo has no timeout of its own; a worker thread lets the deadline cut a slow lookup short.
        self._dns = ThreadPoolExecutor(max_workers=4, thread_name_prefix="r1stack-resolve")

    def close(self) -> None:
        self._client.close()
        self._dns.shutdown(wait=False, cancel_futures=True)

    def fetch(self, url: str, max_chars: int | None = None, budget_s: float | None = None) -> FetchedPage:
        """The page's readable text, or SearchError; `budget_s` can only shorten the configured timeout."""
        timeout = self.limits.timeout_s if budget_s is None else min(self.limits.timeout_s, budget_s)
        deadline = time.monotonic() + timeout
        current = self._parse(url)
        for _hop in range(self.limits.max_redirects + 1):
            address = self._vet(current, deadline)
            try:
                response = self._send(current, address, deadline)
                try:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        current = self._parse(str(current.join(location)))
                        continue
                    return self._read(url, current, response, deadline, max_chars or self.limits.max_chars)
                finally:
                    response.close()
            except httpx.TimeoutException:
                raise SearchError(
                    Failure.TIMEOUT, f"{current} did not answer within {timeout:.3g} s"
                ) from None
            except httpx.HTTPError as e:
                raise SearchError(Failure.UNAVAILABLE, f"could not fetch {current}: {e}") from None
        raise SearchError(Failure.REFUSED, f"{url} redirects more than {self.limits.max_redirects} times")

    def _parse(self, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url.strip())
        except (httpx.InvalidURL, TypeError) as e:
            raise SearchError(Failure.INVALID, f"{url!r} is not a valid URL ({e})") from None
        if parsed.scheme not in ("http", "https"):
            raise SearchError(
                Failure.INVALID,
                f"{url!r}: only http and https URLs are fetched, not {parsed.scheme or 'none'!r}",
            )
        if not parsed.host:
            raise SearchError(Failure.INVALID, f"{url!r} has no host")
        if parsed.userinfo:
            raise SearchError(
                Failure.INVALID, f"{url!r} carries credentials; URLs with user:password@ are refused"
            )
        return parsed.copy_with(fragment=None)

    def _vet(self, url: httpx.URL, deadline: float) -> IPAddress:
        """The one address this hop may connect to, or SearchError(REFUSED) saying why there is none."""
        host = url.raw_host.decode("ascii")  # IDNA form: what DNS and TLS know the name by
        reason = self.domains.refusal(host)
        if reason:
            raise SearchError(Failure.REFUSED, f"refused {url}: {reason}")
        addresses = self._resolve(host, deadline)
        for address in addresses:
            reason = self.policy.refusal(address)
            if reason:
                # One bad answer condemns the name: an attacker controls which record a client would pick.
                raise SearchError(
                    Failure.REFUSED,
                    f"refused {url}: {reason}; a deployment that trusts it opens it with --trust-cidr",
                )
        return addresses[0]

    def _resolve(self, host: str, deadline: float) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        future = self._dns.submit(self._resolver, host)
        try:
            addresses = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise SearchError(
                Failure.TIMEOUT, f"resolving {host} took longer than the fetch timeout"
            ) from None
        except (OSError, UnicodeError) as e:
            raise SearchError(Failure.UNAVAILABLE, f"cannot resolve {host}: {e}") from None
        if not addresses:
            raise SearchError(Failure.UNAVAILABLE, f"cannot resolve {host}: no addresses")
        return list(addresses)

    def _send(self, url: httpx.URL, address: IPAddress, deadline: float) -> httpx.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.TimeoutException("deadline passed before connecting")
        # The URL names the checked address, so httpx connects there without resolving anything; the Host
        # header and the TLS server name (which certificate verification also uses) keep the real name.
        request = self._client.build_request(
            "GET",
            url.copy_with(host=str(address)),
            headers={"Host": url.netloc.decode("ascii")},
            extensions={"sni_hostname": url.raw_host.decode("ascii")},
            timeout=httpx.Timeout(remaining),
        )
        return self._client.send(request, stream=True)

    def _read(
        self, asked: str, url: httpx.URL, response: httpx.Response, deadline: float, max_chars: int
    ) -> FetchedPage:
        if response.status_code >= 400:
            raise SearchError(Failure.UNAVAILABLE, f"{url} answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "")
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime and not _is_text(mime):
            raise SearchError(Failure.UNSUITABLE, f"{url} is {mime}, not text; only text pages are fetched")
        declared = response.headers.get("content-length", "")
        cap = self.limits.max_bytes
        if declared.isdigit() and int(declared) > cap:
            raise SearchError(
                Failure.UNSUITABLE, f"{url} is {int(declared)} bytes, over the limit of {cap} bytes"
            )
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise SearchError(Failure.UNSUITABLE, f"{url} is larger than the limit of {cap} bytes")
            if time.monotonic() > deadline:
                raise SearchError(Failure.TIMEOUT, f"{url} did not finish within the fetch timeout")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not mime:  # no declared type: accept only what looks like text
            if b"\x00" in body[:4096]:
                raise SearchError(Failure.UNSUITABLE, f"{url} declares no type and looks binary")
            mime = "text/plain"
        if mime in HTML_TYPES:
            title, text = html_to_text(body, response.charset_encoding)
        else:
            title, text = "", decode_text(body, response.charset_encoding)
        truncated = len(text) > max_chars
        return FetchedPage(
            url=asked,
            final_url=str(url),
            title=title,
            text=text[:max_chars],
            content_type=mime,
            truncated=truncated,
        )
