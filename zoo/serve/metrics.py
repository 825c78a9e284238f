"""The server's Prometheus metrics: one registry per app, so several apps (tests) never
share counts. Model labels are only the names served: a request for an unknown name is
counted under model="" (clients never choose label values)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests, errors, latency, batch sizes and queue depth, per model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("zoo_requests", "Predict requests answered, by HTTP status",
                                ["model", "code"], registry=self.registry)
        self.errors = Counter("zoo_request_errors", "Predict requests refused or failed, by reason",
                              ["model", "reason"], registry=self.registry)
        self.latency = Histogram("zoo_request_latency_seconds",
                                 "Predict request time, body read to response",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("zoo_batch_size", "Inputs per model call (before padding)",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("zoo_requests_in_flight", "Predict requests begun, not answered",
                               ["model"], registry=self.registry)
        self.queue_depth = Gauge("zoo_queue_depth", "Inputs waiting for a batch",
                                 ["model"], registry=self.registry)
        self.compile_seconds = Gauge("zoo_compile_seconds",
                                     "Seconds spent compiling the model's batch buckets",
                                     ["model"], registry=self.registry)

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
