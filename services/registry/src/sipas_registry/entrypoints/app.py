"""Wiring of the registry service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.settings import ServiceSettings
from sipas_registry.domain.agency import AlreadyExists, NotFound, RegistryError
from sipas_registry.entrypoints.http import router

DEFINITION = ServiceDefinition(
    name="registry", package="sipas_registry", title="SIPAS registry",
    description="Agencies and administrative units over time, campaigns, instruments and scoring schemes.",
    routers=[router],
    domain_errors={AlreadyExists: (409, "Conflict"), NotFound: (422, "Unknown reference"),
                   RegistryError: (422, "Invalid request")},
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
