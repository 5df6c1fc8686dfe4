"""``sipas demo``: a whole synthetic round through the public APIs, as the people who run one would.

Registry → sampling → ballots through every channel (with bad ones turned away) → back-checks catching
a fabricating enumerator → scoring → a release drafted, approved by someone else and published → a
partner's webhook. It needs a running platform (``sipas up``) whose reference data is loaded, and the
local identity provider's keys (``.sipas/keys``) to sign its people in. Each run opens a new campaign.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sipas_cli.demo import fieldwork, quality, registry, release, sampling
from sipas_cli.demo.answers import Instrument, Respondents
from sipas_cli.demo.client import ORGANISER, Api, DemoError
from sipas_cli.demo.model import Round
from sipas_cli.demo.receiver import Receiver
from sipas_cli.demo.summary import print_summary
from sipas_cli.platform import DEFAULT_PORTS, SERVICES
from sipas_kit.auth import DevIdentity

__all__ = ["DemoConfig", "DemoError", "command", "run_demo"]
# The provinces sampled first: the five centrally-run cities and a spread of regions; then the rest.
FIRST = ["01", "79", "48", "31", "92", "22", "46", "40", "66", "56", "38", "75", "11", "96"]
VIETNAM = dt.timezone(dt.timedelta(hours=7))


@dataclass
class DemoConfig:
    urls: dict[str, str]
    home: Path
    provinces: int = 6
    sample: int = 40               # respondents sampled per agency (the campaign's cap per unit)
    agencies: int = 2              # agencies per province measured by the campaign (of the four registered)
    register_all: bool = True      # register demo units in all 34 provinces, not only the sampled ones
    kiosk_ratings: int = 20        # per agency
    workers: int = 4
    seed: int | None = None
    tag: str = field(default_factory=lambda: dt.datetime.now(VIETNAM).strftime("D%m%d-%H%M-") + secrets.token_hex(2))


def urls_for(port_base: int | None) -> dict[str, str]:
    ports = dict(DEFAULT_PORTS) if port_base is None else {n: port_base + i for i, n in enumerate(DEFAULT_PORTS)}
    return {s: f"http://127.0.0.1:{ports[s]}" for s in SERVICES}


class Steps:
    def __init__(self, console: Console) -> None:
        self.console, self.number = console, 0

    def header(self, text: str) -> None:
        self.number += 1
        self.console.rule(f"[bold]{self.number}. {text}")

    @contextmanager
    def bar(self, what: str, total: int | None) -> Iterator[Callable[[], None]]:
        with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=False) as progress:
            task = progress.add_task(what, total=total)
            yield lambda: progress.advance(task)


def run_demo(config: DemoConfig, console: Console | None = None) -> Round:
    """Drive one round; returns what it learned (raises ``DemoError`` naming the step that failed)."""
    console = console or Console()
    identity = DevIdentity(config.home / "keys")
    if not identity.private_path.exists():
        raise DemoError(f"no development keys in {config.home / 'keys'}: run `sipas up` first (or set SIPAS_HOME)")
    if config.sample < 20:
        raise DemoError("--sample must be at least 20: each agency needs ballots for every channel")
    api = Api(config.urls, identity)
    receiver = Receiver().start()
    try:
        return _run(api, config, console, receiver)
    finally:
        receiver.stop()
        api.close()


def _run(api: Api, config: DemoConfig, console: Console, receiver: Receiver) -> Round:
    started = time.monotonic()
    rng = random.Random(config.seed if config.seed is not None else config.tag)  # noqa: S311 - synthetic data
    steps = Steps(console)
    for service, url in config.urls.items():
        if api.http.get(url + "/readyz").status_code != 200:
            raise DemoError(f"{service} at {url} is not ready: start the platform with `sipas up`")
    today = dt.datetime.now(VIETNAM).date()
    names = registry.provinces_today(api)
    chosen = [p for p in FIRST + sorted(names) if p in names]
    chosen = list(dict.fromkeys(chosen))[:config.provinces]
    rnd = Round(tag=config.tag, year=registry.windows(today)[0][0].year, today=today, provinces=chosen,
                province_names=names)
    definition = next(d["definition"] for d in api.get("ballots", "/v1/reference/definitions", ORGANISER)
                      if d["kind"] == "instrument" and d["def_id"] == "sipas-2017")
    people = Respondents(rng.randrange(2**32), Instrument.of(definition))
    console.print(f"Demo round [bold]{rnd.tag}[/bold]: {len(chosen)} provinces sampled "
                  f"({', '.join(names[p] for p in chosen)}), {config.agencies} agencies each, "
                  f"{config.sample} respondents sampled per agency.")

    steps.header("Registry: provinces register their units; the ministry opens the round")
    register = sorted(names) if config.register_all else chosen
    with steps.bar("provinces importing their units", len(register)) as tick:
        created = registry.register_units(api, rnd, register, tick)
    registry.open_campaign(api, rnd, config.agencies, config.sample)
    console.print(f"  {created} units registered ({sum(len(v) for v in rnd.agencies.values()) - created} were "
                  f"there from an earlier run); campaign {rnd.campaign_id} measures {len(rnd.targets)} agencies.")

    steps.header("Sampling: frames, plans approved, seeds committed then revealed")
    with steps.bar("frames uploaded, plans approved", len(chosen)) as tick:
        plans = sampling.upload_frames(api, rnd, rng, config.sample, tick,
                                       config.home / "demo" / f"frames-{rnd.campaign_id}")
    registry.advance(api, rnd, "sample_approved", "plans approved for every province")
    with steps.bar("draws committed and revealed", len(plans)) as tick:
        sampling.draw(api, rnd, plans, tick)
    registry.advance(api, rnd, "fieldwork_open", "ballots printed and handed out")
    for d in rnd.draws:
        console.print(f"  {names[d.province]}: {d.rows} dossiers kept, {d.rejected_rows} bad rows refused "
                      f"(see the frame's report.csv); {d.selected} sampled; seed SHA-256 {d.seed_commitment[:16]}…")

    steps.header("Ballots: codes off the printed sheets, answers through every channel")
    with steps.bar("ballot sheets printed and read", len(rnd.targets)) as tick:
        fieldwork.collect_codes(api, rnd, tick)
    plan = fieldwork.assign(rnd, rng)
    with steps.bar("online answers", len(plan.online) - 2) as tick:
        fieldwork.online(api, rnd, people, rng, plan.online, config.workers, tick)
    with steps.bar("paper ballots keyed twice", len(plan.paper) - 1) as tick:
        fieldwork.paper(api, rnd, people, rng, plan.paper, config.workers, tick)
    with steps.bar("enumerators' batches imported", len(chosen)) as tick:
        fieldwork.imports(api, rnd, people, rng, plan.imported, tick)
    with steps.bar("kiosk rating batches", len(chosen)) as tick:
        fieldwork.kiosks(api, rnd, people, rng, config.kiosk_ratings, tick)
    registry.advance(api, rnd, "fieldwork_closed", "collection window over")

    steps.header("Back-checks: call-backs drawn from a seed catch a fabricator")
    with steps.bar("call-backs recorded, flags reviewed", None) as tick:
        quality.scan_and_backcheck(api, rnd, tick)
    quality.adjust_weights(api, rnd)

    steps.header("Scoring and publishing: freeze, four eyes, publish, tell a partner")
    partner = release.Partner(api, rnd, receiver)
    with console.status("  waiting for the figures to reflect every ballot…"):
        release.freeze(api, rnd)
    registry.advance(api, rnd, "scores_frozen", f"snapshot {rnd.snapshot['snapshot_id']}")
    console.print(f"  snapshot {rnd.snapshot['snapshot_id']}: figures SHA-256 {rnd.snapshot['digest'][:16]}…, at "
                  f"positions {rnd.snapshot['positions']} of the producers' hash chains")
    release.publish(api, rnd, partner)
    with console.status("  waiting for the partner's webhook…"):
        release.check_as_partner(api, rnd, partner, receiver, config.home)
    registry.advance(api, rnd, "closed", f"release {rnd.release['release_id']} published")

    steps.header(f"Summary (the whole round took {time.monotonic() - started:.0f} s)")
    print_summary(console, rnd)
    return rnd


def command(
    provinces: int = typer.Option(6, min=1, max=34, help="provinces sampled (all 34 get their units registered)"),
    sample: int = typer.Option(40, min=20, help="respondents sampled per agency (frames list 3-6 times as many)"),
    agencies: int = typer.Option(2, min=1, max=4, help="agencies per province in the campaign"),
    port_base: int | None = typer.Option(None, help="the platform's --port-base (default: the `sipas up` ports)"),
    seed: int | None = typer.Option(None, help="seed of the synthetic people and answers (default: per run)"),
    workers: int = typer.Option(4, min=1, max=32, help="respondents and clerks working at once"),
) -> None:
    """Drive a whole synthetic round through the public APIs, then print the report URL and a summary."""
    home = Path(os.environ.get("SIPAS_HOME", ".sipas")).resolve()
    config = DemoConfig(urls_for(port_base), home, provinces=provinces, sample=sample, agencies=agencies, seed=seed,
                        workers=workers)
    console = Console()
    try:
        run_demo(config, console)
    except DemoError as exc:
        console.print(f"[red]The demo stopped:[/red] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[yellow]The demo was interrupted; its campaign stays as far as it got.[/yellow]")
        raise typer.Exit(130) from None
