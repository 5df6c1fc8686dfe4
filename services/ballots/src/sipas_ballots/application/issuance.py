"""Cancel and reissue ballot codes, with reasons; print ballot sheets with code and QR."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_ballots.adapters.tables import ballots, reference, sampled_units
from sipas_ballots.domain.codes import display, new_code, qr_url
from sipas_ballots.domain.errors import AlreadyCancelled, AlreadyUsed, UnknownBallot
from sipas_events.catalogue.ballots import BallotCancelled, BallotIssued
from sipas_events.ids import new_id
from sipas_events.store import EventStore, Metadata


async def _open_ballot(conn: AsyncConnection, ballot_id: str) -> Any:
    row = (await conn.execute(select(ballots).where(ballots.c.ballot_id == ballot_id).with_for_update())).first()
    if row is None:
        raise UnknownBallot(f"no ballot {ballot_id}", "ballot_id")
    if row.status == "used":
        raise AlreadyUsed(f"ballot {ballot_id} was already answered; void it instead", "ballot_id")
    if row.status == "cancelled":
        raise AlreadyCancelled(f"ballot {ballot_id} is already cancelled ({row.cancel_reason})", "ballot_id")
    return row


async def cancel(conn: AsyncConnection, store: EventStore, ballot_id: str, reason: str, province: str | None,
                 meta: Metadata) -> None:
    row = await _open_ballot(conn, ballot_id)
    await conn.execute(update(ballots).where(ballots.c.ballot_id == ballot_id)
                       .values(status="cancelled", cancel_reason=reason))
    await store.append(conn, f"ballot-{ballot_id}", [BallotCancelled(
        ballot_id=ballot_id, campaign_id=row.campaign_id, unit_id=row.unit_id, province=province, reason=reason)],
        expected_version=None, meta=meta)


async def reissue(conn: AsyncConnection, store: EventStore, ballot_id: str, reason: str, province: str | None,
                  meta: Metadata) -> str:
    """Cancel the code (lost, damaged, disclosed) and issue a new one to the same unit."""
    row = await _open_ballot(conn, ballot_id)
    await cancel(conn, store, ballot_id, f"reissued: {reason}", province, meta)
    agency = (await conn.execute(select(sampled_units.c.agency_id).where(sampled_units.c.unit_id == row.unit_id))
              ).scalar()
    new_ballot = str(new_id())
    await conn.execute(insert(ballots).values(ballot_id=new_ballot, campaign_id=row.campaign_id, unit_id=row.unit_id,
                                              code=new_code(), status="issued", issued_at=dt.datetime.now(dt.UTC)))
    await store.append(conn, f"ballot-{new_ballot}", [BallotIssued(
        ballot_id=new_ballot, campaign_id=row.campaign_id, unit_id=row.unit_id, agency_id=agency, province=province)],
        expected_version=0, meta=meta)
    return new_ballot


async def open_ballots(conn: AsyncConnection, campaign_id: str, agency_code: str | None) -> list[Any]:
    stmt = (select(ballots.c.ballot_id, ballots.c.code, sampled_units.c.agency_code, sampled_units.c.stratum)
            .join(sampled_units, sampled_units.c.unit_id == ballots.c.unit_id)
            .where(ballots.c.campaign_id == campaign_id, ballots.c.status == "issued")
            .order_by(sampled_units.c.agency_code, ballots.c.ballot_id))
    if agency_code:
        stmt = stmt.where(sampled_units.c.agency_code == agency_code)
    return list((await conn.execute(stmt)).all())


async def campaign_name(conn: AsyncConnection, campaign_id: str) -> str:
    c = reference.campaigns.c
    body = (await conn.execute(select(c.definition).where(c.campaign_id == campaign_id))).scalar()
    return str(body["name"]) if body else campaign_id


def sheets_pdf(title: str, rows: Sequence[Any], base_url: str, font: str) -> bytes:
    """One A5 sheet per ballot: the campaign, the code in its printed form, and a QR of the ballot page."""
    import segno
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format=(148, 210))  # A5
    pdf.add_font("DejaVu", "", font)
    for row in rows:
        pdf.add_page()
        pdf.set_font("DejaVu", size=13)
        pdf.multi_cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font_size(10)
        pdf.multi_cell(0, 6, "Phiếu khảo sát sự hài lòng. Quét mã QR hoặc nhập mã phiếu tại trang khảo sát.",
                       new_x="LMARGIN", new_y="NEXT")
        qr = io.BytesIO()
        segno.make(qr_url(base_url, row.code), error="m").save(qr, kind="png", scale=8, border=2)
        qr.seek(0)
        pdf.image(qr, x=34, y=pdf.get_y() + 4, w=80)
        pdf.set_y(pdf.get_y() + 90)
        pdf.set_font_size(20)
        pdf.cell(0, 12, display(row.code), align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font_size(9)
        pdf.cell(0, 6, f"Cơ quan: {row.agency_code}", align="C")
    return bytes(pdf.output())
