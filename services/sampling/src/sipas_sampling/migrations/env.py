"""Alembic environment of the sampling service."""

from sipas_events.schema import metadata as backbone
from sipas_kit.migrations import run_env
from sipas_sampling.adapters.tables import metadata

run_env([backbone, metadata])
