"""Static checks of the deployment files (no Docker engine here): what compose runs is complete.

`docker compose config` is not available, so the file is parsed as YAML (anchors and merge keys
resolved as compose resolves them) and its structure checked: every service after its migrations,
every mounted file present, every `${VAR}` either defaulted or required with a message."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_service_after_its_migrations():
    services = compose()["services"]
    init = (ROOT / "deploy/compose/init-databases.sql").read_text()
    for name in SERVICES:
        svc, migrate = services[name], services[f"{name}-migrate"]
        assert svc["depends_on"][f"{name}-migrate"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["nats"]["condition"] == "service_healthy"
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert migrate["command"] == ["python", "-m", "sipas_kit.migrate", f"sipas_{name}"]
        assert migrate["image"] == svc["image"] and migrate["build"] == svc["build"]  # one image, two commands
        url = svc["environment"][f"SIPAS_{name.upper()}_DATABASE_URL"]
        assert url == migrate["environment"][f"SIPAS_{name.upper()}_DATABASE_URL"]
        assert url.endswith(f"/sipas_{name}") and f"CREATE DATABASE sipas_{name};" in init
        assert (ROOT / svc["build"]["dockerfile"]).exists()
        assert svc["read_only"] is True and svc["tmpfs"] == ["/tmp"] and svc["cap_drop"] == ["ALL"]
        assert svc["environment"]["SIPAS_NATS_URL"] == "nats://nats:4222"
        peers = {k.split("__")[1].lower() for k in svc["environment"] if k.startswith("SIPAS_PEERS__")}
        assert peers == set(SERVICES)  # gap filling can reach every producer


def test_compose_nats_syncs_every_write_from_its_config_file():
    nats = compose()["services"]["nats"]
    mount = next(v for v in nats["volumes"] if v.endswith(":/etc/nats/nats.conf:ro"))
    conf = (ROOT / mount.split(":")[0]).read_text()
    assert re.search(r"^\s*sync_interval:\s*always\s*$", conf, re.M)
    assert re.search(r"^\s*store_dir:\s*/data\s*$", conf, re.M)
    assert any(v.startswith("nats-data:/data") for v in nats["volumes"])


def test_compose_monitoring_is_provisioned_from_the_repository():
    doc = compose()
    prometheus, grafana = doc["services"]["prometheus"], doc["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"] if v.startswith("./")}
    assert mounts == {"/etc/prometheus/prometheus.yml": "./deploy/prometheus/prometheus.yml",
                      "/etc/prometheus/alerts.yml": "./deploy/prometheus/alerts.yml"}
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    scraped = {t.split(":")[0] for c in config["scrape_configs"] for s in c["static_configs"] for t in s["targets"]}
    assert set(SERVICES) <= scraped and set(SERVICES) <= set(doc["services"])
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/sipas.yml").read_text())
    assert grafana_mounts[provider["providers"][0]["options"]["path"]] == "./deploy/grafana/dashboards"
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_mounts_only_files_that_exist_and_names_declared_volumes_and_secrets():
    doc = compose()
    for name, svc in doc["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in doc["volumes"], (name, source)
        for secret in svc.get("secrets", []):
            assert secret in doc["secrets"], (name, secret)
        for dep in svc.get("depends_on", {}):
            assert dep in doc["services"], (name, dep)


def test_compose_variables_are_defaulted_or_required_with_a_message():
    text = (ROOT / "docker-compose.yml").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for match in re.finditer(r"\$\{([^}]*)\}", body):
        assert re.fullmatch(r"[A-Z_]+(:-[^}]*|:\?.+)", match.group(1)), match.group(0)
    assert "sipas-dev-only" not in text  # no password in the file


def test_dockerfiles_are_multi_stage_slim_non_root_and_read_only_friendly():
    for name in SERVICES:
        text = (ROOT / f"services/{name}/Dockerfile").read_text()
        stages = re.findall(r"^FROM (\S+)", text, re.M)
        assert stages == ["python:3.11-slim", "python:3.11-slim"], name
        runtime = text.split("\nFROM python:3.11-slim\n", 1)[1]
        assert "COPY --from=build /venv /venv" in runtime and "COPY libs" not in runtime
        assert re.search(r"^USER 10001(:10001)?$", runtime, re.M)
        assert "PYTHONDONTWRITEBYTECODE=1" in runtime and "HEALTHCHECK" in runtime and "/healthz" in runtime
        assert runtime.rstrip().endswith(f'CMD ["python", "-m", "sipas_{name}"]')
        assert f"python -m sipas_kit.migrate sipas_{name}" in text  # the migration command, documented
        assert "install -d -o 10001 -g 10001 /var/lib/sipas" in runtime  # the one writable place
    assert "SIPAS_PUBLISHING_DATA_DIR=/var/lib/sipas/" in (ROOT / "services/publishing/Dockerfile").read_text()
    assert "SIPAS_SAMPLING_MASTER_KEY_FILE=/var/lib/sipas/" in (ROOT / "services/sampling/Dockerfile").read_text()
