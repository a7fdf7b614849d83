"""The harness's pure parts: options, figures, formatting and the parsing of what it reads.

No timing is asserted anywhere: the benchmark's figures are for reading, never a gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.kafkaio import Consumed, Produced, ends_of
from bench.passthrough import SOURCE_HEADER, parse_source, reencode, source_header
from bench.processes import metric_values
from bench.pyspy import summarise
from bench.report import Growth, Result, format_growth, format_table, percentile, ratio_line
from bench.run import build_parser, plan_from
from bench.scenarios import Bridge, Passthrough
from bench.workload import event_key, growth, simulated
from bridge.tools.simulate import SimMessage
from tests.factories import OU as OU_TOPIC
from tests.factories import UNION as UNION_TOPIC
from tests.factories import VOCATIONAL as VOCATIONAL_TOPIC


def plan(*argv: str):
    return plan_from(build_parser().parse_args(list(argv)))


# -- options ----------------------------------------------------------------------------------


def test_quick_shrinks_every_size() -> None:
    quick, full = plan("--quick"), plan()
    assert quick.quick and not full.quick
    assert quick.events < full.events
    assert quick.latency_events < full.latency_events
    assert quick.learners[1] < full.learners[1]
    assert full.learners == (10_000, 1_000_000)
    assert quick.growth_events < full.growth_events


def test_explicit_options_win_over_the_quick_defaults() -> None:
    p = plan("--quick", "--events", "500", "--rate", "250", "--latency-seconds", "2", "--learners", "10,1_000")
    assert (p.events, p.rate, p.latency_events, p.learners) == (500, 250.0, 500, (10, 1000))


def test_postgres_can_be_skipped_or_pointed_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_POSTGRES_URL", raising=False)
    assert plan("--skip-postgres").postgres_url is None
    assert plan().postgres_url.startswith("postgresql://")
    assert plan("--postgres-url", "postgresql://u:p@db:5432/x").postgres_url == "postgresql://u:p@db:5432/x"
    monkeypatch.setenv("TEST_POSTGRES_URL", "postgresql://env@h/db")
    assert plan().postgres_url == "postgresql://env@h/db"


@pytest.mark.parametrize("bad", [["--learners", "100"], ["--learners", "5,2"], ["--learners", "a,b"], ["--events", "x"]])
def test_bad_options_are_refused(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        plan(*bad)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        plan("--rate", "0")


# -- figures and formatting -------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_table_has_a_row_per_scenario_and_dashes_for_what_was_not_measured() -> None:
    text = format_table(
        [
            Result("aiokafka pass-through", 3000, 41234.5, 12.0, 30.4, 3000, 1000.0, 0.01, 41.0),
            Result("bridge SQLite", 3000, None, note="read 10 of 12 output messages"),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["scenario", "events", "events/s"]
    assert set(lines[1]) <= {"-", " "}
    assert "41,234" in lines[2] and "3000@1000/s" in lines[2]
    assert lines[3].startswith("bridge SQLite") and "read 10 of 12" in lines[3]
    assert " - " in lines[3]


def test_growth_lines_name_the_sizes_the_ratio_and_quick_mode() -> None:
    small = Growth(1_000, 2_000, 500.0, 2.0, 110.0)
    large = Growth(100_000, 2_000, 400.0, 2.4, 180.0)
    text = format_growth(small, large, quick=True)
    assert "QUICK MODE" in text
    assert "1.25x wall" in text and "1.20x cpu" in text
    assert "100,000 learners" in text and "180 MB" in text
    assert "QUICK" not in format_growth(small, large, quick=False)
    assert format_growth(None, large, quick=False) == "growth: not measured"


def test_ratio_line_is_bridge_over_faust_with_two_decimals() -> None:
    faust = Result("faust pass-through", 3000, 2000.0)
    assert ratio_line(Result("bridge SQLite", 3000, 1000.0), faust) == "throughput_ratio_vs_faust_passthrough=0.50"
    assert ratio_line(None, faust) == "throughput_ratio_vs_faust_passthrough=nan"
    assert ratio_line(Result("bridge SQLite", 3000, 1000.0), Result("faust", 1, None)).endswith("=nan")
    postgres = ratio_line(Result("bridge PostgreSQL", 3000, 1700.0), faust, "postgres_ratio_vs_faust_passthrough")
    assert postgres == "postgres_ratio_vs_faust_passthrough=0.85"


def test_a_group_of_workers_is_one_system_under_test(tmp_path: Path) -> None:
    from bench.processes import Process, ProcessGroup

    sleepers = [Process.start(["-c", "import time; time.sleep(30)"], {}, tmp_path / f"{n}.log") for n in range(2)]
    group = ProcessGroup(sleepers)
    try:
        assert group.pids == [p.pid for p in sleepers] and group.pid == sleepers[0].pid
        group.check_alive()
        assert group.cpu_seconds() >= 0.0
        assert (group.peak_rss_mb() or 0.0) > 0.0
        # The members' peaks grow while they start, so the aggregate is checked on fixed readings.
        sleepers[0].peak_rss_mb = lambda: 12.5  # type: ignore[method-assign]
        sleepers[1].peak_rss_mb = lambda: 40.0  # type: ignore[method-assign]
        assert group.peak_rss_mb() == 40.0
        sleepers[1].peak_rss_mb = lambda: None  # type: ignore[method-assign]
        assert group.peak_rss_mb() == 12.5
        sleepers[1].stop()
        with pytest.raises(Exception, match="exited"):
            group.check_alive()
    finally:
        group.stop()


def test_several_bridge_workers_start_warm_and_one_does_not() -> None:
    assert not Bridge.__new__(Bridge).warm
    system = Bridge("bridge PostgreSQL, 2 workers", "sqlite:///:memory:", workers=2)
    try:
        assert system.warm and system.workers == 2
        assert not Bridge("bridge SQLite", "sqlite:///:memory:").warm
    finally:
        system.close()


def test_scaleout_table_gives_ratios_against_one_worker_of_the_same_store() -> None:
    from bench.scaleout import Row, build_parser, format_rows

    rows = [
        Row("PostgreSQL", 1, 1000, throughput=500.0, conflicts=0.0, pg={"xact_commit": 100.0, "tup_inserted": 3000.0}),
        Row("PostgreSQL", 2, 1000, throughput=800.0, conflicts=2.5),
        Row("SQLite", 2, 1000, throughput=None, note="FAILED: x"),
    ]
    text = format_rows(rows).splitlines()
    assert "x 1 worker" in text[0]
    assert text[2].split()[:4] == ["PostgreSQL", "1", "500", "1.00"]
    assert text[3].split()[:5] == ["PostgreSQL", "2", "800", "1.60", "2.5"]
    assert "0.100" in text[2] and "3.0" in text[2]  # 100 transactions and 3,000 rows written per 1,000 events
    assert text[4].split()[:4] == ["SQLite", "2", "-", "-"] and text[4].endswith("FAILED: x")
    assert build_parser().parse_args(["--workers", "1,3"]).workers == [1, 3]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--workers", "0,2"])


# -- what the harness reads -------------------------------------------------------------------


def test_metric_values_reads_prometheus_text() -> None:
    text = "\n".join(
        [
            "# HELP bridge_batch_duration_seconds Time to process one batch.",
            "bridge_batch_duration_seconds_count 3.0",
            "bridge_batch_duration_seconds_sum 1.5",
            'bridge_messages_published_total{topic="credit.records.v1"} 10.0',
            'bridge_messages_published_total{topic="bridge.deadletter.v1"} 2.0',
            "bridge_messages_published_totally_else 9.0",
        ]
    )
    assert metric_values(text, "bridge_batch_duration_seconds_count") == {"": 3.0}
    assert sum(metric_values(text, "bridge_messages_published_total").values()) == 12.0
    assert metric_values(text, "bridge_missing") == {}


def test_source_header_round_trips() -> None:
    name, value = source_header("union.training.events.v1", 3, 42)
    assert name == SOURCE_HEADER
    assert parse_source(value) == ("union.training.events.v1", 3, 42)


def test_reencode_keeps_bad_input_as_it_is() -> None:
    assert json.loads(reencode('{"a": "张"}'.encode())) == {"a": "张"}
    assert reencode(b"\xff{") == b"\xff{"
    assert reencode(b"{cut") == b"{cut"
    assert reencode(None) is None


def test_event_keys_of_both_platforms_and_of_malformed_messages() -> None:
    assert event_key(SimMessage(UNION_TOPIC, b"k", b'{"msgId": "u-1"}')) == ("union", "u-1")
    assert event_key(SimMessage(OU_TOPIC, b"k", b'{"event_id": "01H"}')) == ("ou", "01H")
    assert event_key(SimMessage(VOCATIONAL_TOPIC, b"k", b'{"id": "6690e6c9"}')) == ("vocational", "6690e6c9")
    assert event_key(SimMessage(VOCATIONAL_TOPIC, b"k", b'{"event_id": "01H"}')) is None
    assert event_key(SimMessage(OU_TOPIC, b"k", b"\xff")) is None
    assert event_key(SimMessage(OU_TOPIC, b"k", b"[1]")) is None


def test_workloads_are_deterministic_and_sized() -> None:
    w = simulated(300, 100, seed=5)
    assert (len(w.preloaded), len(w.paced)) == (300, 100)
    assert w == simulated(300, 100, seed=5)
    mixed = growth(200, learners=50, seed=5)
    assert len(mixed) == 200 and mixed == growth(200, learners=50, seed=5)
    assert sum(1 for m in mixed if (k := event_key(m)) and k[1].startswith("bench-")) == 100


def _out(topic: str, value: dict | None, ts: int, headers=()) -> Consumed:
    raw = None if value is None else json.dumps(value).encode()
    return Consumed(topic, 0, 0, b"k", raw, ts, tuple(headers), 0.0)


def test_passthrough_latency_pairs_outputs_with_their_inputs() -> None:
    system = Passthrough("faust")
    inputs = [SimMessage(UNION_TOPIC, b"k", b"{}")] * 3
    produced = [Produced(UNION_TOPIC, 0, n, 1_000 + n) for n in range(3)]
    outputs = [_out("bench.passthrough.v1", {}, 1_050 + n, [source_header(UNION_TOPIC, 0, n)]) for n in range(2)]
    latencies, missing = system.latencies(outputs, list(zip(inputs, produced)))
    assert latencies == [50.0, 50.0] and missing == 1
    assert system.phase_end_ms(outputs, list(zip(inputs, produced)), None) == 1_051


def test_bridge_latency_uses_the_first_record_listing_each_event_and_dead_letters() -> None:
    system = Bridge.__new__(Bridge)  # no database needed for the pairing
    enrol = SimMessage(UNION_TOPIC, b"GH1", b'{"msgId": "u-1"}')
    done = SimMessage(UNION_TOPIC, b"GH1", b'{"msgId": "u-2"}')
    bad = SimMessage(UNION_TOPIC, b"GH1", b"\xff")
    phase = [
        (enrol, Produced(UNION_TOPIC, 0, 10, 1_000)),
        (done, Produced(UNION_TOPIC, 0, 11, 1_010)),
        (enrol, Produced(UNION_TOPIC, 0, 12, 1_020)),  # a redelivery: not counted again
        (bad, Produced(UNION_TOPIC, 0, 13, 1_030)),
    ]
    source = lambda event_id: {"platform": "union", "account": "GH1", "event_id": event_id}  # noqa: E731
    outputs = [
        _out("credit.records.v1", {"sources": [source("u-1")]}, 1_100),
        _out("credit.records.v1", {"sources": [source("u-1"), source("u-2")]}, 1_200),
        _out("credit.records.v1", None, 1_250),
        _out("bridge.deadletter.v1", {"topic": UNION_TOPIC, "partition": 0, "offset": 13}, 1_300),
    ]
    latencies, missing = system.latencies(outputs, phase)
    assert latencies == [100.0, 190.0, 270.0] and missing == 0
    assert system.phase_end_ms(outputs, phase, before_ms=1_250) == 1_200


def test_ends_come_from_acknowledgements() -> None:
    acks = [Produced("t", 0, 4, 0), Produced("t", 0, 9, 0), Produced("t", 1, 0, 0)]
    assert ends_of(acks) == {("t", 0): 10, ("t", 1): 1}


def test_profile_summary_ranks_self_and_inclusive_time(tmp_path: Path) -> None:
    raw = "\n".join(
        [
            "thread (0x1);run (bridge/worker.py:10);process (bridge/pipeline.py:20);execute (sqlalchemy/engine/base.py:5) 30",
            "thread (0x1);run (bridge/worker.py:10);process (bridge/pipeline.py:20);derive (bridge/core/credits.py:7) 10",
            "thread (0x2);select (selectors.py:1) 60",
        ]
    )
    text = summarise(raw)
    assert text.startswith("100 samples")
    assert " 60.0%  thread (0x2)" in text and " 40.0%  thread (0x1)" in text
    worker = text[text.index("== thread (0x1)"):]
    assert "75.0%  execute (sqlalchemy/engine/base.py)" in worker  # self, of the thread's 40 samples
    assert "100.0%  process (bridge/pipeline.py)" in worker  # inclusive
    assert summarise("") == "no samples\n"
