"""Per-service metrics: the backbone's plus HTTP, on one registry served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from sipas_events.metrics import BackboneMetrics


class ServiceMetrics(BackboneMetrics):
    def __init__(self, service: str) -> None:
        super().__init__(service, CollectorRegistry())
        p, r = f"sipas_{service}", self.registry
        self.http_requests = Counter(f"{p}_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r)
        self.http_latency = Histogram(
            f"{p}_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=r,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.idempotent_replays = Counter(f"{p}_idempotent_replays_total", "POSTs answered from a stored response", registry=r)
