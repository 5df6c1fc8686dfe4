"""Tables as downloads: CSV (UTF-8 with a BOM, so Excel reads Vietnamese right) or XLSX with an "about" sheet.

One place for the format details, used by scoring's figures exports and publishing's release exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from fastapi.responses import Response

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def table_download(fmt: Literal["csv", "xlsx"], header: Sequence[str], rows: Iterable[Sequence[Any]], name: str, *,
                   sheet: str, about_sheet: str, about: Iterable[tuple[str, Any]]) -> Response:
    """``rows`` under ``header`` as ``name.csv`` or ``name.xlsx``; the XLSX adds ``about`` (key, value) lines
    on a second sheet (what the table is: its release or snapshot, digest, positions)."""
    disposition = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
        return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8", headers=disposition)
    import openpyxl  # only when a workbook is asked for

    book = openpyxl.Workbook(write_only=True)
    table = book.create_sheet(sheet)
    table.append(list(header))
    for row in rows:
        table.append(list(row))
    notes = book.create_sheet(about_sheet)
    for key, value in about:
        notes.append([key, str(value)])
    buffer = io.BytesIO()
    book.save(buffer)
    return Response(buffer.getvalue(), media_type=XLSX, headers=disposition)
