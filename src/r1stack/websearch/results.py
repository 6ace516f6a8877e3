"""Plain data that crosses the websearch package: search hits, fetched pages, and the failure kinds."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class WebResult:
    """One search hit, as any provider reports it."""

    title: str
    url: str
    snippet: str = ""
    engine: str = ""
    published: str = ""


@dataclass(frozen=True)
class FetchedPage:
    """A page fetched through the SSRF guard, reduced to readable text."""

    url: str
    final_url: str
    title: str
    text: str
    content_type: str
    truncated: bool = False


class Failure(Enum):
    """Why a search or fetch failed; the server maps each to one gRPC status code."""

    INVALID = "invalid argument"
    REFUSED = "refused"
    TIMEOUT = "timed out"
    RATE_LIMITED = "rate limited"
    UNAVAILABLE = "unavailable"
    UNSUITABLE = "unsuitable content"


class SearchError(Exception):
    """A search or fetch failed for a reason the caller can act on; the message says what happened."""

    def __init__(self, kind: Failure, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message
