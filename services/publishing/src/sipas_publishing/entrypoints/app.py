"""Wiring of the publishing service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.settings import ServiceSettings

DEFINITION = ServiceDefinition(
    name="publishing", package="sipas_publishing", title="SIPAS publishing",
    description="Approved releases, the public report, the partner API and score events.",
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
