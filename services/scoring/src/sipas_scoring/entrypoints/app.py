"""Wiring of the scoring service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings
from sipas_scoring.adapters.tables import reference
from sipas_scoring.application.scores import figures_worker
from sipas_scoring.domain.errors import ScoringError
from sipas_scoring.entrypoints import scores_api
from sipas_scoring.projections.sample import projection as sample
from sipas_scoring.projections.tallies import projection as counted

DEFINITION = ServiceDefinition(
    name="scoring", package="sipas_scoring", title="SIPAS scoring",
    description="Tallies, indices, confidence intervals, points and rankings.",
    routers=[reference_router(reference), scores_api.router],
    projections=[reference_projection(reference), sample, counted],
    domain_errors={ScoringError: (422, "Cannot score")},
    workers=[figures_worker],
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
