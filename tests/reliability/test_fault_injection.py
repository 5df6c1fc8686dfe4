"""Nothing lost, nothing counted twice, while every part of the platform is killed under load.

A reduced run of the soak (``make soak``): one seed, a round of ~1,200 ballots (online, paper keyed twice on the
clerk pages, and bulk import) and
600 kiosk ratings submitted by concurrent clients while each service is SIGKILLed, nats-server restarted
twice, PostgreSQL crash-restarted and the ballots stream's consumers made to receive everything again. See
``chaos.py`` for what is reconciled.
"""

from __future__ import annotations

import pytest
from tests.reliability.chaos import FAULTS, ChaosConfig, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def test_every_acknowledged_ballot_is_counted_exactly_once_through_every_fault():
    from conftest import traversable_tmp

    printed: list[str] = []
    result = run_chaos(ChaosConfig(traversable_tmp("sipas-chaos-"), seed=20261129, ballots=1200, clients=12,
                                   log=printed.append))
    print("\n".join(printed))
    print(result.table())
    # Every fault kind was applied, each while clients had requests in flight, and the platform came back.
    assert sorted(f.kind for f in result.faults) == sorted(FAULTS)
    assert all(f.recovered_after is not None for f in result.faults)
    assert sum(f.in_flight > 0 for f in result.faults) >= len(FAULTS) - 2, result.table()
    # The reconciliation: the ballots store, its events, scoring and the published release all agree with
    # what the clients were told.
    assert result.mismatches == [], result.table()
    assert (result.lost, result.doubled, result.phantom, result.rejected_but_stored, result.unknown) == (0, 0, 0, 0, 0)
    assert result.acknowledged > 1000 and result.rejected >= 2
    assert result.events_accepted == result.scoring_counted == result.scoring_tally_n == result.published_n \
        == result.acknowledged
    assert result.retries > 0, "no request ever failed: the faults did not hit the intake"
    # Kiosk ratings (online-766) went through the same faults: each acknowledged dossier kept once everywhere.
    assert result.ratings["acknowledged"] > 500 and result.ratings["refused"] >= 20
    assert result.ratings["evented"] == result.ratings["scoring_kept"] == result.ratings["acknowledged"]
    # An outage is a 503 to retry (or a dropped connection while a process is killed), never a 500.
    assert "500" not in result.answers, result.answers
