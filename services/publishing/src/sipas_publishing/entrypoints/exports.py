"""A release's figures as CSV (UTF-8 with BOM, for Excel) and XLSX: one line per published figure."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.responses import Response

HEADER = ["level", "unit_id", "code", "name", "province", "figure", "figure_code", "value", "n", "ci_low",
          "ci_high", "ci_method", "suppressed", "rank", "rank_best", "rank_worst", "rank_of"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def lines(units: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    for u in units:
        rank = u.get("rank") or {}
        parts = [("overall", "", u.get("overall") or {})]
        parts += [(kind, code, f) for kind in ("factors", "items") for code, f in (u.get(kind) or {}).items()]
        for kind, code, f in parts:
            low, high = (f.get("ci") or [None, None])[:2]
            ranks = [rank.get(k) for k in ("rank", "best", "worst", "of")] if kind == "overall" else [None] * 4
            yield [u["level"], u["id"], u.get("code"), u.get("name"), u.get("province"), kind.rstrip("s"), code,
                   f.get("value", f.get("points")), f.get("n"), low, high, f.get("ci_method"),
                   f.get("suppressed") or u.get("suppressed"), *ranks]


def render(head: dict[str, Any], units: list[dict[str, Any]], fmt: str, name: str) -> Response:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(lines(units))
        return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("figures")
    sheet.append(HEADER)
    for line in lines(units):
        sheet.append(line)
    about = book.create_sheet("release")
    for key in ("release_id", "campaign_id", "year", "status", "figures_digest"):
        about.append([key, str(head.get(key, ""))])
    buffer = io.BytesIO()
    book.save(buffer)
    return Response(buffer.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
