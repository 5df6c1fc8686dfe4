"""Alembic environment of the scoring service."""

from sipas_events.schema import metadata as backbone
from sipas_kit.migrations import run_env
from sipas_scoring.adapters.tables import metadata

run_env([backbone, metadata])
