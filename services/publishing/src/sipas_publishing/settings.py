"""Settings of the publishing service: environment variables ``SIPAS_PUBLISHING_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class PublishingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_PUBLISHING_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "publishing"
