"""Helm chart checks without a cluster: lint, offline render (default and production values),
kubernetes-validate against pinned Kubernetes schemas, and invariants of the rendered manifests."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    CHART,
    CRD_KINDS,
    KUBERNETES_TARGET,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    README_END,
    README_START,
    REPO,
    Rendered,
    documented_params,
    is_hook,
    leaf_paths,
    prod_values,
    readme_with_tables,
    render,
    require_tool,
    secret_settings,
    settings_env_names,
)

GPU_RESOURCE = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render(None)


@pytest.fixture(scope="module")
def prod() -> Rendered:
    return render(prod_values())


@pytest.fixture(scope="module", params=["default", "production"])
def rendered(request: pytest.FixtureRequest, default: Rendered, prod: Rendered) -> Rendered:
    return default if request.param == "default" else prod


# --------------------------------------------------------------------------------------------------
# lint, schema, offline validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_name", ["default", "production"])
def test_chart_lints_clean(values_name: str) -> None:
    helm = require_tool("helm_python")
    values = prod_values() if values_name == "production" else None
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBERNETES_TARGET}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(rendered: Rendered, kube_version: str) -> None:
    kv = require_tool("kubernetes_validate")
    crds = []
    for doc in rendered.docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            crds.append(doc)
            continue
        try:
            kv.validate(doc, kube_version, strict=True)
        except kv.ValidationError as exc:  # pragma: no cover - the message is the point
            path = ".".join(str(p) for p in exc.path)
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            pytest.fail(f"{name} invalid for Kubernetes {kube_version}: {path}: {exc.message}")
    for doc in crds:
        assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
        assert isinstance(doc["spec"], dict)


def test_custom_resources_are_well_formed(prod: Rendered) -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in prod.docs}
    assert kinds & CRD_KINDS == CRD_KINDS, "production values exercise every custom resource"
    scaled = prod.one("ScaledObject", "-worker")
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": prod.one("Deployment", "-worker")["metadata"]["name"],
    }
    assert 0 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert all(isinstance(v, str) for v in trigger["metadata"].values()), "KEDA metadata values are strings"
    auth = prod.one("TriggerAuthentication", "-worker")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    monitor = prod.one("ServiceMonitor", "")
    endpoints = {e["port"]: e for e in monitor["spec"]["endpoints"]}
    assert endpoints["http"]["path"] == "/metrics"
    key_ref = prod.values["metrics"]["serviceMonitor"]["apiKeySecret"]
    assert endpoints["http"]["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": key_ref["name"], "key": key_ref["key"]},
    }, "the API's /metrics needs a key with scope metrics"
    assert prod.values["metrics"]["serviceMonitor"]["labels"].items() <= monitor["metadata"]["labels"].items()


def _alert_rules(rendered: Rendered) -> list[dict[str, Any]]:
    rule = rendered.one("PrometheusRule", "")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_alert_rules_read_what_the_service_exports(prod: Rendered) -> None:
    """An alert on a metric nobody exports never fires: every dmask_* series an alert reads is a metric
    name in services/, and the API-down alert names the Service that the ServiceMonitor scrapes."""
    source = "".join(p.read_text() for p in (REPO / "services").rglob("*.py"))
    exported = set(re.findall(r'"(dmask_[a-z0-9_]+)"', source))
    rules = _alert_rules(prod)
    read = {name for r in rules for name in re.findall(r"dmask_[a-z0-9_]+", r["expr"])}
    assert read and read <= exported, f"alerts read series nobody exports: {sorted(read - exported)}"
    api_service = prod.one("Service", "-api")["metadata"]["name"]
    (down,) = [r for r in rules if r["alert"] == "DMaskAPIDown"]
    assert f'service="{api_service}"' in down["expr"]
    assert all(f'namespace="{NAMESPACE}"' in r["expr"] for r in rules), "alerts stay within the release"
    for r in rules:
        assert r["labels"]["severity"] in {"warning", "critical"} and r["annotations"]["summary"], r["alert"]


def test_alert_rules_are_the_runbooks(prod: Rendered) -> None:
    """docs/operations.md says what each alert means and what to do: the chart ships exactly those."""
    runbook = (REPO / "docs" / "operations.md").read_text().split("## 7. Alerts", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(DMask[A-Za-z]+)` \|", runbook, flags=re.M))
    assert {r["alert"] for r in _alert_rules(prod)} == documented


def test_alert_rules_need_the_service_monitor() -> None:
    values = prod_values()
    values["metrics"]["serviceMonitor"]["enabled"] = False
    with pytest.raises(Exception, match="needs metrics.serviceMonitor.enabled"):
        render(values)


def test_default_render_has_expected_objects(default: Rendered) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in default.docs)
    assert ("Deployment", "dm-digital-mask-api") in kinds
    assert ("Deployment", "dm-digital-mask-worker") in kinds
    assert ("Job", "dm-digital-mask-migrate") in kinds
    assert ("Service", "dm-digital-mask-api") in kinds
    assert ("ServiceAccount", "dm-digital-mask") in kinds
    assert {"PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "Secret"} <= {k for k, _ in kinds}
    # Optional objects stay off by default.
    assert not default.of_kind("Ingress") and not default.of_kind("HorizontalPodAutoscaler")
    assert not default.of_kind("ScaledObject") and not default.of_kind("ServiceMonitor")
    assert not default.of_kind("PrometheusRule")


def test_production_render_has_optional_objects(prod: Rendered) -> None:
    ingress = prod.one("Ingress", "-api")
    assert ingress["spec"]["tls"][0]["hosts"] == [prod.values["api"]["ingress"]["hostname"]]
    hpa = prod.one("HorizontalPodAutoscaler", "-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == prod.one("Deployment", "-api")["metadata"]["name"]
    assert "replicas" not in prod.one("Deployment", "-api")["spec"], "the HPA owns the API replica count"
    assert "replicas" not in prod.one("Deployment", "-worker")["spec"], "KEDA owns the worker replica count"
    for component in ("api", "worker"):
        pdb = prod.one("PodDisruptionBudget", f"-{component}")
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component


@pytest.mark.parametrize(
    "bad",
    [
        {"worker": {"gpu": {"count": "one"}}},
        {"api": {"replicaCount": "2"}},
        {"config": {"queue_name": 5}},
        {"config": {"max_upload_bytes": "2GB"}},
        {"config": {"delete_originals": "yes"}},
        {"externalDatabase": {"port": "5432"}},
        {"externalRedis": {"tls": "true"}},
        {"worker": {"terminationGracePeriodSeconds": "1h"}},
        {"networkPolicy": {"enabled": "false"}},
        {"image": {"digest": "latest"}},
        {"config": {"queue_nmae": "gpu"}},
        {"unknownTopLevel": True},
    ],
    ids=lambda v: json.dumps(v, sort_keys=True),
)
def test_schema_rejects_wrong_values(bad: dict[str, Any]) -> None:
    helm = require_tool("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(bad)
        with pytest.raises(helm.HelmValuesError):
            chart.render(bad, name="dm", namespace="dmask")


def test_broken_values_file_fails_lint(tmp_path: Path) -> None:
    helm = require_tool("helm_python")
    broken = tmp_path / "broken.yaml"
    broken.write_text("worker:\n  gpu:\n    count: two\napi:\n  replicaCount: many\n")
    report = helm.lint(str(CHART), yaml.safe_load(broken.read_text()), strict=True)
    assert any("/worker/gpu/count" in e for e in report["errors"]), report
    assert any("/api/replicaCount" in e for e in report["errors"]), report


def test_schema_accepts_shipped_values(prod: Rendered) -> None:
    """values.yaml and the merged production values pass the schema with a second validator."""
    jsonschema = require_tool("jsonschema")
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for values in (yaml.safe_load((CHART / "values.yaml").read_text()), prod.values):
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(values)]
        assert errors == []


# --------------------------------------------------------------------------------------------------
# invariants of the rendered manifests
# --------------------------------------------------------------------------------------------------


def test_gpu_limits_only_on_worker(rendered: Rendered) -> None:
    for doc, _, container in rendered.containers():
        resources = container.get("resources", {})
        requested = {**resources.get("requests", {}), **resources.get("limits", {})}
        is_worker = doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith("-worker")
        if is_worker:
            assert resources["limits"][GPU_RESOURCE] == rendered.values["worker"]["gpu"]["count"]
            assert GPU_RESOURCE not in resources.get("requests", {}), "extended resources: limits only"
        else:
            assert GPU_RESOURCE not in requested, f"{doc['metadata']['name']} must not get a GPU"


def test_gpu_can_be_disabled() -> None:
    rendered = render({"worker": {"gpu": {"enabled": False}, "device": "cpu"}})
    for _, _, container in rendered.containers():
        assert GPU_RESOURCE not in container.get("resources", {}).get("limits", {})


def test_worker_scheduling_on_gpu_nodes(prod: Rendered) -> None:
    pod = prod.one("Deployment", "-worker")["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == GPU_RESOURCE for t in pod["tolerations"])
    api_pod = prod.one("Deployment", "-api")["spec"]["template"]["spec"]
    assert "runtimeClassName" not in api_pod and "nodeSelector" not in api_pod


def test_every_container_is_hardened(rendered: Rendered) -> None:
    seen = 0
    for doc, pod, container in rendered.containers():
        seen += 1
        where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
        pod_sc = pod.get("securityContext", {})
        sc = container.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("privileged", False) is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not sc.get("capabilities", {}).get("add"), where
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, where
        # A read-only root filesystem needs a writable /tmp (TMPDIR of the images).
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], where
    assert seen >= 3


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(rendered: Rendered) -> None:
    job = rendered.one("Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert re.fullmatch(r"-?\d+", annotations["helm.sh/hook-weight"])
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) >= {"before-hook-creation"}
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["db", "upgrade"]
    assert container["image"] == rendered.container("-api")["image"], "migrations ship with the API image"
    env = rendered.effective_env(container)
    assert "DMASK_DATABASE_URL" in env
    # Hooks run before the release's ConfigMap/Secret/ServiceAccount exist: the Job may only use
    # objects that are hooks of the same event with a lower weight, or pre-existing Secrets.
    assert not container.get("envFrom"), "the release ConfigMap does not exist yet at pre-install"
    assert (
        "serviceAccountName" not in pod
        or pod["serviceAccountName"] == rendered.values["migrations"]["serviceAccountName"]
    )
    job_weight = int(annotations["helm.sh/hook-weight"])
    hook_secrets = {d["metadata"]["name"]: d for d in rendered.of_kind("Secret") if is_hook(d)}
    for ref in _secret_refs(container):
        if ref["name"] in hook_secrets:
            secret_annotations = hook_secrets[ref["name"]]["metadata"]["annotations"]
            assert int(secret_annotations["helm.sh/hook-weight"]) < job_weight
            assert secret_annotations["helm.sh/hook"] == annotations["helm.sh/hook"]
        else:
            assert ref["name"] in _existing_secret_names(rendered.values), ref
    # Long-running workloads are ordinary release objects, created after the hook succeeded.
    for doc, _ in rendered.workloads():
        if doc["kind"] != "Job":
            assert not is_hook(doc)


def test_migration_hook_secret_with_chart_managed_password() -> None:
    rendered = render({"externalDatabase": {"password": "s3cret"}})
    job = rendered.one("Job", "-migrate")
    refs = _secret_refs(job["spec"]["template"]["spec"]["containers"][0])
    (ref,) = [r for r in refs if r["key"] == "database-password"]
    hook_secret = rendered.secrets()[ref["name"]]
    assert is_hook(hook_secret)
    assert base64.b64decode(hook_secret["data"]["database-password"]).decode() == "s3cret"
    # The Deployments read the release Secret, which is not a hook.
    api_refs = _secret_refs(rendered.container("-api"))
    (api_ref,) = [r for r in api_refs if r["key"] == "database-password"]
    assert not is_hook(rendered.secrets()[api_ref["name"]])


def test_keda_queue_is_the_queue_the_worker_consumes(prod: Rendered) -> None:
    worker_env = prod.effective_env(prod.container("-worker"))
    scaled = prod.one("ScaledObject", "-worker")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["listName"] == worker_env["DMASK_QUEUE_NAME"]
    assert worker_env["DMASK_QUEUE_NAME"] == prod.values["config"]["queue_name"] == "gpu-masking"
    # The trigger watches the same Redis database the broker URL points at.
    broker = worker_env["DMASK_BROKER_URL"]
    host, port = trigger["metadata"]["address"].split(":")
    assert f"@{host}:{port}/{trigger['metadata']['databaseIndex']}" in broker
    assert broker.startswith("rediss://") == (trigger["metadata"]["enableTLS"] == "true")


def test_keda_follows_queue_name_override() -> None:
    rendered = render({"config": {"queue_name": "gpu-night"}, "worker": {"keda": {"enabled": True}}})
    worker_env = rendered.effective_env(rendered.container("-worker"))
    (trigger,) = rendered.one("ScaledObject", "-worker")["spec"]["triggers"]
    assert trigger["metadata"]["listName"] == worker_env["DMASK_QUEUE_NAME"] == "gpu-night"
    assert "authenticationRef" not in trigger, "no Redis password configured: no TriggerAuthentication"


def test_every_secret_reference_resolves(rendered: Rendered) -> None:
    secrets = rendered.secrets()
    existing = _existing_secret_names(rendered.values)
    refs: list[tuple[str, dict[str, Any]]] = []
    for doc, _, container in rendered.containers():
        refs += [(f"{doc['kind']}/{doc['metadata']['name']}", r) for r in _secret_refs(container)]
    for auth in rendered.of_kind("TriggerAuthentication"):
        where = f"TriggerAuthentication/{auth['metadata']['name']}"
        refs += [(where, r) for r in auth["spec"]["secretTargetRef"]]
    assert refs
    for where, ref in refs:
        if ref["name"] in secrets:
            data = {**secrets[ref["name"]].get("data", {}), **secrets[ref["name"]].get("stringData", {})}
            assert ref["key"] in data, f"{where}: key {ref['key']} missing in Secret {ref['name']}"
        else:
            assert ref["name"] in existing, f"{where}: Secret {ref['name']} neither rendered nor configured"
    for volume_doc, pod in rendered.workloads():
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets | dict.fromkeys(existing), volume_doc


def test_hmac_key_from_values_and_generated() -> None:
    explicit = render({"auth": {"hmacKey": "k" * 48}})
    secret = explicit.one("Secret", "dm-digital-mask")
    assert base64.b64decode(secret["data"]["hmac-key"]).decode() == "k" * 48
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    generated = render(None).one("Secret", "dm-digital-mask")
    assert len(base64.b64decode(generated["data"]["hmac-key"])) == 64
    assert "DMASK_HMAC_KEY was generated" in render(None).notes


def test_all_settings_reach_the_containers(prod: Rendered) -> None:
    """Every field of services/settings.py is configurable: it reaches the API or the worker
    (production values set the optional ones). A new setting must be added to the chart."""
    settings = settings_env_names()
    api_env = prod.effective_env(prod.container("-api"))
    worker_env = prod.effective_env(prod.container("-worker"))
    missing = sorted(set(settings) - set(api_env) - set(worker_env))
    assert missing == [], f"settings not deployable through helm/digital-mask: {missing}"
    worker_only = {n for n in settings if n.startswith("DMASK_WORKER_")}
    api_only = {"DMASK_HOST", "DMASK_PORT"}
    for name in set(settings) - worker_only - api_only:
        assert name in api_env and name in worker_env, f"{name} must reach both the API and the workers"
    # No DMASK_* variable that the application would ignore (typos, stale settings).
    for env in (api_env, worker_env):
        unknown = sorted(n for n in env if n.startswith("DMASK_") and n not in settings)
        assert unknown == []


def test_secrets_never_in_configmaps(rendered: Rendered) -> None:
    sensitive = secret_settings()
    assert {"DMASK_HMAC_KEY", "DMASK_S3_SECRET_KEY", "DMASK_DATABASE_URL"} <= sensitive
    for configmap in rendered.of_kind("ConfigMap"):
        leaked = sensitive & set(configmap.get("data", {}))
        assert not leaked, f"{configmap['metadata']['name']} holds {leaked}"
    for _, _, container in rendered.containers():
        for item in container.get("env", []):
            if item["name"] in sensitive - {"DMASK_DATABASE_URL", "DMASK_BROKER_URL"}:
                assert "secretKeyRef" in item.get("valueFrom", {}), item["name"]
            if item["name"] in {"DMASK_DATABASE_URL", "DMASK_BROKER_URL"} and "value" in item:
                # Composed URLs carry the password only as a $(VAR) reference to a secretKeyRef.
                assert not re.search(r":[^/@$]+@", item["value"].split("://", 1)[1]), item


def test_url_password_references_are_defined_first() -> None:
    """Kubernetes expands $(VAR) only from variables defined earlier in the list."""
    rendered = render({"externalDatabase": {"password": "pw"}, "externalRedis": {"password": "pw"}})
    for _, _, container in rendered.containers():
        names = [e["name"] for e in container.get("env", [])]
        for index, item in enumerate(container.get("env", [])):
            for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", item.get("value", "")):
                assert ref in names[:index], f"{item['name']} uses $({ref}) before it is defined"
    env = rendered.effective_env(rendered.container("-worker"))
    assert (
        env["DMASK_DATABASE_URL"] == "postgresql+psycopg://dmask:$(DATABASE_PASSWORD)@postgresql:5432/dmask"
    )
    assert env["DMASK_BROKER_URL"] == "redis://:$(REDIS_PASSWORD)@redis-master:6379/0"


def test_database_url_from_existing_secret_key() -> None:
    rendered = render({"externalDatabase": {"existingSecret": "pg", "existingSecretUrlKey": "url"}})
    for doc, _, container in rendered.containers():
        env = {e["name"]: e for e in container.get("env", [])}
        ref = env["DMASK_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "pg", "key": "url"}, doc["metadata"]["name"]


def test_configmap_values_are_exact_strings(default: Rendered) -> None:
    (configmap,) = default.of_kind("ConfigMap")
    data = configmap["data"]
    assert all(isinstance(v, str) for v in data.values())
    assert data["DMASK_MAX_UPLOAD_BYTES"] == "2147483648", "no float formatting of large integers"
    assert data["DMASK_QUEUE_NAME"] == "gpu"
    assert data["DMASK_AUTO_MIGRATE"] == "false", "the hook Job migrates, not the API"
    assert "DMASK_ARTIFACT_RETENTION_DAYS" not in data, "null settings stay unset"


def test_api_probes_are_http(rendered: Rendered) -> None:
    container = rendered.container("-api")
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    env = rendered.effective_env(container)
    assert env["DMASK_PORT"] == str(port) and container["args"][-1] == str(port)
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    service = rendered.one("Service", "-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_worker_probes_read_the_heartbeat_file(rendered: Rendered) -> None:
    container = rendered.container("-worker")
    env = rendered.effective_env(container)
    heartbeat = env["DMASK_WORKER_HEARTBEAT_FILE"]
    assert heartbeat.startswith("/tmp/"), "the heartbeat lives on the writable /tmp emptyDir"
    for probe_name in ("livenessProbe", "startupProbe"):
        command = container[probe_name]["exec"]["command"]
        script = " ".join(command)
        assert heartbeat in script
        assert "celery" not in script and "inspect" not in script
        assert "httpGet" not in container[probe_name]
    assert "readinessProbe" not in container, "workers serve no traffic"


def test_worker_heartbeat_probe_command_works(tmp_path: Path) -> None:
    """Execute the rendered probe: fresh file passes, stale or missing file fails."""
    heartbeat = tmp_path / "hb"
    rendered = render({"worker": {"heartbeat": {"file": str(heartbeat), "maxAgeSeconds": 30}}})
    command = rendered.container("-worker")["livenessProbe"]["exec"]["command"]

    def probe() -> int:
        return subprocess.run(command, check=False, timeout=10).returncode

    assert probe() != 0, "missing heartbeat file"
    heartbeat.touch()
    assert probe() == 0, "fresh heartbeat"
    stale = time.time() - 120
    os.utime(heartbeat, (stale, stale))
    assert probe() != 0, "stale heartbeat"


def test_worker_shutdown_grace_outlasts_a_video_job(rendered: Rendered) -> None:
    pod = rendered.one("Deployment", "-worker")["spec"]["template"]["spec"]
    api_pod = rendered.one("Deployment", "-api")["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    max_video = float(rendered.effective_env(rendered.container("-worker"))["DMASK_MAX_VIDEO_SECONDS"])
    assert grace >= 2 * max_video, "a max-length video must be able to finish after SIGTERM"
    assert grace > api_pod["terminationGracePeriodSeconds"]
    strategy = rendered.one("Deployment", "-worker")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxSurge"] == 0, "no surge pod waiting for a GPU"
    env = rendered.effective_env(rendered.container("-worker"))
    remap = rendered.values["worker"]["celery"]["remapSigterm"]
    assert (env.get("REMAP_SIGTERM") == "SIGQUIT") == remap


def test_network_policies(rendered: Rendered) -> None:
    values = rendered.values
    api = rendered.one("NetworkPolicy", "-api")["spec"]
    worker = rendered.one("NetworkPolicy", "-worker")["spec"]
    migrate = rendered.one("NetworkPolicy", "-migrate")
    assert is_hook(migrate)
    # Only the API accepts ingress (worker metrics scraping is the one opt-in exception).
    api_ports = [p["port"] for rule in api["ingress"] for p in rule["ports"]]
    assert api_ports == [values["api"]["containerPorts"]["http"]]
    assert migrate["spec"]["ingress"] == []
    if values["worker"]["metrics"]["enabled"]:
        metrics_ports = [p["port"] for r in worker["ingress"] for p in r["ports"]]
        assert metrics_ports == [values["worker"]["metrics"]["port"]]
        assert all(rule.get("from") for rule in worker["ingress"]), "metrics only from the scrapers"
    else:
        assert worker["ingress"] == []
    for spec in (api, worker, migrate["spec"]):
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    backends = {
        53,
        values["externalDatabase"]["port"],
        values["externalRedis"]["port"],
        int(values["externalS3"]["endpoint"].rsplit(":", 1)[1]),
    }
    egress_ports = {p["port"] for rule in worker["egress"] for p in rule["ports"]}
    assert egress_ports == backends, "workers egress only to DNS, PostgreSQL, Redis and object storage"
    migrate_ports = {p["port"] for rule in migrate["spec"]["egress"] for p in rule["ports"]}
    assert migrate_ports == {53, values["externalDatabase"]["port"]}
    if not values["networkPolicy"]["allowExternal"]:
        assert all(rule.get("from") for rule in api["ingress"])


def test_forwarded_headers_trusted_only_behind_the_policy(rendered: Rendered) -> None:
    env = rendered.effective_env(rendered.container("-api"))
    if env.get("FORWARDED_ALLOW_IPS") == "*":
        policy = rendered.values["networkPolicy"]
        assert policy["enabled"] and not policy["allowExternal"], "X-Forwarded-For spoofable from anywhere"


def test_pods_select_their_own_policies(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    for doc, _ in rendered.workloads():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, f"{doc['metadata']['name']} is selected by {len(matching)} policies"


def test_no_latest_tags_and_digest_wins(rendered: Rendered) -> None:
    for _, _, container in rendered.containers():
        image = container["image"]
        assert not image.endswith(":latest") and (":" in image.rsplit("/", 1)[-1] or "@sha256:" in image)
    prod = render(prod_values())
    assert prod.container("-api")["image"].startswith("registry.hospital.example/digitalmask/api@sha256:")


def test_rendered_yaml_is_tidy(rendered: Rendered) -> None:
    for path, text in rendered.raw.items():
        untidy = [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()]
        assert untidy == [], f"{path}: trailing whitespace on lines {untidy}"


def test_notes_render(default: Rendered, prod: Rendered) -> None:
    assert "port-forward" in default.notes and "WARNING" in default.notes
    assert "https://digitalmask.hospital.example/" in prod.notes
    assert "KEDA scales the workers" in prod.notes


# --------------------------------------------------------------------------------------------------
# documentation of values.yaml
# --------------------------------------------------------------------------------------------------


def test_every_value_is_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    params = [p.key for p in documented_params(text)]
    assert len(params) == len(set(params)), "duplicate @param"
    for key in params:
        node: Any = values
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"@param {key} names no value"
            node = node[part]
    undocumented = [
        leaf for leaf in leaf_paths(values) if not any(leaf == k or leaf.startswith(f"{k}.") for k in params)
    ]
    assert undocumented == [], f"values without ## @param: {undocumented}"
    # The settings under `config` are named exactly like services/settings.py fields.
    settings = settings_env_names()
    for key in values["config"]:
        assert f"DMASK_{key}".upper() in settings, f"config.{key} is not a setting"


def test_readme_tables_are_current() -> None:
    readme = (CHART / "README.md").read_text()
    assert README_START in readme and README_END in readme
    assert readme == readme_with_tables(readme), (
        "helm/digital-mask/README.md is stale: run "
        ".venv/bin/python tests/deploy/deploy_support.py --write-readme"
    )
    assert "helm install" in readme and "helm upgrade" in readme


# --------------------------------------------------------------------------------------------------


def _secret_refs(container: dict[str, Any]) -> list[dict[str, Any]]:
    refs = []
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs.append(ref)
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, "whole-Secret envFrom hides which keys are needed"
    return refs


def _existing_secret_names(values: dict[str, Any]) -> set[str]:
    names = {
        values["auth"]["existingSecret"],
        values["externalDatabase"]["existingSecret"],
        values["externalRedis"]["existingSecret"],
        values["externalS3"]["existingSecret"],
    }
    return {n for n in names if n}
