"""``sipas publishing …``: the release workflow from the command line — draft from a snapshot, submit,
approve (someone else: four eyes), publish now or at an embargo time, retract with a reason, list —
beside ``verify-release`` (offline, in main.py).

Each person acts as themselves: ``--token`` (or ``SIPAS_TOKEN``), or on a development platform a
local ministry-admin token for ``--as`` (``SIPAS_USER``), so the drafter and the approver differ.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from sipas_cli.platform import DEFAULT_PORTS
from sipas_kit.auth import DevIdentity, Role

app = typer.Typer(help="Publishing: the release workflow (four eyes, embargo, retraction) and offline verification.",
                  no_args_is_help=True)
console = Console()
URL = typer.Option(None, help="publishing base URL (default: the local `sipas up` port)")
TOKEN = typer.Option(None, envvar="SIPAS_TOKEN", help="bearer token (default: a local ministry-admin token for --as)")
AS = typer.Option("operator@cli", "--as", envvar="SIPAS_USER",
                  help="who acts, for the local development token (the drafter cannot approve)")
JSON = typer.Option(False, "--json", help="print the API's JSON instead of a summary")


def _call(method: str, path: str, url: str | None, token: str | None, who: str, body: dict[str, Any] | None = None,
          **params: Any) -> Any:
    home = Path(os.environ.get("SIPAS_HOME", ".sipas"))
    bearer = token or DevIdentity(home / "keys").mint(who, Role.MINISTRY_ADMIN, ttl=600)
    base = url or f"http://127.0.0.1:{DEFAULT_PORTS['publishing']}"
    resp = httpx.request(method, base + path, json=body, params={k: v for k, v in params.items() if v is not None},
                         headers={"Authorization": f"Bearer {bearer}"}, timeout=120)
    if resp.status_code >= 400:
        try:
            problem = resp.json()
            console.print(f"[red]{resp.status_code} {problem.get('title', '')}[/red]: {problem.get('detail', '')}")
        except ValueError:
            console.print(f"[red]{resp.status_code}[/red] {resp.text}")
        raise typer.Exit(1)
    return resp.json()


def _show(release: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(release, ensure_ascii=False, indent=2))
        return
    people = ", ".join(f"{step} by {release[f'{step}_by']}" for step in ("drafted", "submitted", "approved",
                                                                           "published") if release.get(f"{step}_by"))
    when = {"scheduled": f" until {release.get('embargo_until')}", "published": f" at {release.get('published_at')}",
            "retracted": f": {(release.get('retraction') or {}).get('reason', '')}"}.get(release["status"], "")
    console.print(f"release [bold]{release['release_id']}[/bold] {release['status']}{when} ({people})",
                  soft_wrap=True)  # ids stay whole, for copying


@app.command("draft")
def draft(snapshot_id: str, title: str | None = typer.Option(None, help="default: SIPAS <year> — <campaign>"),
          supersedes: str | None = typer.Option(None, help="the published release this one corrects"),
          compare_with: str | None = typer.Option(None, help="an earlier campaign: year on year, restated on "
                                                             "today's provinces"),
          url: str | None = URL, token: str | None = TOKEN, who: str = AS, as_json: bool = JSON) -> None:
    """Draft a release from a score snapshot (its figures are checked against the snapshot's digest)."""
    body = {"snapshot_id": snapshot_id, "title": title, "supersedes": supersedes, "compare_with": compare_with}
    _show(_call("POST", "/v1/releases", url, token, who, {k: v for k, v in body.items() if v is not None}), as_json)


@app.command("submit")
def submit(release_id: str, url: str | None = URL, token: str | None = TOKEN, who: str = AS,
           as_json: bool = JSON) -> None:
    """Submit a draft for review."""
    _show(_call("POST", f"/v1/releases/{release_id}/submit", url, token, who), as_json)


@app.command("approve")
def approve(release_id: str, url: str | None = URL, token: str | None = TOKEN, who: str = AS,
            as_json: bool = JSON) -> None:
    """Approve a submitted release (not its drafter)."""
    _show(_call("POST", f"/v1/releases/{release_id}/approve", url, token, who), as_json)


@app.command("publish")
def publish(release_id: str, at: dt.datetime | None = typer.Option(
                None, formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"],
                help="embargo: publish at this time, with its offset (2026-12-15T08:00:00+07:00); now if absent"),
            url: str | None = URL, token: str | None = TOKEN, who: str = AS, as_json: bool = JSON) -> None:
    """Publish an approved release now, or schedule it for an embargo time: it is signed and frozen."""
    body = {"at": at.isoformat()} if at is not None else {}
    _show(_call("POST", f"/v1/releases/{release_id}/publish", url, token, who, body), as_json)


@app.command("retract")
def retract(release_id: str, reason: str = typer.Option(..., help="said on the report and to partners"),
            url: str | None = URL, token: str | None = TOKEN, who: str = AS, as_json: bool = JSON) -> None:
    """Retract a published release with a reason (it is never deleted; correct it with a new draft)."""
    _show(_call("POST", f"/v1/releases/{release_id}/retract", url, token, who, {"reason": reason}), as_json)


@app.command("list")
def list_releases(status: str | None = typer.Option(None, help="draft, submitted, approved, scheduled, published "
                                                                "or retracted"),
                  campaign: str | None = typer.Option(None, help="one campaign's releases"),
                  limit: int = typer.Option(50, min=1, max=500), url: str | None = URL, token: str | None = TOKEN,
                  who: str = AS, as_json: bool = JSON) -> None:
    """Releases, newest first (staff see drafts too)."""
    page = _call("GET", "/v1/releases", url, token, who, status=status, campaign_id=campaign, limit=limit)
    if as_json:
        typer.echo(json.dumps(page, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(page['items'])} releases" + (f" of {campaign}" if campaign else ""))
    table.add_column("release", no_wrap=True)  # whole, for copying into the next command
    for column in ("status", "title", "drafted by", "approved by", "published / embargo"):
        table.add_column(column)
    for r in page["items"]:
        status = r["status"] + (f", corrects {r['supersedes']}" if r.get("supersedes") else "") + (
            f", corrected by {r['superseded_by']}" if r.get("superseded_by") else "")
        table.add_row(r["release_id"], status, r["title"], r["drafted_by"], r.get("approved_by") or "",
                      r.get("published_at") or r.get("embargo_until") or "")
    console.print(table)
