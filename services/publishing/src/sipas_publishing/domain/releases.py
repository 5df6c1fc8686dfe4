"""A release's life: draft → submitted → approved → (scheduled →) published → retracted.

Pure decisions: each function takes the release's current state and the actor and returns the new
state, or raises. A correction is a new release that names the one it supersedes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from sipas_publishing.domain.errors import FourEyes, ReleaseConflict

DRAFT, SUBMITTED, APPROVED, SCHEDULED = "draft", "submitted", "approved", "scheduled"
PUBLISHED, RETRACTED = "published", "retracted"
PUBLIC = (PUBLISHED, RETRACTED)


@dataclass(frozen=True)
class Release:
    release_id: str
    status: str
    drafted_by: str
    submitted_by: str | None = None
    approved_by: str | None = None
    embargo_until: dt.datetime | None = None


def _require(release: Release, *allowed: str, step: str) -> None:
    if release.status not in allowed:
        raise ReleaseConflict(f"release {release.release_id} is {release.status}; {step} needs it "
                              f"{' or '.join(allowed)}")


def submit(release: Release, actor: str) -> Release:
    _require(release, DRAFT, step="submitting")
    return replace(release, status=SUBMITTED, submitted_by=actor)


def approve(release: Release, actor: str) -> Release:
    _require(release, SUBMITTED, step="approving")
    if actor == release.drafted_by:
        raise FourEyes(f"{actor} drafted release {release.release_id} and cannot also approve it")
    return replace(release, status=APPROVED, approved_by=actor)


def schedule(release: Release, at: dt.datetime, now: dt.datetime) -> Release:
    """Publish at ``at`` (embargo); ``at`` not after ``now`` means publish now (status stays approved)."""
    _require(release, APPROVED, SCHEDULED, step="publishing")
    if at <= now:
        return release
    return replace(release, status=SCHEDULED, embargo_until=at)


def publish(release: Release, now: dt.datetime) -> Release:
    _require(release, APPROVED, SCHEDULED, step="publishing")
    if release.embargo_until is not None and release.embargo_until > now:
        raise ReleaseConflict(f"release {release.release_id} is under embargo until "
                              f"{release.embargo_until.isoformat()}")
    return replace(release, status=PUBLISHED)


def retract(release: Release) -> Release:
    _require(release, PUBLISHED, step="retracting")
    return replace(release, status=RETRACTED)


def supersede(old: Release) -> None:
    """Only a published release can be corrected (a draft is simply edited by drafting anew)."""
    _require(old, PUBLISHED, step="correcting")
