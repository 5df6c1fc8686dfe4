"""What the demo round learns as it goes: the units, the campaign, the draws, the codes and the outcomes."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

CHANNELS = ("online", "paper", "import", "kiosk")


@dataclass(frozen=True)
class Agency:
    agency_id: str
    code: str
    name: str
    level: str
    province: str


@dataclass(frozen=True)
class Draw:
    draw_id: str
    province: str
    frame_id: str
    rows: int
    rejected_rows: int
    selected: int
    seed_commitment: str


@dataclass(frozen=True)
class Rejection:
    channel: str
    expected: str
    actual: str
    what: str


@dataclass
class Ledger:
    """Every submission the demo made and what the platform answered, per channel."""

    submitted: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: dict[str, Counter[str]] = field(default_factory=lambda: {c: Counter() for c in CHANNELS})
    voided: Counter[str] = field(default_factory=Counter)
    planted: list[Rejection] = field(default_factory=list)   # the bad ones put in on purpose
    disputes_settled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def outcome(self, channel: str, reason: str | None) -> None:
        with self._lock:  # respondents and clerks work in threads
            self.submitted[channel] += 1
            if reason is None:
                self.accepted[channel] += 1
            else:
                self.rejected[channel][reason] += 1


@dataclass
class Round:
    tag: str
    year: int
    today: dt.date
    provinces: list[str]                                 # the provinces sampled, in order
    province_names: dict[str, str] = field(default_factory=dict)
    agencies: dict[str, list[Agency]] = field(default_factory=dict)      # every registered demo unit
    targets: list[Agency] = field(default_factory=list)                # those the campaign measures
    campaign_id: str = ""
    draws: list[Draw] = field(default_factory=list)
    frames_folder: str = ""                              # the provinces' frame files, as uploaded
    codes: dict[str, list[str]] = field(default_factory=dict)          # agency code -> printed codes
    handed_out: dict[str, int] = field(default_factory=dict)           # channel -> codes that went its way
    ledger: Ledger = field(default_factory=Ledger)
    enumerators: dict[str, str] = field(default_factory=dict)          # who keyed -> channel
    fabricator: str = ""
    backchecks: dict[str, Any] = field(default_factory=dict)
    enumerator_stats: list[dict[str, Any]] = field(default_factory=list)
    voided_ballots: list[str] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    ratings: dict[str, Any] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)
    release: dict[str, Any] = field(default_factory=dict)
    provinces_published: list[dict[str, Any]] = field(default_factory=list)
    national: dict[str, Any] = field(default_factory=dict)
    manifest_path: str = ""
    manifest_ok: bool = False
    public_key: str = ""
    webhook: dict[str, Any] = field(default_factory=dict)
    report_url: str = ""
    notes: list[str] = field(default_factory=list)
