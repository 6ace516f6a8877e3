"""The stack's side of the search proxy: a gRPC client whose calls never raise into the chat path; a failure
comes back as a clear "web search unavailable: ..." message beside an empty result list."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import grpc

from r1stack.config import WebSearchSettings
from r1stack.websearch import search_pb2, search_pb2_grpc
from r1stack.websearch.results import FetchedPage, WebResult
from r1stack.websearch.wire import ORIGIN_KEY, ORIGIN_VALUE

UNAVAILABLE = "web search unavailable: "
# A restarted proxy is found again within seconds instead of gRPC's default backoff of up to two minutes.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


@dataclass
class SearchOutcome:
    """Results, or an empty list and `error` (starting "web search unavailable: ") saying why."""

    results: list[WebResult] = field(default_factory=list)
    error: str | None = None
    provider: str = ""
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str | None:
        """The error without its "web search unavailable: " prefix, for callers that add their own."""
        return None if self.error is None else self.error.removeprefix(UNAVAILABLE)


@dataclass
class FetchOutcome:
    page: FetchedPage | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class WebSearchClient:
    """Reaches the search proxy at `settings.proxy_address`; safe to share between threads.

    >>> outcome = WebSearchClient(settings.websearch).search("DeepSeek R1", top_k=3, language="zh-CN")
    >>> outcome.results if outcome.ok else outcome.error
    """

    def __init__(self, settings: WebSearchSettings):
        self.settings = settings
        self._channel: grpc.Channel | None = None
        self._stub: search_pb2_grpc.WebSearchStub | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.proxy_address)

    def search(
        self,
        query: str,
        top_k: int | None = None,
        language: str | None = None,
        time_range: str = "",
        timeout_s: float | None = None,
    ) -> SearchOutcome:
        request = search_pb2.SearchRequest(
            query=query,
            top_k=self.settings.top_k if top_k is None else top_k,
            language=self.settings.language if language is None else language,
            time_range=time_range,
        )
        response, error = self._call("Search", request, timeout_s)
        if error:
            return SearchOutcome(error=error)
        results = [
            WebResult(title=r.title, url=r.url, snippet=r.snippet, engine=r.engine, published=r.published)
            for r in response.results
        ]
        return SearchOutcome(results=results, provider=response.provider, cached=response.cached)

    def fetch(self, url: str, max_chars: int = 0, timeout_s: float | None = None) -> FetchOutcome:
        response, error = self._call(
            "Fetch", search_pb2.FetchRequest(url=url, max_chars=max_chars), timeout_s
        )
        if error:
            return FetchOutcome(error=error)
        page = FetchedPage(
            url=response.url,
            final_url=response.final_url,
            title=response.title,
            text=response.text,
            content_type=response.content_type,
            truncated=response.truncated,
        )
        return FetchOutcome(page=page)

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = None

    def __enter__(self) -> WebSearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request, timeout_s: float | None):
        """(response, None) or (None, "web search unavailable: ..."): nothing escapes into the chat path."""
        timeout = self.settings.timeout_s if timeout_s is None else timeout_s
        try:
            stub = self._ensure_stub()
            return getattr(stub, method)(request, timeout=timeout), None
        except grpc.RpcError as e:
            return None, UNAVAILABLE + self._explain(e, timeout)
        except _ConfigProblem as e:
            return None, UNAVAILABLE + str(e)
        except Exception as e:  # a broken certificate file, a malformed address: still no crash
            return None, UNAVAILABLE + f"{type(e).__name__}: {e}"

    def _explain(self, error: grpc.RpcError, timeout: float) -> str:
        code, details = error.code(), error.details() or ""
        trailing = dict(error.trailing_metadata() or ())
        if trailing.get(ORIGIN_KEY) == ORIGIN_VALUE:
            return details  # the proxy's own words
        address = self.settings.proxy_address
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"the search proxy at {address} did not answer within {timeout:g} s"
        return f"cannot reach the search proxy at {address} ({code.name}: {details})"

    def _ensure_stub(self) -> search_pb2_grpc.WebSearchStub:
        with self._lock:
            if self._stub is None:
                self._channel = self._open_channel()
                self._stub = search_pb2_grpc.WebSearchStub(self._channel)
            return self._stub

    def _open_channel(self) -> grpc.Channel:
        s = self.settings
        if not s.proxy_address:
            raise _ConfigProblem(
                "no search proxy is configured (set websearch.proxy_address or R1STACK_WEBSEARCH__PROXY_ADDRESS)"
            )
        options = list(_CHANNEL_OPTIONS)
        if s.tls_ca is None and s.tls_cert is None:
            return grpc.insecure_channel(s.proxy_address, options=options)
        if (s.tls_cert is None) != (s.tls_key is None):
            raise _ConfigProblem("websearch.tls_cert and websearch.tls_key go together; set both or neither")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=s.tls_ca.read_bytes() if s.tls_ca else None,
            private_key=s.tls_key.read_bytes() if s.tls_key else None,
            certificate_chain=s.tls_cert.read_bytes() if s.tls_cert else None,
        )
        if s.tls_server_name:
            options.append(("grpc.ssl_target_name_override", s.tls_server_name))
        return grpc.secure_channel(s.proxy_address, credentials, options=options)


class _ConfigProblem(Exception):
    pass
