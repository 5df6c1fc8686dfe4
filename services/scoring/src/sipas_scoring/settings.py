"""Settings of the scoring service: environment variables ``SIPAS_SCORING_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_SCORING_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "scoring"
    scores_interval: float = Field(default=0.5, gt=0, le=60,
                                   description="Seconds between provisional figure refreshes of a changed campaign")
    scores_event_interval: float = Field(default=2.0, ge=0, le=3600,
                                         description="Least seconds between two ScoresUpdated of one campaign (the "
                                         "figures refresh more often; the last state is always announced)")
    figures_process: bool = Field(default=True, description="Compute figures in a child process that keeps each "
                                  "campaign's measured ballots (false: in the service's own process)")
