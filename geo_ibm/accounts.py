"""Web accounts kept in the event store: roles, name and password rules, scrypt hashes and their check cache, API tokens and sessions."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from cachetools import TTLCache
from werkzeug.security import check_password_hash, generate_password_hash

from geo_ibm.errors import NotFoundError, StoreError, ValidationError
from geo_ibm.store.base import Account, EventStore

__all__ = [
    "DEMO_ROLE", "DEMO_USER", "MIN_PASSWORD_LENGTH", "ROLES", "TOKEN_PREFIX", "PasswordChecks", "add_user", "check_name",
    "check_password", "close_session", "close_sessions", "delete_user", "ensure_demo_account", "get_user",
    "has_role", "list_users", "new_token", "open_session", "revoke_tokens", "role_rank", "session_user",
    "set_password", "set_role", "user_for_token", "verify_password",
]

ROLES: tuple[str, ...] = ("viewer", "analyst", "planner", "admin")
"""Roles from least to most rights; each role has every right of the roles before it."""

MIN_PASSWORD_LENGTH = 8
DEMO_USER = "demo"
DEMO_ROLE = "admin"
TOKEN_PREFIX = "gib_"

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Verified when a name is unknown so that a login costs the same whether or not the user exists.
_DUMMY_HASH: str | None = None
_ABSENT = object()


def _now(offset_s: float = 0.0) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=offset_s)


def role_rank(role: str) -> int:
    """Position of ``role`` in :data:`ROLES` (viewer 0 ... admin 3)."""
    try:
        return ROLES.index(role)
    except ValueError:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, got {role!r}") from None


def has_role(user_role: str, needed: str) -> bool:
    """Whether an account with ``user_role`` may do what needs ``needed``."""
    return role_rank(user_role) >= role_rank(needed)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid account name (1-64 letters, digits, ``_.@-``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"user name must be 1-64 letters, digits or _.@-, got {name!r}")
    return name


def check_password(password: str) -> str:
    """Return ``password`` if it is acceptable (at least 8 characters)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    return password


def _hash(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _public(account: Account) -> dict[str, Any]:
    return {"name": account.name, "role": account.role, "stamp": _stamp(account.password_hash)}


def add_user(store: EventStore, name: str, role: str, password: str) -> None:
    """Create an account.

    Raises
    ------
    ValidationError
        Bad name, unknown role or too short a password.
    StoreError
        An account of that name (case-insensitive) exists.
    """
    check_name(name)
    role_rank(role)
    check_password(password)
    if not store.add_account(name, role, _hash(password), created=_now()):
        raise StoreError(f"user {name!r} exists already")


def set_password(store: EventStore, name: str, password: str) -> None:
    """Replace the password of ``name``; every session of ``name`` ends (see :func:`open_session`)."""
    check_password(password)
    if not store.update_account(name, password_hash=_hash(password), updated=_now(), end_sessions=True):
        raise NotFoundError(f"no user {name!r}")


def set_role(store: EventStore, name: str, role: str) -> None:
    """Give ``name`` another role."""
    role_rank(role)
    if not store.update_account(name, role=role, updated=_now()):
        raise NotFoundError(f"no user {name!r}")


def list_users(store: EventStore) -> list[dict[str, Any]]:
    """All accounts as dicts with ``name``, ``role``, ``created``, ``tokens`` (count), sorted by name."""
    return [{"name": a.name, "role": a.role, "created": a.created.isoformat(timespec="seconds"), "tokens": a.tokens}
            for a in store.list_accounts()]


def get_user(store: EventStore, name: str) -> dict[str, Any] | None:
    """The account ``name`` as ``{"name", "role", "stamp"}`` or ``None``.

    ``stamp`` changes whenever the password changes; a session remembers it so that a new
    password ends the sessions opened with the old one.
    """
    account = store.account(name)
    return None if account is None else _public(account)


def verify_password(store: EventStore, name: str, password: str) -> dict[str, Any] | None:
    """The account if ``password`` is right for ``name``, else ``None`` (same cost either way)."""
    global _DUMMY_HASH
    account = store.account(name)
    if account is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = _hash(secrets.token_urlsafe(16))
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(account.password_hash, password or ""):
        return None
    return _public(account)


class PasswordChecks:
    """Password checks that remember their outcome a moment, so repeated credentials cost no scrypt.

    Programs send the same credentials with every request (a GIS client the right ones, a
    scanner wrong ones) and scrypt costs about 0.2 s. Each checked (name, password) is kept
    as an HMAC keyed with ``secret`` (the password itself is never kept) together with the
    account's password stamp at the time: verified pairs for ``ttl_s``, refused ones for
    ``refused_ttl_s``. A changed password, or an account created or removed since, makes an
    entry miss at once. The two kinds are bounded apart (``max_entries`` each), so a flood of
    wrong credentials never pushes out verified ones. Safe to share between threads.
    """

    def __init__(self, secret: str | bytes, *, ttl_s: float = 300.0, refused_ttl_s: float = 60.0,
                 max_entries: int = 1000) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        self._verified: TTLCache[str, tuple[str, str]] = TTLCache(max_entries, ttl_s)
        self._refused: TTLCache[str, str | None] = TTLCache(max_entries, refused_ttl_s)
        self._lock = threading.Lock()

    def _key(self, name: str, password: str) -> str:
        return hmac.new(self._secret, f"{name}\0{password}".encode(), hashlib.sha256).hexdigest()

    def recently_verified(self, store: EventStore, name: str, password: str) -> dict[str, Any] | None:
        """The account (as :func:`get_user`) if this pair passed a check within ``ttl_s`` and the
        password is unchanged, else ``None``; never runs scrypt."""
        with self._lock:
            hit = self._verified.get(self._key(name, password))
        if hit is None:
            return None
        user = get_user(store, hit[0])
        return user if user is not None and user["stamp"] == hit[1] else None

    def check(self, store: EventStore, name: str, password: str) -> dict[str, Any] | None:
        """As :func:`verify_password`, but a pair refused within ``refused_ttl_s`` is refused
        again without scrypt while the account's password stays the same."""
        key = self._key(name, password)
        # The stamp is read before the check: a password changed meanwhile leaves a stale refusal unused.
        account = get_user(store, name)
        stamp = account["stamp"] if account else None
        with self._lock:
            refused = self._refused.get(key, _ABSENT) == stamp
        if refused:
            return None
        user = verify_password(store, name, password)
        with self._lock:
            if user is not None:
                self._verified[key] = (user["name"], user["stamp"])
                self._refused.pop(key, None)
            else:
                self._refused[key] = stamp
        return user


def _digest(secret: str) -> str:
    # Tokens and session ids carry 256 random bits, so a plain SHA-256 suffices (no slow hash
    # needed) and keeps a leaked table from being replayed.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token(store: EventStore, name: str) -> str:
    """Create a personal API token for ``name`` and return it; only its SHA-256 is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if store.add_token(name, _digest(token), created=_now()) is None:
        raise NotFoundError(f"no user {name!r}")
    return token


def user_for_token(store: EventStore, token: str) -> dict[str, Any] | None:
    """The account a token belongs to, or ``None`` for an unknown token."""
    if not token or len(token) > 200:
        return None
    owner = store.token_owner(_digest(token))
    return None if owner is None else get_user(store, owner)


def revoke_tokens(store: EventStore, name: str) -> int:
    """Delete every API token of ``name``; returns how many there were."""
    return store.delete_tokens(name)


def delete_user(store: EventStore, name: str) -> None:
    """Remove an account, its tokens and its sessions."""
    if not store.delete_account(name):
        raise NotFoundError(f"no user {name!r}")


def open_session(store: EventStore, name: str, *, lifetime_s: float) -> str:
    """Start a login session for ``name`` lasting at most ``lifetime_s`` seconds; returns its id.

    Only the SHA-256 of the id is stored. Expired sessions of every account are removed here,
    so the store holds only live sessions.

    Raises
    ------
    ValidationError
        ``lifetime_s`` is not positive.
    NotFoundError
        No account ``name``.
    """
    if not lifetime_s > 0:
        raise ValidationError(f"session lifetime_s must be positive, got {lifetime_s!r}")
    sid = secrets.token_urlsafe(32)
    if store.add_session(name, _digest(sid), created=_now(), expires=_now(lifetime_s)) is None:
        raise NotFoundError(f"no user {name!r}")
    return sid


def session_user(store: EventStore, sid: str | None) -> dict[str, Any] | None:
    """The account (as :func:`get_user` gives it) of a live session id, else ``None``.

    ``None`` for an unknown, closed or expired id, and for an id whose account is gone.
    """
    if not sid or not isinstance(sid, str) or len(sid) > 200:
        return None
    account = store.session_account(_digest(sid), now=_now())
    return None if account is None else _public(account)


def close_session(store: EventStore, sid: str | None) -> bool:
    """End one session (logout); returns whether it was live."""
    if not sid or not isinstance(sid, str):
        return False
    return store.delete_session(_digest(sid))


def close_sessions(store: EventStore, name: str) -> int:
    """End every session of ``name``; returns how many there were."""
    return store.delete_sessions(name)


def ensure_demo_account(store: EventStore) -> tuple[str, str | None]:
    """Create the demo account (role admin) unless it exists.

    The password is ``GEO_IBM_DEMO_PASSWORD`` if set, else random. Returns ``(name, password)``
    for a new account and ``(name, None)`` when it existed (its password is left alone).
    """
    if get_user(store, DEMO_USER) is not None:
        return DEMO_USER, None
    password = os.environ.get("GEO_IBM_DEMO_PASSWORD") or secrets.token_urlsafe(12)
    add_user(store, DEMO_USER, DEMO_ROLE, password)
    return DEMO_USER, password
