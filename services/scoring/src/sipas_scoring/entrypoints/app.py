"""Wiring of the scoring service."""

from __future__ import annotations

import structlog
from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.context import ServiceContext
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings
from sipas_scoring.adapters.tables import reference
from sipas_scoring.application.scores import figures_worker
from sipas_scoring.domain.errors import ScoringError
from sipas_scoring.entrypoints import scores_api
from sipas_scoring.projections.sample import projection as sample
from sipas_scoring.projections.tallies import projection as counted
from sipas_scoring.projections.tallies import settle

log = structlog.get_logger(__name__)


async def settle_owed(ctx: ServiceContext) -> None:
    """Once at start: tallies a rebuild left owed (the process stopped before its end) are recounted now."""
    try:
        async with ctx.engine.begin() as conn:
            settled = await settle(conn)
        if settled:
            log.warning("scoring.tallies_settled_at_start", campaigns=settled)
    except Exception as exc:  # the consumer settles a campaign before it adds to it anyway
        log.warning("scoring.settle_at_start_failed", error=repr(exc)[:300])


DEFINITION = ServiceDefinition(
    name="scoring", package="sipas_scoring", title="SIPAS scoring",
    description="Tallies, indices, confidence intervals, points and rankings.",
    routers=[reference_router(reference), scores_api.router],
    projections=[reference_projection(reference), sample, counted],
    domain_errors={ScoringError: (422, "Cannot score")},
    workers=[figures_worker, settle_owed],
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
