"""A few people the bridge will not link alone, for ``bridge review`` to show (the demo sends them
after its traffic): each raises one review item. Rendered by the first two simulated platforms'
own simulators, exactly (none of the platforms' messiness), so the cases are always the same.
"""

from __future__ import annotations

from bridge.tools.simulate.generator import simulated_platforms
from bridge.tools.simulate.people import Platform, valid_resident_id
from bridge.tools.simulate.platform import Account, Course, Draw, Person, SimMessage

_SEED = 20240620
_AT_MS = 1718848800000  # 2024-06-20 10:00 Beijing time
# A region code no real person of the simulation has, so these accounts never meet the traffic's.
_REGION = "990000"


def _message(draw: Draw, platform: Platform, person: Person, account: Account, course: Course, at_ms: int) -> SimMessage:
    sim = platform.simulator
    value = sim.event(draw, person, account, course, "enrol", at_ms, False)
    return SimMessage(platform.topic, sim.key(account), sim.serialise(value))


def _cases() -> tuple[list[SimMessage], str]:
    platforms = simulated_platforms()
    if len(platforms) < 2:
        raise ValueError("the review cases need two simulated platforms")
    first, second = platforms[:2]
    draw = Draw(_SEED)
    messages = []
    # An ambiguous match: two learners of the second platform with different resident IDs share
    # one name and mobile (a family phone), and an account of the first platform with no document
    # shows the same name and mobile: which of the two is it?
    name, mobile = "陈晓明", "13910002024"
    for n, first17 in enumerate(("11010519880312001", "11010519910725002"), 1):
        person = Person(name, mobile, _REGION, "北京市", valid_resident_id(first17))
        account = second.simulator.open_account(draw, person)
        account.document, account.document_valid = ("RESIDENT_ID", person.resident_id), True
        messages.append(_message(draw, second, person, account, second.simulator.courses[n], _AT_MS + n))
    person = Person(name, mobile, _REGION, "北京市", valid_resident_id("11010519950101003"))
    docless = first.simulator.open_account(draw, person)
    docless.document = None
    messages.append(_message(draw, first, person, docless, first.simulator.courses[0], _AT_MS))
    # Conflicting documents: an account of the first platform shows one valid resident ID, then another.
    person = Person("周敏", "13700001111", _REGION, "上海市", valid_resident_id("31010419850611003"))
    account = first.simulator.open_account(draw, person)
    for n, first17 in enumerate(("31010419850611003", "31010419870923004"), 2):
        account.document, account.document_valid = ("RESIDENT_ID", valid_resident_id(first17)), True
        messages.append(_message(draw, first, person, account, first.simulator.courses[n], _AT_MS + n))
    return messages, f"{first.name}:{docless.number}"


def review_cases() -> list[SimMessage]:
    """The messages of the review cases:

    - *ambiguous match*: two learners with different resident IDs share one name and mobile, and
      an account on another platform with no document shows the same name and mobile;
    - *conflicting documents*: an account's record shows one valid resident ID, then another.
    """
    return _cases()[0]


def review_account() -> str:
    """``platform:account`` of the review cases' account without a document (``bridge explain``)."""
    return _cases()[1]
