"""The union platform messages :mod:`bench.crowd` feeds the pipeline: crowd members and ordinary learners."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

#: The crowd: one common name and one placeholder mobile, no identity document (issue 11).
CROWD_NAME = "王伟"
CROWD_MOBILE = "13800000000"
ORDINARY_NAMES = ("李娜", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "黄勇", "周芳")
T0 = datetime(2024, 3, 1, 1, 0, tzinfo=timezone.utc)


def crowd_account(i: int) -> str:
    return f"GHCROWD{i:07d}"


def ordinary_account(i: int) -> str:
    return f"GHSOLO{i:06d}"


class Messages:
    """Union platform messages (``tests.factories``' shapes), with increasing offsets and times."""

    def __init__(self) -> None:
        from adapters._union_sim import COURSES as UNION_COURSES

        self.courses = [code for code, _title, _hours in UNION_COURSES]
        self.offset = 0

    def _next(self, account: str, event_id: str, course: int, **member: Any):
        from bridge.pipeline import Inbound
        from tests.factories import UNION, encode, union_event

        self.offset += 1
        when = T0 + timedelta(seconds=self.offset)
        value = encode(union_event(event_id, "COURSE_ENROLL", member_no=account, when=when,
                                   course=self.courses[course % len(self.courses)], hours=16, **member))
        return Inbound(UNION, 0, self.offset, account.encode(), value)

    def crowd(self, i: int, course: int, tag: str):
        return self._next(crowd_account(i), f"crowd-{i}-{tag}", course, name=CROWD_NAME, mobile=CROWD_MOBILE)

    def ordinary(self, i: int, course: int, tag: str):
        from tests.factories import resident_id

        born = (datetime(1970, 1, 1) + timedelta(days=37 * i)).strftime("%Y%m%d")
        return self._next(ordinary_account(i), f"solo-{i}-{tag}", course,
                          id_card=resident_id(region="370102", birth=born, serial="021"),
                          name=ORDINARY_NAMES[i % len(ORDINARY_NAMES)], mobile=f"1390000{i:04d}")

