"""Settings of the publishing service: environment variables ``SIPAS_PUBLISHING_*``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class PublishingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_PUBLISHING_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "publishing"

    data_dir: Path = Field(default=Path(".sipas/publishing"), description="Holds the release-signing key")
    public_base_url: str = Field(default="http://127.0.0.1:8005", description="Where partners reach this service")
    worker_interval: float = Field(default=1.0, gt=0, description="Embargo and webhook worker tick, seconds")
    webhook_allow_private: bool = Field(default=False, description="Development only: allow private/loopback "
                                                                   "webhook targets")
    webhook_backoff: float = Field(default=5.0, gt=0, description="First retry delay, seconds (doubles each time)")
    webhook_backoff_max: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=15, ge=1)
    webhook_timeout: float = Field(default=10.0, gt=0)
