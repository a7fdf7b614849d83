"""deploy/k8s/kafka-topics.yaml is generated from the topic catalogue and must not drift from it."""

from __future__ import annotations

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
    out = tmp_path / "topics.yaml"
    assert strimzi.main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == strimzi.render()
