"""The frame digest: one SHA-256 that pins exactly which rows a draw was made from.

Definition (version ``sipas-frame/v2``), so anyone holding the frame can recompute it:

- every text field is put in canonical form: Unicode NFC, trimmed, inner whitespace runs collapsed to
  one space (``frame.clean_text``); the date is ISO ``YYYY-MM-DD``; an absent phone or address is null;
- a row's canonical line is the compact JSON array (UTF-8, no ASCII escaping, ``","``/``":"``
  separators) of ``agency_code, dossier_id, procedure, service_field, completed_on, respondent_type,
  name, phone, address`` followed by ``\\n``;
- rows are ordered by ``(agency_code, dossier_id)`` in Unicode code-point order (= UTF-8 byte order;
  a database streaming them must sort with ``COLLATE "C"``), each key at most once;
- each row's hash is SHA-256 of its canonical line (32 bytes);
- digest = SHA-256 of ``b"sipas-frame/v2\\n"`` followed by the row hashes in that order, as lowercase hex.

*Why hash row hashes (v2) rather than the lines (v1)*: the service stores each row's hash beside the
encrypted row, so it can recompute the digest with one sorted scan of hashes, without decrypting a
single name or phone number.

So the digest does not depend on the order of lines in the agency's file, nor on whitespace or
Unicode-normalisation differences, but it changes with any real change to any row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from sipas_sampling.domain.errors import FrameOrderError
from sipas_sampling.domain.frame import FrameRow, clean_text

DIGEST_VERSION = "sipas-frame/v2"
CANONICAL_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""The canonical line's JSON (without its newline): one encoder reused rather than one per ``json.dumps``."""
FIELD_ORDER = ("agency_code", "dossier_id", "procedure", "service_field", "completed_on", "respondent_type",
               "name", "phone", "address")


def sort_key(row: FrameRow) -> tuple[str, str]:
    """The canonical order of frame rows: by agency, then dossier, code point by code point."""
    return clean_text(row.agency_code), clean_text(row.dossier_id)


def canonical_row(row: FrameRow) -> bytes:
    """The row's canonical line (see the module docstring), newline included."""
    values = [
        clean_text(row.agency_code), clean_text(row.dossier_id), clean_text(row.procedure),
        clean_text(row.service_field), row.completed_on.isoformat(), row.respondent_type, clean_text(row.name),
        _optional(row.phone), _optional(row.address),
    ]
    return CANONICAL_JSON(values).encode("utf-8") + b"\n"


def row_hash(row: FrameRow) -> bytes:
    return hashlib.sha256(canonical_row(row)).digest()


def _optional(value: str | None) -> str | None:
    cleaned = clean_text(value) if value is not None else ""
    return cleaned or None


class FrameDigester:
    """Streaming digest: feed rows already in canonical order (e.g. straight from a sorted query)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(DIGEST_VERSION.encode("ascii") + b"\n")
        self._last: tuple[str, str] | None = None
        self.rows = 0

    def update(self, row: FrameRow) -> None:
        self.update_hash(sort_key(row), row_hash(row))

    def update_hash(self, key: tuple[str, str], digest: bytes) -> None:
        """Feed a stored row hash (rows still in canonical order)."""
        if self._last is not None and key <= self._last:
            what = "repeats" if key == self._last else "comes after"
            raise FrameOrderError(f"row {key} {what} {self._last}: rows must arrive sorted by (agency_code, "
                                  "dossier_id), each once")
        self._last = key
        self._hash.update(digest)
        self.rows += 1

    def update_hashes(self, hashes: bytes) -> None:
        """Feed stored row hashes back to back (32 bytes each) whose rows are already in canonical order,
        each key once, as a query ordering a unique key with ``COLLATE "C"`` returns them: the order is
        the query's to guarantee, it is not checked here."""
        if len(hashes) % 32:
            raise ValueError(f"{len(hashes)} bytes is not a whole number of 32-byte row hashes")
        self._hash.update(hashes)
        self.rows += len(hashes) // 32

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def frame_digest(rows: Iterable[FrameRow]) -> str:
    """The digest of rows given in any order (sorted here; use ``FrameDigester`` to stream sorted rows)."""
    digester = FrameDigester()
    for row in sorted(rows, key=sort_key):
        digester.update(row)
    return digester.hexdigest()
