"""The ballots service's own tables beside the backbone's: so far the registry's reference data."""

from __future__ import annotations

from sqlalchemy import MetaData

from sipas_kit.reference import ReferenceTables

metadata = MetaData()
reference = ReferenceTables.on(metadata)
