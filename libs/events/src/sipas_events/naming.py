"""Stream and subject names: ``SIPAS_<SERVICE>`` holds ``sipas.<service>.<Event>.<province>``."""

from __future__ import annotations

from sipas_events.envelope import NATIONAL, Envelope

PRODUCERS = ("registry", "sampling", "ballots", "scoring", "publishing")
DLQ_STREAM = "SIPAS_DLQ"


def stream_name(service: str) -> str:
    return f"SIPAS_{service.upper()}"


def stream_subjects(service: str) -> list[str]:
    return [f"sipas.{service}.>"]


def subject_for(envelope: Envelope) -> str:
    return f"sipas.{envelope.service}.{envelope.event_name}.{envelope.province or NATIONAL}"


def dlq_subject(consumer: str, producer: str) -> str:
    return f"sipas.dlq.{consumer}.{producer}"
