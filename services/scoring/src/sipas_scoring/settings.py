"""Settings of the scoring service: environment variables ``SIPAS_SCORING_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_SCORING_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "scoring"
    scores_interval: float = Field(default=2.0, gt=0, le=60,
                                   description="Seconds between provisional figure refreshes of a changed campaign")
    figures_process: bool = Field(default=True, description="Compute figures in a child process that keeps each "
                                  "campaign's measured ballots (false: in the service's own process)")
