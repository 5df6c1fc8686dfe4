"""The authorisation matrix, generated from every service's OpenAPI (issue 9, "Must show").

Each service runs in-process over the real stack with a small seeded world: the same resources in
province 01 and in province 79 (and national ones where the service has them). Every route is called
by every role, and without a token; provincial roles (of province 79) on their own province's ids, on
province 01's and on national ones. Then:

- no answer is a 5xx, and every 4xx is ``application/problem+json``;
- a province-79 caller never gets a 2xx on a province-01 resource, read or write, and no successful
  answer to it carries a province-01 id or name (cross-province successes: 0);
- a route declared for some roles (``require_roles``) refuses every other role with 403, and every
  route but the public ones refuses a caller without a token with 401;
- every route is exercised up to a success by someone, or is listed in its world with the reason why not.

The table (route, role, scope, target, status) is written to ``test-artefacts/security/`` (git-ignored).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import worlds
from authz import declared_roles, judge, run_matrix, write_table

pytestmark = pytest.mark.asyncio
SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_by_every_role_in_and_out_of_province(open_api, service, tmp_path):
    api = await open_api(service, **worlds.settings(service, tmp_path))
    world = await getattr(worlds, f"{service}_world")(api)
    rows = await run_matrix(api, world)
    path = write_table(service, rows)
    roles = declared_roles(api.app)
    assert roles, "no route declares its roles: the role refusals below would prove nothing"
    verdict = judge(rows, roles, world)
    print(f"\n{service}: {len(rows)} calls over {len({r.route for r in rows})} routes; {verdict.probes} cross-province "
          f"probes ({verdict.live_probes} on routes 79's own staff use at home), {len(verdict.cross_province)} "
          f"succeeded; table: {path}")
    assert verdict.server_errors == []
    assert verdict.not_problem_json == []
    assert verdict.cross_province == []
    assert verdict.outsider_reads == []
    assert verdict.wrong_refusals == []
    assert verdict.unexercised == []
