"""Fault injection over the whole platform: ballots pour in while a seeded schedule breaks things.

All five services run as processes over the embedded PostgreSQL and NATS (``sipas_cli.platform.Platform``,
the same start-up path as ``sipas up``). A campaign is opened, sampled and drawn through the public APIs
(the demo's own steps), then respondents and the postal service's batch uploads submit ballots from many
threads at once, online and by bulk import, each retried with its ``Idempotency-Key`` until the platform
gives a definitive answer — exactly what a well-behaved client does when a connection breaks. Meanwhile a
schedule drawn from the seed, at points spread over the intake:

- SIGKILLs each of the five services (while requests are in flight) and starts it again;
- restarts nats-server, gracefully and with SIGKILL;
- restarts PostgreSQL in immediate mode (a crash: WAL recovery at start);
- forces redeliveries: deletes every durable consumer on the ballots stream, so each consumer is sent the
  whole stream again from the first message and must absorb it.

Then it reconciles, reading each service's own store and public API: every ballot that got a 2xx is in
the ballots store once, has exactly one ``BallotAccepted`` in the ballots event store, is counted once in
scoring's projection and tallies, and in the published release's national n; every submission that was
refused is in none of them. It reports lost, doubled, phantom (stored without a 2xx), rejected-but-stored,
and the recovery time of each fault.

Codes are read from the ballots service's database rather than off the printed PDF sheets (the demo's
way): the harness plays the postal service that holds the printed sheets, and parsing thousands of PDF
pages would only slow the test down. Everything it *submits* goes through public HTTP.

``pytest tests/reliability`` runs it small (CI); ``make soak`` runs ``python -m tests.reliability.chaos``
with 10,000 ballots over several seeds and records the figures in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import math
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from sipas_cli.demo import registry as demo_registry
from sipas_cli.demo import release as demo_release
from sipas_cli.demo import sampling as demo_sampling
from sipas_cli.demo.answers import Ballot, Instrument, Respondents
from sipas_cli.demo.client import KIOSKS, ORGANISER, VNPOST, Api, Person, wait_until
from sipas_cli.demo.fieldwork import RESULT, paper_reason
from sipas_cli.demo.model import Round
from sipas_cli.platform import SERVICES, Platform
from sipas_cli.registry_client import RegistryClient
from sipas_cli.stack import free_port_block
from sipas_kit import csrf
from sipas_kit.auth import Role

WINDOW = 0.05         # how far past a fault's point the intake may run before the fault is injected
FAULTS = ("kill:registry", "kill:sampling", "kill:ballots", "kill:scoring", "kill:publishing",
          "nats:restart", "nats:kill", "postgres:immediate", "redeliver:ballots")
OFF_SCALE = 9          # a planted bad answer: the form's scale is 1-5
NEVER_ISSUED = "0000-0000-000"   # well formed, check character right, never issued


@dataclass
class ChaosConfig:
    home: Path
    seed: int = 1
    ballots: int = 1200          # ballot codes issued (and submitted once each, good or planted bad)
    provinces: int = 2
    agencies: int = 2            # per province
    clients: int = 12            # submitting threads
    online_share: float = 0.6
    paper_share: float = 0.15    # keyed twice on the clerk pages; the rest arrives in bulk-import batches
    import_batch: int = 40
    bad_share: float = 0.04      # codes submitted only with an answer off the scale: must stay unused
    kiosk_ratings: int = 600     # online-766 ratings from the one-stop shops' kiosks, in batches
    kiosk_batch: int = 50
    rounds: int = 1              # how many times the whole fault list is applied over the intake
    log: Callable[[str], None] = print


@dataclass
class Outcome:
    code: str
    channel: str
    planted_bad: bool
    status: str = "pending"       # accepted | rejected | unknown
    reason: str | None = None
    ballot_id: str | None = None
    history: list[str] = field(default_factory=list)   # what each HTTP try got: a status or an error


@dataclass
class Rating:
    dossier_id: str
    row: dict[str, Any]
    planted_bad: bool
    status: str = "pending"
    history: list[str] = field(default_factory=list)


@dataclass
class Fault:
    kind: str
    at_progress: float
    unit: int = 0                 # the first unit of work at or past that point
    in_flight: int = 0
    armed: bool = False
    started: float = 0.0
    recovered_after: float | None = None


@dataclass
class Reconciliation:
    seed: int
    submitted: int
    acknowledged: int                 # got a 2xx with a ballot id
    rejected: int                     # got a definitive refusal
    unknown: int                      # never got a definitive answer (should be 0: clients retry)
    lost: int                         # acknowledged, not in the ballots store
    doubled: int                      # stored, evented or counted more than once
    phantom: int                      # in the store without a 2xx
    rejected_but_stored: int
    events_accepted: int
    scoring_counted: int
    scoring_tally_n: int
    published_n: int
    retries: int
    ratings: dict[str, int]           # the kiosk ratings' own reconciliation
    answers: dict[str, int]           # what every HTTP try got, by status or error class
    faults: list[Fault]
    intake_seconds: float
    converge_seconds: float
    mismatches: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def table(self) -> str:
        lines = [f"seed {self.seed}: {self.submitted} submitted, {self.acknowledged} acknowledged (2xx), "
                 f"{self.rejected} refused, {self.unknown} unknown; {self.retries} retries",
                 f"  kiosk ratings: {self.ratings}",
                 f"  answers to every try: {dict(sorted(self.answers.items()))}",
                 f"  lost={self.lost} doubled={self.doubled} phantom={self.phantom} "
                 f"rejected_but_stored={self.rejected_but_stored}",
                 f"  BallotAccepted events={self.events_accepted} scoring counted={self.scoring_counted} "
                 f"tally n={self.scoring_tally_n} published national n={self.published_n}",
                 f"  intake {self.intake_seconds:.1f} s under faults; scoring caught up "
                 f"{self.converge_seconds:.1f} s after the last submission"]
        for f in self.faults:
            rec = "n/a" if f.recovered_after is None else f"{f.recovered_after:.1f} s"
            lines.append(f"  fault {f.kind:<20} at {f.at_progress:4.0%} of intake, {f.in_flight:2d} requests in "
                         f"flight, recovered in {rec}")
        lines += [f"  MISMATCH: {m}" for m in self.mismatches]
        return "\n".join(lines)


class Intake:
    """The clients: threads that submit and retry until each submission has a definitive answer."""

    def __init__(self, api: Api, rnd: Round, config: ChaosConfig, people: Respondents) -> None:
        self.api, self.rnd, self.config, self.people = api, rnd, config, people
        self.criteria = people.instrument.criteria
        self.lock = threading.Lock()
        self.done = 0
        self.units = 0
        self.units_done = 0
        self.started = -1            # the furthest unit that has started
        self.in_flight = 0
        self.retries = 0
        self.http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=config.clients * 2))
        staff = [Person(f"nhaplieu.chaos.{i}@moha.gov.vn", Role.MINISTRY_ADMIN) for i in range(4)]
        self.clerks = [(a, b) for a in staff for b in staff if a != b]   # who keys first and second

    # ---- one request, retried until definitive -------------------------------------------------
    def _send(self, method: str, service: str, path: str, definitive: Callable[[httpx.Response], bool],
              **kw: Any) -> tuple[httpx.Response | None, list[str]]:
        """The first definitive answer (or None at the deadline), and what each try got."""
        return self._send_with(lambda: self.http.request(method, self.api.urls[service] + path, **kw), definitive)

    def _send_with(self, attempt_once: Callable[[], httpx.Response], definitive: Callable[[httpx.Response], bool]
                   ) -> tuple[httpx.Response | None, list[str]]:
        deadline = time.monotonic() + 300
        attempt, history = 0, []
        while time.monotonic() < deadline:
            attempt += 1
            with self.lock:
                self.in_flight += 1
            try:
                r = attempt_once()
                history.append(str(r.status_code))
                if definitive(r):
                    return r, history
            except httpx.HTTPError as exc:
                history.append(type(exc).__name__)  # refused, reset or timed out: down or restarting
            finally:
                with self.lock:
                    self.in_flight -= 1
            with self.lock:
                self.retries += 1
            time.sleep(min(0.1 * 2 ** min(attempt, 5), 2.0))
        return None, history

    def online(self, item: Outcome, ballot: Ballot) -> None:
        body = {"code": item.code, "campaign_id": self.rnd.campaign_id, "answers": ballot.answers,
                "channel": "online", "expectations": ballot.expectations,
                "not_applicable_factors": ballot.not_applicable, "entry_seconds": ballot.seconds}
        r, item.history = self._send("POST", "ballots", "/v1/submissions", lambda r: r.status_code in (201, 422),
                                     json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        if r is None:
            item.status = "unknown"
        elif r.status_code == 201:
            item.status, item.ballot_id = "accepted", r.json()["ballot_id"]
        else:
            item.status, item.reason = "rejected", r.json().get("reason")
        self._tick()

    def batch(self, items: list[tuple[Outcome, Ballot]]) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["code", *self.criteria, "expectations", "not_applicable_factors",
                                                 "entered_by"], lineterminator="\n")
        writer.writeheader()
        for item, ballot in items:
            writer.writerow({"code": item.code, **{c: "" if ballot.answers.get(c) is None else str(ballot.answers[c])
                                                    for c in self.criteria},
                             "expectations": " ".join(ballot.expectations),
                             "not_applicable_factors": " ".join(ballot.not_applicable),
                             "entered_by": f"dtv.{item.code[:2]}@vnpost.vn"})
        headers = self.api.auth(VNPOST) | {"Content-Type": "text/csv", "Idempotency-Key": str(uuid.uuid4())}
        r, history = self._send("POST", "ballots", f"/v1/campaigns/{self.rnd.campaign_id}/ballot-imports",
                       lambda r: r.status_code == 200, content=out.getvalue().encode(), headers=headers,
                       params={"filename": "chaos.csv"})
        report = [] if r is None else r.json()["report"]
        for index, (item, _) in enumerate(items):
            item.history = history
            line = report[index] if index < len(report) else None
            if line is None:
                item.status = "unknown"
            elif line.get("reason"):
                item.status, item.reason = "rejected", line["reason"]
            else:
                item.status, item.ballot_id = "accepted", line.get("ballot_id")
            self._tick()

    def paper(self, item: Outcome, ballot: Ballot, first: Person, second: Person) -> None:
        """A paper ballot keyed blind by two clerks on the clerk pages, each keying retried until the page
        answers it (re-reading the form for a fresh CSRF token when the service has restarted)."""
        fields = [("campaign_id", self.rnd.campaign_id), ("code", item.code), ("entry_seconds", "45.0"),
                  ("e", " ".join(ballot.expectations))]
        fields += [(f"q_{c}", str(ballot.answers.get(c) or 0)) for c in self.criteria]
        fields += [("na_factor", f) for f in ballot.not_applicable]
        messages = []
        for who in (first, second):
            cookie = {"Cookie": f"sipas_session={self.api.token(who)}"}

            def keyed(r: httpx.Response) -> bool:
                return r.status_code in (200, 409, 422) and RESULT.search(r.text) is not None

            def post(who_cookie: dict[str, str] = cookie) -> httpx.Response:
                form = self.http.get(self.api.urls["ballots"] + "/clerk", params={"campaign_id": self.rnd.campaign_id},
                                     headers=who_cookie)
                token = csrf.token_in(form.text) if form.status_code == 200 else None
                if token is None:
                    return form
                return self.http.post(self.api.urls["ballots"] + "/clerk/key", headers=who_cookie | {
                    "Content-Type": "application/x-www-form-urlencoded"},
                    content=urlencode([*fields, ("csrf_token", token)]).encode())

            r, history = self._send_with(post, keyed)
            item.history += history
            if r is None:
                item.status = "unknown"
                return
            messages.append(unescape(RESULT.search(r.text).group(1)).strip())  # type: ignore[union-attr]
        reason = paper_reason(messages[-1])
        if "lần nhập thứ nhất" not in messages[0]:
            item.status, item.reason = "unknown", f"first keying answered: {messages[0]}"
        elif reason is None:
            item.status = "accepted"
        else:
            item.status, item.reason = "rejected", reason
        self._tick()

    def kiosk(self, rows: list[Rating]) -> None:
        """A kiosk system's batch of per-dossier ratings; a refused row is named by its index."""
        headers = self.api.auth(KIOSKS) | {"Idempotency-Key": str(uuid.uuid4())}
        r, history = self._send("POST", "ballots", f"/v1/campaigns/{self.rnd.campaign_id}/online-ratings",
                                lambda r: r.status_code in (200, 207), json={"items": [x.row for x in rows]},
                                headers=headers)
        refused = set() if r is None else {e["index"] for e in r.json()["errors"]}
        for index, rating in enumerate(rows):
            rating.history = history
            rating.status = "unknown" if r is None else "rejected" if index in refused else "accepted"

    def _tick(self) -> None:
        with self.lock:
            self.done += 1

    @property
    def progress(self) -> float:
        """The share of work units (an online ballot, or an import batch) finished."""
        return self.units_done / self.units if self.units else 0.0

    def run(self, work: list[tuple[str, Any]],
            gate: Callable[[int], None] = lambda _: None) -> None:
        """Submit every unit from ``clients`` threads; unit k waits at ``gate(k)`` first, so the
        saboteur can keep the faults inside the intake instead of after it."""
        def unit(k: int, kind: str, items: Any) -> None:
            gate(k)
            with self.lock:
                self.started = max(self.started, k)
            if kind == "online":
                self.online(*items[0])
            elif kind == "kiosk":
                self.kiosk(items)
            elif kind == "paper":
                (item, ballot), = items
                self.paper(item, ballot, *self.clerks[k % len(self.clerks)])
            else:
                self.batch(items)
            with self.lock:
                self.units_done += 1

        with ThreadPoolExecutor(self.config.clients) as pool:
            for f in [pool.submit(unit, k, kind, items) for k, (kind, items) in enumerate(work)]:
                f.result()
        self.http.close()


class Saboteur:
    """Applies the seeded fault schedule as the intake progresses."""

    def __init__(self, platform: Platform, intake: Intake, faults: list[Fault], log: Callable[[str], None]) -> None:
        self.platform, self.intake, self.faults, self.log = platform, intake, faults, log
        self.error: BaseException | None = None
        self.window = max(1, round(WINDOW * intake.units))
        for fault in faults:
            fault.unit = math.ceil(fault.at_progress * intake.units)
        self.thread = threading.Thread(target=self._run, name="saboteur", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error

    def gate(self, k: int) -> None:
        """Hold unit ``k`` while it lies at or past a fault the saboteur is not ready to inject yet (it is still
        waiting for the platform to recover from the previous one), or more than ``WINDOW`` past one it is
        about to inject: so every fault lands while clients have requests in flight."""
        def held() -> bool:
            return any(not f.started and (k >= f.unit + self.window or (not f.armed and k >= f.unit))
                       for f in self.faults)
        while self.error is None and held():
            time.sleep(0.005)

    def _run(self) -> None:
        try:
            for fault in self.faults:
                fault.armed = True
                # Units up to the fault's (and a little past it) may start now; inject once clients are inside
                # that stretch with requests on the wire (or after a few seconds, whatever they do).
                deadline = None
                while True:
                    if self.intake.started >= fault.unit - 1:
                        deadline = deadline or time.monotonic() + 5
                        if self.intake.in_flight > 0 or time.monotonic() > deadline:
                            break
                    time.sleep(0.002)
                fault.in_flight = self.intake.in_flight
                fault.started = time.monotonic()
                self.log(f"  fault {fault.kind} at {self.intake.progress:.0%} ({fault.in_flight} in flight)")
                self._inject(fault.kind)
                self.platform.wait_ready(timeout=180)
                fault.recovered_after = time.monotonic() - fault.started
        except BaseException as exc:
            self.error = exc

    def _inject(self, kind: str) -> None:
        what, _, target = kind.partition(":")
        p = self.platform
        if what == "kill":
            p.stop_service(target, signal.SIGKILL)
            time.sleep(random.uniform(0.2, 1.5))
            p.start_service(target)
        elif what == "nats":
            assert p.nats is not None
            if target == "kill":
                p.nats.kill()
                time.sleep(0.5)
                p.nats.start()
            else:
                p.nats.restart()
        elif what == "postgres":
            assert p.pg is not None
            p.pg.restart(mode="immediate")
        elif what == "redeliver":
            asyncio.run(_delete_durables(p.nats_url, target))
        else:
            raise ValueError(kind)


async def _delete_durables(nats_url: str, producer: str) -> list[str]:
    """Delete every durable consumer of the producer's stream: each consumer re-creates its durable from
    the first message (deliver policy all) and is sent everything again."""
    import nats

    from sipas_events.naming import stream_name

    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        stream = stream_name(producer)
        deleted = []
        for info in await js.consumers_info(stream):
            if info.config.durable_name:
                await js.delete_consumer(stream, info.config.durable_name)
                deleted.append(info.config.durable_name)
        return deleted
    finally:
        await nc.close()


def schedule(rng: random.Random, rounds: int) -> list[Fault]:
    """Every fault kind ``rounds`` times, in a seeded order, at seeded points between 5% and 90% of intake."""
    kinds = [k for _ in range(rounds) for k in FAULTS]
    rng.shuffle(kinds)
    points = sorted(rng.uniform(0.05, 0.9) for _ in kinds)
    return [Fault(k, p) for k, p in zip(kinds, points, strict=True)]


# ---- the round ------------------------------------------------------------------------------------------

def _rows(platform: Platform, database: str, sql: str) -> list[dict[str, Any]]:
    assert platform.pg is not None
    out = platform.pg.psql(f"SELECT coalesce(json_agg(t), '[]'::json) FROM ({sql}) t", database=f"sipas_{database}")
    return json.loads(out)  # type: ignore[no-any-return]


def start_platform(home: Path) -> Platform:
    names = ("postgres", "nats", "nats_monitor", *SERVICES)
    base = free_port_block(len(names))
    platform = Platform(home, ports={n: base + i for i, n in enumerate(names)}, log_format="json")
    try:
        platform.start()
        token = platform.identity.mint("seed@chaos", "ministry-admin", ttl=3600)
        with RegistryClient(platform.url("registry"), token) as client:
            client.load_builtins()
            client.load_maps()
    except BaseException:
        platform.stop()  # a service that failed to start must not leave the others (and the servers) running
        raise
    return platform


def open_round(platform: Platform, config: ChaosConfig, rng: random.Random) -> tuple[Api, Round, Respondents]:
    """A national campaign over ``provinces`` x ``agencies`` units, sampled and drawn through the public APIs,
    sized so that ``config.ballots`` codes are issued (Slovin at a 1% margin, capped per unit)."""
    api = Api({s: platform.url(s) for s in SERVICES}, platform.identity)
    names = demo_registry.provinces_today(api)
    chosen = rng.sample(sorted(names), config.provinces)
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).date()
    rnd = Round(tag=f"chaos-{config.seed}-{uuid.uuid4().hex[:6]}", year=today.year, today=today, provinces=chosen,
                province_names=names)
    demo_registry.register_units(api, rnd, chosen, lambda: None)
    units = config.provinces * config.agencies
    per_unit = -(-config.ballots // units)
    rnd.targets = [a for p in chosen for a in rnd.agencies[p][:config.agencies]]
    collection, frame = demo_registry.windows(today)
    opened = api.post("registry", "/v1/campaigns", ORGANISER, {
        "name": f"Chaos {rnd.tag}", "year": collection[0].year, "scope": "national",
        "collection_window": {"start": collection[0].isoformat(), "end": collection[1].isoformat()},
        "frame_window": {"start": frame[0].isoformat(), "end": frame[1].isoformat()},
        "target_unit_ids": [a.agency_id for a in rnd.targets],
        "instrument": {"id": "sipas-2017", "version": 1}, "scheme": {"id": "share-satisfied", "version": 1},
        "sampling": {"method": "slovin", "margin": "0.01", "cap_per_unit": per_unit, "reserve_ratio": "0.1"},
        "retention_until": (collection[1] + dt.timedelta(days=365)).isoformat()})
    rnd.campaign_id = opened["campaign_id"]
    for service in ("sampling", "ballots", "scoring"):
        wait_until(lambda s=service: any(c["campaign_id"] == rnd.campaign_id for c in api.get(  # type: ignore[misc]
            s, "/v1/reference/campaigns", ORGANISER)), f"{service} learning of the campaign")
    plans = demo_sampling.upload_frames(api, rnd, rng, per_unit, lambda: None)
    demo_registry.advance(api, rnd, "sample_approved", "chaos: plans approved")
    demo_sampling.draw(api, rnd, plans, lambda: None)
    demo_registry.advance(api, rnd, "fieldwork_open", "chaos: fieldwork")
    expected = sum(d.selected for d in rnd.draws)
    wait_until(lambda: api.get("ballots", f"/v1/campaigns/{rnd.campaign_id}/progress", ORGANISER)["issued"]
               >= expected, f"ballots issuing {expected} codes", timeout=300)
    definition = next(d["definition"] for d in api.get("ballots", "/v1/reference/definitions", ORGANISER)
                      if d["kind"] == "instrument" and d["def_id"] == "sipas-2017")
    return api, rnd, Respondents(rng.randrange(2**32), Instrument.of(definition))


def plan_work(platform: Platform, rnd: Round, people: Respondents, config: ChaosConfig,
              rng: random.Random) -> tuple[list[Outcome], list[Rating], list[tuple[str, Any]]]:
    codes = _rows(platform, "ballots", (
        "SELECT b.code, s.agency_code, s.province FROM ballots b JOIN sampled_units s ON s.unit_id = b.unit_id "
        f"WHERE b.campaign_id = '{rnd.campaign_id}' AND b.status = 'issued' ORDER BY b.code"))
    rng.shuffle(codes)
    outcomes: list[Outcome] = []
    online: list[tuple[Outcome, Ballot]] = []
    paper: list[tuple[Outcome, Ballot]] = []
    imported: list[tuple[Outcome, Ballot]] = []
    for row in codes:
        draw = rng.random()
        channel = ("online" if draw < config.online_share else
                   "paper" if draw < config.online_share + config.paper_share else "import")
        bad = channel != "paper" and rng.random() < config.bad_share   # a paper form cannot hold a 9
        ballot = people.answer(rng, row["province"], row["agency_code"], overall=channel == "online")
        if bad:   # an answer off the scale: refused, and the code stays unused
            ballot = Ballot(ballot.answers | {next(iter(ballot.answers)): OFF_SCALE}, ballot.expectations,
                            ballot.not_applicable, ballot.seconds)
        item = Outcome(row["code"], channel, bad)
        outcomes.append(item)
        {"online": online, "paper": paper, "import": imported}[channel].append((item, ballot))
    # A code never issued, on both channels: refused as unknown, stored nowhere.
    for channel, bucket in (("online", online), ("import", imported)):
        item = Outcome(NEVER_ISSUED, channel, True)
        outcomes.append(item)
        bucket.append((item, people.answer(rng, rnd.provinces[0], rnd.targets[0].code)))
    work: list[tuple[str, Any]] = [("online", [x]) for x in online] + [("paper", [x]) for x in paper]
    work += [("import", imported[i:i + config.import_batch]) for i in range(0, len(imported), config.import_batch)]
    ratings = kiosk_ratings(rnd, config, rng)
    work += [("kiosk", ratings[i:i + config.kiosk_batch]) for i in range(0, len(ratings), config.kiosk_batch)]
    rng.shuffle(work)
    return outcomes, ratings, work


def kiosk_ratings(rnd: Round, config: ChaosConfig, rng: random.Random) -> list[Rating]:
    """Per-dossier ratings of the campaign's agencies; one in 25 is dated tomorrow and must be refused."""
    out = []
    for i in range(config.kiosk_ratings):
        agency = rnd.targets[i % len(rnd.targets)]
        bad = i % 25 == 7
        day = rnd.today + dt.timedelta(days=1) if bad else rnd.today - dt.timedelta(days=rng.randrange(30))
        dossier = f"{rnd.tag}-K{i:06d}"
        unsatisfied = rng.random() < 0.15
        out.append(Rating(dossier, {"source_system": f"kiosk-{agency.province}", "dossier_id": dossier,
                                    "agency_code": agency.code, "completed_on": day.isoformat(),
                                    "rated_unsatisfied": unsatisfied, "complained": unsatisfied and rng.random() < 0.2,
                                    "overdue": rng.random() < 0.05}, bad))
    return out


def run_chaos(config: ChaosConfig) -> Reconciliation:
    rng = random.Random(config.seed)
    say = config.log
    platform = start_platform(config.home)
    try:
        say(f"seed {config.seed}: platform up in {config.home}; opening a round of ~{config.ballots} ballots")
        api, rnd, people = open_round(platform, config, rng)
        outcomes, ratings, work = plan_work(platform, rnd, people, config, rng)
        intake = Intake(api, rnd, config, people)
        faults = schedule(rng, config.rounds)
        intake.units = len(work)
        saboteur = Saboteur(platform, intake, faults, say)
        say(f"  {len(outcomes)} ballots ({sum(o.channel == 'online' for o in outcomes)} online, "
            f"{sum(o.channel == 'paper' for o in outcomes)} on paper keyed twice, the rest in "
            f"{sum(k == 'import' for k, _ in work)} import batches) and {len(ratings)} kiosk ratings from "
            f"{config.clients} clients; {len(faults)} faults")
        started = time.monotonic()
        saboteur.start()
        intake.run(work, saboteur.gate)
        intake_seconds = time.monotonic() - started
        saboteur.join()
        platform.wait_ready(timeout=180)
        return reconcile(platform, api, rnd, outcomes, ratings, intake, faults, config, intake_seconds)
    finally:
        platform.stop()


def reconcile(platform: Platform, api: Api, rnd: Round, outcomes: list[Outcome], ratings: list[Rating],
              intake: Intake, faults: list[Fault], config: ChaosConfig, intake_seconds: float) -> Reconciliation:
    cid = rnd.campaign_id
    acked = {o.code: o.ballot_id for o in outcomes if o.status == "accepted"}
    refused = {o.code for o in outcomes if o.status == "rejected"}
    unknown = [o for o in outcomes if o.status not in ("accepted", "rejected")]
    mismatches: list[str] = []
    # Ballots store: one accepted row per ballot, and the codes behind them.
    stored = _rows(platform, "ballots", (
        "SELECT b.code, a.ballot_id FROM accepted_ballots a JOIN ballots b ON b.ballot_id = a.ballot_id "
        f"WHERE a.campaign_id = '{cid}'"))
    stored_codes = Counter(r["code"] for r in stored)
    lost = [c for c in acked if c not in stored_codes]
    phantom = [c for c in stored_codes if c not in acked]
    rejected_but_stored = [c for c in refused if c in stored_codes]
    doubled = sum(n - 1 for n in stored_codes.values() if n > 1)
    wrong_id = [c for c, b in acked.items() if b and c in stored_codes and by_code_of(stored, c) != b]
    # Ballots' event store: exactly one BallotAccepted per acknowledged ballot.
    events = Counter(r["ballot_id"] for r in _rows(platform, "ballots", (
        "SELECT body::jsonb->'data'->>'ballot_id' AS ballot_id FROM event_store "
        f"WHERE type LIKE '%.BallotAccepted.%' AND body::jsonb->'data'->>'campaign_id' = '{cid}'")))
    doubled += sum(n - 1 for n in events.values() if n > 1)
    by_code = {r["code"]: r["ballot_id"] for r in stored}
    ids = {by_code[c] for c in acked if c in by_code}   # import reports name lines, not ballot ids
    if set(events) != ids:
        mismatches.append(f"BallotAccepted events for {len(events)} ballots, {len(ids)} acknowledged "
                          f"({len(ids - set(events))} without an event, {len(set(events) - ids)} extra)")
    # Scoring: wait for its consumers to reach the ballots' head, then every acknowledged ballot counted once.
    waited = time.monotonic()
    demo_release.freeze(api, rnd)
    converge = time.monotonic() - waited
    counted = Counter(r["ballot_id"] for r in _rows(platform, "scoring", (
        f"SELECT ballot_id FROM sc_ballots WHERE campaign_id = '{cid}' AND status = 'accepted'")))
    doubled += sum(n - 1 for n in counted.values() if n > 1)
    if set(counted) != ids:
        mismatches.append(f"scoring counts {len(counted)} ballots, {len(ids)} acknowledged "
                          f"({len(ids - set(counted))} missing, {len(set(counted) - ids)} extra)")
    ratings_check = reconcile_ratings(platform, cid, ratings, mismatches)
    tally_n = int(_rows(platform, "scoring", (
        "SELECT coalesce(sum(t.counts[array_position(l.keys, 'ballots')]), 0) AS n FROM sc_tallies AS t"
        f" JOIN sc_tally_keys AS l USING (campaign_id) WHERE campaign_id = '{cid}'"))[0]["n"])
    # Publishing: a release drafted, approved by a second person, published; its national n.
    demo_release.publish(api, rnd, None)  # type: ignore[arg-type]  # no partner needed here
    figures = api.get("publishing", f"/v1/releases/{rnd.release['release_id']}/scores", ORGANISER)["units"]
    national = next(u for u in figures if u["level"] == "national")
    published_n = int(national["ballots"])
    for name, n in (("scoring tallies", tally_n), ("published national n", published_n)):
        if n != len(ids):
            mismatches.append(f"{name} = {n}, {len(ids)} ballots acknowledged")
    if lost:
        mismatches.append(f"lost: {lost[:5]}")
    if phantom:
        mismatches.append(f"stored without a 2xx: {phantom[:5]}")
    if rejected_but_stored:
        seen = {o.code: o for o in outcomes}
        mismatches.append("refused but stored: " + ", ".join(
            f"{c} ({seen[c].channel}, {seen[c].reason}, tries: {' '.join(seen[c].history)})" for c in rejected_but_stored[:5]))
    if doubled:
        mismatches.append(f"{doubled} doubled rows or events")
    if wrong_id:
        mismatches.append(f"a 2xx named another ballot id than the store: {wrong_id[:5]}")
    if unknown:
        mismatches.append(f"{len(unknown)} submissions never got a definitive answer: {[o.code for o in unknown[:5]]}")
    bad_accepted = [o.code for o in outcomes if o.planted_bad and o.status == "accepted"]
    if bad_accepted:
        mismatches.append(f"planted bad submissions accepted: {bad_accepted[:5]}")
    return Reconciliation(
        seed=config.seed, submitted=len(outcomes), acknowledged=len(acked), rejected=len(refused),
        unknown=len(unknown), lost=len(lost), doubled=doubled, phantom=len(phantom),
        rejected_but_stored=len(rejected_but_stored), events_accepted=sum(events.values()),
        scoring_counted=sum(counted.values()), scoring_tally_n=tally_n, published_n=published_n,
        retries=intake.retries, ratings=ratings_check,
        answers=dict(Counter(a for o in [*outcomes, *ratings] for a in o.history)), faults=faults, intake_seconds=intake_seconds, converge_seconds=converge,
        mismatches=mismatches)


def reconcile_ratings(platform: Platform, cid: str, ratings: list[Rating], mismatches: list[str]) -> dict[str, int]:
    """Kiosk ratings: every dossier acknowledged is stored once in ballots, evented once, kept once by scoring."""
    acked = {r.dossier_id for r in ratings if r.status == "accepted"}
    refused = {r.dossier_id for r in ratings if r.status == "rejected"}
    stored = Counter(r["d"] for r in _rows(platform, "ballots", f"SELECT dossier_id AS d FROM online_ratings "
                                                                f"WHERE campaign_id = '{cid}'"))
    evented = Counter(r["d"] for r in _rows(platform, "ballots", (
        "SELECT jsonb_array_elements(body::jsonb->'data'->'ratings')->>'dossier_id' AS d FROM event_store "
        f"WHERE type LIKE '%.OnlineRatingsRecorded.%' AND body::jsonb->'data'->>'campaign_id' = '{cid}'")))
    kept = Counter(r["d"] for r in _rows(platform, "scoring", f"SELECT dossier_id AS d FROM sc_dossiers "
                                                              f"WHERE campaign_id = '{cid}'"))
    figures = {"acknowledged": len(acked), "refused": len(refused),
               "unknown": sum(r.status not in ("accepted", "rejected") for r in ratings),
               "lost": len(acked - set(stored)), "phantom": len(set(stored) - acked),
               "refused_but_stored": len(refused & set(stored)),
               "doubled": sum(n - 1 for c in (stored, evented, kept) for n in c.values() if n > 1),
               "evented": sum(evented.values()), "scoring_kept": sum(kept.values())}
    if set(evented) != acked or set(kept) != acked or any(figures[k] for k in (
            "unknown", "lost", "phantom", "refused_but_stored", "doubled")):
        mismatches.append(f"kiosk ratings: {figures}")
    if any(r.planted_bad and r.status == "accepted" for r in ratings):
        mismatches.append("a kiosk rating dated tomorrow was accepted")
    return figures


def by_code_of(stored: list[dict[str, Any]], code: str) -> str | None:
    return next((r["ballot_id"] for r in stored if r["code"] == code), None)


def _iter_seeds(text: str) -> Iterator[int]:
    for part in text.split(","):
        yield int(part)


def write_report(results: list[Reconciliation], command: str, out: Path) -> None:
    """Replace the "Fault-injection soak" section of docs/performance.md (or append it)."""
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    lines = ["## Fault-injection soak", "",
             f"Measured by `tests/reliability/chaos.py` (`make soak`). Date: "
             f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; command: `{command}`; commit {commit}.", "",
             "Each seed runs the whole platform as processes, submits its ballots from concurrent clients (online, "
             "paper keyed twice on the clerk pages and bulk import, plus kiosk ratings; each retried until "
             "definitive) while the seeded schedule "
             "SIGKILLs each service, restarts nats-server (gracefully and by SIGKILL), restarts PostgreSQL in "
             "immediate mode and deletes the ballots stream's durable consumers (every consumer is sent the whole "
             "stream again). Then it reconciles the 2xx answers with the ballots store, its event store, scoring's "
             "projection and tallies, and the published release.", "",
             "| Seed | Submitted | 2xx | Refused | Unknown | Lost | Doubled | Phantom | Refused but stored | "
             "Scoring counted | Published n | Kiosk ratings 2xx / lost / doubled | Retries | Intake under faults | "
             "Scoring caught up after | Slowest recovery |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for r in results:
        slow = max(r.faults, key=lambda f: f.recovered_after or 0.0)
        lines.append(f"| {r.seed} | {r.submitted:,} | {r.acknowledged:,} | {r.rejected:,} | {r.unknown} | "
                     f"**{r.lost}** | **{r.doubled}** | {r.phantom} | {r.rejected_but_stored} | "
                     f"{r.scoring_counted:,} | {r.published_n:,} | {r.ratings['acknowledged']:,} / "
                     f"{r.ratings['lost']} / {r.ratings['doubled']} | {r.retries:,} | {r.intake_seconds:.0f} s | "
                     f"{r.converge_seconds:.1f} s | {slow.kind} {slow.recovered_after or 0:.1f} s |")
    lines += ["", "Recovery time of each fault (from injecting it until every service answers `/readyz`), "
              "per seed:", ""]
    lines += ["| Seed | " + " | ".join(FAULTS) + " |", "|---:|" + "---:|" * len(FAULTS)]
    for r in results:
        by_kind: dict[str, list[float]] = {}
        for f in r.faults:
            by_kind.setdefault(f.kind, []).append(f.recovered_after or 0.0)
        lines.append(f"| {r.seed} | " + " | ".join(", ".join(f"{x:.1f} s" for x in by_kind.get(k, []))
                                                     for k in FAULTS) + " |")
    lines += ["", "What every HTTP try got (a status, or the client's error when the connection failed):", ""]
    lines += [f"- seed {r.seed}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.answers.items())) for r in results]
    verdict = "all clean" if all(r.clean for r in results) else "MISMATCHES: " + "; ".join(
        m for r in results for m in r.mismatches)
    lines += ["", f"Result: {verdict}.", ""]
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    section = "\n".join(lines)
    start = text.find("## Fault-injection soak")
    if start >= 0:
        end = text.find("\n## ", start + 3)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.write_text(text, encoding="utf-8")


def main() -> None:
    import argparse
    import sys
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ballots", type=int, default=10_000)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds, one whole run each")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="times each fault is applied per seed")
    parser.add_argument("--provinces", type=int, default=4)
    parser.add_argument("--out", type=Path, help="update this file's 'Fault-injection soak' section")
    args = parser.parse_args()
    results = []
    for seed in _iter_seeds(args.seeds):
        home = Path(tempfile.mkdtemp(prefix=f"sipas-soak-{seed}-"))
        config = ChaosConfig(home, seed=seed, ballots=args.ballots, clients=args.clients, rounds=args.rounds,
                             provinces=args.provinces)
        result = run_chaos(config)
        print(result.table(), flush=True)
        results.append(result)
    if args.out:
        write_report(results, "python -m tests.reliability.chaos " + " ".join(sys.argv[1:]), args.out)
    sys.exit(0 if all(r.clean for r in results) else 1)


if __name__ == "__main__":
    main()
