"""Search providers behind one interface, and the factory that builds them from their names."""

from __future__ import annotations

from r1stack.websearch.providers import bing, bocha
from r1stack.websearch.providers.base import JsonHttp, Provider, SearchQuery
from r1stack.websearch.providers.bing import Bing
from r1stack.websearch.providers.bocha import Bocha
from r1stack.websearch.providers.searxng import SearXNG

PROVIDER_NAMES = ("searxng", "bing", "bocha")


def build_provider(
    name: str,
    *,
    searxng_url: str | None = None,
    bing_api_key: str | None = None,
    bing_endpoint: str | None = None,
    bocha_api_key: str | None = None,
    bocha_endpoint: str | None = None,
    retries: int = 2,
) -> Provider:
    """One provider; ValueError with a mending hint when its name or configuration is wrong."""
    http = JsonHttp(name, retries=retries)
    if name == "searxng":
        if not searxng_url:
            raise ValueError("provider searxng needs its address: pass --searxng-url http://HOST:PORT")
        return SearXNG(searxng_url, http=http)
    if name == "bing":
        if not bing_api_key:
            raise ValueError("provider bing needs an API key: set R1STACK_WEBSEARCH__BING_API_KEY")
        return Bing(bing_api_key, endpoint=bing_endpoint or bing.DEFAULT_ENDPOINT, http=http)
    if name == "bocha":
        if not bocha_api_key:
            raise ValueError("provider bocha needs an API key: set R1STACK_WEBSEARCH__BOCHA_API_KEY")
        return Bocha(bocha_api_key, endpoint=bocha_endpoint or bocha.DEFAULT_ENDPOINT, http=http)
    raise ValueError(f"unknown provider {name!r}; choose from {', '.join(PROVIDER_NAMES)}")


__all__ = [
    "PROVIDER_NAMES",
    "Bing",
    "Bocha",
    "JsonHttp",
    "Provider",
    "SearXNG",
    "SearchQuery",
    "build_provider",
]
