"""deploy/k8s/kafka-topics.yaml and kafka-users.yaml are generated from the topic catalogue and must not drift from it."""

from __future__ import annotations

from bridge.settings import Settings
from tests.ops.conftest import load_all
from topics import catalogue, strimzi


def test_the_committed_file_is_what_the_catalogue_generates(yaml) -> None:
    committed = strimzi.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert committed == strimzi.render(), (
        "deploy/k8s/kafka-topics.yaml drifted from topics/catalogue.py: run `python -m topics.strimzi`"
    )


def test_every_topic_the_bridge_owns_is_a_kafka_topic_with_its_catalogue_config(yaml) -> None:
    resources = {r["spec"]["topicName"]: r for r in load_all(yaml, strimzi.DEFAULT_OUTPUT)}
    owned = {t.name for t in catalogue.TOPICS if t.value_model is not None}
    assert set(resources) == owned
    assert not set(resources) & {t.name for t in catalogue.TOPICS if t.value_model is None}
    for name, resource in resources.items():
        spec = catalogue.by_name(name)
        assert resource["apiVersion"] == "kafka.strimzi.io/v1beta2" and resource["kind"] == "KafkaTopic"
        assert resource["metadata"]["labels"]["strimzi.io/cluster"] == strimzi.DEFAULT_CLUSTER
        config = resource["spec"]["config"]
        for key, value in spec.kafka_configs().items():
            assert config[key] == value
        assert resource["spec"]["replicas"] == strimzi.DEFAULT_REPLICAS
        assert int(config["min.insync.replicas"]) < resource["spec"]["replicas"]


def test_options_change_the_rendering(yaml) -> None:
    docs = list(yaml.safe_load_all(strimzi.render(partitions=12, replicas=1, cluster="other", namespace="ns")))
    assert {d["spec"]["partitions"] for d in docs} == {12}
    assert all("min.insync.replicas" not in d["spec"]["config"] for d in docs)
    assert {d["metadata"]["labels"]["strimzi.io/cluster"] for d in docs} == {"other"}


def test_main_writes_the_file(tmp_path, capsys) -> None:
    out, users = tmp_path / "topics.yaml", tmp_path / "users.yaml"
    assert strimzi.main(["--output", str(out), "--users-output", str(users)]) == 0
    assert out.read_text(encoding="utf-8") == strimzi.render()
    assert users.read_text(encoding="utf-8") == strimzi.render_users()


# -- KafkaUser resources: least privilege (CONTRACT §2) ----------------------------------------


def _acls(yaml) -> dict[str, list[dict]]:
    return {u["metadata"]["name"]: u["spec"]["authorization"]["acls"] for u in load_all(yaml, strimzi.DEFAULT_USERS_OUTPUT)}


def _may(acls: list[dict], operation: str, kind: str, name: str) -> bool:
    """Whether ``acls`` allow ``operation`` on the resource (literal or prefix patterns, ``All`` included)."""
    for acl in acls:
        resource = acl["resource"]
        if acl.get("type", "allow") != "allow" or resource["type"] != kind:
            continue
        pattern = resource.get("name", "")
        matches = (
            name.startswith(pattern) if resource.get("patternType") == "prefix" else pattern in (name, "*")
        ) if kind != "cluster" else True
        if matches and (operation in acl["operations"] or "All" in acl["operations"]):
            return True
    return False


def test_the_committed_users_file_is_what_the_catalogue_generates(yaml) -> None:
    committed = strimzi.DEFAULT_USERS_OUTPUT.read_text(encoding="utf-8")
    assert committed == strimzi.render_users(), (
        "deploy/k8s/kafka-users.yaml drifted from topics/catalogue.py: run `python -m topics.strimzi`"
    )


def test_users_are_scram_with_simple_authorization_of_the_v1beta2_schema(yaml) -> None:
    users = load_all(yaml, strimzi.DEFAULT_USERS_OUTPUT)
    assert {u["metadata"]["name"] for u in users} == {
        strimzi.WORKER_USER, strimzi.OPERATOR_USER, strimzi.CONSOLE_USER, strimzi.SUBSCRIBER_USER,
    }
    for user in users:
        assert user["apiVersion"] == "kafka.strimzi.io/v1beta2" and user["kind"] == "KafkaUser"
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == strimzi.DEFAULT_CLUSTER
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"
        for acl in user["spec"]["authorization"]["acls"]:
            assert set(acl) <= {"type", "resource", "operations", "host"} and acl["type"] == "allow"
            assert acl["resource"]["type"] in {"topic", "group", "cluster", "transactionalId"}
            assert acl["resource"]["patternType"] in {"literal", "prefix"}
            assert acl["host"] == "*" and acl["operations"]
            assert set(acl["operations"]) <= {"Read", "Write", "Describe"}, "nothing beyond read, write, describe"


def test_nobody_but_the_operators_and_their_console_reads_dead_letters(yaml) -> None:
    readers = {name for name, acls in _acls(yaml).items() if _may(acls, "Read", "topic", catalogue.DEADLETTER.name)}
    # The worker writes them and never reads them back.
    assert readers == {strimzi.OPERATOR_USER, strimzi.CONSOLE_USER}


def test_the_console_writes_decisions_and_replays_and_reads_nothing_but_dead_letters(yaml) -> None:
    """Not the worker's user: the console cannot publish a credit record or an identity."""
    acls = _acls(yaml)[strimzi.CONSOLE_USER]
    for topic in catalogue.TOPICS:
        assert _may(acls, "Write", "topic", topic.name) is (topic in catalogue.INPUT_TOPICS), topic.name
        assert _may(acls, "Read", "topic", topic.name) is (topic is catalogue.DEADLETTER), topic.name
    assert _may(acls, "Write", "topic", catalogue.DECISIONS.name)
    assert not any(acl["resource"]["type"] in {"group", "cluster"} for acl in acls)


def test_the_subscriber_writes_nothing_and_reads_only_published_outputs(yaml) -> None:
    acls = _acls(yaml)[strimzi.SUBSCRIBER_USER]
    assert not any("Write" in acl["operations"] or "All" in acl["operations"] for acl in acls)
    for topic in catalogue.TOPICS:
        published = topic in catalogue.OUTPUT_TOPICS and topic is not catalogue.DEADLETTER
        assert _may(acls, "Read", "topic", topic.name) is published, topic.name
    assert _may(acls, "Read", "group", strimzi.SUBSCRIBER_GROUP_PREFIX + "hr")
    assert not _may(acls, "Read", "group", "bridge")


def test_the_operators_only_write_is_decisions(yaml) -> None:
    acls = _acls(yaml)[strimzi.OPERATOR_USER]
    writes = [acl for acl in acls if "Write" in acl["operations"] or "All" in acl["operations"]]
    assert [(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"]) for a in writes] == [
        ("topic", catalogue.DECISIONS.name, "literal")
    ]
    assert not any(acl["resource"]["type"] == "group" for acl in acls)
    for topic in catalogue.TOPICS:
        assert _may(acls, "Read", "topic", topic.name) is (topic is catalogue.DEADLETTER), topic.name


def test_the_worker_reads_every_input_and_writes_every_output_in_its_group(yaml) -> None:
    acls = _acls(yaml)[strimzi.WORKER_USER]
    for topic in catalogue.INPUT_TOPICS:
        assert _may(acls, "Read", "topic", topic.name) and not _may(acls, "Write", "topic", topic.name)
    for topic in catalogue.OUTPUT_TOPICS:
        assert _may(acls, "Write", "topic", topic.name) and not _may(acls, "Read", "topic", topic.name)
    assert _may(acls, "Read", "group", Settings.model_fields["group_id"].default)
    assert not any(acl["resource"]["type"] == "cluster" for acl in acls), "no Create, no IdempotentWrite"


def test_every_topic_of_the_catalogue_is_covered(yaml) -> None:
    acls = _acls(yaml)
    for topic in catalogue.TOPICS:
        assert any(_may(a, "Read", "topic", topic.name) for a in acls.values()), f"nobody reads {topic.name}"
        if topic not in catalogue.PLATFORM_TOPICS:  # the platforms' own producers write theirs
            assert any(_may(a, "Write", "topic", topic.name) for a in acls.values()), f"nobody writes {topic.name}"
    named = {acl["resource"]["name"] for a in acls.values() for acl in a if acl["resource"]["type"] == "topic"}
    assert named == {t.name for t in catalogue.TOPICS}, "an ACL names a topic outside the catalogue"


def test_the_users_follow_the_cluster_and_group_options(yaml) -> None:
    docs = list(yaml.safe_load_all(strimzi.render_users(cluster="other", namespace="ns", group_id="g2")))
    assert {d["metadata"]["labels"]["strimzi.io/cluster"] for d in docs} == {"other"}
    (worker,) = [d for d in docs if d["metadata"]["name"] == strimzi.WORKER_USER]
    assert _may(worker["spec"]["authorization"]["acls"], "Read", "group", "g2")
