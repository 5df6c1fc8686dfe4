"""Settings of the registry service: environment variables ``SIPAS_REGISTRY_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_REGISTRY_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "registry"
