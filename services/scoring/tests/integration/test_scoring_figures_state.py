"""Property: the figures computed from a campaign's kept state — its measured ballots carried from one
computation to the next, updated with only the ballots accepted or voided since — are the very document
a computation from scratch gives (``CampaignFigures`` with no memo and no state), byte for byte, after
every step of any stream of accepted, repeated and voided ballots, units drawn and weights adjusted."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import sys
import types

import pytest
from conftest import service_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sipas_cli.registry_client import builtin_definition
from sipas_events import canonical
from sipas_events.catalogue import ballots as bal
from sipas_events.catalogue import registry as reg
from sipas_events.catalogue import sampling as smp
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_kit.reference import reference_projection
from sipas_scoring.adapters.tables import reference
from sipas_scoring.application import figures as fig
from sipas_scoring.application.definitions import definitions
from sipas_scoring.application.figures_engine import Engine, LocalRunner, ProcessRunner
from sipas_scoring.application.recount import verify
from sipas_scoring.projections.sample import projection as sample
from sipas_scoring.projections.tallies import projection as counted

SIPAS = builtin_definition("instrument", "sipas-2017")
SCHEME = builtin_definition("scheme", "share-satisfied")
SMALL = {**SCHEME, "small_cell_n": 2}  # small cells still shown: the figures themselves are compared
ITEMS = [code for f in SIPAS["factors"] for code in [*(i["code"] for i in f["items"][:2]), f["overall_item"]["code"]]]
AGENCIES = {"a1": "01", "a2": "01", "a3": "79"}
STRATA = ["S1", "S2", "S3"]
_campaigns = itertools.count()

answers = st.dictionaries(st.sampled_from(ITEMS), st.one_of(st.none(), st.integers(1, 5)), max_size=len(ITEMS))
# A step: a run of ballot events (accept ballot k — again if it was, void ballot k), a draw of units for
# some ballots (their stratum and design weight), or adjusted weights for the strata; then the figures.
ballot_event = st.one_of(
    st.tuples(st.just("accept"), st.integers(0, 15), answers, st.sampled_from(sorted(AGENCIES))),
    st.tuples(st.just("void"), st.integers(0, 15), st.just({}), st.just("")),
)
step = st.one_of(
    st.tuples(st.just("ballots"), st.lists(ballot_event, min_size=1, max_size=8)),
    st.tuples(st.just("draw"), st.lists(st.tuples(st.integers(0, 15), st.sampled_from(STRATA),
                                                  st.sampled_from(["10", "12.5", "25"])), min_size=1, max_size=6,
                                       unique_by=lambda u: u[0])),
    st.tuples(st.just("weights"), st.lists(st.tuples(st.sampled_from(STRATA), st.integers(20, 60),
                                                     st.sampled_from(["8", "12.5", "40", None])),
                                           min_size=1, max_size=3, unique_by=lambda s: s[0])),
)


def envelope(producer: str, event, position: int) -> Envelope:
    return Envelope(id=new_id(), source=f"/sipas/{producer}", type=event.event_type(), subject="test",
                    time=dt.datetime(2026, 3, 1, tzinfo=dt.UTC), data=event.payload(), sequence=1, position=position,
                    correlationid="test", actor="test")


@pytest.fixture(scope="module")
def database(stack):
    url = service_database(stack, "scoring")

    async def setup() -> None:
        engine = create_async_engine(url)
        events = [reg.InstrumentPublished(instrument_id="sipas-2017", instrument_version=1, definition=SIPAS),
                  reg.SchemePublished(scheme_id="share-small", scheme_version=1, definition=SMALL),
                  *(reg.AgencyRegistered(agency_id=a, code=f"H{p}.{a}", name=f"Agency {a}", level="commune",
                                         province=p, valid_from=dt.date(2025, 1, 1)) for a, p in AGENCIES.items())]
        try:
            for i, event in enumerate(events, start=1):
                async with engine.begin() as conn:
                    await reference_projection(reference).handlers[type(event).__name__](
                        conn, event, envelope("registry", event, i))
        finally:
            await engine.dispose()

    asyncio.run(setup())
    return url


class Campaign:
    """One campaign's streams, applied as the consumers apply them, with their positions."""

    def __init__(self, engine) -> None:
        self.engine, self.campaign_id = engine, f"st{next(_campaigns)}"
        self.draw_id = f"{self.campaign_id}-d"
        self.positions = {"ballots": 0, "sampling": 0, "registry": 0}
        self.revision = 0

    async def open(self) -> None:
        opened = reg.CampaignOpened(
            campaign_id=self.campaign_id, name="Vòng thử", year=2026, scope="national",
            collection_window={"start": "2026-01-01", "end": "2026-12-31"},
            frame_window={"start": "2025-01-01", "end": "2025-12-31"}, target_unit_ids=sorted(AGENCIES),
            instrument={"id": "sipas-2017", "version": 1}, scheme={"id": "share-small", "version": 1},
            retention_until="2030-01-01")
        async with self.engine.begin() as conn:
            await reference_projection(reference).handlers["CampaignOpened"](conn, opened,
                                                                             envelope("registry", opened, 100))

    async def apply(self, kind: str, what) -> None:
        if kind == "ballots":
            run = []
            for action, k, given_answers, agency in what:
                ballot_id = f"{self.campaign_id}-b{k:02d}"
                if action == "accept":
                    event = bal.BallotAccepted(ballot_id=ballot_id, campaign_id=self.campaign_id, unit_id=f"{ballot_id}-u",
                                               agency_id=agency, province=AGENCIES[agency], stratum=agency,
                                               weight_ref=self.draw_id, channel="paper", answers=given_answers,
                                               expectations=[])
                else:
                    event = bal.BallotVoided(ballot_id=ballot_id, campaign_id=self.campaign_id, reason="test")
                self.positions["ballots"] += 1
                run.append((event, envelope("ballots", event, self.positions["ballots"])))
            async with self.engine.begin() as conn:
                assert counted.run_handler is not None
                await counted.run_handler(conn, run)
            return
        if kind == "draw":
            event = smp.SampleDrawn(
                draw_id=self.draw_id, campaign_id=self.campaign_id, province=None, frame_digest="0" * 64,
                seed_commitment="1" * 64, seed="2" * 32, algorithm_version="v1", part=1, parts=1,
                units=[smp.SampledUnit(unit_id=f"{self.campaign_id}-b{k:02d}-u", agency_id=None, agency_code="x",
                                       stratum=stratum, weight=weight) for k, stratum, weight in what])
        else:
            self.revision += 1
            event = smp.WeightsAdjusted(draw_id=self.draw_id, campaign_id=self.campaign_id, revision=self.revision,
                                        strata=[smp.StratumWeights(stratum=s, population=population, sampled=10,
                                                                   responded=8, design_weight="10",
                                                                   adjustment=None if final is None else "1.25",
                                                                   final_weight=final)
                                                for s, population, final in what])
        self.positions["sampling"] += 1
        async with self.engine.begin() as conn:
            await sample.handlers[type(event).__name__](conn, event, envelope("sampling", event,
                                                                              self.positions["sampling"]))

    async def figures(self, positions=None) -> tuple[tuple[dict, str], dict]:
        """(the document and digest from the kept state, the document computed from scratch), in one snapshot."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                basis = await definitions.basis(conn, self.campaign_id)
                kept = await fig.figures_of(conn, basis, dict(positions or self.positions))
                scratch = fig.CampaignFigures(basis, *await fig.load(conn, self.campaign_id)).document()
        assert kept.text == canonical.dumps(scratch)  # the text stored, byte for byte
        return (kept.document, kept.digest), scratch


class CountingRunner(LocalRunner):
    """Counts the requests that carry every counted ballot (the state built anew, not a delta applied)."""

    def __init__(self) -> None:
        super().__init__()
        self.builds = 0

    async def run(self, request):
        self.builds += request.since is None
        return await super().run(request)


def run_steps(database: str, steps, check) -> None:
    async def run() -> None:
        engine = create_async_engine(database)
        runner = CountingRunner()
        fig.use_runner(runner)
        try:
            campaign = Campaign(engine)
            await campaign.open()
            for kind, what in steps:
                await campaign.apply(kind, what)
                (document, digest), scratch = await campaign.figures()
                assert canonical.dumpb(document) == canonical.dumpb(scratch)  # byte for byte
                assert digest == fig.digest(scratch)
            await check(campaign, runner)
        finally:
            fig.use_runner(None)
            await engine.dispose()

    asyncio.run(run())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(step, min_size=1, max_size=10))
def test_figures_from_the_kept_state_equal_a_computation_from_scratch(database, steps):
    async def check(campaign: Campaign, runner: CountingRunner) -> None:
        # A ballots step applies a delta: only the first computation and those after a change of units or
        # weights (another producer's position moved) build the state from every ballot.
        sampling_steps = sum(kind != "ballots" for kind, _ in steps)
        first_is_sampling = steps[0][0] != "ballots"
        assert runner.builds <= 1 + sampling_steps - first_is_sampling
        assert runner.held[next(iter(runner.held))].at == campaign.positions["ballots"]

    run_steps(database, steps, check)


def test_a_position_that_went_back_or_a_lost_state_reads_everything_again(database):
    """A rebuild (the ballots position goes back), an engine that no longer holds the state, or a state that
    disagrees with the database's count: the next computation builds the state anew, and is still exact."""
    accepted = [("accept", k, {ITEMS[k % len(ITEMS)]: 1 + k % 5, ITEMS[0]: 4}, sorted(AGENCIES)[k % 3])
                for k in range(12)]

    async def check(campaign: Campaign, runner: CountingRunner) -> None:
        assert runner.builds == 1
        (document, _), scratch = await campaign.figures({**campaign.positions, "ballots": 5})
        assert document == scratch and runner.builds == 2                   # went back: everything read
        runner.engine = Engine()                                          # the engine lost its states
        (document, _), scratch = await campaign.figures()
        assert document == scratch and runner.builds == 3
        key = next(iter(runner.held))
        runner.held[key].at = campaign.positions["ballots"] - 1           # the held ids say more than the delta
        await campaign.apply("ballots", [("void", 3, {}, ""), ("accept", 14, {ITEMS[1]: 5}, "a2")])
        runner.engine._states[key].measured.apply([], [f"{campaign.campaign_id}-b00"])  # a state that lost one
        (document, _), scratch = await campaign.figures()
        assert document == scratch and runner.builds == 4                   # the count disagreed: read again

    run_steps(database, [("ballots", accepted[:6]), ("ballots", accepted[6:]),
                         ("ballots", [("void", 2, {}, ""), ("accept", 2, {ITEMS[0]: 1}, "a1")])], check)


def test_a_reply_lost_after_the_engine_applied_its_delta_counts_nothing_twice(database):
    """A refresh whose reply never reaches the service — cancelled, or its count failed — after the engine
    applied the delta: the service still holds the state before it, so its next delta carries those ballots
    again. Their tallies must not be added twice (the measured ballots would not be: a ballot is kept once):
    the engine applies a delta only to the very state it starts from, else everything is read again."""
    from sipas_scoring.application.figures_engine import Held

    accepted = [("accept", k, {ITEMS[k % len(ITEMS)]: 1 + k % 5, ITEMS[0]: 4}, sorted(AGENCIES)[k % 3])
                for k in range(6)]

    async def check(campaign: Campaign, runner: CountingRunner) -> None:
        key = next(iter(runner.held))
        held = runner.held[key]
        before = Held(held.fingerprint, held.at, set(held.ids))
        await campaign.apply("ballots", [("accept", 7, {ITEMS[0]: 5, ITEMS[1]: 2}, "a1"),
                                         ("accept", 8, {ITEMS[0]: 1}, "a2")])
        await campaign.figures()                         # the engine applies the delta and replies
        runner.keep(key, before)                         # ... but the service never saw the reply
        builds = runner.builds
        (document, _), scratch = await campaign.figures()  # the same ballots sent again
        assert document == scratch and runner.builds == builds + 1
        assert next(u for u in document["units"] if u["id"] == "a1")["ballots"] == 3

    run_steps(database, [("ballots", accepted)], check)


def test_tallies_replaced_by_a_recount_are_read_again(database):
    """A refresh reads only the tallies of agencies whose ballots changed; a recount replaces tallies with no
    ballot changing (an operator's repair, a rebuild settling), so it moves the tally revision and the next
    computation reads every tally again: the document is the repaired one, as from scratch."""
    accepted = [("accept", k, {ITEMS[0]: 1 + k % 5, ITEMS[1]: 4}, sorted(AGENCIES)[k % 3]) for k in range(9)]

    async def check(campaign: Campaign, runner: CountingRunner) -> None:
        builds = runner.builds
        async with campaign.engine.begin() as conn:  # drift, as a bug would leave it (no ballot changes)
            drifted = (await conn.execute(text(
                "UPDATE sc_tallies AS t SET counts[array_position(l.keys, 'ballots')] ="
                " t.counts[array_position(l.keys, 'ballots')] + 3 FROM sc_tally_keys AS l"
                " WHERE l.campaign_id = t.campaign_id AND t.campaign_id = :c AND t.agency_id = 'a3'"),
                {"c": campaign.campaign_id})).rowcount
            assert drifted == 1
        async with campaign.engine.connect() as conn:
            basis = await definitions.basis(conn, campaign.campaign_id)
            document = (await fig.figures_of(conn, basis, dict(campaign.positions))).document
        assert runner.builds == builds  # nothing told the figures: the kept tallies stand (not read again)
        assert next(u for u in document["units"] if u["id"] == "a3")["ballots"] == 3
        async with campaign.engine.begin() as conn:
            report = await verify(conn, await definitions.basis(conn, campaign.campaign_id), apply=True)
        assert report["applied"] and report["difference_count"] == 1
        (document, _), scratch = await campaign.figures()
        assert document == scratch and runner.builds == builds + 1  # the revision moved: everything read
        assert next(u for u in document["units"] if u["id"] == "a3")["ballots"] == 3

    run_steps(database, [("ballots", accepted[:5]), ("ballots", accepted[5:])], check)


def test_ballots_without_answer_codes_are_measured_from_their_answers(database):
    """The figures read each ballot's answer codes; a ballot counted before migration 0005 has none, and is
    measured from its JSONB answers instead: the same document either way, byte for byte."""
    accepted = [("accept", k, {ITEMS[k % len(ITEMS)]: 1 + k % 5, ITEMS[0]: None if k % 4 else 4},
                 sorted(AGENCIES)[k % 3]) for k in range(12)]

    async def check(campaign: Campaign, runner: CountingRunner) -> None:
        (_, digest), _ = await campaign.figures()
        async with campaign.engine.begin() as conn:
            coded = (await conn.execute(text("SELECT count(answer_codes) FROM sc_ballots WHERE campaign_id = :c"),
                                        {"c": campaign.campaign_id})).scalar_one()
            assert coded == 12  # every ballot counted with its codes
            cleared = (await conn.execute(text(
                "UPDATE sc_ballots SET answer_codes = NULL WHERE campaign_id = :c AND ballot_id LIKE '%0_'"),
                {"c": campaign.campaign_id})).rowcount
        assert cleared == 10  # b00..b09: most ballots from their answers, b10 and b11 from their codes
        fig.use_runner(LocalRunner())  # nothing kept: every ballot read again
        (_, again), scratch = await campaign.figures()
        assert again == digest == fig.digest(scratch)

    run_steps(database, [("draw", [(k, STRATA[k % 3], "12.5") for k in range(12)]), ("ballots", accepted)], check)


def test_a_delta_with_ballots_without_codes_reads_their_agencies_tallies(database):
    """A refresh takes the tallies' change from the answer codes of the ballots that came and went; a ballot
    without codes (counted before migration 0005) cannot say it, so its agency's tallies are read again —
    the kept document still equals one from scratch, and the state was not rebuilt."""
    accepted = [("accept", k, {ITEMS[k % len(ITEMS)]: 1 + k % 5, ITEMS[2]: 5}, sorted(AGENCIES)[k % 3])
                for k in range(9)]

    async def check(campaign: Campaign, runner: CountingRunner) -> None:
        builds = runner.builds
        async with campaign.engine.begin() as conn:  # b00, b03, b06 (agency a1) as counted before 0005
            cleared = (await conn.execute(text(
                "UPDATE sc_ballots SET answer_codes = NULL WHERE campaign_id = :c AND agency_id = 'a1'"),
                {"c": campaign.campaign_id})).rowcount
        assert cleared == 3
        await campaign.apply("ballots", [("void", 3, {}, ""), ("void", 4, {}, ""),
                                         ("accept", 12, {ITEMS[0]: 2, ITEMS[1]: None}, "a3")])
        (document, _), scratch = await campaign.figures()
        assert document == scratch and runner.builds == builds  # a delta: a1 read again, a2 and a3 by codes
        ballots_of = {u["id"]: u["ballots"] for u in document["units"] if u["level"] == "agency"}
        assert ballots_of == {"a1": 2, "a2": 2, "a3": 4}

    run_steps(database, [("ballots", accepted)], check)


def test_the_figures_process_keeps_the_state_and_stops(database):
    """The worker's process computes the same documents from deltas, and is gone once closed."""

    async def run() -> None:
        engine = create_async_engine(database)
        runner = ProcessRunner()
        fig.use_runner(runner)
        try:
            await runner.start()
            pid = runner.pid
            campaign = Campaign(engine)
            await campaign.open()
            await campaign.apply("draw", [(k, STRATA[k % 3], "10") for k in range(10)])
            for ks in (range(0, 6), range(6, 10), range(3, 5)):
                await campaign.apply("ballots", [("accept", k, {ITEMS[0]: 1 + k % 5, ITEMS[3]: 4}, "a1") for k in ks]
                                     + [("void", 1, {}, "")])
                (document, digest), scratch = await campaign.figures()
                assert document == scratch and digest == fig.digest(scratch)
            a1 = next(u for u in document["units"] if u["id"] == "a1")
            assert a1["overall"]["weighted"]["n"] == 9 and a1["overall"]["ci"]  # weighted and unweighted intervals
            assert runner.held[next(iter(runner.held))].at == campaign.positions["ballots"]
        finally:
            fig.use_runner(None)
            await runner.close()
            await engine.dispose()
        assert pid is not None and runner.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone, and reaped

    asyncio.run(run())


def test_the_figures_process_leaves_when_the_service_dies():
    """Killed with the service (nothing shut down): its stdin closes, so it leaves by itself."""
    script = ("import asyncio, os\n"
              "from sipas_scoring.application.figures_engine import ProcessRunner\n"
              "async def main():\n"
              "    runner = ProcessRunner()\n"
              "    await runner.start()\n"
              "    print(runner.pid, flush=True)\n"
              "    os._exit(0)\n"
              "asyncio.run(main())\n")

    async def run() -> None:
        service = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
        out, _ = await service.communicate()
        child = int(out.decode().split()[-1])
        for _ in range(100):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.1)
        os.kill(child, 9)
        raise AssertionError("the figures process outlived its service")

    asyncio.run(run())


@pytest.mark.parametrize("stop", ["before it began", "while it imports", "once it is up"])
def test_a_figures_worker_leaves_no_process_however_soon_it_stops(stop):
    """The worker starts its process beside its first passes; stopped before it began, while the process still
    imports the figures, or once it is up, it leaves no process behind (and a stop does not wait for the
    import: the process is killed)."""
    import psutil

    from sipas_scoring.application.scores import figures_worker

    def figures_processes() -> list[psutil.Process]:
        return [p for p in psutil.Process().children(recursive=True)
                if "sipas_scoring.application.figures_engine" in " ".join(p.cmdline())]

    async def run() -> None:
        ctx = types.SimpleNamespace(settings=types.SimpleNamespace(scores_interval=0.5, figures_process=True),
                                    stop=asyncio.Event(), engine=None)  # no database: no pass gets that far
        if stop == "before it began":
            ctx.stop.set()
        worker = asyncio.create_task(figures_worker(ctx))  # type: ignore[arg-type]
        if stop != "before it began":
            for _ in range(600):
                await asyncio.sleep(0.05)
                runner = fig._runner
                up = isinstance(runner, ProcessRunner) and runner.pid is not None and not runner._turn.locked()
                if figures_processes() and (stop == "while it imports" or up):
                    break
            else:
                raise AssertionError("the figures process never started")
            ctx.stop.set()
        await worker
        assert figures_processes() == []

    assert figures_processes() == []
    asyncio.run(run())
