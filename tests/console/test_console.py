"""The console without a browser (issue 16): the sign-in gate, roles, CSRF, session expiry,
hostile input, no personal data on any page, and decisions signed and published as the CLI does."""

from __future__ import annotations

import re

import pytest

from bridge.core.decisions import parse_decision
from bridge.store.engine import build_engine
from bridge.store.uow import reading
from tests.console.support import NONCE, PASSWORD, console_for, personal_values
from tests.operators import trusted
from topics.catalogue import DECISIONS

PAGES = ["/", "/queue", "/queue?kind=ambiguous_match", "/reviews/rv_x", "/learners", "/learners?subject=lrn_x",
         "/deadletters", "/health", "/no-such-page", "/static/../queue"]
CHANGES = ["/reviews/rv_x/decide", "/reviews/bulk", "/deadletters/replay", "/signout", "/queue"]


@pytest.fixture
def console(tmp_path, registry):
    url, _ = registry
    return console_for(tmp_path, url, console_session_s=3600)


def _open_reviews(url: str):
    engine = build_engine(url)
    try:
        with reading(engine)() as uow:
            return uow.reviews.reviews(open_only=True)
    finally:
        engine.dispose()


def test_before_sign_in_only_the_sign_in_page_answers(console) -> None:
    for path in PAGES:
        answer = console.client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/signin", path
    for path in CHANGES:
        answer = console.client.post(path, data={"x": "1"}, follow_redirects=False)
        assert answer.status_code == 401 and answer.text == "sign in first", path
    page = console.client.get("/signin")
    assert page.status_code == 200 and "Sign in" in page.text and "rv_" not in page.text and "lrn_" not in page.text
    assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert console.client.get("/static/console.css").status_code == 200


def test_a_wrong_password_or_unknown_operator_is_refused_alike(console) -> None:
    for operator, password in (("op-17", "wrong password!"), ("nobody", PASSWORD), ("op-17", "")):
        answer = console.sign_in(operator, password)
        assert answer.status_code == 401 and "unknown operator or wrong password" in answer.text
    assert console.client.get("/queue", follow_redirects=False).status_code == 303
    assert console.sign_in("op-17").status_code == 303
    assert console.client.get("/queue").status_code == 200


def test_sign_in_needs_the_csrf_token_of_its_page(console) -> None:
    answer = console.client.post("/signin", data={"operator": "op-17", "password": PASSWORD}, follow_redirects=False)
    assert answer.status_code == 403


def test_sessions_expire(console) -> None:
    console.sign_in("op-17")
    assert console.client.get("/queue").status_code == 200
    console.clock.now += 3599
    assert console.client.get("/queue", follow_redirects=False).status_code == 200
    console.clock.now += 2
    answer = console.client.get("/queue", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"


def test_sign_out_ends_the_session(console) -> None:
    console.sign_in("op-3")
    assert console.client.post("/signout", data={"csrf": console.csrf()}, follow_redirects=False).status_code == 303
    assert console.client.get("/queue", follow_redirects=False).status_code == 303


def _decide_form(console, review, **extra) -> dict:
    page = console.client.get(f"/reviews/{review.review_id}").text
    nonce = NONCE.search(page)
    form = {"csrf": console.csrf(), "nonce": nonce.group(1) if nonce else "0" * 32, "action": "link",
            "learner": review.candidates[0]}
    form.update(extra)
    return form


def test_every_change_needs_the_session_s_csrf_token(console, registry) -> None:
    review = _open_reviews(registry[0])[0]
    console.sign_in("op-17")
    form = _decide_form(console, review)
    for token in (None, "", "forged", form["csrf"][:-1]):
        changed = {**form, "csrf": token} if token is not None else {k: v for k, v in form.items() if k != "csrf"}
        answer = console.client.post(f"/reviews/{review.review_id}/decide", data=changed, follow_redirects=False)
        assert answer.status_code == 403 and "CSRF" in answer.text
    answer = console.client.post("/reviews/bulk", data={"review_id": review.review_id, "action": "reject"})
    assert answer.status_code == 403
    answer = console.client.post(f"/reviews/{review.review_id}/decide", data=form, follow_redirects=False,
                                 headers={"origin": "http://evil.example"})
    assert answer.status_code == 403
    console.producer.send.assert_not_called()


def test_a_viewer_reads_but_cannot_decide(console, registry) -> None:
    review = _open_reviews(registry[0])[0]
    console.sign_in("op-3")
    page = console.client.get(f"/reviews/{review.review_id}")
    assert page.status_code == 200 and "Your role is viewer" in page.text and 'id="reject"' not in page.text
    answer = console.client.post(f"/reviews/{review.review_id}/decide",
                                 data={**_decide_form(console, review)}, follow_redirects=False)
    assert answer.status_code == 403 and "viewer" in answer.text
    console.producer.send.assert_not_called()


def test_a_decision_is_signed_by_the_operator_and_published_once_per_form(console, registry) -> None:
    review = next(r for r in _open_reviews(registry[0]) if r.kind == "ambiguous_match")
    console.sign_in("op-17")
    form = _decide_form(console, review, note="same person, checked by phone")
    first = console.client.post(f"/reviews/{review.review_id}/decide", data=form, follow_redirects=False)
    assert first.status_code == 303
    # The same form again (a double click, a replayed request) is the same decision id: applied once.
    console.client.post(f"/reviews/{review.review_id}/decide", data=form, follow_redirects=False)
    sent = console.producer.send.call_args_list
    assert [c.args[0] for c in sent] == [DECISIONS.name] * 2
    one, two = (parse_decision(c.kwargs["value"]) for c in sent)
    assert one.decision_id == two.decision_id and one.decided_by == "op-17" and one.review_id == review.review_id
    assert one.action.value == "link" and one.note == "same person, checked by phone"
    assert trusted().fault(one.signed_fields(), one.decided_by, one.decided_at) is None
    queue = console.client.get("/queue").text
    assert "signed as op-17 and published" in queue and "decided, waiting for the worker" in queue


def test_a_link_to_a_learner_that_is_not_a_candidate_is_refused(console, registry) -> None:
    review = _open_reviews(registry[0])[0]
    console.sign_in("op-17")
    answer = console.client.post(f"/reviews/{review.review_id}/decide",
                                 data=_decide_form(console, review, learner="lrn_notacandidate"))
    assert answer.status_code == 409 and "is not a candidate" in answer.text
    console.producer.send.assert_not_called()


def test_items_decided_together_must_have_the_same_evidence(console, registry) -> None:
    reviews = _open_reviews(registry[0])
    kinds = {r.kind: r for r in reviews}
    assert len(kinds) == 2, "the review cases raise one item of each kind"
    console.sign_in("op-17")
    page = console.client.get("/queue").text
    form = {"csrf": console.csrf(), "nonce": NONCE.search(page).group(1), "action": "reject",
            "review_id": [r.review_id for r in kinds.values()]}
    answer = console.client.post("/reviews/bulk", data=form)
    assert answer.status_code == 400 and "do not have the same evidence" in answer.text
    one = next(iter(kinds.values()))
    assert console.client.post("/reviews/bulk", data={**form, "review_id": [one.review_id]},
                               follow_redirects=False).status_code == 303
    assert [parse_decision(c.kwargs["value"]).review_id for c in console.producer.send.call_args_list] == [one.review_id]


HOSTILE_QUERIES = ["kind=%00", "kind=nope", "platform=mars", "older_than_h=-1", "older_than_h=1e9", "size=100000",
                   "sort=random", "after=garbage", "after=2024-01-01T00:00:00~rv_%00", "event=%ED%A0%80",
                   "event=" + "x" * 5000, "after=2024-01-01T00:00:00%2B00:00~a&before=2024-01-01T00:00:00%2B00:00~b"]


def test_hostile_input_is_a_clear_4xx_and_the_console_keeps_answering(console, registry) -> None:
    review = _open_reviews(registry[0])[0]
    console.sign_in("op-17")
    for query in HOSTILE_QUERIES:
        answer = console.client.get(f"/queue?{query}")
        assert answer.status_code == 400 and 'id="error"' in answer.text, query
    for subject in ("%00", "lrn_%ED%A0%80", "x" * 300, "nobody", "union:NOSUCH"):
        assert console.client.get(f"/learners?subject={subject}").status_code in (400, 404), subject
    assert console.client.get("/reviews/rv_%00").status_code == 400
    assert console.client.get("/reviews/rv_" + "a" * 100).status_code == 400
    url = f"/reviews/{review.review_id}/decide"
    form = _decide_form(console, review)
    bodies = {
        "NUL in the note": ({**form, "note": "a\x00b"}, 400),
        "a control character in the learner": ({**form, "learner": "lrn_\x1b[2J"}, 400),
        "an unknown action": ({**form, "action": "merge"}, 400),
        "an overlong note": ({**form, "note": "n" * 1001}, 400),
        "a field given twice": ({**form, "action": ["link", "reject"]}, 400),
        "a bad nonce": ({**form, "nonce": "../../"}, 400),
    }
    for what, (data, status) in bodies.items():
        answer = console.client.post(url, data=data)
        assert answer.status_code == status, what
    raw = {
        "a lone surrogate, percent-encoded": (b"csrf=" + form["csrf"].encode() + b"&note=%ED%A0%80", 400),
        "bytes that are not URL-encoded": ("note=é".encode(), 400),
        "a megabyte form": (b"note=" + b"a" * 1_000_000, 413),
        "too many fields": (b"&".join(b"f%d=1" % i for i in range(500)), 400),
    }
    for what, (body, status) in raw.items():
        answer = console.client.post(url, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
        assert answer.status_code == status, what
    answer = console.client.post(url, content=b"{}", headers={"content-type": "application/json"})
    assert answer.status_code == 415
    bad_sign_in = console.client.post("/signin", content=b"password=" + b"p" * 70_000,
                                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert bad_sign_in.status_code == 413
    console.producer.send.assert_not_called()
    assert console.client.get("/queue").status_code == 200


def test_no_page_shows_a_personal_value(console, registry) -> None:
    url, messages = registry
    personal = personal_values(messages)
    assert len(personal) > 100
    console.sign_in("op-3")
    reviews = _open_reviews(url)
    pages = ["/queue", "/queue?sort=newest&size=100", "/health"]
    pages += [f"/reviews/{r.review_id}" for r in reviews]
    pages += [f"/learners?subject={c}" for r in reviews for c in r.candidates]
    pages += [f"/learners?subject={r.platform}:{r.account}" for r in reviews]
    texts = []
    for path in pages:
        answer = console.client.get(path)
        assert answer.status_code == 200, path
        texts.append(answer.text)
    assert any("ambiguous_match" in t for t in texts) and any("name and mobile" in t for t in texts)
    leaked = {(p, value) for p, t in zip(pages, texts) for value in personal if value in t}
    assert not leaked


def test_the_queue_pages_through_every_item_once(console, registry) -> None:
    console.sign_in("op-3")
    expected = {r.review_id for r in _open_reviews(registry[0])}
    for sort in ("oldest", "newest"):
        seen, path = [], f"/queue?size=25&sort={sort}"
        while path:
            text = console.client.get(path).text
            seen += re.findall(r'data-review="([^"]+)"', text)
            link = re.search(r'href="(/queue\?[^"]+)" id="next"', text)
            path = link.group(1).replace("&amp;", "&") if link else None
        assert sorted(seen) == sorted(expected), sort
    filtered = console.client.get("/queue?kind=conflicting_document").text
    assert re.search(r'id="total">(\d+)<', filtered).group(1) == "1"


def test_behind_a_proxy_that_ends_tls_the_https_origin_is_the_console_s_own(tmp_path, registry) -> None:
    # The console hears http://console.test; with HTTPS-only cookies the browser is on https.
    for secure in (True, False):
        (tmp_path / str(secure)).mkdir()
        console = console_for(tmp_path / str(secure), registry[0], console_secure_cookies=secure)
        for origin, own in (("http://console.test", True), ("https://console.test", secure),
                            ("https://evil.example", False), ("https://console.test:8443", False), ("null", False)):
            answer = console.client.post("/signout", data={"x": "1"}, headers={"origin": origin}, follow_redirects=False)
            expected = (401, "sign in first") if own else (403, "cross-origin change refused")
            assert (answer.status_code, answer.text) == expected, (secure, origin)
