"""Forged, stale and mis-addressed tokens against a running service, one guarded route per service
(``libs/kit/tests/test_auth.py`` probes the verifier alone): every one is refused with 401,
``WWW-Authenticate: Bearer``, problem+json, and a body that says the same thing whatever was wrong —
no key id, no library message, no piece of the token: nothing to tell a forger which check failed."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from sipas_kit.auth import DevIdentity

pytestmark = pytest.mark.asyncio
ROUTES = {  # one route per service that any signed-in role may call, so only the token decides
    "registry": "/v1/campaigns",
    "sampling": "/v1/reference/campaigns",
    "ballots": "/v1/reference/definitions",
    "scoring": "/v1/reference/agencies",
    "publishing": "/v1/releases",
}
# What a refusal body must never carry: the key id, what the libraries say, the claims they checked.
# ("token expired" alone is said, to the expired probe: a token reaches that check only once its
# signature held, and it is the cue to sign in again.)
TELLTALES = ("kid", "alg", "HS256", "EdDSA", "none", "signature", "Signature", "expired", "audience", "issuer",
             "aud", "iss", "exp", "nbf", "iat", "decode", "segments", "padding", "Traceback", "Error", "role",
             "province", "ministry-admin", "key")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(idp: DevIdentity, shift: dt.timedelta = dt.timedelta(0), **extra: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC) + shift
    return {"sub": "forger@test", "role": "ministry-admin", "iss": idp.issuer, "aud": idp.audience,
            "iat": now, "nbf": now, "exp": now + dt.timedelta(hours=1)} | extra


def signed(idp: DevIdentity, body: dict[str, Any]) -> str:
    key = serialization.load_pem_private_key(idp.private_path.read_bytes(), password=None)
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid_of(idp)})  # type: ignore[arg-type]


def kid_of(idp: DevIdentity) -> str:
    return str(json.loads(idp.jwks_path.read_text())["keys"][-1]["kid"])


def tampered(token: str) -> str:
    """A real token whose payload was edited (a clerk made ministry admin) and not signed again."""
    header, payload, signature = token.split(".")
    body = json.loads(unb64(payload)) | {"role": "ministry-admin", "province": None}
    return ".".join([header, b64(json.dumps(body).encode()), signature])


def probes(idp: DevIdentity, stranger: DevIdentity) -> dict[str, Callable[[], str]]:
    jwk = json.loads(idp.jwks_path.read_text())["keys"][-1]
    hour = dt.timedelta(hours=1)
    return {
        "alg none": lambda: jwt.encode(claims(idp), None, algorithm="none", headers={"kid": jwk["kid"]}),
        "HMAC with the public key": lambda: jwt.encode(claims(idp), unb64(jwk["x"]), algorithm="HS256",
                                                       headers={"kid": jwk["kid"]}),
        "expired": lambda: signed(idp, claims(idp, -2 * hour)),
        "not yet valid": lambda: signed(idp, claims(idp, hour)),
        "wrong audience": lambda: signed(idp, claims(idp, aud="another-audience")),
        "wrong issuer": lambda: signed(idp, claims(idp, iss="someone-else")),
        "unknown kid": lambda: stranger.mint("forger@test", "ministry-admin"),
        "tampered payload": lambda: tampered(idp.mint("clerk@test", "clerk", "79")),
        "tampered signature": lambda: idp.mint("auditor@test", "auditor")[:-4] + "AAAA",
        "unknown role": lambda: signed(idp, claims(idp, role="superuser")),
        "provincial role without a province": lambda: signed(idp, claims(idp, role="clerk")),
        "not a JWT": lambda: "not.a.jwt",
        "no exp": lambda: signed(idp, {k: v for k, v in claims(idp).items() if k != "exp"}),
    }


@pytest.mark.parametrize("service", ROUTES)
async def test_every_bad_token_is_refused_alike_and_says_nothing(open_api, identity, tmp_path, service):
    api = await open_api(service, **({"data_dir": tmp_path} if service == "publishing" else {}))
    route, kid = ROUTES[service], kid_of(identity)
    good = await api.client.get(route, headers=api.auth("auditor"))
    assert good.status_code == 200, good.text  # the route answers a good token: only the token is on trial
    stranger = DevIdentity(tmp_path / "stranger").ensure()
    bodies = {}
    for name, make in probes(identity, stranger).items():
        token = make()
        r = await api.client.get(route, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer"), name
        assert r.headers["content-type"] == "application/problem+json", name
        doc = r.json()
        assert doc["status"] == 401 and doc["title"], (name, doc)
        said = json.dumps({k: v for k, v in doc.items() if k not in ("instance", "correlation_id")})
        allowed = {"expired", "exp"} if name == "expired" else set()
        pieces = [p for p in (token, *token.split(".")) if len(p) >= 8]  # "not.a.jwt" shares "a" with any text
        told = [t for t in (*TELLTALES, kid, *pieces) if t in said and t not in allowed]
        assert told == [], (name, told, said)
        bodies[name] = said
    expired = bodies.pop("expired")
    assert len(set(bodies.values())) == 1, bodies  # one answer for every other failure: no oracle
    assert json.loads(expired)["detail"] == "token expired"
    for header in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer "}):
        missing = await api.client.get(route, headers=header)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer", header
        assert missing.headers["content-type"] == "application/problem+json"
