"""A real bridge for integration tests: its own embedded broker, database and worker processes."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

from bridge import cli as bridge_cli
from bridge.admin import apply_topics
from bridge.broker import EmbeddedBroker, free_port
from bridge.demo import Progress, WorkerProcess, wait_outbox_empty, wait_until_consumed
from bridge.settings import Settings
from bridge.store.engine import build_engine
from bridge.store.registry import Registry
from bridge.topicio import compacted, producer, read_topic
from topics import catalogue

INPUT_NAMES = {t.name for t in catalogue.INPUT_TOPICS}


class Bridge:
    """One isolated bridge: a fresh broker (topics applied), a database URL and its workers."""

    def __init__(self, workdir: Path, database_url: str, **settings: Any) -> None:
        self.workdir = workdir
        self.broker = EmbeddedBroker(log_dir=workdir / "broker").start()
        self.settings = Settings(
            broker_url=self.broker.url,
            database_url=database_url,
            group_id="bridge-test",
            web_host="127.0.0.1",
            **settings,
        )
        apply_topics(self.settings)
        self.workers: list[WorkerProcess] = []
        #: Messages this harness wrote to the (initially empty) input topics.
        self.sent = 0
        self._producer = producer(self.settings.bootstrap_servers())
        self.engine = build_engine(database_url)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        s = self.settings
        env.update(
            BRIDGE_BROKER_URL=s.broker_url,
            BRIDGE_DATABASE_URL=s.database_url,
            BRIDGE_GROUP_ID=s.group_id,
            BRIDGE_WEB_HOST="127.0.0.1",
            BRIDGE_HOURS_PER_CREDIT=str(s.hours_per_credit),
            BRIDGE_BATCH_WINDOW_S="0.1",
        )
        if s.course_equivalences:
            env["BRIDGE_COURSE_EQUIVALENCES"] = str(s.course_equivalences)
        env.setdefault("BRIDGE_WEB_PORT", str(free_port()))
        env.update(extra)
        return env

    def start_worker(self, **extra: str) -> WorkerProcess:
        worker = WorkerProcess.start(self.env(**extra), self.workdir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def send(self, topic: str, key: str | bytes | None, value: bytes | dict) -> None:
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False).encode()
        if isinstance(key, str):
            key = key.encode()
        self._producer.send(topic, key=key, value=value)
        if topic in INPUT_NAMES:
            self.sent += 1

    def flush(self) -> None:
        self._producer.flush()

    def settle(self, worker: WorkerProcess | None = None) -> None:
        """Wait until the input topics are consumed and every result is published."""
        self.flush()
        worker = worker or self.workers[-1]
        wait_until_consumed(self.settings, worker, Progress(), expected=self.sent)
        wait_outbox_empty(self.engine, worker)

    # -- what subscribers see ---------------------------------------------------------------

    def topic(self, spec: catalogue.TopicSpec) -> list:
        return read_topic(self.settings.bootstrap_servers(), spec.name)

    def latest(self, spec: catalogue.TopicSpec) -> dict[str, dict | None]:
        return {
            k.decode(): (json.loads(v) if v is not None else None) for k, v in compacted(self.topic(spec)).items()
        }

    def records(self) -> dict[str, dict]:
        return {k: v for k, v in self.latest(catalogue.CREDIT_RECORDS).items() if v is not None}

    def identities(self) -> dict[str, dict]:
        return {k: v for k, v in self.latest(catalogue.LEARNER_IDENTITIES).items() if v is not None}

    def live_learners(self) -> dict[str, dict]:
        return {k: v for k, v in self.identities().items() if v["merged_into"] is None}

    def dead_letters(self) -> list[dict]:
        return [json.loads(m.value) for m in self.topic(catalogue.DEADLETTER)]

    def reviews(self) -> list[dict]:
        return [json.loads(m.value) for m in self.topic(catalogue.REVIEW)]

    def counts(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return Registry(conn).counts()

    def cli(self, *argv: str) -> tuple[int, str, str]:
        """Run ``bridge ARGV`` in-process against this bridge's broker: ``(exit code, stdout, stderr)``."""
        out, err = io.StringIO(), io.StringIO()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["BRIDGE_BROKER_URL"] = self.settings.broker_url or ""
        with mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = bridge_cli.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self._producer.close()
        self.engine.dispose()
        self.broker.stop()
