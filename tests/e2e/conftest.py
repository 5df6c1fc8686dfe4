"""One platform for every end-to-end test: all five services as processes over the embedded stack,
with the province maps and built-in instruments loaded through the registry's API (as `sipas up` does)."""

from __future__ import annotations

import pytest

from sipas_cli.platform import SERVICES, Platform
from sipas_cli.registry_client import MAP34_FROM, MAP63_FROM, RegistryClient, province_id
from sipas_cli.stack import free_port_block


@pytest.fixture(scope="session")
def platform():
    from conftest import traversable_tmp

    names = ("postgres", "nats", "nats_monitor", *SERVICES)
    base = free_port_block(len(names))
    p = Platform(traversable_tmp("sipas-e2e-"), ports={n: base + i for i, n in enumerate(names)},
                 log_format="console")
    try:
        p.start()
        token = p.identity.mint("seed@e2e", "ministry-admin", ttl=3600)
        with RegistryClient(p.url("registry"), token) as client:
            p.seeded = {"builtins": client.load_builtins(), "maps": client.load_maps()}  # type: ignore[attr-defined]
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="session")
def admin(platform):
    return {"Authorization": f"Bearer {platform.identity.mint('admin@test', 'ministry-admin')}"}


@pytest.fixture(scope="session")
def hanoi():
    """Hà Nội continued unchanged through 2025: one unit, 2008 onwards."""
    return province_id("01", MAP63_FROM)


def province_2025(code: str) -> str:
    return province_id(code, MAP34_FROM)
