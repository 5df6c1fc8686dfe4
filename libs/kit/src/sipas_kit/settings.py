"""One settings class per service, validated at start-up, read from ``SIPAS_<SERVICE>_*``.

Shared settings fall back to unprefixed ``SIPAS_*`` variables so one environment can configure all
services (e.g. ``SIPAS_NATS_URL``), while per-service variables win.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sipas_events.consumer import REBUILD_PROCESS_MIN

SHARED = ("nats_url", "jwt_jwks_file", "jwt_issuer", "jwt_audience", "log_format", "log_level",
          "stream_replicas", "peers")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_nested_delimiter="__")
    service: ClassVar[str] = "service"

    database_url: SecretStr = Field(description="postgresql+asyncpg://user:pass@host:port/db")
    nats_url: str = "nats://127.0.0.1:14222"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"

    jwt_jwks_file: Path | None = Field(default=None, description="JWKS with the token-signing public keys")
    jwt_issuer: str = "sipas-dev"
    jwt_audience: str = "sipas"
    service_token: SecretStr | None = Field(default=None, description="Bearer token for replay calls to peers")

    peers: dict[str, str] = Field(default_factory=dict, description="producer -> base URL, for gap filling")
    stream_replicas: int = Field(default=1, ge=1, le=5)
    duplicate_window: float = Field(default=120.0, gt=0)
    relay_batch: int = Field(default=1000, ge=1, le=10000)
    consumer_batch: int = Field(default=1000, ge=1, le=5000)
    consumer_max_attempts: int = Field(default=5, ge=1, le=100)
    consumer_run_interval: float = Field(
        default=0.1, ge=0, le=5, description="Under a steady stream, a consumer's runs (one transaction each) begin "
        "at most this often while less than a batch waits: fewer, larger runs; 0: a run as soon as events come")
    rebuild_process_min: int | None = Field(
        default=REBUILD_PROCESS_MIN, ge=0, description="A projection's rebuild reads its stream in a process of its "
        "own (reading and preparing beside the runs, on another core) when the stream holds at least this many "
        "messages; unset: never")
    db_pool_size: int = Field(default=10, ge=1, le=200)

    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="JSON and form bodies")
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024, description="CSV/XLSX files (streamed)")
    json_max_depth: int = Field(default=32, ge=2, le=1000)
    rate_limits: dict[str, str] = Field(default_factory=dict, description="path prefix -> 'requests/seconds' "
                                        "per client address, e.g. {'/b': '60/60'}; per process")
    body_timeout: float = Field(default=30.0, gt=0, le=3600, description="A JSON or form body that stops arriving "
                                "this long is a 408 (slow-body clients)")
    keep_alive_timeout: int = Field(default=5, gt=0, le=300, description="uvicorn closes an idle keep-alive "
                                      "connection after this many seconds")
    csrf_secret: SecretStr | None = Field(default=None, description="Signs the HTML forms' CSRF tokens; the "
                                          "same on every replica (unset: a random one per process)")
    csrf_max_age: float = Field(default=12 * 3600, gt=0, description="How long a rendered form may be sent, s")

    @model_validator(mode="before")
    @classmethod
    def _shared_fallbacks(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in SHARED:
                env = os.environ.get(f"SIPAS_{name.upper()}")
                if env is not None and name not in data and f"{cls.service}_{name}" not in data:
                    data.setdefault(name, env)
        return data


def settings_for(service: str) -> type[ServiceSettings]:
    """A settings class bound to ``SIPAS_<SERVICE>_`` for a service without its own fields."""
    return type(
        f"{service.title()}Settings", (ServiceSettings,),
        {"model_config": SettingsConfigDict(env_prefix=f"SIPAS_{service.upper()}_", extra="ignore",
                                            env_nested_delimiter="__"),
         "service": service, "__module__": __name__},
    )
