"""The persons of a simulation, and what they do: no platform named here.

A person has a name, a mobile, a resident ID and a region; holds an account on one platform or
on several (each platform's simulator opens it); and takes courses there: enrols, then mostly
completes (sometimes failing first), sometimes withdraws. Equivalent courses (one course key,
several platforms) are taken across platforms now and then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from bridge.core.normalise import resident_id_check_character
from bridge.tools.simulate.platform import Course, Draw, Kind, Person, PlatformSimulator

_BEIJING = timezone(timedelta(hours=8))
# A fixed window in 2024: no wall clock, so a seed gives the same bytes on any day.
START_MS = int(datetime(2024, 3, 1, tzinfo=_BEIJING).timestamp()) * 1000
WINDOW_DAYS = 120
DAY_MS = 86_400_000

#: (administrative division code, city) of a person's registration.
REGIONS = (
    ("110105", "北京市"), ("310104", "上海市"), ("210102", "沈阳市"), ("440106", "广州市"),
    ("510107", "成都市"), ("330106", "杭州市"), ("420106", "武汉市"), ("610113", "西安市"),
)
_XINJIANG = ("650102", "乌鲁木齐市")
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀英华慧建国平红霞玉兰志刚文辉"
_MINORITY_GIVEN = ("阿依古丽", "艾力", "买买提", "热依拉", "吐尔洪", "古丽米拉", "帕尔哈提", "迪丽娜尔")
_MINORITY_FAMILY = ("买买提", "艾则孜", "吐尔逊", "阿布都", "热合曼", "托合提")
#: Of the persons on several platforms, the share on one more platform than the number so far.
_ONE_MORE_PLATFORM = 0.3
#: Of the persons on several platforms, the share taking a course of one key on several of them.
_EQUIVALENT_SHARE = 0.3
#: Of the persons whose records hold their resident ID, the share with a typo on one record.
_TYPO_SHARE = 0.03

#: (platform, course, kind, epoch ms, passed): one thing a person does.
Step = tuple[str, Course, Kind, int, bool]


@dataclass(frozen=True)
class Platform:
    """One registered platform with a simulator, as a run uses it."""

    name: str
    topic: str
    simulator: PlatformSimulator
    courses: dict[str, Course]
    """The simulator's catalogue by course id."""


def valid_resident_id(first17: str) -> str:
    return first17 + resident_id_check_character(first17)


def at(draw: Draw, day: int) -> int:
    """Epoch ms of a moment on ``day`` of the window, during Beijing waking hours."""
    return START_MS + day * DAY_MS + draw.rng.randrange(7 * 3_600_000, 23 * 3_600_000)


def new_person(draw: Draw) -> Person:
    """A person with a unique resident ID and mobile, on no platform yet."""
    rng = draw.rng
    if rng.random() < 0.03:
        region, city = _XINJIANG
        name = f"{rng.choice(_MINORITY_GIVEN)}·{rng.choice(_MINORITY_FAMILY)}"
    else:
        region, city = rng.choice(REGIONS)
        name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2, 2))))

    def resident_id() -> str:
        born = date(1958, 1, 1) + timedelta(days=rng.randrange(46 * 365))
        return valid_resident_id(f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}")

    rid = draw.unique(resident_id)
    mobile = draw.unique(lambda: "1" + rng.choice("3456789") + draw.digits(9))
    return Person(name, mobile, region, city, rid, first_generation_card=rid[6:8] == "19" and rng.random() < 0.03)


def choose_platforms(draw: Draw, platforms: list[Platform], overlap: float) -> list[Platform]:
    """The platforms a person is on: several with probability ``overlap`` (two, or more now and
    then), else one; a platform's :attr:`PlatformSimulator.weight` makes it likelier. In registry order."""
    rng = draw.rng
    count = 1
    if len(platforms) >= 2 and rng.random() < overlap:
        count = 2
        while count < len(platforms) and rng.random() < _ONE_MORE_PLATFORM:
            count += 1
    pool = list(platforms)
    chosen: set[str] = set()
    for _ in range(count):
        x = rng.random() * sum(p.simulator.weight for p in pool)
        pick = len(pool) - 1
        for i, p in enumerate(pool):
            x -= p.simulator.weight
            if x < 0:
                pick = i
                break
        chosen.add(pool.pop(pick).name)
    return [p for p in platforms if p.name in chosen]


def enrol_person(draw: Draw, person: Person, platforms: list[Platform]) -> None:
    """Open the person's accounts on ``platforms``; now and then one record's resident ID has a typo."""
    for platform in platforms:
        person.accounts[platform.name] = platform.simulator.open_account(draw, person)
    with_rid = [a for a in person.accounts.values() if a.resident_id is not None]
    if with_rid and draw.rng.random() < _TYPO_SHARE:
        account = draw.rng.choice(with_rid)
        rid = person.resident_id
        bad = rid[:17] + draw.rng.choice([c for c in "0123456789X" if c != rid[17]])
        account.document, account.document_valid = ("RESIDENT_ID", bad), False


def equivalent_courses(platforms: list[Platform]) -> dict[str, dict[str, list[str]]]:
    """course_key -> platform -> course ids, from the simulators' equivalence rows."""
    table: dict[str, dict[str, list[str]]] = {}
    for platform in platforms:
        for course_key, course_id in platform.simulator.equivalences:
            table.setdefault(course_key, {}).setdefault(platform.name, []).append(course_id)
    return table


def plan(draw: Draw, person: Person, platforms: dict[str, Platform],
         equivalent: dict[str, dict[str, list[str]]]) -> list[Step]:
    """Everything the person does, on every platform they are on."""
    rng = draw.rng
    courses: list[tuple[str, Course]] = []
    for name in person.accounts:
        sim = platforms[name].simulator
        counts = sim.course_counts
        k = min(rng.choices(range(1, len(counts) + 1), counts)[0], len(sim.courses))
        courses += [(name, c) for c in rng.sample(sim.courses, k)]
    on = person.accounts.keys()
    if len(on) >= 2 and rng.random() < _EQUIVALENT_SHARE:
        keys = sorted(key for key, by in equivalent.items() if len(on & by.keys()) >= 2)
        if keys:
            by_platform = equivalent[rng.choice(keys)]
            for name in person.accounts:
                if name in by_platform:
                    wanted = (name, platforms[name].courses[rng.choice(by_platform[name])])
                    if wanted not in courses:
                        courses.append(wanted)
    steps: list[Step] = []
    for name, course in courses:
        day = rng.randrange(WINDOW_DAYS)
        steps.append((name, course, "enrol", at(draw, day), False))
        r = rng.random()
        if r < 0.07:
            continue  # still studying
        if r < 0.15:
            steps.append((name, course, "withdraw", at(draw, day + rng.randint(1, 20)), False))
            continue
        done = day + rng.randint(3, 45)
        if r < 0.29:
            steps.append((name, course, "complete", at(draw, done), False))
            if r < 0.22:
                continue
            done += rng.randint(7, 30)  # failed, then passed a retake
        steps.append((name, course, "complete", at(draw, done), True))
        if rng.random() < 0.04:
            steps.append((name, course, "withdraw", at(draw, done + rng.randint(1, 10)), False))
    return steps
