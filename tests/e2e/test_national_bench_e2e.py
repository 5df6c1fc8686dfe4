"""The national benchmark's harness (`bench.national`) at a tiny scale on the e2e platform.

Not a benchmark: nothing here looks at a time. It checks that the harness drives a whole round and that its
own bookkeeping is right, so that the figures it writes at scale rest on a round that really reconciles:
every ballot answered 2xx is in the published national figure or was voided, the planted straight-lined
ballots are exactly the voided ones, the codes read from the database are the ones printed on the sheets,
and the report section is written into a document without disturbing the rest of it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math

import pytest

pytestmark = pytest.mark.e2e
BALLOTS = 320


def test_a_tiny_national_round_reconciles_and_is_reported(platform, tmp_path):
    from bench.national import SECTION, National, Report, ceiling, section, write_section

    args = argparse.Namespace(frame_rows=2400, ballots=BALLOTS, provinces=8, agencies=2, online_share=0.25,
                              online_clients=4, import_clients=2, void_every=30, raw=500, rounds=1, seed=11)
    report = Report(command="test", started=dt.datetime.now(dt.UTC), commit="test", sizes={
        "frame_rows": args.frame_rows, "ballots": args.ballots, "provinces": args.provinces,
        "online_share": args.online_share, "online_clients": args.online_clients,
        "import_clients": args.import_clients, "void_every": args.void_every})
    bench = National(report, args, tmp_path, platform=platform)
    try:
        bench.start()
        asyncio.run(bench.run())
    finally:
        bench.stop()

    rec, facts = report.reconciliation, report.facts
    # Every code asked for came back valid; 2xx = published + voided, and the ballots service agrees.
    assert rec["accepted_2xx"] == BALLOTS == rec["valid_by_ballots"]
    assert rec["online"] == round(BALLOTS * args.online_share) == rec["online_201"]
    assert rec["import_rejected"] == 0 and rec["online_other"] == 0
    assert rec["planted"] == (BALLOTS - rec["online"]) // args.void_every > 0
    assert rec["voided"] == rec["voided_by_review"] == rec["planted"]
    assert rec["national_ballots"] == BALLOTS - rec["planted"]
    assert rec["provinces_published"] == args.provinces and rec["holds"] is True
    # Nothing was lost on the way, so no consumer took an event from a producer's store instead of the stream.
    assert {"scoring-tallies", "sampling-responses"} <= set(rec["gap_fills"]), rec["gap_fills"]
    assert sum(rec["gap_fills"].values()) == 0, rec["gap_fills"]
    # The frame rows the generator spoiled are exactly the ones the upload refused.
    assert facts["frame_rows_refused"] == facts["frame_rows_planted_bad"]
    assert facts["frame_rows_kept"] + facts["frame_rows_refused"] == args.frame_rows
    assert facts["agencies"] == args.provinces * args.agencies and facts["selected"] >= BALLOTS
    assert "print exactly" in facts["codes_check"]
    # Each stage compared with a ceiling has a measured ratio; every service's memory was sampled.
    compared = [s for s in report.stages if s.ceiling]
    assert {s.ceiling for s in compared} == {"pg_copy", "pg_insert", "minimal", "js_sub"}
    assert all(s.count > 0 and math.isfinite(s.rate / ceiling(report, s.ceiling).rate) for s in compared)
    assert {"registry", "sampling", "ballots", "scoring", "publishing", "postgres", "nats-server"} <= set(report.peak)

    doc = tmp_path / "performance.md"
    doc.write_text("# Backbone performance\n\nkept as it is\n\n## Machine\n\n- CPUs: 2\n", encoding="utf-8")
    write_section(doc, section(report))
    write_section(doc, section(report))  # a second run replaces the section, it does not add one
    text = doc.read_text(encoding="utf-8")
    assert text.count(SECTION) == 1 and "kept as it is" in text
    assert text.index(SECTION) < text.index("## Machine") and "**holds**" in text
