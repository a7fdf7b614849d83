"""``python -m bench.run``: the bridge's throughput and latency against pass-through baselines.

Measures, each on an embedded broker of its own: (a) a raw aiokafka consume-and-produce
pass-through, (b) a minimal Faust agent that decodes and re-sends each message, (c) the bridge end
to end (a ``bridge worker`` process: raw platform events in, credit records out) on SQLite and on
PostgreSQL. Then the growth figures: the bridge's cost per event with a small and a large registry
preloaded by :mod:`bench.loader`, and the worker's peak memory. Prints a table, the growth lines
then ``postgres_ratio_vs_faust_passthrough=X.XX`` (bridge on PostgreSQL / (b); ``nan`` when
PostgreSQL was skipped) and, last, ``throughput_ratio_vs_faust_passthrough=X.XX`` (bridge on SQLite / (b)).

``--quick`` (``make bench-quick``) finishes within a few minutes on two cores; the full run
(``make bench``) takes longer, mostly to load 1,000,000 learners. Never a pass/fail gate: the
machine is shared, and the figures are for reading, not asserting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import loader, workload
from bench.databases import postgres_available, postgres_database
from bench.report import METHOD, Growth, Result, format_growth, format_table, ratio_line
from bench.scenarios import Bridge, Passthrough, System, run
from bridge.bootstrap import build_pseudonymiser
from bridge.core.courses import load_equivalences
from bridge.tools.demo import Progress, write_equivalences
from bridge.settings import Settings
from bridge.store.engine import build_engine, upgrade

DEFAULT_POSTGRES = "postgresql://bridge:bridge@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Plan:
    """What one run measures; ``quick`` shrinks every size."""

    quick: bool
    events: int
    latency_events: int
    rate: float
    learners: tuple[int, int]
    growth_events: int
    seed: int
    workdir: Path
    postgres_url: str | None
    growth: bool
    profile: bool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes on two cores")
    parser.add_argument("--events", type=int, help="preloaded messages per scenario (default 20000, quick 3000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced rate of the latency phase, messages/s (default 1000)")
    parser.add_argument("--latency-seconds", type=float,
                        help="length of the latency phase at --rate (default 20, quick 3)")
    parser.add_argument("--learners", type=_pair,
                        help="the two registry sizes of the growth figures, as SMALL,LARGE "
                             "(default 10000,1000000; quick 1000,100000)")
    parser.add_argument("--growth-events", type=int, help="messages per growth run (default 10000, quick 2000)")
    parser.add_argument("--skip-postgres", action="store_true", help="leave out the bridge on PostgreSQL")
    parser.add_argument("--skip-growth", action="store_true", help="leave out the growth figures")
    parser.add_argument("--postgres-url", default=None,
                        help=f"PostgreSQL server whose role may CREATE DATABASE (default: $TEST_POSTGRES_URL or {DEFAULT_POSTGRES})")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the bridge on SQLite with py-spy (an extra, unmeasured run)")
    parser.add_argument("--seed", type=int, default=7, help="traffic seed (default 7)")
    parser.add_argument("--workdir", default="var/bench", help="logs, databases and profiles (default var/bench)")
    return parser


def _pair(text: str) -> tuple[int, int]:
    try:
        small, large = (int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SMALL,LARGE (two integers), got {text!r}") from None
    if not 0 < small < large:
        raise argparse.ArgumentTypeError(f"expected 0 < SMALL < LARGE, got {small},{large}")
    return small, large


def plan_from(args: argparse.Namespace) -> Plan:
    """Defaults depend on ``--quick``; explicit options win."""
    quick = args.quick
    rate = args.rate
    if rate <= 0:
        raise SystemExit("bench.run: --rate must be positive")
    seconds = args.latency_seconds if args.latency_seconds is not None else (3.0 if quick else 20.0)
    postgres = None
    if not args.skip_postgres:
        postgres = args.postgres_url or os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    return Plan(
        quick=quick,
        events=args.events or (3_000 if quick else 20_000),
        latency_events=int(rate * seconds),
        rate=rate,
        learners=args.learners or ((1_000, 100_000) if quick else (10_000, 1_000_000)),
        growth_events=args.growth_events or (2_000 if quick else 10_000),
        seed=args.seed,
        workdir=Path(args.workdir),
        postgres_url=postgres,
        growth=not args.skip_growth,
        profile=args.profile,
    )


def machine() -> str:
    """nproc, memory, CPU model and load: the context every figure needs."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        memory = "unknown memory"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({model}), {memory}, Python {platform.python_version()}, load average {load}"


class Runner:
    """Runs the plan's scenarios in order and keeps their results."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.progress = Progress()
        self.results: list[Result] = []
        self.notes: list[str] = []
        self.equivalences = write_equivalences(plan.workdir / "course-equivalences.csv")

    def show(self, text: str) -> None:
        self.progress.show(text)

    def say(self, text: str) -> None:
        self.progress.show(text, final=True)

    def scenario_dir(self, name: str) -> Path:
        path = self.plan.workdir / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    async def measure(self, system: System, messages: workload.Workload, name: str, **hooks) -> Result | None:
        self.say(f"== {system.name}")
        started = time.monotonic()
        try:
            outcome = await run(system, messages, workdir=self.plan.workdir / name, rate=self.plan.rate,
                                equivalences=self.equivalences, show=self.show, **hooks)
        except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the others' figures
            self.say(f"{system.name}: FAILED: {type(exc).__name__}: {exc}")
            self.notes.append(f"{system.name} failed: {exc}")
            return None
        finally:
            system.close()
        r = outcome.result
        self.say(
            f"{system.name}: {_num(r.throughput)} events/s, p50 {_num(r.p50_ms)} ms, p99 {_num(r.p99_ms)} ms "
            f"(start: {outcome.start.how if outcome.start else '-'}; {time.monotonic() - started:.0f}s)"
        )
        return r

    async def main_table(self) -> None:
        plan = self.plan
        traffic = workload.simulated(plan.events, plan.latency_events, plan.seed)
        for kind in ("aiokafka", "faust"):
            self.scenario_dir(kind)
            result = await self.measure(Passthrough(kind), traffic, kind)
            self._keep(result)
        path = self.scenario_dir("bridge-sqlite")
        self._keep(await self.measure(Bridge("bridge SQLite", f"sqlite:///{(path / 'bridge.db').resolve()}"),
                                      traffic, "bridge-sqlite"))
        if plan.postgres_url is None:
            self.notes.append("bridge PostgreSQL skipped (--skip-postgres)")
            return
        problem = postgres_available(plan.postgres_url)
        if problem:
            self.say(f"PostgreSQL at {plan.postgres_url} unavailable ({problem}): skipped")
            self.notes.append(f"bridge PostgreSQL skipped: server unavailable ({problem})")
            return
        self.scenario_dir("bridge-postgres")
        with postgres_database(plan.postgres_url) as url:
            self._keep(await self.measure(Bridge("bridge PostgreSQL", url), traffic, "bridge-postgres"))

    def _keep(self, result: Result | None) -> None:
        if result is not None:
            self.results.append(result)

    async def growth(self) -> tuple[Growth | None, Growth | None]:
        runs = []
        for learners in self.plan.learners:
            runs.append(await self.growth_run(learners))
        return runs[0], runs[1]

    async def growth_run(self, learners: int) -> Growth | None:
        plan = self.plan
        path = self.scenario_dir(f"growth-{learners}")
        url = f"sqlite:///{(path / 'bridge.db').resolve()}"
        settings = Settings(database_url=url, course_equivalences=self.equivalences)
        engine = build_engine(url)
        try:
            upgrade(engine)
            self.say(f"== growth: loading {learners:,} learners into {url}")
            report = loader.load(
                engine, learners, pseudonymiser=build_pseudonymiser(settings),
                course_keys=load_equivalences(str(self.equivalences)), hours_per_credit=settings.hours_per_credit,
                progress=lambda done, total, s: self.show(f"loading learners: {done:,}/{total:,} ({s:.0f}s)"),
            )
        finally:
            engine.dispose()
        self.say(f"loaded {report.learners:,} learners in {report.seconds:.0f}s ({report.per_second:,.0f}/s)")
        messages = workload.Workload(workload.growth(plan.growth_events, learners, plan.seed), [])
        result = await self.measure(Bridge(f"bridge SQLite, {learners:,} learners", url), messages, path.name)
        if result is None:
            return None
        return Growth(learners, result.events, result.throughput, result.cpu_ms_per_event, result.peak_rss_mb)

    async def profile(self) -> None:
        from bench.pyspy import PySpy, summarise

        path = self.scenario_dir("profile-bridge-sqlite")
        output = path / "pyspy.txt"
        spy = PySpy(output)
        traffic = workload.simulated(self.plan.events, 0, self.plan.seed)
        system = Bridge("bridge SQLite (profiled)", f"sqlite:///{(path / 'bridge.db').resolve()}")
        await self.measure(system, traffic, path.name, on_started=spy.attach, on_phase1=spy.detach)
        spy.detach()
        if output.exists():
            summary = summarise(output.read_text())
            (path / "hotspots.txt").write_text(summary)
            self.say(f"profile: {output} (py-spy raw); hot spots in {path / 'hotspots.txt'}")
        else:
            self.say(f"profile: py-spy wrote nothing; see {spy.log}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


async def execute(plan: Plan) -> int:
    plan.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(plan)
    runner.say(f"bench: {'quick' if plan.quick else 'full'} run on {machine()}")
    runner.say(
        f"bench: {plan.events} preloaded messages per scenario, then {plan.latency_events} at {plan.rate:g}/s; "
        f"growth with {plan.learners[0]:,} and {plan.learners[1]:,} learners, {plan.growth_events} messages each"
    )
    await runner.main_table()
    small = large = None
    if plan.growth:
        small, large = await runner.growth()
    if plan.profile:
        await runner.profile()

    faust = next((r for r in runner.results if r.name == "faust pass-through"), None)
    bridge = next((r for r in runner.results if r.name == "bridge SQLite"), None)
    postgres = next((r for r in runner.results if r.name == "bridge PostgreSQL"), None)
    print()
    print(f"machine: {machine()}")
    print(f"command: python -m bench.run {' '.join(sys.argv[1:])}".rstrip())
    print(METHOD)
    print()
    print(format_table(runner.results))
    for note in runner.notes:
        print(f"note: {note}")
    print()
    print(format_growth(small, large, quick=plan.quick) if plan.growth else "growth: skipped (--skip-growth)")
    print(ratio_line(postgres, faust, "postgres_ratio_vs_faust_passthrough"))
    print(ratio_line(bridge, faust))
    return 0 if bridge and faust else 1


def main(argv: Sequence[str] | None = None) -> int:
    plan = plan_from(build_parser().parse_args(argv))
    try:
        return asyncio.run(execute(plan))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
