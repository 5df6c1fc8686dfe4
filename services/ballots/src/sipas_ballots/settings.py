"""Settings of the ballots service: environment variables ``SIPAS_BALLOTS_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class BallotsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_BALLOTS_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "ballots"

    public_base_url: str = Field(default="http://127.0.0.1:8103",
                                 description="Where respondents open their ballot: QR codes point at {base}/b/{code}")
    rate_limits: dict[str, str] = Field(default_factory=lambda: {"/b": "120/60"},
                                        description="Respondent pages: 120 requests a minute per client address")
