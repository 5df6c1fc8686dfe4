"""Step 4, quality: flags, back-checks (phúc tra) and reviews, then the non-response weights.

The ministry's inspector scans for suspicious patterns, draws the call-backs from a seed, and records
what the respondents said: the fabricating enumerator's respondents never met him, so his called-back
ballots are void and the rest of his work goes to review, where the inspector voids it too. Every
other flag is looked at and cleared. Then sampling adjusts each draw's weights for non-response."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sipas_cli.demo.client import INSPECTOR, ORGANISER, Api, wait_until
from sipas_cli.demo.model import Round


def scan_and_backcheck(api: Api, rnd: Round, tick: Callable[[], None]) -> None:
    path = f"/v1/campaigns/{rnd.campaign_id}"
    flags = api.post("ballots", f"{path}/quality/scan", INSPECTOR)["new_flags"]
    drawn = api.post("ballots", f"{path}/backchecks", INSPECTOR, {"seed": secrets.token_hex(16)})["per_enumerator"]
    outcomes: dict[str, int] = {}
    for n, check in enumerate(api.get("ballots", f"{path}/backchecks", INSPECTOR)):
        if check["outcome"] is not None:
            continue
        outcome = ("fabricated" if check["enumerator"] == rnd.fabricator
                   else "unreachable" if n % 9 == 4 else "confirmed")
        api.post("ballots", f"/v1/backchecks/{check['ballot_id']}", INSPECTOR, {"outcome": outcome})
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        tick()
    reviewed = {"void": 0, "clear": 0}
    for flagged in {f["ballot_id"]: f for f in api.get("ballots", f"{path}/review-queue", INSPECTOR)}.values():
        fabricated = flagged["entered_by"] == rnd.fabricator
        action = "void" if fabricated else "clear"
        comment = (f"back-check: {rnd.fabricator} fabricated interviews; his other ballots cannot be trusted"
                   if fabricated else "looked at the paper and the pattern: a plausible respondent")
        api.post("ballots", f"/v1/ballots/{flagged['ballot_id']}/review", INSPECTOR,
                 {"action": action, "comment": comment})
        reviewed[action] += 1
        tick()
    rnd.backchecks = {"flags": flags, "drawn": drawn, "outcomes": outcomes, "reviewed": reviewed}
    rnd.enumerator_stats = api.get("ballots", f"{path}/enumerators", INSPECTOR)
    rnd.progress = api.get("ballots", f"{path}/progress", INSPECTOR)
    for stats in rnd.enumerator_stats:
        channel = rnd.enumerators.get(stats["enumerator"], "online" if stats["enumerator"] == "(online)" else "?")
        rnd.ledger.voided[channel] += stats["voided"]


def head(api: Api, service: str) -> int:
    """The service's last event position once every event it has committed is numbered: a ballot acknowledged
    a moment ago (or just before a database restart) is below it, never after it."""
    def settled() -> int | None:
        page = api.get(service, "/v1/events", ORGANISER, params={"limit": 0})
        return int(page["head"]) + 1 if page.get("unsequenced", 0) == 0 else None
    return wait_until(settled, f"{service}'s relay numbering every committed event", timeout=300) - 1


def consumed(api: Api, service: str, producer: str) -> int:
    """How far ``service`` has applied ``producer``'s events (the lowest of its consumers of them)."""
    found = [p["position"] for p in api.get(service, "/v1/ops/projections", ORGANISER) if p["producer"] == producer]
    return min(found) if found else 0


def adjust_weights(api: Api, rnd: Round) -> None:
    """Once sampling has seen every ballot outcome, each draw's weights are adjusted for non-response."""
    ballots_head = head(api, "ballots")
    wait_until(lambda: consumed(api, "sampling", "ballots") >= ballots_head, "sampling learning the responses")
    for d in rnd.draws:
        api.post("sampling", f"/v1/draws/{d.draw_id}/weights", ORGANISER)
