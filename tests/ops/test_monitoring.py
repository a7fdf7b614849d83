"""The alert rules, their runbook and the dashboard query only what the bridge exports, and are valid."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.ops.conftest import DEPLOY, ROOT, load_all
from tests.ops.promql import exported_names, metric_names

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "bridge.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

#: The situations the issue asks alerts for, each with the metric its rule must watch.
REQUIRED_ALERTS = {
    "BridgeConsumerLagGrowing": "bridge_consumer_lag_messages",
    "BridgeDeadLetterRateHigh": "bridge_dead_letters_total",
    "BridgeNoProgress": "bridge_messages_consumed_total",
    "BridgeDatabaseErrors": "bridge_database_errors_total",
    "BridgeReviewBacklog": "bridge_review_items_open",
}
#: What the dashboard must show (issue 6), by a metric each topic's panels query.
REQUIRED_PANELS = {
    "throughput": "bridge_events_consumed_total",
    "lag": "bridge_consumer_lag_messages",
    "latency": "bridge_event_to_publication_seconds_bucket",
    "dead letters": "bridge_dead_letters_total",
    "review queue": "bridge_review_items_open",
    "identity outcomes": "bridge_identity_outcomes_total",
}


def _rules(yaml) -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _sections(markdown: str) -> list[tuple[str, str]]:
    """``(heading, body)`` of every second-level section."""
    parts = re.split(r"^## (.*)$", markdown, flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def test_every_metric_the_alert_rules_query_is_exported(yaml) -> None:
    exported = exported_names()
    for rule in _rules(yaml):
        unknown = metric_names(rule["expr"]) - exported
        assert not unknown, f"{rule['alert']} queries metrics the bridge does not export: {unknown}"


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = exported_names()
    queries = _dashboard_queries()
    assert queries
    for title, expr in queries:
        unknown = metric_names(expr) - exported
        assert not unknown, f"panel {title!r} queries metrics the bridge does not export: {unknown}"


def test_the_required_alerts_exist_and_watch_their_metric(yaml) -> None:
    rules = {rule["alert"]: rule for rule in _rules(yaml)}
    for name, metric in REQUIRED_ALERTS.items():
        assert name in rules, f"no alert {name}"
        assert metric in metric_names(rules[name]["expr"])


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section(yaml) -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    anchors = {_slug(heading): body for heading, body in _sections(text)}
    for rule in _rules(yaml):
        assert rule["labels"]["severity"] in ("warning", "critical")
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/runbook.md", annotations["runbook_url"]
        assert anchor in anchors, f"{rule['alert']}: no runbook section #{anchor}"
        for part in ("**Meaning.**", "**Checks.**", "**Actions.**"):
            assert part in anchors[anchor], f"runbook #{anchor} lacks {part}"


def test_the_dashboard_shows_what_operators_need() -> None:
    used = set().union(*(metric_names(expr) for _, expr in _dashboard_queries()))
    for topic, metric in REQUIRED_PANELS.items():
        assert metric in used, f"the dashboard has no {topic} panel ({metric})"
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # Panels use the dashboard's datasource variable, whose default is the provisioned source.
    variable = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert variable["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${" + variable["name"] + "}"


def test_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_on_their_unit_test_scenarios(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, check=False, cwd=ALERT_TESTS.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(promtool: str, yaml, tmp_path: Path) -> None:
    # promtool parses expressions only inside rule files: each query becomes a recording rule.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, (_, expr) in enumerate(_dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_resource_carries_the_same_groups(yaml) -> None:
    (resource,) = load_all(yaml, DEPLOY / "k8s" / "prometheusrule.yaml")
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"] == yaml.safe_load(ALERTS.read_text()), (
        "deploy/k8s/prometheusrule.yaml differs from deploy/prometheus/alerts.yml: copy the groups over"
    )


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (topic) (rate(bridge_a_total{reason="x"}[5m])) > 0', {"bridge_a_total"}),
        ("absent(bridge_ready == 1)", {"bridge_ready"}),
        ("bridge_a > bridge_a offset 15m and on (topic) up", {"bridge_a", "up"}),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval]))) > 1e3", {"x_bucket"}),
    ],
)
def test_metric_names_reads_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
