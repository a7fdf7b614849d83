"""Dead-letter replay from the console against a real worker, embedded broker and database (the
harness of ``tests/integration``): a viewer is refused, a replay needs the session's CSRF token,
and a reviewer's replay of one reason re-drives exactly those dead letters once their cause (a
database trigger) is gone, as ``bridge deadletters replay --reason-code`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge.core.records import learner_id_for, record_id_for
from bridge.store.engine import upgrade
from tests.console.support import ConsoleUnderTest, console_for
from tests.factories import UNION, encode, resident_id, union_event
from tests.hostile import DB_POISON_PREFIX
from tests.integration.harness import Bridge, install_insert_poison
from topics.catalogue import INPUT_TOPICS

pytestmark = pytest.mark.integration

NAME, PHONE, DOCUMENT = "欧阳秀英", "13912345670", resident_id(serial="933")
#: Valid, but refused by the database while the test's trigger is there: dead-lettered as unprocessable.
POISONED = encode(union_event(f"{DB_POISON_PREFIX}u-c-1", member_no="GHC1", name=None, mobile=None))
#: Cut short (not JSON), holding a name, a phone and a document as text: dead-lettered for good.
BROKEN = encode(union_event("u-c-2", member_no="GHC2", id_card=DOCUMENT, name=NAME, mobile=PHONE))[:-9]
UNION_TOPIC = next(t for t in INPUT_TOPICS if t.name == UNION)
RECORD = record_id_for(learner_id_for("union", "GHC1"), "union:ACFTU-SK-0012")


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "bridge", f"sqlite:///{tmp_path / 'bridge.db'}")
    try:
        upgrade(b.engine)
        install_insert_poison(b.engine, DB_POISON_PREFIX)
        b.start_worker()
        b.send(UNION, "GHC1", POISONED)
        b.send(UNION, "GHC2", BROKEN)
        b.settle()
        yield b
    finally:
        b.close()


def reasons(bridge: Bridge) -> list[str]:
    return sorted(d["reason_code"] for d in bridge.dead_letters())


def replay_form(console: ConsoleUnderTest, code: str) -> dict[str, str]:
    page = console.client.get("/deadletters").text
    forms = dict(re.findall(r'name="csrf" value="([^"]+)"><input type="hidden" name="reason_code" value="([^"]+)"', page))
    assert code in forms.values(), "no replay button"
    return {"csrf": console.csrf("/deadletters"), "reason_code": code}


def test_a_reviewer_replays_one_reason_and_the_worker_processes_it(bridge: Bridge, tmp_path: Path) -> None:
    before = reasons(bridge)
    assert before.count("unprocessable") == 1 and len(before) == 2, before
    broken_code = next(c for c in before if c != "unprocessable")
    assert RECORD not in bridge.records()
    (tmp_path / "console").mkdir()
    console = console_for(tmp_path / "console", bridge.settings.database_url, broker_url=bridge.settings.broker_url)

    console.sign_in("op-3")
    page = console.client.get("/deadletters")
    assert page.status_code == 200 and re.search(r'id="dl-total">2<', page.text)
    assert not [v for v in (NAME, PHONE, DOCUMENT) if v in page.text], "the page shows a personal value"
    assert 'action="/deadletters/replay"' not in page.text, "a viewer is offered the replay"
    answer = console.client.post("/deadletters/replay", data={"csrf": console.csrf(), "reason_code": "unprocessable"})
    assert answer.status_code == 403 and "viewer" in answer.text
    console.client.post("/signout", data={"csrf": console.csrf()})

    console.sign_in("op-17")
    form = replay_form(console, "unprocessable")
    for refused, status in (({"reason_code": "unprocessable"}, 403), ({**form, "csrf": "forged"}, 403),
                            ({**form, "reason_code": "../x"}, 400), ({**form, "reason_code": ""}, 400)):
        assert console.client.post("/deadletters/replay", data=refused).status_code == status, refused
    answer = console.client.post("/deadletters/replay", data=form, headers={"origin": "http://evil.example"})
    assert answer.status_code == 403
    assert len(bridge.topic(UNION_TOPIC)) == 2, "a refused replay re-sent something"

    with bridge.engine.begin() as conn:  # the fix
        conn.execute(text("DROP TRIGGER IF EXISTS hostile_data_poison"))
    answer = console.client.post("/deadletters/replay", data=form, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/deadletters"
    flash = re.search(r'id="flash">([^<]*)<', console.client.get("/deadletters").text).group(1)
    assert flash.startswith("re-sent 1 of 1 selected dead letters; could not re-send 0"), flash
    assert re.search(rf"re-sent {UNION}:(\d+):\d+ as {UNION}:\1:\d+", flash), flash
    bridge.sent += 1
    bridge.settle()
    assert bridge.records()[RECORD]["status"] == "ENROLLED", "the replayed event was not processed"
    assert reasons(bridge) == before, "the replay was dead-lettered again, or the other reason was replayed"
    assert len(bridge.topic(UNION_TOPIC)) == 3, "only the unprocessable dead letter goes back"
    page = console.client.get("/deadletters").text
    assert re.search(r'id="dl-total">2<', page) and f"<td>{broken_code}</td><td>1</td>" in page

