"""Synthetic, seedable traffic for both source platforms (CONTRACT §1).

:func:`generate` models persons who hold an account on one or both platforms and take courses
there, and renders their events as the raw bytes each platform would publish: messy identity
fields, late deliveries that put a completion before its enrolment, redelivered duplicates and a
sprinkling of malformed messages. With the messages comes an :class:`Expectation`, the ground truth
a test or a load run checks the bridge against. Pure Python and no Kafka: a producer is wired to it
elsewhere. The same seed always gives the same bytes.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from bridge.core.normalise import resident_id_check_character

UNION_TOPIC = "union.training.events.v1"
OU_TOPIC = "ou.lifelong.events.v1"

# (courseCode, courseName, studyHours): mostly multiples of 4, a few odd ones to exercise rounding.
UNION_COURSES: tuple[tuple[str, str, int], ...] = (
    ("ACFTU-SK-0001", "数字技能入门", 24), ("ACFTU-SK-0002", "安全生产基础", 16),
    ("ACFTU-SK-0003", "劳动法律法规", 12), ("ACFTU-SK-0004", "职业健康与防护", 8),
    ("ACFTU-SK-0005", "电工技能实训", 64), ("ACFTU-SK-0006", "养老护理员培训", 45),
    ("ACFTU-SK-0007", "家政服务规范", 10), ("ACFTU-SK-0008", "办公软件应用", 32),
    ("ACFTU-SK-0009", "办公软件应用（第二版）", 36), ("ACFTU-SK-0010", "智能制造概论", 40),
    ("ACFTU-SK-0011", "直播电商实务", 18), ("ACFTU-SK-0012", "班组长管理", 48),
)
# (course_id, title, credits, contact_hours)
OU_COURSES: tuple[tuple[str, str, float, int], ...] = (
    ("NOU-08001", "数字技能基础", 2.0, 36), ("NOU-08002", "安全生产管理", 1.0, 18),
    ("NOU-08003", "劳动关系与劳动法", 1.5, 27), ("NOU-08004", "老年照护", 3.0, 54),
    ("NOU-08005", "计算机应用基础", 2.5, 45), ("NOU-08006", "家庭教育指导", 0.5, 9),
    ("NOU-08007", "人工智能通识", 2.0, 32), ("NOU-08008", "心理健康与调适", 1.0, 16),
    ("NOU-08009", "中国传统文化", 1.5, 24), ("NOU-08010", "财务管理基础", 4.0, 72),
    ("NOU-08011", "社区治理", 1.0, 18), ("NOU-08012", "电子商务概论", 3.0, 48),
)
# (course_key, platform, course_id): the rows of the course-equivalence table (CONTRACT §4.6).
EQUIVALENCES: list[tuple[str, str, str]] = [
    ("digital-skills-basics", "union", "ACFTU-SK-0001"), ("digital-skills-basics", "ou", "NOU-08001"),
    ("work-safety", "union", "ACFTU-SK-0002"), ("work-safety", "ou", "NOU-08002"),
    ("labour-law", "union", "ACFTU-SK-0003"), ("labour-law", "ou", "NOU-08003"),
    ("elderly-care", "union", "ACFTU-SK-0006"), ("elderly-care", "ou", "NOU-08004"),
    # Two editions of one union course share a key, so a learner can hold both.
    ("office-software", "union", "ACFTU-SK-0008"), ("office-software", "union", "ACFTU-SK-0009"),
    ("office-software", "ou", "NOU-08005"),
]

_BEIJING = timezone(timedelta(hours=8))
# A fixed window in 2024: no wall clock, so a seed gives the same bytes on any day.
_START_MS = int(datetime(2024, 3, 1, tzinfo=_BEIJING).timestamp()) * 1000
_WINDOW_DAYS = 120
_DAY_MS = 86_400_000
_REDELIVERY_SPAN = 2_000  # how many messages later a redelivered duplicate may land

_REGIONS = (
    ("110105", "北京市总工会"), ("310104", "上海市总工会"), ("210102", "沈阳市总工会"),
    ("440106", "广州市总工会"), ("510107", "成都市总工会"), ("330106", "杭州市总工会"),
    ("420106", "武汉市总工会"), ("610113", "西安市总工会"),
)
_XINJIANG = ("650102", "乌鲁木齐市总工会")
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀英华慧建国平红霞玉兰志刚文辉"
_MINORITY_GIVEN = ("阿依古丽", "艾力", "买买提", "热依拉", "吐尔洪", "古丽米拉", "帕尔哈提", "迪丽娜尔")
_MINORITY_FAMILY = ("买买提", "艾则孜", "吐尔逊", "阿布都", "热合曼", "托合提")
_DOTS = ("·", "•", "・", "．", "‧")  # U+00B7 is canonical; the rest are what input methods produce
_FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_UNION_TYPES = {"enrol": "COURSE_ENROLL", "complete": "COURSE_COMPLETE", "withdraw": "COURSE_WITHDRAW"}
_OU_TYPES = {"enrol": "enrolment.created", "complete": "course.completed", "withdraw": "enrolment.cancelled"}
# Always-present fields (CONTRACT §1) as (key, nested key); result/outcome only on completions.
_REQUIRED = {
    "union": [("msgId", None), ("eventType", None), ("occurTime", None), ("member", "memberNo"),
              ("course", "courseCode"), ("course", "studyHours"), ("result", "passed")],
    "ou": [("event_id", None), ("event_type", None), ("occurred_at", None), ("learner", "student_no"),
           ("course", "course_id"), ("course", "credits"), ("outcome", "status")],
}
_UNION_BY_CODE = {c[0]: c for c in UNION_COURSES}
_OU_BY_ID = {c[0]: c for c in OU_COURSES}
_EQUIVALENT: dict[str, dict[str, list[str]]] = {}
for _key, _platform, _course in EQUIVALENCES:
    _EQUIVALENT.setdefault(_key, {"union": [], "ou": []})[_platform].append(_course)


@dataclass(frozen=True)
class SimMessage:
    """One Kafka message as a platform would produce it."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Expectation:
    """Ground truth for one :func:`generate` run.

    A *good* message is one the contract accepts (UTF-8 JSON object, required fields, known type).
    ``pairs`` holds ``(memberNo, student_no)`` for every person with good events on both platforms;
    ``linked_pairs`` the subset whose accounts both sent the same valid resident ID, which the bridge
    must link by document. ``accounts_with_invalid_resident_id`` counts accounts that sent a
    non-empty resident ID that fails validation (a checksum typo on that platform's record).
    """

    messages: int
    persons: int
    persons_on_both: int
    linked_by_resident_id: int
    accounts_with_invalid_resident_id: int
    good_events: int
    union_events: int
    ou_events: int
    duplicates: int
    malformed: int
    pairs: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    linked_pairs: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass
class _Person:
    name: str
    mobile: str
    org: str
    union_id: str  # resident ID on the union record (may carry a checksum typo)
    ou_document: tuple[str, str]  # (type, number) on the open-university record
    union_no: str | None = None
    ou_no: str | None = None
    union_id_valid: bool = True
    ou_id_valid: bool = True
    legacy_union_id: bool = False


class _Sim:
    """The generator's state: one RNG, id counters and uniqueness sets."""

    def __init__(self, seed: int, overlap_ratio: float) -> None:
        self.rng = random.Random(seed)
        self.overlap = overlap_ratio
        self.used: set[str] = set()
        self.seq = 0

    def unique(self, make: Callable[[], str]) -> str:
        value = make()
        while value in self.used:
            value = make()
        self.used.add(value)
        return value

    def digits(self, n: int) -> str:
        return f"{self.rng.randrange(10**n):0{n}d}"

    def person(self) -> _Person:
        rng = self.rng
        if rng.random() < 0.03:
            region, org = _XINJIANG
            name = f"{rng.choice(_MINORITY_GIVEN)}·{rng.choice(_MINORITY_FAMILY)}"
        else:
            region, org = rng.choice(_REGIONS)
            name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2, 2))))

        def resident_id() -> str:
            born = date(1958, 1, 1) + timedelta(days=rng.randrange(46 * 365))
            first17 = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
            return first17 + resident_id_check_character(first17)

        rid = self.unique(resident_id)
        mobile = self.unique(lambda: "1" + rng.choice("3456789") + self.digits(9))
        p = _Person(name, mobile, org, rid, ("RESIDENT_ID", rid))
        r = rng.random()
        if r < self.overlap + (1 - self.overlap) * 0.6:  # the union platform is the larger one
            p.union_no = self.unique(lambda: "GH" + region[:2] + self.digits(8))
        if r < self.overlap or p.union_no is None:
            p.ou_no = self.unique(lambda: rng.choice(("22", "23", "24")) + region[:4] + self.digits(7))
            if rng.random() < 0.03:
                p.ou_document = ("PASSPORT", self.unique(lambda: "E" + self.digits(8)))
        uses_rid = ["union"] * bool(p.union_no)
        uses_rid += ["ou"] * bool(p.ou_no and p.ou_document[0] == "RESIDENT_ID")
        if uses_rid and rng.random() < 0.03:
            bad = rid[:17] + rng.choice([c for c in "0123456789X" if c != rid[17]])
            if rng.choice(uses_rid) == "union":
                p.union_id, p.union_id_valid = bad, False
            else:
                p.ou_document, p.ou_id_valid = ("RESIDENT_ID", bad), False
        # Records migrated from first-generation cards still hold the 15-digit number.
        p.legacy_union_id = p.union_id_valid and rid[6:8] == "19" and rng.random() < 0.03
        return p

    def at(self, day: int) -> int:
        """Epoch ms of a moment on ``day`` of the window, during Beijing waking hours."""
        return _START_MS + day * _DAY_MS + self.rng.randrange(7 * 3_600_000, 23 * 3_600_000)

    def plan(self, p: _Person) -> list[tuple[str, tuple, str, int, bool]]:
        """(platform, course, kind, occurred ms, passed) for everything the person does."""
        rng = self.rng
        courses: list[tuple[str, tuple]] = []
        if p.union_no:
            k = rng.choices((1, 2, 3, 4, 5), (35, 30, 20, 10, 5))[0]
            courses += [("union", c) for c in rng.sample(UNION_COURSES, k)]
        if p.ou_no:
            k = rng.choices((1, 2, 3, 4, 5), (45, 30, 15, 7, 3))[0]
            courses += [("ou", c) for c in rng.sample(OU_COURSES, k)]
        if p.union_no and p.ou_no and rng.random() < 0.3:
            pair = _EQUIVALENT[rng.choice(sorted(_EQUIVALENT))]
            for wanted in (("union", _UNION_BY_CODE[rng.choice(pair["union"])]),
                           ("ou", _OU_BY_ID[rng.choice(pair["ou"])])):
                if wanted not in courses:
                    courses.append(wanted)
        steps = []
        for platform, course in courses:
            day = rng.randrange(_WINDOW_DAYS)
            steps.append((platform, course, "enrol", self.at(day), False))
            r = rng.random()
            if r < 0.07:
                continue  # still studying
            if r < 0.15:
                steps.append((platform, course, "withdraw", self.at(day + rng.randint(1, 20)), False))
                continue
            done = day + rng.randint(3, 45)
            if r < 0.29:
                steps.append((platform, course, "complete", self.at(done), False))
                if r < 0.22:
                    continue
                done += rng.randint(7, 30)  # failed, then passed a retake
            steps.append((platform, course, "complete", self.at(done), True))
            if rng.random() < 0.04:
                steps.append((platform, course, "withdraw", self.at(done + rng.randint(1, 10)), False))
        return steps

    def union_event(self, p: _Person, course: tuple, kind: str, ms: int, passed: bool) -> dict:
        rng = self.rng
        self.seq += 1
        member: dict = {"memberNo": p.union_no}
        number, r = p.union_id, rng.random()
        if r >= 0.05:  # otherwise idCardNo is absent
            if r < 0.09:
                number = ""
            elif p.legacy_union_id:
                number = number[:6] + number[8:17]
            elif r < 0.17:
                number = number.translate(_FULL_WIDTH)
            elif r < 0.25:
                number = f"{number[:6]} {number[6:14]} {number[14:]}"
            elif r < 0.6:
                number = number.replace("X", "x")
            member["idCardNo"] = number
        if "·" in p.name:
            member["name"] = p.name.replace("·", rng.choice(_DOTS))
        elif len(p.name) == 2 and rng.random() < 0.4:  # padded to the width of a 3-character name
            member["name"] = p.name[0] + "\u3000" + p.name[1]
        elif rng.random() < 0.98:
            member["name"] = p.name
        m, r = p.mobile, rng.random()
        shapes = ((0.03, None), (0.06, ""), (0.18, f"+86 {m[:3]}-{m[3:7]}-{m[7:]}"),
                  (0.30, f"0086 {m}"), (0.45, f"{m[:3]} {m[3:7]} {m[7:]}"), (1.0, m))
        if (mobile := next(shape for limit, shape in shapes if r < limit)) is not None:
            member["mobile"] = mobile
        member["orgName"] = p.org
        local = datetime.fromtimestamp(ms // 1000, _BEIJING)
        event = {
            "msgId": f"u-{rng.getrandbits(32):08x}-{self.seq:04d}",
            "eventType": _UNION_TYPES[kind],
            "occurTime": local.strftime("%Y-%m-%d %H:%M:%S"),
            "member": member,
            "course": dict(zip(("courseCode", "courseName", "studyHours"), course)),
        }
        if kind == "complete":
            result: dict = {"passed": passed}
            if rng.random() < 0.9:
                result["score"] = rng.randint(120, 200) / 2 if passed else rng.randint(40, 119) / 2
            if passed and rng.random() < 0.8:
                result["certificateNo"] = f"CERT-2024-{self.digits(6)}"
            event["result"] = result
        return event

    def ulid(self, ms: int) -> str:
        def make() -> str:
            n = (ms << 80) | self.rng.getrandbits(80)
            return "".join(_CROCKFORD[(n >> s) & 31] for s in range(125, -1, -5))

        return self.unique(make)

    def ou_event(self, p: _Person, course: tuple, kind: str, ms: int, passed: bool) -> dict:
        rng = self.rng
        learner: dict = {"student_no": p.ou_no}
        if rng.random() < 0.9:
            learner["identity_document"] = {"type": p.ou_document[0], "number": p.ou_document[1]}
        if rng.random() < 0.98:
            learner["full_name"] = p.name
        m, r = p.mobile, rng.random()
        shapes = ((0.05, None), (0.25, m), (0.30, f"+86 {m[:3]} {m[3:7]} {m[7:]}"), (1.0, "+86" + m))
        if (phone := next(shape for limit, shape in shapes if r < limit)) is not None:
            learner["phone"] = phone
        event = {
            "event_id": self.ulid(ms),
            "event_type": _OU_TYPES[kind],
            "occurred_at": ms,
            "learner": learner,
            "course": dict(zip(("course_id", "title", "credits", "contact_hours"), course)),
        }
        if kind == "complete":
            score = rng.randint(60, 100) if passed else rng.randint(20, 59)
            outcome: dict = {"status": "PASSED" if passed else "FAILED"}
            if rng.random() < 0.9:
                outcome["score"] = score
                outcome["grade"] = "FDCBAA"[max(0, score // 10 - 5)] if passed else "F"
            on = datetime.fromtimestamp(ms // 1000, _BEIJING).date()
            outcome["completed_on"] = on.isoformat()
            event["outcome"] = outcome
        return event

    def message(
        self, p: _Person, platform: str, course: tuple, kind: str, ms: int, passed: bool
    ) -> tuple[SimMessage, dict]:
        """The message as the platform's producer serialises it, and the event it encodes."""
        if platform == "union":
            value = self.union_event(p, course, kind, ms, passed)
            raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
            return SimMessage(UNION_TOPIC, p.union_no.encode(), raw), value
        value = self.ou_event(p, course, kind, ms, passed)
        # This platform's producer keeps json.dumps defaults: ASCII escapes and ", " separators.
        return SimMessage(OU_TOPIC, p.ou_no.encode(), json.dumps(value).encode()), value

    def malformed(self, p: _Person) -> SimMessage:
        """A message the contract rejects, one of five kinds, still keyed by a real account."""
        rng = self.rng
        platform = "union" if p.union_no and (not p.ou_no or rng.random() < 0.5) else "ou"
        course = rng.choice(UNION_COURSES if platform == "union" else OU_COURSES)
        kind = rng.choice(("enrol", "complete", "withdraw"))
        msg, value = self.message(p, platform, course, kind, self.at(rng.randrange(_WINDOW_DAYS)), True)
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
            outer, inner = rng.choice([path for path in _REQUIRED[platform] if path[0] in value])
            if inner:
                del value[outer][inner]
            else:
                del value[outer]
        elif platform == "union":
            value["eventType"] = rng.choice(("COURSE_RATE", "MEMBER_UPDATE"))
        else:
            value["event_type"] = rng.choice(("course.reviewed", "learner.updated"))
        return SimMessage(msg.topic, msg.key, raw or json.dumps(value, ensure_ascii=False).encode())


def generate(
    count: int, *, seed: int = 0, malformed_ratio: float = 0.01, duplicate_ratio: float = 0.03,
    overlap_ratio: float = 0.4,
) -> tuple[list[SimMessage], Expectation]:
    """Generate ``count`` messages for both platforms, in stream order, with their ground truth.

    ``round(count * malformed_ratio)`` messages are malformed, ``round(count * duplicate_ratio)``
    redeliver an earlier good message byte for byte, and the rest are distinct good events.
    ``overlap_ratio`` is the share of persons with an account on both platforms. The output depends
    only on the arguments: the same seed gives byte-identical messages.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    for name, ratio in (("malformed_ratio", malformed_ratio), ("duplicate_ratio", duplicate_ratio),
                        ("overlap_ratio", overlap_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {ratio}")
    if malformed_ratio + duplicate_ratio > 1.0:
        raise ValueError("malformed_ratio + duplicate_ratio must not exceed 1")
    sim = _Sim(seed, overlap_ratio)
    rng = sim.rng
    n_malformed = round(count * malformed_ratio)
    n_duplicates = round(count * duplicate_ratio)
    n_good = count - n_malformed - n_duplicates

    persons: list[_Person] = []
    good: list[tuple[int, int, SimMessage]] = []  # (delivered at, sequence, message)
    accounts: dict[str, dict[int, str]] = {"union": {}, "ou": {}}  # platform -> person -> account
    valid_id: dict[str, set[int]] = {"union": set(), "ou": set()}  # persons who sent a valid one
    invalid_accounts: set[tuple[str, bytes]] = set()
    while len(good) < n_good:
        p = sim.person()
        persons.append(p)
        who = len(persons)
        for platform, course, kind, ms, passed in sim.plan(p):
            if len(good) >= n_good:
                break
            msg, value = sim.message(p, platform, course, kind, ms, passed)
            # Mostly near-real-time, but an outbox replay can deliver an event hours or weeks late,
            # which is what puts completions ahead of their enrolments.
            late = rng.random() < 0.04
            delay = rng.randrange(3_600_000, 30 * _DAY_MS) if late else int(rng.expovariate(1 / 30_000))
            good.append((ms + delay, len(good), msg))
            accounts[platform][who] = msg.key.decode()
            if platform == "union":
                sent, valid = bool(value["member"].get("idCardNo")), p.union_id_valid
            else:
                doc = value["learner"].get("identity_document")
                sent, valid = bool(doc and doc["type"] == "RESIDENT_ID"), p.ou_id_valid
            if sent and valid:
                valid_id[platform].add(who)
            elif sent:
                invalid_accounts.add((platform, msg.key))
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
        persons.append(sim.person())
    for _ in range(n_malformed):
        extras.append((rng.randrange(n + 1), sim.malformed(rng.choice(persons))))
    extras.sort(key=lambda e: e[0])
    messages: list[SimMessage] = []
    taken = 0
    for pos, msg in extras:
        messages.extend(stream[taken:pos])
        taken = max(taken, pos)
        messages.append(msg)
    messages.extend(stream[taken:])

    both = sorted(i for i in accounts["union"] if i in accounts["ou"])
    pairs = tuple((accounts["union"][i], accounts["ou"][i]) for i in both)
    linked = tuple(pair for i, pair in zip(both, pairs) if i in valid_id["union"] and i in valid_id["ou"])
    union_events = sum(1 for m in stream if m.topic == UNION_TOPIC)
    expectation = Expectation(
        messages=len(messages),
        persons=len(accounts["union"].keys() | accounts["ou"].keys()),
        persons_on_both=len(pairs),
        linked_by_resident_id=len(linked),
        accounts_with_invalid_resident_id=len(invalid_accounts),
        good_events=n,
        union_events=union_events,
        ou_events=n - union_events,
        duplicates=n_duplicates,
        malformed=n_malformed,
        pairs=pairs,
        linked_pairs=linked,
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

    def paced() -> Iterator[SimMessage]:
        start = clock()
        for i, message in enumerate(messages):
            wait = start + i / rate - clock()
            if wait > 0:
                sleep(wait)
            yield message

    return iter(messages) if rate is None else paced()


def summary_line(expectation: Expectation) -> str:
    """One human-readable line describing a generated run."""
    e = expectation
    return (
        f"{e.messages} messages: {e.good_events} good events (union {e.union_events}, ou {e.ou_events}), "
        f"{e.duplicates} duplicates, {e.malformed} malformed; {e.persons} persons, {e.persons_on_both} on "
        f"both platforms, {e.linked_by_resident_id} linkable by resident ID, "
        f"{e.accounts_with_invalid_resident_id} accounts with an invalid resident ID"
    )


def _valid_resident_id(first17: str) -> str:
    return first17 + resident_id_check_character(first17)


def review_cases() -> list[SimMessage]:
    """A few people the bridge will not link alone, for ``bridge review`` to show (the demo sends
    them after its traffic): each raises one review item.

    - *ambiguous match*: two open-university learners with different resident IDs share one name
      and mobile (a family phone), and a union member with no document shows the same name and
      mobile: which of the two is it?
    - *conflicting documents*: a union member's record shows one valid resident ID, then another.
    """
    at = "2024-06-20 10:00:00"
    family = {"name": "陈　晓明", "mobile": "139 1000 2024"}
    ou_learners = [("2442101900001", "110105198803120017"[:17]), ("2442101900002", "110105199107250021"[:17])]
    messages = []
    for n, (student_no, first17) in enumerate(ou_learners, 1):
        value = {
            "event_id": f"01REVIEWCASE0000000000000{n}", "event_type": "enrolment.created",
            "occurred_at": 1718848800000 + n,
            "learner": {"student_no": student_no,
                        "identity_document": {"type": "RESIDENT_ID", "number": _valid_resident_id(first17)},
                        "full_name": "陈晓明", "phone": "+86 13910002024"},
            "course": {"course_id": OU_COURSES[n][0], "title": OU_COURSES[n][1], "credits": OU_COURSES[n][2],
                       "contact_hours": OU_COURSES[n][3]},
        }
        messages.append(SimMessage(OU_TOPIC, student_no.encode(), json.dumps(value).encode()))
    docless = {"msgId": "u-review-case-1", "eventType": "COURSE_ENROLL", "occurTime": at,
               "member": {"memberNo": "GH9900000001", "idCardNo": "", **family, "orgName": _REGIONS[0][1]},
               "course": {"courseCode": UNION_COURSES[0][0], "courseName": UNION_COURSES[0][1],
                          "studyHours": UNION_COURSES[0][2]}}
    messages.append(SimMessage(UNION_TOPIC, b"GH9900000001", json.dumps(docless, ensure_ascii=False).encode()))
    for n, first17 in enumerate(("31010419850611003", "31010419870923004"), 2):
        event = {"msgId": f"u-review-case-{n}", "eventType": "COURSE_ENROLL", "occurTime": at,
                 "member": {"memberNo": "GH9900000002", "idCardNo": _valid_resident_id(first17),
                            "name": "周　敏", "mobile": "13700001111", "orgName": _REGIONS[1][1]},
                 "course": {"courseCode": UNION_COURSES[n][0], "courseName": UNION_COURSES[n][1],
                            "studyHours": UNION_COURSES[n][2]}}
        messages.append(SimMessage(UNION_TOPIC, b"GH9900000002", json.dumps(event, ensure_ascii=False).encode()))
    return messages
