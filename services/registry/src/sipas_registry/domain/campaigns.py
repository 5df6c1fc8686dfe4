"""Campaigns (measurement rounds): what they measure with, and their one-way life.

opened → sample_approved → fieldwork_open → fieldwork_closed → scores_frozen → closed. Each step is
one event whose envelope names the actor. The ministry runs national rounds; a province runs its
own provincial, department and commune rounds; the scoring service may freeze scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from sipas_events.catalogue.registry import CampaignOpened, CampaignStatus, CampaignStatusChanged
from sipas_registry.domain.errors import AlreadyExists, Immutable, NotAllowed, NotFound, RegistryError
from sipas_registry.domain.units import Unit

STEPS: tuple[str, ...] = get_args(CampaignStatus)
SCOPE_LEVELS = {"department": {"department", "central_in_province"}, "commune": {"commune"}}


@dataclass(frozen=True)
class Actor:
    kind: Literal["ministry", "province", "service"]
    province: str | None = None


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    scope: str
    province: str | None
    status: str
    version: int


def _may_manage(actor: Actor, scope: str, province: str | None) -> bool:
    if actor.kind == "ministry":
        return True
    return actor.kind == "province" and scope != "national" and province == actor.province


def open_campaign(cmd: CampaignOpened, *, existing: Campaign | None, actor: Actor,
                  instrument: str | None, scheme: str | None, targets: Sequence[Unit | None]) -> CampaignOpened:
    """``instrument``/``scheme``: the referenced version's status (None when it does not exist)."""
    if existing is not None:
        raise AlreadyExists(f"campaign {cmd.campaign_id} already exists", "campaign_id")
    if (cmd.scope == "national") != (cmd.province is None):
        raise RegistryError("a national campaign has no province; any other scope names one", "province")
    if not _may_manage(actor, cmd.scope, cmd.province):
        raise NotAllowed(f"a {actor.kind} actor of {actor.province or 'the nation'} cannot open a {cmd.scope} "
                         f"campaign for {cmd.province or 'the nation'}")
    cw, fw = cmd.collection_window, cmd.frame_window
    if cw.end < cw.start:
        raise RegistryError("the collection window ends before it starts", "collection_window")
    if fw.end < fw.start:
        raise RegistryError("the frame window ends before it starts", "frame_window")
    if fw.start > cw.end:
        raise RegistryError("the frame window starts after collection ends", "frame_window")
    if cmd.year not in (cw.start.year, cw.end.year):
        raise RegistryError(f"year {cmd.year} is not a year of the collection window", "year")
    if cmd.retention_until < cw.end:
        raise RegistryError("personal data cannot be kept for less than the collection window", "retention_until")
    for ref, status, what in ((cmd.instrument, instrument, "instrument"), (cmd.scheme, scheme, "scheme")):
        if status is None:
            raise NotFound(f"{what} {ref.id} version {ref.version} does not exist", what)
        if status != "published":
            raise RegistryError(f"{what} {ref.id} version {ref.version} is a {status}: publish it first", what)
    if len(set(cmd.target_unit_ids)) != len(cmd.target_unit_ids):
        raise RegistryError("a target unit is listed twice", "target_unit_ids")
    for unit_id, unit in zip(cmd.target_unit_ids, targets, strict=True):
        _check_target(cmd, unit_id, unit)
    return cmd


def _check_target(cmd: CampaignOpened, unit_id: str, unit: Unit | None) -> None:
    if unit is None:
        raise NotFound(f"target unit {unit_id} is not in the registry", "target_unit_ids")
    window = cmd.collection_window
    if not unit.overlaps(window.start, window.end):
        raise RegistryError(f"{unit.name} is not valid during the collection window", "target_unit_ids")
    if cmd.province is not None and unit.province != cmd.province:
        raise RegistryError(f"{unit.name} is in province {unit.province}, outside this campaign", "target_unit_ids")
    allowed = SCOPE_LEVELS.get(cmd.scope)
    if allowed is not None and unit.level not in allowed:
        raise RegistryError(f"a {cmd.scope} campaign measures {' or '.join(sorted(allowed))} units; "
                            f"{unit.name} is a {unit.level}", "target_unit_ids")


def advance(campaign: Campaign | None, to: str, actor: Actor, note: str | None = None) -> CampaignStatusChanged:
    if campaign is None:
        raise NotFound("no such campaign")
    if to not in STEPS:
        raise RegistryError(f"unknown status {to!r}; the steps are {', '.join(STEPS)}", "status")
    here, there = STEPS.index(campaign.status), STEPS.index(to)
    if there <= here:
        raise Immutable(f"campaign {campaign.campaign_id} is already {campaign.status}; it cannot go back to {to}",
                        "status")
    if there != here + 1:
        raise RegistryError(f"campaign {campaign.campaign_id} is {campaign.status}; the next step is "
                            f"{STEPS[here + 1]}, not {to}", "status")
    service_step = actor.kind == "service" and to == "scores_frozen"
    if not service_step and not _may_manage(actor, campaign.scope, campaign.province):
        raise NotAllowed(f"a {actor.kind} actor of {actor.province or 'the nation'} cannot move a {campaign.scope} "
                         f"campaign of {campaign.province or 'the nation'} to {to}")
    return CampaignStatusChanged(campaign_id=campaign.campaign_id, status=to,  # type: ignore[arg-type]
                                 previous_status=campaign.status, note=note,  # type: ignore[arg-type]
                                 province=campaign.province)
