"""What every search provider is (one `search` method) and the one HTTP call they share: JSON in and out,
inside a deadline, retried with backoff on 429 and 5xx."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from r1stack.websearch.results import Failure, SearchError, WebResult


@dataclass(frozen=True)
class SearchQuery:
    text: str
    top_k: int
    language: str = ""  # BCP 47, e.g. "zh-CN"; empty = the provider's default
    time_range: str = ""  # "", "day", "week", "month", "year"


class Provider(Protocol):
    name: str

    def search(self, query: SearchQuery, deadline: float) -> list[WebResult]:
        """Results for `query`, or SearchError; must return or fail before `deadline` (time.monotonic())."""
        ...


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value) if value else None
    return None if when is None else max(0.0, when.timestamp() - time.time())


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class JsonHttp:
    """One provider's HTTP client. Operator-configured endpoints only: redirects are not followed."""

    def __init__(
        self,
        name: str,
        retries: int = 2,
        backoff_s: float = 0.5,
        client: httpx.Client | None = None,
    ):
        self.name = name
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = client or httpx.Client(follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        url: str,
        deadline: float,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON body, or SearchError whose message names the provider and what it did."""
        budget = deadline - time.monotonic()
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SearchError(Failure.TIMEOUT, f"{self.name} did not answer within {budget:.3g} s")
            retry_after = None
            try:
                response = self._client.request(
                    method, url, params=params, json=json, headers=headers, timeout=remaining
                )
            except httpx.TimeoutException:
                raise SearchError(
                    Failure.TIMEOUT, f"{self.name} did not answer within {budget:.3g} s"
                ) from None
            except httpx.HTTPError as e:
                failure = SearchError(Failure.UNAVAILABLE, f"cannot reach {self.name}: {e}")
            else:
                status = response.status_code
                if status == 429:
                    retry_after = _retry_after(response)
                    failure = SearchError(Failure.RATE_LIMITED, f"{self.name} is rate limiting (HTTP 429)")
                elif status >= 500:
                    retry_after = _retry_after(response)
                    failure = SearchError(Failure.UNAVAILABLE, f"{self.name} failed (HTTP {status})")
                elif status >= 400:
                    raise SearchError(
                        Failure.UNAVAILABLE,
                        f"{self.name} refused the request (HTTP {status}): {_short(response.text)}",
                    )
                else:
                    try:
                        return response.json()
                    except ValueError:
                        raise SearchError(
                            Failure.UNAVAILABLE,
                            f"{self.name} answered garbage, not JSON: {_short(response.text, 80)!r}",
                        ) from None
            if attempt >= self.retries:
                raise failure
            # Exponential backoff with jitter, unless the provider said how long to wait.
            delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
            delay *= 1 + random.random() * 0.25
            if time.monotonic() + delay >= deadline:
                raise failure
            time.sleep(delay)
            attempt += 1


def expect(condition: bool, provider: str, what: str) -> None:
    """Guards the shape of a provider's answer: anything unexpected is reported as garbage, never a crash."""
    if not condition:
        raise SearchError(Failure.UNAVAILABLE, f"{provider} answered garbage: {what}")


def text_field(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value.strip() if isinstance(value, str) else ""


def is_web_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))
