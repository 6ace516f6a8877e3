"""Prometheus metrics per upstream replica: requests, errors by kind, ejections, time to first token, health."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from r1stack.upstream.pool import ReplicaPool

P = "r1stack:upstream_"


class _PoolCollector(Collector):
    def __init__(self, pool: ReplicaPool):
        self._pool = pool

    def collect(self) -> Iterable[Metric]:
        healthy = GaugeMetricFamily(P + "healthy", "1 while the replica is in rotation.", labels=["upstream"])
        running = GaugeMetricFamily(P + "requests_running", "Requests in flight.", labels=["upstream"])
        for r in self._pool.replicas:
            healthy.add_metric([r.url], 1.0 if r.healthy else 0.0)
            running.add_metric([r.url], float(r.outstanding))
        yield healthy
        yield running


class UpstreamMetrics:
    def __init__(self, registry: CollectorRegistry, pool: ReplicaPool):
        registry.register(_PoolCollector(pool))
        self.requests = Counter(
            P + "requests", "Requests sent to the replica.", ["upstream"], registry=registry
        )
        self.errors = Counter(
            P + "errors", "Failed requests and health checks.", ["upstream", "kind"], registry=registry
        )
        self.ejections = Counter(
            P + "ejections", "Times the replica was ejected.", ["upstream"], registry=registry
        )
        self.retries = Counter(P + "retries", "Requests retried on another replica.", registry=registry)
        self.ttft = Histogram(
            P + "time_to_first_token_seconds",
            "Request sent to first token received, per replica.",
            ["upstream"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        )
