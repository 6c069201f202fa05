"""The Helm chart (deploy/helm/kilo-agent) and its example app chart, rendered by Helm's own engine.

Every manifest of every render is validated against the Kubernetes 1.30 schemas (strict: unknown
fields fail). No cluster and no network: helm-python-sdk embeds Helm's Go SDK, and
kubernetes-validate ships the schemas.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "kilo-agent"
EXAMPLE = ROOT / "deploy" / "helm" / "examples" / "demo-app"
DATA = Path(__file__).resolve().parent / "data" / "helm"
KUBE_VERSION = "1.30"
RELEASE, NAMESPACE = "kilo", "apps"
SECRETS_MOUNT = "/var/run/secrets/kilo"
MODES = ("sidecar", "daemonset", "deployment")
POD_KINDS = ("Deployment", "DaemonSet")


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def ci_values(mode: str) -> dict[str, Any]:
    """What renders `mode` as it stands: ci/<mode>-values.yaml, else just the mode."""
    path = CHART / "ci" / f"{mode}-values.yaml"
    return load_yaml(path) if path.exists() else {"mode": mode}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class Rendered:
    """The manifests of one render, parsed, each validated against the Kubernetes schemas."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.objects: list[dict[str, Any]] = []
        for name, text in sorted(files.items()):
            if not name.endswith((".yaml", ".yml")):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
                    self.objects.append(doc)

    def kinds(self) -> list[str]:
        return sorted(obj["kind"] for obj in self.objects)

    def get(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [
            obj
            for obj in self.objects
            if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
        ]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    def workload(self) -> dict[str, Any]:
        (found,) = [obj for obj in self.objects if obj["kind"] in POD_KINDS]
        return found

    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_text())

    def config_text(self) -> str:
        cm = self.get("ConfigMap", f"{RELEASE}-kilo-agent-config")
        text: str = cm["data"]["config.yaml"]
        return text

    def notes(self) -> str:
        return next(text for name, text in self.files.items() if name.endswith("NOTES.txt"))


def agent_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers = (pod_spec.get("initContainers") or []) + pod_spec["containers"]
    (agent,) = [c for c in containers if c["name"] == "kilo-agent"]
    return agent


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def arg_after(container: dict[str, Any], flag: str) -> str:
    args = container["args"]
    value: str = args[args.index(flag) + 1]
    return value


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def render(chart: Any) -> Any:
    def _render(values: dict[str, Any] | None = None) -> Rendered:
        return Rendered(chart.render(values or {}, name=RELEASE, namespace=NAMESPACE))

    return _render


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example app chart with the kilo-agent chart unpacked in charts/, as
    `helm dependency build` would leave it (without a network or a repository index)."""
    target = tmp_path_factory.mktemp("example") / "demo-app"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("charts"))
    shutil.copytree(CHART, target / "charts" / "kilo-agent")
    return target


@pytest.fixture(scope="module")
def render_example(example_dir: Path) -> Iterator[Any]:
    with helm.Chart.load(example_dir) as loaded:

        def _render(values: dict[str, Any] | None = None) -> Rendered:
            return Rendered(loaded.render(values or {}, name="shop", namespace=NAMESPACE))

        yield _render


def render_error(chart: Any, values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return str(caught.value)


def assert_restricted(pod_spec: dict[str, Any], container: dict[str, Any]) -> None:
    """The Pod Security "restricted" profile, for the agent container in its pod."""
    pod_sc = pod_spec.get("securityContext") or {}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
    assert int(sc.get("runAsUser", pod_sc.get("runAsUser", 0))) > 0
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile")) or {}
    assert seccomp.get("type") == "RuntimeDefault"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod_spec.get(key)
    assert all("hostPort" not in port for port in container.get("ports", []))
    allowed = {"configMap", "emptyDir", "secret", "projected", "downwardAPI", "csi", "ephemeral"}
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= allowed, f"volume {volume['name']} is of a kind restricted pods can't use"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # a writable /tmp beside the read-only root filesystem


# -- every mode renders, validates and lints -------------------------------------------------------


def test_schema_declares_the_modes(chart: Any) -> None:
    assert chart.schema["properties"]["mode"]["enum"] == list(MODES)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_renders_as_it_stands(render: Any, mode: str) -> None:
    rendered = render(ci_values(mode))
    expected = {
        "sidecar": ["ConfigMap"],
        "daemonset": ["ConfigMap", "DaemonSet", "Service", "ServiceAccount"],
        "deployment": [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ],
    }[mode]
    assert rendered.kinds() == expected
    assert f"mode: {mode}" in rendered.notes()


def test_ci_values_files_name_their_mode() -> None:
    files = sorted((CHART / "ci").glob("*-values.yaml"))
    assert files, "the chart ships ci/<mode>-values.yaml for the modes that need more values"
    for path in files:
        mode = path.name.removesuffix("-values.yaml")
        assert mode in MODES
        assert load_yaml(path)["mode"] == mode


def test_deployment_needs_its_ci_values(chart: Any) -> None:
    """Deployment mode is the one that needs more than the defaults: callers."""
    message = render_error(chart, {"mode": "deployment"})
    assert "config.callers" in message
    assert "callers must authenticate" in message


def test_everything_on_renders_and_validates(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    assert rendered.kinds() == [
        "ConfigMap",
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]


@pytest.mark.parametrize(
    "values_file", [None, *sorted((CHART / "ci").glob("*-values.yaml"))], ids=lambda p: str(p)
)
def test_lint_passes(values_file: Path | None) -> None:
    values = load_yaml(values_file) if values_file else None
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_validator_is_not_vacuous() -> None:
    """Strict validation really rejects what a cluster would (so passing renders mean something)."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 1}], "internalTraficPolicy": "Local"},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBE_VERSION, strict=True)


# -- workloads: security, probes, mounts, labels ---------------------------------------------------


@pytest.mark.parametrize("mode", ["daemonset", "deployment"])
def test_pods_meet_the_restricted_profile(render: Any, mode: str) -> None:
    pod = render(ci_values(mode)).workload()["spec"]["template"]["spec"]
    assert_restricted(pod, agent_container(pod))
    assert pod["securityContext"]["fsGroup"] == 65532  # reads the 0440 secret files
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("mode", ["daemonset", "deployment"])
def test_native_grpc_probes_on_the_health_service(render: Any, mode: str) -> None:
    pod = render(ci_values(mode)).workload()["spec"]["template"]["spec"]
    agent = agent_container(pod)
    (port,) = agent["ports"]
    assert port == {"name": "grpc", "containerPort": 50051, "protocol": "TCP"}
    assert arg_after(agent, "--listen") == "0.0.0.0:50051"
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert agent[kind]["grpc"] == {"port": 50051, "service": ""}
    liveness = agent["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > 20  # longer than a drain


def test_probes_can_be_switched_off(render: Any) -> None:
    values = merge(ci_values("daemonset"), {"probes": {"startup": {"enabled": False}}})
    agent = agent_container(render(values).workload()["spec"]["template"]["spec"])
    assert "startupProbe" not in agent
    assert "readinessProbe" in agent


def test_config_and_secret_mounts(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    pod = rendered.workload()["spec"]["template"]["spec"]
    agent = agent_container(pod)
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    assert arg_after(agent, "--config") == "/etc/kilo-agent/config.yaml"
    assert env_of(agent)["KILO_AGENT_CONFIG"] == "/etc/kilo-agent/config.yaml"
    config_mount = mounts["/etc/kilo-agent"]
    assert config_mount["readOnly"] is True
    assert volumes[config_mount["name"]]["configMap"]["name"] == f"{RELEASE}-kilo-agent-config"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]

    for entry, secret in [
        ("callers", "kilo-agent-callers"),
        ("openai", "openai-credentials"),
        ("slack", "slack-bot"),
        ("redis", "kilo-redis"),
    ]:
        mount = mounts[f"{SECRETS_MOUNT}/{entry}"]
        assert mount["readOnly"] is True
        assert "subPath" not in mount  # subPath mounts never see a rotated Secret
        volume = volumes[mount["name"]]["secret"]
        assert volume["secretName"] == secret
        assert volume["defaultMode"] == 0o440
    assert volumes["kilo-agent-secret-openai"]["secret"]["items"] == [
        {"key": "api-key", "path": "token"}
    ]
    assert volumes["kilo-agent-secret-slack"]["secret"]["optional"] is True


def test_labels_and_selectors(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    standard = {
        "app.kubernetes.io/name": "kilo-agent",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/version": "0.1.0",
        "helm.sh/chart": "kilo-agent-0.1.0",
        "cost-center": "cc-42",
    }
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert standard.items() <= labels.items(), obj["kind"]
        assert obj["metadata"]["namespace"] == NAMESPACE
    deployment = rendered.get("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector == {
        "app.kubernetes.io/name": "kilo-agent",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert selector.items() <= pod_labels.items()
    assert pod_labels["team"] == "platform"
    assert rendered.get("Service")["spec"]["selector"] == selector
    assert rendered.get("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert rendered.get("NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == selector
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)


def test_image_tag_follows_the_app_version(chart: Any) -> None:
    assert chart.values["image"]["tag"] == chart.metadata["appVersion"]


def test_image_digest_wins_over_the_tag(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    agent = agent_container(rendered.workload()["spec"]["template"]["spec"])
    assert agent["image"] == "ghcr.io/kilo-agent/kilo-agent@sha256:" + "0123456789abcdef" * 4


# -- the config: checksum, secrets, check-config ---------------------------------------------------


def checksum_of(rendered: Rendered) -> str:
    annotations = rendered.workload()["spec"]["template"]["metadata"]["annotations"]
    value: str = annotations["checksum/config"]
    return value


def test_checksum_annotation_is_the_config_hash(render: Any) -> None:
    rendered = render(ci_values("deployment"))
    expected = hashlib.sha256(rendered.config_text().removesuffix("\n").encode()).hexdigest()
    assert checksum_of(rendered) == expected


def test_checksum_changes_with_the_config_only(render: Any) -> None:
    base = ci_values("deployment")
    before = checksum_of(render(base))
    assert checksum_of(render(merge(base, {"replicaCount": 5}))) == before
    assert checksum_of(render(merge(base, {"gracePeriodSeconds": 25}))) != before
    changed = merge(base, {"config": {"telemetry": {"audit_log": "off"}}})
    assert checksum_of(render(changed)) != before


def test_chart_renders_server_grace_and_termination_above_it(render: Any) -> None:
    rendered = render(merge(ci_values("deployment"), {"gracePeriodSeconds": 30}))
    assert rendered.config()["server"] == {"grace_period": "30s"}
    pod = rendered.workload()["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 5 + 30 + 10
    agent = agent_container(pod)
    assert agent["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]


def test_redis_url_comes_from_a_secret(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    assert rendered.config()["redis"] == {
        "url": f"${{file:{SECRETS_MOUNT}/redis/url}}",
        "on_unavailable": "deny",
    }


SENTINEL = "sk-live-DO-NOT-RENDER-4f9a"


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"callers": [{"name": "a", "token": SENTINEL}]}, "config.callers[0].token"),
        (
            {"integrations": {"openai": {"auth": {"type": "bearer", "token": SENTINEL}}}},
            "config.integrations.openai.auth.token",
        ),
        (
            {
                "integrations": {
                    "idp": {
                        "auth": {
                            "type": "oauth2_client_credentials",
                            "token_url": "https://idp/token",
                            "client_id": "id",
                            "client_secret": SENTINEL,
                        }
                    }
                }
            },
            "config.integrations.idp.auth.client_secret",
        ),
        ({"integrations": {"openai": {"apiKey": SENTINEL}}}, "config.integrations.openai.apiKey"),
        (
            {"integrations": {"x": {"headers": {"X-Api-Key": SENTINEL}}}},
            "config.integrations.x.headers.X-Api-Key",
        ),
        (
            {"integrations": {"x": {"base_url": f"https://user:{SENTINEL}@api.example.com"}}},
            "config.integrations.x.base_url",
        ),
        ({"redis": {"url": f"redis://:{SENTINEL}@redis:6379/0"}}, "config.redis.url"),
    ],
)
def test_plain_credentials_never_reach_the_configmap(
    chart: Any, config: dict[str, Any], path: str
) -> None:
    message = render_error(chart, {"config": config})
    assert path in message
    assert SENTINEL not in message  # the error names the key, never the secret


def test_secret_files_are_referenced_not_copied(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    text = rendered.config_text()
    assert "${file:/var/run/secrets/kilo/openai/token}" in text
    everything = "\n".join(rendered.files.values())
    assert "kind: Secret\n" not in everything  # the chart mounts Secrets, never creates them


def test_a_reference_needs_its_secret_mounted(chart: Any) -> None:
    values = {
        "config": {
            "integrations": {
                "openai": {
                    "auth": {"type": "bearer", "token": "${file:/var/run/secrets/kilo/oai/t}"}
                }
            }
        }
    }
    message = render_error(chart, values)
    assert "no Secret is mounted at /var/run/secrets/kilo/oai" in message
    assert "add {name: oai, secretName: <your Secret>} to secrets" in message


def simulate_mounts(config_text: str, root: Path) -> Path:
    """Writes the config where check-config can read it, with each ${file:} reference under the
    secrets mount moved into `root` and given a dummy file -- what the kubelet does with Secrets."""
    text = config_text.replace(SECRETS_MOUNT, str(root / "secrets"))
    for ref in re.findall(r"\$\{file:([^}]+)\}", text):
        path = Path(ref)
        if path.is_relative_to(root):
            path.parent.mkdir(parents=True, exist_ok=True)
            # A distinct value per file: the agent refuses two callers sharing a token.
            token = "tok-" + hashlib.sha256(ref.encode()).hexdigest()[:16]
            content = "redis://redis.cache.svc:6379/0" if path.parent.name == "redis" else token
            path.write_text(content + "\n", encoding="utf-8")
    config = root / "config.yaml"
    config.write_text(text, encoding="utf-8")
    return config


@pytest.mark.parametrize("source", ["sidecar", "daemonset", "deployment", "everything", "example"])
def test_rendered_config_passes_check_config(
    render: Any, render_example: Any, tmp_path: Path, source: str
) -> None:
    if source == "everything":
        text = render(load_yaml(DATA / "everything-values.yaml")).config_text()
    elif source == "example":
        cm = render_example().get("ConfigMap", "shop-kilo-agent-config")
        text = cm["data"]["config.yaml"]
    else:
        text = render(ci_values(source)).config_text()
    config = simulate_mounts(text, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- values the chart refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"mode": "sidecars"},
            "at '/mode': value must be one of 'sidecar', 'daemonset', 'deployment'",
        ),
        ({"mode": 3}, "at '/mode'"),
        ({"port": "50051"}, "at '/port': got string, want integer"),
        ({"port": 70000}, "at '/port'"),
        ({"gracePeriodSeconds": "20s"}, "at '/gracePeriodSeconds': got string, want integer"),
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        (
            {"config": {"integration": {}}},
            "at '/config': additional properties 'integration' not allowed",
        ),
        ({"config": {"callers": [{"name": "a"}]}}, "missing property 'token'"),
        (
            {"sidecar": {"transport": "http"}},
            "at '/sidecar/transport': value must be one of 'unix', 'tcp'",
        ),
        ({"sidecar": {"native": "yes"}}, "at '/sidecar/native': got string, want boolean"),
        ({"secrets": [{"name": "OpenAI", "secretName": "x"}]}, "at '/secrets/0/name'"),
        ({"secrets": [{"name": "openai"}]}, "missing property 'secretName'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"telemetry": {"otlp": {"endpoint": "otel:4317"}}}, "at '/telemetry/otlp/endpoint'"),
        ({"telemetry": {"env": {"PATH": "/x"}}}, "at '/telemetry/env'"),
        ({"probes": {"readiness": {"periodSeconds": 0}}}, "at '/probes/readiness/periodSeconds'"),
        (
            {"redis": {"onUnavailable": "fail"}},
            "at '/redis/onUnavailable': value must be one of 'local', 'deny'",
        ),
        ({"serviceAccount": {"automountToken": "yes"}}, "at '/serviceAccount/automountToken'"),
    ],
)
def test_schema_rejects_bad_values(chart: Any, values: dict[str, Any], expected: str) -> None:
    message = render_error(chart, values)
    assert expected in message, message
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(chart.merge_values(values))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"config": {"listen": {"grpc": "0.0.0.0:1"}}},
            "config.listen: the chart sets the listen address",
        ),
        ({"config": {"server": {"grace_period": "5s"}}}, "set gracePeriodSeconds instead"),
        ({"terminationGracePeriodSeconds": 10}, "terminationGracePeriodSeconds must exceed"),
        (
            {"redis": {"existingSecret": "r"}, "config": {"redis": {"url": "redis://r:6379"}}},
            "config.redis and redis.existingSecret are both set",
        ),
        (
            {"secrets": [{"name": "a", "secretName": "x"}, {"name": "a", "secretName": "y"}]},
            'the name "a" appears twice',
        ),
    ],
)
def test_templates_reject_conflicting_values(
    chart: Any, values: dict[str, Any], expected: str
) -> None:
    assert expected in render_error(chart, values)


# -- modes in detail -------------------------------------------------------------------------------


def test_daemonset_service_keeps_calls_on_the_node(render: Any) -> None:
    rendered = render(ci_values("daemonset"))
    service = rendered.get("Service")["spec"]
    assert service["internalTrafficPolicy"] == "Local"
    assert service["ports"] == [
        {
            "name": "grpc",
            "port": 50051,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "grpc",
        }
    ]
    assert "WARNING: no config.callers" in rendered.notes()


def test_deployment_is_shared_autoscaled_and_spread(render: Any) -> None:
    rendered = render(ci_values("deployment"))
    deployment = rendered.get("Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    assert rendered.get("Service")["spec"]["ports"][0]["appProtocol"] == "grpc"
    assert "internalTrafficPolicy" not in rendered.get("Service")["spec"]
    hpa = rendered.get("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert rendered.get("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert rendered.config()["callers"][0]["token"].startswith("${file:")


def test_deployment_without_autoscaling_sets_replicas(render: Any) -> None:
    values = merge(ci_values("deployment"), {"autoscaling": {"enabled": False}, "replicaCount": 3})
    rendered = render(values)
    assert rendered.get("Deployment")["spec"]["replicas"] == 3
    assert "HorizontalPodAutoscaler" not in rendered.kinds()


def test_everything_autoscaling_and_pdb(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    metrics = rendered.get("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in metrics
    } == {
        "cpu": 70,
        "memory": 80,
    }
    pdb = rendered.get("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 2
    assert "maxUnavailable" not in pdb


def test_service_account_token_only_for_the_kubernetes_integration(render: Any) -> None:
    plain = render(ci_values("deployment"))
    assert plain.get("ServiceAccount")["automountServiceAccountToken"] is False
    assert plain.workload()["spec"]["template"]["spec"]["automountServiceAccountToken"] is False

    kube = render(load_yaml(DATA / "everything-values.yaml"))
    assert kube.get("ServiceAccount")["automountServiceAccountToken"] is True
    assert kube.workload()["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    annotations = kube.get("ServiceAccount")["metadata"]["annotations"]
    assert annotations == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/kilo-agent"
    }

    by_auth = merge(
        ci_values("daemonset"),
        {"config": {"integrations": {"api": {"auth": {"type": "kubernetes"}}}}},
    )
    assert render(by_auth).get("ServiceAccount")["automountServiceAccountToken"] is True
    forced_off = merge(by_auth, {"serviceAccount": {"automountToken": False}})
    assert render(forced_off).get("ServiceAccount")["automountServiceAccountToken"] is False


def test_existing_service_account(render: Any) -> None:
    values = merge(ci_values("daemonset"), {"serviceAccount": {"create": False, "name": "shared"}})
    rendered = render(values)
    assert "ServiceAccount" not in rendered.kinds()
    assert rendered.workload()["spec"]["template"]["spec"]["serviceAccountName"] == "shared"


def test_otlp_and_downward_api_resource_attributes(render: Any) -> None:
    agent = agent_container(
        render(load_yaml(DATA / "everything-values.yaml")).workload()["spec"]["template"]["spec"]
    )
    names = [e["name"] for e in agent["env"]]
    env = env_of(agent)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_SERVICE_NAME"] == "kilo-agent"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert env["LOG_FORMAT"] == "json"
    attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attributes == {
        "k8s.pod.name": "$(POD_NAME)",
        "k8s.pod.uid": "$(POD_UID)",
        "k8s.namespace.name": "$(POD_NAMESPACE)",
        "k8s.node.name": "$(NODE_NAME)",
        "k8s.container.name": "kilo-agent",
        "deployment.environment.name": "production",
    }
    fields = {"POD_NAME": "metadata.name", "POD_UID": "metadata.uid"}
    fields |= {"POD_NAMESPACE": "metadata.namespace", "NODE_NAME": "spec.nodeName"}
    for name, field in fields.items():
        assert env[name] == {"fieldRef": {"fieldPath": field}}
        # $(VAR) expands only variables defined earlier in the list.
        assert names.index(name) < names.index("OTEL_RESOURCE_ATTRIBUTES")
    assert "OTEL_TRACES_EXPORTER" not in env
    assert len(names) == len(set(names))


def test_without_a_collector_exporters_are_off(render: Any) -> None:
    env = env_of(
        agent_container(render(ci_values("daemonset")).workload()["spec"]["template"]["spec"])
    )
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env
    assert env["OTEL_TRACES_EXPORTER"] == env["OTEL_METRICS_EXPORTER"] == "none"


def test_otlp_to_the_node_collector(render: Any) -> None:
    values = merge(ci_values("daemonset"), {"telemetry": {"otlp": {"useHostIP": True}}})
    agent = agent_container(render(values).workload()["spec"]["template"]["spec"])
    names = [e["name"] for e in agent["env"]]
    env = env_of(agent)
    assert env["HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://$(HOST_IP):4317"
    assert names.index("HOST_IP") < names.index("OTEL_EXPORTER_OTLP_ENDPOINT")


def test_network_policy_limits_egress_to_dns_and_integration_ports(render: Any) -> None:
    policy = render(load_yaml(DATA / "everything-values.yaml")).get("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kilo-agent/client": "true"}}}
    ]
    dns, upstream = policy["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    ports = {p["port"] for p in upstream["ports"]}
    # presets -> 443, internal -> 8443, kubernetes -> 443/6443, redis, OTLP, extra
    assert ports == {443, 8443, 6443, 6379, 4317, 9443}
    assert all(p["protocol"] == "TCP" for p in upstream["ports"])


def test_dashboard_and_collector_configmaps(render: Any) -> None:
    rendered = render(load_yaml(DATA / "everything-values.yaml"))
    dashboard = rendered.get("ConfigMap", f"{RELEASE}-kilo-agent-dashboards")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Integrations"}
    parsed = json.loads(dashboard["data"]["kilo-agent.json"])
    assert parsed["title"]
    assert parsed["panels"]
    collector = rendered.get("ConfigMap", f"{RELEASE}-kilo-agent-otel-collector")
    pipelines = yaml.safe_load(collector["data"]["otel-collector.yaml"])["service"]["pipelines"]
    assert "otlp" in pipelines["traces"]["receivers"]
    assert "otlp" in pipelines["metrics"]["receivers"]


def test_observability_files_match_the_telemetry_ones() -> None:
    """The chart can only read files inside itself, so it carries copies of the telemetry work's
    dashboard and collector config. Until that lands they are marked placeholders; once
    deploy/observability/ has them, the chart's copies must be replaced with them."""
    observability = ROOT / "deploy" / "observability"
    dashboards = sorted(observability.glob("*.json")) if observability.is_dir() else []
    ours = (CHART / "files" / "dashboard.json").read_text(encoding="utf-8")
    if not dashboards:
        assert "placeholder" in json.loads(ours)["tags"]
        return
    names = ", ".join(str(p.relative_to(ROOT)) for p in dashboards)
    assert "placeholder" not in ours, f"replace {CHART.name}/files/dashboard.json with {names}"


# -- documentation ---------------------------------------------------------------------------------


def value_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Leaf paths of values.yaml; free-form maps (config, resources, ...) count as one value."""
    opaque = {"config", "resources", "podSecurityContext", "securityContext", "strategy"}
    opaque |= {"updateStrategy", "labels"}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in opaque:
            yield from value_paths(value, f"{path}.")
        else:
            yield path


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    missing = [p for p in value_paths(load_yaml(CHART / "values.yaml")) if p not in documented]
    assert missing == []


def test_schema_covers_every_value(chart: Any) -> None:
    schema = chart.schema

    def lookup(path: str) -> dict[str, Any]:
        node = schema
        for part in path.split("."):
            node = node["properties"][part]
        return node

    for path in value_paths(load_yaml(CHART / "values.yaml")):
        assert lookup(path).get("description"), path


# -- sidecar mode through the example app chart ----------------------------------------------------


def example_pod(rendered: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.get("Deployment")["spec"]["template"]["spec"]
    return spec


def test_example_runs_a_native_sidecar_on_a_unix_socket(render_example: Any) -> None:
    rendered = render_example()
    assert sorted(rendered.kinds()) == ["ConfigMap", "Deployment"]
    pod = example_pod(rendered)
    (agent,) = pod["initContainers"]
    assert agent["name"] == "kilo-agent"
    assert agent["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["app"]
    assert_restricted(pod, agent)

    assert arg_after(agent, "--listen") == "unix:///run/kilo/agent.sock"
    assert "umask 0000" in agent["command"][2]  # app containers run as another user
    assert agent["command"][:2] == ["/bin/sh", "-c"]
    (app,) = pod["containers"]
    assert env_of(app)["KILO_AGENT_TARGET"] == "unix:///run/kilo/agent.sock"
    socket_volume = {v["name"]: v for v in pod["volumes"]}["kilo-agent-socket"]
    assert "emptyDir" in socket_volume
    for container in (agent, app):
        assert {"name": "kilo-agent-socket", "mountPath": "/run/kilo"} in container["volumeMounts"]
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert agent[kind]["exec"]["command"] == ["kilo-agent-probe", "unix:///run/kilo/agent.sock"]
    assert "lifecycle" not in agent  # native sidecars stop after the app; no preStop wait
    assert pod["automountServiceAccountToken"] is False


def test_example_checksum_matches_the_agent_configmap(render_example: Any) -> None:
    rendered = render_example()
    text = rendered.get("ConfigMap", "shop-kilo-agent-config")["data"]["config.yaml"]
    annotations = rendered.get("Deployment")["spec"]["template"]["metadata"]["annotations"]
    expected = hashlib.sha256(text.removesuffix("\n").encode()).hexdigest()
    assert annotations["checksum/kilo-agent-config"] == expected
    volumes = {v["name"]: v for v in example_pod(rendered)["volumes"]}
    assert volumes["kilo-agent-config"]["configMap"]["name"] == "shop-kilo-agent-config"


def test_example_classic_sidecar_on_loopback(render_example: Any) -> None:
    rendered = render_example({"kilo-agent": {"sidecar": {"native": False, "transport": "tcp"}}})
    pod = example_pod(rendered)
    assert not pod.get("initContainers")
    names = [c["name"] for c in pod["containers"]]
    assert names == ["app", "kilo-agent"]
    agent = agent_container(pod)
    assert "restartPolicy" not in agent
    assert "command" not in agent  # no socket, no umask wrapper: the image's entrypoint
    assert arg_after(agent, "--listen") == "127.0.0.1:50051"
    assert "ports" not in agent  # loopback only: nothing to expose
    app = pod["containers"][0]
    assert env_of(app)["KILO_AGENT_TARGET"] == "127.0.0.1:50051"
    assert all(v["name"] != "kilo-agent-socket" for v in pod["volumes"])
    assert agent["readinessProbe"]["exec"]["command"] == ["kilo-agent-probe", "127.0.0.1:50051"]
    # A classic sidecar is stopped with the app: it keeps serving while the app drains.
    assert agent["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert_restricted(pod, agent)


def test_example_with_secrets_and_kubernetes_integration(render_example: Any) -> None:
    values = {
        "kilo-agent": {
            "secrets": [{"name": "openai", "secretName": "openai-credentials"}],
            "config": {
                "integrations": {
                    "openai": {
                        "preset": "openai",
                        "auth": {
                            "type": "bearer",
                            "token": "${file:/var/run/secrets/kilo/openai/token}",
                        },
                    },
                    "kubernetes": {"preset": "kubernetes"},
                }
            },
        }
    }
    pod = example_pod(render_example(values))
    agent = agent_container(pod)
    assert {
        "name": "kilo-agent-secret-openai",
        "mountPath": f"{SECRETS_MOUNT}/openai",
        "readOnly": True,
    } in agent["volumeMounts"]
    app = pod["containers"][0]
    assert all("secret" not in m["name"] for m in app["volumeMounts"])  # only the agent sees them
    assert pod["automountServiceAccountToken"] is True


def test_example_lints(example_dir: Path) -> None:
    report = helm.lint(example_dir, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_sidecar_templates_need_sidecar_mode(example_dir: Path) -> None:
    with helm.Chart.load(example_dir) as loaded, pytest.raises(helm.HelmRenderError) as caught:
        loaded.render({"kilo-agent": {"mode": "daemonset"}}, name="shop", namespace=NAMESPACE)
    assert "kilo-agent sidecar templates need mode: sidecar" in str(caught.value)


def test_sidecar_templates_with_an_aliased_dependency(example_dir: Path, tmp_path: Path) -> None:
    """An app that aliases the dependency passes (dict "root" . "values" .Values.<alias>)."""
    aliased = tmp_path / "demo-app"
    shutil.copytree(example_dir, aliased)
    chart_yaml = load_yaml(aliased / "Chart.yaml")
    chart_yaml["dependencies"][0]["alias"] = "agent"
    (aliased / "Chart.yaml").write_text(yaml.safe_dump(chart_yaml), encoding="utf-8")
    values = load_yaml(aliased / "values.yaml")
    values["agent"] = values.pop("kilo-agent")
    (aliased / "values.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")
    deployment = aliased / "templates" / "deployment.yaml"
    text = re.sub(
        r'include "(kilo-agent\.sidecar\.\w+)" \.',
        r'include "\1" (dict "root" . "values" .Values.agent)',
        deployment.read_text(encoding="utf-8"),
    )
    deployment.write_text(text, encoding="utf-8")
    with helm.Chart.load(aliased) as loaded:
        rendered = Rendered(loaded.render({}, name="shop", namespace=NAMESPACE))
    pod = example_pod(rendered)
    assert pod["initContainers"][0]["name"] == "kilo-agent"
    config_volume = {v["name"]: v for v in pod["volumes"]}["kilo-agent-config"]
    assert rendered.get("ConfigMap", config_volume["configMap"]["name"])


def test_example_dependency_matches_the_chart() -> None:
    (dependency,) = load_yaml(EXAMPLE / "Chart.yaml")["dependencies"]
    assert dependency["name"] == "kilo-agent"
    assert dependency["version"] == load_yaml(CHART / "Chart.yaml")["version"]
    assert (EXAMPLE / dependency["repository"].removeprefix("file://")).resolve() == CHART
