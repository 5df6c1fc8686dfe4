"""Wiring of the scoring service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings
from sipas_scoring.adapters.tables import reference

DEFINITION = ServiceDefinition(
    name="scoring", package="sipas_scoring", title="SIPAS scoring",
    description="Tallies, indices, confidence intervals, points and rankings.",
    routers=[reference_router(reference)], projections=[reference_projection(reference)],
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
