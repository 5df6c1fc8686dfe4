"""The end of the round: what came in by channel, the planted rejections, the published index, the release."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sipas_cli.demo.model import CHANNELS, Round

FACTORS = ("F1", "F2", "F3", "F4", "F5")
CHANNEL_NAMES = {"online": "online (respondent)", "paper": "paper, keyed twice", "import": "enumerators' import",
                 "kiosk": "kiosk ratings (766)"}


def _ci(figure: dict[str, Any]) -> str:
    ci = figure.get("ci")
    return f"{ci[0]} - {ci[1]}" if ci else ""


def print_summary(console: Console, rnd: Round) -> None:
    _intake(console, rnd)
    checks = rnd.backchecks
    console.print(f"Quality: flags raised {checks.get('flags') or 'none'}; back-checks drawn per enumerator "
                  f"{checks.get('drawn', {})}; outcomes {checks.get('outcomes', {})}; reviews "
                  f"{checks.get('reviewed', {})}. Fabricating enumerator: [bold]{rnd.fabricator}[/bold].")
    if rnd.ratings:
        console.print(f"Kiosk ratings: {rnd.ratings['recorded']} recorded; a retried batch changed nothing "
                      f"({rnd.ratings['repeats_ignored']} repeats ignored).")
    planted = Table(title="Bad submissions planted on purpose", title_justify="left")
    for column in ("channel", "what", "expected", "platform answered"):
        planted.add_column(column)
    for p in rnd.ledger.planted:
        mark = "[green]" if p.expected == p.actual else "[red]"
        planted.add_row(p.channel, p.what, p.expected, f"{mark}{p.actual}[/]")
    console.print(planted)
    _index(console, rnd)
    _release(console, rnd)


def _intake(console: Console, rnd: Round) -> None:
    led = rnd.ledger
    table = Table(title=f"Ballots of campaign {rnd.campaign_id}: {rnd.progress.get('issued', 0)} codes issued to "
                        f"sampled units, {rnd.handed_out.get('none', 0)} never answered", title_justify="left")
    for column in ("channel", "codes", "submitted", "accepted", "rejected (reason x n)", "voided"):
        table.add_column(column, justify="left" if column in ("channel", "rejected (reason x n)") else "right")
    for channel in CHANNELS:
        reasons = ", ".join(f"{r} x {n}" for r, n in sorted(led.rejected[channel].items())) or "—"
        table.add_row(CHANNEL_NAMES[channel], str(rnd.handed_out.get(channel, "")), str(led.submitted[channel]),
                      str(led.accepted[channel]), reasons, str(led.voided[channel]) if channel != "kiosk" else "")
    rejected = rnd.progress.get("rejected_by_reason", {})
    table.add_row("[bold]ballots service says[/bold]", str(rnd.progress.get("issued", "")), "",
                  str(rnd.progress.get("valid", "")), ", ".join(f"{r} x {n}" for r, n in sorted(rejected.items())),
                  str(sum(s["voided"] for s in rnd.enumerator_stats)))
    console.print(table)


def _index(console: Console, rnd: Round) -> None:
    table = Table(title=f"Published index — {rnd.release.get('title', '')}", title_justify="left")
    for column in ("rank (best-worst)", "province", "index %", "95% CI", "n", *FACTORS):
        table.add_column(column, justify="left" if column in ("rank (best-worst)", "province", "95% CI") else "right")
    national = rnd.national.get("overall") or {}
    table.add_row("", "[bold]Cả nước (mean of provinces)[/bold]", str(national.get("value") or "—"), _ci(national),
                  str(national.get("n", "")), *[""] * len(FACTORS))
    for unit in rnd.provinces_published:
        figure, rank = unit.get("overall") or {}, unit.get("rank") or {}
        name = unit.get("name") or rnd.province_names.get(unit["id"], unit["id"])
        factors = unit.get("factors") or {}
        table.add_row(f"{rank['rank']} ({rank['best']}-{rank['worst']})" if rank else "—", name,
                      str(figure.get("value") or unit.get("suppressed") or "—"), _ci(figure), str(figure.get("n", "")),
                      *[str((factors.get(f) or {}).get("value") or "—") for f in FACTORS])
    console.print(table)


def _release(console: Console, rnd: Round) -> None:
    release = rnd.release
    console.print(f"Release [bold]{release.get('release_id')}[/bold]: drafted by {release.get('drafted_by')}, "
                  f"approved by {release.get('approved_by')} (the drafter was refused: "
                  f"{release.get('four_eyes_refusal')}), published {release.get('published_at')}.")
    verified = "verified" if rnd.manifest_ok else "NOT verified"
    console.print(f"Manifest SHA-256 [bold]{release.get('manifest_sha256')}[/bold]: hash, signature and figures "
                  f"digest {verified} against the key at /v1/keys. Check it yourself:")
    console.print(f"  sipas publishing verify-release {rnd.manifest_path} --public-key {rnd.public_key}",
                  soft_wrap=True)
    if rnd.webhook:
        console.print(f"Partner webhook: {rnd.webhook['type']} (event {rnd.webhook['event_id']}), HMAC "
                      f"{'valid' if rnd.webhook['signature_valid'] else 'INVALID'}.")
    if rnd.provinces_published:
        console.print("Trace a province's figure back to its ballots, units and draws (re-run from the frames):")
        console.print(f"  sipas trace figure {release.get('release_id')} {rnd.provinces_published[0]['id']} "
                      f"--frame {rnd.frames_folder}", soft_wrap=True)
    for note in rnd.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"\n[bold green]Public report:[/bold green] {rnd.report_url}", soft_wrap=True)
