"""deploy/k8s renders (tests/deploy/kustomize_lite.py, for the subset the overlays use) and every object
validates: built-in kinds against the Kubernetes 1.30 schemas in strict mode (kubernetes-validate),
the CRDs (CloudNativePG Cluster and ScheduledBackup, ServiceMonitor) by a few structural checks of
the fields we rely on, since their schemas are not in that package. Then the issue's policies."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import kubernetes_validate
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from deploy_checks import ROOT, SERVICES
from kustomize_lite import merge, render

K8S = ROOT / "deploy/k8s"
OVERLAYS = ("dev", "national")
CRDS = {"Cluster", "ScheduledBackup", "ServiceMonitor"}
PUBLIC = {"ballots", "publishing"}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    return request.param, render(K8S / "overlays" / request.param)


def of(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_builtin_object_validates_against_the_kubernetes_schemas(overlay):
    name, objects = overlay
    builtin = [o for o in objects if o["kind"] not in CRDS]
    assert len(builtin) > 50
    for obj in builtin:
        kubernetes_validate.validate(obj, "1.30", strict=True)
        assert obj["metadata"]["namespace"] == {"dev": "sipas-dev", "national": "sipas"}[name]
    assert {o["kind"] for o in objects} - CRDS == {
        "ConfigMap", "Secret", "ServiceAccount", "Deployment", "StatefulSet", "Service", "Job", "PodDisruptionBudget",
        "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress"}


def test_the_schema_check_rejects_a_wrong_manifest(overlay):
    deployment = copy.deepcopy(of(overlay[1], "Deployment")["sipas-ballots"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30", strict=True)


def test_the_crds_have_the_fields_we_rely_on(overlay):
    name, objects = overlay
    clusters, services = of(objects, "Cluster"), of(objects, "Service")
    assert set(clusters) == {f"sipas-{s}-db" for s in SERVICES}
    for service in SERVICES:
        cluster = clusters[f"sipas-{service}-db"]
        assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
        assert cluster["spec"]["instances"] == (1 if name == "dev" else 3)
        assert cluster["spec"]["bootstrap"]["initdb"]["database"] == f"sipas_{service}"
        secret = cluster["spec"]["bootstrap"]["initdb"]["secret"]["name"]
        assert secret in of(objects, "Secret") and cluster["spec"]["storage"]["size"].endswith("Gi")
    for backup in of(objects, "ScheduledBackup").values():
        assert backup["apiVersion"] == "postgresql.cnpg.io/v1" and backup["spec"]["cluster"]["name"] in clusters
        assert len(backup["spec"]["schedule"].split()) == 6  # CloudNativePG schedules have seconds
    monitors = of(objects, "ServiceMonitor")
    assert set(monitors) == {f"sipas-{s}" for s in SERVICES}
    for service in SERVICES:
        monitor = monitors[f"sipas-{service}"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        target = services[f"sipas-{service}"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= target["metadata"]["labels"].items()
        endpoint = monitor["spec"]["endpoints"][0]
        assert endpoint["path"] == "/metrics" and endpoint["port"] in {p["name"] for p in target["spec"]["ports"]}
        # The alert rules group by `service` and select job="sipas", as in compose.
        assert {(r["targetLabel"], r["replacement"]) for r in endpoint["relabelings"]} == {
            ("service", service), ("job", "sipas")}


def test_deployments_are_probed_bounded_and_locked_down(overlay):
    _, objects = overlay
    deployments = of(objects, "Deployment")
    assert set(deployments) == {f"sipas-{s}" for s in SERVICES}
    workloads = [*deployments.values(), *of(objects, "StatefulSet").values(), *of(objects, "Job").values()]
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    for service in SERVICES:
        container = deployments[f"sipas-{service}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
        url = next(e["value"] for e in container["env"] if e["name"] == f"SIPAS_{service.upper()}_DATABASE_URL")
        assert url.startswith("postgresql+asyncpg://") and f"@sipas-{service}-db-rw:5432/sipas_{service}" in url


def test_migrations_run_as_jobs_with_the_service_image(overlay):
    _, objects = overlay
    jobs, deployments = of(objects, "Job"), of(objects, "Deployment")
    for service in SERVICES:
        job = jobs[f"sipas-{service}-migrate"]["spec"]["template"]["spec"]
        container = job["containers"][0]
        assert container["command"] == ["python", "-m", "sipas_kit.migrate", f"sipas_{service}"]
        assert job["restartPolicy"] == "Never"
        app = deployments[f"sipas-{service}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == app["image"] and ":" in app["image"]


def test_busy_services_scale_and_every_service_has_a_disruption_budget(overlay):
    name, objects = overlay
    hpas = of(objects, "HorizontalPodAutoscaler")
    assert set(hpas) == {"sipas-ballots", "sipas-scoring"}
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in of(objects, "Deployment")
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 1
    if name == "national":
        assert hpas["sipas-ballots"]["spec"]["minReplicas"] >= 3
    budgets = of(objects, "PodDisruptionBudget")
    assert set(budgets) == {f"sipas-{s}" for s in SERVICES} | {"sipas-nats"}


def test_only_the_respondent_pages_and_publishing_are_exposed(overlay):
    _, objects = overlay
    ingress = of(objects, "Ingress")
    backends = {p["backend"]["service"]["name"] for i in ingress.values()
                for rule in i["spec"]["rules"] for p in rule["http"]["paths"]}
    assert backends == {f"sipas-{s}" for s in PUBLIC}
    paths = {p["path"] for i in ingress.values() for rule in i["spec"]["rules"] for p in rule["http"]["paths"]
             if p["backend"]["service"]["name"] == "sipas-ballots"}
    assert paths == {"/b"}  # the respondent pages, not the clerk or admin API
    policies = of(objects, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for service in SERVICES:
        sources = [s for rule in policies[f"sipas-{service}"]["spec"]["ingress"] for s in rule["from"]]
        from_ingress = any(s.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                           == "ingress-nginx" for s in sources)
        assert from_ingress == (service in PUBLIC), service
        # Behind the ingress the rate limits must see the respondent's address, not the ingress pod's.
        trusted = of(objects, "ConfigMap")[f"sipas-{service}"]["data"].get("FORWARDED_ALLOW_IPS")
        assert (trusted == "*") == (service in PUBLIC), service


def test_each_database_is_reachable_only_from_its_own_service(overlay):
    _, objects = overlay
    policies = of(objects, "NetworkPolicy")
    workloads = [*of(objects, "Deployment").values(), *of(objects, "Job").values()]
    for service in SERVICES:
        policy = policies[f"sipas-{service}-db"]["spec"]
        assert policy["podSelector"]["matchLabels"] == {"cnpg.io/cluster": f"sipas-{service}-db"}
        on_5432 = [s for rule in policy["ingress"] if {"port": 5432, "protocol": "TCP"} in rule["ports"]
                   for s in rule["from"]]
        assert on_5432 == [{"podSelector": {"matchLabels": {"sipas.gov.vn/database-client": service}}},
                           {"podSelector": {"matchLabels": {"cnpg.io/cluster": f"sipas-{service}-db"}}}]
        clients = {w["metadata"]["name"] for w in workloads
                   if w["spec"]["template"]["metadata"]["labels"].get("sipas.gov.vn/database-client") == service}
        assert clients == {f"sipas-{service}", f"sipas-{service}-migrate"}


def test_nats_is_a_three_node_jetstream_cluster_syncing_every_write(overlay):
    name, objects = overlay
    nats = of(objects, "StatefulSet")["sipas-nats"]
    assert nats["spec"]["replicas"] == 3
    conf = of(objects, "ConfigMap")["sipas-nats"]["data"]["nats.conf"]
    assert "sync_interval: always" in conf and conf.count("nats://sipas-nats-") == 3
    replicas = of(objects, "ConfigMap")["sipas-common"]["data"]["SIPAS_STREAM_REPLICAS"]
    assert replicas == ("1" if name == "dev" else "3")


def test_secrets_are_templates_without_real_values(overlay):
    _, objects = overlay
    for secret in of(objects, "Secret").values():
        assert secret["metadata"]["annotations"]["sipas.gov.vn/template"]
        assert all(str(v).startswith("REPLACE_ME") for k, v in secret["stringData"].items() if k != "username")


def test_the_renderer_refuses_what_it_does_not_render(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(ValueError, match="configMapGenerator"):
        render(tmp_path)
    assert merge({"a": [{"name": "x", "v": 1}, {"name": "y"}], "b": 1, "c": [1]},
                 {"a": [{"name": "x", "v": 2}], "b": None, "c": [2]}) == {"a": [{"name": "x", "v": 2}, {"name": "y"}],
                                                                       "c": [2]}
