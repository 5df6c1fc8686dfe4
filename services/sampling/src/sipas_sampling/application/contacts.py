"""Where a sampled unit's sealed contact lives: its frame row (frame design) or its household listing (resident).

Both are sealed by ``Sealer`` with the same associated data — the campaign and ``sample_units.dossier_id``
(the dossier id, or the household key) — so opening a contact does not depend on the design; only
finding it does, and that is all this module knows.
"""

from __future__ import annotations

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_sampling.adapters.tables import draws, frame_units, household_listings, plans, sample_units

_su, _fu, _hl = sample_units.c, frame_units.c, household_listings.c

UNITS_WITH_CONTACTS = (
    sample_units.join(draws, draws.c.draw_id == _su.draw_id)
    .outerjoin(plans, plans.c.plan_id == draws.c.plan_id)
    .outerjoin(frame_units, (_fu.frame_id == plans.c.frame_id) & (_fu.dossier_id == _su.dossier_id))
    .outerjoin(household_listings, (_hl.frame_id == draws.c.frame_id) & (_hl.household_key == _su.dossier_id)))
"""``sample_units`` with its draw and, whichever the design, the row holding the unit's contact."""

CONTACT = func.coalesce(_fu.contact, _hl.contact).label("contact")


async def erase_contact(conn: AsyncConnection, draw_id: str, key: str) -> None:
    """Erase one respondent's contact (their withdrawal): the ciphertext itself goes."""
    found = (await conn.execute(select(draws.c.frame_id, plans.c.frame_id.label("plan_frame"))
                                .select_from(draws.outerjoin(plans, plans.c.plan_id == draws.c.plan_id))
                                .where(draws.c.draw_id == draw_id))).one()
    if found.plan_frame is not None:
        await conn.execute(update(frame_units).where(_fu.frame_id == found.plan_frame, _fu.dossier_id == key)
                           .values(contact=None))
    else:
        await conn.execute(update(household_listings).where(_hl.frame_id == found.frame_id, _hl.household_key == key)
                           .values(contact=None))


async def erase_campaign(conn: AsyncConnection, campaign_id: str) -> int:
    """Drop every remaining ciphertext of a campaign (after its key is shredded); rows changed."""
    rows = 0
    for table in ("frame_units", "household_listings"):
        result = await conn.execute(text(
            f"UPDATE {table} SET contact = NULL WHERE contact IS NOT NULL AND frame_id IN "
            "(SELECT frame_id FROM frames WHERE campaign_id = :c)"), {"c": campaign_id})
        rows += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return rows
