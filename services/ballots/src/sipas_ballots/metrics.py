"""The ballots service's own metrics, on the service's registry (served at /metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter


def intake_outcomes(metrics: Any) -> Counter:
    """``sipas_ballots_intake_outcomes_total{campaign, channel, outcome, reason}``: progress as Prometheus sees it
    (per agency and enumerator, where the label count would explode, see the progress API)."""
    counter = getattr(metrics, "intake_outcomes", None)
    if counter is None:
        counter = Counter("sipas_ballots_intake_outcomes_total", "Submissions by campaign, channel and outcome",
                          ["campaign", "channel", "outcome", "reason"], registry=metrics.registry)
        metrics.intake_outcomes = counter
    return counter
