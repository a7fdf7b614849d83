"""``bridge demo``: the whole path on the embedded default, ending in a readable summary.

Starts the embedded broker, creates the topics, starts a real worker process (``bridge worker``)
on a fresh SQLite file, sends simulated traffic of every registered platform, waits until the
worker has consumed and published everything, and summarises the registry and the output topics.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import adapters
from bridge.tools import simulate
from bridge.tools.admin import apply_topics
from bridge.tools.broker import EmbeddedBroker, free_port, stop_process
from bridge.errors import BridgeError, DependencyUnavailable
from bridge.settings import Settings
from bridge.store.engine import build_engine
from bridge.store.uow import reading
from bridge.tools.topicio import Target, compacted, group_lag, producer, read_topic
from topics import catalogue

#: Longest the demo waits without any progress of the worker before it gives up.
STALL_TIMEOUT_S = 120.0


class Progress:
    """One status line, redrawn in place on a terminal and printed every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            sys.stderr.write("\r\033[K" + text + ("\n" if final else ""))
            sys.stderr.flush()
        elif final or now - self._last >= 2.0:
            print(text, file=sys.stderr, flush=True)
            self._last = now


def write_equivalences(path: str | Path) -> Path:
    """Write the simulator's course-equivalence table as the CSV of CONTRACT §4.6."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("course_key", "platform", "course_id"))
        writer.writerows(simulate.EQUIVALENCES)
    return path


def produce_simulation(
    settings: Settings, *, count: int, seed: int, rate: float | None, progress: Progress | None = None
) -> simulate.Expectation:
    """Send ``count`` simulated messages to the configured broker, showing progress."""
    progress = progress or Progress()
    messages, expectation = simulate.generate(count, seed=seed)
    prod = producer(settings)
    try:
        futures = []
        for sent, msg in enumerate(simulate.iter_rate(messages, rate), start=1):
            futures.append(prod.send(msg.topic, key=msg.key, value=msg.value))
            if sent % 250 == 0 or sent == len(messages):
                progress.show(f"sending simulated traffic: {sent}/{len(messages)} messages")
        prod.flush()
    finally:
        prod.close()
    failed = [f.exception for f in futures if f.failed()]
    if failed:
        raise DependencyUnavailable(
            f"the broker refused {len(failed)} of {len(messages)} messages (first: {failed[0]!r}); "
            "check the broker's log and BRIDGE_BROKER_URL, then run again"
        )
    progress.show(f"sent {len(messages)} messages ({simulate.summary_line(expectation)})", final=True)
    return expectation


@dataclass
class WorkerProcess:
    """A ``bridge worker`` child process with its own log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, env: dict[str, str], log_path: Path) -> WorkerProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return cls(process, log_path)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BridgeError(
                f"the worker exited with code {self.process.returncode}; its log is {self.log_path}"
            )

    def stop(self, timeout_s: float = 30.0) -> int:
        return stop_process(self.process, timeout_s)


def wait_until_consumed(
    settings: Settings, worker: WorkerProcess, progress: Progress, *, expected: int = 0
) -> None:
    """Wait until the worker group's committed offsets reach the end of the input topics.

    ``expected`` is how many messages the caller wrote to topics that started empty. It guards
    against the embedded broker's end offsets, which can lag by the latest produce batch.
    """
    inputs = [t.name for t in catalogue.INPUT_TOPICS]
    bootstrap = settings
    last_change, last_committed = time.monotonic(), -1
    while True:
        worker.check_alive()
        committed, end = group_lag(bootstrap, settings.group_id, inputs)
        end = max(end, expected)
        progress.show(f"worker progress: {committed}/{end} messages consumed and committed")
        if committed >= end:
            progress.show(f"worker consumed all {end} messages", final=True)
            return
        if committed != last_committed:
            last_change, last_committed = time.monotonic(), committed
        elif time.monotonic() - last_change > STALL_TIMEOUT_S:
            raise BridgeError(
                f"the worker made no progress for {STALL_TIMEOUT_S:.0f}s ({committed}/{end}); see {worker.log_path}"
            )
        time.sleep(0.5)


def wait_outbox_empty(engine, worker: WorkerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    readers = reading(engine)
    while True:
        with readers() as uow:
            pending = uow.totals.counts()["outbox_pending"]
        if not pending:
            return
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BridgeError(f"{pending} results are still unpublished after {timeout_s:.0f}s; see {worker.log_path}")
        time.sleep(0.5)


def topic_summary(bootstrap: Target) -> dict[str, object]:
    """What a subscriber sees on the output topics."""
    records = compacted(read_topic(bootstrap, catalogue.CREDIT_RECORDS.name))
    live = [json.loads(v) for v in records.values() if v is not None]
    identities = compacted(read_topic(bootstrap, catalogue.LEARNER_IDENTITIES.name))
    learners = [i for v in identities.values() if v is not None and (i := json.loads(v))["merged_into"] is None]
    letters = [json.loads(m.value) for m in read_topic(bootstrap, catalogue.DEADLETTER.name) if m.value]
    reviews = read_topic(bootstrap, catalogue.REVIEW.name)
    return {
        "records": len(live),
        "tombstones": sum(1 for v in records.values() if v is None),
        "by_status": Counter(r["status"] for r in live),
        "credits": sum(r["credits"] for r in live if r["status"] == "AWARDED"),
        "identities": len(learners),
        # How many live learners hold accounts on 1, 2, ... platforms.
        "platforms_per_learner": Counter(len({a["platform"] for a in i["accounts"]}) for i in learners),
        "dead_letters": Counter(letter["reason_code"] for letter in letters),
        "reviews": len(reviews),
    }


def cross_platform_line(per_learner: Counter[int], platforms: int | None = None) -> str:
    """``292 learners hold accounts on 2+ platforms, 40 on all 3`` (``per_learner``: learners by
    how many platforms they hold accounts on)."""
    platforms = len(adapters.registered()) if platforms is None else platforms
    several = sum(n for count, n in per_learner.items() if count >= 2)
    line = f"{several} learners hold accounts on 2+ platforms"
    return line + (f", {per_learner.get(platforms, 0)} on all {platforms}" if platforms > 2 else "")


def format_summary(sent: simulate.Expectation, db: dict[str, object], topics: dict[str, object]) -> str:
    events = db["events"]
    by_status = topics["by_status"]
    letters = topics["dead_letters"]
    dq = db["data_quality"]
    lines = [
        "",
        "== bridge demo summary ==",
        f"sent                  {sent.messages} messages: {sent.duplicates} redeliveries, {sent.malformed} malformed",
        "events processed      " + ", ".join(f"{a.label} {events.get(a.name, 0)}" for a in adapters.registered()),
        f"learners              {db['learners']} unified from {db['accounts']} platform accounts"
        f" ({db['merged_learners']} provisional learners merged as evidence arrived)",
        f"cross-platform links  {cross_platform_line(topics['platforms_per_learner'])}",
        f"credit records        {topics['records']} on {catalogue.CREDIT_RECORDS.name}: "
        + ", ".join(f"{status} {by_status.get(status, 0)}" for status in ("AWARDED", "FAILED", "ENROLLED", "WITHDRAWN")),
        f"credits awarded       {topics['credits']:g}",
        f"identities published  {topics['identities']} live learners on {catalogue.LEARNER_IDENTITIES.name}",
        f"review items          {topics['reviews']} on {catalogue.REVIEW.name}",
        f"dead letters          {sum(letters.values())} on {catalogue.DEADLETTER.name}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(letters.items())) + ")" if letters else ""),
        "data quality          "
        + (", ".join(f"{k} {v}" for k, v in sorted(dq.items())) if dq else "no invalid identity documents"),
    ]
    return "\n".join(lines)


#: The operator the demo's signing key speaks for (``bridge review link ... --by``).
DEMO_OPERATOR = "demo-operator"
#: Simulated history the kept demo leaves for ``bridge backfill`` to load.
HISTORY_MESSAGES = 500


def send_review_cases(settings: Settings) -> list[simulate.SimMessage]:
    """Send :func:`bridge.tools.simulate.review_cases` (people the bridge will not link alone)."""
    cases = simulate.review_cases()
    prod = producer(settings)
    try:
        for msg in cases:
            prod.send(msg.topic, key=msg.key, value=msg.value)
        prod.flush()
    finally:
        prod.close()
    return cases


def operator_keys(work: Path) -> tuple[Path, Path]:
    """A signing key for :data:`DEMO_OPERATOR` and the trust file that names it: ``(trust, key)``."""
    from bridge.core.signing import generate_private_key, private_key_pem, public_text

    private = generate_private_key()
    key = work / "operator.pem"
    key.write_bytes(private_key_pem(private))
    key.chmod(0o600)
    trust = work / "operators.keys"
    trust.write_text(f"{DEMO_OPERATOR} {public_text(private.public_key())}\n")
    return trust, key


def console_operator(work: Path, key: Path) -> tuple[Path, Path, str]:
    """The console's sign-in for :data:`DEMO_OPERATOR` (a reviewer with a fresh random password)
    and its signing-key directory: ``(operators file, keys directory, password)``."""
    import secrets

    from bridge.console.auth import hash_password

    password = secrets.token_urlsafe(12)
    operators = work / "console-operators"
    operators.write_text(f"{DEMO_OPERATOR} reviewer {hash_password(password)}\n")
    keys = work / "console-keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    (keys / f"{DEMO_OPERATOR}.pem").write_bytes(key.read_bytes())
    (keys / f"{DEMO_OPERATOR}.pem").chmod(0o600)
    return operators, keys, password


def practice_guide(env: dict[str, str], key: Path, history: Path) -> str:
    """What ``--keep`` prints: the settings to export, and commands to try on the live data."""
    exports = [f"export {name}={env[name]}" for name in ("BRIDGE_BROKER_URL", "BRIDGE_DATABASE_URL")]
    exports.append(f"export BRIDGE_OPERATOR_SIGNING_KEY={key}")
    operators, keys, password = console_operator(key.parent, key)
    exports.append(f"export BRIDGE_OPERATOR_KEYS={env['BRIDGE_OPERATOR_KEYS']} BRIDGE_CONSOLE_OPERATORS={operators} "
                   f"BRIDGE_CONSOLE_SIGNING_KEYS={keys} BRIDGE_CONSOLE_WORKERS=http://127.0.0.1:{env['BRIDGE_WEB_PORT']}")
    return "\n".join([
        "",
        "== the demo keeps running: its broker, worker and database stay up until Ctrl-C ==",
        "In another shell (same directory, same virtual environment: . .venv/bin/activate):",
        "",
        *exports,
        "",
        "bridge review list                                   # the identity cases waiting for an operator",
        "bridge review show REVIEW_ID",
        f"bridge review link REVIEW_ID --learner LEARNER_ID --by {DEMO_OPERATOR}",
        f"bridge explain {simulate.review_account():<37} # why accounts belong together",
        "bridge tail credit.records.v1 -n 5",
        "bridge transcript LEARNER_ID",
        "bridge export LEARNER_ID --format clr",
        f"bridge backfill {history}      # more history, from a file",
        "bridge deadletters list",
        "bridge deadletters show TOPIC:PARTITION:OFFSET",
        f"bridge console                                       # http://127.0.0.1:8080, sign in as {DEMO_OPERATOR} / {password}",
        "",
        f"Metrics: http://127.0.0.1:{env['BRIDGE_WEB_PORT']}/metrics   Press Ctrl-C here to stop.",
    ])


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(*, count: int, seed: int, rate: float | None, workdir: str, keep: bool = False) -> int:
    """Run the demo end to end; returns the exit code. With ``keep``, the broker, the worker and
    the database stay up after the summary, for an operator to practise on, until Ctrl-C."""
    work = Path(workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    database_url = f"sqlite:///{(work / 'bridge.db').resolve()}"
    equivalences = write_equivalences(work / "course-equivalences.csv")
    progress = Progress()

    with EmbeddedBroker(log_dir=work / "broker") as broker:
        progress.show(f"embedded broker at {broker.url}", final=True)
        settings = Settings(
            broker_url=broker.url,
            database_url=database_url,
            course_equivalences=equivalences,
            web_port=free_port(),
            web_host="127.0.0.1",
            group_id="bridge-demo",
        )
        apply_topics(settings)
        progress.show(f"created {len(catalogue.TOPICS)} topics", final=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env.update(
            BRIDGE_BROKER_URL=broker.url,
            BRIDGE_DATABASE_URL=database_url,
            BRIDGE_COURSE_EQUIVALENCES=str(equivalences),
            BRIDGE_WEB_PORT=str(settings.web_port),
            BRIDGE_WEB_HOST="127.0.0.1",
            BRIDGE_GROUP_ID=settings.group_id,
        )
        trust, key = operator_keys(work)
        env["BRIDGE_OPERATOR_KEYS"] = str(trust.resolve())
        worker = WorkerProcess.start(env, work / "worker.log")
        try:
            progress.show(f"worker started (pid {worker.process.pid}, metrics on :{settings.web_port}/metrics)", final=True)
            expectation = produce_simulation(settings, count=count, seed=seed, rate=rate, progress=progress)
            cases = send_review_cases(settings)
            progress.show(f"sent {len(cases)} messages of people the bridge will not link alone", final=True)
            wait_until_consumed(settings, worker, progress, expected=expectation.messages + len(cases))
            engine = build_engine(database_url)
            wait_outbox_empty(engine, worker)
            with reading(engine)() as uow:
                db = uow.totals.counts()
            topics = topic_summary(settings)
            print(format_summary(expectation, db, topics))
            if keep:
                history = work / "history.jsonl"
                history.write_bytes(b"\n".join(m.value for m in simulate.generate(HISTORY_MESSAGES, seed=seed + 1)[0]))
                print(practice_guide(env, key.resolve(), history.resolve()), flush=True)
                # Ctrl-C (or a TERM) stops it, even when the demo was started with SIGINT
                # ignored (a background job of a shell without job control inherits that).
                previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
                try:
                    while worker.process.poll() is None:
                        time.sleep(1.0)
                except KeyboardInterrupt:
                    print("\nstopping the worker and the broker", file=sys.stderr)
                finally:
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)
        finally:
            code = worker.stop()
    print(f"\nworker exited with code {code}; database {work / 'bridge.db'}, logs in {work}/")
    return 0
