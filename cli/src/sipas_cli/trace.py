"""``sipas trace``: walk one published figure back to the ballots, the sampled units and the draws it rests on.

Only the services' public and auditor APIs are read (an ``auditor`` token is enough), in this order:

1. publishing: the release (published) and its signed manifest, checked against the key at ``/v1/keys``;
2. the figure in the manifest (a province's, an agency's or the national index, with its n);
3. scoring: the snapshot the release was built from (``/v1/snapshots/{id}``): the same digest, positions and
   chain heads as the manifest records, the same figure;
4. ballots and sampling: their events up to the snapshot's positions (``/v1/events``); the hash chain is
   recomputed from the genesis over those events and must equal both the head the snapshot recorded and
   the producer's own ``/v1/events/chain?at=``;
5. the figure recomputed from those events with scoring's code (``CampaignFigures``: accepted minus voided
   ballots, the design and adjusted weights of the sampling events, the campaign's instrument and scheme
   from the registry) must equal the published one — value, exact fraction, n, intervals, rank;
6. every counted ballot was issued (``BallotIssued``) to the pseudonymous unit it came back from, and that
   unit was drawn (``SampleDrawn``/``UnitReplaced``) by the draw the ballot names;
7. each draw: the commitment (``DrawCommitted``) came before the reveal, sha256(seed) equals it, the
   manifest and the verification kit say the same; given the province's frame file, the draw is re-run
   (``sipas sampling verify-draw``) — the frame holds names and phones, so no API serves it.

``trace_figure`` returns a :class:`Trace` whose ``checks`` name every link and whether it held.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from sipas_events import canonical
from sipas_events.schema import GENESIS_HASH
from sipas_events.store import chain_hash
from sipas_kit.auth import DevIdentity, Role

__all__ = ["Check", "Trace", "TraceError", "trace_figure"]
COMPARED = ("ballots", "suppressed", "overall", "factors", "rank")  # what a recount must reproduce of a unit
PAGE = 5000


class TraceError(RuntimeError):
    """A link could not be read at all (the service refused or does not know the id)."""


@dataclass(frozen=True)
class Check:
    link: str
    ok: bool
    detail: str


@dataclass
class Trace:
    release_id: str
    unit: str
    level: str = ""
    name: str | None = None
    figure: dict[str, Any] = field(default_factory=dict)        # the published unit row
    recomputed: dict[str, Any] = field(default_factory=dict)    # the same row recomputed from the events
    snapshot: dict[str, Any] = field(default_factory=dict)      # id, positions, chain heads, digest
    ballots: list[str] = field(default_factory=list)            # the unit's counted ballots
    voided: list[str] = field(default_factory=list)             # the unit's ballots voided before the snapshot
    units: list[str] = field(default_factory=list)              # the pseudonymous units they were issued to
    draws: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.link}: {c.detail}" for c in self.checks if not c.ok]

    def check(self, link: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(link, ok, detail))
        return ok


class Reader:
    """GET calls to the five services as one signed-in person."""

    def __init__(self, urls: Mapping[str, str], token: str, timeout: float = 120.0) -> None:
        self.urls = dict(urls)
        self.http = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {token}"})

    def get(self, service: str, path: str, **params: Any) -> Any:
        r = self.http.get(self.urls[service] + path, params=params)
        if r.status_code != 200:
            raise TraceError(f"GET {service} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def events(self, service: str, upto: int) -> list[dict[str, Any]]:
        """The producer's events at positions 1..upto, in order."""
        out: list[dict[str, Any]] = []
        after = 0
        while after < upto:
            events = self.get(service, "/v1/events", after=after, limit=min(PAGE, upto - after))["events"]
            if not events:
                break
            out.extend(e for e in events if e["position"] <= upto)
            after = events[-1]["position"]
        return out

    def close(self) -> None:
        self.http.close()


def name_of(event: Mapping[str, Any]) -> str:
    return str(event["type"]).split(".")[-2]


def chain_over(events: Sequence[Mapping[str, Any]]) -> tuple[int, str, str | None]:
    """Recompute a producer's hash chain from the genesis: (last position, head hex, problem or None).
    Each link hashes the stored body, which is the canonical envelope without ``position``."""
    previous, position = GENESIS_HASH, 0
    for e in events:
        if e["position"] != position + 1:
            return position, previous.hex(), f"position {position + 1} is missing from the events served"
        body = canonical.dumps({k: v for k, v in e.items() if k != "position"})
        previous, position = chain_hash(previous, e["position"], body), e["position"]
    return position, previous.hex(), None


def _same(a: Any, b: Any) -> bool:
    return canonical.dumps(a) == canonical.dumps(b)


def _differences(published: Mapping[str, Any], recomputed: Mapping[str, Any]) -> list[str]:
    out = []
    for key in COMPARED:
        if not _same(published.get(key), recomputed.get(key)):
            if key == "overall":
                mine, theirs = recomputed.get(key) or {}, published.get(key) or {}
                parts = [f"{k} {theirs.get(k)!r} published, {mine.get(k)!r} recomputed"
                         for k in sorted(set(mine) | set(theirs)) if not _same(mine.get(k), theirs.get(k))]
                out.append("overall: " + "; ".join(parts))
            else:
                out.append(key)
    return out


def _figure_text(row: Mapping[str, Any]) -> str:
    overall = row.get("overall") or {}
    value = overall.get("value") if overall.get("value") is not None else f"withheld ({row.get('suppressed')})"
    return f"{value} (n={overall.get('n')}, exact {overall.get('exact')}, 95% CI {overall.get('ci')})"


def trace_figure(urls: Mapping[str, str], token: str, release_id: str, unit: str, *,
                 release_file: Mapping[str, Any] | None = None, frames: Iterable[Path] = ()) -> Trace:
    """Walk ``unit``'s figure (a province code, an agency id or ``national``) of a published release back to
    its ballots and draws. ``release_file``: check a downloaded release file (as its holder has it) instead
    of the one publishing serves now. ``frames``: frame files to re-run the draws from."""
    reader = Reader(urls, token)
    try:
        return _trace(reader, release_id, unit, release_file, list(frames))
    finally:
        reader.close()


def _trace(api: Reader, release_id: str, unit: str, release_file: Mapping[str, Any] | None,
           frames: list[Path]) -> Trace:
    from sipas_publishing.domain.manifest import figures_digest, verify

    t = Trace(release_id, unit)
    # 1. The release and its signed manifest.
    release = api.get("publishing", f"/v1/releases/{release_id}")
    t.check("release", release["status"] == "published",
            f"release {release_id} is {release['status']} (campaign {release['campaign_id']})")
    served = api.get("publishing", f"/v1/releases/{release_id}/manifest")
    held = dict(release_file) if release_file is not None else served
    key = api.get("publishing", "/v1/keys")["keys"][0]["public_key"]
    verdict = verify(held, bytes.fromhex(key))
    theirs = release.get("manifest_sha256")
    t.check("signature", verdict.ok and held.get("sha256") == theirs,
            "; ".join(verdict.problems) if not verdict.ok else
            f"manifest SHA-256 {str(held.get('sha256'))[:16]}…, Ed25519 by key {verdict.key_id}"
            if held.get("sha256") == theirs else f"a valid release file, but not this release's ({theirs})")
    manifest = held.get("manifest") or {}
    figures = manifest.get("figures") or {}
    campaign_id = figures.get("campaign_id") or release["campaign_id"]

    # 2. The figure.
    row = next((u for u in figures.get("units", []) if u["id"] == unit), None)
    if row is None:
        t.check("figure", False, f"the release has no unit {unit!r}")
        return t
    t.level, t.name, t.figure = row["level"], row.get("name"), row
    t.check("figure", True, f"{row['level']} {row.get('name') or unit}: {_figure_text(row)}")

    # 3. The snapshot it was built from.
    recorded = manifest.get("snapshot") or {}
    snap = api.get("scoring", f"/v1/snapshots/{recorded.get('snapshot_id')}", unit=unit)
    t.snapshot = {k: snap.get(k) for k in ("snapshot_id", "taken_at", "positions", "chain_heads", "digest")}
    agrees = (snap["digest"] == recorded.get("figures_digest") and snap["positions"] == recorded.get("positions")
              and snap["chain_heads"] == recorded.get("chain_heads"))
    frozen_row = next((u for u in snap["units"] if u["id"] == unit), None)
    t.check("snapshot", agrees and figures_digest(figures) == snap["digest"] and _same(frozen_row, row),
            f"snapshot {snap['snapshot_id']} digest {snap['digest'][:16]}… at positions {snap['positions']}"
            if agrees else "the manifest's snapshot (digest, positions or chain heads) differs from scoring's")
    if figures_digest(figures) != snap["digest"]:
        t.check("figures digest", False, "the manifest's figures do not hash to the snapshot's digest")
    if not _same(frozen_row, row):
        t.check("snapshot figure", False, f"scoring froze {_figure_text(frozen_row or {})}, the release shows "
                                          f"{_figure_text(row)}")

    # 4. The producers' events up to those positions, and their hash chains.
    events: dict[str, list[dict[str, Any]]] = {}
    for producer in ("ballots", "sampling"):
        at = int(snap["positions"].get(producer, 0))
        events[producer] = api.events(producer, at)
        last, head, gap = chain_over(events[producer])
        served_head = api.get(producer, "/v1/events/chain", at=at)["chain_hash"] if at else GENESIS_HASH.hex()
        recorded_head = snap["chain_heads"].get(producer)
        t.check(f"{producer} chain", gap is None and last == at and head == recorded_head == served_head,
                f"{at} events rehashed from the genesis: head {head[:16]}… = the snapshot's = {producer}'s own"
                if gap is None and head == recorded_head == served_head else
                gap or f"recomputed head {head[:16]}… at {last}, snapshot recorded {str(recorded_head)[:16]}…, "
                       f"{producer} serves {served_head[:16]}…")

    # 5. Recount with scoring's code.
    recount = Recount.of(api, campaign_id, events["ballots"], events["sampling"])
    mine = recount.unit_ballots(unit, row["level"])
    t.ballots = sorted(mine)
    t.voided = sorted(b for b, data in recount.voided.items() if recount.belongs(data, unit, row["level"]))
    document = recount.document()
    again: dict[str, Any] = next((u for u in document["units"] if u["id"] == unit), {})
    t.recomputed = again
    differences = _differences(row, again)
    t.check("recount", not differences,
            f"{len(mine)} ballots accepted, {len(t.voided)} voided: {_figure_text(again)} = the published figure"
            if not differences else "recomputed from the events differs: " + ", ".join(differences))

    # 6. Ballots → units → draws.
    problems = []
    for ballot_id in t.ballots:
        accepted = recount.accepted[ballot_id]
        issued = recount.issued.get(ballot_id)
        drawn = recount.drawn.get(accepted["unit_id"])
        if issued is None or issued["unit_id"] != accepted["unit_id"]:
            problems.append(f"ballot {ballot_id} was not issued to unit {accepted['unit_id']}")
        elif drawn is None or drawn["draw_id"] != accepted["weight_ref"]:
            problems.append(f"unit {accepted['unit_id']} was not drawn by {accepted['weight_ref']}")
    t.units = sorted({recount.accepted[b]["unit_id"] for b in t.ballots})
    t.check("units", not problems and bool(t.ballots),
            f"every ballot issued (BallotIssued) to its unit, every unit drawn (SampleDrawn): {len(t.units)} units"
            if not problems else "; ".join(problems[:5]) or "no ballots")

    # 7. The draws.
    used = sorted({recount.accepted[b]["weight_ref"] for b in t.ballots})
    _draws(api, t, used, recount, manifest.get("seed_commitments") or [], frames)
    return t


def _draws(api: Reader, t: Trace, used: list[str], recount: Recount, commitments: list[dict[str, Any]],
           frames: list[Path]) -> None:
    from sipas_cli.verify_draw import frame_rows, verify
    from sipas_sampling.domain.digest import frame_digest
    from sipas_sampling.domain.frame import Window

    bounds = recount.campaign["definition"]["frame_window"]
    window = Window(dt.date.fromisoformat(bounds["start"]), dt.date.fromisoformat(bounds["end"]))
    by_digest: dict[str, Path] = {}
    for path in frames:  # the province's file as sent: rows the upload refused are refused here too
        by_digest.setdefault(frame_digest(frame_rows(path, window)), path)
    published = {c["draw_id"]: c for c in commitments}
    for draw_id in used:
        revealed = recount.reveals.get(draw_id)
        committed = recount.commits.get(draw_id)
        info: dict[str, Any] = {"draw_id": draw_id}
        t.draws.append(info)
        if revealed is None or committed is None:
            t.check(f"draw {draw_id}", False, "no DrawCommitted and SampleDrawn for it before the snapshot")
            continue
        seed, commitment = revealed["data"]["seed"], committed["data"]["seed_commitment"]
        info.update(seed=seed, seed_commitment=commitment, frame_digest=revealed["data"]["frame_digest"],
                    committed_at=committed["position"], revealed_at=revealed["position"],
                    province=revealed["data"].get("province"))
        sealed = published.get(draw_id, {})
        kit = api.get("sampling", f"/v1/draws/{draw_id}/verification")
        problems = []
        if committed["position"] >= revealed["position"]:
            problems.append("the seed was revealed before it was committed")
        if hashlib.sha256(seed.encode()).hexdigest() != commitment:
            problems.append("sha256(seed) is not the commitment")
        if revealed["data"]["seed_commitment"] != commitment:
            problems.append("SampleDrawn names another commitment than DrawCommitted")
        if (sealed.get("seed"), sealed.get("seed_commitment"), sealed.get("frame_digest")) != (
                seed, commitment, revealed["data"]["frame_digest"]):
            problems.append(f"the manifest's seed or commitment for the draw ({str(sealed.get('seed'))[:12]}…, "
                            f"{str(sealed.get('seed_commitment'))[:12]}…) is not what sampling revealed")
        if (kit["seed"], kit["seed_commitment"]) != (seed, commitment):
            problems.append("the verification kit names another seed or commitment")
        in_kit = {u["unit_id"] for u in kit["units"]}
        missing = [u for u in t.units if recount.drawn.get(u, {}).get("draw_id") == draw_id and u not in in_kit]
        if missing:
            problems.append(f"{len(missing)} units are not in the draw's verification kit")
        t.check(f"draw {draw_id}", not problems,
                f"committed at sampling position {committed['position']}, revealed at {revealed['position']}; "
                f"sha256(seed {seed[:12]}…) = {commitment[:16]}… as the manifest seals"
                if not problems else "; ".join(problems))
        frame = by_digest.get(revealed["data"]["frame_digest"])
        if frame is None:
            info["rerun"] = None
            continue
        verdict = verify(frame, kit, window)
        info["rerun"] = verdict.ok
        t.check(f"re-run {draw_id}", verdict.ok,
                f"the draw re-run from {frame.name}: {verdict.units_checked} units, same sample and reserves"
                if verdict.ok else "; ".join(verdict.problems))


@dataclass
class Recount:
    """The campaign's counted ballots and their design as of the snapshot, from the producers' events."""

    basis: Any
    campaign: dict[str, Any]
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)   # ballot id -> BallotAccepted data
    voided: dict[str, dict[str, Any]] = field(default_factory=dict)     # ballot id -> its BallotAccepted data
    issued: dict[str, dict[str, Any]] = field(default_factory=dict)     # ballot id -> BallotIssued data
    drawn: dict[str, dict[str, Any]] = field(default_factory=dict)      # unit id -> draw_id, stratum, weight
    adjusted: dict[tuple[str, str], tuple[int, Fraction | None, int]] = field(default_factory=dict)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)    # draw id -> DrawCommitted event
    reveals: dict[str, dict[str, Any]] = field(default_factory=dict)    # draw id -> its first SampleDrawn event
    agencies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, api: Reader, campaign_id: str, ballots: list[dict[str, Any]],
           sampling: list[dict[str, Any]]) -> Recount:
        campaign = api.get("registry", f"/v1/campaigns/{campaign_id}")
        r = cls(basis=_basis(api, campaign), campaign=campaign)
        for e in ballots:
            data, kind = e["data"], name_of(e)
            if data.get("campaign_id") != campaign_id:
                continue
            if kind == "BallotIssued":
                r.issued[data["ballot_id"]] = data
            elif kind == "BallotAccepted" and data["ballot_id"] not in r.voided:
                r.accepted.setdefault(data["ballot_id"], data)  # counted once, as scoring does
            elif kind == "BallotVoided" and data["ballot_id"] in r.accepted:
                r.voided[data["ballot_id"]] = r.accepted.pop(data["ballot_id"])
            elif kind == "BallotVoided":
                r.voided[data["ballot_id"]] = {"agency_id": None}  # voided before accepted: never counted
        for e in sampling:
            data, kind = e["data"], name_of(e)
            if data.get("campaign_id") != campaign_id:
                continue
            if kind == "DrawCommitted":
                r.commits.setdefault(data["draw_id"], e)
            elif kind == "SampleDrawn":
                r.reveals.setdefault(data["draw_id"], e)
                for u in data["units"]:
                    r.drawn[u["unit_id"]] = {"draw_id": data["draw_id"], "stratum": u["stratum"],
                                             "weight": Fraction(Decimal(u["weight"]))}
            elif kind == "UnitReplaced":
                u = data["replacement"]
                r.drawn[u["unit_id"]] = {"draw_id": data["draw_id"], "stratum": u["stratum"],
                                         "weight": Fraction(Decimal(u["weight"]))}
            elif kind == "WeightsAdjusted":
                for s in data["strata"]:
                    key = (data["draw_id"], s["stratum"])
                    if key not in r.adjusted or r.adjusted[key][0] < data["revision"]:
                        final = None if s["final_weight"] is None else Fraction(Decimal(s["final_weight"]))
                        r.adjusted[key] = (data["revision"], final, int(s["population"]))
        ids = {b["agency_id"] for b in [*r.accepted.values(), *r.voided.values()] if b.get("agency_id")}
        r.agencies = {a: api.get("registry", f"/v1/agencies/{a}") for a in sorted(ids)}
        return r

    def agency_province(self, ballot: Mapping[str, Any]) -> str | None:
        agency = self.agencies.get(str(ballot.get("agency_id")))
        return str(agency["province"]) if agency and agency.get("province") else ballot.get("province")

    def belongs(self, ballot: Mapping[str, Any], unit: str, level: str) -> bool:
        if level == "national":
            return True
        if level == "agency":
            return ballot.get("agency_id") == unit
        return self.agency_province(ballot) == unit

    def unit_ballots(self, unit: str, level: str) -> list[str]:
        return [b for b, data in self.accepted.items() if self.belongs(data, unit, level)]

    def document(self) -> dict[str, Any]:
        """Scoring's figures document, computed from these ballots by scoring's own code (``load`` reads the
        same from scoring's projections)."""
        from sipas_scoring.application.figures import CampaignFigures, Counted
        from sipas_scoring.domain.scheme import Ballot
        from sipas_scoring.domain.tallies import ballot_tallies
        from sipas_scoring.projections.tallies import UNASSIGNED

        instrument = self.basis.instrument
        by_agency: dict[str, Counter[str]] = defaultdict(Counter)
        counted = []
        strata_seen: set[str] = set()
        for ballot_id in sorted(self.accepted):
            data = self.accepted[ballot_id]
            ballot = Ballot(ballot_id, dict(data["answers"]), frozenset(data.get("expectations") or []))
            agency_id = data.get("agency_id") or UNASSIGNED
            by_agency[agency_id].update(ballot_tallies(instrument, ballot))
            design = self.drawn.get(data["unit_id"])
            draw_id = (design or {}).get("draw_id") or data["weight_ref"]
            stratum = (design or {}).get("stratum") or data["stratum"]
            weight = (design or {}).get("weight")
            final = self.adjusted.get((draw_id, stratum))
            if final is not None and final[1] is not None:
                weight = final[1]
            strata_seen.add(f"{draw_id}|{stratum}")
            counted.append(Counted(ballot, agency_id, data.get("province"), f"{draw_id}|{stratum}", weight))
        population: dict[str, int] | None = {f"{d}|{s}": pop for (d, s), (_, _, pop) in self.adjusted.items()}
        if not strata_seen <= set(population or {}):
            population = None
        tallies = {a: +c for a, c in by_agency.items() if +c}
        agencies = {a: {"agency_id": a, "code": d.get("code"), "name": d.get("name"), "province": d.get("province")}
                    for a, d in self.agencies.items()}
        return CampaignFigures(self.basis, tallies, counted, agencies, population, []).document()


def _basis(api: Reader, campaign: Mapping[str, Any]) -> Any:
    """The campaign's instrument and scheme as scoring's domain reads them, from the registry."""
    from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
    from sipas_scoring.application.definitions import CampaignBasis, instrument_of, labels_of, scheme_of

    refs = {k: (campaign["definition"][k]["id"], int(campaign["definition"][k]["version"]))
            for k in ("instrument", "scheme")}
    inst = InstrumentDefinition.model_validate(api.get(
        "registry", f"/v1/instruments/{refs['instrument'][0]}/versions/{refs['instrument'][1]}")["definition"])
    scheme = SchemeDefinition.model_validate(api.get(
        "registry", f"/v1/schemes/{refs['scheme'][0]}/versions/{refs['scheme'][1]}")["definition"])
    if scheme.kind == "online-766":
        raise TraceError("online-766 figures count kiosk dossiers, not ballots: this trace follows ballots")
    return CampaignBasis(campaign_id=campaign["campaign_id"], year=campaign["year"], scope=campaign["scope"],
                         province=campaign["province"], instrument_ref=refs["instrument"], scheme_ref=refs["scheme"],
                         instrument=instrument_of(inst), scheme=scheme_of(scheme), labels=labels_of(inst))


# ---- the command ------------------------------------------------------------------------------------------
app = typer.Typer(help="Trace a published figure back to its ballots, sampled units and draws.", no_args_is_help=True)
console = Console()


@app.command("figure")
def figure_command(
    release_id: str = typer.Argument(..., help="a published release"),
    unit: str = typer.Argument(..., help="a province code (e.g. 01), an agency id, or national"),
    release_file: Path | None = typer.Option(None, "--release-file", exists=True, dir_okay=False,
                                             help="check this downloaded release file instead of the served one"),
    frames: list[Path] = typer.Option([], "--frame", exists=True,
                                      help="a frame file (or a folder of them) to re-run the draws from; repeatable"),
    port_base: int | None = typer.Option(None, help="the platform's --port-base (default: the `sipas up` ports)"),
    token: str | None = typer.Option(None, envvar="SIPAS_TOKEN", help="bearer token (default: a local auditor's)"),
    as_json: bool = typer.Option(False, "--json", help="print the trace as JSON"),
) -> None:
    """Walk one published figure back: release → snapshot → ballots' events and hash chain → recount →
    sampled units → the draws' seeds and commitments. Exit 1 if any link does not hold."""
    from sipas_cli.demo import urls_for

    home = Path(os.environ.get("SIPAS_HOME", ".sipas")).resolve()
    bearer = token or DevIdentity(home / "keys").mint("auditor@cli", Role.AUDITOR, ttl=3600)
    files = [f for p in frames for f in (sorted(p.glob("*.csv")) + sorted(p.glob("*.xlsx")) if p.is_dir() else [p])]
    held = json.loads(release_file.read_text(encoding="utf-8")) if release_file else None
    try:
        result = trace_figure(urls_for(port_base), bearer, release_id, unit, release_file=held, frames=files)
    except TraceError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"release_id": result.release_id, "unit": result.unit, "ok": result.ok,
                               "figure": result.figure.get("overall"), "recomputed": result.recomputed.get("overall"),
                               "snapshot": result.snapshot, "ballots": result.ballots, "voided": result.voided,
                               "units": result.units, "draws": result.draws,
                               "checks": [c.__dict__ for c in result.checks]}, ensure_ascii=False, indent=2))
    else:
        print_trace(console, result)
    if not result.ok:
        raise typer.Exit(1)


def print_trace(out: Console, t: Trace) -> None:
    table = Table(title=f"Trace of {t.level} {t.name or t.unit} in release {t.release_id}", title_justify="left")
    table.add_column("link")
    table.add_column("", justify="center")
    table.add_column("what was checked")
    for c in t.checks:
        table.add_row(c.link, "[green]✓[/green]" if c.ok else "[red]✗[/red]", c.detail)
    out.print(table)
    if t.units:
        out.print(f"Units (pseudonymous): {', '.join(t.units[:6])}{' …' if len(t.units) > 6 else ''}")
    for d in t.draws:
        rerun = {True: "re-run: same sample", False: "re-run: DIFFERS", None: "not re-run (no frame file given)"}
        out.print(f"Draw {d['draw_id']} ({d.get('province') or 'national'}): seed {d.get('seed')}, "
                  f"commitment {d.get('seed_commitment')}, {rerun[d.get('rerun')]}", soft_wrap=True)
    verdict = "[bold green]every link holds[/bold green]" if t.ok else "[bold red]a link does not hold[/bold red]"
    out.print(f"{verdict}: {len(t.checks)} checks, {len(t.problems)} problems")
