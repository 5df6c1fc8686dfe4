"""Static checks of the deployment files (no Docker engine here): what compose runs is complete."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")


def test_compose_runs_every_service_after_its_migrations():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    init = (ROOT / "deploy/compose/init-databases.sql").read_text()
    assert "sync_interval: always" in compose["configs"]["nats_conf"]["content"]
    for name in SERVICES:
        svc, migrate = services[name], services[f"{name}-migrate"]
        assert svc["depends_on"][f"{name}-migrate"]["condition"] == "service_completed_successfully"
        assert migrate["command"] == ["python", "-m", "sipas_kit.migrate", f"sipas_{name}"]
        url = svc["environment"][f"SIPAS_{name.upper()}_DATABASE_URL"]
        assert url.endswith(f"/sipas_{name}") and f"CREATE DATABASE sipas_{name};" in init
        assert (ROOT / svc["build"]["dockerfile"]).exists()


def test_dockerfiles_run_as_non_root_with_a_health_check():
    for name in SERVICES:
        text = (ROOT / f"services/{name}/Dockerfile").read_text()
        assert "USER 10001" in text and "HEALTHCHECK" in text and f'"-m", "sipas_{name}"' in text
