"""Bulk agency imports from CSV or XLSX: read, check every row, then commit all rows or none.

A rejected file leaves no unit and no event behind, only its import record with the per-row report
(so the sender can download it); a committed file becomes one AgencyRegistered per row plus one
AgencyImportCompleted, in one transaction.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.catalogue.registry import AgencyImportCompleted
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata
from sipas_registry.adapters.tables import agency_imports, units
from sipas_registry.application.projector import record
from sipas_registry.application.units import _unit, handle_register_many, lock_units
from sipas_registry.domain import importing
from sipas_registry.domain.errors import RegistryError
from sipas_registry.domain.importing import Lookups, RowError
from sipas_registry.domain.units import Unit

MAX_ROWS = 200_000
XLSX_MAGIC = b"PK\x03\x04"


class UnreadableFile(RegistryError):
    """The file itself cannot be read (not CSV/XLSX, wrong encoding, missing columns)."""


@dataclass(frozen=True)
class ImportResult:
    import_id: str
    status: str
    rows: int
    errors: list[RowError]
    sha256: str
    agency_ids: list[str]


def read_rows(filename: str, content: bytes) -> list[dict[str, object]]:
    table = _xlsx(content) if content.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx") else _csv(content)
    if not table:
        raise UnreadableFile("the file is empty", "file")
    header = importing.normalise_header([str(h or "") for h in table[0]])
    if missing := importing.missing_columns(header):
        raise UnreadableFile(f"missing columns: {', '.join(missing)} (the first row must name the columns: "
                             f"{', '.join(importing.COLUMNS)})", "file")
    rows = [dict(zip(header, r, strict=False)) for r in table[1:] if any(v not in (None, "") for v in r)]
    if not rows:
        raise UnreadableFile("the file has a header but no rows", "file")
    if len(rows) > MAX_ROWS:
        raise UnreadableFile(f"{len(rows)} rows: at most {MAX_ROWS} per file", "file")
    return rows


def _csv(content: bytes) -> list[list[object]]:
    try:
        text = content.decode("utf-8-sig") if content.startswith(codecs.BOM_UTF8) else content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text at byte {exc.start}: save the CSV as UTF-8", "file") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    return [list(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter)]


def _xlsx(content: bytes) -> list[list[object]]:
    import openpyxl  # only needed for spreadsheets

    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:
        raise UnreadableFile(f"not a readable XLSX workbook: {type(exc).__name__}", "file") from None
    try:
        sheet = book.worksheets[0]
        return [list(r) for r in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


async def _lookups(conn: AsyncConnection, rows: Sequence[dict[str, object]],
                   in_scope: Callable[[str], bool]) -> Lookups:
    codes = {str(r.get(k) or "").strip() for r in rows for k in ("code", "parent_code")} - {""}
    by_code: dict[str, list[Unit]] = {}
    stmt = select(units).where(or_(units.c.code.in_(sorted(codes)), units.c.level == "province"))
    for row in await conn.execute(stmt):
        by_code.setdefault(row.code, []).append(_unit(row))

    def province_exists(code: str, day: dt.date) -> bool:
        return any(u.level == "province" and u.valid_on(day) for u in by_code.get(code, []))

    return Lookups(units_with_code=lambda c: by_code.get(c, []), province_exists=province_exists, in_scope=in_scope)


async def handle_import(conn: AsyncConnection, store: EventStore, filename: str, content: bytes,
                        in_scope: Callable[[str], bool], scope_province: str | None, meta: Metadata) -> ImportResult:
    """Plan under the units lock; on any row error record the rejection (the caller commits it) and stop."""
    rows = read_rows(filename, content)
    digest = hashlib.sha256(content).hexdigest()
    import_id = str(new_id())
    await lock_units(conn)
    plan = importing.plan_import(rows, await _lookups(conn, rows, in_scope), lambda: str(new_id()))
    status = "rejected" if plan.errors else "committed"
    await conn.execute(insert(agency_imports).values(
        import_id=import_id, filename=filename, sha256=digest, status=status, rows=len(rows),
        errors=[asdict(e) for e in plan.errors], actor=meta.actor, province=scope_province,
        created_at=dt.datetime.now(dt.UTC),
    ))
    if plan.errors:
        return ImportResult(import_id, status, len(rows), plan.errors, digest, [])
    await handle_register_many(conn, store, plan.commands, meta)
    ids = [c.agency_id for c in plan.commands]
    done = AgencyImportCompleted(import_id=import_id, filename=filename, sha256=digest, rows=len(rows),
                                 agency_ids=ids, province=scope_province)
    await record(conn, store, meta, [(f"import-{import_id}", 0, [done])])
    return ImportResult(import_id, status, len(rows), [], digest, ids)


def report_csv(errors: Sequence[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["row", "field", "value", "reason"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(errors)
    return out.getvalue()
