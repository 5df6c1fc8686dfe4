"""Frame imports: stream the file from disk, check every row, seal contacts, COPY in chunks, digest.

Memory stays flat however long the file is: rows are read one at a time from a temporary file and
written in chunks with PostgreSQL COPY. Errors go to ``frame_errors`` (never the rejected value:
it may be a phone number). In all-or-nothing mode one bad row rolls every row back and only the
frame record with its report is kept; in accept-valid mode the good rows are committed.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sipas_events.catalogue.sampling import FrameImported
from sipas_events.copy import copy_records as copy_into
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata
from sipas_sampling.adapters.keys import Contact, KeySource, Sealer
from sipas_sampling.adapters.tables import frame_errors, frame_units, frames, reference
from sipas_sampling.application.campaign_keys import data_key
from sipas_sampling.application.frame_rows import RowPipeline
from sipas_sampling.domain.digest import DIGEST_VERSION, FrameDigester, row_hash
from sipas_sampling.domain.errors import SamplingError
from sipas_sampling.domain.frame import FrameRow, FrameRules, Window, validate_row

CHUNK = 5000
SORT_MEMORY = "256MB"  # work_mem of the import's transaction (PostgreSQL's default 4MB spills every sort to disk)
MAX_REPORTED = 100_000  # error rows kept per frame; the counts stay exact beyond it
HEADER_ALIASES = {"ma_co_quan": "agency_code", "mã cơ quan": "agency_code", "thu_tuc": "procedure",
                  "thủ tục": "procedure", "linh_vuc": "service_field", "lĩnh vực": "service_field",
                  "ma_ho_so": "dossier_id", "mã hồ sơ": "dossier_id", "ngay_hoan_thanh": "completed_on",
                  "ngày hoàn thành": "completed_on", "loai": "respondent_type", "đối tượng": "respondent_type",
                  "ho_ten": "name", "họ tên": "name", "dien_thoai": "phone", "điện thoại": "phone",
                  "dia_chi": "address", "địa chỉ": "address",
                  # the resident design's stage files
                  "ma_xa": "commune_code", "mã xã": "commune_code", "so_ho": "households", "số hộ": "households",
                  "ma_thon": "village_code", "mã thôn": "village_code", "ten_thon": "village_name",
                  "tên thôn": "village_name", "ma_ho": "household_id", "mã hộ": "household_id",
                  "chu_ho": "head_name", "chủ hộ": "head_name", "họ tên chủ hộ": "head_name"}
FRAME_COLUMNS = ("agency_code", "dossier_id", "completed_on", "name")
UNIT_COLUMNS = ["frame_id", "dossier_id", "agency_code", "agency_id", "level", "area", "procedure", "service_field",
                "completed_on", "respondent_type", "row_hash", "contact"]


class UnreadableFrame(SamplingError):
    """The upload itself cannot be read as a frame."""


@dataclass(frozen=True)
class Agency:
    agency_id: str
    level: str
    province: str | None
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True)
class FrameResult:
    frame_id: str
    status: str
    rows: int
    rejected_rows: int
    digest: str | None


async def campaign_agencies(conn: AsyncConnection, province: str | None) -> dict[str, list[Agency]]:
    """Agency code → its registry units over time (a code may be reused after a reorganisation)."""
    a = reference.agencies.c
    stmt = select(a.code, a.agency_id, a.level, a.province, a.valid_from, a.valid_to)
    if province is not None:
        stmt = stmt.where(a.province == province)
    out: dict[str, list[Agency]] = {}
    for r in await conn.execute(stmt):
        out.setdefault(r.code, []).append(Agency(r.agency_id, r.level, r.province, r.valid_from, r.valid_to))
    return out


def agency_on(agencies: Mapping[str, list[Agency]], code: str, day: dt.date) -> Agency | None:
    valid = (a for a in agencies.get(code, []) if a.valid_from <= day and (a.valid_to is None or day <= a.valid_to))
    return next(valid, None)


def read_rows(spool: IO[bytes], filename: str,
              required: tuple[str, ...] = FRAME_COLUMNS) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw row) from a CSV (UTF-8, ',' ';' or tab) or an XLSX, one row at a time;
    ``required``: the columns the header must name."""
    for number, header, cells in read_cells(spool, filename, required):
        yield number, dict(zip(header, cells, strict=False))


def read_cells(spool: IO[bytes], filename: str,
               required: tuple[str, ...] = FRAME_COLUMNS) -> Iterator[tuple[int, list[str], Sequence[Any]]]:
    """``read_rows`` before each row becomes a dict: (line number, the header's names, the row's cells)."""
    spool.seek(0)
    if spool.read(4) == b"PK\x03\x04" or filename.lower().endswith(".xlsx"):
        yield from _xlsx_rows(spool, required)
        return
    spool.seek(0)
    if spool.read(3) != codecs.BOM_UTF8:
        spool.seek(0)
    stream = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    try:
        first = stream.readline()
        delimiter = max(",;\t", key=first.count)
        header = _header(next(csv.reader([first], delimiter=delimiter), []), required)
        for number, row in enumerate(csv.reader(stream, delimiter=delimiter), start=2):
            if "".join(row).strip():  # some cell holds more than whitespace
                yield number, header, row
    except UnicodeDecodeError as exc:
        raise UnreadableFrame(f"not UTF-8 text ({exc.reason}): save the CSV as UTF-8", "file") from None
    finally:
        stream.detach()


def _xlsx_rows(spool: IO[bytes], required: tuple[str, ...]) -> Iterator[tuple[int, list[str], Sequence[Any]]]:
    import openpyxl

    spool.seek(0)
    try:
        book = openpyxl.load_workbook(spool, read_only=True, data_only=True)
    except Exception as exc:
        raise UnreadableFrame(f"not a readable XLSX workbook: {type(exc).__name__}", "file") from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = _header([str(h or "") for h in next(rows, ())], required)
        for number, row in enumerate(rows, start=2):
            if any(v not in (None, "") for v in row):
                yield number, header, row
    finally:
        book.close()


def _header(cells: list[str], required: tuple[str, ...]) -> list[str]:
    names = [HEADER_ALIASES.get(c.strip().casefold(), c.strip().casefold().replace(" ", "_")) for c in cells]
    missing = [c for c in required if c not in names]
    if missing:
        raise UnreadableFrame(f"missing columns: {', '.join(missing)}", "file")
    return names


async def _copy(conn: AsyncConnection, table: str, columns: list[str], records: list[tuple[Any, ...]]) -> None:
    await copy_into(conn, table, columns, records)


async def copy_records(conn: AsyncConnection, table: str, columns: list[str], records: list[tuple[Any, ...]]) -> None:
    """COPY rows into a table in chunks (the resident stage frames write through here too)."""
    for start in range(0, len(records), CHUNK):
        await _copy(conn, table, columns, records[start:start + CHUNK])


async def import_frame(engine: AsyncEngine, store: EventStore, keys: KeySource, *, campaign: Mapping[str, Any],
                       spool: IO[bytes], filename: str, file_sha256: str, mode: str, meta: Metadata) -> FrameResult:
    frame_id = str(new_id())
    record = {"frame_id": frame_id, "campaign_id": campaign["campaign_id"], "filename": filename,
              "file_sha256": file_sha256, "mode": mode, "created_by": meta.actor}
    try:
        async with engine.begin() as conn:  # rows, frame record, report and event: one commit
            accepted, rejected, error_rows = await _load(conn, keys, campaign, frame_id, spool, filename, mode)
            if mode == "all_or_nothing" and rejected:
                raise _RollBack
            digest = await frame_digest(conn, frame_id)
            await record_frame(conn, record | {"status": "imported", "rows": accepted, "rejected_rows": rejected,
                                               "digest": digest}, error_rows)
            event = FrameImported(frame_id=frame_id, campaign_id=campaign["campaign_id"], mode=mode,  # type: ignore[arg-type]
                                  province=campaign["province"], rows=accepted, rejected_rows=rejected, digest=digest,
                                  digest_version=DIGEST_VERSION)
            await store.append(conn, f"frame-{frame_id}", [event], expected_version=0, meta=meta)
            return FrameResult(frame_id, "imported", accepted, rejected, digest)
    except _RollBack:
        async with engine.begin() as conn:  # only the record of the refusal and its report
            await record_frame(conn, record | {"status": "rejected", "rows": 0, "rejected_rows": rejected,
                                               "digest": None}, error_rows)
        return FrameResult(frame_id, "rejected", 0, rejected, None)


async def record_frame(conn: AsyncConnection, values: dict[str, Any], error_rows: list[tuple[Any, ...]]) -> None:
    """The frame's record and its per-row report (line, field, code, message: never a rejected value)."""
    await conn.execute(insert(frames).values(**values, created_at=dt.datetime.now(dt.UTC)))
    for start in range(0, len(error_rows), CHUNK):
        await _copy(conn, "frame_errors", ["frame_id", "line", "field", "code", "message"],
                    error_rows[start:start + CHUNK])


class _RollBack(Exception):
    """All-or-nothing and a row failed: undo every row written so far."""


async def _load(conn: AsyncConnection, keys: KeySource, campaign: Mapping[str, Any], frame_id: str,
                spool: IO[bytes], filename: str, mode: str) -> tuple[int, int, list[tuple[Any, ...]]]:
    campaign_id, province = campaign["campaign_id"], campaign["province"]
    window = campaign["definition"]["frame_window"]
    sealer = Sealer(await data_key(conn, keys, campaign_id), campaign_id)
    agencies = await campaign_agencies(conn, province)

    def known(code: str, day: dt.date) -> bool:
        return agency_on(agencies, code, day) is not None

    rules = FrameRules(Window(dt.date.fromisoformat(window["start"]), dt.date.fromisoformat(window["end"])), known)
    # Rows go to a staging table first; repeated dossiers are found there by SQL, so memory does not
    # grow with the number of rows (a set of ten million dossier ids would not fit the budget).
    await conn.execute(text("CREATE TEMP TABLE frame_stage (LIKE frame_units, line integer) ON COMMIT DROP"))
    # The sorts below (repeats, canonical order) run in memory up to this much before spilling to disk.
    await conn.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
    unseen = _Unseen()
    pipeline = RowPipeline(frame_id, rules, agencies, sealer, agency_on)
    batch: list[tuple[Any, ...]] = []
    error_rows: list[tuple[Any, ...]] = []
    accepted = rejected = 0
    for line, header, cells in read_cells(spool, filename):
        staged = pipeline.record(line, header, cells)  # a clean row, fast; None: the full check decides
        if staged is None:
            check = validate_row(dict(zip(header, cells, strict=False)), rules, unseen, line)
            if check.row is None:
                rejected += 1
                if len(error_rows) < MAX_REPORTED:
                    error_rows += [(frame_id, line, e.field, e.code, e.message) for e in check.errors]
                continue
            staged = (*_record(frame_id, check.row, agencies, sealer), line)
        accepted += 1  # staged even when all-or-nothing has already failed: repeats must still be reported
        batch.append(staged)
        if len(batch) >= CHUNK:
            await _copy(conn, "frame_stage", [*UNIT_COLUMNS, "line"], batch)
            batch = []
    if accepted + rejected == 0:
        raise UnreadableFrame("the file has a header but no rows", "file")
    if batch:
        await _copy(conn, "frame_stage", [*UNIT_COLUMNS, "line"], batch)
    # Repeats: one sort of (dossier, line) only. Dossier ids compare byte for byte ("C"): the database's
    # collation is deterministic, so the groups are the same, and "C" sorts several times faster.
    repeats = (await conn.execute(text(
        "SELECT line, first FROM (SELECT line, row_number() OVER w AS n, first_value(line) OVER w AS first "
        'FROM frame_stage WINDOW w AS (PARTITION BY dossier_id COLLATE "C" ORDER BY line)) s '
        "WHERE n > 1 ORDER BY line"))).all()
    for line, first in repeats:
        if len(error_rows) < MAX_REPORTED:
            error_rows.append((frame_id, line, "dossier_id", "duplicate",
                               f"the same dossier appears earlier in this frame, on line {first}"))
    accepted, rejected = accepted - len(repeats), rejected + len(repeats)
    if not (mode == "all_or_nothing" and rejected):
        await _insert_units(conn, [line for line, _ in repeats])
    return accepted, rejected, error_rows


async def _insert_units(conn: AsyncConnection, repeated_lines: list[int]) -> None:
    """Staged rows but the repeats into ``frame_units``, in canonical order, each with its rank in that order
    (``canonical_pos``, by which the draw fetches its picks). The key and the canonical index then grow at
    their right edge (dossier ids usually start with their agency's code), and a stratum's rows, which the
    draw and the digest read in that order, sit together on disk."""
    keep = ""
    if repeated_lines:
        await conn.execute(text("CREATE TEMP TABLE frame_repeats (line integer PRIMARY KEY) ON COMMIT DROP"))
        await copy_records(conn, "frame_repeats", ["line"], [(line,) for line in repeated_lines])
        keep = "WHERE NOT EXISTS (SELECT FROM frame_repeats r WHERE r.line = s.line) "
    columns, canonical = ", ".join(UNIT_COLUMNS), 'agency_code COLLATE "C", dossier_id COLLATE "C"'
    await conn.execute(text(f"INSERT INTO frame_units ({columns}, canonical_pos) SELECT {columns}, "
                            f"row_number() OVER (ORDER BY {canonical}) - 1 FROM frame_stage s {keep}"
                            f"ORDER BY {canonical}"))


class _Unseen(set[str]):
    """A ``seen`` set that remembers nothing: repeats are found in the staging table instead."""

    def __contains__(self, item: object) -> bool:
        return False

    def add(self, item: str) -> None:
        pass


def _record(frame_id: str, row: FrameRow, agencies: Mapping[str, list[Agency]], sealer: Sealer) -> tuple[Any, ...]:
    agency = agency_on(agencies, row.agency_code, row.completed_on)
    assert agency is not None  # validate_row checked it
    contact = sealer.seal(row.dossier_id, Contact(row.name, row.phone, row.address))
    return (frame_id, row.dossier_id, row.agency_code, agency.agency_id, agency.level, agency.province, row.procedure,
            row.service_field, row.completed_on, row.respondent_type, row_hash(row), contact)


async def frame_digest(conn: AsyncConnection, frame_id: str) -> str:
    """Digest v2 from the stored row hashes, in canonical order, without opening any contact."""
    digester = FrameDigester()
    pending = bytearray()

    async def feed(data: bytes) -> None:  # COPY's text output: one row hash in hex a line
        pending.extend(data)
        end = pending.rfind(b"\n") + 1
        if end:
            digester.update_hashes(bytes.fromhex(pending[:end].decode("ascii")))  # fromhex skips the newlines
            del pending[:end]

    # (frame_id, dossier_id) is the key, so each (agency_code, dossier_id) comes once, in canonical order.
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_from_query(  # type: ignore[union-attr]
        "SELECT encode(row_hash, 'hex') FROM frame_units WHERE frame_id = $1 "
        'ORDER BY agency_code COLLATE "C", dossier_id COLLATE "C"', frame_id, output=feed)
    if pending:
        raise ValueError("the row hashes ended in the middle of a line")
    return digester.hexdigest()


async def error_report(conn: AsyncConnection, frame_id: str) -> AsyncIterator[tuple[int, str, str, str]]:
    stmt = select(frame_errors.c.line, frame_errors.c.field, frame_errors.c.code, frame_errors.c.message).where(
        frame_errors.c.frame_id == frame_id).order_by(frame_errors.c.line, frame_errors.c.field)
    async for row in await conn.stream(stmt):
        yield row.line, row.field, row.code, row.message


def stored_row(r: Any) -> FrameRow:
    """A frame row as the draw needs it: everything but the contact (which the draw never reads)."""
    return FrameRow(agency_code=r.agency_code, procedure=r.procedure, service_field=r.service_field,
                    dossier_id=r.dossier_id, completed_on=r.completed_on, respondent_type=r.respondent_type,
                    name="", phone=None, address=None)


__all__ = ["FrameResult", "UnreadableFrame", "error_report", "frame_units", "import_frame", "stored_row"]
