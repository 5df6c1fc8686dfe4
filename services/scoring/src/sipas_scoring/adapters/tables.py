"""The scoring service's own tables (beside the backbone's); later issues add them."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
