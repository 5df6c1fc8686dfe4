"""Run a service under uvicorn with the kit's logging (``python -m sipas_<service>``)."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from sipas_kit.settings import ServiceSettings


def serve(factory: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings) -> None:
    uvicorn.run(factory(settings), host=settings.host, port=settings.port, log_config=None,
                timeout_graceful_shutdown=15, proxy_headers=True, access_log=False,
                timeout_keep_alive=settings.keep_alive_timeout)
