"""Sign-in through an OpenID Connect provider (production), with Authlib's Starlette client.

``/oidc/start`` sends the operator to the provider (authorization code flow, with state and
nonce kept in the session); ``/oidc/callback`` takes the code back, has Authlib check the ID
token (signature by the provider's keys, issuer, audience, nonce, expiry), and signs in the
operator named by the ``BRIDGE_CONSOLE_OIDC_USERNAME_CLAIM`` claim, if the operators file lists
them: the file gives the role, the provider only says who it is.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.console.auth import Operator
from bridge.console.forms import FormError
from bridge.core.signing import OPERATOR_ID
from bridge.settings import Settings

log = logging.getLogger("bridge.console")


def client(settings: Settings) -> Any:
    """The provider's client, or ``None`` when OpenID Connect is not configured."""
    if not settings.console_oidc_issuer:
        return None
    from authlib.integrations.starlette_client import OAuth

    if not settings.console_oidc_client_id:
        from bridge.errors import ConfigurationError

        raise ConfigurationError("BRIDGE_CONSOLE_OIDC_ISSUER is set: set BRIDGE_CONSOLE_OIDC_CLIENT_ID too")
    oauth = OAuth()
    secret = settings.console_oidc_client_secret
    return oauth.register(
        name="operators",
        server_metadata_url=settings.console_oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_id=settings.console_oidc_client_id,
        client_secret=secret.get_secret_value() if secret is not None else None,
        # PKCE besides state and nonce: a code that leaks (a log, a referrer) is useless without the verifier.
        client_kwargs={"scope": "openid profile", "code_challenge_method": "S256"},
    )


async def start(request: Request) -> Response:
    import httpx

    console = request.app.state.console
    provider = console.oidc
    if provider is None:
        raise FormError("sign-in through OpenID Connect is not configured", 404)
    back = str(request.url_for("oidc_callback"))
    if console.secure and back.startswith("http://"):
        back = "https://" + back[len("http://"):]  # behind a proxy that ends TLS: the URI registered is https
    try:
        return await provider.authorize_redirect(request, back)  # type: ignore[no-any-return]
    except (httpx.HTTPError, ValueError) as exc:  # its metadata: no answer, an error status, not JSON
        log.warning("console: the OpenID provider's metadata could not be read (%s)", exc.__class__.__name__)
        raise FormError("the identity provider does not answer; try again later", 503) from None


async def callback(request: Request) -> Response:
    import httpx
    from authlib.integrations.base_client.errors import OAuthError
    from joserfc.errors import JoseError

    from bridge.console.pages import start_session

    console = request.app.state.console
    if console.oidc is None:
        raise FormError("sign-in through OpenID Connect is not configured", 404)
    try:
        token = await console.oidc.authorize_access_token(request, claims_options=await _claims_options(console))
    except (OAuthError, JoseError) as exc:
        # OAuthError: a wrong or replayed state, the provider's error; JoseError: an ID token whose
        # signature, issuer, audience, nonce or times do not hold.
        log.warning("console: OpenID Connect sign-in refused (%s)", getattr(exc, "error", None) or exc.__class__.__name__)
        raise FormError("the identity provider's answer was refused; sign in again", 401) from None
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("console: the OpenID provider could not be asked (%s)", exc.__class__.__name__)
        raise FormError("the identity provider does not answer; try again later", 503) from None
    claims = token.get("userinfo")
    if not claims:
        # No ID token (the provider ignored the openid scope): nobody is vouched for.
        log.warning("console: OpenID Connect sign-in refused (no ID token)")
        raise FormError("the identity provider's answer was refused; sign in again", 401)
    name = claims.get(console.settings.console_oidc_username_claim)
    operator: Operator | None = console.operators.get(name) if isinstance(name, str) and OPERATOR_ID.fullmatch(name) else None
    if operator is None:
        log.warning("console: OpenID Connect sign-in refused (not an operator of this console)")
        raise FormError("the identity provider vouched for someone who is not an operator of this console", 403)
    start_session(request, operator.name)
    return RedirectResponse("/queue", status_code=303)


async def _claims_options(console: Any) -> dict[str, Any]:
    """What the ID token must say besides its signature, nonce and times: the provider as issuer,
    and this console among its audience. (Authlib checks only the issuer by default: a token the
    provider made for another client, naming this console as its authorized party, would pass.)"""
    metadata = await console.oidc.load_server_metadata()
    issuer = metadata.get("issuer") or console.settings.console_oidc_issuer
    return {"iss": {"essential": True, "values": [issuer]},
            "aud": {"essential": True, "values": [console.settings.console_oidc_client_id]}}


def routes() -> list[Route]:
    return [
        Route("/oidc/start", start, methods=["GET"]),
        Route("/oidc/callback", callback, methods=["GET"], name="oidc_callback"),
    ]
