"""Bearer JWT authentication, roles and province scope.

Tokens are verified against the public keys of a JWKS, chosen by ``kid``; the algorithm comes from
the key, never from the token header (no ``none``, no HMAC with a public key). Issuer, audience,
expiry and not-before are checked. ``DevIdentity`` is a small local identity provider so that
everything works offline; production points ``jwt_jwks_file`` at the real provider's keys.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from jwt import PyJWK

from sipas_kit.problems import Problem

log = structlog.get_logger(__name__)


class Role(StrEnum):
    MINISTRY_ADMIN = "ministry-admin"
    PROVINCE_OPERATOR = "province-operator"
    CLERK = "clerk"
    ENUMERATOR = "enumerator"
    AUDITOR = "auditor"
    PARTNER = "partner"
    SERVICE = "service"


NATIONAL_ROLES = {Role.MINISTRY_ADMIN, Role.AUDITOR, Role.SERVICE, Role.PARTNER}
PROVINCIAL_ROLES = {Role.PROVINCE_OPERATOR, Role.CLERK, Role.ENUMERATOR}


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    province: str | None = None

    @property
    def actor(self) -> str:
        return self.subject

    def can_act_in(self, province: str | None) -> bool:
        """National roles reach every province; provincial roles only their own."""
        if self.role in NATIONAL_ROLES:
            return True
        return province is not None and province == self.province

    def require_province(self, province: str | None, what: str = "this resource") -> None:
        if not self.can_act_in(province):
            raise Problem(403, "Forbidden", f"{self.role} of province {self.province} cannot act on {what} "
                          f"in province {province or 'national'}", type_="https://sipas.gov.vn/problems/out-of-scope")


class TokenVerifier:
    def __init__(self, jwks: dict[str, Any], issuer: str, audience: str, leeway: float = 30.0) -> None:
        self._keys = {k["kid"]: PyJWK(k) for k in jwks.get("keys", []) if "kid" in k}
        self._issuer, self._audience, self._leeway = issuer, audience, leeway

    @classmethod
    def from_file(cls, path: Path, issuer: str, audience: str) -> TokenVerifier:
        return cls(json.loads(path.read_text()), issuer, audience)

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"malformed token: {exc}") from None
        key = self._keys.get(header.get("kid", ""))
        if key is None:
            raise _unauthorized("token signed with an unknown key (kid)")
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[key.algorithm_name], audience=self._audience,
                issuer=self._issuer, leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None
        try:
            role = Role(claims.get("role", ""))
        except ValueError:
            raise _unauthorized(f"unknown role {claims.get('role')!r}") from None
        province = claims.get("province")
        if role in PROVINCIAL_ROLES and not province:
            raise _unauthorized(f"a {role} token must name its province")
        return Principal(subject=str(claims["sub"]), role=role, province=province)


class TokenRefused(Problem):
    """A 401 that tells the caller nothing about which check failed (no oracle for a forger): the reason
    is the exception's message, for the log and for tests. Only expiry is said, the caller's cue to sign
    in again; a token only gets that far once its signature held."""

    def __init__(self, reason: str, detail: str = "the bearer token was not accepted") -> None:
        super().__init__(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        self.args = (reason,)


def _unauthorized(reason: str) -> Problem:
    log.info("auth.token_refused", reason=reason[:200])
    return TokenRefused(reason, "token expired" if reason == "token expired" else "the bearer token was not accepted")


class DevIdentity:
    """A local identity provider: an Ed25519 key pair in a folder, and a minting function."""

    def __init__(self, folder: Path, issuer: str = "sipas-dev", audience: str = "sipas") -> None:
        self.folder, self.issuer, self.audience = folder, issuer, audience
        self.private_path, self.jwks_path = folder / "jwt-signing.pem", folder / "jwks.json"

    def ensure(self) -> DevIdentity:
        if self.private_path.exists() and self.jwks_path.exists():
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self.private_path.write_bytes(pem)
        self.private_path.chmod(0o600)
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
        kid = dt.datetime.now(dt.UTC).strftime("dev-%Y%m%d%H%M%S-") + secrets.token_hex(4)
        self.jwks_path.write_text(json.dumps({"keys": [jwk | {"kid": kid, "alg": "EdDSA", "use": "sig"}]}, indent=2))
        return self

    def mint(self, subject: str, role: Role | str, province: str | None = None, ttl: float = 8 * 3600,
             extra: dict[str, Any] | None = None, now: dt.datetime | None = None) -> str:
        self.ensure()
        kid = json.loads(self.jwks_path.read_text())["keys"][-1]["kid"]
        issued = now or dt.datetime.now(dt.UTC)
        claims: dict[str, Any] = {
            "sub": subject, "role": str(Role(role)), "iss": self.issuer, "aud": self.audience,
            "iat": issued, "nbf": issued, "exp": issued + dt.timedelta(seconds=ttl), **(extra or {}),
        }
        if province:
            claims["province"] = province
        key = serialization.load_pem_private_key(self.private_path.read_bytes(), password=None)
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})  # type: ignore[arg-type]


def bearer_token(request: Request) -> str:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "Unauthorized", "missing bearer token (Authorization: Bearer <JWT>)",
                      headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def authenticate(request: Request) -> Principal:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise Problem(503, "Service unavailable", "authentication is not configured (jwt_jwks_file)")
    principal = verifier.verify(bearer_token(request))
    request.state.principal = principal
    return principal


async def _current(request: Request) -> Principal:
    # async on purpose: FastAPI runs a sync dependency in a worker thread, a hop per request for nothing
    return authenticate(request)


CurrentPrincipal = Annotated[Principal, Depends(_current)]


def ensure_role(principal: Principal, allowed: Iterable[Role]) -> Principal:
    """The principal, if its role is one of ``allowed``; else 403 naming the roles that may."""
    allowed = set(allowed)
    if principal.role not in allowed:
        raise Problem(403, "Forbidden", f"role {principal.role} may not do this; allowed: "
                      f"{', '.join(sorted(allowed))}")
    return principal


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    allowed = set(roles)

    async def check(principal: CurrentPrincipal) -> Principal:
        return ensure_role(principal, allowed)

    return check


def roles_of(values: Iterable[str]) -> set[Role]:
    return {Role(v) for v in values}
