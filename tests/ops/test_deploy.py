"""The deploy files, checked structurally (no Docker engine or cluster needed).

They must agree with the code: ports and probes with the worker's endpoints, environment names
with the settings, images and users with the Dockerfile, selectors with labels.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bridge.settings import Settings
from bridge.worker import RETRY_CAP_S
from tests.ops.conftest import DEPLOY, ROOT, load_all

K8S = DEPLOY / "k8s"
PREFIX = Settings.model_config["env_prefix"]
WEB_PORT = Settings.model_fields["web_port"].default


def _setting(variable: str) -> str:
    assert variable.startswith(PREFIX), variable
    name = variable[len(PREFIX):].lower()
    assert name in Settings.model_fields, f"{variable} is not a bridge setting"
    return name


def _settings_from(env: dict[str, object]) -> Settings:
    """The Settings a process with these BRIDGE_* variables would get (validated)."""
    return Settings(**{_setting(k): str(v) for k, v in env.items() if k.startswith(PREFIX)})


def _production_session_s() -> float:
    return Settings(profile="production", pseudonym_key="q7Rz0pLw2VnK9xT4bYc8MdE1sHfJ6uGa3WkN5oQi",
                    deadletter_key="Hb4Tq9ZmW2cXr7LpN0vKs5DyE8gFa1JuR6oYi3Me").effective_session_timeout_s


# -- Dockerfile -------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_slim_non_root_and_checks_health() -> None:
    instructions = _dockerfile()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11-slim(-\w+)?", base) for base in bases), bases
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "run as a numeric, non-root uid (Kubernetes runAsNonRoot checks it)"
    (health,) = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert "/healthz" in health
    assert [rest for keyword, rest in final if keyword == "EXPOSE"] == [str(WEB_PORT)]
    assert ("ENTRYPOINT", '["bridge"]') in final and ("CMD", '["worker"]') in final


def test_dockerfile_copies_what_exists_and_the_package_needs() -> None:
    for keyword, rest in _dockerfile():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    copied = {s for k, rest in _dockerfile() if k == "COPY" for s in shlex.split(rest)[:-1]}
    assert {"bridge", "adapters", "topics", "pyproject.toml", "constraints.txt"} <= copied


def test_dockerfile_user_is_the_one_kubernetes_runs_as(yaml) -> None:
    uid = int([rest for k, rest in _dockerfile() if k == "USER"][-1].split(":")[0])
    for name in ("deployment.yaml", "migrate-job.yaml"):
        (resource,) = load_all(yaml, K8S / name)
        assert resource["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


# -- docker compose ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose(yaml) -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_starts_the_whole_stack(compose: dict) -> None:
    services = compose["services"]
    assert {"kafka", "postgres", "topics", "bridge-1", "bridge-2", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert service.get("image"), f"service {name} names no image"
        assert ":" in service["image"] and not service["image"].endswith(":latest"), f"{name}: pin a tag"
    assert not any("zookeeper" in s["image"] for s in services.values())


def test_compose_kafka_runs_in_kraft_mode(compose: dict) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] and env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    # KRaft's cluster id is 16 bytes, base64url-encoded without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_workers_are_configured_by_settings(compose: dict) -> None:
    services = compose["services"]
    workers = {name: s for name, s in services.items() if s.get("command") == ["worker"]}
    assert set(workers) == {"bridge-1", "bridge-2"}
    for name, worker in workers.items():
        settings = _settings_from(worker["environment"])
        assert settings.profile == "production" and not settings.uses_development_key
        assert settings.broker_url and settings.database_url.startswith("postgresql")
        container_ports = {mapping.split(":")[-1] for mapping in worker["ports"]}
        assert container_ports == {str(settings.web_port)}
        assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        grace = worker["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) > _production_session_s() + RETRY_CAP_S
    for name, service in services.items():
        for variable in service.get("environment", {}):
            if variable.startswith(PREFIX):
                _setting(variable)
    assert services["topics"]["command"] == ["topics", "apply"]
    assert services["topics"]["restart"] == "no"


def test_compose_prometheus_scrapes_both_workers_and_loads_the_alerts(compose: dict, yaml) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "bridge"]
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    services = compose["services"]
    assert targets == {f"{name}:{_settings_from(services[name]['environment']).web_port}" for name in ("bridge-1", "bridge-2")}
    assert job.get("metrics_path", "/metrics") == "/metrics"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["prometheus"]["volumes"]}
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert (DEPLOY / mounts["/etc/prometheus/alerts.yml"]).resolve() == DEPLOY / "prometheus" / "alerts.yml"


def test_compose_grafana_provisions_the_datasource_and_the_dashboard(compose: dict, yaml) -> None:
    mounts = {m.split(":")[1]: (DEPLOY / m.split(":")[0]).resolve() for m in compose["services"]["grafana"]["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "bridge.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "bridge.json").is_file()


# -- Kubernetes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s(yaml) -> dict[tuple[str, str], dict]:
    resources = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(yaml, path):
            resources[(doc["kind"], doc["metadata"]["name"])] = doc
    return resources


def _one(k8s: dict, kind: str) -> dict:
    (resource,) = [r for (k, _), r in k8s.items() if k == kind]
    return resource


def test_kustomization_lists_every_manifest(yaml) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert [image["name"] for image in kustomization["images"]] == ["bridge"]


def test_k8s_has_every_resource_an_operator_expects(k8s: dict) -> None:
    kinds = {kind for kind, _ in k8s}
    assert {
        "Deployment", "PodDisruptionBudget", "ConfigMap", "Secret", "Service", "ServiceMonitor",
        "PrometheusRule", "KafkaTopic", "Job",
    } <= kinds


def test_deployment_probes_ports_resources_and_grace(k8s: dict) -> None:
    deployment = _one(k8s, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "bridge"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = k8s[("ConfigMap", "bridge-config")]["data"]
    assert ports == {"http": int(config["BRIDGE_WEB_PORT"])}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    # Longer than a commit: the batch in hand, a retry at the backoff cap, leaving the group.
    assert pod["terminationGracePeriodSeconds"] > _production_session_s() + RETRY_CAP_S
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_deployment_environment_is_valid_settings(k8s: dict) -> None:
    pod = _one(k8s, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env: dict[str, object] = {}
    for source in container["envFrom"]:
        ref = source.get("configMapRef") or source.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        resource = k8s[(kind, ref["name"])]
        env.update(resource.get("data") or resource.get("stringData"))
    settings = _settings_from(env)
    assert settings.profile == "production"
    assert settings.web_port == WEB_PORT
    # The equivalence table's path lies in a mounted ConfigMap that holds it.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    path = Path(str(settings.course_equivalences))
    (volume,) = [v for v in pod["volumes"] if "configMap" in v and Path(mounts[v["name"]]) == path.parent]
    assert path.name in k8s[("ConfigMap", volume["configMap"]["name"])]["data"]
    assert "/tmp" in mounts.values()  # Faust's data directory, on a read-only root


def test_secret_holds_only_marked_placeholders(k8s: dict) -> None:
    secret = _one(k8s, "Secret")
    assert set(secret["stringData"]) == {"BRIDGE_DATABASE_URL", "BRIDGE_PSEUDONYM_KEY"}
    for key, value in secret["stringData"].items():
        _setting(key)
        assert "REPLACE-ME" in value, f"{key} is not a clearly marked placeholder"
    assert "PLACEHOLDER" in (K8S / "secret.yaml").read_text()


def test_selectors_match_the_pods(k8s: dict) -> None:
    pod_labels = _one(k8s, "Deployment")["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    assert selects(_one(k8s, "Deployment")["spec"]["selector"]["matchLabels"], pod_labels)
    assert selects(_one(k8s, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    service = _one(k8s, "Service")
    assert selects(service["spec"]["selector"], pod_labels)
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    monitor = _one(k8s, "ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"


def test_migration_job_runs_db_upgrade_with_the_workers_settings(k8s: dict) -> None:
    job = _one(k8s, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade"]
    worker = _one(k8s, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == worker["envFrom"]
    assert container["image"] == worker["image"]
