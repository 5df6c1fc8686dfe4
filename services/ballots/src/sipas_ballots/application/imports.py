"""Bulk import of keyed ballots (CSV or XLSX): every row through the one validation path, a report row
for every row. Each ballot stands on its own, so a bad row never blocks a good one; every rejection
is recorded like any other channel's."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sipas_ballots.application.intake import submit, today_in_vietnam
from sipas_ballots.domain.errors import BallotsError
from sipas_ballots.domain.validation import Accepted, Submission
from sipas_events.store import EventStore, Metadata

RESERVED = {"code", "expectations", "not_applicable_factors", "entered_by"}


class UnreadableImport(BallotsError):
    pass


def rows_of(content: bytes, filename: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if content.startswith(b"PK\x03\x04") or filename.lower().endswith(".xlsx"):
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:
            raise UnreadableImport(f"not a readable XLSX workbook: {type(exc).__name__}", "file") from None
        sheet = book.worksheets[0].iter_rows(values_only=True)
        header = [str(h or "").strip() for h in next(sheet, ())]
        _check(header)
        for line, values in enumerate(sheet, start=2):
            yield line, dict(zip(header, values, strict=False))
        book.close()
        return
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableImport(f"not UTF-8 text at byte {exc.start}", "file") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    _check(header)
    for line, values in enumerate(reader, start=2):
        if any(v.strip() for v in values):
            yield line, dict(zip(header, values, strict=False))


def _check(header: list[str]) -> None:
    if "code" not in header:
        raise UnreadableImport("the first row must name the columns: code, then one column per item code "
                               "(e.g. 1.1), optionally expectations and not_applicable_factors", "file")


def _answer(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip() in ("", "0")):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value  # anything else is off scale, and the validation path says so


async def import_ballots(engine: AsyncEngine, store: EventStore, campaign_id: str, content: bytes, filename: str,
                         clerk: str, meta: Metadata) -> list[dict[str, Any]]:
    report = []
    today = today_in_vietnam()
    for line, row in rows_of(content, filename):
        answers = {k: _answer(v) for k, v in row.items() if k not in RESERVED and k}
        sub = Submission(code=str(row.get("code") or ""), campaign_id=campaign_id, received_on=today, answers=answers,
                         channel="import", expectations=frozenset(str(row.get("expectations") or "").split()),
                         entered_by=str(row.get("entered_by") or clerk),
                         not_applicable_factors=frozenset(str(row.get("not_applicable_factors") or "").split()))
        async with engine.begin() as conn:  # one ballot, one transaction: the outcome is recorded either way
            submission_id, outcome = await submit(conn, store, sub, meta)
        if isinstance(outcome, Accepted):
            report.append({"line": line, "outcome": "accepted", "reason": "", "detail": "",
                           "submission_id": submission_id})
        else:
            report.append({"line": line, "outcome": "rejected", "reason": outcome.reason_code,
                           "detail": outcome.detail, "submission_id": submission_id})
    if not report:
        raise UnreadableImport("the file has a header but no rows", "file")
    return report
