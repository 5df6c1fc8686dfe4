"""A release's figures as CSV (UTF-8 with BOM, for Excel) and XLSX: one line per published figure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.responses import Response

from sipas_kit.downloads import table_download

HEADER = ["level", "unit_id", "code", "name", "province", "figure", "figure_code", "value", "n", "ci_low",
          "ci_high", "ci_method", "suppressed", "rank", "rank_best", "rank_worst", "rank_of"]


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
    about = [(key, head.get(key, "")) for key in ("release_id", "campaign_id", "year", "status", "figures_digest")]
    return table_download("csv" if fmt == "csv" else "xlsx", HEADER, lines(units), name, sheet="figures",
                          about_sheet="release", about=about)
