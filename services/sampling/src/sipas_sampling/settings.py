"""Settings of the sampling service: environment variables ``SIPAS_SAMPLING_*``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sipas_kit.settings import ServiceSettings


class SamplingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SIPAS_SAMPLING_", extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "sampling"

    master_key_file: Path = Field(
        default=Path(".sipas/keys/sampling-master.key"),
        description="32-byte master key that wraps each campaign's data key (created 0600 if missing). "
                    "Production points this at a mounted secret, or replaces LocalKeyFile with a KMS.")
    max_frame_bytes: int = Field(default=4 * 1024**3, ge=1, description="Largest frame upload accepted")
    max_stage_frame_bytes: int = Field(
        default=256 * 1024**2, ge=1,
        description="Largest resident stage file accepted (its checked rows are held until the file is known good)")
