"""Tests of webapp.auth hardening: redirect targets, CSRF with Basic auth, throttles, server-side sessions."""
from __future__ import annotations

import base64
import sqlite3
import time
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import pytest
from webfixtures import PASSWORD, app, base_store, client, csrf_token, logged_in, login, store, store_path  # noqa: F401

from geo_ibm import accounts
from geo_ibm.errors import GeoIbmError, NotFoundError, ValidationError
from geo_ibm.store import open_store
from geo_ibm.throttle import ADDRESS, LoginThrottle
from webapp import create_app
from webapp.auth import local_target

HOST = "http://localhost"
COOKIE = "geo_ibm_session"

# Targets that must never leave the site; with "fallback" the app goes to its default page.
OFF_SITE = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "/\x85/evil.example",
    "/\u2028/evil.example",
    "\\evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "//evil.example",
    "///evil.example",
    "////evil.example/x",
    "https://evil.example/",
    "http:evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "data:text/html,x",
    " //evil.example",
    "evil.example",
    "overview",
    "",
]
# Local targets and the Location they give (non-ASCII percent-encoded, encoded slashes kept).
LOCAL = [
    ("/hotspots", "/hotspots"),
    ("/hotspots?entry_country=DE&x=//y#//z", "/hotspots?entry_country=DE&x=//y#//z"),
    ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
    ("/%5Cevil.example", "/%5Cevil.example"),
    ("/%09/evil.example", "/%09/evil.example"),
    ("/ /evil.example", "/%20/evil.example"),
    ("/\uff0fevil.example", "/%EF%BC%8Fevil.example"),
    ("/caf\u00e9?q=\u00e9", "/caf%C3%A9?q=%C3%A9"),
]


def basic(name: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def audit_counts(store) -> dict[tuple[str, str], int]:
    """``(action, user)`` -> the count of its tallied audit record (1 for a plain record)."""
    return {(e["action"], e["user"]): e["detail"].get("count", 1) for e in store.audit_log(limit=1000).to_dict(orient="records")}


def stays_on_site(location: str) -> bool:
    # What a browser does with the header: drop tabs/newlines, resolve against the page.
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    return urlsplit(urljoin(HOST + "/login", cleaned)).netloc == "localhost"


# --------------------------------------------------------------------------- redirect targets


@pytest.mark.parametrize("target", OFF_SITE)
def test_local_target_refuses(target):
    assert local_target(target) is None


@pytest.mark.parametrize(("target", "expected"), LOCAL)
def test_local_target_accepts_local_paths(target, expected):
    assert local_target(target) == expected
    assert stays_on_site(expected)


@pytest.mark.parametrize("target", OFF_SITE)
def test_language_switch_without_login_never_leaves_the_site(client, target):
    response = client.get("/lang/en", query_string={"next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/overview"


@pytest.mark.parametrize(("target", "expected"), LOCAL)
def test_language_switch_keeps_local_targets(client, target, expected):
    response = client.get("/lang/fr", query_string={"next": target})
    assert response.status_code == 302 and response.headers["Location"] == expected
    assert "lang=fr" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("raw_query", ["next=/%09/evil.example", "next=/%0a/x", "next=/%0d/x", "next=/%0d%0aSet-Cookie:%20x=1",
                                       "next=%5C%5Cevil.example", "next=/%5Cevil.example", "next=%2F%2Fevil.example"])
def test_reported_requests_redirect_home(client, logged_in, raw_query):
    # The exact query strings of the review: no 500, no header injection, no other host.
    for response in (client.get(f"/lang/en?{raw_query}"), logged_in("vic").get(f"/login?{raw_query}")):
        assert response.status_code == 302
        assert response.headers["Location"] == "/overview"
        assert "x=1" not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_post_never_leaves_the_site(client, target):
    token = csrf_token(client)
    response = client.post("/login", data={"username": "vic", "password": PASSWORD, "csrf_token": token, "next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/overview"


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_page_when_logged_in_never_leaves_the_site(logged_in, target):
    response = logged_in("vic").get("/login", query_string={"next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/overview"


def test_login_page_when_logged_in_follows_local_target(logged_in):
    response = logged_in("vic").get("/login", query_string={"next": "/hotspots?entry_country=FR"})
    assert response.headers["Location"] == "/hotspots?entry_country=FR"


# --------------------------------------------------------------------------- CSRF and Basic auth


def test_basic_auth_form_post_without_csrf_token_is_refused(client, store):
    # The reviewed attack: a cross-site form riding on cached Basic credentials adds an admin.
    response = client.post("/admin/users", headers=basic("ada", PASSWORD),
                           data={"action": "add", "name": "intruder", "role": "admin", "password": "intruder-pass-1"})
    assert response.status_code == 400
    assert "did not come from this site" in response.get_json()["description"]
    assert accounts.get_user(store, "intruder") is None


@pytest.mark.parametrize(("url", "data"), [("/account", {"action": "token"}), ("/account", {"action": "revoke"}),
                                           ("/logout", {}), ("/import", {})])
def test_basic_auth_state_changes_need_csrf_token(client, store, url, data):
    accounts.new_token(store, "ana")
    response = client.post(url, data=data, headers=basic("ana", PASSWORD))
    assert response.status_code == 400
    assert "did not come from this site" in response.get_json()["description"]
    assert next(u["tokens"] for u in accounts.list_users(store) if u["name"] == "ana") == 1


def test_basic_auth_post_with_csrf_token_works(client):
    # A browser using Basic credentials gets the form (and its session-bound token) first.
    page = client.get("/account", headers=basic("vic", PASSWORD))
    assert page.status_code == 200
    token = csrf_token(client, "/login")
    response = client.post("/account", data={"action": "token", "csrf_token": token}, headers=basic("vic", PASSWORD))
    assert response.status_code == 200 and "<code>gib_" in response.get_data(as_text=True)


def test_basic_auth_reads_need_no_csrf_token(client):
    assert client.get("/api/layers", headers=basic("vic", PASSWORD)).status_code == 200
    assert client.get("/overview", headers=basic("vic", PASSWORD)).status_code == 200


def test_bearer_post_to_import_needs_no_csrf_token(client, store):
    token = accounts.new_token(store, "ana")
    response = client.post("/import", headers={"Authorization": f"Bearer {token}"}, data={})
    # Past authentication and CSRF: the view itself complains about the missing file.
    assert response.status_code == 400 and response.get_json()["parameter"] == "file"


# --------------------------------------------------------------------------- password change throttle


def change_password(c, token, current, **environ):
    return c.post("/account", data={"csrf_token": token, "action": "password", "current": current,
                                    "new": "another-pass-1", "confirm": "another-pass-1"}, environ_base=environ)


def test_password_change_is_throttled_like_login(logged_in, store):
    c = logged_in("pia")
    token = csrf_token(c, "/account")
    for _ in range(5):
        assert change_password(c, token, "wrong-guess").status_code == 400
    blocked = change_password(c, token, "wrong-guess")
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 900
    # While blocked even the right password is not checked, and nothing changes.
    assert change_password(c, token, PASSWORD).status_code == 429
    assert accounts.verify_password(store, "pia", PASSWORD) is not None
    # Another address is counted apart.
    assert change_password(c, token, PASSWORD, REMOTE_ADDR="10.9.9.9").status_code == 200
    entries = store.audit_log(limit=1000)
    actions = [e["action"] for e in (entries.to_dict(orient="records") if hasattr(entries, "to_dict") else entries)]
    # The failures are tallied: one record with their count, not one record each.
    assert actions.count("passwd_failure") == 1 and "passwd_throttled" in actions
    assert audit_counts(store)[("passwd_failure", "pia")] == 5


def test_password_change_success_resets_the_count(logged_in):
    c = logged_in("pia")
    token = csrf_token(c, "/account")
    for _ in range(4):
        assert change_password(c, token, "wrong-guess").status_code == 400
    assert change_password(c, token, PASSWORD).status_code == 200
    token = csrf_token(c, "/account")
    for _ in range(4):
        assert change_password(c, token, "wrong-guess").status_code == 400


def test_password_change_throttle_answers_programs_in_json(logged_in):
    c = logged_in("vic")
    token = csrf_token(c, "/account")
    for _ in range(5):
        assert change_password(c, token, "bad-guess").status_code == 400
    response = c.post("/account", headers={"Accept": "application/json"},
                      data={"csrf_token": token, "action": "password", "current": "bad-guess"})
    assert response.status_code == 429 and response.get_json()["code"] == "TooManyRequests"
    assert int(response.headers["Retry-After"]) > 0


# --------------------------------------------------------------------------- server-side sessions


def copy_of_session(source, app):
    copy = app.test_client()
    copy.set_cookie(COOKIE, source.get_cookie(COOKIE).value)
    return copy


def test_logout_ends_a_copied_session_cookie(app, logged_in):
    c = logged_in("vic")
    stolen = copy_of_session(c, app)
    assert stolen.get("/overview").status_code == 200
    token = csrf_token(c, "/overview")
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    response = stolen.get("/overview")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    assert stolen.get("/api/layers").status_code == 401


def test_logout_ends_only_that_session(logged_in):
    first, second = logged_in("vic"), logged_in("vic")
    first.post("/logout", data={"csrf_token": csrf_token(first, "/overview")})
    assert first.get("/overview").status_code == 302
    assert second.get("/overview").status_code == 200


def test_password_change_keeps_own_session_and_ends_copies(app, logged_in):
    c = logged_in("pia")
    stolen = copy_of_session(c, app)
    assert change_password(c, csrf_token(c, "/account"), PASSWORD).status_code == 200
    assert c.get("/overview").status_code == 200
    assert stolen.get("/overview").status_code == 302


def test_admin_removal_ends_sessions(logged_in, store):
    c = logged_in("vic")
    accounts.delete_user(store, "vic")
    assert c.get("/overview").status_code == 302


def test_cookie_without_session_id_is_refused(app, logged_in):
    # A cookie signed with the app's key but naming no live session (e.g. made before this
    # change, or forged with a leaked key) does not log anyone in.
    c = logged_in("ada")
    with c.session_transaction() as sess:
        sess.pop("sid")
    assert c.get("/overview").status_code == 302
    c = logged_in("ada")
    with c.session_transaction() as sess:
        sess["sid"] = "made-up"
    assert c.get("/overview").status_code == 302


def test_session_of_one_user_cannot_be_relabelled(logged_in):
    c = logged_in("vic")
    with c.session_transaction() as sess:
        sess["user"] = "ada"
    assert c.get("/admin/users").status_code == 302


def test_session_expires_after_the_configured_lifetime(store_path, tmp_path):
    short = create_app({"TESTING": True, "SECRET_KEY": "k", "STORE_PATH": str(store_path),
                        "INSTANCE_PATH": str(tmp_path / "i"), "PERMANENT_SESSION_LIFETIME": timedelta(seconds=1)})
    c = short.test_client()
    assert login(c, "vic").status_code == 302
    assert c.get("/overview").status_code == 200
    time.sleep(1.2)
    assert c.get("/overview").status_code == 302


def test_session_rows_hold_only_hashes_and_expired_ones_are_pruned(store, store_path):
    sid = accounts.open_session(store, "vic", lifetime_s=1)
    assert accounts.session_user(store, sid)["name"] == "vic"
    with sqlite3.connect(store_path) as conn:
        rows = conn.execute("SELECT sid_sha256, name FROM web_sessions").fetchall()
    assert rows and all(sid not in row[0] and len(row[0]) == 64 for row in rows)
    time.sleep(1.2)
    assert accounts.session_user(store, sid) is None
    live = accounts.open_session(store, "ana", lifetime_s=60)
    with sqlite3.connect(store_path) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM web_sessions")]
    assert names == ["ana"]
    assert accounts.close_session(store, live) is True
    assert accounts.close_session(store, live) is False
    assert accounts.session_user(store, live) is None


def test_session_helpers_refuse_bad_input(store):
    with pytest.raises(NotFoundError, match="no user 'ghost'"):
        accounts.open_session(store, "ghost", lifetime_s=60)
    with pytest.raises(ValidationError, match="lifetime_s must be positive"):
        accounts.open_session(store, "vic", lifetime_s=0)
    assert accounts.session_user(store, None) is None
    assert accounts.session_user(store, "x" * 500) is None


def test_close_sessions_and_set_password_end_every_session(store):
    sids = [accounts.open_session(store, "ana", lifetime_s=60) for _ in range(3)]
    other = accounts.open_session(store, "vic", lifetime_s=60)
    assert accounts.close_sessions(store, "ANA") == 3
    assert all(accounts.session_user(store, s) is None for s in sids)
    assert accounts.session_user(store, other)["name"] == "vic"
    accounts.set_password(store, "vic", "new-password-9")
    assert accounts.session_user(store, other) is None


# --------------------------------------------------------------------------- throttle state in the store (policy: test_throttle)


def test_login_flood_with_random_names_stays_bounded(store_path, tmp_path):
    flood_app = create_app({"TESTING": True, "SECRET_KEY": "k", "STORE_PATH": str(store_path),
                            "INSTANCE_PATH": str(tmp_path / "i"), "LOGIN_MAX_KEYS": 6})
    c = flood_app.test_client()
    for i in range(10):
        assert login(c, f"nobody{i}", "guess-guess").status_code == 200
        assert c.get("/api/layers", headers=basic(f"basic{i}", "guess-guess")).status_code == 401
    assert len(flood_app.extensions["geo_ibm_login_throttle"]) == 6


def test_throttle_counts_are_shared_by_every_process_of_the_app(store_path, tmp_path):
    # Two apps over one store stand for two server processes.
    config = {"TESTING": True, "SECRET_KEY": "k", "STORE_PATH": str(store_path)}
    first = create_app({**config, "INSTANCE_PATH": str(tmp_path / "a")}).test_client()
    second = create_app({**config, "INSTANCE_PATH": str(tmp_path / "b")}).test_client()
    for c in (first, second, first, second, first):
        assert login(c, "ana", "nope-nope", REMOTE_ADDR="10.0.0.7").status_code == 200
    assert login(second, "ana", PASSWORD, REMOTE_ADDR="10.0.0.7").status_code == 429
    assert login(first, "ana", PASSWORD, REMOTE_ADDR="10.0.0.8").status_code == 302


# --------------------------------------------------------------------------- growing delays, not a lock


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def clocked(app, **settings) -> Clock:
    """Give ``app`` a login throttle on a clock the test moves."""
    clock = Clock()
    app.extensions["geo_ibm_login_throttle"] = LoginThrottle(open_store(app.config["STORE_PATH"]), clock=clock, **settings)
    return clock


@pytest.fixture
def checks(scrypt_calls) -> list[str]:
    """The names whose password is checked (scrypt) from now on (conftest's ``scrypt_calls``)."""
    return scrypt_calls


def test_a_scanner_at_one_address_does_not_lock_the_account_out(app, checks):
    # The reported case: an API scanner guessing the admin's password.
    clock = clocked(app)
    scanner = app.test_client()
    codes = [scanner.get("/api/layers", headers=basic("ada", f"guess-{i}"), environ_base={"REMOTE_ADDR": "10.6.6.6"})
             for i in range(30)]
    assert [r.status_code for r in codes] == [401] * 5 + [429] * 25
    assert codes[5].headers["Retry-After"] == "10" and codes[5].get_json()["code"] == "TooManyRequests"
    assert checks == ["ada"] * 5  # throttled attempts never reach scrypt
    # The owner logs in from elsewhere at once; at the scanner's address after the delay.
    assert login(app.test_client(), "ada", REMOTE_ADDR="10.0.0.2").status_code == 302
    assert login(app.test_client(), "ada", REMOTE_ADDR="10.6.6.6").status_code == 429
    clock.now += 10
    assert login(app.test_client(), "ada", REMOTE_ADDR="10.6.6.6").status_code == 302


def test_delays_grow_with_each_further_failure(app):
    clock = clocked(app)
    c = app.test_client()
    waits = []
    for _ in range(9):
        response = login(c, "ana", "nope-nope", REMOTE_ADDR="10.0.0.7")
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            clock.now += waits[-1]
            response = login(c, "ana", "nope-nope", REMOTE_ADDR="10.0.0.7")
        assert response.status_code == 200
    assert waits == [10, 20, 40, 80]
    assert int(login(c, "ana", PASSWORD, REMOTE_ADDR="10.0.0.7").headers["Retry-After"]) == 160


def test_many_names_from_one_address_are_limited(app, checks):
    clocked(app)
    sprayer = app.test_client()
    for i in range(20):
        assert sprayer.get("/api/layers", headers=basic(f"user{i}", "Spring2025!"),
                           environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 401
    assert len(checks) == 20
    refused = sprayer.get("/api/layers", headers=basic("vic", PASSWORD), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert refused.status_code == 429 and len(checks) == 20
    assert sprayer.get("/api/layers", headers=basic("vic", PASSWORD), environ_base={"REMOTE_ADDR": "10.0.0.10"}).status_code == 200


def test_repeated_bad_credentials_cost_one_password_check(app, store, checks):
    c = app.test_client()
    codes = [c.get("/api/layers", headers=basic("vic", "guessed-pass-1")).status_code for _ in range(8)]
    assert codes == [401] * 5 + [429] * 3 and checks == ["vic"]
    # Once the password is changed to exactly those credentials they work (at another address).
    accounts.set_password(store, "vic", "guessed-pass-1")
    other = {"REMOTE_ADDR": "10.0.0.3"}
    assert c.get("/api/layers", headers=basic("vic", "guessed-pass-1"), environ_base=other).status_code == 200
    assert checks == ["vic", "vic"]


def test_verified_basic_credentials_keep_working_while_guesses_are_throttled(app):
    gis = app.test_client()
    assert gis.get("/api/layers", headers=basic("ana", PASSWORD)).status_code == 200
    for i in range(5):
        assert gis.get("/api/layers", headers=basic("ana", f"wrong-{i}-pass")).status_code == 401
    assert gis.get("/api/layers", headers=basic("ana", "wrong-5-pass")).status_code == 429
    assert gis.get("/api/layers", headers=basic("ana", PASSWORD)).status_code == 200


def test_failures_are_audited_in_one_record_per_key_and_window(app, store):
    clocked(app, refusal_audit_s=0)  # every refusal written at once (they are gathered a few seconds otherwise)
    before = len(store.audit_log(limit=1000))
    c = app.test_client()
    for _ in range(12):
        c.get("/api/layers", headers=basic("ana", "bad-password"))
    for i in range(25):  # a spray: the names are tallied apart, the refusals once for the address
        c.get("/api/layers", headers=basic(f"u{i}", "bad-password"), environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert login(app.test_client(), "vic", REMOTE_ADDR="10.0.0.4").status_code == 302
    records = store.audit_log(limit=1000).to_dict(orient="records")
    counts = audit_counts(store)
    assert counts[("login_failure", "ana")] == 5 and counts[("login_throttled", "ana")] == 7
    assert [counts[("login_failure", f"u{i}")] for i in range(20)] == [1] * 20
    assert counts[("login_throttled", "-")] == 5
    assert counts[("login_success", "vic")] == 1
    assert len(records) == before + 2 + 20 + 1 + 1
    throttled = next(r["detail"] for r in records if r["action"] == "login_throttled" and r["user"] == "-")
    assert {k: throttled[k] for k in ("ip", "via", "limit")} == {"ip": "10.0.0.5", "via": "basic", "limit": ADDRESS}


# --------------------------------------------------------------------------- behind a reverse proxy


def proxied_app(store_path, tmp_path, proxies):
    return create_app({"TESTING": True, "SECRET_KEY": "k", "STORE_PATH": str(store_path),
                       "INSTANCE_PATH": str(tmp_path / "i"), "TRUSTED_PROXIES": proxies})


def via_proxy(client_address: str) -> dict[str, str]:
    return {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": client_address}


def test_behind_a_trusted_proxy_limits_apply_to_the_real_client(store_path, tmp_path, store):
    app = proxied_app(store_path, tmp_path, 1)
    scanner = app.test_client()
    for _ in range(5):
        assert login(scanner, "ana", "nope-nope", **via_proxy("203.0.113.5")).status_code == 200
    assert login(scanner, "ana", PASSWORD, **via_proxy("203.0.113.5")).status_code == 429
    # Every client reaches the app from the proxy's address; the others are not affected.
    assert login(app.test_client(), "ana", **via_proxy("203.0.113.6")).status_code == 302
    success = next(r for r in store.audit_log().to_dict(orient="records") if r["action"] == "login_success")
    assert success["detail"]["ip"] == "203.0.113.6"


def test_without_trusted_proxies_forwarded_addresses_are_ignored(app):
    # Off by default: a client cannot escape the throttle by sending X-Forwarded-For itself.
    c = app.test_client()
    for i in range(5):
        assert login(c, "ana", "nope-nope", REMOTE_ADDR="10.0.0.7", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code == 200
    assert login(c, "ana", PASSWORD, REMOTE_ADDR="10.0.0.7", HTTP_X_FORWARDED_FOR="198.51.100.99").status_code == 429


def test_trusted_proxies_from_the_environment(store_path, tmp_path, monkeypatch):
    from werkzeug.middleware.proxy_fix import ProxyFix

    monkeypatch.setenv("GEO_IBM_TRUSTED_PROXIES", "2")
    built = create_app({"SECRET_KEY": "k", "STORE_PATH": str(store_path), "INSTANCE_PATH": str(tmp_path / "i")})
    assert isinstance(built.wsgi_app, ProxyFix) and built.wsgi_app.x_for == 2
    monkeypatch.delenv("GEO_IBM_TRUSTED_PROXIES")
    built = create_app({"SECRET_KEY": "k", "STORE_PATH": str(store_path), "INSTANCE_PATH": str(tmp_path / "i")})
    assert not isinstance(built.wsgi_app, ProxyFix)


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_trusted_proxies_refuses_bad_values(store_path, tmp_path, value):
    with pytest.raises(GeoIbmError, match=f"GEO_IBM_TRUSTED_PROXIES must be a whole number of proxies >= 0, got '{value}'"):
        proxied_app(store_path, tmp_path, value)
