"""The report of :mod:`bench.crowd`: what one size measured, as readable lines and as one ``result`` line."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.crowd import Cost

#: The kinds of single event measured, as ``(kind, label)``, in the report's order.
SCENARIOS = (
    ("crowd_next", "crowd member, next course"),
    ("crowd_new", "crowd member, new account"),
    ("baseline_next", "ordinary, next course"),
    ("baseline_new", "ordinary, new account"),
)


@dataclass
class SizeReport:
    """What one size measured, possibly partial."""

    size: int
    backend: str
    batches: list[Cost] = field(default_factory=list)
    loaded: dict[str, Any] | None = None
    singles: dict[str, list[Cost]] = field(default_factory=dict)
    final: dict[str, int] | None = None
    status: str = "ok"
    problem: str | None = None
    elapsed_s: float = 0.0

    def take(self, kind: str, value: Any) -> None:
        if kind == "batch":
            self.batches.append(value)
        elif kind == "loaded":
            self.loaded = value
        elif kind == "single":
            self.singles.setdefault(value[0], []).append(value[1])
        elif kind == "final":
            self.final = value


def _median(costs: Sequence[Cost], attr: str) -> float | None:
    values = [getattr(c, attr) for c in costs if getattr(c, attr) is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_size(report: SizeReport, timeout: float, repeat: int) -> list[str]:
    r = report
    lines = [f"== crowd of {r.size:,} accounts sharing one name+mobile ({r.backend})"]
    if r.status == "timeout":
        lines.append(f"   DID NOT FINISH within {timeout:.0f} s (figures below are what it reached)")
    elif r.status == "error":
        lines.append(f"   FAILED after {r.elapsed_s:.0f} s: {r.problem}")
    loaded = sum(c.events for c in r.batches)
    if r.batches:
        last = r.batches[-1]
        load = f"{r.loaded['load_s']:.1f} s" if r.loaded else "unfinished"
        lines.append(
            f"   load: {loaded:,}/{r.size:,} accounts in {len(r.batches)} batch(es), {load}; last batch "
            f"{last.events:,} events: {last.total_s:.2f} s ({1000 * last.total_s / last.events:.2f} ms/event; "
            f"process {last.process_s:.2f} s, publish {last.publish_s:.2f} s), {last.statements:,} statements"
            + (f", {last.ksteps:,.0f}k SQLite steps" if last.ksteps is not None else "")
        )
    state = r.final or r.loaded
    if state:
        lines.append(f"   the crowd is {state['crowd_learners']:,} learner(s), the largest with "
                     f"{state['largest_learner']:,} crowd accounts; {state['open_reviews']:,} open review item(s)")
    if r.singles:
        lines.append(f"   single events (median of {repeat} unless n says less; ms = process + publish):")
        lines.append(f"   {'event':<28}{'n':>3}{'ms':>11}{'process':>10}{'publish':>10}{'statements':>12}"
                     f"{'ksteps':>10}{'ms x':>9}{'stmts x':>9}")
        for kind, label in SCENARIOS:
            costs = r.singles.get(kind, [])
            if not costs:
                lines.append(f"   {label:<28}{0:>3}  did not run")
                continue
            base = r.singles.get("baseline_" + kind.split("_", 1)[1], []) if kind.startswith("crowd") else costs
            ms = _median(costs, "total_s")
            lines.append(
                f"   {label:<28}{len(costs):>3}{_f(ms and 1000 * ms, ',.1f'):>11}"
                f"{_f(1000 * _median(costs, 'process_s'), ',.1f'):>10}{_f(1000 * _median(costs, 'publish_s'), ',.1f'):>10}"
                f"{_f(_median(costs, 'statements'), ',.0f'):>12}{_f(_median(costs, 'ksteps'), ',.0f'):>10}"
                f"{_f(_ratio(ms, _median(base, 'total_s')), '.1f'):>9}"
                f"{_f(_ratio(_median(costs, 'statements'), _median(base, 'statements')), '.1f'):>9}"
            )
        lines.append("   (x: crowd / the ordinary account's same kind of event; ksteps: thousands of SQLite VM steps,\n"
                     "    ticks of a progress handler every 1,000 steps of a prepared statement: exact for big work, ~0 for small)")
    return lines


def result_line(report: SizeReport, timeout: float) -> str:
    """``result size=N backend=... key=value ...``: numbers, or ``-`` where nothing was measured."""
    r = report
    fields: dict[str, Any] = {"size": r.size, "backend": r.backend,
                              "status": "timeout" if r.status == "timeout" else r.status}
    if r.status == "timeout":
        fields["timeout_s"] = f"{timeout:.0f}"
    fields["loaded"] = sum(c.events for c in r.batches)
    fields["load_s"] = _f(r.loaded["load_s"] if r.loaded else None, ".2f")
    last = r.batches[-1] if r.batches else None
    fields["last_batch_events"] = last.events if last else "-"
    fields["last_batch_s"] = _f(last.total_s if last else None, ".3f")
    fields["last_batch_ms_per_event"] = _f(1000 * last.total_s / last.events if last else None, ".3f")
    fields["last_batch_statements"] = last.statements if last else "-"
    for kind, _label in SCENARIOS:
        costs = r.singles.get(kind, [])
        ms = _median(costs, "total_s")
        fields[f"{kind}_n"] = len(costs)
        fields[f"{kind}_ms"] = _f(ms and 1000 * ms, ".2f")
        fields[f"{kind}_statements"] = _f(_median(costs, "statements"), ".0f")
        fields[f"{kind}_ksteps"] = _f(_median(costs, "ksteps"), ".0f")
    for which in ("next", "new"):
        crowd, base = r.singles.get(f"crowd_{which}", []), r.singles.get(f"baseline_{which}", [])
        fields[f"ratio_{which}_ms"] = _f(_ratio(_median(crowd, "total_s"), _median(base, "total_s")), ".2f")
        fields[f"ratio_{which}_statements"] = _f(_ratio(_median(crowd, "statements"), _median(base, "statements")), ".2f")
    state = r.final or r.loaded or {}
    for key in ("crowd_learners", "largest_learner", "open_reviews"):
        fields[key] = state.get(key, "-")
    return "result " + " ".join(f"{k}={v}" for k, v in fields.items())


def code_version() -> str:
    """The commit of the ``bridge`` package imported, and whether its tree has uncommitted changes."""
    import bridge

    where = Path(bridge.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--", "bridge", "adapters"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"{where} (not a git checkout)"
    return f"{where} at {head}" + (" with uncommitted changes in bridge/ or adapters/" if dirty else "")


def summary(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
