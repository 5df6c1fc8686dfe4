"""Reading releases: lists, one release, its signed file, its figures, a unit's history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_kit.problems import Problem
from sipas_publishing.adapters.tables import releases
from sipas_publishing.domain import manifest as mf
from sipas_publishing.domain.releases import PUBLIC


async def superseded_by(conn: AsyncConnection, release_ids: Iterable[str]) -> dict[str, str]:
    rows = await conn.execute(select(releases.c.supersedes, releases.c.release_id).where(
        releases.c.supersedes.in_(list(release_ids)), releases.c.status.in_(PUBLIC)))
    return {r.supersedes: r.release_id for r in rows}


async def one(conn: AsyncConnection, release_id: str, public_only: bool) -> dict[str, Any]:
    row = (await conn.execute(select(releases).where(releases.c.release_id == release_id))).mappings().first()
    if row is None or (public_only and row["status"] not in PUBLIC):
        raise Problem(404, "Not found", f"no published release {release_id}")
    return dict(row)


def release_file(row: Mapping[str, Any], public_raw: bytes | None) -> dict[str, Any]:
    """The signed release as partners download it (and ``sipas publishing verify-release`` checks)."""
    if row["manifest"] is None:
        raise Problem(404, "Not found", f"release {row['release_id']} is not published")
    return {"manifest": row["manifest"], "sha256": row["manifest_sha256"], "signature": row["signature"],
            "key_id": row["key_id"], "public_key": public_raw.hex() if public_raw else None,
            "algorithm": "Ed25519", "format": mf.FORMAT}


def figures(document: Mapping[str, Any], level: str | None = None, unit: str | None = None,
            province: str | None = None) -> list[dict[str, Any]]:
    return [u for u in document.get("units", [])
            if (level is None or u["level"] == level) and (unit is None or unit in (u["id"], u.get("code")))
            and (province is None or u.get("province") == province)]


def ranked_provinces(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Provinces by rank; unranked (suppressed) ones last, by name."""
    return sorted(figures(document, level="province"),
                  key=lambda u: ((u.get("rank") or {}).get("rank") or 10**6, u.get("name") or ""))


async def history(conn: AsyncConnection, unit_id: str) -> list[dict[str, Any]]:
    """The unit's headline figure in every public release, oldest first; retracted ones flagged."""
    rows = (await conn.execute(select(releases).where(releases.c.status.in_(PUBLIC))
                               .order_by(releases.c.published_at))).mappings().all()
    out = []
    for r in rows:
        for u in figures(r["document"], unit=unit_id):
            out.append({"release_id": r["release_id"], "campaign_id": r["campaign_id"],
                        "year": r["document"].get("year"), "published_at": r["published_at"].isoformat(),
                        "status": r["status"], "level": u["level"], "suppressed": u.get("suppressed"),
                        "overall": u.get("overall"), "rank": u.get("rank")})
    return out
