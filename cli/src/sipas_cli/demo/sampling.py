"""Step 2, sampling: each province's list of completed dossiers becomes a frame; a plan per frame is
proposed and approved; the seed's SHA-256 is committed before the draw and the seed revealed to draw.

The campaign is national, so the ministry uploads the lists the provinces send it (a province operator
cannot act on a campaign without a province)."""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Callable
from pathlib import Path

from sipas_cli.demo.client import APPROVER, ORGANISER, Api
from sipas_cli.demo.model import Draw, Round
from sipas_cli.demo.people import frame_csv
from sipas_cli.demo.registry import PROCEDURES, VILLAGES, WARDS, windows

SOUTH_FROM = "44"  # roughly: Quảng Trị southwards write Huỳnh and Võ


def upload_frames(api: Api, rnd: Round, rng: random.Random, sample: int, tick: Callable[[], None],
                  folder: Path | None = None) -> list[dict[str, str]]:
    """Upload, propose and approve one frame per province; returns the approved plans. An agency's list
    holds three to six times as many dossiers as the campaign samples from it (its cap per unit). The
    provinces keep their files (in ``folder``): an auditor re-runs the draws from them (``sipas trace``)."""
    _, frame_window = windows(rnd.today)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        rnd.frames_folder = str(folder)
    plans = []
    for index, province in enumerate(rnd.provinces):
        targets = [a for a in rnd.targets if a.province == province]
        name = rnd.province_names[province]
        communes = [f"phường {WARDS[index % len(WARDS)]}", f"xã {VILLAGES[index % len(VILLAGES)]}"]
        content = frame_csv(rng, tag=rnd.tag, province=province, province_name=name,
                            southern=province >= SOUTH_FROM, communes=communes,
                            agencies=[(a.code, PROCEDURES[a.code.split("-")[-1]], rng.randint(3 * sample, 6 * sample))
                                      for a in targets],
                            window=frame_window)
        if folder is not None:
            (folder / f"ho-so-{province}.csv").write_text(content, encoding="utf-8")
        frame = api.call("POST", "sampling", f"/v1/campaigns/{rnd.campaign_id}/frames", ORGANISER, ok=(201,),
                         params={"mode": "accept_valid", "filename": f"ho-so-{province}.csv"},
                         content=content.encode(), headers={"Content-Type": "text/csv"}).json()
        plan = api.post("sampling", f"/v1/campaigns/{rnd.campaign_id}/plans", ORGANISER,
                        {"frame_id": frame["frame_id"]}, headers={"Idempotency-Key": f"demo-plan-{frame['frame_id']}"})
        api.post("sampling", f"/v1/plans/{plan['plan_id']}/approve", APPROVER)
        plans.append({"province": province, "plan_id": plan["plan_id"], "frame_id": frame["frame_id"],
                      "rows": frame["rows"], "rejected_rows": frame["rejected_rows"]})
        tick()
    return plans


def draw(api: Api, rnd: Round, plans: list[dict[str, str]], tick: Callable[[], None]) -> None:
    """Commit to each seed's SHA-256, then reveal: the draw is a pure function of frame, seed and algorithm."""
    for plan in plans:
        seed = secrets.token_hex(32)
        commitment = hashlib.sha256(seed.encode()).hexdigest()
        committed = api.post("sampling", f"/v1/plans/{plan['plan_id']}/draws", ORGANISER,
                             {"seed_commitment": commitment})
        drawn = api.post("sampling", f"/v1/draws/{committed['draw_id']}/reveal", ORGANISER,
                         {"seed": seed, "reserve_ratio": "0.2"})
        rnd.draws.append(Draw(committed["draw_id"], plan["province"], plan["frame_id"], int(plan["rows"]),
                              int(plan["rejected_rows"]), int(drawn["selected"]), commitment))
        tick()
