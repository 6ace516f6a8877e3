"""The search proxy as a gRPC server: the servicer, the client allowlist, optional (mutual) TLS."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import grpc

from r1stack.websearch import search_pb2, search_pb2_grpc
from r1stack.websearch.addresses import IPNetwork
from r1stack.websearch.results import Failure, SearchError
from r1stack.websearch.service import SearchService
from r1stack.websearch.wire import ORIGIN_KEY, ORIGIN_VALUE

log = logging.getLogger(__name__)

STATUS = {
    Failure.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Failure.REFUSED: grpc.StatusCode.PERMISSION_DENIED,
    Failure.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Failure.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Failure.UNSUITABLE: grpc.StatusCode.FAILED_PRECONDITION,
}
# The proxy answers a little before the caller's deadline so that its own reason, not a bare timeout, arrives.
DEADLINE_MARGIN_S = 0.25


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    context.set_trailing_metadata(((ORIGIN_KEY, ORIGIN_VALUE),))
    context.abort(code, message)


def _budget(context: grpc.ServicerContext) -> float | None:
    """Seconds the caller still waits, less a margin; None when it set no deadline."""
    remaining = context.time_remaining()
    return None if remaining is None else max(0.0, remaining - DEADLINE_MARGIN_S)


class WebSearchServicer(search_pb2_grpc.WebSearchServicer):
    def __init__(self, service: SearchService):
        self.service = service

    def Search(
        self, request: search_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> search_pb2.SearchResponse:
        budget = _budget(context)
        answer = self._run(
            context,
            "Search",
            lambda: self.service.search(
                request.query, request.top_k, request.language, request.time_range, budget_s=budget
            ),
        )
        return search_pb2.SearchResponse(
            results=[
                search_pb2.SearchResult(
                    title=r.title, url=r.url, snippet=r.snippet, engine=r.engine, published=r.published
                )
                for r in answer.results
            ],
            provider=answer.provider,
            cached=answer.cached,
        )

    def Fetch(
        self, request: search_pb2.FetchRequest, context: grpc.ServicerContext
    ) -> search_pb2.FetchResponse:
        budget = _budget(context)
        page = self._run(context, "Fetch", lambda: self.service.fetch(request.url, request.max_chars, budget))
        return search_pb2.FetchResponse(
            url=page.url,
            final_url=page.final_url,
            title=page.title,
            text=page.text,
            content_type=page.content_type,
            truncated=page.truncated,
        )

    def _run(self, context, method, work):
        # The audit line names the caller, the method, the outcome and the time; never the query or URL.
        started = time.monotonic()
        try:
            result = work()
        except SearchError as e:
            log.info(
                "%s %s -> %s (%.2fs): %s", context.peer(), method, e.kind.name, time.monotonic() - started, e
            )
            _abort(context, STATUS[e.kind], e.message)
        except Exception:
            log.exception("%s %s failed unexpectedly", context.peer(), method)
            _abort(
                context, grpc.StatusCode.INTERNAL, "the search proxy failed unexpectedly; its log says why"
            )
        log.info("%s %s -> OK (%.2fs)", context.peer(), method, time.monotonic() - started)
        return result


def peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP in a gRPC peer string ("ipv4:1.2.3.4:5", "ipv6:[::1]:5", URL-escaped in some versions)."""
    kind, _, rest = unquote(peer).partition(":")
    if kind == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
    else:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class ClientAllowlist(grpc.ServerInterceptor):
    """Refuses every call whose peer address lies outside the allowed CIDRs (Unix-socket peers are local)."""

    def __init__(self, allowed: Sequence[IPNetwork]):
        self.allowed = tuple(allowed)

    def permits(self, peer: str) -> bool:
        if peer.startswith("unix:"):
            return True
        address = peer_address(peer)
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket reports IPv4 clients this way
        return any(address.version == net.version and address in net for net in self.allowed)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        def guarded(request, context):
            if not self.permits(context.peer()):
                log.warning("refused client %s: not in the allowlist", context.peer())
                _abort(
                    context,
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"client {context.peer()} is not in the search proxy's allowlist; "
                    "the operator adds its CIDR with --allow-client",
                )
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass(frozen=True)
class ServerTLS:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate signed by it (mutual TLS)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.client_ca.read_bytes() if self.client_ca else None,
            require_client_auth=self.client_ca is not None,
        )


def _check_free(listen: str) -> None:
    """Binds the address once ourselves, so that a busy or bad one gets a clear message (gRPC logs noise)."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.bind(infos[0][4])
    except OSError as e:
        raise OSError(
            f"cannot listen on {listen}: {e.strerror or e}; pick another --listen HOST:PORT"
        ) from None


def build_server(
    service: SearchService,
    listen: str,
    allow_clients: Sequence[IPNetwork],
    tls: ServerTLS | None = None,
    max_workers: int = 16,
) -> tuple[grpc.Server, str]:
    """A started-ready gRPC server and the address it bound (port 0 in `listen` becomes the real port)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="r1stack-search"),
        interceptors=[ClientAllowlist(allow_clients)],
        maximum_concurrent_rpcs=max_workers * 4,
        # gRPC sets SO_REUSEPORT by default: a second process could then share the port and take calls.
        options=[("grpc.so_reuseport", 0)],
    )
    search_pb2_grpc.add_WebSearchServicer_to_server(WebSearchServicer(service), server)
    if not listen.startswith("unix:"):
        _check_free(listen)
    try:
        port = server.add_secure_port(listen, tls.credentials()) if tls else server.add_insecure_port(listen)
    except RuntimeError:
        port = 0
    if port == 0 and not listen.startswith("unix:"):
        raise OSError(
            f"cannot listen on {listen}: address in use or not valid; pick another --listen HOST:PORT"
        )
    host = listen.rsplit(":", 1)[0] if not listen.startswith("unix:") else listen
    bound = listen if listen.startswith("unix:") else f"{host}:{port}"
    return server, bound
