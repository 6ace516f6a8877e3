"""`r1stack search-proxy`: run the guarded web search proxy (`serve`) and ask it things (`search`, `fetch`)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

import typer

from r1stack.config import WebSearchSettings, get_settings
from r1stack.errors import UserError

proxy_app = typer.Typer(
    help="The guarded web search proxy: the only process that reaches the internet.",
    no_args_is_help=True,
)


def _settings_with(**overrides: object) -> WebSearchSettings:
    """The websearch section with every flag that was given laid over it."""
    base = get_settings().websearch
    given = {k: v for k, v in overrides.items() if v not in (None, [], ())}
    return base.model_copy(update=given)


@proxy_app.command()
def serve(
    listen: str = typer.Option(
        None, "--listen", help="ADDR to listen on, e.g. 0.0.0.0:50551 (port 0: any free)."
    ),
    provider: list[str] = typer.Option(
        None, "--provider", help="searxng, bing or bocha; repeat to fall back."
    ),
    searxng_url: str = typer.Option(None, "--searxng-url", help="Base URL of the SearXNG instance."),
    bing_endpoint: str = typer.Option(
        None, "--bing-endpoint", help="Bing Web Search v7 endpoint (or gateway)."
    ),
    bocha_endpoint: str = typer.Option(
        None, "--bocha-endpoint", help="Bocha web-search endpoint (or gateway)."
    ),
    allow_client: list[str] = typer.Option(
        None, "--allow-client", help="CIDR allowed to call (default loopback)."
    ),
    allow_domain: list[str] = typer.Option(
        None, "--allow-domain", help="Only these domains (and subdomains)."
    ),
    deny_domain: list[str] = typer.Option(
        None, "--deny-domain", help="Never these domains (and subdomains)."
    ),
    trust_cidr: list[str] = typer.Option(
        None, "--trust-cidr", help="Non-public CIDR pages may be fetched from."
    ),
    tls_cert: Path = typer.Option(None, "--tls-cert", help="The proxy's certificate (PEM): TLS on."),
    tls_key: Path = typer.Option(None, "--tls-key", help="The proxy's private key (PEM)."),
    client_ca: Path = typer.Option(None, "--client-ca", help="CA of client certificates: mutual TLS on."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds one search may take, retries included."),
    retries: int = typer.Option(None, "--retries", help="Extra tries on HTTP 429 and 5xx."),
    cache_ttl: float = typer.Option(None, "--cache-ttl", help="Seconds a result stays cached (0: no cache)."),
    rate: float = typer.Option(None, "--rate", help="Upstream searches a second (0: unlimited)."),
    fetch_timeout: float = typer.Option(None, "--fetch-timeout", help="Seconds one page fetch may take."),
    fetch_max_bytes: int = typer.Option(None, "--fetch-max-bytes", help="Largest page fetched, in bytes."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run the search proxy in this process until interrupted."""
    from r1stack.websearch.assemble import assemble_server

    settings = _settings_with(
        listen=listen,
        providers=provider,
        searxng_url=searxng_url,
        bing_endpoint=bing_endpoint,
        bocha_endpoint=bocha_endpoint,
        allow_clients=allow_client,
        allow_domains=allow_domain,
        deny_domains=deny_domain,
        trusted_cidrs=trust_cidr,
        proxy_tls_cert=tls_cert,
        proxy_tls_key=tls_key,
        proxy_client_ca=client_ca,
        provider_timeout_s=timeout,
        provider_retries=retries,
        cache_ttl_s=cache_ttl,
        rate_per_s=rate,
        fetch_timeout_s=fetch_timeout,
        fetch_max_bytes=fetch_max_bytes,
    )
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise UserError(f"--log-level {log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO, and a search URL carries the user's query: keep that out of the log.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    try:
        server, bound, service, summary = assemble_server(settings)
    except (ValueError, OSError, RuntimeError) as e:
        raise UserError(str(e)) from None

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"search proxy listening on {bound} ({summary})", flush=True)
    while not stop.wait(1.0):
        pass
    server.stop(grace=2).wait()
    service.close()


def _client_settings(
    address: str | None,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    timeout: float | None,
) -> WebSearchSettings:
    settings = _settings_with(proxy_address=address, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    if timeout is not None:
        settings = settings.model_copy(update={"timeout_s": timeout})
    if not settings.proxy_address:
        raise UserError("no search proxy address; pass --address HOST:PORT or set websearch.proxy_address")
    return settings


_ADDRESS = typer.Option(
    None, "--address", help="HOST:PORT of the search proxy (default: websearch.proxy_address)."
)
_TLS_CA = typer.Option(None, "--tls-ca", help="CA that signed the proxy's certificate: TLS on.")
_TLS_CERT = typer.Option(None, "--tls-cert", help="This client's certificate, for mutual TLS.")
_TLS_KEY = typer.Option(None, "--tls-key", help="This client's private key, for mutual TLS.")
_TIMEOUT = typer.Option(None, "--timeout", help="Seconds to wait for the proxy.")


@proxy_app.command()
def search(
    query: str = typer.Argument(..., help="What to search for."),
    top_k: int = typer.Option(None, "--top-k", help="How many results."),
    language: str = typer.Option(None, "--language", help="Language tag, e.g. zh-CN."),
    time_range: str = typer.Option("", "--time-range", help="day, week, month or year."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of numbered sources."),
    address: str = _ADDRESS,
    tls_ca: Path = _TLS_CA,
    tls_cert: Path = _TLS_CERT,
    tls_key: Path = _TLS_KEY,
    timeout: float = _TIMEOUT,
) -> None:
    """Ask a running search proxy one query (an operator's check that the road to the web works)."""
    from dataclasses import asdict

    from r1stack.websearch import WebSearchClient, format_context

    with WebSearchClient(_client_settings(address, tls_ca, tls_cert, tls_key, timeout)) as client:
        outcome = client.search(query, top_k=top_k, language=language, time_range=time_range)
    if not outcome.ok:
        raise UserError(outcome.error or "web search unavailable")
    if as_json:
        print(json.dumps({"provider": outcome.provider, "cached": outcome.cached,
                          "results": [asdict(r) for r in outcome.results]}, ensure_ascii=False, indent=2))  # fmt: skip
    else:
        print(format_context(outcome.results) or "no results")


@proxy_app.command()
def fetch(
    url: str = typer.Argument(..., help="The http(s) page to fetch through the proxy."),
    max_chars: int = typer.Option(0, "--max-chars", help="Cut the text here (0: the proxy's default)."),
    address: str = _ADDRESS,
    tls_ca: Path = _TLS_CA,
    tls_cert: Path = _TLS_CERT,
    tls_key: Path = _TLS_KEY,
    timeout: float = _TIMEOUT,
) -> None:
    """Fetch one page through a running search proxy and print its readable text."""
    from r1stack.websearch import WebSearchClient

    with WebSearchClient(_client_settings(address, tls_ca, tls_cert, tls_key, timeout)) as client:
        outcome = client.fetch(url, max_chars=max_chars)
    if outcome.page is None:
        raise UserError(outcome.error or "web search unavailable")
    page = outcome.page
    print(f"{page.title}\n{page.final_url} ({page.content_type}{', truncated' if page.truncated else ''})\n")
    print(page.text)


def register(app: typer.Typer) -> None:
    app.add_typer(proxy_app, name="search-proxy")
