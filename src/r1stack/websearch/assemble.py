"""Builds a ready-to-start search proxy (providers, fetcher, service, gRPC server) from the websearch settings."""

from __future__ import annotations

import grpc

from r1stack.config import WebSearchSettings
from r1stack.websearch.addresses import AddressPolicy, parse_cidrs
from r1stack.websearch.cache import TTLCache
from r1stack.websearch.domains import DomainFilter
from r1stack.websearch.fetcher import FetchLimits, SafeFetcher
from r1stack.websearch.providers import build_provider
from r1stack.websearch.ratelimit import TokenBucket
from r1stack.websearch.server import ServerTLS, build_server
from r1stack.websearch.service import SearchService


def _tls(s: WebSearchSettings) -> ServerTLS | None:
    if s.proxy_tls_cert is None and s.proxy_tls_key is None:
        if s.proxy_client_ca is not None:
            raise ValueError("--client-ca needs TLS: also pass --tls-cert and --tls-key")
        return None
    if s.proxy_tls_cert is None or s.proxy_tls_key is None:
        raise ValueError("--tls-cert and --tls-key go together; pass both")
    for path in (s.proxy_tls_cert, s.proxy_tls_key, s.proxy_client_ca):
        if path is not None and not path.is_file():
            raise ValueError(f"{path} does not exist; give the path of a PEM file")
    return ServerTLS(cert=s.proxy_tls_cert, key=s.proxy_tls_key, client_ca=s.proxy_client_ca)


def _describe(s: WebSearchSettings, tls: ServerTLS | None) -> str:
    mode = "off" if tls is None else ("mutual" if tls.client_ca else "server-only")
    return (
        f"providers: {', '.join(s.providers)}; tls: {mode}; clients: {', '.join(s.allow_clients)}; "
        f"trusted: {', '.join(s.trusted_cidrs) or 'none'}"
    )


def assemble_server(s: WebSearchSettings) -> tuple[grpc.Server, str, SearchService, str]:
    """(server, bound address, service, one-line summary); ValueError says what in the settings is wrong."""
    allow_clients = parse_cidrs(s.allow_clients, "--allow-client")
    if not allow_clients:
        raise ValueError("no client may call the proxy; pass --allow-client CIDR")
    policy = AddressPolicy(trusted=parse_cidrs(s.trusted_cidrs, "--trust-cidr"))
    tls = _tls(s)
    providers = [
        build_provider(
            name.strip().lower(),
            searxng_url=s.searxng_url,
            bing_api_key=s.bing_api_key,
            bing_endpoint=s.bing_endpoint,
            bocha_api_key=s.bocha_api_key,
            bocha_endpoint=s.bocha_endpoint,
            retries=s.provider_retries,
        )
        for name in s.providers
    ]
    if not providers:
        raise ValueError("no search provider; pass --provider searxng (or bing, bocha)")
    domains = DomainFilter.build(s.allow_domains, s.deny_domains)
    limits = FetchLimits(
        max_bytes=s.fetch_max_bytes,
        timeout_s=s.fetch_timeout_s,
        max_redirects=s.fetch_max_redirects,
        max_chars=s.fetch_max_chars,
    )
    service = SearchService(
        providers,
        SafeFetcher(policy, domains, limits),
        domains=domains,
        timeout_s=s.provider_timeout_s,
        cache=TTLCache(ttl_s=s.cache_ttl_s, max_entries=s.cache_entries),
        limiter=TokenBucket(rate=s.rate_per_s, burst=s.rate_burst),
    )
    server, bound = build_server(service, s.listen, allow_clients, tls)
    return server, bound, service, _describe(s, tls)
