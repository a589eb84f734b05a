"""Tests of the Helm chart in helm/saas, run against a real helm binary.

`scripts/install-helm` fetches a pinned, checksum-verified helm into .tools/bin (once; later
runs are a checksum check), so a fresh clone needs nothing else. Rendered manifests are
validated offline with kubernetes-validate (strict: unknown fields fail) and inspected.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "saas"
PRODUCTION_VALUES = REPO / "helm" / "values-production.yaml"
INSTALL_HELM = REPO / "scripts" / "install-helm"
HELM = REPO / ".tools" / "bin" / "helm"
RELEASE = "acme"
NAMESPACE = "saas"
# Oldest Kubernetes the chart is tested against (Chart.yaml allows >=1.25; autoscaling/v2,
# policy/v1 and seccompProfile all exist there) and the newest schema kubernetes-validate has.
KUBE_VERSION = "1.30.0"
VALIDATE_VERSIONS = sorted({"1.30", kubernetes_validate.utils.latest_version()})

SECRET_ENV = {
    "DATABASE_URL",
    "APP_DATABASE_URL",
    "REDIS_URL",
    "JWT_SECRET",
    "UNSUBSCRIBE_SECRET",
    "SMTP_PASSWORD",
    "METRICS_TOKEN",
}
POD_KINDS = {"Deployment", "Job"}

SENTINELS = {
    "databaseUrl": "postgresql://owner:owner-pw-SENTINEL-9f3a@db.internal:5432/saas",
    "appDatabaseUrl": "postgresql://saas_app:app-pw-SENTINEL-77c1@db.internal:5432/saas",
    "redisUrl": "rediss://:redis-pw-SENTINEL-0b5e@redis.internal:6379/0",
    "jwtSecret": "jwt-SENTINEL-0123456789abcdef0123456789abcdef",
    "unsubscribeSecret": "unsub-SENTINEL-0123456789abcdef0123456789abcdef",
    "smtpPassword": "smtp-pw-SENTINEL-4d2c",
    "metricsToken": "metrics-SENTINEL-0123456789abcdef0123456789abcdef",
}
SENTINEL_KEYS = {
    "databaseUrl": "DATABASE_URL",
    "appDatabaseUrl": "APP_DATABASE_URL",
    "redisUrl": "REDIS_URL",
    "jwtSecret": "JWT_SECRET",
    "unsubscribeSecret": "UNSUBSCRIBE_SECRET",
    "smtpPassword": "SMTP_PASSWORD",
    "metricsToken": "METRICS_TOKEN",
}


@dataclass
class Helm:
    binary: Path
    env: dict[str, str]

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def template(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        fixed = ("template", RELEASE, CHART, "--namespace", NAMESPACE)
        return self.run(*fixed, "--kube-version", KUBE_VERSION, *args)

    def render(self, *args: str | Path) -> list[dict[str, Any]]:
        result = self.template(*args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    installed = subprocess.run(
        [str(INSTALL_HELM)], capture_output=True, text=True, timeout=600, check=False
    )
    assert installed.returncode == 0, installed.stderr + installed.stdout
    assert HELM.is_file() and os.access(HELM, os.X_OK)
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        # Never talk to a real cluster, whatever the developer's kubeconfig says.
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return Helm(HELM, env)


@pytest.fixture(scope="session")
def sentinel_values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("values") / "sentinels.yaml"
    path.write_text(yaml.safe_dump({"secrets": SENTINELS}))
    return path


# Every optional branch of the templates at once, so each renders to valid manifests.
OPTIONS = {
    "fullnameOverride": "crm",
    "image": {"digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "serviceAccount": {"create": False, "name": "crm-runtime"},
    "config": {
        "environment": "test",
        "logLevel": "DEBUG",
        "smtp": {"host": "mail", "port": 25, "username": "crm", "starttls": False},
        "extraEnv": {"JWT_ISSUER": "crm", "GRAPHQL_MAX_DEPTH": 10, "GRAPHQL_INTROSPECTION": False},
    },
    "podAnnotations": {"team": "crm"},
    "podLabels": {"cost-center": "sales"},
    "api": {
        "podAnnotations": {"prometheus.io/port": "9000"},
        "nodeSelector": {"pool": "web"},
        "tolerations": [{"key": "web", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "topologySpreadConstraints": [
            {
                "maxSkew": 2,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "api"}},
            }
        ],
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 75},
        "pdb": {"enabled": False, "maxUnavailable": 1},
    },
    "worker": {"pdb": {"enabled": True, "maxUnavailable": "50%"}},
    "service": {"type": "NodePort", "port": 8080, "annotations": {"a": "b"}},
    "ingress": {"enabled": True, "className": "", "tls": []},
    "metrics": {"prometheusAnnotations": False},
}


@pytest.fixture(scope="session")
def options_docs(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("values") / "options.yaml"
    path.write_text(yaml.safe_dump(OPTIONS))
    return helm.render("-f", path)


@pytest.fixture(scope="session")
def default_docs(helm: Helm) -> list[dict[str, Any]]:
    return helm.render()


@pytest.fixture(scope="session")
def production_docs(helm: Helm) -> list[dict[str, Any]]:
    return helm.render("-f", PRODUCTION_VALUES)


@pytest.fixture(scope="session")
def sentinel_docs(helm: Helm, sentinel_values: Path) -> list[dict[str, Any]]:
    return helm.render("-f", sentinel_values)


@pytest.fixture(scope="session")
def renders(
    default_docs: list[dict[str, Any]],
    production_docs: list[dict[str, Any]],
    sentinel_docs: list[dict[str, Any]],
    options_docs: list[dict[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    return {
        "default": default_docs,
        "production": production_docs,
        "sentinels": sentinel_docs,
        "options": options_docs,
    }


@pytest.fixture(scope="session")
def production_values() -> dict[str, Any]:
    with PRODUCTION_VALUES.open() as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="session")
def default_values() -> dict[str, Any]:
    with (CHART / "values.yaml").open() as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------- helpers


def fullname() -> str:
    return f"{RELEASE}-saas"


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, got {[kn(d) for d in docs]}"
    return matches[0]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def kn(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in POD_KINDS:
            spec = pod_spec(doc)
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield kn(doc), spec, c


def only_container(doc: dict[str, Any]) -> dict[str, Any]:
    cs = pod_spec(doc)["containers"]
    assert len(cs) == 1
    container: dict[str, Any] = cs[0]
    return container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def api(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "Deployment", f"{fullname()}-api")


def worker(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "Deployment", f"{fullname()}-worker")


def migration_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "Job", f"{fullname()}-migrations")


def config_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = find(docs, "ConfigMap", f"{fullname()}-config")["data"]
    return data


def hook_weight(doc: dict[str, Any]) -> int:
    return int(doc["metadata"]["annotations"]["helm.sh/hook-weight"])


# --------------------------------------------------------------------------- lint & validate


@pytest.mark.parametrize("values", [None, PRODUCTION_VALUES], ids=["default", "production"])
def test_lint_strict(helm: Helm, values: Path | None) -> None:
    args: list[str | Path] = ["lint", "--strict", "--kube-version", KUBE_VERSION, CHART]
    if values is not None:
        args += ["-f", values]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("render", ["default", "production", "sentinels", "options"])
def test_rendered_manifests_validate_strictly(
    renders: dict[str, list[dict[str, Any]]], render: str
) -> None:
    docs = renders[render]
    assert docs
    for doc in docs:
        for version in VALIDATE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{kn(doc)} invalid for Kubernetes {version}: {exc.message}")


def test_default_render_has_every_component(default_docs: list[dict[str, Any]]) -> None:
    names = {kn(d) for d in default_docs}
    f = fullname()
    assert {
        f"Deployment/{f}-api",
        f"Deployment/{f}-worker",
        f"Service/{f}-api",
        f"ConfigMap/{f}-config",
        f"Secret/{f}",
        f"Secret/{f}-migrations",
        f"ServiceAccount/{f}",
        f"ServiceAccount/{f}-migrations",
        f"Job/{f}-migrations",
        f"PodDisruptionBudget/{f}-api",
        f"PodDisruptionBudget/{f}-worker",
    } <= names
    # Off by default: they need a controller / metrics-server and a hostname.
    assert not kinds(default_docs, "Ingress")
    assert not kinds(default_docs, "HorizontalPodAutoscaler")


def test_production_render_has_every_component(production_docs: list[dict[str, Any]]) -> None:
    names = {kn(d) for d in production_docs}
    f = fullname()
    assert {
        f"Deployment/{f}-api",
        f"Deployment/{f}-worker",
        f"Service/{f}-api",
        f"Ingress/{f}",
        f"HorizontalPodAutoscaler/{f}-api",
        f"HorizontalPodAutoscaler/{f}-worker",
        f"PodDisruptionBudget/{f}-api",
        f"PodDisruptionBudget/{f}-worker",
        f"Job/{f}-migrations",
    } <= names


# --------------------------------------------------------------------------- api & worker


@pytest.mark.parametrize("render", ["default", "production"])
def test_api_probes_and_port(renders: dict[str, list[dict[str, Any]]], render: str) -> None:
    docs = renders[render]
    c = only_container(api(docs))
    assert c["args"] == ["serve"]
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert config_map(docs)["PORT"] == "8000"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The startup probe gives the process a minute before liveness may kill it.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60

    service = find(docs, "Service", f"{fullname()}-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == api(docs)["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("render", ["default", "production"])
def test_worker_liveness_is_saas_worker_check(
    renders: dict[str, list[dict[str, Any]]], render: str
) -> None:
    c = only_container(worker(renders[render]))
    assert c["args"] == ["worker"]
    assert c["livenessProbe"]["exec"]["command"] == ["saas", "worker", "--check"]
    assert c["startupProbe"]["exec"]["command"] == ["saas", "worker", "--check"]
    # Python start-up plus a Redis round trip: exec probes need more than the 1 s default.
    assert c["livenessProbe"]["timeoutSeconds"] >= 10
    assert "ports" not in c


def test_replicas_come_from_values(helm: Helm, default_values: dict[str, Any]) -> None:
    docs = helm.render()
    assert api(docs)["spec"]["replicas"] == default_values["api"]["replicas"]
    assert worker(docs)["spec"]["replicas"] == default_values["worker"]["replicas"]

    docs = helm.render("--set", "api.replicas=5", "--set", "worker.replicas=7")
    assert api(docs)["spec"]["replicas"] == 5
    assert worker(docs)["spec"]["replicas"] == 7


def test_hpa_owns_replicas_when_enabled(
    production_docs: list[dict[str, Any]], production_values: dict[str, Any]
) -> None:
    for component, deployment in (("api", api), ("worker", worker)):
        dep = deployment(production_docs)
        # With an HPA, a fixed replica count would be reset by every `helm upgrade`.
        assert "replicas" not in dep["spec"]
        hpa = find(production_docs, "HorizontalPodAutoscaler", dep["metadata"]["name"])
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": dep["metadata"]["name"],
        }
        wanted = production_values[component]["autoscaling"]
        assert hpa["spec"]["minReplicas"] == wanted["minReplicas"]
        assert hpa["spec"]["maxReplicas"] == wanted["maxReplicas"]
        cpu = [m for m in hpa["spec"]["metrics"] if m["resource"]["name"] == "cpu"]
        target = cpu[0]["resource"]["target"]["averageUtilization"]
        assert target == wanted["targetCPUUtilizationPercentage"]


@pytest.mark.parametrize("render", ["default", "production"])
def test_pdbs_select_the_deployments_pods(
    renders: dict[str, list[dict[str, Any]]], render: str
) -> None:
    docs = renders[render]
    for deployment in (api(docs), worker(docs)):
        pdb = find(docs, "PodDisruptionBudget", deployment["metadata"]["name"])
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selector == deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        # maxUnavailable (not minAvailable): a single replica never blocks a node drain.
        assert pdb["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in pdb["spec"]


@pytest.mark.parametrize(
    ("render", "values_fixture"),
    [("default", "default_values"), ("production", "production_values")],
)
def test_graceful_shutdown(
    renders: dict[str, list[dict[str, Any]]],
    render: str,
    values_fixture: str,
    request: pytest.FixtureRequest,
) -> None:
    docs = renders[render]
    values = request.getfixturevalue(values_fixture)["api"]
    spec = pod_spec(api(docs))
    c = only_container(api(docs))
    assert c["lifecycle"]["preStop"]["exec"]["command"] == [
        "sleep",
        str(values["preStopSleepSeconds"]),
    ]
    assert values["preStopSleepSeconds"] >= 3
    graceful = int(config_map(docs)["GRACEFUL_SHUTDOWN_SECONDS"])
    assert graceful == values["gracefulShutdownSeconds"]
    # Kubernetes' clock starts at preStop: it must cover the sleep and uvicorn's drain.
    assert spec["terminationGracePeriodSeconds"] > values["preStopSleepSeconds"] + graceful
    assert pod_spec(worker(docs))["terminationGracePeriodSeconds"] >= 30


# --------------------------------------------------------------------------- migrations


def test_migration_job_is_a_pre_install_hook_reading_a_hook_secret(
    default_docs: list[dict[str, Any]],
) -> None:
    job = migration_job(default_docs)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    c = only_container(job)
    assert c["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"

    env = env_of(c)
    secret_name = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
    # The release's own Secret does not exist yet at pre-install: the Job must read a hook
    # Secret created before it (lower weight), holding the current values.
    secret = find(default_docs, "Secret", secret_name)
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert hook_weight(secret) < hook_weight(job)
    assert set(secret["data"]) == {"DATABASE_URL", "APP_DATABASE_URL"}
    # Same for its ServiceAccount.
    sa = find(default_docs, "ServiceAccount", pod_spec(job)["serviceAccountName"])
    assert sa["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert hook_weight(sa) < hook_weight(job)
    # And it cannot envFrom the ConfigMap (not a hook): settings are inline.
    assert "envFrom" not in c
    assert env["ENVIRONMENT"]["value"] == "production"


def test_migration_job_with_existing_secret(production_docs: list[dict[str, Any]]) -> None:
    job = migration_job(production_docs)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    env = env_of(only_container(job))
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "saas-secrets",
        "key": "DATABASE_URL",
    }


def test_migrations_can_be_disabled(helm: Helm) -> None:
    docs = helm.render("--set", "migrations.enabled=false")
    assert not kinds(docs, "Job")
    assert f"Secret/{fullname()}-migrations" not in {kn(d) for d in docs}


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("render", ["default", "production", "sentinels", "options"])
def test_secret_env_only_from_secret_refs(
    renders: dict[str, list[dict[str, Any]]], render: str
) -> None:
    docs = renders[render]
    seen = set()
    for where, _, c in containers(docs):
        for e in c.get("env", []):
            if e["name"] in SECRET_ENV:
                seen.add(e["name"])
                assert "value" not in e, f"{where}: {e['name']} given as a plain value"
                assert "secretKeyRef" in e.get("valueFrom", {}), f"{where}: {e['name']}"
        for source in c.get("envFrom", []):
            assert set(source) <= {"configMapRef", "secretRef", "prefix"}, where
    assert {"APP_DATABASE_URL", "REDIS_URL", "JWT_SECRET", "UNSUBSCRIBE_SECRET"} <= seen
    for cm in kinds(docs, "ConfigMap"):
        assert not SECRET_ENV & set(cm.get("data", {})), kn(cm)


@pytest.mark.parametrize("render", ["default", "production"])
def test_least_privilege_database_urls(
    renders: dict[str, list[dict[str, Any]]], render: str
) -> None:
    docs = renders[render]
    # The owner role's URL reaches only the migration Job; the api and worker get the app role.
    for deployment in (api(docs), worker(docs)):
        env = env_of(only_container(deployment))
        assert "DATABASE_URL" not in env
        assert "APP_DATABASE_URL" in env
    assert "DATABASE_URL" in env_of(only_container(migration_job(docs)))


def test_no_secret_value_outside_secrets(sentinel_docs: list[dict[str, Any]]) -> None:
    secrets = {d["metadata"]["name"]: d for d in kinds(sentinel_docs, "Secret")}
    # The values did reach the chart's Secret (so the check below means something).
    stored = {k: base64.b64decode(v).decode() for k, v in secrets[fullname()]["data"].items()}
    hook = secrets[f"{fullname()}-migrations"]["data"]
    stored["DATABASE_URL"] = base64.b64decode(hook["DATABASE_URL"]).decode()
    for field, key in SENTINEL_KEYS.items():
        assert stored[key] == SENTINELS[field]

    needles = set()
    for value in SENTINELS.values():
        needles |= {value, base64.b64encode(value.encode()).decode()}
        needles |= set(re.findall(r"[\w-]*SENTINEL[\w-]*", value))
    for doc in sentinel_docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for needle in needles:
            assert needle not in text, f"{kn(doc)} contains secret material {needle!r}"


def test_existing_secret_renders_no_secret(production_docs: list[dict[str, Any]]) -> None:
    assert not kinds(production_docs, "Secret")
    refs = set()
    for where, _, c in containers(production_docs):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add(ref["name"])
                assert ref["key"] == e["name"], where
    assert refs == {"saas-secrets"}
    # No checksum of a Secret the chart does not manage.
    for deployment in (api(production_docs), worker(production_docs)):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/secret" not in annotations
        assert "checksum/config" in annotations


def test_generated_secrets_are_strong(default_docs: list[dict[str, Any]]) -> None:
    data = find(default_docs, "Secret", fullname())["data"]
    # The owner role's URL lives only in the migration hook's short-lived Secret.
    assert "DATABASE_URL" not in data
    for key in ("JWT_SECRET", "UNSUBSCRIBE_SECRET"):
        assert len(base64.b64decode(data[key])) >= 32


def test_existing_secret_with_secret_values_fails(helm: Helm) -> None:
    result = helm.template(
        "--set", "existingSecret=saas-secrets", "--set", "secrets.redisUrl=redis://r:6379/0"
    )
    assert result.returncode != 0
    assert "secrets.redisUrl" in result.stderr


# --------------------------------------------------------------------------- pod hardening


@pytest.mark.parametrize("render", ["default", "production", "options"])
def test_security_context(renders: dict[str, list[dict[str, Any]]], render: str) -> None:
    for where, spec, c in containers(renders[render]):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] != 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"]["drop"] == ["ALL"], where
        assert "add" not in sc["capabilities"], where
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        # The root filesystem is read-only: /tmp is an emptyDir.
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["enableServiceLinks"] is False, where
        assert "memory" in c["resources"]["limits"], where
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where


def test_image_user_matches_chart(default_values: dict[str, Any]) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\d+)", dockerfile, re.MULTILINE)
    assert users and int(users[-1]) == default_values["podSecurityContext"]["runAsUser"]
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.MULTILINE)
    assert '\nENTRYPOINT ["saas"]\n' in dockerfile
    assert '\nCMD ["serve"]\n' in dockerfile


# --------------------------------------------------------------------------- ingress & config


def test_ingress_is_websocket_friendly(production_docs: list[dict[str, Any]]) -> None:
    ingress = find(production_docs, "Ingress", fullname())
    annotations = ingress["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "saas-api-tls", "hosts": ["api.example.com"]}]
    service = find(production_docs, "Service", f"{fullname()}-api")
    port_names = {p["name"] for p in service["spec"]["ports"]}
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [p["path"] for p in paths] == ["/graphql"]
    for p in paths:
        assert p["backend"]["service"]["name"] == service["metadata"]["name"]
        assert p["backend"]["service"]["port"]["name"] in port_names


def test_config_map_holds_the_settings(
    production_docs: list[dict[str, Any]], production_values: dict[str, Any]
) -> None:
    data = config_map(production_docs)
    config = production_values["config"]
    assert data["ENVIRONMENT"] == "production"
    assert data["LOG_LEVEL"] == "INFO"
    assert data["ALLOWED_ORIGINS"] == ",".join(config["allowedOrigins"])
    assert data["SMTP_HOST"] == config["smtp"]["host"]
    assert data["SMTP_PORT"] == str(config["smtp"]["port"])
    assert data["SMTP_USERNAME"] == config["smtp"]["username"]
    assert data["SMTP_STARTTLS"] == "true"
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == config["otelExporterOtlpEndpoint"]
    assert data["HOST"] == "0.0.0.0"
    for deployment in (api(production_docs), worker(production_docs)):
        c = only_container(deployment)
        assert c["envFrom"] == [{"configMapRef": {"name": f"{fullname()}-config"}}]


def test_config_change_rolls_the_pods(helm: Helm) -> None:
    before = api(helm.render())["spec"]["template"]["metadata"]["annotations"]
    after = api(helm.render("--set", "config.logLevel=DEBUG"))["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert before["checksum/config"] != after["checksum/config"]


# --------------------------------------------------------------------------- schema


BAD_VALUES = [
    pytest.param({"api": {"replicas": "three"}}, "/api/replicas", id="replicas-string"),
    pytest.param({"worker": {"replicas": 0}}, "/worker/replicas", id="replicas-zero"),
    pytest.param({"api": {"replicaz": 3}}, "replicaz", id="unknown-key"),
    pytest.param({"colour": "blue"}, "colour", id="unknown-top-level-key"),
    pytest.param({"image": {"tag": 1.2}}, "/image/tag", id="numeric-tag"),
    pytest.param({"image": {"tag": ""}}, "/image/tag", id="empty-tag"),
    pytest.param({"ingress": {"hosts": ["saas.example.com"]}}, "/ingress/hosts/0", id="hosts"),
    pytest.param(
        {"ingress": {"hosts": [{"host": "a.example.com", "paths": [{"path": "graphql"}]}]}},
        "/ingress/hosts/0/paths/0",
        id="ingress-path",
    ),
    pytest.param(
        {"api": {"resources": {"requests": {"cpu": "lots"}}}},
        "/api/resources/requests/cpu",
        id="resources-quantity",
    ),
    pytest.param(
        {"worker": {"resources": {"request": {"cpu": "1"}}}},
        "request",
        id="resources-shape",
    ),
    pytest.param(
        {"ingress": {"annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": 3600}}},
        "proxy-read-timeout",
        id="annotation-not-string",
    ),
    pytest.param({"secrets": {"jwtSecret": "short"}}, "/secrets/jwtSecret", id="weak-jwt"),
    pytest.param(
        {"config": {"extraEnv": {"JWT_SECRET": "x"}}}, "JWT_SECRET", id="secret-in-config"
    ),
    pytest.param({"config": {"environment": "staging"}}, "/config/environment", id="env-enum"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES)
def test_bad_values_fail_the_schema(
    helm: Helm, tmp_path: Path, values: dict[str, Any], field: str
) -> None:
    path = tmp_path / "bad-values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm.template("-f", path)
    assert result.returncode != 0, result.stdout
    assert "schema" in result.stderr, result.stderr
    assert field in result.stderr, result.stderr


def test_autoscaling_bounds_are_checked(helm: Helm) -> None:
    bounds = "api.autoscaling.enabled=true,api.autoscaling.minReplicas=5"
    result = helm.template("--set", bounds, "--set", "api.autoscaling.maxReplicas=2")
    assert result.returncode != 0
    assert "api.autoscaling.maxReplicas" in result.stderr


def test_optional_settings_render(options_docs: list[dict[str, Any]]) -> None:
    names = {kn(d) for d in options_docs}
    assert "Deployment/crm-api" in names and "PodDisruptionBudget/crm-api" not in names
    assert not kinds(options_docs, "ServiceAccount")  # neither the runtime nor the hook one
    for where, spec, c in containers(options_docs):
        assert spec["serviceAccountName"] == "crm-runtime", where
        assert c["image"] == "registry.example.com/saas/saas@sha256:" + "ab" * 32, where
        assert spec["imagePullSecrets"] == [{"name": "regcred"}], where
    data = find(options_docs, "ConfigMap", "crm-config")["data"]
    assert data["JWT_ISSUER"] == "crm" and data["GRAPHQL_INTROSPECTION"] == "false"
    pod = find(options_docs, "Deployment", "crm-api")["spec"]["template"]
    assert pod["metadata"]["annotations"]["team"] == "crm"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9000"
    assert pod["metadata"]["labels"]["cost-center"] == "sales"
    assert pod["spec"]["topologySpreadConstraints"][0]["maxSkew"] == 2
    hpa = find(options_docs, "HorizontalPodAutoscaler", "crm-api")
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "ingressClassName" not in find(options_docs, "Ingress", "crm")["spec"]
