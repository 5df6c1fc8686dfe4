"""Pseudonymous unit ids: what every other service sees instead of a dossier and its person (§7).

``unit_id = base32(HMAC-SHA256(campaign salt, "sipas-unit/v1" ‖ 0x00 ‖ dossier id as NFC UTF-8)[:15])``,
lowercase, no padding: 24 characters, 120 bits. The salt is a secret of at least 128 bits held by the
sampling service alone and distinct per campaign, so

- nobody without it can go from a (guessable, structured) dossier id to its unit id or back;
- one person's units in two campaigns cannot be linked;
- 120 bits make an accidental collision negligible (about 10⁻¹⁷ for ten million units) — and a draw
  still checks for one, since a collision would merge two respondents.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from sipas_sampling.domain.errors import InvalidParameter
from sipas_sampling.domain.frame import clean_text

MIN_SALT_BYTES = 16
UNIT_ID_BYTES = 15
_DOMAIN = b"sipas-unit/v1\x00"


def check_salt(salt: bytes) -> bytes:
    if len(salt) < MIN_SALT_BYTES:
        raise InvalidParameter(f"the campaign salt must be at least {MIN_SALT_BYTES} random bytes",
                               field="campaign_salt")
    return salt


def unit_id(campaign_salt: bytes, dossier_id: str) -> str:
    """The pseudonymous id of a dossier (or, in the resident design, a listed household) in a campaign."""
    mac = hmac.new(check_salt(campaign_salt), _DOMAIN + clean_text(dossier_id).encode("utf-8"), hashlib.sha256)
    return base64.b32encode(mac.digest()[:UNIT_ID_BYTES]).decode("ascii").lower()


def unit_ids(campaign_salt: bytes) -> Callable[[str], str]:
    """``unit_id`` for one campaign's many dossiers: the HMAC is keyed, and fed the domain, once."""
    keyed = hmac.new(check_salt(campaign_salt), _DOMAIN, hashlib.sha256)

    def one(dossier_id: str) -> str:
        mac = keyed.copy()
        mac.update(clean_text(dossier_id).encode("utf-8"))
        return base64.b32encode(mac.digest()[:UNIT_ID_BYTES]).decode("ascii").lower()
    return one
