"""Wiring of the registry service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.settings import ServiceSettings
from sipas_registry.domain.errors import AlreadyExists, Immutable, NotAllowed, NotFound, RegistryError
from sipas_registry.entrypoints import campaigns_api, definitions_api, imports_api, units_api

DEFINITION = ServiceDefinition(
    name="registry", package="sipas_registry", title="SIPAS registry",
    description="Agencies and administrative units over time, campaigns, instruments and scoring schemes.",
    routers=[units_api.router, imports_api.router, definitions_api.router, campaigns_api.router],
    domain_errors={AlreadyExists: (409, "Conflict"), Immutable: (409, "Immutable"), NotAllowed: (403, "Forbidden"),
                   NotFound: (422, "Unknown reference"), RegistryError: (422, "Invalid request")},
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
