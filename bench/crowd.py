"""``python -m bench.crowd``: what a crowd sharing one name+mobile costs the pipeline (issue 11).

Accounts that share a placeholder phone and a common name, and no identity document (2,000 union
members registered with mobile 13800000000 as 王伟), are weak evidence of one person. Identity
rule 8 (CONTRACT §3, ``BRIDGE_MAX_SHARED_EVIDENCE``) says such evidence links none of them once
more than that many accounts share it; without it they become one learner, and every event of
one of them re-resolves, re-derives and republishes the whole crowd.

For each crowd size N, on a fresh database (a SQLite file, or a new PostgreSQL database on the
server ``--database-url`` names, dropped afterwards), driving ``bridge.pipeline.Pipeline`` in
process, as the worker wires it (``bridge.bootstrap.build_runtime``), without Kafka:

1. loads a few ordinary learners (each with a resident ID, a name and a mobile of their own), then
   the N crowd accounts (one enrolment each) in batches of the worker's batch size
   (``Settings().batch_size``), publishing the outbox after each batch as the worker does; prints
   each batch's time, and the last batch's (the crowd is largest then);
2. measures single events, each a separate ``Pipeline.process([one message])`` followed by the
   outbox publication, repeated (``--repeat``, median reported), in rounds so that the machine's
   noise falls on every kind alike: a crowd member's next course, a new crowd member, and the same
   two for ordinary accounts (the baseline);
3. prints, per single event, the time, the SQL statements executed and, on SQLite, the virtual
   machine steps (deterministic, unlike the times on a shared machine), with the ratios crowd /
   baseline; and how many learners and open review items the crowd ended up as.

Each size runs in a child process bounded by ``--timeout-per-size``: a size that takes longer is
reported as "did not finish within X s" with the figures it had reached. The last lines are one
``result size=N ...`` line per size, ``key=value`` fields, for scripts.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import make_url

from bench.crowd_events import Messages
from bench.crowd_report import SizeReport, code_version, format_size, result_line, summary

#: Ordinary learners loaded beside the crowd, for the baseline.
ORDINARY = 20
#: SQLite calls the progress handler every this many virtual-machine instructions.
STEP = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.crowd", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=(500, 2000, 8000),
                        help="crowd sizes, comma-separated (default 500,2000,8000)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server URL whose role may CREATE DATABASE (a fresh database per size, "
                             "dropped after), or sqlite:///PATH.db (PATH-<size>.db per size); "
                             "default: SQLite files in a temporary directory")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of each single event (default 5)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="events per batch while loading (default: the worker's, Settings().batch_size)")
    parser.add_argument("--timeout-per-size", type=float, default=900.0,
                        help="give up on a size after this many seconds (default 900); 0 runs in this "
                             "process, without a bound and without the worker's GC tuning")
    return parser


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 500,2000, got {text!r}") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(f"expected crowd sizes of at least 2, got {text!r}")
    return sizes


# -- counting and timing ----------------------------------------------------------------------


class Counters:
    """Statements executed on ``engine`` and, on SQLite, virtual-machine steps (in ``STEP``s)."""

    def __init__(self, engine: Engine) -> None:
        self.statements = 0
        self.ticks = 0
        self.sqlite = engine.dialect.name == "sqlite"

        @event.listens_for(engine, "before_cursor_execute")
        def _statement(*_args: Any) -> None:
            self.statements += 1

        if self.sqlite:
            @event.listens_for(engine, "connect")
            def _steps(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.set_progress_handler(self._tick, STEP)

    def _tick(self) -> int:
        self.ticks += 1
        return 0  # go on

    def snapshot(self) -> tuple[int, int]:
        return self.statements, self.ticks


@dataclass
class Cost:
    """One measured call: a batch or a single event, processed and then published."""

    events: int
    process_s: float
    publish_s: float
    statements: int
    ksteps: float | None
    published: int

    @property
    def total_s(self) -> float:
        return self.process_s + self.publish_s


class Bench:
    """One size's database, pipeline and counters."""

    def __init__(self, database_url: str, batch_size: int, equivalences: Path) -> None:
        from bridge.bootstrap import build_runtime
        from bridge.settings import Settings
        from bridge.store.engine import upgrade

        self.settings = Settings(database_url=database_url, course_equivalences=equivalences, batch_size=batch_size)
        runtime = build_runtime(self.settings, migrate=False)
        self.engine, self.units, self.pipeline = runtime.engine, runtime.units, runtime.pipeline
        self.counters = Counters(self.engine)  # before the first connection: it installs the step counter
        upgrade(self.engine)

    def publish(self) -> int:
        """Drain the outbox as the worker does after each batch (claims of ``OUTBOX_CHUNK``)."""
        from bridge.store.claim import OutboxClaim
        from bridge.stream.publisher import OUTBOX_CHUNK

        sent = 0
        while True:
            claim = OutboxClaim.open(self.units, OUTBOX_CHUNK)
            claim.commit()
            sent += len(claim.messages)
            if len(claim.entry_ids) < OUTBOX_CHUNK:
                return sent

    def run(self, batch: Sequence[Any]) -> Cost:
        statements, ticks = self.counters.snapshot()
        started = time.perf_counter()
        result = self.pipeline.process(batch)
        processed = time.perf_counter()
        published = self.publish()
        done = time.perf_counter()
        if result.dead_letters:
            letter = result.dead_letters[0][1]
            raise RuntimeError(f"bench.crowd: {len(result.dead_letters)} events dead-lettered, e.g. {letter.reason_code}: {letter.reason}")
        statements2, ticks2 = self.counters.snapshot()
        return Cost(len(batch), processed - started, done - processed, statements2 - statements,
                    (ticks2 - ticks) * STEP / 1000 if self.counters.sqlite else None, published)

    def crowd_state(self) -> dict[str, int]:
        from bridge.store import schema as t

        with self.engine.connect() as conn:
            crowd = t.accounts.c.account.like("GHCROWD%")
            learners = conn.execute(select(func.count(func.distinct(t.accounts.c.learner_id))).where(crowd)).scalar_one()
            largest = conn.execute(
                select(func.count()).select_from(t.accounts).where(crowd).group_by(t.accounts.c.learner_id)
                .order_by(func.count().desc()).limit(1)
            ).scalar() or 0
            reviews = conn.execute(
                select(func.count()).select_from(t.review_items).where(t.review_items.c.status == "open")
            ).scalar_one()
        return {"crowd_learners": learners, "largest_learner": largest, "open_reviews": reviews}

    def close(self) -> None:
        self.engine.dispose()


# -- one size ---------------------------------------------------------------------------------


def measure_size(size: int, database_url: str, *, batch_size: int, repeat: int, equivalences: Path,
                 send: Callable[[str, Any], None], say: Callable[[str], None]) -> None:
    """Load a crowd of ``size`` and measure single events; ``send`` each finding as it is made."""
    bench = Bench(database_url, batch_size, equivalences)
    messages = Messages()
    try:
        bench.run([messages.ordinary(i, i, "0") for i in range(ORDINARY)])
        batches: list[Cost] = []
        started = time.perf_counter()
        count = -(-size // batch_size)
        for b, first in enumerate(range(0, size, batch_size), 1):
            batch = [messages.crowd(i, i, "0") for i in range(first, min(first + batch_size, size))]
            cost = bench.run(batch)
            batches.append(cost)
            say(f"crowd {size:,}: batch {b}/{count} ({first + len(batch):,} accounts loaded): "
                f"{cost.process_s:.2f} s + publish {cost.publish_s:.2f} s, {cost.statements:,} statements, "
                f"{cost.published:,} messages published ({time.perf_counter() - started:.0f} s so far)")
            send("batch", cost)
        send("loaded", {"load_s": time.perf_counter() - started, **bench.crowd_state()})

        # Single events, in rounds: the r-th repetition of each kind, then the next round.
        for r in range(repeat):
            member = (r * 7919 + size // 2) % size  # spread over the crowd, a different member each round
            solo = r % ORDINARY
            kinds = {
                "crowd_next": messages.crowd(member, member + 1 + r % 3, f"next{r}"),
                "crowd_new": messages.crowd(size + r, size + r, "0"),
                "baseline_next": messages.ordinary(solo, solo + 1 + r // ORDINARY, f"next{r}"),
                "baseline_new": messages.ordinary(ORDINARY + r, ORDINARY + r, "0"),
            }
            for kind, message in kinds.items():
                cost = bench.run([message])
                send("single", (kind, cost))
            say(f"crowd {size:,}: single events, round {r + 1}/{repeat} done")
        send("final", bench.crowd_state())
    finally:
        bench.close()


def _child(size: int, database_url: str, options: dict[str, Any], out: Any) -> None:
    from bridge.stream.tuning import tune_gc

    tune_gc()  # as the worker does at start-up
    try:
        measure_size(size, database_url, send=lambda kind, value: out.put((kind, value)), say=_say, **options)
        out.put(("done", None))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it with the figures reached so far
        out.put(("error", (summary(exc), traceback.format_exc())))


def run_size(size: int, database_url: str, timeout: float, options: dict[str, Any]) -> SizeReport:
    backend = make_url(database_url).get_backend_name()
    report = SizeReport(size, backend)
    started = time.monotonic()
    if timeout <= 0:
        try:
            measure_size(size, database_url, send=report.take, say=_say, **options)
        except Exception as exc:  # noqa: BLE001 - keep the figures of the other sizes
            _say(traceback.format_exc())
            report.status, report.problem = "error", summary(exc)
        report.elapsed_s = time.monotonic() - started
        return report
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_child, args=(size, database_url, options, out), daemon=True)
    child.start()
    deadline = started + timeout
    finished = False
    while not finished:
        left = deadline - time.monotonic()
        if left <= 0:
            report.status = "timeout"
            break
        try:
            kind, value = out.get(timeout=min(left, 1.0))
        except queue.Empty:
            if not child.is_alive():
                report.status, report.problem = "error", f"the child process exited ({child.exitcode})"
                break
            continue
        if kind == "done":
            finished = True
        elif kind == "error":
            report.status, report.problem = "error", value[0]
            _say(value[1])
            finished = True
        else:
            report.take(kind, value)
    report.elapsed_s = time.monotonic() - started
    if child.is_alive():
        child.terminate()
        child.join(10)
        if child.is_alive():
            child.kill()
    child.join()
    out.close()
    return report


# -- databases --------------------------------------------------------------------------------


@contextmanager
def database_for(size: int, database_url: str | None, workdir: Path) -> Iterator[str]:
    """A fresh, empty database for one size."""
    if database_url and make_url(database_url).get_backend_name() == "postgresql":
        from bench.databases import postgres_database

        with postgres_database(database_url) as url:
            yield url
        return
    if database_url:
        base = Path(make_url(database_url).database or "crowd.db")
        path = base.with_name(f"{base.stem}-{size}{base.suffix or '.db'}")
    else:
        path = workdir / f"crowd-{size}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    yield f"sqlite:///{path.resolve()}"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    from bench.run import machine
    from bridge.tools.demo import write_equivalences
    from bridge.settings import Settings

    args = build_parser().parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("bench.crowd: --repeat must be at least 1")
    settings = Settings()
    batch_size = args.batch_size or settings.batch_size
    where = args.database_url and make_url(args.database_url).get_backend_name() or "sqlite"
    if where == "postgresql":
        from bench.databases import postgres_available

        problem = postgres_available(args.database_url)
        if problem:
            raise SystemExit(f"bench.crowd: PostgreSQL at {args.database_url} unavailable ({problem})")
    started = time.monotonic()
    reports: list[SizeReport] = []
    with tempfile.TemporaryDirectory(prefix="bench-crowd-") as tmp:
        workdir = Path(tmp)
        options = {"batch_size": batch_size, "repeat": args.repeat,
                   "equivalences": write_equivalences(workdir / "course-equivalences.csv")}
        header = [
            f"machine: {machine()}",
            f"code: {code_version()}",
            f"command: python -m bench.crowd {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip(),
            f"crowd: sizes {','.join(map(str, args.sizes))} on {where}; batches of {batch_size:,} "
            f"(Settings().batch_size {settings.batch_size:,}); {ORDINARY} ordinary learners beside the crowd; "
            f"{args.repeat} repetitions per single event; BRIDGE_MAX_SHARED_EVIDENCE setting "
            f"{getattr(settings, 'max_shared_evidence', '-')}; "
            + (f"each size in a child process, at most {args.timeout_per_size:.0f} s, worker GC tuning"
               if args.timeout_per_size > 0 else "in process, no time bound, default GC"),
        ]
        for line in header:
            _say(line)
        for size in args.sizes:
            _say(f"== crowd {size:,}: loading")
            with database_for(size, args.database_url, workdir) as url:
                report = run_size(size, url, args.timeout_per_size, options)
            reports.append(report)
            for line in format_size(report, args.timeout_per_size, args.repeat):
                _say(line)
    out("")
    for line in header:
        out(line)
    out(f"took {time.monotonic() - started:.0f} s")
    out("")
    for report in reports:
        for line in format_size(report, args.timeout_per_size, args.repeat):
            out(line)
        out("")
    for report in reports:
        out(result_line(report, args.timeout_per_size))
    return 0 if all(r.status == "ok" for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
