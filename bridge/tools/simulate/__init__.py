"""Synthetic, seedable traffic for every registered platform (CONTRACT §1).

:func:`generate` models persons who hold an account on one platform or several and take courses
there, and renders their events as the raw bytes each platform would publish: messy identity
fields, late deliveries that put a completion before its enrolment, redelivered duplicates and a
sprinkling of malformed messages. With the messages comes an :class:`Expectation`, the ground truth
a test or a load run checks the bridge against. Pure Python and no Kafka: a producer is wired to it
elsewhere. The same seed always gives the same bytes.

What is particular to a platform (its catalogue, accounts, identity documents, message format,
required fields, its rows of the course-equivalence table) is its :class:`PlatformSimulator`,
declared by its own module in ``adapters/`` as ``ADAPTER.simulator``; nothing here names a platform.

- :mod:`bridge.tools.simulate.platform`: the :class:`PlatformSimulator` interface and its types;
- :mod:`bridge.tools.simulate.people`: persons, the platforms they are on, what they study;
- :mod:`bridge.tools.simulate.generator`: the stream, duplicates, malformed messages, the expectation;
- :mod:`bridge.tools.simulate.review`: the people the bridge will not link alone, for the demo.
"""

from __future__ import annotations

from typing import Any

from bridge.tools.simulate.platform import Account, Course, Draw, Kind, Person, PlatformSimulator, SimMessage
from bridge.tools.simulate.generator import Expectation, equivalences, generate, iter_rate, summary_line
from bridge.tools.simulate.review import review_account, review_cases


def __getattr__(name: str) -> Any:
    # The rows come from the registered platforms' simulators, so they are read when asked for.
    if name == "EQUIVALENCES":
        return equivalences()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EQUIVALENCES",
    "Account",
    "Course",
    "Draw",
    "Expectation",
    "Kind",
    "Person",
    "PlatformSimulator",
    "SimMessage",
    "equivalences",
    "generate",
    "iter_rate",
    "review_account",
    "review_cases",
    "summary_line",
]
