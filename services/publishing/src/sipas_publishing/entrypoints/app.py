"""Wiring of the publishing service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings
from sipas_publishing.adapters.tables import reference

DEFINITION = ServiceDefinition(
    name="publishing", package="sipas_publishing", title="SIPAS publishing",
    description="Approved releases, the public report, the partner API and score events.",
    routers=[reference_router(reference)], projections=[reference_projection(reference)],
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
