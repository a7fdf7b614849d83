"""What the console's pages show, read from the store in one reader unit of work each.

Only pseudonymous ids, kinds of evidence, methods and times leave this module: evidence digests
are compared here (which candidate shares which kind of evidence with the account under review)
and never handed to a template.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.commands.identity import EVIDENCE_NAMES, explain
from bridge.core.identity import AccountKey
from bridge.store.base import as_utc
from bridge.store.identity import StoredEvidence
from bridge.store.reviews import StoredReview
from bridge.store.uow import UnitOfWork

from bridge.console.forms import QueueQuery, write_cursor


def when(at: datetime | None) -> str:
    """A time as the console writes it: UTC, to the second."""
    moment = as_utc(at)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _kind(name: str) -> str:
    return EVIDENCE_NAMES.get(name, name)


@dataclass
class Candidate:
    learner_id: str
    accounts: list[dict[str, Any]]
    shares: list[str]
    """The kinds of evidence this learner's accounts share with the account under review."""


@dataclass
class Item:
    """A review item with its account, candidates and why, side by side."""

    review: StoredReview
    account_evidence: list[dict[str, str]]
    candidates: list[Candidate]
    account_link: dict[str, str] | None = None
    pending: str | None = None

    @property
    def signature(self) -> str:
        """What the evidence of this item is, as a label: items with the same one may be
        decided together (same kind, same evidence on the account, same sharing by candidates)."""
        mine = sorted({e["kind"] for e in self.account_evidence}) or ["no evidence"]
        shared = sorted(" + ".join(c.shares) or "nothing" for c in self.candidates)
        counts = Counter(shared)
        sharing = ", ".join(f"{n}× {what}" for what, n in sorted(counts.items()))
        return f"{self.review.kind}: account shows {' + '.join(mine)}; candidates share {sharing}"


def _evidence_rows(rows: list[StoredEvidence]) -> list[dict[str, str]]:
    return [
        {"kind": _kind(r.kind), "first_seen": when(r.first_at), "event_id": r.first_event_id}
        for r in sorted(rows, key=lambda r: (r.kind, r.first_at))
    ]


def items(uow: UnitOfWork, reviews: list[StoredReview], pending: dict[str, str]) -> list[Item]:
    """The review items with their evidence and candidates (a few queries per page)."""
    keys = [AccountKey(r.platform, r.account) for r in reviews]
    per_candidate = {c: uow.identity.accounts_of(c) for r in reviews for c in r.candidates}
    every = set(keys) | {k for ks in per_candidate.values() for k in ks}
    evidence = uow.identity.evidence_of(sorted(every, key=lambda k: (k.platform, k.account)))
    stored = uow.identity.accounts(sorted(every, key=lambda k: (k.platform, k.account)))
    result = []
    for review, key in zip(reviews, keys):
        mine = evidence.get(key, [])
        digests = {(e.kind, e.digest) for e in mine}
        candidates = []
        for learner in review.candidates:
            accounts, shares = [], set()
            for ck in per_candidate.get(learner, []):
                theirs = evidence.get(ck, [])
                common = sorted({_kind(e.kind) for e in theirs if (e.kind, e.digest) in digests})
                shares.update(common)
                row = stored.get(ck)
                accounts.append({
                    "account": f"{ck.platform}:{ck.account}",
                    "method": row.method if row else "-",
                    "linked_at": when(row.linked_at) if row else "-",
                    "evidence": _evidence_rows(theirs),
                    "shares": common,
                })
            candidates.append(Candidate(learner, accounts, sorted(shares)))
        row = stored.get(key)
        link = {"learner_id": row.learner_id or "none", "method": row.method or "not linked"} if row else None
        result.append(Item(review, _evidence_rows(mine), candidates, link, pending.get(review.review_id)))
    return result


@dataclass
class QueuePage:
    items: list[Item]
    total: int
    open_by_kind: dict[str, int]
    open_by_platform: dict[str, int]
    previous: dict[str, str] | None = None
    next: dict[str, str] | None = None
    groups: dict[str, int] = field(default_factory=dict)


def queue(uow: UnitOfWork, query: QueueQuery, pending: dict[str, str]) -> QueuePage:
    """One page of the queue, its counts, and the positions of the pages around it."""
    page = uow.reviews.queue_page(query.wanted, limit=query.size + 1, after=query.after, before=query.before,
                                  newest_first=query.newest_first)
    # One more than a page tells whether there is a page beyond, in the direction of travel.
    more = len(page) > query.size
    if query.before is not None:
        page = page[1:] if more else page
    else:
        page = page[: query.size]
    shown = items(uow, page, pending)
    result = QueuePage(shown, uow.reviews.queue_count(query.wanted), uow.reviews.open_by_kind(),
                       uow.reviews.open_by_platform())
    if page:
        first, last = page[0], page[-1]
        forward_more = more if query.before is None else True
        backward_more = (query.after is not None) or (query.before is not None and more)
        if forward_more:
            result.next = query.params(after=write_cursor(last.raised_at, last.review_id))
        if backward_more:
            result.previous = query.params(before=write_cursor(first.raised_at, first.review_id))
    result.groups = dict(Counter(i.signature for i in shown if not i.pending))
    return result


def learner(uow: UnitOfWork, subject: str) -> dict[str, Any]:
    """What ``bridge explain`` shows of a learner or account, with the learner's live credit
    records (their sources and rule) and their totals, as ``bridge transcript`` adds them up."""
    report: dict[str, Any] = explain(uow, subject)
    records = [json.loads(value) for value in uow.ledger.live_records_of(str(report["learner_id"]))]
    by_status = Counter(r["status"] for r in records)
    awarded = sum(r["credits"] for r in records if r["status"] == "AWARDED")
    report["records"] = records
    report["totals"] = {"by_status": dict(sorted(by_status.items())), "awarded_credits": round(awarded, 2)}
    reviews = [r for r in uow.reviews.reviews_by_id(sorted({str(d["review_id"]) for d in report["decisions"]})).values()]
    report["reviews"] = sorted(reviews, key=lambda r: r.raised_at)
    return report
