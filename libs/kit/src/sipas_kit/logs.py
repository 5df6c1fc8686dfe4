"""structlog, configured once: JSON lines in containers, readable output locally.

Standard-library loggers (uvicorn, sqlalchemy, nats) go through the same processors, so every line
carries the service name and whatever is bound in context (``correlation_id``, ``event_id``...).
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(service: str, fmt: str = "json", level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        lambda _, __, event: {**event, "service": service},
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # Drop lines below the level first, before any processor runs (per-event DEBUG lines are cheap).
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.processors.format_exc_info,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):  # the kit logs requests itself, with the correlation id
        logging.getLogger(noisy).setLevel(logging.WARNING)
