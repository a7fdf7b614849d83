"""Operator commands for identity: ``bridge review list|show|link|reject`` and ``bridge explain``.

Reading commands read the registry (``BRIDGE_DATABASE_URL``) through the store's repositories, in
one reader unit of work (:mod:`bridge.store.uow`). Decisions are not written to the
database here: they are published to ``bridge.decisions.v1`` and applied by the workers through
the same pipeline as every event, so they are ordered, applied once, and replayed with the rest.
Nothing printed here contains a resident ID, name or phone: only accounts, learner ids, event
ids and the kinds of evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from bridge.core.decisions import DecisionAction
from bridge.core.identity import NAME_MOBILE, AccountKey
from bridge.core.signing import (
    OPERATOR_ID,
    generate_private_key,
    key_id_of,
    private_key_pem,
    public_text,
)
from bridge.commands.decide import DecisionRequest, decision_producer, prepare, publish, review_of, signing_key
from bridge.errors import BridgeError
from bridge.settings import Settings
from bridge.store.base import as_utc
from bridge.store.engine import require_existing
from bridge.store.reviews import StoredReview
from bridge.store.uow import UnitOfWork
from topics.catalogue import DECISIONS

EVIDENCE_NAMES = {
    "RESIDENT_ID": "resident ID",
    "PASSPORT": "passport",
    "HK_MACAO_TAIWAN_PERMIT": "HK/Macao/Taiwan permit",
    NAME_MOBILE: "name and mobile",
}


def register(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="identity decisions waiting for an operator")
    rsub = review.add_subparsers(dest="review_command", required=True)
    listing = rsub.add_parser("list", help="review items (open ones by default)")
    listing.add_argument("--all", action="store_true", help="include decided items")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(fn=cmd_review_list)
    show = rsub.add_parser("show", help="one review item with its candidates")
    show.add_argument("review_id")
    show.set_defaults(fn=cmd_review_show)
    link = rsub.add_parser("link", help="decide that the account belongs to one of the candidates")
    link.add_argument("review_id")
    link.add_argument("--learner", required=True, help="the learner id the account joins")
    link.add_argument("--by", required=True, help="your operator id (recorded with the decision)")
    link.add_argument("--note", help="why (kept with the decision; no personal data)")
    link.set_defaults(fn=cmd_review_link)
    reject = rsub.add_parser("reject", help="decide that the account belongs to none of the candidates")
    reject.add_argument("review_id")
    reject.add_argument("--by", required=True, help="your operator id (recorded with the decision)")
    reject.add_argument("--note", help="why (kept with the decision; no personal data)")
    reject.set_defaults(fn=cmd_review_reject)
    keygen = rsub.add_parser(
        "keygen",
        help="make an operator's signing key (decisions are signed with it; the workers trust its public half)",
    )
    keygen.add_argument("--operator", required=True, help="the operator id the key speaks for (`--by` of decisions)")
    keygen.add_argument("--out", required=True, help="file to write the private key to (created, mode 0600)")
    keygen.set_defaults(fn=cmd_review_keygen)

    explain = sub.add_parser("explain", help="why accounts belong together (no personal data shown)")
    explain.add_argument("subject", help="a learner id (lrn_...) or an account as PLATFORM:ACCOUNT")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(fn=cmd_explain)


def _reading(settings: Settings) -> UnitOfWork:
    """A reader unit of work on the configured registry."""
    from bridge.bootstrap import build_units

    # Never create a registry: a mistyped SQLite path must not leave an empty database behind.
    require_existing(settings.database_url)
    return build_units(settings).reader()()


def _fmt(at: datetime | None) -> str:
    return as_utc(at).isoformat().replace("+00:00", "Z") if at else "-"


def _review(uow: UnitOfWork, review_id: str) -> StoredReview:
    return review_of(uow, review_id)


def cmd_review_list(args: argparse.Namespace) -> int:
    with _reading(Settings()) as uow:
        rows = uow.reviews.reviews(open_only=not args.all)
    items = [
        {
            "review_id": r.review_id,
            "kind": r.kind,
            "status": r.status,
            "account": f"{r.platform}:{r.account}",
            "candidates": list(r.candidates),
            "raised_at": _fmt(r.raised_at),
        }
        for r in rows
    ]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("no review items" if args.all else "no open review items")
        return 0
    for item in items:
        print(
            f"{item['review_id']}  {item['kind']:<21} {item['status']:<8} {item['account']:<24} "
            f"raised {item['raised_at']}  candidates: {', '.join(item['candidates'])}"
        )
    return 0


def cmd_review_show(args: argparse.Namespace) -> int:
    with _reading(Settings()) as uow:
        row = _review(uow, args.review_id)
        print(f"review {row.review_id}: {row.kind} ({row.status})")
        print(f"raised by {row.platform}:{row.account} at {_fmt(row.raised_at)} (event {row.event_id})")
        if row.decided_by:
            print(f"decided by {row.decided_by} at {_fmt(row.decided_at)} (decision {row.decision_id})")
        print("the account:")
        _print_accounts(uow, [AccountKey(row.platform, row.account)], indent="  ")
        for candidate in row.candidates:
            print(f"candidate {candidate}:")
            _print_accounts(uow, uow.identity.accounts_of(candidate), indent="  ")
    return 0


def _print_accounts(uow: UnitOfWork, keys: list[AccountKey], indent: str) -> None:
    evidence = uow.identity.evidence_of(keys)
    stored = uow.identity.accounts(keys)
    for key in keys:
        row = stored.get(key)
        if row is None:
            print(f"{indent}{key.platform}:{key.account} (not seen yet)")
            continue
        kinds = sorted({EVIDENCE_NAMES.get(e.kind, e.kind) for e in evidence[key]}) or ["no identity evidence"]
        print(
            f"{indent}{key.platform}:{key.account} -> {row.learner_id} by {row.method} "
            f"(since {_fmt(row.linked_at)}, event {row.event_id}); evidence: {', '.join(kinds)}"
        )


def cmd_review_keygen(args: argparse.Namespace) -> int:
    if not OPERATOR_ID.fullmatch(args.operator):
        raise BridgeError("--operator: letters, digits and . _ @ - only, at most 128 characters")
    out = Path(args.out)
    private = generate_private_key()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BridgeError(f"{out} exists: a signing key is never overwritten; choose another --out") from None
    except OSError as exc:
        raise BridgeError(f"cannot create {out} ({exc.strerror})") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(private))
    public = private.public_key()
    print(f"wrote the signing key of {args.operator} to {out} (keep it private; set BRIDGE_OPERATOR_SIGNING_KEY={out})")
    print(f"key id {key_id_of(public)}; add this line to the workers' BRIDGE_OPERATOR_KEYS file:")
    print(f"{args.operator} {public_text(public)}")
    return 0


def _decide(args: argparse.Namespace, action: DecisionAction) -> int:
    from kafka import errors as kafka_errors

    from bridge.tools.connection import kafka_failure

    settings = Settings()
    private = signing_key(settings.operator_signing_key, args.by, settings.operator_keys,
                          variable="BRIDGE_OPERATOR_SIGNING_KEY")
    request = DecisionRequest(args.review_id, action, learner=getattr(args, "learner", None), note=args.note)
    with _reading(settings) as uow:
        decision = prepare(uow, request, args.by).signed_with(private)
    started = time.monotonic()
    try:
        prod = decision_producer(settings)
    except kafka_errors.KafkaError as exc:
        failure = kafka_failure(exc, started)
        failure.args = (f"the decision was not published: {failure}; then try again",)
        raise failure from None
    try:
        publish(prod, [decision])
    finally:
        prod.close(timeout=5)
    print(f"decision {decision.decision_id} ({action.value}) published on {DECISIONS.name}; the workers apply it next")
    return 0


def cmd_review_link(args: argparse.Namespace) -> int:
    return _decide(args, DecisionAction.LINK)


def cmd_review_reject(args: argparse.Namespace) -> int:
    return _decide(args, DecisionAction.REJECT)


def explain(uow: UnitOfWork, subject: str) -> dict[str, object]:
    """Why the accounts of a learner belong together, as data (no personal values)."""
    if ":" in subject and not subject.startswith("lrn_"):
        platform, account = subject.split(":", 1)
        learner_id = uow.identity.learner_of(AccountKey(platform, account))
        if learner_id is None:
            raise BridgeError(f"no account {subject}; accounts are written PLATFORM:ACCOUNT, e.g. union:GH2101000123")
    else:
        learner_id = subject
    chain = uow.learners.merge_chain(learner_id)
    if not chain:
        raise BridgeError(f"no learner {learner_id}")
    live = chain[-1]
    keys = uow.identity.accounts_of(live)
    evidence = uow.identity.evidence_of(keys)
    holders: dict[tuple[str, str], list[AccountKey]] = defaultdict(list)
    for key, rows in evidence.items():
        for r in rows:
            holders[(r.kind, r.digest)].append(key)
    stored = uow.identity.accounts(keys)
    accounts = []
    for key in keys:
        row = stored[key]
        accounts.append(
            {
                "account": f"{key.platform}:{key.account}",
                "method": row.method,
                "linked_at": _fmt(row.linked_at),
                "event_id": row.event_id,
                "first_event": row.first_event_id,
                "evidence": [
                    {
                        "kind": EVIDENCE_NAMES.get(r.kind, r.kind),
                        "first_seen": _fmt(r.first_at),
                        "event_id": r.first_event_id,
                        "shared_with": [f"{k.platform}:{k.account}" for k in holders[(r.kind, r.digest)] if k != key],
                        "key_id": r.key_id,
                    }
                    for r in sorted(evidence[key], key=lambda r: (r.kind, r.first_at))
                ],
            }
        )
    merged = uow.learners.merged_from(live)
    # Every decision that bears on an account of the learner: on its own review items, or naming
    # one of its accounts as the anchor another account was linked to.
    decisions = uow.decisions.touching(keys)
    return {
        "subject": subject,
        "learner_id": live,
        "merge_chain": chain,
        "merged_from": sorted(merged),
        "accounts": accounts,
        "decisions": [
            {"decision_id": d.decision_id, "review_id": d.review_id, "action": d.action,
             "account": f"{d.account.platform}:{d.account.account}",
             "anchor": f"{d.anchor.platform}:{d.anchor.account}" if d.anchor else None,
             "decided_by": d.decided_by, "decided_at": _fmt(d.decided_at),
             "signed_with": d.key_id, "note": d.note}
            for d in decisions
        ],
    }


def cmd_explain(args: argparse.Namespace) -> int:
    with _reading(Settings()) as uow:
        report = explain(uow, args.subject)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    chain = report["merge_chain"]
    if len(chain) > 1:
        print(f"{chain[0]} was merged into {' -> '.join(chain[1:])}")
    print(f"learner {report['learner_id']} has {len(report['accounts'])} account(s):")
    for account in report["accounts"]:
        print(f"  {account['account']}: linked by {account['method']} at {account['linked_at']} (event {account['event_id']})")
        for ev in account["evidence"]:
            shared = f", shared with {', '.join(ev['shared_with'])}" if ev["shared_with"] else ""
            print(f"    {ev['kind']} first seen {ev['first_seen']} in event {ev['event_id']}{shared}")
    if report["merged_from"]:
        print(f"learners merged into it: {', '.join(report['merged_from'])}")
    for d in report["decisions"]:
        target = f" to {d['anchor']}" if d["anchor"] else ""
        signed = f", signed with {d['signed_with']}" if d["signed_with"] else ", unsigned (before signatures)"
        print(f"operator decision {d['decision_id']} on review {d['review_id']}: {d['action']} {d['account']}{target} "
              f"by {d['decided_by']} at {d['decided_at']}{signed}")
    return 0
