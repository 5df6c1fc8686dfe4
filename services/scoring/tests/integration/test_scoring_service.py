"""The scoring service over real PostgreSQL and NATS JetStream: events in through the real consumers,
figures out through the API — known answers, at-least-once delivery, voids, snapshots, exports,
suppression and a rebuild that reproduces every byte."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import itertools
import json
import random
from collections import Counter
from fractions import Fraction

import openpyxl
import pytest
from conftest import wait_for_async
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_cli.registry_client import builtin_definition
from sipas_events.catalogue import ballots as bal
from sipas_events.catalogue import registry as reg
from sipas_events.catalogue import sampling as smp
from sipas_events.testing import Feed
from sipas_scoring.adapters.tables import TALLIES_EXPORT
from sipas_scoring.application.definitions import instrument_of, scheme_of
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.shares import score_shares
from sipas_scoring.domain.suppression import Cell, Suppression, unrecoverable
from sipas_scoring.domain.tallies import ballot_tallies, sum_tallies

pytestmark = pytest.mark.asyncio
builtin = builtin_definition
WINDOW = {"start": "2026-01-01", "end": "2099-12-31"}
FRAME = {"start": "2025-10-01", "end": "2025-12-31"}
SIPAS = builtin("instrument", "sipas-2017")
PAR16 = builtin("instrument", "par-16")
CRITERIA = [i["code"] for f in SIPAS["factors"] for i in f["items"]]
PAR_ITEMS = [i["code"] for f in PAR16["factors"] for i in f["items"]]
AGENCIES = {"a1": "01", "a2": "01", "a3": "01", "b1": "79", "b2": "79"}


def campaign(ident: str, scheme: str, province: str | None = None, year: int = 2026,
             instrument: str = "sipas-2017") -> reg.CampaignOpened:
    return reg.CampaignOpened(
        campaign_id=ident, name=f"Vòng {ident}", year=year, scope="province" if province else "national",
        province=province, collection_window=WINDOW, frame_window=FRAME, target_unit_ids=list(AGENCIES),
        instrument={"id": instrument, "version": 1}, scheme={"id": scheme, "version": 1},
        retention_until="2100-01-01")


def reference_events() -> list:
    points_small = builtin("scheme", "points") | {"small_cell_n": 5}
    return [
        *[reg.AgencyRegistered(agency_id=a, code=f"H{p}.{a}", name=f"Cơ quan {a}", level="department", province=p,
                               valid_from="2020-01-01") for a, p in AGENCIES.items()],
        reg.InstrumentPublished(instrument_id="sipas-2017", instrument_version=1, definition=SIPAS),
        reg.InstrumentPublished(instrument_id="par-16", instrument_version=1, definition=PAR16),
        reg.SchemePublished(scheme_id="share-satisfied", scheme_version=1,
                            definition=builtin("scheme", "share-satisfied")),
        reg.SchemePublished(scheme_id="points-small", scheme_version=1, definition=points_small),
        campaign("c-share", "share-satisfied"),
        campaign("c-points", "points-small", province="01", instrument="par-16"),
    ]


def accepted(ballot_id: str, campaign_id: str, agency: str, answers: dict, stratum: str | None = None,
             expectations: list[str] | None = None) -> bal.BallotAccepted:
    return bal.BallotAccepted(ballot_id=ballot_id, campaign_id=campaign_id, unit_id=f"u-{ballot_id}", agency_id=agency,
                              stratum=stratum or agency, weight_ref="d1", province=AGENCIES[agency], channel="paper",
                              answers=answers, expectations=expectations or [])


def random_answers(rng: random.Random) -> dict[str, int | None]:
    return {code: rng.choice([None, 1, 2, 3, 4, 5, 4, 5]) for code in CRITERIA}


@pytest.fixture
async def scoring(open_api, stack):
    api = await open_api("scoring", scores_interval=0.2)
    feed = await Feed.connect(stack.nats.url)
    await feed.send("registry", *reference_events())
    await caught_up(api, "registry", feed.positions["registry"])
    yield api, feed
    await feed.close()


async def sql(api, query: str, **params) -> list[tuple]:
    engine = create_async_engine(api.database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(query), params)]
    finally:
        await engine.dispose()


async def sql_exec(api, statement: str) -> None:
    engine = create_async_engine(api.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def caught_up(api, producer: str, position: int) -> None:
    async def check() -> bool:
        found = await sql(api, "SELECT position FROM consumer_checkpoints WHERE producer = :p", p=producer)
        return bool(found) and max(r[0] for r in found) >= position
    await wait_for_async(check)


async def scores(api, campaign_id: str, **params) -> dict:
    r = await api.client.get(f"/v1/campaigns/{campaign_id}/scores", params=params,
                             headers=api.auth("ministry-admin"))
    assert r.status_code == 200, r.text
    return r.json()


def spread(total: int, ballots: int) -> list[int]:
    """Per-ballot points adding up to ``total`` as evenly as possible."""
    base, extra = divmod(total, ballots)
    return [base + (i < extra) for i in range(ballots)]


def answers_worth(points: int) -> dict[str, int]:
    """Answers to the 16 par-16 items (levels 1-5) worth exactly ``points``."""
    base, extra = divmod(points, len(PAR_ITEMS))
    answers = {code: base + (i < extra) for i, code in enumerate(PAR_ITEMS)}
    assert sum(answers.values()) == points and all(1 <= v <= 5 for v in answers.values())
    return answers


async def test_points_known_answers_are_truncated_exactly(scoring):
    api, feed = scoring
    # 25 ballots of 16 items: 2000 points possible, 1771 achieved -> 88,55%
    per_ballot = [answers_worth(points) for points in spread(1771, 25)]
    assert sum(sum(a.values()) for a in per_ballot) == 1771
    rng = random.Random(7)
    rng.shuffle(per_ballot)
    await feed.send("ballots", *[accepted(f"p{i:02d}", "c-points", "a1", a) for i, a in enumerate(per_ballot)])
    # 12 ballots, 786 of 960 -> 81.875 -> 81,87 (truncated; half-up would print 81,88)
    twelve = [answers_worth(points) for points in spread(786, 12)]
    await feed.send("ballots", *[accepted(f"q{i:02d}", "c-points", "a2", a) for i, a in enumerate(twelve)])
    await caught_up(api, "ballots", feed.positions["ballots"])
    found = await scores(api, "c-points", level="agency")
    by_id = {u["id"]: u for u in found["units"]}
    assert by_id["a1"]["overall"]["value"] == "88.55" and by_id["a1"]["overall"]["exact"] == "1771/20"
    assert by_id["a2"]["overall"]["value"] == "81.87" and by_id["a2"]["overall"]["exact"] == "655/8"  # 81.875
    assert by_id["a1"]["points"]["achieved"] == 1771 and by_id["a1"]["points"]["maximum"] == 2000
    assert found["scheme"]["rounding"] == {"rule": "truncate", "places": 2}


async def test_redelivered_duplicated_and_voided_ballots_count_exactly_once(scoring):
    api, feed = scoring
    rng = random.Random(11)
    events = [accepted(f"s{i:03d}", "c-share", rng.choice(list(AGENCIES)), random_answers(rng),
)
              for i in range(120)]
    envelopes = [feed.envelope("ballots", e) for e in events]
    await feed.publish(envelopes)
    await feed.publish(envelopes[10:40])  # the same messages again (a relay that crashed before recording)
    again = [accepted(e.ballot_id, "c-share", e.agency_id, {c: 1 for c in CRITERIA}) for e in events[:5]]
    voided = [bal.BallotVoided(ballot_id=e.ballot_id, campaign_id="c-share", province=AGENCIES[e.agency_id],
                               reason="back-check: fabricated") for e in events[50:60]]
    await feed.send("ballots", *again, *voided, *voided[:3])  # a second acceptance, and voids twice
    await caught_up(api, "ballots", feed.positions["ballots"])

    kept = [e for e in events if e not in events[50:60]]
    instrument = instrument_of(reg.InstrumentDefinition.model_validate(SIPAS))
    expected: dict[tuple[str, str], int] = {}
    for agency in AGENCIES:
        bags = [ballot_tallies(instrument, Ballot(e.ballot_id, e.answers)) for e in kept if e.agency_id == agency]
        for key, count in sum_tallies(bags).items():
            expected[(agency, key)] = count
    stored = {(a, k): c for a, k, c in await sql(api, f"SELECT agency_id, key, count FROM ({TALLIES_EXPORT}) AS t "
                                                       "WHERE campaign_id = 'c-share'")}
    assert stored == expected
    counted = await sql(api, "SELECT status, count(*) FROM sc_ballots GROUP BY status ORDER BY status")
    assert counted == [("accepted", 110), ("voided", 10)]
    checked = (await api.client.post("/v1/campaigns/c-share/tallies/verify", headers=api.auth("ministry-admin"))).json()
    assert checked["difference_count"] == 0 and checked["ballots"] == 110  # the SQL recount agrees
    # A tally damaged behind the service's back is named, and repaired on request.
    await sql_exec(api, "UPDATE sc_tallies AS t SET counts[array_position(l.keys, 'ballots')] ="
                        " t.counts[array_position(l.keys, 'ballots')] + 3 FROM sc_tally_keys AS l"
                        " WHERE l.campaign_id = t.campaign_id AND t.campaign_id = 'c-share' AND t.agency_id = 'a1'")
    checked = (await api.client.post("/v1/campaigns/c-share/tallies/verify", headers=api.auth("ministry-admin"))).json()
    assert checked["differences"] == [{"agency_id": "a1", "key": "ballots", "kept": expected[("a1", "ballots")] + 3,
                                       "recount": expected[("a1", "ballots")]}]
    r = await api.client.post("/v1/campaigns/c-share/tallies/verify", params={"apply": "true"},
                              headers=api.auth("ministry-admin"))
    assert r.json()["applied"] is True
    assert {(a, k): c for a, k, c in await sql(api, f"SELECT agency_id, key, count FROM ({TALLIES_EXPORT}) AS t "
                                                    "WHERE campaign_id = 'c-share'")} == expected

    # The figures are the domain's, computed from the ballots that stand.
    scheme = scheme_of(reg.SchemeDefinition.model_validate(builtin("scheme", "share-satisfied")))
    found = await scores(api, "c-share")
    provinces = {u["id"]: u for u in found["units"] if u["level"] == "province"}
    for code in ("01", "79"):
        mine = [Ballot(e.ballot_id, e.answers) for e in kept if AGENCIES[e.agency_id] == code]
        want = score_shares(instrument, scheme, mine).overall.value
        assert provinces[code]["overall"]["exact"] == f"{want.numerator}/{want.denominator}"
        assert provinces[code]["overall"]["n"] == len(mine)
    national = next(u for u in found["units"] if u["level"] == "national")
    means = [Fraction(provinces[c]["overall"]["exact"]) for c in ("01", "79")]
    assert Fraction(national["overall"]["exact"]) == sum(means) / 2


async def test_scores_updated_is_emitted_and_a_snapshot_records_what_it_covers(scoring):
    api, feed = scoring
    rng = random.Random(5)
    await feed.send("ballots", *[accepted(f"t{i:03d}", "c-share", "b1", random_answers(rng)) for i in range(40)])
    await caught_up(api, "ballots", feed.positions["ballots"])

    async def updated() -> bool:
        rows = await sql(api, "SELECT body FROM event_store WHERE type LIKE '%ScoresUpdated%'")
        return bool(rows)
    await wait_for_async(updated)
    current = await scores(api, "c-share")
    assert current["provisional"] is True and current["positions"]["ballots"] == feed.positions["ballots"]

    r = await api.client.post("/v1/campaigns/c-share/snapshots", headers=api.auth("province-operator", "01"))
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    r = await api.client.post("/v1/campaigns/c-share/snapshots", headers=api.auth("ministry-admin"))
    assert r.status_code == 201, r.text
    snap = r.json()
    assert snap["positions"] == {"ballots": feed.positions["ballots"], "registry": feed.positions["registry"],
                                 "sampling": 0}
    assert snap["digest"] == current["digest"]
    taken = await sql(api, "SELECT body FROM event_store WHERE type LIKE '%ScoreSnapshotTaken%'")
    assert len(taken) == 1 and snap["snapshot_id"] in taken[0][0] and snap["digest"] in taken[0][0]

    # Later ballots move the provisional figures, never the snapshot.
    await feed.send("ballots", *[accepted(f"u{i:03d}", "c-share", "b1", {c: 1 for c in CRITERIA})
                                 for i in range(10)])
    await caught_up(api, "ballots", feed.positions["ballots"])
    frozen = (await api.client.get(f"/v1/snapshots/{snap['snapshot_id']}", headers=api.auth("auditor"))).json()
    assert frozen["digest"] == snap["digest"] and frozen["provisional"] is False
    assert (await scores(api, "c-share"))["digest"] != snap["digest"]

    raw = await api.client.get(f"/v1/snapshots/{snap['snapshot_id']}/document", headers=api.auth("service"))
    assert hashlib.sha256(raw.content).hexdigest() == snap["digest"]  # what publishing verifies and signs
    # The stored documents are the canonical text their digests are computed from, checkable in SQL.
    stored = await sql(api, "SELECT encode(sha256(convert_to(document::text, 'UTF8')), 'hex'), digest FROM sc_snapshots "
                            "UNION ALL SELECT encode(sha256(convert_to(document::text, 'UTF8')), 'hex'), digest "
                            "FROM sc_figures")
    assert len(stored) == 2 and all(computed == digest for computed, digest in stored)
    # The live row, replaced at every refresh, is kept uncompressed (migration 0010); snapshots compressed.
    storage = dict(await sql(api, "SELECT attrelid::regclass::text, attstorage::text FROM pg_attribute "
                                  "WHERE attname = 'document' AND attrelid IN ('sc_figures'::regclass, "
                                  "'sc_snapshots'::regclass)"))
    assert storage == {"sc_figures": "e", "sc_snapshots": "x"}
    # Tallies pages keep room for their rows' updates under intake (migration 0011).
    assert await sql(api, "SELECT reloptions FROM pg_class WHERE oid = 'sc_tallies'::regclass") == [(["fillfactor=70"],)]
    # Exports carry the same figures.
    r = await api.client.get(f"/v1/snapshots/{snap['snapshot_id']}", params={"format": "csv"},
                             headers=api.auth("auditor"))
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    b1 = next(u for u in frozen["units"] if u["id"] == "b1")
    line = next(x for x in rows if x["unit_id"] == "b1" and x["figure"] == "overall")
    assert line["value"] == b1["overall"]["value"] and line["n"] == str(b1["overall"]["n"])
    assert line["ci_low"] == b1["overall"]["ci"][0] and line["ci_method"] == "taylor"
    assert b1["overall"]["weighted"] is None and line["weighted_value"] == ""  # no sample drawn: no weights
    r = await api.client.get(f"/v1/snapshots/{snap['snapshot_id']}", params={"format": "xlsx"},
                             headers=api.auth("auditor"))
    book = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    sheet = list(book["scores"].iter_rows(values_only=True))
    assert list(sheet[0]) == list(rows[0].keys()) and len(sheet) == len(rows) + 1


async def test_small_cells_are_hidden_and_cannot_be_recovered_from_totals(scoring):
    api, feed = scoring
    rng = random.Random(3)
    sizes = {"a1": 45, "a2": 12, "a3": 40, "b1": 35, "b2": 31}  # a2 too small; b1/b2 fine
    events = [accepted(f"{a}-{i:03d}", "c-share", a, random_answers(rng)) for a, n in sizes.items() for i in range(n)]
    await feed.send("ballots", *events)
    await caught_up(api, "ballots", feed.positions["ballots"])
    found = await scores(api, "c-share")
    by_key = {u["key"]: u for u in found["units"]}
    assert by_key["A:a2"]["suppressed"] == "insufficient_sample" and by_key["A:a2"]["overall"]["value"] is None
    assert by_key["A:a2"]["items"] == {} and by_key["A:a2"]["rank"] is None
    # Province 01 is shown, so a2 alone hidden would be 01's tallies minus a1's and a3's: a sibling goes too.
    assert by_key["P:01"]["suppressed"] is None
    assert by_key["A:a1"]["suppressed"] == "complementary" or by_key["A:a3"]["suppressed"] == "complementary"
    cells = [Cell(u["key"], u["overall"]["n"], u["parent"]) for u in found["units"]]
    hidden = Suppression({u["key"]: u["suppressed"] for u in found["units"] if u["suppressed"]})
    assert unrecoverable(cells, hidden)
    shown = [u for u in found["units"] if u["level"] == "agency" and not u["suppressed"]]
    assert all(u["overall"]["value"] is not None and u["rank"]["best"] <= u["rank"]["rank"] <= u["rank"]["worst"]
               for u in shown)
    # One factor, one level, as a partner of the ministry would ask for it.
    one = await scores(api, "c-share", level="province", factor="F3")
    assert {u["level"] for u in one["units"]} == {"province"}
    assert all(list(u["factors"]) in (["F3"], []) and u["items"] == {} for u in one["units"])
    # A province operator sees their own province only.
    r = await api.client.get("/v1/campaigns/c-share/scores", headers=api.auth("province-operator", "79"))
    assert {u["province"] for u in r.json()["units"]} == {"79"}


async def test_weights_from_sampling_drive_the_weighted_estimates(scoring):
    api, feed = scoring
    rng = random.Random(9)
    drawn = smp.SampleDrawn(draw_id="d1", campaign_id="c-share", province=None, frame_digest="0" * 64,
                            seed_commitment="1" * 64, seed="2" * 32, algorithm_version="v1", part=1, parts=1,
                            units=[smp.SampledUnit(unit_id=f"u-w{i:03d}", agency_id="b1", agency_code="H79.b1",
                                                   stratum="S1" if i < 30 else "S2",
                                                   weight="10" if i < 30 else "40") for i in range(60)])
    await feed.send("sampling", drawn)
    await feed.send("ballots", *[accepted(f"w{i:03d}", "c-share", "b1", random_answers(rng),
                                          stratum="S1" if i < 30 else "S2") for i in range(60)])
    await caught_up(api, "ballots", feed.positions["ballots"])
    await caught_up(api, "sampling", feed.positions["sampling"])
    await api.client.post("/v1/campaigns/c-share/scores/refresh", headers=api.auth("ministry-admin"))
    b1 = next(u for u in (await scores(api, "c-share"))["units"] if u["id"] == "b1")
    weighted = b1["overall"]["weighted"]
    assert weighted is not None and weighted["n"] == 60 and float(weighted["deff"]) > 0
    assert float(weighted["ci"][0]) <= float(weighted["value"]) <= float(weighted["ci"][1])
    await feed.send("sampling", smp.WeightsAdjusted(draw_id="d1", campaign_id="c-share", revision=1, strata=[
        smp.StratumWeights(stratum="S1", population=600, sampled=30, responded=30, design_weight="20",
                           adjustment="1", final_weight="20"),
        smp.StratumWeights(stratum="S2", population=1200, sampled=30, responded=30, design_weight="40",
                           adjustment="1", final_weight="40")]))
    await caught_up(api, "sampling", feed.positions["sampling"])
    await api.client.post("/v1/campaigns/c-share/scores/refresh", headers=api.auth("ministry-admin"))
    found = await scores(api, "c-share")
    assert found["weights"] == "adjusted"
    after = next(u for u in found["units"] if u["id"] == "b1")["overall"]["weighted"]
    assert after["exact"] != weighted["exact"] or after["se"] != weighted["se"]


@pytest.mark.parametrize("reader", ["in-process", "process"])
async def test_a_rebuild_reproduces_the_tallies_and_the_figures(scoring, reader):
    """Read in this process (a short stream) or, past ``rebuild_process_min`` messages, in a process of its
    own that validates, decodes and prepares each ballot (answer codes included) for the runs."""
    api, feed = scoring
    api.app.state.ctx.consumers["tallies"].rebuild_process_min = 0 if reader == "process" else 10**9
    rng = random.Random(21)
    events = [accepted(f"r{i:03d}", "c-share", rng.choice(list(AGENCIES)), random_answers(rng)) for i in range(80)]
    voids = [bal.BallotVoided(ballot_id=e.ballot_id, campaign_id="c-share", reason="duplicate respondent")
             for e in events[::7]]
    await feed.send("ballots", *events, *voids)
    await caught_up(api, "ballots", feed.positions["ballots"])
    admin = api.auth("ministry-admin")
    before = {p["name"]: p for p in (await api.client.get("/v1/ops/projections", headers=admin)).json()}["tallies"]
    figures_before = await scores(api, "c-share")
    rebuilt = (await api.client.post("/v1/ops/projections/tallies/rebuild", headers=admin)).json()
    assert rebuilt["sha256"] == before["sha256"] and rebuilt["rows"] == before["rows"] > 0
    assert rebuilt["reader"] == reader
    await api.client.post("/v1/campaigns/c-share/scores/refresh", headers=admin)
    assert (await scores(api, "c-share"))["digest"] == figures_before["digest"]


async def test_a_rebuild_whose_reader_is_lost_answers_503_and_the_next_one_reproduces_the_tallies(scoring,
                                                                                                 monkeypatch):
    """The reader lost after its first batch (as a killed reader process or a lost NATS would be): a
    precise 503 problem, not a 500; asked again, the rebuild starts over and reproduces the tallies."""
    from sipas_events import consumer as consumer_module
    from sipas_events.bus.base import BusUnavailable

    api, feed = scoring
    rng = random.Random(5)
    await feed.send("ballots", *[accepted(f"l{i:03d}", "c-share", rng.choice(list(AGENCIES)), random_answers(rng))
                                 for i in range(40)])
    await caught_up(api, "ballots", feed.positions["ballots"])
    admin = api.auth("ministry-admin")
    before = {p["name"]: p for p in (await api.client.get("/v1/ops/projections", headers=admin)).json()}["tallies"]
    api.app.state.ctx.consumers["tallies"].rebuild_process_min = 0
    real = consumer_module.read_in_process

    async def lost(*args, **kwargs):
        async for batch in real(*args, **kwargs):
            yield batch
            raise BusUnavailable("the reader process of SIPAS_BALLOTS was lost")

    monkeypatch.setattr(consumer_module, "read_in_process", lost)
    r = await api.client.post("/v1/ops/projections/tallies/rebuild", headers=admin)
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    assert "The rebuild of tallies stopped: the reader process of SIPAS_BALLOTS was lost" in r.json()["detail"]
    assert r.headers["retry-after"]
    monkeypatch.setattr(consumer_module, "read_in_process", real)
    rebuilt = (await api.client.post("/v1/ops/projections/tallies/rebuild", headers=admin)).json()
    assert rebuilt["reader"] == "process" and rebuilt["sha256"] == before["sha256"] and rebuilt["rows"] == before["rows"]


async def test_bad_requests_are_precise_problems(scoring):
    api, _ = scoring
    r = await api.client.get("/v1/campaigns/nope/scores", headers=api.auth("ministry-admin"))
    assert r.status_code == 404 and r.json()["title"] == "Not found"
    r = await api.client.get("/v1/campaigns/c-share/scores", params={"format": "pdf"}, headers=api.auth("auditor"))
    assert r.status_code == 422
    r = await api.client.get("/v1/campaigns/c-points/scores", headers=api.auth("province-operator", "79"))
    assert r.status_code == 403
    r = await api.client.get("/v1/campaigns/c-share/scores", headers=api.auth("partner"))
    assert r.status_code == 403
    r = await api.client.get("/v1/snapshots/none", headers=api.auth("auditor"))
    assert r.status_code == 404


async def test_comparison_restates_an_earlier_year_on_todays_provinces(scoring):
    api, feed = scoring
    # 2024: provinces 77 and 79 existed; from 2025-07-01 they are one, 79.
    await feed.send("registry", *[
        reg.AgencyRegistered(agency_id=f"prov-{c}", code=c, name=n, level="province", province=c,
                             valid_from="2008-01-01") for c, n in (("77", "Bà Rịa - Vũng Tàu"), ("79", "TP HCM"))],
        reg.AgencyRegistered(agency_id="x77", code="H77.x", name="Sở 77", level="department", province="77",
                             valid_from="2020-01-01"),
        reg.AgencyMerged(predecessor_ids=["prov-77", "prov-79"], successor_id="prov-79-2025",
                         effective_date="2025-07-01", legal_basis="Nghị quyết 202/2025/QH15"),
        reg.AgencyRegistered(agency_id="prov-79-2025", code="79", name="Thành phố Hồ Chí Minh", level="province",
                             province="79", valid_from="2025-07-01"),
        campaign("c-2024", "share-satisfied", year=2024))
    rng = random.Random(4)
    old = [accepted(f"o{i:03d}", "c-2024", "b1", random_answers(rng)) for i in range(40)]
    old77 = [bal.BallotAccepted(**(accepted(f"x{i:03d}", "c-2024", "b1", random_answers(rng)).payload()
                                   | {"agency_id": "x77", "province": "77"})) for i in range(40)]
    new = [accepted(f"n{i:03d}", "c-share", "b1", random_answers(rng)) for i in range(40)]
    await feed.send("ballots", *old, *old77, *new)
    await caught_up(api, "ballots", feed.positions["ballots"])
    await caught_up(api, "registry", feed.positions["registry"])
    r = await api.client.get("/v1/campaigns/c-share/comparison", params={"against": "c-2024"},
                             headers=api.auth("ministry-admin"))
    assert r.status_code == 200, r.text
    hcm = next(u for u in r.json()["units"] if u["id"] == "79")
    assert hcm["earlier"]["restated"] is True and hcm["earlier"]["from"] == ["77", "79"]
    assert hcm["earlier"]["n"] == 80 and hcm["current"]["n"] == 40
    instrument = instrument_of(reg.InstrumentDefinition.model_validate(SIPAS))
    scheme = scheme_of(reg.SchemeDefinition.model_validate(builtin("scheme", "share-satisfied")))
    want = score_shares(instrument, scheme, [Ballot(e.ballot_id, e.answers) for e in old + old77]).overall.value
    assert Fraction(hcm["earlier"]["exact"]) == want
    assert Counter(u["id"] for u in r.json()["units"])["77"] == 0  # 77 is no longer a province of its own


async def send_bursts(api, feed, prefix: str, bursts: int, size: int, pause: float, seed: int) -> None:
    """Bursts of ballots of agency a1 while the worker runs, then wait until the tallies consumer has them."""
    rng = random.Random(seed)
    for burst in range(bursts):
        await feed.send("ballots", *[accepted(f"{prefix}{burst}-{i:03d}", "c-share", "a1", random_answers(rng))
                                     for i in range(size)])
        await asyncio.sleep(pause)
    await caught_up(api, "ballots", feed.positions["ballots"])


async def test_the_figures_worker_keeps_up_while_ballots_arrive(scoring):
    api, feed = scoring
    await send_bursts(api, feed, "k", bursts=3, size=30, pause=0.3, seed=8)

    async def settled() -> bool:
        rows = await sql(api, "SELECT count(*) FROM sc_dirty")
        return rows[0][0] == 0
    await wait_for_async(settled)
    stored = await sql(api, "SELECT document->'units' FROM sc_figures WHERE campaign_id = 'c-share'")
    a1 = next(u for u in stored[0][0] if u["id"] == "a1")
    assert a1["ballots"] == 90


async def test_the_worker_stores_figures_while_it_computes_the_next_and_in_order(scoring, monkeypatch):
    """The worker stores a campaign's figures beside the computation of its next ones (a slow store here):
    a computation starts while a store is in flight, stores come in the order computed — each reflecting at
    least what the one before did — and the last stored figures reflect every ballot."""
    from sipas_scoring.application import scores

    api, feed = scoring
    computing, storing, stored_positions = [], [], []
    compute, store = scores.compute, scores.store

    async def timed_compute(ctx, campaign_id):
        computing.append(asyncio.get_running_loop().time())
        return await compute(ctx, campaign_id)

    async def slow_store(ctx, done):
        began = asyncio.get_running_loop().time()
        await asyncio.sleep(0.4)
        try:
            return await store(ctx, done)
        finally:
            storing.append((began, asyncio.get_running_loop().time()))
            stored_positions.append(done.at.get("ballots", 0))

    monkeypatch.setattr(scores, "compute", timed_compute)
    monkeypatch.setattr(scores, "store", slow_store)
    await send_bursts(api, feed, "p", bursts=6, size=10, pause=0.25, seed=9)

    async def settled() -> bool:
        return (await sql(api, "SELECT count(*) FROM sc_dirty"))[0][0] == 0 and len(storing) == len(computing)
    await wait_for_async(settled)
    assert any(began < started < ended for began, ended in storing for started in computing)
    assert stored_positions == sorted(stored_positions)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(storing))  # one store at a time
    stored = await sql(api, "SELECT document->'units' FROM sc_figures WHERE campaign_id = 'c-share'")
    assert next(u for u in stored[0][0] if u["id"] == "a1")["ballots"] == 60


async def test_a_refresh_recomputes_only_the_units_a_change_reached_and_equals_a_full_computation(scoring):
    """Each computation hands its units' rows to the next, by the digest of their inputs: after ballots of
    one agency, only it and its province are computed again; a void in a stratum two agencies share
    reaches both (their weighted estimates pool the stratum) and their provinces; new weights reach all.
    Every time the document equals one computed from scratch."""
    from sipas_scoring.application.definitions import definitions
    from sipas_scoring.application.figures import CampaignFigures, load

    api, feed = scoring
    rng = random.Random(33)
    plan = [(f"m{i:03d}", agency, "S1" if agency in ("a1", "b1") and i % 2 else agency)
            for i, agency in enumerate([a for a in AGENCIES for _ in range(32)] + ["a2"] * 6)]
    await feed.send("sampling", smp.SampleDrawn(
        draw_id="d1", campaign_id="c-share", province=None, frame_digest="0" * 64, seed_commitment="1" * 64,
        seed="2" * 32, algorithm_version="v1", part=1, parts=1,
        units=[smp.SampledUnit(unit_id=f"u-{b}", agency_id=a, agency_code=f"H{AGENCIES[a]}.{a}", stratum=s,
                               weight="10" if s == "S1" else "25") for b, a, s in plan]))
    ballots = [accepted(b, "c-share", a, random_answers(rng), stratum=s) for b, a, s in plan]

    async def figures(memo=None) -> tuple[CampaignFigures, dict]:
        await caught_up(api, "ballots", feed.positions["ballots"])
        await caught_up(api, "sampling", feed.positions["sampling"])
        engine = create_async_engine(api.database_url)
        try:
            async with engine.connect() as conn:
                basis, loaded = await definitions.basis(conn, "c-share"), await load(conn, "c-share")
        finally:
            await engine.dispose()
        computed = CampaignFigures(basis, *loaded, memo=memo)
        return computed, computed.document()

    async def next_from(previous: CampaignFigures) -> tuple[CampaignFigures, dict]:
        again, document = await figures(previous.memo)
        assert document == (await figures())[1]  # the same document as computed from scratch
        return again, document

    await feed.send("ballots", *ballots[:-6])
    first, document = await figures()
    assert len(first.recomputed) == len(AGENCIES) + 2  # every agency and province
    assert next(u for u in document["units"] if u["id"] == "a1")["overall"]["weighted"]["n"] == 32
    unchanged, _ = await next_from(first)
    assert unchanged.recomputed == []
    await feed.send("ballots", *ballots[-6:])
    more_a2, _ = await next_from(unchanged)
    assert sorted(more_a2.recomputed) == ["A:a2", "P:01"]
    shared = next(b for b, a, s in plan if a == "b1" and s == "S1")
    await feed.send("ballots", bal.BallotVoided(ballot_id=shared, campaign_id="c-share", reason="duplicate"))
    voided, _ = await next_from(more_a2)
    assert sorted(voided.recomputed) == ["A:a1", "A:b1", "P:01", "P:79"]
    # The campaign's first ballot, then every ballot of a3, voided: weight groups are numbered as first met,
    # so the numbers of other agencies' groups move; their rows stay.
    await feed.send("ballots", bal.BallotVoided(ballot_id=plan[0][0], campaign_id="c-share", reason="duplicate"))
    first_gone, _ = await next_from(voided)
    assert sorted(first_gone.recomputed) == ["A:a1", "P:01"]
    await feed.send("ballots", *[bal.BallotVoided(ballot_id=b, campaign_id="c-share", reason="duplicate")
                                 for b, a, _ in plan if a == "a3"])
    a3_gone, document = await next_from(first_gone)
    assert a3_gone.recomputed == ["P:01"] and "a3" not in {u["id"] for u in document["units"]}
    await feed.send("sampling", smp.WeightsAdjusted(draw_id="d1", campaign_id="c-share", revision=1, strata=[
        smp.StratumWeights(stratum=s, population=400, sampled=20, responded=20, design_weight="20",
                           adjustment="1", final_weight="20") for s in sorted({s for _, _, s in plan})]))
    reweighted, document = await next_from(a3_gone)
    assert len(reweighted.recomputed) == len(AGENCIES) + 1 and document["weights"] == "adjusted"


async def test_figures_refresh_faster_than_they_are_announced_and_the_last_change_is_announced(open_api, stack):
    """The stored figures follow every ballot at the refresh interval; ``ScoresUpdated`` waits for the campaign's
    event interval, and a change left unannounced is announced once it passes, with every unit it changed."""
    api = await open_api("scoring", scores_interval=0.2, scores_event_interval=3600)
    feed = await Feed.connect(stack.nats.url)
    try:
        await feed.send("registry", *reference_events())
        await caught_up(api, "registry", feed.positions["registry"])
        rng = random.Random(11)

        async def stored() -> tuple:
            rows = await sql(api, "SELECT (positions->>'ballots')::int, digest, announced_digest, pending_units "
                                  "FROM sc_figures WHERE campaign_id = 'c-share'")
            return rows[0] if rows else (0, None, None, [])

        async def announced() -> list[dict]:
            rows = await sql(api, "SELECT body FROM event_store WHERE type LIKE '%ScoresUpdated%' ORDER BY insert_order")
            return [json.loads(body)["data"] for (body,) in rows]

        async def reflects(position: int) -> bool:
            return (await stored())[0] >= position

        await feed.send("ballots", *[accepted(f"p{i:02d}", "c-share", "a1", random_answers(rng)) for i in range(10)])
        await wait_for_async(lambda: reflects(feed.positions["ballots"]))
        first = await announced()
        assert len(first) == 1 and first[0]["changed_unit_ids"] == ["a1"]  # a campaign's first figures: at once

        await feed.send("ballots", *[accepted(f"q{i:02d}", "c-share", "b1", random_answers(rng)) for i in range(10)])
        await wait_for_async(lambda: reflects(feed.positions["ballots"]))
        position, digest, announced_digest, pending = await stored()
        assert digest != first[0]["figures_digest"] and announced_digest == first[0]["figures_digest"]
        assert pending == ["b1"] and len(await announced()) == 1  # refreshed, not announced: the interval holds it
        current = await scores(api, "c-share")
        assert current["digest"] == digest and current["positions"]["ballots"] == position

        # The interval passes (the last announcement made an hour old) with nothing else arriving.
        await sql_exec(api, "UPDATE sc_figures SET announced_at = announced_at - interval '2 hours'")

        async def owed_announced() -> bool:
            return len(await announced()) == 2
        await wait_for_async(owed_announced)
        last = (await announced())[-1]
        assert last["figures_digest"] == digest and last["positions"]["ballots"] == position
        assert last["changed_unit_ids"] == ["b1"]
        assert (await stored())[2:] == (digest, [])
    finally:
        await feed.close()
