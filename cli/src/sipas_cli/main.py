"""``sipas``: the platform's command line (typer)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sipas_cli import demo, scoring_cmds, trace
from sipas_cli.platform import DEFAULT_PORTS, SERVICES, Platform
from sipas_cli.publishing_cmds import app as publishing
from sipas_cli.registry_client import REFERENCE, RegistryClient
from sipas_kit.auth import DevIdentity, Role

app = typer.Typer(help="SIPAS: citizen satisfaction with public administration, end to end.", no_args_is_help=True)
auth = typer.Typer(help="Development identity provider.", no_args_is_help=True)
docs = typer.Typer(help="Generated documentation.", no_args_is_help=True)
dlq = typer.Typer(help="Dead letters: events a consumer gave up on.", no_args_is_help=True)
projections = typer.Typer(help="Projections: positions, digests, rebuilds.", no_args_is_help=True)
app.add_typer(auth, name="auth")
app.add_typer(docs, name="docs")
app.add_typer(dlq, name="dlq")
app.add_typer(projections, name="projections")
registry = typer.Typer(help="Registry operator tasks: province maps, built-ins, imports, as_of, crosswalk.",
                       no_args_is_help=True)
app.add_typer(registry, name="registry")
sampling = typer.Typer(help="Sampling tasks: verify a draw offline.", no_args_is_help=True)
app.add_typer(sampling, name="sampling")
app.add_typer(publishing, name="publishing")
app.add_typer(scoring_cmds.app, name="scoring")
app.add_typer(trace.app, name="trace")
app.command("demo")(demo.command)
console = Console()


def home() -> Path:
    return Path(os.environ.get("SIPAS_HOME", ".sipas")).resolve()


@app.command()
def up(
    log_format: str = typer.Option("json", help="json or console logs in .sipas/logs"),
    port_base: int | None = typer.Option(None, help="use 8 consecutive ports from here instead of the defaults"),
    seed: bool = typer.Option(True, help="load the province maps and built-in instruments/schemes (idempotent)"),
    run_demo: bool = typer.Option(False, "--demo", help="on a fresh data folder, run `sipas demo` once ready"),
    demo_provinces: int = typer.Option(6, min=1, max=34, help="with --demo: provinces sampled (`--provinces`)"),
    demo_sample: int = typer.Option(40, min=20, help="with --demo: respondents sampled per agency (`--sample`)"),
) -> None:
    """Start PostgreSQL, NATS and the five services; stop everything on Ctrl-C."""
    ports = dict(DEFAULT_PORTS)
    if port_base is not None:
        ports = {name: port_base + i for i, name in enumerate(DEFAULT_PORTS)}
    platform = Platform(home(), ports=ports, log_format=log_format)
    fresh = not platform.home.exists()
    demo_run: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with console.status("Starting PostgreSQL and NATS…"):
            platform.start_infrastructure()
        with console.status("Migrating the five databases and starting each service on its own…"):
            platform.start_services()
            platform.wait_ready()
        if seed:
            with console.status("Loading reference data through the registry API…"):
                token = platform.identity.mint("seed@sipas-up", Role.MINISTRY_ADMIN, ttl=600)
                with RegistryClient(platform.url("registry"), token) as client:
                    built, maps = client.load_builtins(), client.load_maps()
            console.print(f"Reference data: {built.created + maps.created} commands applied, "
                          f"{built.unchanged + maps.unchanged} already in place.")
        _print_urls(platform)
        if run_demo and fresh and seed:
            console.print("A fresh data folder: running `sipas demo` to show a whole round (the platform stays up).")
            demo_run = subprocess.Popen([sys.executable, "-m", "sipas_cli.main", "demo", "--provinces",
                                         str(demo_provinces), "--sample", str(demo_sample),
                                         *(["--port-base", str(port_base)] if port_base is not None else [])],
                                        env=os.environ | {"SIPAS_HOME": str(platform.home)})
        elif run_demo:
            console.print("Run `sipas demo` in another terminal to drive a whole synthetic round.")
        while not stopping:
            for service, proc in list(platform.procs.items()):
                if proc.poll() is not None:
                    console.print(f"[red]{service} exited ({proc.returncode}); restarting[/red]")
                    platform.start_service(service)
            if demo_run is not None and demo_run.poll() is not None:
                if demo_run.returncode:
                    console.print(f"[red]The demo failed (exit {demo_run.returncode}); the platform is still up. "
                                  "`sipas demo` runs it again.[/red]")
                demo_run = None
            time.sleep(1)
    finally:
        if demo_run is not None and demo_run.poll() is None:
            demo_run.terminate()
            demo_run.wait(30)
        with console.status("Stopping…"):
            platform.stop()
        console.print("Stopped.")


def _print_urls(platform: Platform) -> None:
    table = Table(title="SIPAS is running")
    table.add_column("service")
    table.add_column("API")
    table.add_column("OpenAPI")
    for service in SERVICES:
        table.add_row(service, platform.url(service), platform.url(service) + "/docs")
    console.print(table)
    token = platform.identity.mint("admin@dev", Role.MINISTRY_ADMIN)
    console.print(f"PostgreSQL 127.0.0.1:{platform.ports['postgres']}  NATS {platform.nats_url}  "
                  f"logs {platform.home}/logs")
    console.print("A ministry-admin token for trying the APIs (8 hours):")
    console.print(token, soft_wrap=True)
    console.print("Ctrl-C stops everything.")


@app.command()
def migrate() -> None:
    """Upgrade every service database to head (embedded server unless SIPAS_DATABASE_URL is set)."""
    platform = Platform(home())
    platform.start_infrastructure()
    try:
        platform.migrate()
    finally:
        platform.stop()


@auth.command("token")
def token(
    role: Role = typer.Option(..., help="ministry-admin, province-operator, clerk, enumerator, auditor, partner"),
    province: str | None = typer.Option(None, help="two-digit province code (required for provincial roles)"),
    subject: str = typer.Option("dev-user", help="the user id the token names"),
    ttl: int = typer.Option(8 * 3600, help="seconds"),
) -> None:
    """Mint a development token signed by the local identity provider."""
    if role in (Role.PROVINCE_OPERATOR, Role.CLERK, Role.ENUMERATOR) and not province:
        raise typer.BadParameter(f"a {role} token needs --province", param_hint="--province")
    typer.echo(DevIdentity(home() / "keys").mint(subject, role, province, ttl))


def _ops(service: str, method: str, path: str, base_url: str | None) -> object:
    """Call a service's /v1/ops endpoint as a ministry admin of the local identity provider."""
    import httpx

    if service not in SERVICES:
        raise typer.BadParameter(f"one of {', '.join(SERVICES)}", param_hint="--service")
    base = base_url or f"http://127.0.0.1:{DEFAULT_PORTS[service]}"
    token = DevIdentity(home() / "keys").mint("operator@cli", Role.MINISTRY_ADMIN, ttl=300)
    resp = httpx.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    if resp.status_code >= 400:
        console.print(f"[red]{resp.status_code}[/red] {resp.text}")
        raise typer.Exit(1)
    return resp.json()


SERVICE_OPT = typer.Option(..., help="the consuming service: registry, sampling, ballots, scoring, publishing")
URL_OPT = typer.Option(None, help="the service's base URL (default: the local `sipas up` port)")


@dlq.command("list")
def dlq_list(service: str = SERVICE_OPT, status: str = typer.Option("dead", help="dead, replayed or discarded"),
             url: str | None = URL_OPT) -> None:
    """List dead letters of a service."""
    page = _ops(service, "GET", f"/v1/ops/dead-letters?status={status}", url)
    table = Table(title=f"{service}: dead letters ({status})")
    for col in ("id", "consumer", "position", "type", "attempts", "error"):
        table.add_column(col)
    for d in page["items"]:  # type: ignore[index]
        table.add_row(d["id"], d["consumer"], str(d["position"]), d["type"].split(".")[-2], str(d["deliveries"]),
                      d["error"][:80])
    console.print(table)


@dlq.command("replay")
def dlq_replay(dead_letter_id: str, service: str = SERVICE_OPT, url: str | None = URL_OPT) -> None:
    """Apply a dead-lettered event again, after its cause was fixed."""
    console.print(_ops(service, "POST", f"/v1/ops/dead-letters/{dead_letter_id}/replay", url))


@dlq.command("discard")
def dlq_discard(dead_letter_id: str, service: str = SERVICE_OPT, url: str | None = URL_OPT) -> None:
    """Close a dead letter without applying it."""
    console.print(_ops(service, "POST", f"/v1/ops/dead-letters/{dead_letter_id}/discard", url))


@projections.command("list")
def projections_list(service: str = SERVICE_OPT, url: str | None = URL_OPT) -> None:
    """Each projection's producer, position, row count and SHA-256 of its canonical export."""
    console.print(_ops(service, "GET", "/v1/ops/projections", url))


@projections.command("rebuild")
def projections_rebuild(name: str, service: str = SERVICE_OPT, url: str | None = URL_OPT) -> None:
    """Drop a projection and replay it from the streams; prints the new digest."""
    console.print(_ops(service, "POST", f"/v1/ops/projections/{name}/rebuild", url))


@docs.command("generate")
def docs_generate(out: Path = typer.Option(Path("docs"), help="docs folder")) -> None:
    """Write docs/events.md and docs/asyncapi.yaml from the event catalogue."""
    from sipas_events.docgen import write

    for path in write(out):
        console.print(f"wrote {path}")


@docs.command("check")
def docs_check(out: Path = typer.Option(Path("docs"), help="docs folder")) -> None:
    """Fail if the generated documents differ from the catalogue (drift)."""
    from sipas_events.docgen import drift

    stale = drift(out)
    if stale:
        for path in stale:
            console.print(f"[red]{path} is out of date: run `make docs`[/red]")
        raise typer.Exit(1)
    console.print("docs match the catalogue")


REGISTRY_URL = typer.Option(None, help="registry base URL (default: the local `sipas up` port)")
TOKEN_OPT = typer.Option(None, envvar="SIPAS_TOKEN", help="bearer token (default: a local ministry-admin token)")


def _registry(url: str | None, token: str | None) -> RegistryClient:
    bearer = token or DevIdentity(home() / "keys").mint("operator@cli", Role.MINISTRY_ADMIN, ttl=3600)
    return RegistryClient(url or f"http://127.0.0.1:{DEFAULT_PORTS['registry']}", bearer)


@registry.command("load-maps")
def registry_load_maps(data: Path = typer.Option(REFERENCE, help="folder with provinces-63.csv and provinces-34.csv"),
                       url: str | None = REGISTRY_URL, token: str | None = TOKEN_OPT) -> None:
    """Register the 63 provinces and apply the 2025 merger (34 provinces), as operator commands."""
    with _registry(url, token) as client:
        tally = client.load_maps(data)
    console.print(f"{tally.created} commands applied, {tally.unchanged} already done or unchanged")


@registry.command("load-builtins")
def registry_load_builtins(data: Path = typer.Option(REFERENCE, help="folder with instruments/ and schemes/"),
                           url: str | None = REGISTRY_URL, token: str | None = TOKEN_OPT) -> None:
    """Draft and publish the built-in instruments (sipas-2017, par-16) and schemes."""
    with _registry(url, token) as client:
        tally = client.load_builtins(data)
    console.print(f"{tally.created} published, {tally.unchanged} already published")


@registry.command("import")
def registry_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or XLSX"),
                    report: Path | None = typer.Option(None, help="write the per-row error report here (CSV)"),
                    url: str | None = REGISTRY_URL, token: str | None = TOKEN_OPT) -> None:
    """Import agencies from a file: all rows or none; prints the problems row by row."""
    with _registry(url, token) as client:
        r = client.import_file(file)
        body = r.json()
        if r.status_code == 201:
            console.print(f"[green]imported {body['rows']} rows[/green] (import {body['import_id']})")
            return
        if "errors" not in body or "report_url" not in body:
            console.print(f"[red]{r.status_code}[/red] {body.get('detail', r.text)}")
            raise typer.Exit(1)
        table = Table("row", "field", "value", "reason", title=body.get("detail"))
        for e in body["errors"]:
            table.add_row(str(e["row"]), e["field"], str(e["value"]), e["reason"])
        console.print(table)
        if report is not None:
            report.write_bytes(client.http.get(body["report_url"]).content)
            console.print(f"full report written to {report}")
    raise typer.Exit(1)


@registry.command("as-of")
def registry_as_of(day: str = typer.Argument(..., help="YYYY-MM-DD"),
                   level: str | None = typer.Option(None, help="province, department, commune, …"),
                   province: str | None = typer.Option(None, help="two-digit province code"),
                   url: str | None = REGISTRY_URL, token: str | None = TOKEN_OPT) -> None:
    """The units valid on a date, named as they were then."""
    with _registry(url, token) as client:
        items = client.as_of(day, level=level or "", province=province or "")
    table = Table("code", "name", "level", "valid from", "valid to", "id", title=f"{len(items)} units on {day}")
    for u in items:
        table.add_row(u["code"], u["name"], u["level"], u["valid_from"], u["valid_to"] or "", u["agency_id"])
    console.print(table)


@registry.command("crosswalk")
def registry_crosswalk(agency_id: str, url: str | None = REGISTRY_URL, token: str | None = TOKEN_OPT) -> None:
    """What a unit became and came from, with dates and legal bases."""
    with _registry(url, token) as client:
        doc = client.crosswalk(agency_id)
    console.print(f"[bold]{doc['agency']['code']} {doc['agency']['name']}[/bold]")
    for direction in ("predecessors", "successors"):
        for link in doc[direction]:
            console.print(f"  {direction[:-1]} {link['code']} {link['name']} ({link['kind']}, "
                          f"{link['effective_date']}, {link['legal_basis']})")


@sampling.command("verify-draw")
def sampling_verify_draw(frame: Path = typer.Argument(..., exists=True, dir_okay=False,
                                                      help="the frame, or a resident stage's frame (CSV/XLSX)"),
                         kit: Path = typer.Argument(..., exists=True, dir_okay=False,
                                                    help="the draw's verification kit (JSON from "
                                                         "GET /v1/draws/{id}/verification)")) -> None:
    """Re-run a draw (or a resident stage) offline from its frame and the revealed seed; exit 1 unless it matches."""
    import json

    from sipas_cli.verify_draw import verify

    verdict = verify(frame, json.loads(kit.read_text(encoding="utf-8")))
    for note in verdict.notes:
        console.print(note)
    if verdict.ok:
        console.print(f"[green]the draw matches[/green]: {verdict.units_checked} units re-drawn from the seed")
        return
    for problem in verdict.problems:
        console.print(f"[red]{problem}[/red]")
    raise typer.Exit(1)


@publishing.command("verify-release")
def publishing_verify_release(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="the release file (GET /v1/releases/{id}/manifest)"),
    public_key: str | None = typer.Option(None, "--public-key", help="the publisher's Ed25519 public key: hex, or "
                                          "a PEM file (GET /v1/keys); without it only integrity is checked"),
) -> None:
    """Check a release offline: hash, Ed25519 signature and figures digest; exit 1 on any mismatch."""
    from sipas_cli.verify_release import verify_file

    verdict = verify_file(file, public_key)
    if verdict.ok:
        console.print(f"[green]the release verifies[/green]: {verdict.figures} figures, key {verdict.key_id}")
        if verdict.audit_heads:
            console.print("audit-chain heads when drafted (signed; GET /v1/audit/verify?upto=<position> on each "
                          "service must give the same head):")
            for service, head in verdict.audit_heads.items():  # one line each, whatever the width: a head is
                # compared with what the service answers, and copied
                console.print(f"  {service:<11} position {head['position']:>8}  head {head['head']}", soft_wrap=True)
        return
    for problem in verdict.problems:
        console.print(f"[red]{problem}[/red]")
    raise typer.Exit(1)


if __name__ == "__main__":
    app()
