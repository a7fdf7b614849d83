"""A learner's credit records in learning-record standards: pure functions, no Kafka.

- **Open Badges 3.0** (1EdTech): one ``AchievementCredential`` per AWARDED record, with
  ``creditsEarned``, a ``result`` carrying the status, and an ``achievement`` whose ``humanCode``
  is the ``course_key``.
- **CLR 2.0** (1EdTech Comprehensive Learner Record): one ``ClrCredential`` wrapping those
  achievement credentials.
- **xAPI 1.0.3** (ADL): statements with the ADL ``completed``/``passed``/``failed`` verbs.

The credentials are unsigned (no ``proof``): the bridge holds no issuer key. Sign them with the
issuer's key before handing them to a wallet. The learner appears only as its pseudonymous
``learner_id`` (an xAPI account name, an Open Badges ``identifier``): never a name, phone or
identity document, which the bridge does not publish anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from bridge.core.records import CreditRecord, CreditStatus
from bridge.errors import BridgeError
from bridge.tools.transcript import Transcript

Json = dict[str, Any]
Format = Literal["openbadges", "clr", "xapi"]
FORMATS: tuple[Format, ...] = ("clr", "openbadges", "xapi")

# Open Badges 3.0 §"Context": the VC 2.0 context first, then the OB 3.0.3 context.
OB_CONTEXT = (
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
)
# CLR 2.0: "the first three items are" VC 2.0, CLR 2.0.1 and OB 3.0.3, in that order.
CLR_CONTEXT = (
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
)
OB_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
CLR_SCHEMA = "https://purl.imsglobal.org/spec/clr/v2p0/schema/json/clr_v2p0_clrcredential_schema.json"
SCHEMA_VALIDATOR = "1EdTechJsonSchemaValidator2019"

#: Open Badges ``ResultStatusType`` of each record status.
OB_RESULT_STATUS: dict[CreditStatus, str] = {
    CreditStatus.AWARDED: "Completed",
    CreditStatus.FAILED: "Failed",
    CreditStatus.ENROLLED: "Enrolled",
    CreditStatus.WITHDRAWN: "Withdrew",
}

ADL_VERB = "http://adlnet.gov/expapi/verbs/"
XAPI_COMPLETED = ADL_VERB + "completed"
XAPI_PASSED = ADL_VERB + "passed"
XAPI_FAILED = ADL_VERB + "failed"
XAPI_COURSE = "http://adlnet.gov/expapi/activities/course"
#: The xAPI verbs of each record status, as cmi5 does: a finished course was ``completed``, then
#: ``passed`` or ``failed``. Enrolment and withdrawal finish nothing, so they yield no statement.
XAPI_VERBS: dict[CreditStatus, tuple[str, ...]] = {
    CreditStatus.AWARDED: (XAPI_COMPLETED, XAPI_PASSED),
    CreditStatus.FAILED: (XAPI_COMPLETED, XAPI_FAILED),
    CreditStatus.ENROLLED: (),
    CreditStatus.WITHDRAWN: (),
}


class NothingToExport(BridgeError):
    """The learner has no record the format can express (CLR needs at least one credential)."""

    def __init__(self, learner_id: str, fmt: str) -> None:
        super().__init__(f"learner {learner_id} has no awarded record, and a {fmt} export needs one")
        self.learner_id = learner_id
        self.format = fmt


@dataclass(frozen=True)
class Issuer:
    """Who issues the exported credentials, and the home of the ids derived from ``url``."""

    url: str
    name: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        # Achievement ids, xAPI activity ids and the xAPI account homePage derive from it, and
        # xAPI wants an IRL there: a resolvable http(s) URL.
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the issuer must be an http(s) URL, not {self.url!r}")
        if not self.name.strip():
            raise ValueError("the issuer needs a name")

    def profile(self) -> Json:
        """The Open Badges ``Profile`` of the issuer."""
        return {"id": self.url, "type": ["Profile"], "name": self.name}

    def course_iri(self, course_key: str) -> str:
        """The IRI of a course: the Open Badges achievement id and the xAPI activity id."""
        return f"{self.url.rstrip('/')}/courses/{quote(course_key, safe='')}"

    def uuid(self, *parts: str) -> str:
        """A name-based UUID under this issuer: the same parts give the same id on every export."""
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, self.url)
        return str(uuid.uuid5(namespace, "\x1f".join(parts)))


#: Placeholder issuer for exports without ``--issuer-url``: ``.invalid`` is reserved (RFC 2606),
#: so nobody can mistake these credentials for an institution's.
DEFAULT_ISSUER = Issuer(url="https://credit-bridge.invalid", name="Credit bridge (unconfigured issuer)")


def achievement(record: CreditRecord, issuer: Issuer) -> Json:
    """The Open Badges ``Achievement`` (the course) of a record."""
    course_id = issuer.course_iri(record.course_key)
    descriptions = [_result_description(course_id, "status", "Status", "Status")]
    if record.score is not None:
        descriptions.append(_result_description(course_id, "score", "Score", "RawScore"))
    return {
        "id": course_id,
        "type": ["Achievement"],
        "achievementType": "Course",
        "name": record.course_key,
        "description": f"The course {record.course_key}.",
        "criteria": {"narrative": f"Pass the course {record.course_key}."},
        "humanCode": record.course_key,
        "resultDescription": descriptions,
    }


def achievement_credential(record: CreditRecord, issuer: Issuer, now: datetime) -> Json:
    """The Open Badges 3.0 ``AchievementCredential`` of one AWARDED record.

    Valid from the record's completion; an award without a completion time from ``now``.
    """
    if record.status is not CreditStatus.AWARDED:
        raise ValueError(f"record {record.record_id} is {record.status.value}: only AWARDED records are credentials")
    course = achievement(record, issuer)
    results: list[Json] = [
        {
            "type": ["Result"],
            "resultDescription": f"{course['id']}#status",
            "status": OB_RESULT_STATUS[record.status],
        }
    ]
    if record.score is not None:
        results.append({"type": ["Result"], "resultDescription": f"{course['id']}#score", "value": _number_text(record.score)})
    subject: Json = {
        "type": ["AchievementSubject"],
        "identifier": [_learner_identity(record.learner_id)],
        "achievement": course,
        "creditsEarned": record.credits,
        "result": results,
    }
    if record.enrolled_at is not None:
        subject["activityStartDate"] = _iso(record.enrolled_at)
    if record.completed_at is not None:
        subject["activityEndDate"] = _iso(record.completed_at)
    credential: Json = {
        "@context": list(OB_CONTEXT),
        "id": f"urn:uuid:{issuer.uuid('credential', record.record_id)}",
        "type": ["VerifiableCredential", "AchievementCredential"],
        "name": f"{record.course_key}: {_number_text(record.credits)} credits",
        "issuer": issuer.profile(),
        "validFrom": _iso(record.completed_at or now),
        "credentialSubject": subject,
        "credentialSchema": [{"id": OB_SCHEMA, "type": SCHEMA_VALIDATOR}],
    }
    if record.completed_at is not None:
        credential["awardedDate"] = _iso(record.completed_at)
    return credential


def open_badges(transcript: Transcript, issuer: Issuer, now: datetime) -> list[Json]:
    """One ``AchievementCredential`` per AWARDED record of the transcript."""
    return [achievement_credential(r, issuer, now) for r in transcript.awarded]


def clr(transcript: Transcript, issuer: Issuer, now: datetime) -> Json:
    """A CLR 2.0 ``ClrCredential`` wrapping the transcript's achievement credentials."""
    credentials = open_badges(transcript, issuer, now)
    if not credentials:
        raise NothingToExport(transcript.learner_id, "CLR 2.0")
    issued = _iso(now)
    return {
        "@context": list(CLR_CONTEXT),
        "id": f"urn:uuid:{issuer.uuid('clr', transcript.learner_id, issued)}",
        "type": ["VerifiableCredential", "ClrCredential"],
        "name": f"Credit record of learner {transcript.learner_id}",
        "description": f"{_number_text(transcript.totals().awarded_credits)} credits awarded in "
        f"{len(credentials)} course{'s' if len(credentials) != 1 else ''}.",
        "issuer": issuer.profile(),
        "validFrom": issued,
        "credentialSubject": {
            "type": ["ClrSubject"],
            "identifier": [_learner_identity(transcript.learner_id)],
            "verifiableCredential": credentials,
            "achievement": [c["credentialSubject"]["achievement"] for c in credentials],
        },
        "credentialSchema": [{"id": CLR_SCHEMA, "type": SCHEMA_VALIDATOR}],
    }


def xapi_statements(transcript: Transcript, issuer: Issuer, now: datetime | None = None) -> list[Json]:
    """The xAPI statements of the transcript's finished courses (see :data:`XAPI_VERBS`).

    ``now`` is unused: a statement carries the time of the completion it reports.
    """
    return [
        statement
        for record in transcript.records
        for statement in record_statements(record, issuer)
    ]


def record_statements(record: CreditRecord, issuer: Issuer) -> list[Json]:
    """The xAPI statements of one record: none, or ``completed`` then ``passed``/``failed``."""
    return [_statement(record, verb, issuer) for verb in XAPI_VERBS[record.status]]


EXPORTERS: dict[Format, Callable[[Transcript, Issuer, datetime], Json | list[Json]]] = {
    "openbadges": open_badges,
    "clr": clr,
    "xapi": xapi_statements,
}


def export(transcript: Transcript, fmt: Format, issuer: Issuer, now: datetime) -> Json | list[Json]:
    """The transcript in format ``fmt``, as JSON-ready values."""
    return EXPORTERS[fmt](transcript, issuer, now)


def _statement(record: CreditRecord, verb: str, issuer: Issuer) -> Json:
    name = verb.rsplit("/", 1)[-1]
    result: Json = {"completion": True}
    if verb != XAPI_COMPLETED:
        result["success"] = verb == XAPI_PASSED
        if record.score is not None:
            result["score"] = {"raw": record.score}
    statement: Json = {
        # Name-based: re-exporting the same record version gives the same statement ids, so an
        # LRS recognises a repeated export instead of storing every statement twice.
        "id": issuer.uuid("statement", record.record_id, str(record.version), name),
        "actor": {
            "objectType": "Agent",
            "account": {"homePage": issuer.url, "name": record.learner_id},
        },
        "verb": {"id": verb, "display": {"en-US": name}},
        "object": {
            "objectType": "Activity",
            "id": issuer.course_iri(record.course_key),
            "definition": {"type": XAPI_COURSE, "name": {"und": record.course_key}},
        },
        "result": result,
        "context": {
            "platform": issuer.name,
            "extensions": {
                _extension(issuer, "record-id"): record.record_id,
                _extension(issuer, "credits"): record.credits,
            },
        },
    }
    if record.completed_at is not None:
        statement["timestamp"] = _iso(record.completed_at)
    return statement


def _extension(issuer: Issuer, name: str) -> str:
    return f"{issuer.url.rstrip('/')}/xapi/extensions/{name}"


def _result_description(course_id: str, fragment: str, name: str, result_type: str) -> Json:
    return {"id": f"{course_id}#{fragment}", "type": ["ResultDescription"], "name": name, "resultType": result_type}


def _learner_identity(learner_id: str) -> Json:
    # The pseudonymous learner id, in the clear: it is already public on learner.identities.v1.
    return {"type": "IdentityObject", "identityHash": learner_id, "identityType": "systemId", "hashed": False}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
