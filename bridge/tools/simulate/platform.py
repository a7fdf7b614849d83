"""What one platform's simulation declares: :class:`PlatformSimulator`, and the types it works with.

The generator (:mod:`bridge.tools.simulate.generator`) names no platform. It makes :class:`Person` s
(names, mobiles, resident IDs, regions), decides which platforms each is on and what they study,
and asks each registered platform's simulator (``ADAPTER.simulator``, declared by the platform's
own module in ``adapters/``) to open an account for a person and to render that person's events
as the platform publishes them.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

#: What a person does on a course: enrol, complete (passed or failed) or withdraw.
Kind = Literal["enrol", "complete", "withdraw"]
KINDS: tuple[Kind, ...] = ("enrol", "complete", "withdraw")

#: A raw event as a platform publishes it, before serialisation.
Event = dict[str, Any]
#: A field of an event: its keys from the top (``("course", "courseCode")``).
FieldPath = tuple[str, ...]

#: The variants of the middle dot of a minority name: U+00B7 is canonical, the rest are what
#: input methods produce.
DOTS = ("·", "•", "・", "．", "‧")
#: ASCII digits (and the check character X) to their full-width forms.
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


@dataclass(frozen=True)
class SimMessage:
    """One Kafka message as a platform would produce it."""

    topic: str
    key: bytes
    value: bytes


class Course(NamedTuple):
    """One course of a platform's catalogue."""

    course_id: str
    title: str
    hours: float | None
    """Study or contact hours, ``None`` when the platform does not publish them."""
    credits: float | None = None
    """The platform's own credit value, ``None`` when it has none (its hours decide)."""


@dataclass
class Account:
    """A person's account on one platform, as the platform's record holds it."""

    number: str
    """The account number: the message key and the account of every output."""
    document: tuple[str, str] | None
    """``(type, number)`` of the identity document on record (``RESIDENT_ID``, ``PASSPORT``, ...),
    ``None`` when the record holds none."""
    document_valid: bool = True
    """``False`` when the record's resident ID number carries a typo (it fails its check)."""

    @property
    def resident_id(self) -> str | None:
        """The resident ID number on record, if the record's document is one."""
        return self.document[1] if self.document and self.document[0] == "RESIDENT_ID" else None


@dataclass
class Person:
    """One simulated person: who they are, wherever they study."""

    name: str
    mobile: str
    """11 digits."""
    region: str
    """The 6-digit administrative division code of their registration (the first six of the ID)."""
    city: str
    resident_id: str
    """The true 18-character number; an account's record may hold a typo of it."""
    first_generation_card: bool = False
    """Registered with a first-generation card: records migrated from then show the 15-digit number."""
    accounts: dict[str, Account] = field(default_factory=dict)
    """Platform name -> account."""


class Draw:
    """The generator's randomness: one RNG, a set of values already used, a message counter.

    Everything random in a run comes from :attr:`rng`, so a seed gives the same bytes.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()
        self.seq = 0

    def unique(self, make: Callable[[], str]) -> str:
        """A value of ``make`` not drawn before in this run (account numbers, event ids)."""
        value = make()
        while value in self.used:
            value = make()
        self.used.add(value)
        return value

    def digits(self, n: int) -> str:
        return f"{self.rng.randrange(10**n):0{n}d}"

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def shape(self, shapes: tuple[tuple[float, str | None], ...]) -> str | None:
        """One of ``shapes`` (cumulative probability, value): the first whose bound the draw is under."""
        r = self.rng.random()
        return next(value for bound, value in shapes if r < bound)


def get_path(value: Event, path: FieldPath) -> Any:
    """The field at ``path`` of ``value``, ``None`` when it is absent."""
    node: Any = value
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def delete_path(value: Event, path: FieldPath) -> None:
    """Remove the field at ``path`` of ``value`` (nothing when it is absent)."""
    parent = get_path(value, path[:-1]) if len(path) > 1 else value
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


class PlatformSimulator(ABC):
    """The synthetic traffic of one platform: its catalogue, its accounts, its producer's messages.

    A platform module declares an instance as its adapter's ``simulator``. Subclasses set
    :attr:`courses` (and usually :attr:`equivalences`, :attr:`weight`, :attr:`course_counts`)
    and implement the abstract methods; randomness comes from the :class:`Draw` passed in.
    """

    #: The platform's course catalogue.
    courses: tuple[Course, ...] = ()
    #: Its rows of the course-equivalence table (CONTRACT §4.6): ``(course_key, course_id)``.
    equivalences: tuple[tuple[str, str], ...] = ()
    #: Its relative size: how likely a person is to be on it, against the other platforms.
    weight: float = 1.0
    #: Relative weights of a person taking 1, 2, 3, ... of its courses.
    course_counts: tuple[int, ...] = (35, 30, 20, 10, 5)
    #: The field of an event that holds its event id (CONTRACT §1).
    id_path: FieldPath = ()

    @abstractmethod
    def open_account(self, draw: Draw, person: Person) -> Account:
        """``person`` 's account here: a new account number (``draw.unique``) and the identity
        document the platform's record holds (the person's resident ID, a passport, none...)."""

    @abstractmethod
    def event(self, draw: Draw, person: Person, account: Account, course: Course, kind: Kind,
              at_ms: int, passed: bool) -> Event:
        """The event as the platform publishes it, its identity fields exactly as ``person`` and
        ``account`` hold them (:meth:`mess` adds the platform's messiness). ``at_ms``: epoch ms;
        ``passed`` matters for ``complete`` only."""

    def mess(self, draw: Draw, value: Event, person: Person, account: Account) -> None:
        """Make ``value`` 's identity fields as messy as the platform's records are, in place:
        missing, empty, other widths, other shapes (CONTRACT §1)."""

    def serialise(self, value: Event) -> bytes:
        """The message value as the platform's producer writes it (default: compact UTF-8 JSON)."""
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def key(self, account: Account) -> bytes:
        """The message key: the account number (CONTRACT §1)."""
        return account.number.encode()

    @abstractmethod
    def required(self, value: Event) -> tuple[FieldPath, ...]:
        """The fields CONTRACT §1 marks as always present for this event (its kind's included)."""

    @abstractmethod
    def unknown_event_type(self, draw: Draw, value: Event) -> None:
        """Turn ``value`` into an event of a type the contract does not know, in place."""

    @abstractmethod
    def sent_resident_id(self, value: Event) -> bool:
        """Whether ``value`` carries a non-empty resident ID number (valid or not)."""

    def by_id(self) -> dict[str, Course]:
        return {c.course_id: c for c in self.courses}
