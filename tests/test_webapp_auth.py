"""Tests of webapp.auth: logins, roles, tokens, Basic auth, CSRF, throttling, headers (accounts: test_accounts)."""
from __future__ import annotations

import base64
import os
import re
import sqlite3
import stat

import pytest
from webfixtures import PASSWORD, USERS, app, base_store, client, csrf_token, logged_in, login, store, store_path  # noqa: F401

from geo_ibm import accounts
from geo_ibm.errors import ValidationError
from webapp import create_app

ROLE_PAGES = [
    ("/overview", "viewer"),
    ("/hotspots", "viewer"),
    ("/maps/overview", "viewer"),
    ("/account", "viewer"),
    ("/import", "analyst"),
    ("/exports/", "analyst"),
    ("/exports/events.csv", "analyst"),
    ("/admin/audit", "admin"),
    ("/admin/users", "admin"),
]


def basic(name: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def audit_actions(store) -> list[tuple[str | None, str]]:
    entries = store.audit_log(limit=1000)
    if hasattr(entries, "to_dict"):
        entries = entries.to_dict(orient="records")
    return [(e.get("user"), e.get("action")) for e in entries]


# --------------------------------------------------------------------------- login required


@pytest.mark.parametrize(("url", "_role"), ROLE_PAGES)
def test_pages_redirect_to_login_without_session(client, url, _role):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("url", ["/api/layers", "/ogc/collections", "/overview"])
def test_programs_get_401_with_challenges(client, url):
    response = client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert "Bearer" in challenge and "Basic" in challenge
    assert response.is_json


@pytest.mark.parametrize("url", ["/login", "/static/app.css", "/assets/leaflet/leaflet.js", "/assets/folium/leaflet_heat.min.js",
                                 "/assets/leaflet_markercluster/leaflet.markercluster.js"])
def test_public_urls(client, url):
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", ["/assets/leaflet/../../../etc/passwd", "/assets/nopackage/x.js", "/assets/leaflet/missing.js"])
def test_asset_route_refuses_other_files(client, url):
    assert client.get(url).status_code == 404


# --------------------------------------------------------------------------- logins


def test_login_sets_hardened_session_cookie_and_audits(client, store):
    response = login(client, "vic")
    assert response.status_code == 302 and response.headers["Location"] == "/overview"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/overview").status_code == 200
    assert ("vic", "login_success") in audit_actions(store)


def test_secure_cookie_when_configured(store_path, tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_IBM_SECURE_COOKIES", "1")
    secure_app = create_app({"SECRET_KEY": "k", "STORE_PATH": str(store_path), "INSTANCE_PATH": str(tmp_path / "i")})
    c = secure_app.test_client()
    response = login(c, "vic")
    assert "Secure" in response.headers["Set-Cookie"]
    assert "max-age" in response.headers["Strict-Transport-Security"]


def test_wrong_password_is_refused_and_audited(client, store):
    response = login(client, "vic", "wrong-password")
    assert response.status_code == 200
    assert "Wrong user name or password." in response.get_data(as_text=True)
    assert client.get("/overview").status_code == 302
    assert ("login_failure") in [a for _u, a in audit_actions(store)]


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_site(client, target):
    token = csrf_token(client)
    response = client.post("/login", data={"username": "vic", "password": PASSWORD, "csrf_token": token, "next": target})
    assert response.headers["Location"] == "/overview"


def test_login_returns_to_the_requested_page(client):
    token = csrf_token(client)
    response = client.post("/login", data={"username": "vic", "password": PASSWORD, "csrf_token": token,
                                           "next": "/hotspots?entry_country=DE"})
    assert response.headers["Location"] == "/hotspots?entry_country=DE"


def test_logout_needs_post_with_csrf(logged_in):
    c = logged_in("vic")
    assert c.get("/logout").status_code == 405
    assert c.post("/logout").status_code == 400
    token = csrf_token(c, "/overview")
    response = c.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert c.get("/overview").status_code == 302


def test_login_form_needs_csrf_token(client):
    response = client.post("/login", data={"username": "vic", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/overview").status_code == 302


def test_throttling_after_five_failures_per_user_and_address(app, client, store):
    for _ in range(5):
        assert login(client, "ana", "nope-nope", REMOTE_ADDR="10.0.0.7").status_code == 200
    blocked = login(client, "ana", PASSWORD, REMOTE_ADDR="10.0.0.7")
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 900
    # Another address, or another user from that address, is not affected.
    assert login(app.test_client(), "ana", PASSWORD, REMOTE_ADDR="10.0.0.8").status_code == 302
    assert login(app.test_client(), "vic", PASSWORD, REMOTE_ADDR="10.0.0.7").status_code == 302
    assert "login_throttled" in [a for _u, a in audit_actions(store)]


def test_basic_auth_is_throttled_too(client):
    for _ in range(5):
        assert client.get("/api/layers", headers=basic("ana", "bad-password")).status_code == 401
    assert client.get("/api/layers", headers=basic("ana", PASSWORD)).status_code == 429


def test_password_change_ends_other_sessions(logged_in, store):
    first = logged_in("pia")
    second = logged_in("pia")
    token = csrf_token(second, "/account")
    response = second.post("/account", data={"csrf_token": token, "action": "password", "current": PASSWORD,
                                             "new": "another-pass-1", "confirm": "another-pass-1"})
    assert response.status_code == 200
    assert second.get("/overview").status_code == 200
    assert first.get("/overview").status_code == 302


def test_account_password_change_checks_current_password(logged_in):
    c = logged_in("pia")
    token = csrf_token(c, "/account")
    response = c.post("/account", data={"csrf_token": token, "action": "password", "current": "wrong-one",
                                        "new": "another-pass-1", "confirm": "another-pass-1"})
    assert response.status_code == 400
    assert "current password is wrong" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- tokens and Basic


def test_bearer_token_authenticates_and_only_its_hash_is_stored(client, store, store_path):
    token = accounts.new_token(store, "ana")
    assert token.startswith("gib_") and len(token) > 40
    response = client.get("/exports/events.csv", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    with sqlite3.connect(store_path) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_sha256 FROM web_tokens")]
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64
    assert store_path.read_bytes().find(token.encode()) == -1


def test_bad_or_revoked_token_gets_401(client, store):
    token = accounts.new_token(store, "vic")
    assert client.get("/api/layers", headers={"Authorization": "Bearer gib_nonsense"}).status_code == 401
    assert accounts.revoke_tokens(store, "vic") == 1
    response = client.get("/overview", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "Bearer" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Digest abc", "Basic !!!notbase64", "Bearer"])
def test_malformed_authorization_gets_401(client, header):
    assert client.get("/overview", headers={"Authorization": header}).status_code == 401


def test_basic_auth_gives_the_same_roles(client):
    assert client.get("/overview", headers=basic("vic", PASSWORD)).status_code == 200
    assert client.get("/admin/audit", headers=basic("vic", PASSWORD)).status_code == 403
    assert client.get("/admin/audit", headers=basic("ada", PASSWORD)).status_code == 200
    assert client.get("/overview", headers=basic("vic", "wrong-password")).status_code == 401


def test_bearer_authenticated_posts_need_no_csrf_token(client, store):
    # A browser never adds a Bearer token on its own: no CSRF risk.
    token = accounts.new_token(store, "vic")
    response = client.post("/account", data={"action": "token"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert re.search(r"<code>gib_[A-Za-z0-9_-]+</code>", response.get_data(as_text=True))


def test_session_posts_need_csrf_token(logged_in):
    c = logged_in("vic")
    assert c.post("/account", data={"action": "token"}).status_code == 400
    token = csrf_token(c, "/account")
    assert c.post("/account", data={"action": "token", "csrf_token": token}).status_code == 200


# --------------------------------------------------------------------------- roles


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize(("url", "needed"), ROLE_PAGES)
def test_role_matrix(logged_in, user, url, needed):
    response = logged_in(user).get(url)
    allowed = accounts.has_role(USERS[user], needed)
    assert response.status_code == (200 if allowed else 403), (user, url, response.status_code)


def test_forbidden_is_json_for_programs(client):
    response = client.get("/admin/users", headers=basic("vic", PASSWORD))
    assert response.status_code == 403 and response.is_json
    assert "admin" in response.get_json()["description"]


def test_require_role_refuses_unknown_role():
    from webapp.auth import require_role

    with pytest.raises(ValidationError, match="role must be one of"):
        require_role("superuser")


# --------------------------------------------------------------------------- headers


def test_pages_have_strict_nonce_csp_and_security_headers(logged_in):
    response = logged_in("vic").get("/overview")
    csp = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert len(nonce) >= 16
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    assert "<script>" not in body and "style=" not in body
    # A new nonce for each response.
    assert nonce not in logged_in("vic").get("/overview").headers["Content-Security-Policy"]


def test_map_document_csp_allows_inline_only_there(logged_in, app):
    app.config["TILE_URL"] = "https://tiles.example.lu/{z}/{x}/{y}.png"
    response = logged_in("vic").get("/maps/overview")
    csp = response.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" in csp and "sandbox allow-scripts" in csp
    assert "connect-src 'self'" in csp and "img-src 'self' data: https://tiles.example.lu" in csp
    assert "frame-ancestors 'self'" in csp
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://tiles.example.lu/{z}/{x}/{y}.png", "https://tiles.example.lu"),
        ("https://{s}.tile.example.org/{z}/{x}/{y}.png", "https://*.tile.example.org"),
        ("http://10.1.2.3:8080/tiles/{z}/{x}/{y}.png", "http://10.1.2.3:8080"),
        ("ftp://x/{z}", None),
        (None, None),
    ],
)
def test_tile_origin(url, origin):
    from webapp.auth import tile_origin

    assert tile_origin(url) == origin


# --------------------------------------------------------------------------- app config


def test_secret_key_generated_once_in_instance_with_0600(store_path, tmp_path, monkeypatch):
    monkeypatch.delenv("GEO_IBM_SECRET_KEY", raising=False)
    instance = tmp_path / "inst"
    first = create_app({"STORE_PATH": str(store_path), "INSTANCE_PATH": str(instance)})
    key_file = instance / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(first.config["SECRET_KEY"]) == 64
    second = create_app({"STORE_PATH": str(store_path), "INSTANCE_PATH": str(instance)})
    assert second.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    monkeypatch.setenv("GEO_IBM_SECRET_KEY", "from-the-environment")
    assert create_app({"STORE_PATH": str(store_path), "INSTANCE_PATH": str(instance)}).config["SECRET_KEY"] == "from-the-environment"


def test_config_from_environment_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("GEO_IBM_STORE", str(tmp_path / "elsewhere.gpkg"))
    monkeypatch.setenv("GEO_IBM_TILE_URL", "https://t.example/{z}/{x}/{y}.png")
    monkeypatch.setenv("GEO_IBM_TILE_ATTRIBUTION", "T")
    monkeypatch.setenv("GEO_IBM_MAX_UPLOAD_MB", "2")
    built = create_app({"SECRET_KEY": "k", "INSTANCE_PATH": str(tmp_path / "i")})
    assert built.config["STORE_PATH"] == str(tmp_path / "elsewhere.gpkg")
    assert built.config["TILE_URL"].startswith("https://t.example")
    assert built.config["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024


# --------------------------------------------------------------------------- Basic auth cache


def test_basic_auth_cache_follows_password_changes(client, store):
    assert client.get("/overview", headers=basic("vic", PASSWORD)).status_code == 200
    assert client.get("/overview", headers=basic("vic", PASSWORD)).status_code == 200  # from the cache
    accounts.set_password(store, "vic", "brand-new-pass")
    assert client.get("/overview", headers=basic("vic", PASSWORD)).status_code == 401
    assert client.get("/overview", headers=basic("vic", "brand-new-pass")).status_code == 200
    accounts.delete_user(store, "vic")
    assert client.get("/overview", headers=basic("vic", "brand-new-pass")).status_code == 401


def test_basic_auth_checks_scrypt_once_per_credentials(client, monkeypatch):
    calls = []
    real = accounts.verify_password

    def counting(store, name, password):
        calls.append(name)
        return real(store, name, password)

    monkeypatch.setattr(accounts, "verify_password", counting)
    for _ in range(4):
        assert client.get("/account", headers=basic("ada", PASSWORD)).status_code == 200
    assert calls == ["ada"]
    assert client.get("/account", headers=basic("ada", "other-password")).status_code == 401
    assert calls == ["ada", "ada"]


def _record_reads(store) -> list[dict]:
    log = store.audit_log(limit=1000)
    return [e["detail"] | {"user": e["user"]} for e in log.to_dict(orient="records") if e["action"] == "record_read"]


def test_reads_of_single_records_are_audited_as_tallies(logged_in, store):
    ana = logged_in("ana")
    first = store.events(limit=1)["event_id"].iloc[0]
    assert ana.get("/api/events?limit=7").status_code == 200
    assert ana.get("/api/events?limit=7").status_code == 200  # the same query again: the same record
    assert ana.get("/api/events?limit=3&offset=3").status_code == 200
    assert ana.get(f"/ogc/collections/events/items/{first}").status_code == 200
    assert ana.get("/ogc/collections/events/items?limit=5").status_code == 200
    assert ana.get("/overview").status_code == 200  # the table of latest events
    assert ana.get("/maps/overview").status_code == 200  # a marker and popup per event
    reads = _record_reads(store)
    by_query = {(r["path"], r["query"]): r for r in reads}
    assert by_query[("/api/events", "limit=7")]["count"] == 2
    assert by_query[("/api/events", "limit=7")]["rows"] == 7
    assert by_query[("/api/events", "limit=3&offset=3")]["rows"] == 3
    assert by_query[(f"/ogc/collections/events/items/{first}", "")]["what"] == "event"
    assert by_query[("/ogc/collections/events/items", "limit=5")]["rows"] == 5
    assert by_query[("/overview", "")]["what"] == "latest events"
    assert by_query[("/maps/overview", "")]["rows"] == store.count()
    assert {r["user"] for r in reads} == {"ana"} and all(r["ip"] for r in reads)


def test_padding_a_query_neither_hides_it_nor_splits_its_tally(logged_in, store):
    ana = logged_in("ana")
    assert ana.get("/api/events?limit=4&offset=2").status_code == 200
    assert ana.get("/api/events?" + "&" * 2000 + "offset=2&&limit=4").status_code == 200
    reads = [r for r in _record_reads(store) if r["path"] == "/api/events"]
    assert len(reads) == 1 and reads[0]["count"] == 2 and reads[0]["query"] == "limit=4&offset=2"


def test_aggregates_write_no_record_reads(logged_in, store):
    vic = logged_in("vic")
    for url in ("/overview", "/api/stats", "/maps/overview", "/api/hotspots?method=gi"):
        assert vic.get(url).status_code == 200, url
    assert _record_reads(store) == []
