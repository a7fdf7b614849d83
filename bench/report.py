"""Figures and their presentation: percentiles, the results table, the growth lines, the ratio."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

METHOD = """\
method: each scenario has its own embedded broker (tansu), fresh topics and a fresh database.
  throughput: N input messages are preloaded, then the system starts as a separate process;
    events/s = N / (last output message's timestamp - first consumed message). First consumed
    is reported by the pass-throughs themselves; for the bridge it is the start of its first
    batch (the first /metrics sample with bridge_batch_duration_seconds_count >= 1, minus that
    sum), or its readiness (/readyz) if that metric is missing.
  latency: after that, M more messages are sent at a paced rate; each message's latency is the
    CreateTime the system's producer stamped on the first output that carries it (pass-through:
    the bench-src header; bridge: the credit record listing the event among its sources, or
    the dead letter naming its offset) minus the CreateTime of the input message (harness
    producer, same clock). Redeliveries that produce no output are left out.
  cpu ms/event: the worker's user+system CPU (/proc/<pid>/stat) from readiness to the end of the
    throughput phase, per input message. peak RSS: VmHWM of /proc/<pid>/status at the end."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Result:
    """One scenario's figures; ``None`` where a figure was not measured."""

    name: str
    events: int
    throughput: float | None
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_events: int = 0
    rate: float | None = None
    cpu_ms_per_event: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Growth:
    """The bridge on SQLite with ``learners`` preloaded: cost of ``events`` more."""

    learners: int
    events: int
    throughput: float | None
    cpu_ms_per_event: float | None
    peak_rss_mb: float | None

    @property
    def wall_ms_per_event(self) -> float | None:
        return 1000.0 / self.throughput if self.throughput else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table, one row per scenario."""
    header = ("scenario", "events", "events/s", "p50 ms", "p99 ms", "latency n@rate", "cpu ms/ev", "peak RSS MB", "note")
    rows = [header]
    for r in results:
        at = f"{r.latency_events}@{r.rate:g}/s" if r.latency_events and r.rate else "-"
        rows.append(
            (
                r.name,
                str(r.events),
                _fmt(r.throughput, ",.0f"),
                _fmt(r.p50_ms, ".0f"),
                _fmt(r.p99_ms, ".0f"),
                at,
                _fmt(r.cpu_ms_per_event, ".2f"),
                _fmt(r.peak_rss_mb, ".0f"),
                r.note,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i in (0, len(row) - 1) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_growth(small: Growth | None, large: Growth | None, *, quick: bool) -> str:
    """The growth figures: cost per event at two registry sizes, their ratio, peak memory."""
    if small is None or large is None:
        return "growth: not measured"
    lines = [
        "growth (bridge on SQLite, registry preloaded by bench.loader; half the events touch preloaded learners)"
        + (": QUICK MODE, smaller registries than the 10,000 vs 1,000,000 of the full run" if quick else ":"),
    ]
    for g in (small, large):
        lines.append(
            f"  {g.learners:>9,} learners: {g.events} events, {_fmt(g.throughput, ',.0f')} events/s, "
            f"{_fmt(g.wall_ms_per_event, '.2f')} ms/event wall, {_fmt(g.cpu_ms_per_event, '.2f')} ms/event cpu, "
            f"peak RSS {_fmt(g.peak_rss_mb, '.0f')} MB"
        )
    wall = ratio(large.wall_ms_per_event, small.wall_ms_per_event)
    cpu = ratio(large.cpu_ms_per_event, small.cpu_ms_per_event)
    lines.append(
        f"  cost per event {large.learners:,} vs {small.learners:,} learners: "
        f"{_fmt(wall, '.2f')}x wall, {_fmt(cpu, '.2f')}x cpu (target <= 1.3x); "
        f"worker peak RSS with {large.learners:,}: {_fmt(large.peak_rss_mb, '.0f')} MB (target < 400 MB)"
    )
    return "\n".join(lines)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def ratio_line(bridge: Result | None, faust: Result | None, name: str = "throughput_ratio_vs_faust_passthrough") -> str:
    """``name=X.XX``: the bridge's throughput over the Faust pass-through's (``nan``: one is missing).
    The last line of the output is the bridge on SQLite; the one before it, on PostgreSQL."""
    value = ratio(bridge.throughput if bridge else None, faust.throughput if faust else None)
    return f"{name}={'nan' if value is None else format(value, '.2f')}"
