"""``sipas scoring …``: read a campaign's figures, export them, freeze a snapshot, compare years."""

from __future__ import annotations

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

app = typer.Typer(help="Scoring: current figures, exports, snapshots, comparisons across years.",
                  no_args_is_help=True)
console = Console()
URL = typer.Option(None, help="scoring base URL (default: the local `sipas up` port)")
TOKEN = typer.Option(None, envvar="SIPAS_TOKEN", help="bearer token (default: a local ministry-admin token)")


def _call(method: str, path: str, url: str | None, token: str | None, **params: Any) -> httpx.Response:
    home = Path(os.environ.get("SIPAS_HOME", ".sipas"))
    bearer = token or DevIdentity(home / "keys").mint("operator@cli", Role.MINISTRY_ADMIN, ttl=600)
    base = url or f"http://127.0.0.1:{DEFAULT_PORTS['scoring']}"
    resp = httpx.request(method, base + path, params={k: v for k, v in params.items() if v is not None},
                         headers={"Authorization": f"Bearer {bearer}"}, timeout=300)
    if resp.status_code >= 400:
        console.print(f"[red]{resp.status_code}[/red] {resp.text}")
        raise typer.Exit(1)
    return resp


def _ci(figure: dict[str, Any]) -> str:
    ci = figure.get("ci")
    return f"{ci[0]}-{ci[1]}" if ci else ""


@app.command("scores")
def scores(campaign_id: str, level: str | None = typer.Option(None, help="national, province or agency"),
           province: str | None = typer.Option(None, help="one province's units"),
           fmt: str = typer.Option("table", "--format", help="table, json, csv or xlsx"),
           out: Path | None = typer.Option(None, help="write the export here (csv/xlsx/json)"),
           url: str | None = URL, token: str | None = TOKEN) -> None:
    """A campaign's current (provisional) figures with n, intervals, suppression and ranks."""
    wire = "json" if fmt == "table" else fmt
    resp = _call("GET", f"/v1/campaigns/{campaign_id}/scores", url, token, level=level, province=province, format=wire)
    if fmt != "table":
        if out is None:
            typer.echo(resp.text if wire != "xlsx" else "xlsx is binary: give --out FILE")
            return
        out.write_bytes(resp.content)
        console.print(f"wrote {out} ({len(resp.content)} bytes)")
        return
    body = resp.json()
    table = Table(title=f"{campaign_id} — {body['scheme']['id']} v{body['scheme']['version']} "
                        f"(positions {body['positions']}, digest {body['digest'][:12]}…)")
    for column in ("level", "unit", "name", "index", "95% CI", "weighted", "n", "rank (best-worst)", "suppressed"):
        table.add_column(column)
    for row in body["units"]:
        figure, rank = row["overall"], row.get("rank") or {}
        weighted = figure.get("weighted") or {}
        table.add_row(row["level"], row["id"], row.get("name") or "", figure.get("value") or "—", _ci(figure),
                      weighted.get("value") or "", str(figure.get("n", "")),
                      f"{rank['rank']} ({rank['best']}-{rank['worst']}/{rank['of']})" if rank else "",
                      row.get("suppressed") or "")
    console.print(table)


@app.command("refresh")
def refresh(campaign_id: str, url: str | None = URL, token: str | None = TOKEN) -> None:
    """Recompute a campaign's figures now (the worker does it within seconds anyway)."""
    console.print_json(json.dumps(_call("POST", f"/v1/campaigns/{campaign_id}/scores/refresh", url, token).json()))


@app.command("snapshot")
def snapshot(campaign_id: str, url: str | None = URL, token: str | None = TOKEN) -> None:
    """Freeze the figures: records the stream positions and chain heads they cover."""
    console.print_json(json.dumps(_call("POST", f"/v1/campaigns/{campaign_id}/snapshots", url, token).json()))


@app.command("compare")
def compare(campaign_id: str, against: str = typer.Option(..., help="the earlier campaign"),
            url: str | None = URL, token: str | None = TOKEN) -> None:
    """This campaign beside an earlier one restated on today's provinces."""
    body = _call("GET", f"/v1/campaigns/{campaign_id}/comparison", url, token, against=against).json()
    table = Table(title=f"{against} → {campaign_id} ({body['years'][0]} → {body['years'][1]})")
    for column in ("province", "name", "earlier", "restated from", "now", "change"):
        table.add_column(column)
    for u in body["units"]:
        earlier = u["earlier"]
        table.add_row(u["id"], u.get("name") or "", earlier["value"] or "—",
                      ("+".join(earlier["from"]) + (" (split)" if earlier["split"] else "")) if earlier["restated"]
                      else "", u["current"]["value"] or "—", u["change"] or "")
    console.print(table)
