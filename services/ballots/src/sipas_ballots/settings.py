"""Settings of the ballots service: environment variables ``SIPAS_BALLOTS_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class BallotsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_BALLOTS_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "ballots"
