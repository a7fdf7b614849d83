"""Tables of the identity registry and the credit ledger (SQLAlchemy Core).

No column holds a resident ID, document number, name or phone: only keyed-HMAC digests with the
id of the key that made them (CONTRACT §3.7).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

UTCDateTime = DateTime(timezone=True)

learners = Table(
    "learners",
    metadata,
    Column("learner_id", String(64), primary_key=True),
    Column("merged_into", String(64), nullable=True, index=True),
    # Revision 0006: 64 bits, an identity's version weighs its evidence by time (bridge.core.versions).
    Column("version", BigInteger, nullable=False),
    # The identity as published, without its version: what tells whether it changed.
    Column("state", Text, nullable=True),
    # The published value (JSON text) of the current version, ready to send (revision 0002).
    Column("value", Text, nullable=True),
)

accounts = Table(
    "accounts",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("account", String(128), primary_key=True),
    # Set by identity resolution in the same transaction that creates the row.
    Column("learner_id", String(64), nullable=True, index=True),
    Column("method", String(32), nullable=True),
    Column("linked_at", UTCDateTime, nullable=True),
    Column("event_id", String(128), nullable=True),
    # The account's earliest event (by event time, then id): replay-stable link explanations.
    Column("first_at", UTCDateTime, nullable=False),
    Column("first_event_id", String(128), nullable=False),
)

evidence = Table(
    "evidence",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("account", String(128), primary_key=True),
    # A document type (RESIDENT_ID, PASSPORT, HK_MACAO_TAIWAN_PERMIT) or name_mobile.
    Column("kind", String(32), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("first_event_id", String(128), nullable=False),
    Index("ix_evidence_kind_digest", "kind", "digest"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("review_id", String(64), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("account", String(128), nullable=False),
    Column("anchor_platform", String(16), nullable=True),
    Column("anchor_account", String(128), nullable=True),
    Column("decided_by", String(128), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("note", Text, nullable=True),
    # Revision 0004: the operator's key that signed the decision (null for decisions before it).
    Column("key_id", String(64), nullable=True),
    Index("ix_decisions_account", "platform", "account"),
    # Re-resolution looks decisions up by either side (revision 0002).
    Index("ix_decisions_anchor", "anchor_platform", "anchor_account"),
)

credit_facts = Table(
    "credit_facts",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("account", String(128), nullable=False),
    Column("course_key", String(256), nullable=False),
    Column("course_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("hours", Float, nullable=True),
    Column("platform_credits", Float, nullable=True),
    Column("passed", Boolean, nullable=True),
    Column("score", Float, nullable=True),
    # Where the event was read: explains a record and serves replay checks.
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    # Revision 0003: a keyed digest of the event's canonical content (with the key that made it),
    # so the same event id with other content is told apart from a redelivery; how many distinct
    # contents were seen for this event id (the kept one included); and the kept content's
    # evidence items (JSON ``[[kind, digest, key_id], ...]``), so that content can be retracted.
    Column("content_digest", String(64), nullable=True),
    Column("content_key_id", String(32), nullable=True),
    Column("contents", Integer, nullable=False, server_default="1"),
    Column("evidence", Text, nullable=True),
    # Covers ``contents`` (revision 0003): the per-course event counts stay index-only.
    Index("ix_credit_facts_account_course", "platform", "account", "course_key", "contents"),
)

# Revision 0003: contents of an event id that lost to another content of the same id (CONTRACT
# §1: one content per event id, whatever the order); a redelivery of one is a duplicate.
rejected_contents = Table(
    "rejected_contents",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("content_digest", String(64), primary_key=True),
    Column("content_key_id", String(32), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("rejected_at", UTCDateTime, nullable=False),
)

# Revision 0003: how many accounts hold each name+mobile digest (identity rule 8). A digest held
# by more than ``BRIDGE_MAX_SHARED_EVIDENCE`` accounts links none of them, and re-resolution does
# not follow it, so the cost of an event does not grow with the crowd that shares it.
shared_evidence = Table(
    "shared_evidence",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("holders", Integer, nullable=False),
)

# Revision 0003: output values over the message bound (CONTRACT §2: nothing over 1 MiB is sent),
# held back instead of published until they shrink; operators see them in the review backlog.
held_outputs = Table(
    "held_outputs",
    metadata,
    Column("topic", String(255), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("held_at", UTCDateTime, nullable=False),
)

# Revision 0003: facts about the registry itself; ``registry_id`` is a random id made when the
# registry was created, so a worker can tell that its database was replaced under it.
registry_meta = Table(
    "registry_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

credit_records = Table(
    "credit_records",
    metadata,
    Column("record_id", String(64), primary_key=True),
    Column("learner_id", String(64), nullable=False, index=True),
    Column("course_key", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("retired", Boolean, nullable=False, default=False),
    # Before revision 0002: the published value without its version. Read only for rows that
    # have no ``value`` yet.
    Column("state", Text, nullable=True),
    Column("status", String(16), nullable=True),
    Column("credits", Float, nullable=True),
    # The published value (JSON text) of the current version, ready to send (revision 0002).
    Column("value", Text, nullable=True),
)

review_items = Table(
    "review_items",
    metadata,
    Column("review_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("account", String(128), nullable=False),
    Column("candidates", JSON, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("event_id", String(128), nullable=True),
    Column("status", String(16), nullable=False, default="open"),
    Column("decision_id", String(64), nullable=True),
    Column("decided_by", String(128), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    # Revision 0005: the console's queue pages through open items in raised order, by kind or
    # platform or neither, with a keyset (raised_at, review_id): each page is an index range.
    Index("ix_review_items_queue", "status", "raised_at", "review_id"),
    Index("ix_review_items_queue_kind", "status", "kind", "raised_at", "review_id"),
    Index("ix_review_items_queue_platform", "status", "platform", "raised_at", "review_id"),
    Index("ix_review_items_event", "event_id"),
)

data_quality = Table(
    "data_quality",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("reason", String(32), primary_key=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(256), nullable=False),
    Column("tombstone", Boolean, nullable=False, default=False),
)
