"""Wiring of the sampling service."""

from __future__ import annotations

from fastapi import FastAPI

from sipas_kit.app import ServiceDefinition
from sipas_kit.app import create_app as kit_app
from sipas_kit.reference import reference_projection, reference_router
from sipas_kit.settings import ServiceSettings
from sipas_sampling.adapters.tables import reference
from sipas_sampling.application.campaign_keys import Shredded
from sipas_sampling.application.frames import UnreadableFrame
from sipas_sampling.application.rounds import NotFound, WrongState
from sipas_sampling.domain.errors import SamplingError, UnitNotActive
from sipas_sampling.entrypoints import resident_api, sampling_api
from sipas_sampling.projections.responses import projection as responses

DEFINITION = ServiceDefinition(
    name="sampling", package="sipas_sampling", title="SIPAS sampling",
    description="Sampling frames, allocations, verifiable draws and reserves; respondents' personal data.",
    routers=[reference_router(reference), sampling_api.router, resident_api.router],
    projections=[reference_projection(reference), responses],
    domain_errors={NotFound: (404, "Not found"), WrongState: (409, "Conflict"), Shredded: (410, "Gone"),
                   UnitNotActive: (409, "Conflict"), UnreadableFrame: (422, "Unreadable file"),
                   SamplingError: (422, "Invalid request")},
)


def create_app(settings: ServiceSettings) -> FastAPI:
    return kit_app(DEFINITION, settings)
