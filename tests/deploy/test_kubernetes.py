"""deploy/kubernetes/: validated offline against the Kubernetes JSON schemas shipped in the
kubernetes-validate package (strict: unknown fields are errors), on the oldest and newest
Kubernetes versions it ships; and checked for the hardening and wiring the deployment needs.

The ServiceMonitor (monitoring.coreos.com/v1) is a custom resource with no schema in that
package, and no PyPI package ships the Prometheus Operator's CRD as a file. It gets a careful
structural test instead: required fields, every key against the CRD's field names for the
parts we use, durations against the CRD's pattern, and its references (Service labels, port
name, Secret) against the other manifests.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from codequal import __version__
from codequal.config import is_secret
from tests.deploy.conftest import KUBERNETES, compose, known_setting, load_yaml_documents

# The oldest and the newest schema set kubernetes-validate ships.
VERSIONS = (kubernetes_validate.utils.all_versions()[0], kubernetes_validate.utils.latest_version())
SECRET_NAME = "codequal-secrets"
# From the Prometheus Operator's ServiceMonitor CRD (monitoring.coreos.com_servicemonitors,
# operator v0.80 and the fields added since).
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                      r"(([0-9]+)s)?(([0-9]+)ms)?)$")  # fmt: skip
SERVICEMONITOR_SPEC_FIELDS = {
    "selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
    "podTargetLabels", "sampleLimit", "targetLimit", "scrapeProtocols", "labelLimit",
    "labelNameLengthLimit", "labelValueLengthLimit", "keepDroppedTargets", "attachMetadata",
    "scrapeClass", "bodySizeLimit", "fallbackScrapeProtocol", "nativeHistogramBucketLimit",
    "nativeHistogramMinBucketFactor", "scrapeClassicHistograms", "selectorMechanism",
    "convertClassicHistogramsToNHCB", "serviceDiscoveryRole",
}  # fmt: skip
ENDPOINT_FIELDS = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout",
    "tlsConfig", "bearerTokenFile", "bearerTokenSecret", "authorization", "honorLabels",
    "honorTimestamps", "trackTimestampsStaleness", "basicAuth", "oauth2", "metricRelabelings",
    "relabelings", "proxyUrl", "noProxy", "proxyFromEnvironment", "proxyConnectHeader",
    "followRedirects", "enableHttp2", "filterRunning",
}  # fmt: skip


def manifests() -> dict[str, dict[str, Any]]:
    """kind -> resource (one of each kind here); the workers' Deployment is "Deployment/worker"."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            kind = doc["kind"]
            if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "worker":
                kind = f"{kind}/worker"
            assert kind not in found, f"second {kind} in {path.name}"
            found[kind] = doc
    return found


def core_manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(kind, doc) for kind, doc in manifests().items() if kind != "ServiceMonitor"]


def pod(deployment: str = "Deployment") -> dict[str, Any]:
    spec: dict[str, Any] = manifests()[deployment]["spec"]["template"]["spec"]
    return spec


def container(deployment: str = "Deployment") -> dict[str, Any]:
    containers = pod(deployment)["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    for kind, doc in core_manifests():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            pytest.fail(f"{kind} is invalid for Kubernetes {version} at {path}: {exc.message}")


def test_the_strict_schema_check_catches_a_misspelled_field() -> None:
    deployment = manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFileSystem"
    ] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_manifests_are_a_deployment_service_configmap_pdb_and_servicemonitor() -> None:
    assert set(manifests()) == {
        "Deployment", "Deployment/worker", "Service", "ConfigMap", "PodDisruptionBudget",
        "ServiceMonitor",
    }  # fmt: skip


def test_the_secret_is_referenced_and_never_committed() -> None:
    assert "Secret" not in manifests()
    refs = [
        source["secretRef"]["name"] for source in container()["envFrom"] if "secretRef" in source
    ]
    assert refs == [SECRET_NAME]
    config = manifests()["ConfigMap"]["data"]
    leaked = [key for key in config if is_secret(key.lower())]
    assert not leaked, f"secrets belong in {SECRET_NAME}, not the ConfigMap: {leaked}"


def test_the_configmap_holds_only_codequal_settings() -> None:
    unknown = [key for key in manifests()["ConfigMap"]["data"] if not known_setting(key)]
    assert not unknown, unknown


def test_the_api_and_the_workers_run_their_roles_and_only_the_api_gets_traffic() -> None:
    assert container()["args"][-2:] == ["--role", "api"]
    assert container("Deployment/worker")["args"][-2:] == ["--role", "worker"]
    worker = manifests()["Deployment/worker"]["spec"]["template"]
    service = manifests()["Service"]["spec"]["selector"]
    assert not service.items() <= worker["metadata"]["labels"].items()
    assert worker["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # Same image, settings, secret and hardening as the API.
    for key in ("image", "envFrom", "securityContext", "volumeMounts", "livenessProbe"):
        assert container("Deployment/worker")[key] == container()[key], key
    assert pod("Deployment/worker")["securityContext"] == pod()["securityContext"]


def test_the_container_runs_hardened() -> None:
    assert pod()["securityContext"]["runAsNonRoot"] is True
    assert pod()["securityContext"]["runAsUser"] != 0
    assert pod()["automountServiceAccountToken"] is False
    context = container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]


def test_the_only_writable_paths_are_emptydir_volumes_for_the_data_dir_and_tmp() -> None:
    volumes = {v["name"]: v for v in pod()["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    data_dir = manifests()["ConfigMap"]["data"]["CODEQUAL_DATA_DIR"]
    assert set(mounts) == {data_dir, "/tmp"}
    for name in mounts.values():
        assert "emptyDir" in volumes[name], f"{name} is not an emptyDir"
        assert volumes[name]["emptyDir"].get("sizeLimit"), f"{name} has no size limit"


def test_probes_use_live_and_ready_and_resources_are_bounded() -> None:
    probes = container()
    assert probes["livenessProbe"]["httpGet"]["path"] == "/live"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/ready"
    resources = probes["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_the_image_is_the_one_compose_builds_pinned_to_the_package_version() -> None:
    assert container()["image"] == f"codequal:{__version__}"
    assert compose()["services"]["codequal-1"]["image"] == container()["image"]


def test_the_service_pdb_and_servicemonitor_select_the_deployments_pods() -> None:
    found = manifests()
    pod_labels = found["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert found["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert found["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels.items()
    )
    assert found["Deployment"]["spec"]["replicas"] >= 2
    assert (
        found["PodDisruptionBudget"]["spec"]["minAvailable"]
        < found["Deployment"]["spec"]["replicas"]
    )
    monitor = found["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    assert monitor.items() <= found["Service"]["metadata"]["labels"].items()


def test_prometheus_scrape_annotations_point_at_metrics() -> None:
    for where in (
        manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"],
        manifests()["Service"]["metadata"]["annotations"],
    ):
        assert where["prometheus.io/scrape"] == "true"
        assert where["prometheus.io/path"] == "/metrics"
        ports = {p["containerPort"] for p in container()["ports"]}
        assert int(where["prometheus.io/port"]) in ports


# -- ServiceMonitor (structural: see the module docstring) --------------------------------------
def test_the_servicemonitor_has_the_crds_structure() -> None:
    monitor = manifests()["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", monitor["metadata"]["name"])
    spec = monitor["spec"]
    assert {"selector", "endpoints"} <= set(spec) <= SERVICEMONITOR_SPEC_FIELDS
    assert set(spec["selector"]) <= {"matchLabels", "matchExpressions"}
    assert spec["endpoints"], "no endpoint"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= ENDPOINT_FIELDS, set(endpoint) - ENDPOINT_FIELDS
        assert endpoint.get("scheme", "http") in ("http", "https")
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                assert DURATION.match(endpoint[key]), f"{key}: {endpoint[key]!r}"
        auth = endpoint.get("authorization")
        if auth is not None:
            assert set(auth) <= {"type", "credentials"}
            assert set(auth["credentials"]) <= {"name", "key", "optional"}


def test_the_servicemonitor_scrapes_the_services_named_port_with_the_metrics_token() -> None:
    endpoint = manifests()["ServiceMonitor"]["spec"]["endpoints"][0]
    service_ports = {p["name"] for p in manifests()["Service"]["spec"]["ports"]}
    assert endpoint["port"] in service_ports
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    assert credentials == {"name": SECRET_NAME, "key": "CODEQUAL_METRICS_TOKEN"}


def test_every_manifest_file_is_yaml_with_a_kind() -> None:
    for path in sorted(KUBERNETES.iterdir()):
        assert path.suffix == ".yaml", f"{path.name}: kubectl apply -f reads .yaml here"
        assert all("kind" in doc for doc in load_yaml_documents(path))
