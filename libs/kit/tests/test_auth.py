"""Token verification: keys by kid, algorithm pinned by the key, claims checked, roles and scope."""

import datetime as dt
import json

import jwt
import pytest

from sipas_kit.auth import DevIdentity, Principal, Role, TokenVerifier
from sipas_kit.problems import Problem


@pytest.fixture
def idp(tmp_path):
    return DevIdentity(tmp_path).ensure()


@pytest.fixture
def verifier(idp):
    return TokenVerifier.from_file(idp.jwks_path, idp.issuer, idp.audience)


def test_valid_token(idp, verifier):
    p = verifier.verify(idp.mint("u1", Role.PROVINCE_OPERATOR, province="01"))
    assert p == Principal("u1", Role.PROVINCE_OPERATOR, "01")
    assert p.can_act_in("01") and not p.can_act_in("79") and not p.can_act_in(None)


def test_expired_and_not_yet_valid(idp, verifier):
    old = idp.mint("u", Role.AUDITOR, ttl=60, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    with pytest.raises(Problem, match="expired"):
        verifier.verify(old)
    future = idp.mint("u", Role.AUDITOR, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    with pytest.raises(Problem):
        verifier.verify(future)


def test_alg_none_and_hmac_with_the_public_key_are_refused(idp, verifier):
    jwk = json.loads(idp.jwks_path.read_text())["keys"][0]
    claims = {"sub": "x", "role": "ministry-admin", "iss": idp.issuer, "aud": idp.audience,
              "iat": dt.datetime.now(dt.UTC), "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": jwk["kid"]})
    with pytest.raises(Problem):
        verifier.verify(unsigned)
    hmac = jwt.encode(claims, jwk["x"], algorithm="HS256", headers={"kid": jwk["kid"]})
    with pytest.raises(Problem):
        verifier.verify(hmac)


def test_wrong_audience_issuer_unknown_kid_and_role(idp, tmp_path):
    other = DevIdentity(tmp_path / "other", issuer="someone-else").ensure()
    v = TokenVerifier.from_file(idp.jwks_path, idp.issuer, idp.audience)
    with pytest.raises(Problem, match="unknown key"):
        v.verify(other.mint("u", Role.AUDITOR))
    with pytest.raises(Problem):
        TokenVerifier.from_file(idp.jwks_path, idp.issuer, "another-audience").verify(idp.mint("u", Role.AUDITOR))
    with pytest.raises(Problem, match="must name its province"):
        v.verify(idp.mint("u", Role.CLERK))


def test_national_roles_reach_every_province():
    assert Principal("a", Role.MINISTRY_ADMIN).can_act_in("79")
    assert Principal("a", Role.AUDITOR).can_act_in(None)
    with pytest.raises(Problem) as err:
        Principal("c", Role.CLERK, "01").require_province("79")
    assert err.value.status == 403
