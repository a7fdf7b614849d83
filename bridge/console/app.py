"""The console's assembly: its state, the sign-in gate, security headers, errors and routes.

:func:`build_console` is the one place the console is wired from settings (no I/O before it is
called). Every request passes the gate: before sign-in only the sign-in page, its stylesheet and
the OpenID Connect return answer; everything else is a redirect to the sign-in page (or 401 for a
change). Every page is sent with headers that keep it out of frames, caches and referrers.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from bridge.commands.decide import decision_producer, signing_key
from bridge.console.auth import Operator, load_operators, session_of
from bridge.console.forms import FormError
from bridge.errors import BridgeError, ConfigurationError
from bridge.settings import Settings
from bridge.store.uow import UnitOfWorkFactory

log = logging.getLogger("bridge.console")

HERE = Path(__file__).parent
#: What answers before sign-in.
PUBLIC = frozenset({"/signin", "/static/console.css", "/oidc/start", "/oidc/callback"})
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the console's own forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Console:
    """What the console's pages share: settings, the registry's readers, operators, and the
    decisions published that the workers have not applied yet."""

    settings: Settings
    readers: UnitOfWorkFactory
    operators: dict[str, Operator]
    clock: Callable[[], float] = time.time
    pending: dict[str, str] = field(default_factory=dict)
    """Review id -> decision id, for decisions published by this console and not yet applied."""
    oidc: Any = None
    secure: bool = False
    """Cookies over HTTPS only: the console is reached over HTTPS, maybe through a proxy that ends TLS."""
    _producer: Any = None
    _keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def producer(self) -> Any:
        """The console's one producer of decisions (kafka-python's is thread-safe)."""
        with self._lock:
            if self._producer is None:
                self._producer = decision_producer(self.settings)
            return self._producer

    def key_of(self, operator: str) -> Ed25519PrivateKey:
        """The signing key of ``operator`` from ``BRIDGE_CONSOLE_SIGNING_KEYS``, checked against
        the workers' trust file (``BRIDGE_OPERATOR_KEYS``) when it is set."""
        with self._lock:
            if operator not in self._keys:
                directory = self.settings.console_signing_keys
                if directory is None:
                    raise ConfigurationError("this console only reads: BRIDGE_CONSOLE_SIGNING_KEYS is not set")
                path = directory / f"{operator}.pem"
                if not path.is_file():
                    raise ConfigurationError(f"no signing key for {operator} in BRIDGE_CONSOLE_SIGNING_KEYS "
                                             f"(expected {operator}.pem, made by `bridge review keygen`)")
                self._keys[operator] = signing_key(path, operator, self.settings.operator_keys,
                                                   variable="BRIDGE_CONSOLE_SIGNING_KEYS")
            return self._keys[operator]

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
        self.readers.engine.dispose()


def _gate(console: Console) -> Callable[..., Any]:
    async def dispatch(request: Request, call_next: Callable[..., Any]) -> Response:
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and origin not in own_origins(request, console.secure):
                return _headers(PlainTextResponse("cross-origin change refused", status_code=403))
        signed_in = session_of(request.session, console.operators, console.clock())
        if signed_in is None:
            if request.session.get("operator") is not None:
                request.session.clear()  # expired, or no longer an operator
            if request.url.path not in PUBLIC:
                if request.method in ("GET", "HEAD"):
                    return _headers(RedirectResponse("/signin", status_code=303))
                return _headers(PlainTextResponse("sign in first", status_code=401))
        else:
            request.state.session, request.state.operator = signed_in
        return _headers(await call_next(request))

    return dispatch


def own_origins(request: Request, secure: bool) -> set[str]:
    """The origins of the console's own pages. Behind a proxy that ends TLS (the production
    profile's HTTPS-only cookies) the console hears http while the browser is on https."""
    here = f"{request.url.scheme}://{request.url.netloc}"
    return {here, f"https://{request.url.netloc}"} if secure else {here}


def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def build_console(settings: Settings, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The console's ASGI app on the configured registry and broker."""
    from bridge.bootstrap import build_units
    from bridge.console import oidc, pages
    from bridge.store.engine import require_existing

    require_existing(settings.database_url)
    console = Console(settings, build_units(settings).reader(), load_operators(settings.console_operators), clock)
    console.oidc = oidc.client(settings)
    if settings.console_session_secret is not None:
        secret = settings.console_session_secret.get_secret_value()
    elif settings.profile == "production":
        raise ConfigurationError("BRIDGE_PROFILE=production: set BRIDGE_CONSOLE_SESSION_SECRET (every replica the same)")
    else:
        secret = secrets.token_urlsafe(32)
    secure = settings.console_secure_cookies if settings.console_secure_cookies is not None else settings.profile == "production"
    console.secure = secure
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True  # every value a page shows is escaped
    templates.env.globals["when"] = pages.when
    app = Starlette(
        routes=pages.routes() + oidc.routes(),
        middleware=[
            Middleware(SessionMiddleware, secret_key=secret, session_cookie="bridge_console",
                       max_age=int(settings.console_session_s) + 60, same_site="lax", https_only=secure),
            Middleware(BaseHTTPMiddleware, dispatch=_gate(console)),
        ],
        exception_handlers={FormError: _form_error, BridgeError: _bridge_error, Exception: _server_error},
        lifespan=None,
    )
    app.state.console = console
    app.state.templates = templates
    return app


async def _form_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FormError)
    return _error(request, exc.message, exc.status)


async def _bridge_error(request: Request, exc: Exception) -> Response:
    # A configuration or broker problem met while serving a page: said in one line, as the CLI does.
    status = 409 if exc.__class__.__name__ == "NotDecidable" else 503
    return _error(request, str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__, status)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("console: %s on %s %s", exc.__class__.__name__, request.method, request.url.path, exc_info=exc)
    return _error(request, "something went wrong on the console's side; the error is in its log", 500)


def _error(request: Request, message: str, status: int) -> Response:
    if not hasattr(request.state, "operator"):
        return _headers(PlainTextResponse(message, status_code=status))
    templates: Jinja2Templates = request.app.state.templates
    return _headers(templates.TemplateResponse(
        request, "error.html", {"message": message, "status": status, "me": request.state.operator}, status_code=status
    ))
