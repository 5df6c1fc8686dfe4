"""Wiring of the scoring service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.settings import ServiceSettings

DEFINITION = ServiceDefinition(
    name="scoring", package="sipas_scoring", title="SIPAS scoring",
    description="Tallies, indices, confidence intervals, points and rankings.",
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
