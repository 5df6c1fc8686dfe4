"""Wiring of the ballots service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_ballots.adapters.tables import reference
from sipas_ballots.application.imports import UnreadableImport
from sipas_ballots.domain.errors import AlreadyCancelled, AlreadyUsed, BallotsError, NotAllowed, UnknownBallot
from sipas_ballots.entrypoints import clerk_pages, intake_api, pages, quality_api
from sipas_ballots.projections.sample import projection as sample
from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings

DEFINITION = ServiceDefinition(
    name="ballots", package="sipas_ballots", title="SIPAS ballots",
    description="Ballot codes, every intake channel, validation, double entry and back-checks.",
    routers=[reference_router(reference), intake_api.router, pages.router,
             clerk_pages.router, quality_api.router],
    projections=[reference_projection(reference), sample],
    domain_errors={UnknownBallot: (404, "Not found"), AlreadyUsed: (409, "Conflict"),
                   AlreadyCancelled: (409, "Conflict"), UnreadableImport: (422, "Unreadable file"),
                   NotAllowed: (403, "Forbidden"), BallotsError: (422, "Invalid request")},
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
