"""What publishing adds to the kit's service context: the signing key, the way to scoring and the
way to the other services' audit-chain heads.

Each is made on first use from settings; a test (or another wiring) may set ``ctx.scoring_source`` or
``ctx.audit_heads`` beforehand, e.g. an httpx client bound to an in-process app.
"""

from __future__ import annotations

from typing import cast

from sipas_kit.context import ServiceContext
from sipas_publishing.adapters.audit_heads import PLATFORM, AuditHeadSource, HttpAuditHeads
from sipas_publishing.adapters.keys import LocalSigningKey
from sipas_publishing.adapters.scoring import HttpScoringSource, ScoringSource
from sipas_publishing.settings import PublishingSettings

SERVICE_ACTOR = "service:publishing"


def settings(ctx: ServiceContext) -> PublishingSettings:
    found = ctx.settings
    if isinstance(found, PublishingSettings):
        return found
    return PublishingSettings.model_validate(found.model_dump())


def signing_key(ctx: ServiceContext) -> LocalSigningKey:
    key = getattr(ctx, "signing_key", None)
    if key is None:
        key = LocalSigningKey(settings(ctx).data_dir / "release-signing.pem")
        ctx.signing_key = key  # type: ignore[attr-defined]
    return cast(LocalSigningKey, key)


def scoring_source(ctx: ServiceContext) -> ScoringSource:
    source = getattr(ctx, "scoring_source", None)
    if source is None:
        s = ctx.settings
        if "scoring" not in s.peers:
            from sipas_kit.problems import Problem

            raise Problem(503, "Service unavailable", "the scoring peer is not configured (peers.scoring)")
        token = s.service_token.get_secret_value() if s.service_token else None
        source = HttpScoringSource(s.peers["scoring"], token)
        ctx.scoring_source = source  # type: ignore[attr-defined]
    return cast(ScoringSource, source)


def audit_heads(ctx: ServiceContext) -> AuditHeadSource:
    """The other platform services a release records the audit head of: every one in ``peers`` (all
    four on a configured platform: ``sipas up`` and deploy/k8s name every peer)."""
    source = getattr(ctx, "audit_heads", None)
    if source is None:
        s = ctx.settings
        token = s.service_token.get_secret_value() if s.service_token else None
        source = HttpAuditHeads({p: u for p, u in s.peers.items() if p in PLATFORM and p != ctx.service}, token)
        ctx.audit_heads = source  # type: ignore[attr-defined]
    return cast(AuditHeadSource, source)
