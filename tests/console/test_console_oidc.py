"""Sign-in through OpenID Connect against a small provider of the test's own, served on a loopback
port: discovery, keys, an authorize endpoint that sends the browser back with a code, and a token
endpoint that checks the client, the code and its PKCE verifier and returns an RS256 ID token.

The whole flow signs in an operator of the operators file with the file's role; anyone else, and
every answer that does not hold (state, nonce, audience, issuer, expiry, signature, a code used
twice, the provider's own error), is a clear 4xx and no session.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.console.support import ConsoleUnderTest, console_for, empty_registry, serving

CLIENT_ID, CLIENT_SECRET = "bridge-console", "provider-test-secret"
CONSOLE = "http://console.test"


def _key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "provider-1", "use": "sig", "alg": "RS256"})


@dataclass
class Provider:
    """An OpenID provider that signs in ``user`` whenever asked; ``tamper`` changes the next ID
    tokens' claims (``None`` removes one) and ``signing_key`` signs them instead of its own key."""

    key: RSAKey = field(default_factory=_key)
    url: str = ""
    user: str = "sso-reviewer"
    tamper: dict[str, Any] = field(default_factory=dict)
    signing_key: RSAKey | None = None
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self.metadata),
            Route("/jwks", self.jwks),
            Route("/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"]),
        ])

    async def metadata(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize", "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks", "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
        })

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["client_id"] == CLIENT_ID and q["response_type"] == "code" and "openid" in q["scope"].split()
        assert q["redirect_uri"] == f"{CONSOLE}/oidc/callback" and q["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": q["nonce"], "redirect_uri": q["redirect_uri"], "challenge": q["code_challenge"],
                            "user": self.user}
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", status_code=302)

    async def token(self, request: Request) -> Response:
        # Parsed by hand: Starlette's request.form() needs python-multipart, which the bridge does not install.
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        self.token_requests.append(form)
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued = self.codes.pop(form.get("code", ""), None)  # a code is good once
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
        if (issued is None or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != issued["redirect_uri"] or challenge != issued["challenge"]):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {"iss": self.url, "sub": f"subject-{issued['user']}", "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                  "nonce": issued["nonce"], "preferred_username": issued["user"]}
        claims.update(self.tamper)
        claims = {k: v for k, v in claims.items() if v is not None}
        id_token = jwt.encode({"alg": "RS256", "kid": "provider-1"}, claims, self.signing_key or self.key)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token})


@pytest.fixture(scope="module")
def served() -> Iterator[Provider]:
    provider = Provider()
    with serving(provider.app()) as url:
        provider.url = url
        yield provider


@pytest.fixture
def provider(served: Provider) -> Provider:
    served.user, served.tamper, served.signing_key = "sso-reviewer", {}, None
    return served


@pytest.fixture
def console(tmp_path, provider: Provider) -> ConsoleUnderTest:
    operators = tmp_path / "operators-file"
    operators.write_text("# signs in only through the provider\nsso-reviewer reviewer -\nsso-viewer viewer -\n")
    return console_for(tmp_path, empty_registry(tmp_path), console_operators=operators, console_oidc_issuer=provider.url,
                       console_oidc_client_id=CLIENT_ID, console_oidc_client_secret=CLIENT_SECRET)


def to_provider_and_back(console: ConsoleUnderTest, provider: Provider) -> str:
    """``/oidc/start``, then the provider's authorize page as a browser would follow it: the path
    and query the provider sends the browser back to."""
    start = console.client.get("/oidc/start", follow_redirects=False)
    assert start.status_code == 302 and start.headers["location"].startswith(f"{provider.url}/authorize?")
    back = httpx.get(start.headers["location"], follow_redirects=False)
    assert back.status_code == 302 and back.headers["location"].startswith(f"{CONSOLE}/oidc/callback?")
    return back.headers["location"][len(CONSOLE):]


def signed_out(console: ConsoleUnderTest) -> bool:
    answer = console.client.get("/queue", follow_redirects=False)
    return answer.status_code == 303 and answer.headers["location"] == "/signin"


def test_the_provider_signs_in_an_operator_of_the_file_with_the_file_s_role(console, provider) -> None:
    assert 'href="/oidc/start"' in console.client.get("/signin").text
    for user, role, bulk in (("sso-reviewer", "reviewer", 400), ("sso-viewer", "viewer", 403)):
        provider.user = user
        answer = console.client.get(to_provider_and_back(console, provider), follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/queue"
        page = console.client.get("/queue")
        assert page.status_code == 200 and f'id="whoami">{user} ({role})<' in page.text
        # The role is the file's: a reviewer passes the role check (and is told to select items), a viewer does not.
        answer = console.client.post("/reviews/bulk", data={"csrf": console.csrf(), "action": "reject"})
        assert answer.status_code == bulk, user
        assert console.client.post("/signout", data={"csrf": console.csrf()}, follow_redirects=False).status_code == 303
        assert signed_out(console)
    (request, _) = provider.token_requests[-2:]
    assert request["code_verifier"] and request["grant_type"] == "authorization_code"


def test_someone_the_operators_file_does_not_list_is_refused(console, provider) -> None:
    for user in ("mallory", "sso-reviewer\u200b", "x" * 300):
        provider.user = user
        answer = console.client.get(to_provider_and_back(console, provider), follow_redirects=False)
        assert answer.status_code == 403 and "not an operator of this console" in answer.text
        assert user not in answer.text
        assert signed_out(console)


def _other_key() -> RSAKey:
    return _key()  # the provider's key id, another key


@pytest.mark.parametrize("what, tamper", [
    ("a token for another audience", {"aud": "another-client"}),
    ("a token for another audience naming this console its authorized party", {"aud": "another-client", "azp": CLIENT_ID}),
    ("a token for other audiences", {"aud": ["another-client", "a-third-client"], "azp": CLIENT_ID}),
    ("a token without an audience", {"aud": None}),
    ("a token of another issuer", {"iss": "https://issuer.example"}),
    ("a wrong nonce", {"nonce": "not-the-console-s-nonce"}),
    ("no nonce", {"nonce": None}),
    ("an expired token", {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}),
    ("a token signed by another key", "other key"),
])
def test_an_id_token_that_does_not_hold_is_refused(console, provider, what, tamper) -> None:
    if tamper == "other key":
        provider.signing_key = _other_key()
    else:
        provider.tamper = tamper
    answer = console.client.get(to_provider_and_back(console, provider), follow_redirects=False)
    assert answer.status_code == 401 and "answer was refused" in answer.text, what
    assert signed_out(console), what


def test_a_wrong_state_a_replayed_answer_or_the_provider_s_error_is_refused(console, provider) -> None:
    back = to_provider_and_back(console, provider)
    forged = re.sub(r"state=[^&]+", "state=forged", back)
    answer = console.client.get(forged, follow_redirects=False)
    assert answer.status_code == 401 and "answer was refused" in answer.text
    assert signed_out(console)
    # Without the console's session (another browser) the state is unknown too.
    stranger = console_for_same_app(console)
    assert stranger.get(back, follow_redirects=False).status_code == 401

    assert console.client.get(back, follow_redirects=False).status_code == 303  # the genuine answer still works
    console.client.post("/signout", data={"csrf": console.csrf()})
    answer = console.client.get(back, follow_redirects=False)  # the same answer again: its state is spent
    assert answer.status_code == 401 and signed_out(console)

    start = console.client.get("/oidc/start", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    answer = console.client.get(f"/oidc/callback?error=access_denied&state={state}", follow_redirects=False)
    assert answer.status_code == 401 and signed_out(console)


def console_for_same_app(console: ConsoleUnderTest) -> Any:
    from starlette.testclient import TestClient

    return TestClient(console.client.app, base_url=CONSOLE)


def test_a_provider_that_does_not_answer_is_a_503(tmp_path) -> None:
    operators = tmp_path / "operators-file"
    operators.write_text("sso-reviewer reviewer -\n")
    with serving(Starlette()) as url:
        pass  # a port that answered a moment ago and is closed now
    console = console_for(tmp_path, empty_registry(tmp_path), console_operators=operators, console_oidc_issuer=url,
                          console_oidc_client_id=CLIENT_ID, console_oidc_client_secret=CLIENT_SECRET)
    answer = console.client.get("/oidc/start", follow_redirects=False)
    assert answer.status_code == 503 and "does not answer" in answer.text
    assert console.client.get("/oidc/callback?code=x&state=y", follow_redirects=False).status_code == 503


def test_behind_a_proxy_that_ends_tls_the_callback_is_https(tmp_path, provider) -> None:
    operators = tmp_path / "operators-file"
    operators.write_text("sso-reviewer reviewer -\n")
    console = console_for(tmp_path, empty_registry(tmp_path), console_operators=operators, console_oidc_issuer=provider.url,
                          console_oidc_client_id=CLIENT_ID, console_oidc_client_secret=CLIENT_SECRET,
                          console_secure_cookies=True)
    start = console.client.get("/oidc/start", follow_redirects=False)
    assert parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"] == ["https://console.test/oidc/callback"]
