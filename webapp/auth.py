"""Logins, roles, API tokens and Basic auth, CSRF, login throttling and security headers."""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Response as BaseResponse

from geo_ibm import accounts
from geo_ibm.errors import GeoIbmError
from geo_ibm.store import EventStore, open_store
from geo_ibm.throttle import Attempt, LoginThrottle
from webapp.i18n import gettext as _
from webapp.i18n import ngettext

auth_bp = Blueprint("auth", __name__)
csrf = CSRFProtect()

F = TypeVar("F", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.set_language", "static", "assets.vendor"})
"""Endpoints reachable without a login (the login page, the language switch, static files)."""

API_PREFIXES = ("/api", "/ogc")
REALM = 'realm="geo_ibm", charset="UTF-8"'

_init_lock = threading.Lock()


# --------------------------------------------------------------------------- the store


def get_store() -> EventStore:
    """The event store of this request (``STORE_PATH`` config, else ``GEO_IBM_STORE``).

    The store is initialised (tables created or brought up to date) once per location and process.
    """
    if "geo_ibm_store" not in g:
        store = open_store(current_app.config.get("STORE_PATH"), serving=True)
        ready: set[str] = current_app.extensions.setdefault("geo_ibm_ready_stores", set())
        if store.location not in ready:
            with _init_lock:
                if store.location not in ready:
                    store.init()
                    ready.add(store.location)
        g.geo_ibm_store = store
    return g.geo_ibm_store


def audit(action: str, **detail: Any) -> None:
    """Record ``action`` in the store's audit trail with the current user and client address."""
    user = g.get("user")
    detail.setdefault("ip", request.remote_addr)
    get_store().audit(action, user=user["name"] if user else "-", detail=detail)


READ_AUDIT_WINDOW_S = 300.0
"""Reads of the same records by the same user within this many seconds share one audit record."""


def audit_read(what: str, rows: int) -> None:
    """Tally a read of single interception records in the audit trail (``record_read``).

    One audit record per user, path and query parameters and :data:`READ_AUDIT_WINDOW_S`: its
    detail names what was read (``what``), the path and query, the client address and the
    records the first request returned, and its ``count`` is the number of such requests. A
    GIS client paging through a box writes one record per page asked for, not one per
    repeated request.
    """
    user = g.get("user")
    name = user["name"] if user else "-"
    # The parsed parameters, sorted, not the raw text: padding (empty pairs, reordering) can
    # neither hide what was asked nor split one query into many tallies. The key hashes them
    # whole; the record shows each value up to 200 characters.
    pairs = sorted(request.args.items(multi=True))
    key = hashlib.sha256(f"{name}\0{request.path}\0{urlencode(pairs)}".encode()).hexdigest()
    query = urlencode([(k[:100], v[:200]) for k, v in pairs])
    now = time.time()
    get_store().audit_tally("record_read", user=name, key=key, at=now, since=now - READ_AUDIT_WINDOW_S,
                            detail={"what": what, "path": request.path, "query": query, "rows": int(rows),
                                    "ip": request.remote_addr})


# --------------------------------------------------------------------------- throttling


def _throttle() -> LoginThrottle:
    return current_app.extensions["geo_ibm_login_throttle"]


def _checks() -> accounts.PasswordChecks:
    return current_app.extensions["geo_ibm_password_checks"]


def _refusal(attempt: Attempt, *, action: str, via: str) -> int:
    """Tally a refused attempt in the audit trail; the seconds to wait."""
    _throttle().audit(action, attempt, via=via)
    return attempt.wait


def _failure(attempt: Attempt, *, action: str, via: str) -> None:
    """Count a wrong password for the throttle and tally it in the audit trail."""
    throttle = _throttle()
    throttle.audit(action, throttle.failed(attempt), via=via)


# --------------------------------------------------------------------------- who is asking


def current_user() -> dict[str, Any] | None:
    """The logged-in account (``{"name", "role", ...}``) of this request, or ``None``."""
    return g.get("user")


def is_api_request() -> bool:
    """Whether the client is a program (API path, Authorization header or JSON preferred)."""
    path = request.path
    if any(path == p or path.startswith(p + "/") for p in API_PREFIXES):
        return True
    if "Authorization" in request.headers:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _challenge(status: int, message: str) -> Response:
    response = jsonify({"code": "Unauthorized" if status == 401 else "TooManyRequests", "description": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = f"Bearer {REALM}, Basic {REALM}"
    return response


def _unauthenticated() -> BaseResponse:
    if is_api_request():
        return _challenge(401, "authentication required: log in, or send 'Authorization: Bearer TOKEN' or HTTP Basic credentials")
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))


def _forbidden(role: str) -> Response:
    message = _("This needs the role %(role)s or higher.", role=role)
    if is_api_request():
        response = jsonify({"code": "Forbidden", "description": f"this needs the role {role!r} or higher"})
        response.status_code = 403
        return response
    return make_response(render_template("error.html", status=403, message=message), 403)


def require_role(role: str) -> Callable[[F], F]:
    """Decorator: the view needs a logged-in account with ``role`` or a higher one.

    Without a login, browsers are sent to the login page and API clients (paths under ``/api``
    or ``/ogc``, an Authorization header, or JSON preferred) get 401 with ``WWW-Authenticate``
    for Bearer and Basic. A lower role gets 403.
    """
    accounts.role_rank(role)

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if user is None:
                return _unauthenticated()
            if not accounts.has_role(user["role"], role):
                return _forbidden(role)
            return view(*args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def has_role(role: str) -> bool:
    """Whether the current user has ``role`` or a higher one (for templates)."""
    user = g.get("user")
    return bool(user) and accounts.has_role(user["role"], role)


def _from_header() -> Response | None:
    """Authenticate from the Authorization header; a bad header ends the request with 401/429."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.partition(" ")
    scheme = scheme.lower()
    store = get_store()
    if scheme == "bearer":
        user = accounts.user_for_token(store, value.strip())
        if user is None:
            return _challenge(401, "invalid or revoked API token")
        g.user, g.auth_via = user, "token"
        return None
    if scheme == "basic":
        creds = request.authorization
        if creds is None or not creds.username:
            return _challenge(401, "malformed Basic credentials")
        name, password = creds.username, creds.password or ""
        # Credentials verified a moment ago pass at once (a GIS client repeats them with every
        # request); everything else meets the throttle before any password check.
        user = _checks().recently_verified(store, name, password)
        if user is None:
            attempt = _throttle().attempt(name, request.remote_addr)
            if attempt.wait:
                wait = _refusal(attempt, action="login_throttled", via="basic")
                response = _challenge(429, f"too many failed logins; try again in {wait} s")
                response.headers["Retry-After"] = str(wait)
                return response
            user = _checks().check(store, name, password)
            if user is None:
                _failure(attempt, action="login_failure", via="basic")
                return _challenge(401, "wrong user name or password")
            _throttle().succeeded(attempt)
        g.user, g.auth_via = user, "basic"
        return None
    return _challenge(401, "unsupported Authorization scheme; use Bearer or Basic")


def _from_session() -> None:
    name = session.get("user")
    if not name:
        return
    user = accounts.session_user(get_store(), session.get("sid"))
    if user is None or user["name"].casefold() != str(name).casefold() or user["stamp"] != session.get("stamp"):
        # Logged out, expired, account removed or password changed since this session began.
        session.clear()
        return
    g.user, g.auth_via = user, "session"


def _start_session(store: Any, user: dict[str, Any]) -> None:
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    session.clear()  # a fresh session at each login: no fixation
    session["user"] = user["name"]
    session["stamp"] = user["stamp"]
    session["sid"] = accounts.open_session(store, user["name"], lifetime_s=lifetime)
    session.permanent = True


def _before_request() -> BaseResponse | None:
    g.csp_nonce = secrets.token_urlsafe(18)
    g.user, g.auth_via = None, None
    endpoint = request.endpoint
    public = endpoint in PUBLIC_ENDPOINTS
    if endpoint in ("static", "assets.vendor"):
        return None
    if "Authorization" in request.headers:
        refused = _from_header()
        if refused is not None:
            return refused
    else:
        _from_session()
    # Only a Bearer token carries no ambient authority: a browser never adds one on its own.
    # Cookies and Basic credentials (which browsers cache and resend to the site, also on
    # cross-site form posts) need the CSRF token on every state-changing request.
    if request.method not in SAFE_METHODS and g.auth_via != "token":
        csrf.protect()
    if public or endpoint is None:
        return None
    if g.user is None:
        return _unauthenticated()
    return None


# --------------------------------------------------------------------------- headers


def page_csp(nonce: str) -> str:
    """Content-Security-Policy of the app's own pages: no inline code without the nonce."""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def map_csp(*, self_origin: str, tile_origin: str | None) -> str:
    """Content-Security-Policy of a map document (Folium emits inline scripts and styles).

    The document is also sandboxed by the policy itself (``sandbox allow-scripts``), so even
    opened directly it runs in an opaque origin without the app's cookies or storage.
    """
    img = "img-src 'self' data:" + (f" {tile_origin}" if tile_origin else "")
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {self_origin} 'unsafe-inline'",
            f"style-src 'self' {self_origin} 'unsafe-inline'",
            img + f" {self_origin}",
            f"font-src 'self' {self_origin}",
            f"connect-src 'self' {self_origin}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
            "sandbox allow-scripts",
        ]
    )


def tile_origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a tile URL template, for the map CSP."""
    if not url:
        return None
    parts = urlsplit(url.replace("{s}", "a").replace("{z}", "0").replace("{x}", "0").replace("{y}", "0"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    netloc = parts.netloc
    if url.split("//", 1)[-1].startswith("{s}."):
        netloc = "*." + netloc.split(".", 1)[1]
    return f"{parts.scheme}://{netloc}"


def _after_request(response: Response) -> Response:
    headers = response.headers
    nonce = g.get("csp_nonce") or secrets.token_urlsafe(18)
    headers.setdefault("Content-Security-Policy", page_csp(nonce))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    # Map documents run sandboxed in an opaque origin and still load the vendored libraries.
    is_asset = request.endpoint in ("static", "assets.vendor")
    headers.setdefault("Cross-Origin-Resource-Policy", "cross-origin" if is_asset else "same-origin")
    headers.setdefault("Permissions-Policy", "geolocation=(), camera=(), microphone=(), payment=()")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not is_asset:
        headers.setdefault("Cache-Control", "no-store")
    return response


def trusted_proxies(value: Any) -> int:
    """The number of reverse proxies in front of the app (``TRUSTED_PROXIES``, 0: none)."""
    try:
        count = int(str(value if value is not None else 0).strip() or 0)
    except ValueError:
        count = -1
    if count < 0:
        raise GeoIbmError(f"GEO_IBM_TRUSTED_PROXIES must be a whole number of proxies >= 0, got {value!r}")
    return count


def init_app(app: Flask) -> None:
    """Install authentication, CSRF protection, throttling and security headers on ``app``.

    With ``TRUSTED_PROXIES`` = n > 0 the app trusts the last n entries of ``X-Forwarded-For``
    and ``X-Forwarded-Proto`` (werkzeug's ProxyFix): the client address, which the login
    throttle counts, is the one the nearest trusted proxy saw, not the proxy's own.
    """
    proxies = trusted_proxies(app.config.get("TRUSTED_PROXIES"))
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in _before_request instead
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session's lifetime
    csrf.init_app(app)
    # The counters live in the store: every process of the app counts the same failures.
    config = app.config
    app.extensions["geo_ibm_login_throttle"] = LoginThrottle(
        open_store(config.get("STORE_PATH")),
        max_failures=int(config.get("LOGIN_MAX_FAILURES", 5)),
        address_failures=int(config.get("LOGIN_ADDRESS_FAILURES", 20)),
        account_failures=int(config.get("LOGIN_ACCOUNT_FAILURES", 20)),
        first_delay_s=float(config.get("LOGIN_FIRST_DELAY_S", 10)),
        max_delay_s=float(config.get("LOGIN_MAX_DELAY_S", 300)),
        window_s=float(config.get("LOGIN_WINDOW_S", 900)),
        max_keys=int(config.get("LOGIN_MAX_KEYS", 10_000)),
        refusal_audit_s=float(config.get("LOGIN_REFUSAL_AUDIT_S", 10)),
    )
    app.extensions["geo_ibm_password_checks"] = accounts.PasswordChecks(
        config["SECRET_KEY"], ttl_s=float(config.get("BASIC_AUTH_CACHE_S", 300)),
        refused_ttl_s=float(config.get("REFUSED_CREDENTIALS_CACHE_S", 60)))
    app.before_request(_before_request)
    app.after_request(_after_request)
    app.jinja_env.globals.update(current_user=current_user, has_role=has_role, csp_nonce=lambda: g.get("csp_nonce", ""))
    app.register_blueprint(auth_bp)


# --------------------------------------------------------------------------- views


def local_target(target: str | None) -> str | None:
    """``target`` as an ASCII path on this site (``/path?query#fragment``), else ``None``.

    Refused: control characters and other unprintable ones (browsers drop tabs and newlines
    from URLs, so ``/<TAB>/host`` would become ``//host``; newlines cannot go in a header),
    backslashes (browsers read them as ``/``), a scheme or host, and paths not starting with
    exactly one ``/``. Non-ASCII characters are percent-encoded. A percent-encoded slash
    (``/%2F%2Fhost``) stays a path on this site: browsers do not decode it.
    """
    if not target or not isinstance(target, str) or len(target) > 4096:
        return None
    if "\\" in target or any(not ch.isprintable() for ch in target):
        return None
    # Checked before and after encoding: iri_to_uri rewrites "////host" to "//host".
    uri = iri_to_uri(target)
    return uri if _is_local_path(target) and _is_local_path(uri) else None


def _is_local_path(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//")


def _safe_next(target: str | None) -> str:
    return local_target(target) or url_for("pages.overview")


@auth_bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; repeated failures make further attempts wait (429, see :class:`LoginThrottle`)."""
    next_url = request.values.get("next")
    if request.method == "GET":
        if g.get("user"):
            return redirect(_safe_next(next_url))
        return render_template("login.html", next_url=next_url, error=None)
    name = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    store = get_store()
    attempt = _throttle().attempt(name, request.remote_addr)
    if attempt.wait:
        wait = _refusal(attempt, action="login_throttled", via="form")
        response = make_response(
            render_template("login.html", next_url=next_url, error=ngettext("Too many failed logins. Try again in %(s)s second.", "Too many failed logins. Try again in %(s)s seconds.", wait, s=wait)),
            429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    user = _checks().check(store, name, password) if name else None
    if user is None:
        _failure(attempt, action="login_failure", via="form")
        return render_template("login.html", next_url=next_url, error=_("Wrong user name or password.")), 200
    _throttle().succeeded(attempt)
    _start_session(store, user)
    g.user, g.auth_via = user, "session"
    store.audit("login_success", user=user["name"], detail={"ip": request.remote_addr, "via": "form"})
    return redirect(_safe_next(next_url))


@auth_bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session (POST with the CSRF token, so no page can log a user out)."""
    user = g.get("user")
    if user:
        get_store().audit("logout", user=user["name"], detail={"ip": request.remote_addr})
    # Delete the server-side session too: a copy of the cookie must not outlive the logout.
    accounts.close_session(get_store(), session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"))


@auth_bp.route("/lang/<code>")
def set_language(code: str) -> Any:
    """Remember the interface language (``en`` or ``fr``) in a cookie and go back."""
    from webapp.i18n import LANGUAGES

    if code not in LANGUAGES:
        raise GeoIbmError(f"unknown language {code!r}; use one of {', '.join(LANGUAGES)}")
    response = redirect(_safe_next(request.args.get("next")))
    response.set_cookie(
        "lang", code, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )
    return response


def _too_many(wait: int) -> Response:
    message = ngettext("Too many failed logins. Try again in %(s)s second.", "Too many failed logins. Try again in %(s)s seconds.", wait, s=wait)
    if is_api_request():
        response = _challenge(429, f"too many failed attempts; try again in {wait} s")
    else:
        response = make_response(render_template("error.html", status=429, message=message), 429)
    response.headers["Retry-After"] = str(wait)
    return response


@auth_bp.route("/account", methods=["GET", "POST"])
@require_role("viewer")
def account() -> Any:
    """One's own account: change the password, create or revoke personal API tokens."""
    user = g.user
    store = get_store()
    token = None
    if request.method == "POST":
        action = request.form.get("action")
        if action == "token":
            token = accounts.new_token(store, user["name"])
            audit("token_new", name=user["name"])
        elif action == "revoke":
            count = accounts.revoke_tokens(store, user["name"])
            audit("token_revoke", name=user["name"], count=count)
            flash(ngettext("%(n)s token revoked.", "%(n)s tokens revoked.", count))
        elif action == "password":
            # The current password is a login secret: guessing it is throttled like the login.
            attempt = _throttle().attempt(user["name"], request.remote_addr)
            if attempt.wait:
                return _too_many(_refusal(attempt, action="passwd_throttled", via="account"))
            if _checks().check(store, user["name"], request.form.get("current") or "") is None:
                _failure(attempt, action="passwd_failure", via="account")
                raise GeoIbmError(_("The current password is wrong."))
            _throttle().succeeded(attempt)
            new = request.form.get("new") or ""
            if new != (request.form.get("confirm") or ""):
                raise GeoIbmError(_("The two new passwords differ."))
            accounts.set_password(store, user["name"], new)
            if g.auth_via == "session":
                # set_password ended every session of the account; this one goes on.
                renewed = accounts.get_user(store, user["name"])
                if renewed is not None:
                    _start_session(store, renewed)
            audit("user_passwd", name=user["name"], via="web")
            flash(_("Password changed."))
        else:
            raise GeoIbmError(f"unknown action {action!r}")
    tokens = next((u["tokens"] for u in accounts.list_users(store) if u["name"] == user["name"]), 0)
    return render_template("account.html", token=token, tokens=tokens)
