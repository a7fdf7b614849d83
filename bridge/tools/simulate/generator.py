"""The generic part of the simulation: a stream of every simulated platform's messages and its
ground truth (:class:`Expectation`). It names no platform: it iterates ``adapters.registered()``
and uses each adapter's ``simulator`` (platforms without one send nothing)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from bridge.tools.simulate.people import (
    DAY_MS,
    WINDOW_DAYS,
    Platform,
    at,
    choose_platforms,
    enrol_person,
    equivalent_courses,
    new_person,
    plan,
)
from bridge.tools.simulate.platform import KINDS, Course, Draw, Event, Kind, Person, SimMessage, delete_path, get_path

_REDELIVERY_SPAN = 2_000  # how many messages later a redelivered duplicate may land


def simulated_platforms() -> list[Platform]:
    """The registered platforms that declare a simulator with courses, in registry order."""
    import adapters  # here, not at import: the platform modules import this package's types

    return [
        Platform(a.name, a.topic.name, a.simulator, a.simulator.by_id())
        for a in adapters.registered()
        if a.simulator is not None and a.simulator.courses
    ]


def equivalences() -> list[tuple[str, str, str]]:
    """The rows ``(course_key, platform, course_id)`` of the course-equivalence table (CONTRACT
    §4.6) that matches the simulated catalogues: each platform's simulator declares its own."""
    return [(key, p.name, course_id) for p in simulated_platforms() for key, course_id in p.simulator.equivalences]


@dataclass(frozen=True)
class Expectation:
    """Ground truth for one :func:`generate` run.

    A *good* message is one the contract accepts (UTF-8 JSON object, required fields, known type).
    ``events``: the distinct good events per platform. ``persons_by_platforms``: how many persons
    have good events on 1, 2, ... platforms. ``people`` holds, for every person with good events on
    two platforms or more, their accounts (platform -> account number): the bridge must make each
    one learner when their evidence allows. ``linked`` holds, per person whose accounts sent the
    same valid resident ID on two platforms or more, those accounts: the bridge must link them by
    document. ``accounts_with_invalid_resident_id`` counts accounts that sent a non-empty resident
    ID that fails validation (a checksum typo on that platform's record).
    """

    messages: int
    persons: int
    good_events: int
    duplicates: int
    malformed: int
    accounts_with_invalid_resident_id: int
    events: dict[str, int] = field(default_factory=dict)
    persons_by_platforms: dict[int, int] = field(default_factory=dict)
    people: tuple[dict[str, str], ...] = field(default=(), repr=False)
    linked: tuple[dict[str, str], ...] = field(default=(), repr=False)

    @property
    def persons_on_several(self) -> int:
        """Persons with good events on two platforms or more."""
        return len(self.people)

    @property
    def linked_by_resident_id(self) -> int:
        """Persons with two accounts or more that the bridge must link by resident ID."""
        return len(self.linked)


def _render(draw: Draw, platform: Platform, person: Person, course: Course, kind: Kind, at_ms: int,
            passed: bool) -> tuple[SimMessage, Event]:
    """The message as the platform's producer serialises it, and the event it encodes."""
    sim = platform.simulator
    account = person.accounts[platform.name]
    value = sim.event(draw, person, account, course, kind, at_ms, passed)
    sim.mess(draw, value, person, account)
    return SimMessage(platform.topic, sim.key(account), sim.serialise(value)), value


def _malformed(draw: Draw, platforms: dict[str, Platform], person: Person, on: list[str]) -> SimMessage:
    """A message the contract rejects, one of five kinds, still keyed by a real account (one of
    the platforms ``on``)."""
    rng = draw.rng
    platform = platforms[rng.choice(on)]
    sim = platform.simulator
    course = rng.choice(sim.courses)
    msg, value = _render(draw, platform, person, course, rng.choice(KINDS), at(draw, rng.randrange(WINDOW_DAYS)), True)
    how, raw = rng.randrange(5), b""
    if how == 0:  # cut off mid-message; an unclosed object is never valid JSON
        raw = msg.value[: rng.randrange(len(msg.value) // 3, len(msg.value) - 1)]
    elif how == 1:  # a producer on a GBK-configured host
        raw = json.dumps(value, ensure_ascii=False).encode("gb18030")
        if raw.decode("utf-8", "ignore").encode() == raw:  # no multi-byte text made it invalid
            raw = b"\xff" + raw
    elif how == 2:
        raw = json.dumps([value], ensure_ascii=False).encode()
    elif how == 3:
        delete_path(value, rng.choice([path for path in sim.required(value) if get_path(value, path) is not None]))
    else:
        sim.unknown_event_type(draw, value)
    return SimMessage(msg.topic, msg.key, raw or sim.serialise(value))


def generate(
    count: int, *, seed: int = 0, malformed_ratio: float = 0.01, duplicate_ratio: float = 0.03,
    overlap_ratio: float = 0.4,
) -> tuple[list[SimMessage], Expectation]:
    """Generate ``count`` messages of every simulated platform, in stream order, with their ground truth.

    ``round(count * malformed_ratio)`` messages are malformed, ``round(count * duplicate_ratio)``
    redeliver an earlier good message byte for byte, and the rest are distinct good events.
    ``overlap_ratio`` is the share of persons with an account on two platforms or more. The output
    depends only on the arguments (and the registered platforms): the same seed gives
    byte-identical messages.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    for name, ratio in (("malformed_ratio", malformed_ratio), ("duplicate_ratio", duplicate_ratio),
                        ("overlap_ratio", overlap_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {ratio}")
    if malformed_ratio + duplicate_ratio > 1.0:
        raise ValueError("malformed_ratio + duplicate_ratio must not exceed 1")
    platforms = simulated_platforms()
    if count and not platforms:
        raise ValueError("no registered platform declares a simulator")
    by_name = {p.name: p for p in platforms}
    equivalent = equivalent_courses(platforms)
    draw = Draw(seed)
    rng = draw.rng
    n_malformed = round(count * malformed_ratio)
    n_duplicates = round(count * duplicate_ratio)
    n_good = count - n_malformed - n_duplicates

    persons: list[Person] = []
    good: list[tuple[int, int, SimMessage]] = []  # (delivered at, sequence, message)
    seen: list[dict[str, str]] = []  # per person: platform -> account, for platforms with good events
    valid_rid: list[set[str]] = []  # per person: platforms whose good events sent a valid resident ID
    invalid_accounts: set[tuple[str, str]] = set()
    while len(good) < n_good:
        person = new_person(draw)
        enrol_person(draw, person, choose_platforms(draw, platforms, overlap_ratio))
        persons.append(person)
        accounts: dict[str, str] = {}
        valid: set[str] = set()
        seen.append(accounts)
        valid_rid.append(valid)
        for name, course, kind, at_ms, passed in plan(draw, person, by_name, equivalent):
            if len(good) >= n_good:
                break
            msg, value = _render(draw, by_name[name], person, course, kind, at_ms, passed)
            # Mostly near-real-time, but an outbox replay can deliver an event hours or weeks late,
            # which is what puts completions ahead of their enrolments.
            late = rng.random() < 0.04
            delay = rng.randrange(3_600_000, 30 * DAY_MS) if late else int(rng.expovariate(1 / 30_000))
            good.append((at_ms + delay, len(good), msg))
            account = person.accounts[name]
            accounts[name] = account.number
            if by_name[name].simulator.sent_resident_id(value):
                if account.document_valid:
                    valid.add(name)
                else:
                    invalid_accounts.add((name, account.number))
    good.sort(key=lambda g: (g[0], g[1]))
    stream = [g[2] for g in good]
    del good

    n = len(stream)
    extras: list[tuple[int, SimMessage]] = []  # (insert before this index of stream, message)
    n_duplicates = n_duplicates if n else 0
    for _ in range(n_duplicates):
        i = rng.randrange(n)
        extras.append((min(n, i + 1 + rng.randrange(_REDELIVERY_SPAN)), stream[i]))
    if n_malformed and not persons:
        persons.append(new_person(draw))
        enrol_person(draw, persons[-1], choose_platforms(draw, platforms, overlap_ratio))
        seen.append({})
    for _ in range(n_malformed):
        i = rng.randrange(len(persons))
        keyed_by = list(seen[i]) or list(persons[i].accounts)  # an account that sent good events
        extras.append((rng.randrange(n + 1), _malformed(draw, by_name, persons[i], keyed_by)))
    extras.sort(key=lambda e: e[0])
    messages: list[SimMessage] = []
    taken = 0
    for pos, msg in extras:
        messages.extend(stream[taken:pos])
        taken = max(taken, pos)
        messages.append(msg)
    messages.extend(stream[taken:])

    order = list(by_name)
    people = tuple({p: accounts[p] for p in order if p in accounts} for accounts in seen if len(accounts) >= 2)
    linked = tuple(
        {p: accounts[p] for p in order if p in accounts and p in valid}
        for accounts, valid in zip(seen, valid_rid)
        if len(valid & accounts.keys()) >= 2
    )
    topics = Counter(m.topic for m in stream)
    on = Counter(len(accounts) for accounts in seen if accounts)
    expectation = Expectation(
        messages=len(messages),
        persons=sum(on.values()),
        good_events=n,
        duplicates=n_duplicates,
        malformed=n_malformed,
        accounts_with_invalid_resident_id=len(invalid_accounts),
        events={p.name: topics[p.topic] for p in platforms},
        persons_by_platforms={k: on[k] for k in range(1, len(platforms) + 1)},
        people=people,
        linked=linked,
    )
    return messages, expectation


def iter_rate(
    messages: Iterable[SimMessage], rate: float | None, *,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> Iterator[SimMessage]:
    """Yield ``messages`` paced at ``rate`` per second (``None``: as fast as they are consumed).

    Pacing is against the start time, not per message, so a slow consumer catches up instead of
    drifting. ``clock`` and ``sleep`` are injectable for tests.
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive or None, got {rate}")

    def paced(rate: float) -> Iterator[SimMessage]:
        start = clock()
        for i, message in enumerate(messages):
            wait = start + i / rate - clock()
            if wait > 0:
                sleep(wait)
            yield message

    return iter(messages) if rate is None else paced(rate)


def summary_line(expectation: Expectation) -> str:
    """One human-readable line describing a generated run."""
    e = expectation
    events = ", ".join(f"{name} {n}" for name, n in e.events.items())
    several = e.persons_on_several
    most = max(e.persons_by_platforms, default=0)
    on_all = f" ({e.persons_by_platforms[most]} on all {most})" if most > 2 else ""
    return (
        f"{e.messages} messages: {e.good_events} good events ({events}), {e.duplicates} duplicates, "
        f"{e.malformed} malformed; {e.persons} persons, {several} on 2+ platforms{on_all}, "
        f"{e.linked_by_resident_id} linkable by resident ID, "
        f"{e.accounts_with_invalid_resident_id} accounts with an invalid resident ID"
    )
