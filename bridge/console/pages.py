"""The console's pages: sign-in, the review queue and its items, decisions, learners, dead
letters and health. Each handler checks its inputs (:mod:`bridge.console.forms`), reads through
one reader unit of work in a thread, and renders a template; a change needs the session's CSRF
token, and a decision the ``reviewer`` role."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.commands.decide import DecisionRequest, decide
from bridge.console import forms, health, views
from bridge.console.app import HERE, Console
from bridge.console.auth import MAX_PASSWORD, Operator, Session, new_csrf, same_token, verify_password
from bridge.core.decisions import DecisionAction
from bridge.errors import BridgeError

when = views.when


def _console(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    me: Operator | None = getattr(request.state, "operator", None)
    session: Session | None = getattr(request.state, "session", None)
    flash = request.session.pop("flash", None) if me else None
    context.update(me=me, csrf=session.csrf if session else request.session.get("csrf"), flash=flash,
                   nonce=secrets.token_hex(16))
    response: Response = request.app.state.templates.TemplateResponse(request, template, context, status_code=status)
    return response


async def changed_form(request: Request, *, reviewer: bool = True) -> dict[str, list[str]]:
    """The form of a change, once its CSRF token matches the session's (and the operator may decide)."""
    fields = await forms.read_form(request)
    session: Session | None = getattr(request.state, "session", None)
    expected = session.csrf if session else request.session.get("csrf")
    if not same_token(forms.one(fields, "csrf", required=False), expected):
        raise forms.FormError("the form's CSRF token is missing or wrong: reload the page and try again", 403)
    me: Operator | None = getattr(request.state, "operator", None)
    if reviewer and (me is None or not me.may_decide):
        raise forms.FormError("your role is viewer: only reviewers decide and replay", 403)
    return fields


# -- sign-in ------------------------------------------------------------------------------------


async def signin_page(request: Request) -> Response:
    if getattr(request.state, "operator", None) is not None:
        return RedirectResponse("/queue", status_code=303)
    if "csrf" not in request.session:
        request.session["csrf"] = new_csrf()
    return render(request, "signin.html", oidc=_console(request).oidc is not None)


async def signin(request: Request) -> Response:
    console = _console(request)
    fields = await changed_form(request, reviewer=False)
    name = forms.text(forms.one(fields, "operator", required=False), "operator", limit=128) or ""
    password = forms.one(fields, "password", required=False) or ""
    if len(password) > MAX_PASSWORD:
        raise forms.FormError(f"password: at most {MAX_PASSWORD} characters")
    operator = console.operators.get(name)
    # The hash is checked even for an unknown operator, so that the answer takes as long.
    matches = await run_in_threadpool(verify_password, password, operator.password_hash if operator else None)
    if operator is None or not matches:
        request.session["csrf"] = request.session.get("csrf") or new_csrf()
        return render(request, "signin.html", 401, error="unknown operator or wrong password", oidc=console.oidc is not None)
    start_session(request, operator.name)
    return RedirectResponse("/queue", status_code=303)


def start_session(request: Request, operator: str) -> None:
    """A new session for ``operator``: a fresh cookie and CSRF token, expiring after the configured time."""
    console = _console(request)
    request.session.clear()
    request.session.update(Session(operator, console.clock() + console.settings.console_session_s, new_csrf()).as_cookie())


async def signout(request: Request) -> Response:
    await changed_form(request, reviewer=False)
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


# -- the review queue ---------------------------------------------------------------------------


async def home(request: Request) -> Response:
    return RedirectResponse("/queue", status_code=303)


async def queue(request: Request) -> Response:
    console = _console(request)
    query = forms.queue_query(forms.query(request), datetime.now(timezone.utc))

    def read() -> views.QueuePage:
        with console.readers() as uow:
            return views.queue(uow, query, _pending(console, uow))

    page = await run_in_threadpool(read)
    return render(request, "queue.html", page=page, query=query, kinds=sorted(page.open_by_kind),
                  platforms=_platforms())


def _platforms() -> tuple[str, ...]:
    from bridge.core import platforms

    return platforms.names()


def _pending(console: Console, uow: Any) -> dict[str, str]:
    """This console's published decisions whose items the workers have not settled yet."""
    if console.pending:
        settled = [rid for rid, r in uow.reviews.reviews_by_id(list(console.pending)).items() if r.status != "open"]
        for rid in settled:
            console.pending.pop(rid, None)
    return dict(console.pending)


async def item(request: Request) -> Response:
    console = _console(request)
    review_id = forms.review_id(request.path_params["review_id"])

    def read() -> views.Item | None:
        with console.readers() as uow:
            review = uow.reviews.review(review_id)
            return None if review is None else views.items(uow, [review], _pending(console, uow))[0]

    shown = await run_in_threadpool(read)
    if shown is None:
        raise forms.FormError(f"no review item {review_id}", 404)
    return render(request, "item.html", item=shown)


def _decision_id(operator: str, review_id: str, nonce: str) -> str:
    # The same form sent twice is the same decision: the workers apply a decision id once.
    return "dc_" + hashlib.sha256(f"{operator}\n{review_id}\n{nonce}".encode()).hexdigest()[:32]


async def decide_one(request: Request) -> Response:
    review_id = forms.review_id(request.path_params["review_id"])
    fields = await changed_form(request)
    return await _decide(request, fields, [review_id])


async def decide_many(request: Request) -> Response:
    fields = await changed_form(request)
    ids = [forms.review_id(v, "selected item") for v in fields.get("review_id", [])]
    if not ids:
        raise forms.FormError("select at least one item")
    if len(ids) > forms.MAX_BULK or len(set(ids)) != len(ids):
        raise forms.FormError(f"select at most {forms.MAX_BULK} different items")
    return await _decide(request, fields, ids, bulk=True)


async def _decide(request: Request, fields: dict[str, list[str]], ids: list[str], *, bulk: bool = False) -> Response:
    console = _console(request)
    me: Operator = request.state.operator
    action_text = forms.one(fields, "action")
    if action_text not in ("link", "reject"):
        raise forms.FormError("action: link or reject")
    action = DecisionAction(action_text)
    learner = forms.text(forms.one(fields, "learner", required=action is DecisionAction.LINK), "learner",
                         limit=64, pattern=forms.LEARNER_ID, what="a learner id, lrn_...")
    note = forms.note(forms.one(fields, "note", required=False))
    nonce = forms.text(forms.one(fields, "nonce"), "nonce", limit=32, pattern=forms.NONCE, what="reload the page")
    assert nonce is not None
    requests = [DecisionRequest(rid, action, learner=learner if action is DecisionAction.LINK else None, note=note,
                                decision_id=_decision_id(me.name, rid, nonce)) for rid in ids]
    key = await run_in_threadpool(console.key_of, me.name)

    def publish() -> list[str]:
        with console.readers() as uow:
            if bulk:
                found = uow.reviews.reviews_by_id(ids)
                shown = views.items(uow, [found[i] for i in ids if i in found], {})
                if len(shown) != len(ids) or len({i.signature for i in shown}) != 1:
                    raise forms.FormError("these items do not have the same evidence: decide them one by one")
            done = decide(uow, requests, me.name, key, console.producer())
        for d in done:
            console.pending[d.review_id] = d.decision_id
        return [d.decision_id for d in done]

    published = await run_in_threadpool(publish)
    what = f"{len(published)} decisions" if bulk else f"decision {published[0]}"
    request.session["flash"] = f"{what} ({action.value}) signed as {me.name} and published; the workers apply it next"
    back = fields.get("back", ["/queue"])[0]
    return RedirectResponse(back if back.startswith("/queue") and len(back) < 2000 else "/queue", status_code=303)


# -- learners, dead letters, health ---------------------------------------------------------------


async def learner(request: Request) -> Response:
    console = _console(request)
    subject = forms.text(forms.query(request).get("subject") or None, "subject", limit=200)
    if subject is None:
        return render(request, "learner.html", report=None, subject="")
    if not (forms.LEARNER_ID.fullmatch(subject) or (":" in subject and not subject.startswith("lrn_"))):
        raise forms.FormError("subject: a learner id (lrn_...) or an account as PLATFORM:ACCOUNT")

    def read() -> dict[str, Any]:
        with console.readers() as uow:
            try:
                return views.learner(uow, subject)
            except BridgeError as exc:  # no such learner or account
                raise forms.FormError(str(exc), 404) from None

    report = await run_in_threadpool(read)
    return render(request, "learner.html", report=report, subject=subject)


async def deadletters(request: Request) -> Response:
    summary = await run_in_threadpool(health.dead_letters, _console(request).settings)
    return render(request, "deadletters.html", summary=summary)


async def replay(request: Request) -> Response:
    fields = await changed_form(request)
    code = forms.text(forms.one(fields, "reason_code"), "reason_code", limit=64, pattern=forms.REASON_CODE,
                      what="a reason code")
    assert code is not None
    lines = await run_in_threadpool(health.replay, _console(request).settings, code)
    request.session["flash"] = "; ".join(lines)[:2000]
    return RedirectResponse("/deadletters", status_code=303)


async def health_page(request: Request) -> Response:
    console = _console(request)
    workers = await health.workers(console.settings)

    def read() -> tuple[dict[str, int], dict[str, int]]:
        with console.readers() as uow:
            return uow.reviews.open_by_kind(), uow.reviews.open_by_platform()

    by_kind, by_platform = await run_in_threadpool(read)
    return render(request, "health.html", workers=workers, by_kind=by_kind, by_platform=by_platform)


async def stylesheet(request: Request) -> Response:
    return Response((HERE / "static" / "console.css").read_bytes(), media_type="text/css")


def routes() -> list[Route]:
    return [
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        Route("/queue", queue, methods=["GET"]),
        Route("/reviews/bulk", decide_many, methods=["POST"]),
        Route("/reviews/{review_id}", item, methods=["GET"]),
        Route("/reviews/{review_id}/decide", decide_one, methods=["POST"]),
        Route("/learners", learner, methods=["GET"]),
        Route("/deadletters", deadletters, methods=["GET"]),
        Route("/deadletters/replay", replay, methods=["POST"]),
        Route("/health", health_page, methods=["GET"]),
        Route("/static/console.css", stylesheet, methods=["GET"]),
    ]
