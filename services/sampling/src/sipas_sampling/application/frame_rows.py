"""The import's per-row work on the common, clean row: checked, sealed and hashed in one pass.

``validate_row`` then ``_record`` (frames.py) is the definition: it builds a dict of cleaned texts, a
``FrameRow``, a ``Contact``, two JSON encoders and cleans every text again for the hash, about 60 us a
row in all. ``RowPipeline.record`` produces the same staged record for a row those functions would
accept, with less work:

- each text is cleaned once (``clean_text``; ASCII text skips the NFC step, which cannot change it);
- the low-cardinality cells (agency code, procedure, service field, date, respondent type) are
  looked up in small caches of already checked values, and so is the agency valid on a day;
- the usual phone form (ten digits, ``0`` + a mobile prefix) is recognised without ``normalise_phone``
  (which still takes every other form, and refuses what it refuses);
- the canonical line and the contact's plaintext are written directly (JSON strings quoted by the
  ``json`` module's own C quoting, the cached cells quoted once), nonces come from one ``os.urandom``
  call per batch, and the row's cells are read from the CSV's list, without a dict.

Any row it does not accept outright (a rejected row, an odd phone, a non-text cell from an XLSX) returns
``None`` and goes through ``validate_row`` and ``_record``, so rejections, their messages and every
accepted value are theirs (tests/unit/test_sampling_frame_rows.py compares the two paths byte for
byte). The caches are bounded, so memory stays flat whatever the file's length.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring as _quote  # json.dumps's quoting of a str, ensure_ascii=False
from operator import itemgetter
from typing import Any

from sipas_sampling.adapters.keys import NONCE, Sealer
from sipas_sampling.domain.frame import RESPONDENT_TYPES, FrameRules, clean_text, parse_day
from sipas_sampling.domain.phone import MalformedPhone, normalise_phone

CACHE_LIMIT = 50_000  # entries per cache before it is emptied: a bound on memory, not a tuning knob
NONCE_BATCH = 4096
CELLS = ("agency_code", "procedure", "service_field", "dossier_id", "completed_on", "respondent_type", "name",
         "phone", "address")
_OUT = ("", "")  # cached: this value needs the full check


def _clean(value: str) -> str:
    """``clean_text`` (NFC, trimmed, inner whitespace collapsed); NFC leaves ASCII text as it is."""
    return " ".join(value.split()) if value.isascii() else clean_text(value)


class RowPipeline:
    """Staged records of clean rows: ``(*UNIT_COLUMNS, line)``, as ``(*_record(...), line)`` would be.

    ``agency_on(agencies, code, day)`` must be the check ``rules.agency_known`` makes (it is, in ``_load``).
    """

    def __init__(self, frame_id: str, rules: FrameRules, agencies: Mapping[str, list[Any]], sealer: Sealer,
                 agency_on: Any) -> None:
        self._frame_id, self._rules, self._agencies, self._sealer = frame_id, rules, agencies, sealer
        self._agency_on = agency_on
        self._mobile = rules.phone_plan.mobile
        self._header: Sequence[str] | None = None
        self._cells: Any = None
        self._texts: dict[str, tuple[str, str]] = {}  # raw cell -> (clean, quoted)
        self._days: dict[str, tuple[dt.date | None, str]] = {}  # raw date -> (day in the window, quoted ISO)
        self._kinds: dict[str, tuple[str, str]] = {}
        self._codes: dict[str, Any] = {}  # clean code -> its one agency over the whole window, or None
        self._units: dict[tuple[str, dt.date], Any] = {}  # (code, day) -> the agency that day, for the others
        self._nonces = b""
        self._at = 0

    def record(self, line: int, header: Sequence[str], cells: Sequence[Any]) -> tuple[Any, ...] | None:
        """The staged record of the row ``dict(zip(header, cells))`` if ``validate_row`` accepts it as it
        stands; ``None``: check it fully."""
        if header is not self._header:
            self._use(header)
        try:
            code_r, proc_r, field_r, dossier_r, day_r, kind_r, name_r, phone_r, addr_r = self._cells(cells)
        except (IndexError, TypeError):  # a short row, or a header without all the columns
            return None
        texts = self._texts
        code, qcode = texts.get(code_r) or self._text(code_r)
        procedure, qprocedure = texts.get(proc_r) or self._text(proc_r)
        service_field, qfield = texts.get(field_r) or self._text(field_r)
        kind, qkind = self._kinds.get(kind_r) or self._kind(kind_r)
        day, qday = self._days.get(day_r) or self._day(day_r)
        if not (code and procedure and service_field and kind) or day is None:
            return None
        agency = self._codes.get(code, _OUT)
        if agency is _OUT:
            agency = self._code(code)
        if agency is None:
            agency = self._units.get((code, day)) or self._unit(code, day)
            if agency is _OUT:
                return None
        if type(dossier_r) is not str or type(name_r) is not str or type(phone_r) is not str \
                or type(addr_r) is not str:
            return None
        dossier, name, phone, address = _clean(dossier_r), _clean(name_r), _clean(phone_r), _clean(addr_r)
        if not (dossier and name):
            return None
        if phone:
            if not (len(phone) == 10 and phone.isascii() and phone.isdigit() and phone[0] == "0"
                    and phone[1] not in "02" and phone[:3] in self._mobile):  # else not yet national
                try:
                    phone = normalise_phone(phone, self._rules.phone_plan)
                except MalformedPhone:
                    return None  # the full check reports it
            qphone = f'"{phone}"'  # digits only
        elif self._rules.require_phone or not address:
            return None
        else:
            qphone = "null"
        qdossier, qname, qaddress = _quote(dossier), _quote(name), _quote(address) if address else "null"
        # digest.canonical_row's line and keys.Sealer.seal's plaintext, written out
        canonical = f"[{qcode},{qdossier},{qprocedure},{qfield},{qday},{qkind},{qname},{qphone},{qaddress}]\n"
        if self._at >= len(self._nonces):
            self._nonces, self._at = os.urandom(NONCE * NONCE_BATCH), 0
        nonce = self._nonces[self._at:self._at + NONCE]
        self._at += NONCE
        contact = self._sealer.seal_plain(dossier, f"[{qname}, {qphone}, {qaddress}]".encode(), nonce)
        return (self._frame_id, dossier, code, agency.agency_id, agency.level, agency.province, procedure,
                service_field, day, kind, hashlib.sha256(canonical.encode()).digest(), contact, line)

    def _use(self, header: Sequence[str]) -> None:
        at = {name: i for i, name in enumerate(header)}  # a repeated column: its last cell, as dict(zip()) does
        self._header = header
        self._cells = itemgetter(*(at[c] for c in CELLS)) if all(c in at for c in CELLS) else None

    def _text(self, value: Any) -> tuple[str, str]:
        """A low-cardinality cell cleaned and quoted ('' for a non-text cell: the full check decides)."""
        if type(value) is not str:
            return _OUT
        cleaned = _clean(value)
        entry = _bounded(self._texts)[value] = (cleaned, _quote(cleaned))
        return entry

    def _kind(self, value: Any) -> tuple[str, str]:
        if type(value) is not str:
            return _OUT
        kind = RESPONDENT_TYPES.get(_clean(value).casefold(), "")
        entry = _bounded(self._kinds)[value] = (kind, _quote(kind))
        return entry

    def _day(self, value: Any) -> tuple[dt.date | None, str]:
        if type(value) is not str:
            return None, ""
        day = parse_day(value) if _clean(value) else None
        if day is not None and day not in self._rules.window:
            day = None
        entry = _bounded(self._days)[value] = (day, _quote(day.isoformat()) if day else "")
        return entry

    def _code(self, code: str) -> Any:
        """The code's only agency if it is valid throughout the window, else None (then looked up by day)."""
        window, found = self._rules.window, self._agencies.get(code, [])
        whole = (len(found) == 1 and found[0].valid_from <= window.start
                 and (found[0].valid_to is None or window.end <= found[0].valid_to))
        agency = _bounded(self._codes)[code] = found[0] if whole else None
        return agency

    def _unit(self, code: str, day: dt.date) -> Any:
        agency = self._agency_on(self._agencies, code, day)
        entry = _bounded(self._units)[(code, day)] = _OUT if agency is None else agency
        return entry


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    return cache
