"""Prometheus metrics under vLLM's names with an `r1stack:` prefix, so vLLM dashboards port by renaming.

Engine-wide numbers (running/waiting, KV usage, prefix cache, preemptions, token totals) are read from
`engine.stats()` at scrape time; per-request latencies are observed by the server as requests finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

P = "r1stack:"
_LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
_TPOT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)


class _EngineCollector(Collector):
    def __init__(self, stats: Callable[[], object], model_name: str):
        self._stats = stats
        self._model = model_name

    def collect(self) -> Iterable[Metric]:
        s = self._stats()
        labels = ["model_name"]
        v = [self._model]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(P + name, doc, labels=labels)
            g.add_metric(v, float(value))
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(P + name, doc, labels=labels)
            c.add_metric(v, float(value))
            return c

        yield gauge("num_requests_running", "Requests in the running batch.", s.num_running)
        yield gauge("num_requests_waiting", "Requests waiting to be scheduled.", s.num_waiting)
        yield gauge("kv_cache_usage_perc", "Fraction of KV-cache blocks in use (0-1).", s.kv_cache_usage)
        yield gauge(
            "gpu_cache_usage_perc", "Same as kv_cache_usage_perc (vLLM's older name).", s.kv_cache_usage
        )
        yield gauge("num_free_blocks", "Free KV-cache blocks.", s.num_free_blocks)
        yield counter(
            "prefix_cache_queries", "Prompt tokens looked up in the prefix cache.", s.prefix_cache_queries
        )
        yield counter("prefix_cache_hits", "Prompt tokens found in the prefix cache.", s.prefix_cache_hits)
        yield counter("num_preemptions", "Sequences preempted for lack of KV blocks.", s.num_preemptions)
        yield counter("prompt_tokens", "Prefill tokens processed.", s.prompt_tokens_total)
        yield counter("generation_tokens", "Tokens generated.", s.generation_tokens_total)
        if s.expert_load:
            yield from _expert_metrics(s.expert_load, self._model)


def _expert_metrics(load: dict[int, list[int]], model: str) -> Iterable[Metric]:
    """Tokens routed per expert per MoE layer, and each layer's imbalance (busiest expert over the mean): the
    figure operators watch when they tune routing or place experts."""
    tokens = CounterMetricFamily(
        P + "moe_expert_tokens",
        "Tokens routed to an expert since start-up.",
        labels=["model_name", "layer", "expert"],
    )
    imbalance = GaugeMetricFamily(
        P + "moe_expert_load_imbalance",
        "Tokens of the busiest expert over the mean, per MoE layer (1 = balanced).",
        labels=["model_name", "layer"],
    )
    for layer, counts in load.items():
        for expert, n in enumerate(counts):
            tokens.add_metric([model, str(layer), str(expert)], float(n))
        mean = sum(counts) / len(counts)
        imbalance.add_metric([model, str(layer)], max(counts) / mean if mean else 1.0)
    yield tokens
    yield imbalance


class ServerMetrics:
    def __init__(self, stats: Callable[[], object], model_name: str):
        self.registry = CollectorRegistry(auto_describe=True)
        self.model_name = model_name
        self.registry.register(_EngineCollector(stats, model_name))
        lab = ["model_name"]
        r = self.registry
        self.ttft = Histogram(
            P + "time_to_first_token_seconds",
            "Time to first token.",
            lab,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            P + "time_per_output_token_seconds",
            "Mean time per output token after the first.",
            lab,
            buckets=_TPOT_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            P + "e2e_request_latency_seconds",
            "Arrival to last token.",
            lab,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Histogram(
            P + "request_queue_time_seconds",
            "Arrival to first scheduling.",
            lab,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.success = Counter(
            P + "request_success",
            "Finished requests by finish reason.",
            ["model_name", "finished_reason"],
            registry=r,
        )
        self.rejected = Counter(
            P + "request_rejected", "Requests refused with 429 (queue full).", lab, registry=r
        )
        self.prompt_len = Histogram(
            P + "request_prompt_tokens",
            "Prompt length per request.",
            lab,
            buckets=(16, 64, 256, 1024, 4096, 16384, 65536, 131072),
            registry=r,
        )
        self.gen_len = Histogram(
            P + "request_generation_tokens",
            "Generated tokens per request.",
            lab,
            buckets=(1, 8, 32, 128, 512, 2048, 8192, 32768),
            registry=r,
        )

    def observe_request(
        self,
        *,
        arrival: float,
        first_scheduled: float | None,
        first_token: float | None,
        finished: float,
        prompt_tokens: int,
        generation_tokens: int,
        finish_reason: str,
    ) -> None:
        m = self.model_name
        if first_token is not None:
            self.ttft.labels(m).observe(max(0.0, first_token - arrival))
            if generation_tokens > 1:
                self.tpot.labels(m).observe(max(0.0, finished - first_token) / (generation_tokens - 1))
        if first_scheduled is not None:
            self.queue.labels(m).observe(max(0.0, first_scheduled - arrival))
        self.e2e.labels(m).observe(max(0.0, finished - arrival))
        self.success.labels(m, finish_reason or "unknown").inc()
        self.prompt_len.labels(m).observe(prompt_tokens)
        self.gen_len.labels(m).observe(generation_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
