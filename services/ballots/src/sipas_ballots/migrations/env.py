"""Alembic environment of the ballots service."""

from sipas_ballots.adapters.tables import metadata
from sipas_events.schema import metadata as backbone
from sipas_kit.migrations import run_env

run_env([backbone, metadata])
