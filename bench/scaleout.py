"""``python -m bench.scaleout``: N bridge workers of one consumer group on one database.

For each store (PostgreSQL, and SQLite for the one-host comparison) and each worker count, a
fresh broker and database take the same simulated traffic; the workers start on empty topics, the
group settles its assignment, then the messages are produced and the clock runs from the first
one to the last output (see :data:`bench.report.METHOD`, "warm group"). Besides throughput it
prints what predicts the cost of N workers on a larger machine:

- serialization conflicts per 1,000 events (failed-and-retried database steps, summed over the
  workers' ``bridge_database_errors_total``; PostgreSQL's rolled-back transactions as a check);
- database work per event: the workers' time in database steps, PostgreSQL's transactions, rows
  read and written and buffer pages touched (``pg_stat_database`` of the run's own database);
- CPU per event of the workers and of the PostgreSQL server (its processes, reaped backends
  included), so that cores can be budgeted per component.

Never a pass/fail gate: the figures are for reading (``bench/RESULTS.md``, "Scale-out").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import workload
from bench.databases import postgres_available, postgres_database
from bench.run import DEFAULT_POSTGRES, machine
from bench.scenarios import Bridge, run
from bridge.tools.demo import Progress, write_equivalences

_PG_COUNTERS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated",
                "tup_deleted", "blks_read", "blks_hit")


@dataclass
class Row:
    """One run: a store, a number of workers, and what was measured."""

    store: str
    workers: int
    events: int
    throughput: float | None = None
    worker_cpu_ms: float | None = None
    conflicts: float | None = None
    db_step_ms: float | None = None
    pg: dict[str, float] = field(default_factory=dict)
    pg_cpu_ms: float | None = None
    note: str = ""

    def per_event(self, counter: str) -> float | None:
        value = self.pg.get(counter)
        return None if value is None or not self.events else value / self.events


def postgres_cpu_seconds() -> float | None:
    """CPU of every ``postgres`` process on this host, with the CPU of the backends it reaped."""
    total, found = 0.0, False
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        found = True
        # utime, stime, cutime, cstime: a backend that exited is counted in its parent's c*time.
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
    return total if found else None


def pg_counters(url: str) -> dict[str, float]:
    """``pg_stat_database`` counters of ``url``'s database (statistics flushed by exited backends)."""
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            row = conn.execute(
                text(f"SELECT {', '.join(_PG_COUNTERS)} FROM pg_stat_database WHERE datname = current_database()")
            ).one()
            return {name: float(value) for name, value in zip(_PG_COUNTERS, row)}
    finally:
        engine.dispose()


class Scaleout:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.progress = Progress()
        self.equivalences = write_equivalences(self.workdir / "course-equivalences.csv")
        self.traffic = workload.simulated(args.events, 0, args.seed)
        self.rows: list[Row] = []

    def say(self, text_: str) -> None:
        self.progress.show(text_, final=True)

    @contextmanager
    def database(self, store: str, workers: int) -> Iterator[str]:
        if store == "SQLite":
            path = self.workdir / f"sqlite-{workers}"
            path.mkdir(parents=True, exist_ok=True)
            db = path / "bridge.db"
            db.unlink(missing_ok=True)
            yield f"sqlite:///{db.resolve()}"
        else:
            with postgres_database(self.args.postgres_url) as url:
                yield url

    async def measure(self, store: str, workers: int) -> Row:
        row = Row(store, workers, len(self.traffic.preloaded))
        name = f"bridge {store}, {workers} worker{'s' if workers > 1 else ''}"
        self.say(f"== {name}")
        with self.database(store, workers) as url:
            system = Bridge(name, url, workers=workers)
            system.warm = True  # every worker count measured the same way
            seen: dict[str, float | None] = {}

            def at_end() -> None:
                seen["conflicts"] = system.metric_total("bridge_database_errors_total")
                seen["db_s"] = system.metric_total("bridge_database_operation_duration_seconds_sum")

            pg_before = pg_counters(url) if store == "PostgreSQL" else {}
            cpu_before = postgres_cpu_seconds() if store == "PostgreSQL" else None
            try:
                outcome = await run(system, self.traffic, workdir=self.workdir / f"{store.lower()}-{workers}",
                                    rate=1000.0, equivalences=self.equivalences,
                                    show=lambda t: self.progress.show(t), on_phase1=at_end)
            except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others' figures
                row.note = f"FAILED: {type(exc).__name__}: {exc}"
                self.say(f"{name}: {row.note}")
                return row
            finally:
                system.close()
            if store == "PostgreSQL":
                time.sleep(1.0)  # exited backends flush their statistics
                after = pg_counters(url)
                row.pg = {k: after[k] - pg_before.get(k, 0.0) for k in after}
                cpu_after = postgres_cpu_seconds()
                if cpu_before is not None and cpu_after is not None:
                    row.pg_cpu_ms = 1000 * (cpu_after - cpu_before) / row.events
        result = outcome.result
        row.throughput = result.throughput
        row.worker_cpu_ms = result.cpu_ms_per_event
        if seen.get("conflicts") is not None:
            row.conflicts = 1000 * seen["conflicts"] / row.events  # type: ignore[operator]
        if seen.get("db_s") is not None:
            row.db_step_ms = 1000 * seen["db_s"] / row.events  # type: ignore[operator]
        row.note = result.note
        self.say(f"{name}: {_fmt(row.throughput, ',.0f')} events/s, {_fmt(row.conflicts, '.1f')} conflicts/1,000 events")
        return row

    async def execute(self) -> int:
        stores = ["PostgreSQL"]
        problem = postgres_available(self.args.postgres_url)
        if problem:
            self.say(f"PostgreSQL at {self.args.postgres_url} unavailable ({problem}): start it with `bash .ci/postgres.sh`")
            return 1
        if self.args.sqlite:
            stores.append("SQLite")
        self.say(f"bench.scaleout on {machine()}; {len(self.traffic.preloaded)} messages per run")
        for store in stores:
            for workers in self.args.workers:
                self.rows.append(await self.measure(store, workers))
        print()
        print(f"machine: {machine()}")
        print(f"command: python -m bench.scaleout {' '.join(sys.argv[1:])}".rstrip())
        print(format_rows(self.rows))
        return 0 if all(r.throughput for r in self.rows) else 1


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_rows(rows: Sequence[Row]) -> str:
    """One line per run; ratios against the same store's one-worker run of this invocation."""
    header = ("store", "workers", "events/s", "x 1 worker", "conflicts/1k ev", "db step ms/ev", "worker cpu ms/ev",
              "pg cpu ms/ev", "pg xact/ev", "pg rows read/ev", "pg rows written/ev", "pg pages/ev", "note")
    lines = [header]
    for r in rows:
        one = next((o for o in rows if o.store == r.store and o.workers == 1 and o.throughput), None)
        speedup = r.throughput / one.throughput if one and r.throughput and one.throughput else None
        read = _sum(r.per_event("tup_returned"), r.per_event("tup_fetched"))
        written = _sum(r.per_event("tup_inserted"), r.per_event("tup_updated"), r.per_event("tup_deleted"))
        pages = _sum(r.per_event("blks_read"), r.per_event("blks_hit"))
        xacts = _sum(r.per_event("xact_commit"), r.per_event("xact_rollback"))
        lines.append((r.store, str(r.workers), _fmt(r.throughput, ",.0f"), _fmt(speedup, ".2f"),
                      _fmt(r.conflicts, ".1f"), _fmt(r.db_step_ms, ".3f"), _fmt(r.worker_cpu_ms, ".3f"),
                      _fmt(r.pg_cpu_ms, ".3f"), _fmt(xacts, ".3f"), _fmt(read, ".1f"), _fmt(written, ".1f"),
                      _fmt(pages, ".1f"), r.note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i in (0, len(line) - 1) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _sum(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _counts(text_: str) -> list[int]:
    try:
        counts = [int(part) for part in text_.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected worker counts such as 1,2,4, got {text_!r}") from None
    if not counts or any(c < 1 or c > 16 for c in counts):
        raise argparse.ArgumentTypeError(f"worker counts must be 1..16, got {text_!r}")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=_counts, default=[1, 2, 4], help="worker counts (default 1,2,4)")
    parser.add_argument("--events", type=int, default=20_000, help="messages per run (default 20000)")
    parser.add_argument("--sqlite", action="store_true", help="also run SQLite (one host: 1 and 2 workers make sense)")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES,
                        help=f"PostgreSQL server whose role may CREATE DATABASE (default: $TEST_POSTGRES_URL or {DEFAULT_POSTGRES})")
    parser.add_argument("--seed", type=int, default=7, help="traffic seed (default 7)")
    parser.add_argument("--workdir", default="var/bench-scaleout", help="logs and databases (default var/bench-scaleout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.events < 1:
        raise SystemExit("bench.scaleout: --events must be positive")
    try:
        return asyncio.run(Scaleout(args).execute())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
