"""No message can stop the bridge (issue 11): a fuzzer against a real worker, broker and database.

One worker per backend serves the whole module. Each hypothesis example sends ordinary events with
hostile messages between them (:mod:`tests.hostile`: lone surrogates and control characters in
ids, over-long ids and names, wrong JSON types, not JSON or not UTF-8, NaN and huge numbers, deep
nesting, messages of 900 KB to 5 MiB, tombstones, malformed operator decisions, hostile keys,
event ids reused with other content, and valid events that the database itself refuses), all
with ids of their own, then waits (at most ``EXAMPLE_TIMEOUT_S``) until every ordinary event is
published in a credit record and every hostile message is dead-lettered (as CONTRACT §1-§2 say),
with a reason code, a reason that repeats no hostile value, the payload's SHA-256, within 1 MiB.
After the examples no output topic holds a message over 1 MiB and the worker is still ready.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bridge.tools.broker import free_port
from bridge.tools.demo import WorkerProcess
from tests import hostile
from tests.integration.harness import (
    Bridge,
    Observer,
    backend_database,
    install_insert_poison,
    outcome_check,
    readyz,
    wait_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

#: Examples per backend, and the longest wait for one example's messages to be settled.
MAX_EXAMPLES = 30
EXAMPLE_TIMEOUT_S = 60.0
#: A worker that has input waiting and finishes no batch for this long is not ready (so a stuck
#: worker shows in ``/readyz`` within one example's wait).
STALL_TIMEOUT_S = 30


@dataclass
class Live:
    backend: str
    bridge: Bridge
    worker: WorkerProcess
    port: int
    observer: Observer


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One bridge and one worker per backend for the module, with the poison trigger installed."""
    workdir = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with backend_database(request.param, workdir) as url:
        bridge = Bridge(workdir, url)
        observer = None
        try:
            port = free_port()
            worker = bridge.start_worker(BRIDGE_WEB_PORT=str(port), BRIDGE_STALL_TIMEOUT_S=str(STALL_TIMEOUT_S))
            observer = Observer(bridge)
            wait_ready(port, worker)
            install_insert_poison(bridge.engine, hostile.DB_POISON_PREFIX, hostile.DB_CONSTRAINT_PREFIX)
            yield Live(request.param, bridge, worker, port, observer)
        finally:
            if observer is not None:
                observer.close()
            bridge.close()


_RUN = uuid.uuid4().hex[:6]
_uids = itertools.count(1)


@st.composite
def plans(draw: st.DrawFn) -> list[tuple[str, object]]:
    """The messages of one example, in sending order: ``("ordinary", (platform, kind, edge))`` and
    ``("hostile", recipe)``; a same-id pair's two halves are placed independently."""
    ordinary = draw(st.lists(
        st.tuples(st.sampled_from(["union", "ou"]), st.integers(0, 2), st.sampled_from([False, False, False, True])),
        min_size=2, max_size=8,
    ))
    recipes = draw(st.lists(hostile.recipes(db_poison=True), min_size=1, max_size=8))
    items: list[tuple[str, object]] = [("ordinary", spec) for spec in ordinary]
    items += [("hostile", r) for r in recipes]
    return draw(st.permutations(items))


def build(plan: list[tuple[str, object]]) -> tuple[list[hostile.Hostile], list[tuple[int, int]]]:
    """The messages of a plan with fresh ids; a same-id pair's halves go where the plan put the
    recipe and at the end, so they can land in one batch or in two."""
    messages: list[hostile.Hostile] = []
    halves: list[tuple[int, hostile.Hostile]] = []
    for what, spec in plan:
        uid = f"{_RUN}-{next(_uids)}"
        if what == "ordinary":
            platform, kind, edge = spec  # type: ignore[misc]
            messages.append(hostile.ordinary(platform, uid, hostile.ordinary_kinds(platform)[kind], edge=edge))
            continue
        built = spec.build(uid)  # type: ignore[union-attr]
        if isinstance(built, hostile.SameIdPair):
            halves.append((len(messages), built.second))
            messages.append(built.first)
        else:
            messages.extend(built)
    pairs = []
    for first, second in halves:
        pairs.append((first, len(messages)))
        messages.append(second)
    return messages, pairs


def test_hostile_messages_between_ordinary_ones_never_stop_the_worker(live: Live) -> None:
    started = time.monotonic()
    examples = 0

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        # Shrinking would rerun failing examples against the live worker for many minutes: the
        # failure shows the first failing example as drawn.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(plan=plans())
    def example(plan: list[tuple[str, object]]) -> None:
        nonlocal examples
        examples += 1
        messages, pairs = build(plan)
        mark = len(live.observer.violations)
        sent = live.observer.send([(m.topic, m.key, m.value) for m in messages])
        live.observer.wait(
            outcome_check(live.observer, list(zip(messages, sent)), pairs),
            EXAMPLE_TIMEOUT_S,
            f"[{live.backend}] example {examples}: {[m.label for m in messages]}",
            live.worker,
        )
        status, body = readyz(live.port)
        assert status == 200, f"[{live.backend}] the worker is not ready after example {examples}: {status} {body}"
        live.observer.refresh(300)
        found = live.observer.violations[mark:]
        assert not found, f"[{live.backend}] example {examples}: output messages that break CONTRACT §2:\n" + "\n".join(found)

    example()

    # Whatever was sent, nothing on any output topic breaks the bound or the key/value rules.
    live.observer.refresh(1000)
    assert not live.observer.violations, "\n".join(live.observer.violations[:30])
    live.worker.check_alive()
    status, body = readyz(live.port)
    assert status == 200, f"[{live.backend}] the worker is not ready after the run: {status} {body}"
    print(f"[{live.backend}] {examples} hostile examples in {time.monotonic() - started:.1f} s; "
          f"largest output per topic: {live.observer.largest}")
