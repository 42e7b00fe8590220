"""Prometheus metrics: queue depth, batch size, tokens, request latency and time to first token."""

from __future__ import annotations

from typing import Any

from steerlab.generation.jobs import ServingEngine


class Metrics:
    """A registry of its own (several apps in one process never share counters)."""

    def __init__(self, engine: ServingEngine) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self._engine = engine
        self.queue = Gauge("steerlab_queue_depth", "Jobs waiting for a batch row", registry=self.registry)
        self.batch = Gauge("steerlab_batch_rows", "Model rows in the running batch", registry=self.registry)
        self.tokens = Gauge("steerlab_generated_tokens", "Tokens generated since start", registry=self.registry)
        self.tps = Gauge("steerlab_tokens_per_second", "Tokens per second of engine step time",
                         registry=self.registry)
        self.failed = Gauge("steerlab_jobs_failed", "Jobs that ended in an error", registry=self.registry)
        self.requests = Counter("steerlab_requests", "HTTP requests by path and status", ["path", "status"],
                                registry=self.registry)
        self.latency = Histogram("steerlab_request_seconds", "HTTP request latency by path", ["path"],
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
                                 registry=self.registry)

    def request(self, route: str | None, status: int, seconds: float) -> None:
        """Count a request under its route's template (``None``: no route matched, one label for all
        unknown paths, so a scan of made-up paths cannot grow the series)."""
        label = route or "unmatched"
        self.requests.labels(label, str(status)).inc()
        self.latency.labels(label).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        s: Any = self._engine.stats
        self.queue.set(s.queued)
        self.batch.set(s.batch_rows)
        self.tokens.set(s.tokens)
        self.failed.set(s.jobs_failed)
        self.tps.set(s.tokens / s.step_seconds if s.step_seconds else 0.0)
        return bytes(generate_latest(self.registry))
