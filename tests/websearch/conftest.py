"""Fixtures of the websearch tests; the servers and certificates they hand out live in websearch_standins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websearch_standins import Certs, StandIn, _write, make_ca, make_leaf


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    ca_key, ca = make_ca("r1stack test CA")
    server_key, server = make_leaf(
        ca_key, ca, "search-proxy", dns=["localhost", "site.test"], ips=["127.0.0.1"]
    )
    client_key, client = make_leaf(ca_key, ca, "r1stack-stack", client=True)
    other_key, other_ca = make_ca("someone else's CA")
    stranger_key, stranger = make_leaf(other_key, other_ca, "stranger", client=True)
    return Certs(
        ca=_write(d / "ca.pem", cert=ca),
        server_cert=_write(d / "server.pem", cert=server),
        server_key=_write(d / "server.key", key=server_key),
        client_cert=_write(d / "client.pem", cert=client),
        client_key=_write(d / "client.key", key=client_key),
        stranger_cert=_write(d / "stranger.pem", cert=stranger),
        stranger_key=_write(d / "stranger.key", key=stranger_key),
    )
