"""Wiring of the publishing service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings
from sipas_publishing.adapters.tables import reference
from sipas_publishing.application.webhooks import publishing_worker
from sipas_publishing.domain.errors import FiguresMismatch, FourEyes, ReleaseConflict, ScoringUnavailable
from sipas_publishing.entrypoints import events_api, pages, partner_api, releases_api
from sipas_publishing.projections.snapshots import commitment_projection, snapshot_projection

DEFINITION = ServiceDefinition(
    name="publishing", package="sipas_publishing", title="SIPAS publishing",
    description="Approved releases, the public report, the partner API and score events.",
    routers=[reference_router(reference), releases_api.router, partner_api.router, events_api.router, pages.router],
    projections=[reference_projection(reference), snapshot_projection, commitment_projection],
    domain_errors={FourEyes: (403, "Four eyes"), ReleaseConflict: (409, "Conflict"),
                   FiguresMismatch: (409, "Figures do not match the snapshot"),
                   ScoringUnavailable: (503, "Scoring unavailable")},
    workers=[publishing_worker],
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
