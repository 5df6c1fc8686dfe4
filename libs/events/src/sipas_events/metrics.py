"""Backbone metrics, named ``sipas_<service>_<noun>_total|_seconds`` on the service's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BackboneMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        p = f"sipas_{service}"
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.events_appended = Counter(f"{p}_events_appended_total", "Events appended to the store", ["type"], registry=r)
        self.events_sequenced = Counter(f"{p}_events_sequenced_total", "Events given a store position", registry=r)
        self.events_published = Counter(f"{p}_events_published_total", "Events published to JetStream", registry=r)
        self.publish_duplicates = Counter(f"{p}_publish_duplicates_total", "Publishes JetStream dropped as duplicates", registry=r)
        self.outbox_backlog = Gauge(f"{p}_outbox_backlog", "Events stored but not yet published", registry=r)
        self.relay_leader = Gauge(f"{p}_relay_leader", "1 when this process is the active relay", registry=r)
        self.relay_errors = Counter(f"{p}_relay_errors_total", "Relay rounds that failed", ["kind"], registry=r)
        self.events_consumed = Counter(f"{p}_events_consumed_total", "Events applied by consumers", ["consumer", "type"], registry=r)
        self.events_skipped = Counter(f"{p}_events_skipped_total", "Events a consumer has no handler for", ["consumer"], registry=r)
        self.inbox_duplicates = Counter(f"{p}_inbox_duplicates_total", "Redelivered events that changed nothing", ["consumer"], registry=r)
        self.run_fallbacks = Counter(f"{p}_run_fallbacks_total", "Runs a projection's run handler refused, applied event by event instead", ["consumer"], registry=r)
        self.consume_failures = Counter(f"{p}_events_failed_total", "Handler failures (each attempt)", ["consumer", "type"], registry=r)
        self.dead_lettered = Counter(f"{p}_events_dead_lettered_total", "Events sent to the dead-letter stream", ["consumer"], registry=r)
        self.dead_letters_open = Gauge(f"{p}_dead_letters_open", "Dead letters not yet replayed or discarded", ["consumer"], registry=r)
        self.gap_fills = Counter(f"{p}_gap_fills_total", "Events fetched from a producer's replay endpoint", ["consumer"], registry=r)
        self.consumer_lag = Gauge(f"{p}_consumer_lag", "Messages waiting for this consumer", ["consumer"], registry=r)
        self.consumer_position = Gauge(f"{p}_consumer_position", "Last contiguous producer position applied", ["consumer", "producer"], registry=r)
        self.consumer_errors = Counter(f"{p}_consumer_errors_total", "Infrastructure errors in consumer loops", ["consumer", "kind"], registry=r)
        self.apply_latency = Histogram(
            f"{p}_append_to_projection_seconds", "Time from an event's creation to its projection commit",
            ["consumer"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
