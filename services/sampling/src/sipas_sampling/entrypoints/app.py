"""Wiring of the sampling service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings
from sipas_sampling.adapters.tables import reference

DEFINITION = ServiceDefinition(
    name="sampling", package="sipas_sampling", title="SIPAS sampling",
    description="Sampling frames, allocations, verifiable draws and reserves; respondents' personal data.",
    routers=[reference_router(reference)], projections=[reference_projection(reference)],
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
