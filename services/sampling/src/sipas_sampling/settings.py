"""Settings of the sampling service: environment variables ``SIPAS_SAMPLING_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class SamplingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_SAMPLING_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "sampling"
