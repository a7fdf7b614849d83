"""Standards export: structure against the specifications' required fields, verbs, privacy.

The schemas are in ``tests/standards.py``.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bridge.core.records import AccountRef, CreditRecord, CreditStatus, LearnerIdentity, Source, record_id_for
from bridge.tools.export import (
    DEFAULT_ISSUER,
    OB_CONTEXT,
    OB_RESULT_STATUS,
    XAPI_VERBS,
    Issuer,
    NothingToExport,
    clr,
    export,
    open_badges,
    record_statements,
    xapi_statements,
)
from bridge.tools.transcript import build_transcript
from tests.standards import ACHIEVEMENT_CREDENTIAL, CLR_CREDENTIAL, RESULT, XAPI_STATEMENT

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2024, 4, 1, 1, 0, tzinfo=UTC)
ISSUER = Issuer(url="https://credits.example.org", name="Example credit office")
LEARNER = "lrn_0123456789abcdef01234567"
ACCOUNTS = ("GH2101000123", "2421101400123")


def _record(course: str, status: str, *, credits: float = 0.0, score: float | None = None, done: int | None = 1, **kw: Any) -> CreditRecord:
    return CreditRecord(
        record_id=record_id_for(LEARNER, course),
        learner_id=LEARNER,
        course_key=course,
        status=status,
        credits=credits,
        hours=kw.get("hours"),
        score=score,
        enrolled_at=T0,
        completed_at=T0 + timedelta(days=done) if done is not None else None,
        sources=[Source(platform=p, account=a, event_id=f"e-{course}-{p}") for p, a in kw.get("sources", [("union", ACCOUNTS[0])])],
        version=kw.get("version", 1),
        rule=kw.get("rule", "hours/16"),
    )


RECORDS = [
    _record("union:ACFTU-SK-0012", "AWARDED", credits=1.5, score=86.5, hours=24, done=3),
    _record("ou:NOU-08123", "AWARDED", credits=2.0, done=5, sources=[("ou", ACCOUNTS[1])], rule="ou-credits"),
    _record("course-equivalent", "AWARDED", credits=2.0, score=90, done=7, sources=[("union", ACCOUNTS[0]), ("ou", ACCOUNTS[1])]),
    _record("union:ACFTU-SK-0099", "FAILED", score=40.0, done=2),
    _record("ou:NOU-09999", "ENROLLED", done=None, sources=[("ou", ACCOUNTS[1])]),
    _record("union:ACFTU-SK-0050", "WITHDRAWN", done=None),
]


def _transcript(records=RECORDS):
    identity = LearnerIdentity(
        learner_id=LEARNER,
        accounts=[AccountRef(platform="union", account=ACCOUNTS[0]), AccountRef(platform="ou", account=ACCOUNTS[1])],
        links=[],
        merged_into=None,
        version=2,
    )
    return build_transcript(LEARNER, {LEARNER: identity}, records)


def _parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def test_open_badges_is_one_valid_achievement_credential_per_awarded_record():
    credentials = open_badges(_transcript(), ISSUER, NOW)
    awarded = [r for r in RECORDS if r.status is CreditStatus.AWARDED]
    assert len(credentials) == len(awarded)
    validator = Draft202012Validator(ACHIEVEMENT_CREDENTIAL)
    for credential in credentials:
        validator.validate(credential)
        _parse_time(credential["validFrom"])
    by_code = {c["credentialSubject"]["achievement"]["humanCode"]: c for c in credentials}
    assert set(by_code) == {r.course_key for r in awarded}
    union = by_code["union:ACFTU-SK-0012"]["credentialSubject"]
    assert union["creditsEarned"] == 1.5
    assert union["achievement"]["achievementType"] == "Course"
    status = next(r for r in union["result"] if "status" in r)
    assert status["status"] == "Completed"
    assert next(r for r in union["result"] if "value" in r)["value"] == "86.5"
    # Every result points at a description of its achievement, as OB 3.0 requires for `status`.
    described = {d["id"]: d["resultType"] for d in union["achievement"]["resultDescription"]}
    assert described[status["resultDescription"]] == "Status"
    assert by_code["union:ACFTU-SK-0012"]["validFrom"] == "2024-04-04T01:00:00Z"


def test_clr_wraps_the_achievement_credentials_and_validates():
    document = clr(_transcript(), ISSUER, NOW)
    Draft202012Validator(CLR_CREDENTIAL).validate(document)
    subject = document["credentialSubject"]
    assert subject["verifiableCredential"] == open_badges(_transcript(), ISSUER, NOW)
    assert [a["humanCode"] for a in subject["achievement"]] == [
        c["credentialSubject"]["achievement"]["humanCode"] for c in subject["verifiableCredential"]
    ]
    assert document["validFrom"] == "2024-06-01T12:00:00Z"
    assert document["issuer"] == {"id": ISSUER.url, "type": ["Profile"], "name": ISSUER.name}


def test_clr_without_an_awarded_record_is_refused_with_the_learner():
    unawarded = [r for r in RECORDS if r.status is not CreditStatus.AWARDED]
    with pytest.raises(NothingToExport) as caught:
        clr(_transcript(unawarded), ISSUER, NOW)
    assert caught.value.learner_id == LEARNER
    assert open_badges(_transcript(unawarded), ISSUER, NOW) == []


def test_xapi_statements_validate_and_map_statuses_to_adl_verbs():
    statements = xapi_statements(_transcript(), ISSUER, NOW)
    validator = Draft202012Validator(XAPI_STATEMENT)
    for statement in statements:
        validator.validate(statement)
        _parse_time(statement["timestamp"])
    verbs = {}
    for s in statements:
        course = s["object"]["definition"]["name"]["und"]
        verbs.setdefault(course, []).append(s["verb"]["id"])
    adl = "http://adlnet.gov/expapi/verbs/"
    assert verbs == {
        "union:ACFTU-SK-0012": [adl + "completed", adl + "passed"],
        "ou:NOU-08123": [adl + "completed", adl + "passed"],
        "course-equivalent": [adl + "completed", adl + "passed"],
        "union:ACFTU-SK-0099": [adl + "completed", adl + "failed"],
    }
    passed = next(s for s in statements if s["verb"]["id"] == adl + "passed" and s["result"].get("score"))
    assert passed["result"] == {"completion": True, "success": True, "score": {"raw": 86.5}}
    failed = next(s for s in statements if s["verb"]["id"] == adl + "failed")
    assert failed["result"] == {"completion": True, "success": False, "score": {"raw": 40.0}}
    completed = next(s for s in statements if s["verb"]["id"] == adl + "completed")
    assert completed["result"] == {"completion": True}
    assert all(s["actor"] == {"objectType": "Agent", "account": {"homePage": ISSUER.url, "name": LEARNER}} for s in statements)
    assert all(s["object"]["id"].startswith(ISSUER.url + "/courses/") for s in statements)


@pytest.mark.parametrize("status", list(CreditStatus))
def test_every_status_has_verbs_and_an_open_badges_status(status):
    adl = "http://adlnet.gov/expapi/verbs/"
    expected = {
        CreditStatus.AWARDED: (adl + "completed", adl + "passed"),
        CreditStatus.FAILED: (adl + "completed", adl + "failed"),
        CreditStatus.ENROLLED: (),
        CreditStatus.WITHDRAWN: (),
    }
    assert XAPI_VERBS[status] == expected[status]
    record = _record("c", status.value, done=1 if status in (CreditStatus.AWARDED, CreditStatus.FAILED) else None)
    assert [s["verb"]["id"] for s in record_statements(record, ISSUER)] == list(expected[status])
    assert OB_RESULT_STATUS[status] in RESULT["properties"]["status"]["enum"]


def test_exports_carry_no_personal_data_and_no_account_numbers():
    transcript = _transcript()
    for fmt in ("openbadges", "clr", "xapi"):
        text = json.dumps(export(transcript, fmt, ISSUER, NOW), ensure_ascii=False)
        for account in ACCOUNTS:
            assert account not in text, f"{fmt} leaks account {account}"
        for key in ("mbox", "mbox_sha1sum", "openid", "email", "phone", "familyName", "givenName", "dateOfBirth"):
            assert f'"{key}"' not in text, f"{fmt} has a {key}"
        assert LEARNER in text
    for statement in xapi_statements(transcript, ISSUER, NOW):
        assert "name" not in statement["actor"]
    for credential in open_badges(transcript, ISSUER, NOW):
        subject = credential["credentialSubject"]
        assert "name" not in subject and "id" not in subject
        assert subject["identifier"] == [
            {"type": "IdentityObject", "identityHash": LEARNER, "identityType": "systemId", "hashed": False}
        ]


def test_ids_are_stable_per_issuer_so_a_repeated_export_is_recognised():
    first = xapi_statements(_transcript(), ISSUER, NOW)
    again = xapi_statements(_transcript(), ISSUER, NOW + timedelta(days=1))
    assert [s["id"] for s in first] == [s["id"] for s in again]
    assert len({s["id"] for s in first}) == len(first)
    assert all(uuid.UUID(s["id"]).version == 5 for s in first)
    other = Issuer(url="https://other.example.org", name="Other")
    assert {s["id"] for s in xapi_statements(_transcript(), other, NOW)}.isdisjoint(s["id"] for s in first)
    badges = open_badges(_transcript(), ISSUER, NOW)
    assert all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", c["id"]) for c in badges)
    assert [c["id"] for c in badges] == [c["id"] for c in open_badges(_transcript(), ISSUER, NOW)]


def test_a_newer_record_version_gets_new_statement_ids():
    old = record_statements(_record("c", "AWARDED", credits=1, version=1), ISSUER)
    new = record_statements(_record("c", "AWARDED", credits=1, version=2), ISSUER)
    assert {s["id"] for s in old}.isdisjoint(s["id"] for s in new)


def test_course_iris_escape_the_course_key():
    assert ISSUER.course_iri("union:ACFTU SK/1") == "https://credits.example.org/courses/union%3AACFTU%20SK%2F1"


@pytest.mark.parametrize("url", ["credits.example.org", "urn:x:y", "ftp://example.org", ""])
def test_issuer_must_be_an_http_url(url):
    with pytest.raises(ValueError, match="http"):
        Issuer(url=url, name="x")


def test_default_issuer_is_a_reserved_placeholder():
    assert DEFAULT_ISSUER.url.endswith(".invalid")
    Draft202012Validator(ACHIEVEMENT_CREDENTIAL).validate(open_badges(_transcript(), DEFAULT_ISSUER, NOW)[0])


def test_an_award_without_completion_time_is_valid_from_the_export():
    record = _record("c", "AWARDED", credits=1, done=None)
    (credential,) = open_badges(_transcript([record]), ISSUER, NOW)
    assert credential["validFrom"] == "2024-06-01T12:00:00Z"
    assert "awardedDate" not in credential and "activityEndDate" not in credential["credentialSubject"]
    Draft202012Validator(ACHIEVEMENT_CREDENTIAL).validate(credential)
    (completed, passed) = record_statements(record, ISSUER)
    assert "timestamp" not in passed


def test_the_test_schemas_reject_what_the_specifications_forbid():
    # The schemas above must have teeth: each mutation breaks a requirement of its specification.
    credential = open_badges(_transcript(), ISSUER, NOW)[0]
    ob = Draft202012Validator(ACHIEVEMENT_CREDENTIAL)
    assert not ob.is_valid({k: v for k, v in credential.items() if k != "validFrom"})
    assert not ob.is_valid(credential | {"@context": list(reversed(OB_CONTEXT))})
    assert not ob.is_valid(credential | {"type": ["VerifiableCredential"]})
    subject = credential["credentialSubject"]
    assert not ob.is_valid(credential | {"credentialSubject": {k: v for k, v in subject.items() if k != "identifier"}})
    achievement = {k: v for k, v in subject["achievement"].items() if k != "criteria"}
    assert not ob.is_valid(credential | {"credentialSubject": subject | {"achievement": achievement}})
    document = clr(_transcript(), ISSUER, NOW)
    clr_validator = Draft202012Validator(CLR_CREDENTIAL)
    assert not clr_validator.is_valid(document | {"credentialSubject": document["credentialSubject"] | {"verifiableCredential": []}})
    assert not clr_validator.is_valid(document | {"@context": list(OB_CONTEXT)})
    statement = xapi_statements(_transcript(), ISSUER, NOW)[0]
    xapi = Draft202012Validator(XAPI_STATEMENT)
    assert not xapi.is_valid({k: v for k, v in statement.items() if k != "verb"})
    assert not xapi.is_valid(statement | {"actor": statement["actor"] | {"mbox": "mailto:a@example.org"}})
    assert not xapi.is_valid(statement | {"result": {"score": {"scaled": 1.5}}})
