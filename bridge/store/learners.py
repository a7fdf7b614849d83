"""Learners: who they are now (live, or merged into another), and their published identities."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from bridge.core.records import AccountRef, LearnerIdentity, Link, LinkMethod
from bridge.core.versions import identity_version
from bridge.store import schema as t
from bridge.store.base import Repository, as_utc, bulk_insert, chunks, members
from bridge.store.outbox import OutboxRepository
from topics.catalogue import LEARNER_IDENTITIES

_NEW_IDENTITY = (
    update(t.learners)
    .where(t.learners.c.learner_id == bindparam("b_learner"))
    .values(state=bindparam("b_state"), version=bindparam("b_version"), value=bindparam("b_value"))
)


class LearnerRepository(Repository):
    """Learners, their merges, and their identities as published."""

    def __init__(self, conn: Connection, outbox: OutboxRepository) -> None:
        super().__init__(conn)
        #: Where each changed identity is queued for publication, in the same transaction.
        self.outbox = outbox

    def ensure_live_learners(self, learner_ids: Iterable[str]) -> None:
        """Create these learners, or bring back the ones that had been merged away."""
        ids = sorted(set(learner_ids))
        merged_into: dict[str, str | None] = {}
        for chunk in chunks(ids):
            for r in self.conn.execute(
                select(t.learners.c.learner_id, t.learners.c.merged_into).where(members(t.learners.c.learner_id, chunk, self.postgres))
            ):
                merged_into[r.learner_id] = r.merged_into
        new = [{"learner_id": lid, "version": 0, "merged_into": None} for lid in ids if lid not in merged_into]
        if new:
            bulk_insert(self.conn, t.learners, new)
        revived = [lid for lid, into in merged_into.items() if into is not None]
        for chunk in chunks(revived):
            self.conn.execute(update(t.learners).where(members(t.learners.c.learner_id, chunk, self.postgres)).values(merged_into=None))

    def retire_learner(self, learner_id: str, survivor: str) -> list[str]:
        """Mark ``learner_id`` merged into ``survivor``; learners merged into it follow (merges compose).

        Returns every learner id whose ``merged_into`` changed.
        """
        followers = self.merged_from(learner_id)
        if followers:
            self.conn.execute(update(t.learners).where(t.learners.c.merged_into == learner_id).values(merged_into=survivor))
        self.conn.execute(update(t.learners).where(t.learners.c.learner_id == learner_id).values(merged_into=survivor))
        return [learner_id, *followers]

    def merged_from(self, learner_id: str) -> list[str]:
        """The learners merged into ``learner_id`` (directly)."""
        return list(
            self.conn.execute(select(t.learners.c.learner_id).where(t.learners.c.merged_into == learner_id)).scalars()
        )

    def live(self, learner_ids: Iterable[str]) -> set[str]:
        """Which of these learners exist and were not merged away."""
        found: set[str] = set()
        for chunk in chunks(sorted(set(learner_ids))):
            # Filtered here, not in SQL: with "merged_into IS NULL" in the query SQLite plans a
            # scan of the merged_into index (nearly every learner) instead of primary-key lookups
            # (measured: 0.27 s of 1.9 s with 100,000 learners).
            rows = self.conn.execute(
                select(t.learners.c.learner_id, t.learners.c.merged_into).where(members(t.learners.c.learner_id, chunk, self.postgres))
            )
            found.update(learner_id for learner_id, merged_into in rows if merged_into is None)
        return found

    def identity_state(self, learner_id: str) -> LearnerIdentity:
        """The learner's identity as published, with its stored version."""
        return self.identity_states([learner_id])[learner_id]

    def identity_states(self, learner_ids: Iterable[str]) -> dict[str, LearnerIdentity]:
        """The identities of these learners as published, with their stored versions."""
        rows, links = self._load_learners(learner_ids)
        return {lid: _identity(lid, row, links[lid], max(row.version, 1)) for lid, row in rows.items()}

    def _load_learners(self, learner_ids: Iterable[str]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        ids = sorted(set(learner_ids))
        rows: dict[str, Any] = {}
        links: dict[str, list[Any]] = {lid: [] for lid in ids}
        for chunk in chunks(ids):
            for r in self.conn.execute(select(t.learners).where(members(t.learners.c.learner_id, chunk, self.postgres))):
                rows[r.learner_id] = r
            for r in self.conn.execute(
                select(t.accounts).where(members(t.accounts.c.learner_id, chunk, self.postgres)).order_by(t.accounts.c.platform, t.accounts.c.account)
            ):
                links[r.learner_id].append(r)
        return rows, links

    def refresh_identity(self, learner_id: str, version: int | None = None) -> bool:
        return self.refresh_identities({learner_id: version}) == 1

    def refresh_identities(self, versions: Mapping[str, int | None]) -> int:
        """Store these learners' identity states; queue each that changed, with its version.

        A version given is the weight of the learner's evidence component
        (:func:`bridge.core.versions.identity_versions`), which rises with every change of its
        identity evidence (accounts, digests, their first sightings) and decisions, and is the same whatever order
        or batches the events came in. Without one, or when it would not rise, the version rises
        by one (:func:`bridge.core.versions.identity_version`). Returns how many identities changed.
        """
        rows, links = self._load_learners(versions)
        changes = []
        for learner_id, row in sorted(rows.items()):
            state = _identity(learner_id, row, links[learner_id], 1).model_dump_json(exclude={"version"})
            version = identity_version(state, versions[learner_id], row.state, row.version, row.merged_into is None)
            if version is None:
                continue
            changes.append({"b_learner": learner_id, "b_state": state, "b_version": version,
                            "b_value": published_identity(state, version)})
        if changes:
            self.conn.execute(_NEW_IDENTITY, changes)
            self.outbox.enqueue_many(LEARNER_IDENTITIES.name, [c["b_learner"] for c in changes])
        return len(changes)

    def live_learner(self, learner_id: str) -> str:
        """The learner ``learner_id`` is now: itself, or where its merges lead."""
        chain = self.merge_chain(learner_id)
        return chain[-1] if chain else learner_id

    def merge_chain(self, learner_id: str) -> list[str]:
        """``learner_id`` and the learners its merges lead to, in turn, ending with the one it is
        now; empty when there is no such learner."""
        chain: list[str] = []
        current = learner_id
        while True:
            row = self.conn.execute(select(t.learners.c.merged_into).where(t.learners.c.learner_id == current)).first()
            if row is None and not chain:
                return chain
            chain.append(current)
            into = None if row is None else row.merged_into
            if into is None or into in chain:
                return chain
            current = into

    def published_identities(self, learner_ids: Iterable[str]) -> dict[str, str]:
        """The published value of each of these learners that exists, a few queries for all of them
        (a learner stored before revision 0002 has its value rebuilt from its rows)."""
        values: dict[str, str] = {}
        rebuild = []
        for chunk in chunks(sorted(set(learner_ids))):
            for row in self.conn.execute(
                select(t.learners.c.learner_id, t.learners.c.value).where(members(t.learners.c.learner_id, chunk, self.postgres))
            ):
                if row.value is None:
                    rebuild.append(row.learner_id)
                else:
                    values[row.learner_id] = row.value
        for learner_id, identity in self.identity_states(rebuild).items():
            values[learner_id] = identity.model_dump_json()
        return values


def published_identity(state: str, version: int) -> str:
    """The published identity: its state (the JSON without ``version``) with ``version`` added.

    ``version`` is the last field of :class:`LearnerIdentity`, so this is exactly the model's own
    ``model_dump_json()``, without building the model a second time.
    """
    return f'{state[:-1]},"version":{version}}}'


def _identity(learner_id: str, row: Any, links: list[Any], version: int) -> LearnerIdentity:
    return LearnerIdentity(
        learner_id=learner_id,
        accounts=[AccountRef(platform=r.platform, account=r.account) for r in links],
        links=[
            Link(
                platform=r.platform,
                account=r.account,
                method=LinkMethod(r.method),
                linked_at=as_utc(r.linked_at),
                event_id=r.event_id,
            )
            for r in links
        ],
        merged_into=row.merged_into,
        version=version,
    )
