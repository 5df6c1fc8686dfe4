"""From frame to index with every process running: a sampled commune's respondents answer, scoring's
figures follow, a voided ballot leaves every index, and a snapshot's chain heads are the producers'."""

from __future__ import annotations

import random
from fractions import Fraction

import httpx
import pytest
from conftest import wait_for

from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_scoring.application.definitions import instrument_of, scheme_of
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.shares import score_shares

pytestmark = pytest.mark.e2e
SEED = "5c0e" * 16


def definition(platform, admin, kind: str, ident: str) -> dict:
    found = httpx.get(platform.url("scoring") + "/v1/reference/definitions", headers=admin).json()
    return next(d["definition"] for d in found if d["kind"] == kind and d["def_id"] == ident)


def test_ballots_become_indices_and_a_void_leaves_them(platform, admin, run_round):
    rows = [f"SC-1,Chứng thực,chứng thực,S-{i:04d},2026-02-0{1 + i % 9},cá nhân,Người {i},09{i:08d},Số {i}"
            for i in range(45)]
    round_ = run_round(code="SC-1", frame_rows=rows, seed=SEED, collection=("2026-01-01", "2099-12-31"))
    cid, op = round_["campaign_id"], round_["op"]
    codes = wait_for(lambda: platform.pg.psql(
        f"SELECT code FROM ballots WHERE campaign_id = '{cid}' AND status = 'issued' ORDER BY code",
        database="sipas_ballots").split(), timeout=60)
    assert len(codes) >= 35
    instrument = instrument_of(InstrumentDefinition.model_validate(definition(platform, admin, "instrument",
                                                                              "sipas-2017")))
    criteria = instrument.criteria
    rng = random.Random(2)
    submitted: dict[str, dict[str, int | None]] = {}
    for i, code in enumerate(codes[:35]):
        answers = ({c: 5 for c in criteria} if i == 0  # straight-lined: flagged, then voided
                   else {c: rng.choice([2, 3, 4, 5, 5, 4, 3, 2, 5, None]) for c in criteria})
        for item in criteria[:18]:  # at least 80% answered, as validation requires
            answers[item] = answers[item] or 4
        r = httpx.post(platform.url("ballots") + "/v1/submissions", json={
            "code": code, "campaign_id": cid, "answers": answers, "channel": "online"})
        assert r.status_code == 201 and r.json()["outcome"] == "accepted", r.text
        submitted[code] = answers

    scores_url = platform.url("scoring") + f"/v1/campaigns/{cid}/scores"

    def overall_n(expected: int):
        body = httpx.get(scores_url, headers=admin).json()
        found = [u for u in body["units"] if u["level"] == "agency"]
        return body if found and found[0]["overall"]["n"] == expected else None

    body = wait_for(lambda: overall_n(35), timeout=60)
    scheme = scheme_of(SchemeDefinition.model_validate(definition(platform, admin, "scheme", "share-satisfied")))
    want = score_shares(instrument, scheme, [Ballot(c, a) for c, a in submitted.items()]).overall.value
    agency = next(u for u in body["units"] if u["level"] == "agency")
    assert Fraction(agency["overall"]["exact"]) == want and agency["ballots"] == 35
    assert agency["overall"]["weighted"] is not None  # the draw's design weights reached scoring

    # The straight-lined ballot is flagged, and the province voids it on review.
    ballots = platform.url("ballots")
    httpx.post(ballots + f"/v1/campaigns/{cid}/quality/scan", headers=op).raise_for_status()
    queue = httpx.get(ballots + f"/v1/campaigns/{cid}/review-queue", headers=op).json()
    straight = [q for q in queue if q["kind"] == "straight_lining"]
    assert len(straight) == 1, queue
    assert platform.pg.psql(f"SELECT code FROM ballots WHERE ballot_id = '{straight[0]['ballot_id']}'",
                            database="sipas_ballots").strip() == codes[0]
    r = httpx.post(ballots + f"/v1/ballots/{straight[0]['ballot_id']}/review", headers=op,
                   json={"action": "void", "comment": "every answer 5: not a real interview"})
    assert r.status_code == 200, r.text
    body = wait_for(lambda: overall_n(34), timeout=60)
    kept = [Ballot(c, a) for c, a in submitted.items() if c != codes[0]]
    agency = next(u for u in body["units"] if u["level"] == "agency")
    assert Fraction(agency["overall"]["exact"]) == score_shares(instrument, scheme, kept).overall.value

    # A snapshot covers named positions, and each chain head is the producer's own at that position.
    snap = httpx.post(platform.url("scoring") + f"/v1/campaigns/{cid}/snapshots", headers=admin)
    assert snap.status_code == 201, snap.text
    taken = snap.json()
    assert set(taken["chain_heads"]) == {"ballots", "registry", "sampling"}
    for producer, position in taken["positions"].items():
        head = httpx.get(platform.url(producer) + "/v1/events/chain", params={"at": position}, headers=admin).json()
        assert head["chain_hash"] == taken["chain_heads"][producer]

    # A rebuild of the tallies (read by a process of its own: the platform runs with
    # SIPAS_SCORING_REBUILD_PROCESS_MIN=0) reproduces them, and the figures computed from them.
    ops = platform.url("scoring") + "/v1/ops/projections"
    before = {p["name"]: p for p in httpx.get(ops, headers=admin).json()}["tallies"]
    figures_before = httpx.get(scores_url, headers=admin).json()["digest"]
    rebuilt = httpx.post(f"{ops}/tallies/rebuild", headers=admin, timeout=120).json()
    assert rebuilt["reader"] == "process"
    assert rebuilt["sha256"] == before["sha256"] and rebuilt["rows"] == before["rows"] > 0
    httpx.post(scores_url + "/refresh", headers=admin, timeout=60).raise_for_status()
    assert httpx.get(scores_url, headers=admin).json()["digest"] == figures_before

    # The operator's CLI reads the same figures.
    from typer.testing import CliRunner

    from sipas_cli.main import app

    token = platform.identity.mint("cli@test", "ministry-admin")
    result = CliRunner().invoke(app, ["scoring", "scores", cid, "--level", "agency", "--format", "csv",
                                      "--url", platform.url("scoring"), "--token", token])
    assert result.exit_code == 0, result.output
    assert agency["overall"]["value"] in result.output
