"""The deploy files, checked structurally (no Docker engine or cluster needed).

They must agree with the code: ports and probes with the worker's endpoints, environment names
with the settings, images and users with the Dockerfile, selectors with labels, Kafka users and
their credentials with topics/strimzi.py. And they ship no usable secret: every secret-like value
in deploy/ is one the production profile refuses.
"""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

import pytest

from bridge.errors import ConfigurationError
from bridge.settings import Settings
from bridge.stream.retry import RETRY_CAP_S
from tests.ops.conftest import DEPLOY, ROOT, load_all
from topics import strimzi
from topics import strimzi

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


def _random_key() -> str:
    """A secret as `openssl rand -base64 48` makes one."""
    return secrets.token_urlsafe(48)


#: ``${VAR}``, ``${VAR:?message}``, ``${VAR:-default}`` and the like in a compose file (``$$`` escapes).
_INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
#: Names of variables that hold a secret (not BRIDGE_OPERATOR_KEYS: the path of public keys).
_SECRET_NAME = re.compile(r"(KEY|PASSWORD|SECRET|TOKEN|CREDENTIALS?)$", re.IGNORECASE)


def _interpolate(value: object, env: dict[str, str]) -> str:
    """``value`` as compose would pass it with ``env`` as the environment (required variables must be set)."""

    def one(match: re.Match[str]) -> str:
        name, op = match["name"], match["op"] or ""
        if name in env:
            return env[name]
        assert "?" not in op, f"required variable {name} not given"
        return match["arg"] if "-" in op else ""

    return _INTERPOLATION.sub(one, str(value)).replace("$$", "$")


def _compose_variables() -> set[str]:
    return {m["name"] for m in _INTERPOLATION.finditer((DEPLOY / "docker-compose.yml").read_text())}


def _compose_env() -> dict[str, str]:
    """Real random values for every variable the compose file takes from the environment."""
    return {name: (_random_key() if "KEY" in name else secrets.token_hex(32)) for name in _compose_variables()}


def _env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


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


def _kafka_properties(compose: dict) -> dict[str, str]:
    (config,) = [c for c in compose["services"]["kafka"]["configs"] if c["source"] == "kafka-server"]
    properties = {}
    for line in compose["configs"][config["source"]]["content"].splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties


def test_compose_kafka_runs_in_kraft_mode(compose: dict) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    props = _kafka_properties(compose)
    assert set(props["process.roles"].split(",")) == {"broker", "controller"}
    assert props["controller.quorum.voters"] and props["controller.listener.names"] == "CONTROLLER"
    # KRaft's cluster id is 16 bytes, base64url-encoded without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["environment"]["CLUSTER_ID"])
    assert props["auto.create.topics.enable"] == "false"
    command = " ".join(kafka["command"])
    assert "kafka-storage.sh format" in command and "kafka-server-start.sh" in command


def test_compose_kafka_clients_connect_only_with_sasl_ssl(compose: dict) -> None:
    props = _kafka_properties(compose)
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    listeners = dict(item.split("://") for item in props["listeners"].split(","))
    for name, address in listeners.items():
        host = address.rsplit(":", 1)[0]
        # Every listener other containers or the host can reach authenticates and encrypts.
        assert protocols[name] == "SASL_SSL" or host == "localhost", f"{name} listens beyond loopback unprotected"
    assert props["inter.broker.listener.name"] != "CLIENT" and props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    for name in (n for n, p in protocols.items() if p == "SASL_SSL"):
        assert "ScramLoginModule" in props[f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config"]
    assert props["ssl.keystore.location"].startswith("/etc/kafka-tls/")
    # The workers' bootstrap is the CLIENT listener, and their SCRAM user is the one the storage gets.
    advertised = dict(item.split("://") for item in props["advertised.listeners"].split(","))
    env = compose["x-bridge"]["environment"]
    assert env["BRIDGE_BROKER_URL"] == f"kafka://{advertised['CLIENT']}"
    assert env["BRIDGE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["BRIDGE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    command = " ".join(compose["services"]["kafka"]["command"])
    assert f"SCRAM-SHA-512=[name={env['BRIDGE_KAFKA_SASL_USERNAME']},password=$$KAFKA_WORKER_PASSWORD]" in command
    assert "KAFKA_WORKER_PASSWORD" in env["BRIDGE_KAFKA_SASL_PASSWORD"]


def test_compose_certificates_are_made_once_and_only_the_broker_holds_its_key(compose: dict) -> None:
    services = compose["services"]
    certs = services["kafka-certs"]
    mounts = dict(m.split(":")[:2] for m in certs["volumes"])
    assert set(mounts) == {"kafka-tls", "kafka-ca"}
    script = certs["command"][-1]
    assert f"-out {mounts['kafka-ca']}/ca.crt" in script and f"-out {mounts['kafka-tls']}/kafka.p12" in script
    assert "DNS:kafka" in script and "DNS:localhost" in script
    holders = {name for name, s in services.items() for m in s.get("volumes", []) if m.split(":")[0] == "kafka-tls"}
    assert holders == {"kafka", "kafka-certs"}
    # The workers trust the stack's CA: CAFILE lies in the mounted CA volume.
    cafile = Path(compose["x-bridge"]["environment"]["BRIDGE_KAFKA_SSL_CAFILE"])
    (ca_mount,) = [m for m in compose["x-bridge"]["volumes"] if m.split(":")[0] == "kafka-ca"]
    assert Path(ca_mount.split(":")[1]) == cafile.parent and ca_mount.endswith(":ro")
    for name in ("kafka", "topics", "migrate"):
        assert services[name]["depends_on"].get("kafka-certs", {}).get("condition") in (
            "service_completed_successfully", None,
        )
    assert services["kafka"]["depends_on"]["kafka-certs"]["condition"] == "service_completed_successfully"


def test_compose_takes_every_secret_from_the_environment_with_no_default(compose: dict) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    for match in _INTERPOLATION.finditer(text):
        assert match["op"] == ":?", f"${{{match['name']}}} must be required (${{VAR:?how to set it}}), not defaulted"
        assert "deploy/.env" in match["arg"], f"{match['name']}: the error must say how to set it"
    for name, service in [("x-bridge", compose["x-bridge"]), *compose["services"].items()]:
        for variable, value in (service.get("environment") or {}).items():
            if _SECRET_NAME.search(variable) or "://" in str(value) and "@" in str(value):
                assert _INTERPOLATION.search(str(value)), f"{name}: {variable} ships a literal secret"
    # deploy/.env.example names every variable, and only those.
    assert set(_env_example()) == _compose_variables()


def test_an_unedited_env_example_starts_nothing() -> None:
    # ${VAR:?...} refuses an empty value as it refuses a missing one: no service of the compose
    # file (Kafka, PostgreSQL, Grafana) can start with a value copied from the example.
    assert _env_example() and all(value == "" for value in _env_example().values())


def test_compose_workers_are_configured_by_settings(compose: dict) -> None:
    services = compose["services"]
    workers = {name: s for name, s in services.items() if s.get("command") == ["worker"]}
    assert set(workers) == {"bridge-1", "bridge-2"}
    env = _compose_env()
    for name, worker in workers.items():
        settings = _settings_from({k: _interpolate(v, env) for k, v in worker["environment"].items()})
        assert settings.profile == "production" and not settings.uses_development_key
        assert settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_ssl_cafile is not None and settings.kafka_ssl_check_hostname
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
    env = _compose_env()

    def port(name: str) -> int:
        return _settings_from({k: _interpolate(v, env) for k, v in services[name]["environment"].items()}).web_port

    assert targets == {f"{name}:{port(name)}" for name in ("bridge-1", "bridge-2")}
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
    """The one resource of ``kind`` of the workers (the console's are checked on their own)."""
    (resource,) = [r for (k, _), r in k8s.items() if k == kind and not _console(r)]
    return resource


def _console(resource: dict) -> bool:
    return (resource.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/component") == "console"


def test_the_console_runs_beside_the_workers_and_answers_only_its_sign_in_page(k8s: dict, compose: dict) -> None:
    deployment = k8s[("Deployment", "bridge-console")]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["console"] and container["image"] == "bridge"
    env = {e["name"]: e.get("value") for e in container["env"]}
    for variable in env:
        _setting(variable)
    (port,) = container["ports"]
    assert str(port["containerPort"]) == env["BRIDGE_CONSOLE_PORT"] and env["BRIDGE_CONSOLE_HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == container["readinessProbe"]["httpGet"] == {"path": "/signin", "port": "http"}
    service = k8s[("Service", "bridge-console")]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    secret = k8s[("Secret", "bridge-console-secrets")]["stringData"]
    assert set(secret) == {"BRIDGE_CONSOLE_SESSION_SECRET"} and "REPLACE-ME" in secret["BRIDGE_CONSOLE_SESSION_SECRET"]
    # Its own Kafka user, whose password is the Secret Strimzi makes for it.
    assert env["BRIDGE_KAFKA_SASL_USERNAME"] == strimzi.CONSOLE_USER
    (password,) = [e for e in container["env"] if e["name"] == "BRIDGE_KAFKA_SASL_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": strimzi.CONSOLE_USER, "key": "password"}
    # The health page asks every worker pod through a headless Service of the worker pods, which
    # the ServiceMonitor does not select (it would scrape each pod twice).
    pods = k8s[("Service", "bridge-worker-pods")]
    assert pods["spec"]["clusterIP"] == "None" and pods["spec"]["publishNotReadyAddresses"] is True
    worker_pod = _one(k8s, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(worker_pod.get(k) == v for k, v in pods["spec"]["selector"].items())
    monitor = _one(k8s, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert not all(pods["metadata"]["labels"].get(k) == v for k, v in monitor.items())
    (pods_port,) = pods["spec"]["ports"]
    assert env["BRIDGE_CONSOLE_WORKERS"] == f"dns+http://{pods['metadata']['name']}:{pods_port['port']}"
    console = compose["services"]["console"]
    assert console["command"] == ["console"]
    env = _compose_env()
    settings = _settings_from({k: _interpolate(v, env) for k, v in {**compose["x-bridge"]["environment"], **console["environment"]}.items()})
    assert settings.console_host == "0.0.0.0" and settings.console_session_secret is not None
    assert {m.split(":")[-1] for m in console["ports"]} == {str(settings.console_port)}


def test_kustomization_lists_every_manifest(yaml) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert [image["name"] for image in kustomization["images"]] == ["bridge"]


def test_k8s_has_every_resource_an_operator_expects(k8s: dict) -> None:
    kinds = {kind for kind, _ in k8s}
    assert {
        "Deployment", "PodDisruptionBudget", "ConfigMap", "Secret", "Service", "ServiceMonitor",
        "PrometheusRule", "KafkaTopic", "KafkaUser", "Job",
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


def _container_env(k8s: dict, container: dict, *, fill_placeholders: bool) -> dict[str, str]:
    """The BRIDGE_* environment of ``container``; placeholders replaced by real secrets if asked."""
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        ref = source.get("configMapRef") or source.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        resource = k8s[(kind, ref["name"])]
        env.update(resource.get("data") or resource.get("stringData"))
    for item in container.get("env", []):
        # Strimzi's generated Secret is not in deploy/: stand in a password as it generates one.
        env[item["name"]] = item["value"] if "value" in item else secrets.token_urlsafe(24)
    if fill_placeholders:
        env = {k: _random_key() if "REPLACE-ME" in v and "://" not in v else v for k, v in env.items()}
        env = {k: "postgresql+psycopg://bridge:pw@db:5432/bridge" if "REPLACE-ME" in v else v for k, v in env.items()}
    return env


def test_deployment_environment_is_valid_settings(k8s: dict) -> None:
    pod = _one(k8s, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = _settings_from(_container_env(k8s, container, fill_placeholders=True))
    assert settings.profile == "production"
    assert settings.transport_warnings() == []  # SASL_SSL, SCRAM, host names checked
    assert settings.web_port == WEB_PORT
    # The equivalence table's path lies in a mounted ConfigMap that holds it.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    path = Path(str(settings.course_equivalences))
    (volume,) = [v for v in pod["volumes"] if "configMap" in v and Path(mounts[v["name"]]) == path.parent]
    assert path.name in k8s[("ConfigMap", volume["configMap"]["name"])]["data"]
    assert "/tmp" in mounts.values()  # Faust's data directory, on a read-only root


def test_deployment_as_shipped_is_refused_by_the_production_profile(k8s: dict) -> None:
    (container,) = _one(k8s, "Deployment")["spec"]["template"]["spec"]["containers"]
    with pytest.raises(ConfigurationError):
        _settings_from(_container_env(k8s, container, fill_placeholders=False))


def test_deployment_connects_to_strimzi_with_sasl_ssl_as_the_worker_user(k8s: dict) -> None:
    pod = _one(k8s, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = _settings_from(_container_env(k8s, container, fill_placeholders=True))
    assert settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_ssl_check_hostname
    # The KafkaUser of kafka-users.yaml, its password from the Secret Strimzi makes for it.
    assert settings.kafka_sasl_username == strimzi.WORKER_USER
    assert k8s[("KafkaUser", strimzi.WORKER_USER)]["spec"]["authentication"]["type"] == "scram-sha-512"
    (password,) = [e for e in container["env"] if e["name"] == "BRIDGE_KAFKA_SASL_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": strimzi.WORKER_USER, "key": "password"}
    # The bootstrap service of the cluster the topics and users belong to, on its TLS listener.
    (server,) = settings.bootstrap_servers()
    assert server == f"{strimzi.DEFAULT_CLUSTER}-kafka-bootstrap:9093"
    # The cluster CA, mounted from Strimzi's Secret.
    cafile = Path(str(settings.kafka_ssl_cafile))
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    mount = mounts[str(cafile.parent)]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == f"{strimzi.DEFAULT_CLUSTER}-cluster-ca-cert"
    assert {"key": "ca.crt", "path": cafile.name} in volume["secret"]["items"]


def test_secret_holds_only_marked_placeholders(k8s: dict) -> None:
    secret = _one(k8s, "Secret")
    assert set(secret["stringData"]) == {"BRIDGE_DATABASE_URL", "BRIDGE_PSEUDONYM_KEY", "BRIDGE_DEADLETTER_KEY"}
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
    # It never connects to Kafka, so it gets no Kafka credential, and its settings are valid without one.
    assert not any("SASL_PASSWORD" in e["name"] for e in container.get("env", []))
    settings = _settings_from(_container_env(k8s, container, fill_placeholders=True))
    assert settings.profile == "production" and settings.kafka_sasl_password is None


# -- no usable secret anywhere in deploy/ -----------------------------------------------------


def _shipped_secrets(yaml) -> dict[str, str]:
    """Every secret-like value deploy/ ships, by where it is."""
    found: dict[str, str] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in load_all(yaml, path):
            if doc.get("kind") == "Secret":
                for key, value in {**doc.get("stringData", {}), **doc.get("data", {})}.items():
                    found[f"{path.name}: {key}"] = str(value)
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, service in [("x-bridge", compose["x-bridge"]), *compose["services"].items()]:
        for variable, value in (service.get("environment") or {}).items():
            text = str(value)
            for match in _INTERPOLATION.finditer(text):
                if match["op"] and "-" in match["op"]:
                    found[f"compose {name}: default of {match['name']}"] = match["arg"]
            if _SECRET_NAME.search(variable) and not _INTERPOLATION.search(text):
                found[f"compose {name}: {variable}"] = text
    for name, value in _env_example().items():
        found[f".env.example: {name}"] = value
    return found


def test_deploy_ships_secrets_to_check(yaml) -> None:
    found = _shipped_secrets(yaml)
    assert any(k.startswith("secret.yaml") for k in found) and any(k.startswith(".env.example") for k in found)
    assert {"secret.yaml: BRIDGE_PSEUDONYM_KEY", "secret.yaml: BRIDGE_DEADLETTER_KEY"} <= set(found)


def test_the_production_profile_refuses_every_secret_shipped_in_deploy(yaml) -> None:
    good = {"pseudonym_key": _random_key(), "deadletter_key": _random_key()}
    Settings(profile="production", **good)  # the stand-ins themselves pass
    sasl = dict(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u")
    Settings(profile="production", **good, **sasl, kafka_sasl_password=secrets.token_hex(32))
    for where, value in _shipped_secrets(yaml).items():
        for field in ("pseudonym_key", "deadletter_key"):
            with pytest.raises(ConfigurationError):
                Settings(profile="production", **{**good, field: value})
                pytest.fail(f"{where} is accepted as {field}")
        with pytest.raises(ConfigurationError):
            Settings(profile="production", **good, **sasl, kafka_sasl_password=value)
            pytest.fail(f"{where} is accepted as the SASL password")


def test_workers_trust_an_operator_key_file_that_is_mounted_and_parses(k8s: dict, compose: dict, tmp_path) -> None:
    from bridge.core.signing import TrustedKeys

    # Kubernetes: the file lies in a mounted ConfigMap that holds it (public keys are no secret).
    pod = _one(k8s, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = _settings_from(_container_env(k8s, container, fill_placeholders=True))
    path = Path(str(settings.operator_keys))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (volume,) = [v for v in pod["volumes"] if "configMap" in v and Path(mounts[v["name"]]) == path.parent]
    text = k8s[("ConfigMap", volume["configMap"]["name"])]["data"][path.name]
    (tmp_path / "k8s.keys").write_text(text)
    TrustedKeys.load(tmp_path / "k8s.keys")
    # Compose: a file of deploy/ mounted read-only at that path.
    target = compose["x-bridge"]["environment"]["BRIDGE_OPERATOR_KEYS"]
    (mount,) = [m for m in compose["x-bridge"]["volumes"] if m.split(":")[1] == target]
    source = (DEPLOY / mount.split(":")[0]).resolve()
    assert source.is_file() and mount.endswith(":ro")
    TrustedKeys.load(source)
