"""Prometheus metrics named like vLLM's, under the ``ctxops:`` prefix, each labelled with ``model_name``.

Per-request latencies (TTFT, inter-token latency, end-to-end, queue time) are histograms observed when a request
finishes; token counts and finished requests by reason are counters. Engine state (requests running and waiting,
KV cache usage, prefix-cache queries and hits) is read from the backend at scrape time, so ``/metrics`` is always
current. Each server owns its registry, so several servers can live in one process (tests). This module knows
records and stats, not HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ctxops.serve.request_log import RequestRecord

PREFIX = "ctxops:"
# seconds; fine buckets at the low end because a small model on a CPU answers in milliseconds
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0)  # fmt: skip
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               10.0)  # fmt: skip
E2E_BUCKETS = (0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0)  # fmt: skip
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
                 1000000)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BackendStats:
    """A snapshot of the backend for scrapes; None where a backend cannot know (a gateway has no KV cache)."""

    num_running: int
    num_waiting: int
    kv_cache_usage: float | None = None  # fraction of KV blocks in use, 0..1
    kv_bytes_in_use: int | None = (
        None  # K/V bytes the running sequences hold (blocks, plus head-policy rings)
    )
    prefix_cache_queries: int | None = None  # tokens looked up in the prefix cache, cumulative
    prefix_cache_hits: int | None = None  # tokens found there, cumulative
    num_preemptions: int | None = None  # cumulative
    healthy: bool = True  # False once the engine has died (the server is draining to exit)


class _StatsCollector(Collector):
    """Turns a :class:`BackendStats` snapshot into gauges and counters at every scrape."""

    def __init__(
        self, model_name: str, stats: Callable[[], BackendStats], in_flight: Callable[[], int]
    ) -> None:
        self.model_name = model_name
        self.stats = stats
        self.in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        gauges = {
            "num_requests_running": (
                "Requests running in the engine (or forwarded upstream)",
                stats.num_running,
            ),
            "num_requests_waiting": ("Requests waiting to be scheduled", stats.num_waiting),
            "num_requests_in_flight": (
                "Requests admitted by the server and not yet answered",
                self.in_flight(),
            ),
            "kv_cache_usage_perc": ("KV cache usage; 1 means 100 percent", stats.kv_cache_usage),
            "kv_cache_bytes_in_use": (
                "K/V bytes the running sequences hold (their blocks, and their rings under a KV head policy)",
                stats.kv_bytes_in_use,
            ),
            "engine_healthy": (
                "1 while the engine serves; 0 once it has died (the server exits)",
                stats.healthy,
            ),
        }
        counters = {
            "prefix_cache_queries": (
                "Prompt tokens looked up in the prefix cache",
                stats.prefix_cache_queries,
            ),
            "prefix_cache_hits": ("Prompt tokens found in the prefix cache", stats.prefix_cache_hits),
            "num_preemptions": ("Sequences preempted for lack of KV blocks", stats.num_preemptions),
        }
        for name, (doc, value) in gauges.items():
            if value is not None:
                family = GaugeMetricFamily(PREFIX + name, doc, labels=["model_name"])
                family.add_metric([self.model_name], float(value))
                yield family
        for name, (doc, value) in counters.items():
            if value is not None:
                family = CounterMetricFamily(PREFIX + name, doc, labels=["model_name"])
                family.add_metric([self.model_name], float(value))
                yield family


class ServerMetrics:
    """The server's metrics registry; :meth:`observe` records a finished request."""

    def __init__(
        self, model_name: str, stats: Callable[[], BackendStats], in_flight: Callable[[], int]
    ) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry()
        labels = ["model_name"]

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(PREFIX + name, doc, labels, buckets=buckets, registry=self.registry)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(PREFIX + name, doc, labels + list(extra), registry=self.registry)

        self.ttft = histogram("time_to_first_token_seconds", "Time to first token, seconds", TTFT_BUCKETS)
        self.itl = histogram(
            "inter_token_latency_seconds", "Time between output tokens, seconds", ITL_BUCKETS
        )
        self.e2e = histogram(
            "e2e_request_latency_seconds", "End-to-end request latency, seconds", E2E_BUCKETS
        )
        self.queue_time = histogram(
            "request_queue_time_seconds", "Time waiting to be scheduled, seconds", E2E_BUCKETS
        )
        self.prompt_len = histogram(
            "request_prompt_tokens", "Prompt length per request, tokens", TOKEN_BUCKETS
        )
        self.output_len = histogram(
            "request_generation_tokens", "Output length per request, tokens", TOKEN_BUCKETS
        )
        self.prompt_tokens = counter("prompt_tokens", "Prompt tokens processed")
        self.generation_tokens = counter("generation_tokens", "Tokens generated")
        self.success = counter("request_success", "Finished requests by finish reason", ("finished_reason",))
        self.errors = counter(
            "request_errors", "Requests answered with an error, by HTTP status", ("status",)
        )
        self.upstream = counter(
            "upstream_requests", "Gateway attempts by upstream and outcome", ("upstream", "outcome")
        )
        self.upstream_circuit = Gauge(
            PREFIX + "upstream_circuit_open",
            "1 while an upstream's circuit breaker is open or half-open (it is ranked last), else 0",
            [*labels, "upstream"],
            registry=self.registry,
        )
        self.registry.register(_StatsCollector(model_name, stats, in_flight))

    def observe(self, record: RequestRecord) -> None:
        """Record one answered request (success or error)."""
        model = self.model_name
        if record.status >= 400:
            self.errors.labels(model, str(record.status)).inc()
            return
        if record.finish_reason is not None:
            self.success.labels(model, record.finish_reason).inc()
        if record.ttft_s is not None:
            self.ttft.labels(model).observe(record.ttft_s)
        if record.queue_time_s is not None:
            self.queue_time.labels(model).observe(record.queue_time_s)
        if record.e2e_s is not None:
            self.e2e.labels(model).observe(record.e2e_s)
        itl = self.itl.labels(model)
        for gap in record.token_gaps_s:
            itl.observe(gap)
        if record.prompt_tokens is not None:
            self.prompt_tokens.labels(model).inc(record.prompt_tokens)
            self.prompt_len.labels(model).observe(record.prompt_tokens)
        if record.completion_tokens is not None:
            self.generation_tokens.labels(model).inc(record.completion_tokens)
            self.output_len.labels(model).observe(record.completion_tokens)

    def upstream_attempt(self, upstream: str, outcome: str, circuit_open: bool | None = None) -> None:
        """Count one gateway attempt when it ends, and set the upstream's circuit gauge when given.

        Outcomes: ``ok`` (answered in full), ``retried`` (unreachable or refused it unrun with 429/503; the next
        upstream was tried), ``rejected`` (a 4xx, passed back), ``failed`` (5xx, timeout, broken stream, or
        unreachable with no upstream left) and ``aborted`` (the client went away mid-answer).
        """
        self.upstream.labels(self.model_name, upstream, outcome).inc()
        if circuit_open is not None:
            self.upstream_circuit.labels(self.model_name, upstream).set(int(circuit_open))

    def render(self) -> bytes:
        """The text exposition format for ``GET /metrics``."""
        return generate_latest(self.registry)
