"""Web accounts in the event store (geo_ibm.accounts): roles, name and password rules, hashes, tokens; every backend."""
from __future__ import annotations

import pytest
from storefixtures import raw_rows, store_factory  # noqa: F401

from geo_ibm import accounts
from geo_ibm.errors import NotFoundError, StoreError, ValidationError

PASSWORD = "correct-horse-42"
USERS: dict[str, str] = {"vic": "viewer", "ana": "analyst", "pia": "planner", "ada": "admin"}


@pytest.fixture
def store(store_factory):
    """A store holding one account per role (USERS), all with PASSWORD."""
    store = store_factory("accounts")
    store.init()
    for name, role in USERS.items():
        accounts.add_user(store, name, role, PASSWORD)
    return store


def test_add_user_hashes_with_scrypt(store):
    accounts.add_user(store, "new.user", "planner", "long-enough")
    ((hashed,),) = raw_rows(store, "SELECT password_hash FROM web_users WHERE name = 'new.user'")
    assert hashed.startswith("scrypt:") and "long-enough" not in hashed
    assert accounts.verify_password(store, "new.user", "long-enough")["role"] == "planner"
    assert accounts.verify_password(store, "new.user", "wrong-password") is None
    assert {"name": "new.user", "role": "planner"}.items() <= next(u for u in accounts.list_users(store) if u["name"] == "new.user").items()


@pytest.mark.parametrize(
    ("name", "role", "password", "error", "match"),
    [
        ("vic", "viewer", "long-enough", StoreError, "exists already"),
        ("VIC", "viewer", "long-enough", StoreError, "exists already"),
        ("bad name", "viewer", "long-enough", ValidationError, "user name"),
        ("x" * 65, "viewer", "long-enough", ValidationError, "user name"),
        ("okname", "root", "long-enough", ValidationError, "role must be one of"),
        ("okname", "viewer", "short", ValidationError, "at least 8"),
    ],
)
def test_add_user_refusals(store, name, role, password, error, match):
    with pytest.raises(error, match=match):
        accounts.add_user(store, name, role, password)


def test_unknown_user_operations(store):
    with pytest.raises(NotFoundError, match="no user 'ghost'"):
        accounts.set_password(store, "ghost", "long-enough")
    with pytest.raises(NotFoundError, match="no user 'ghost'"):
        accounts.new_token(store, "ghost")
    with pytest.raises(NotFoundError, match="no user 'ghost'"):
        accounts.set_role(store, "ghost", "viewer")
    assert accounts.verify_password(store, "ghost", "whatever1") is None


def test_ensure_demo_account(store, monkeypatch):
    monkeypatch.delenv("GEO_IBM_DEMO_PASSWORD", raising=False)
    name, password = accounts.ensure_demo_account(store)
    assert name == "demo" and len(password) >= 12
    assert accounts.verify_password(store, "demo", password)["role"] == "admin"
    assert accounts.ensure_demo_account(store) == ("demo", None)


def test_ensure_demo_account_password_from_environment(store, monkeypatch):
    monkeypatch.setenv("GEO_IBM_DEMO_PASSWORD", "demo-pass-from-env")
    assert accounts.ensure_demo_account(store) == ("demo", "demo-pass-from-env")
    assert accounts.verify_password(store, "demo", "demo-pass-from-env") is not None


@pytest.mark.parametrize(("have", "need", "ok"), [("viewer", "viewer", True), ("viewer", "analyst", False),
                                                  ("analyst", "viewer", True), ("planner", "admin", False),
                                                  ("admin", "planner", True)])
def test_role_order(have, need, ok):
    assert accounts.has_role(have, need) is ok


def test_accounts_list_roles_and_tokens_ignoring_case(store):
    assert [u["name"] for u in accounts.list_users(store)] == ["ada", "ana", "pia", "vic"]
    token = accounts.new_token(store, "ANA")
    assert accounts.user_for_token(store, token) == accounts.get_user(store, "ana")
    assert accounts.user_for_token(store, token + "x") is None and accounts.user_for_token(store, "") is None
    assert next(u for u in accounts.list_users(store) if u["name"] == "ana")["tokens"] == 1
    accounts.set_role(store, "Ana", "admin")
    assert accounts.get_user(store, "ana")["role"] == "admin"
    assert accounts.revoke_tokens(store, "ana") == 1 and accounts.user_for_token(store, token) is None
    accounts.delete_user(store, "ana")
    assert accounts.get_user(store, "ana") is None
    with pytest.raises(NotFoundError, match="no user 'ana'"):
        accounts.delete_user(store, "ana")


def test_password_stamp_changes_with_the_password(store):
    before = accounts.get_user(store, "vic")
    assert before == {"name": "vic", "role": "viewer", "stamp": before["stamp"]} and len(before["stamp"]) == 16
    accounts.set_password(store, "vic", "brand-new-pass")
    assert accounts.get_user(store, "vic")["stamp"] != before["stamp"]
    assert accounts.verify_password(store, "vic", PASSWORD) is None
    assert accounts.verify_password(store, "vic", "brand-new-pass")["stamp"] == accounts.get_user(store, "vic")["stamp"]


def test_password_checks_remember_verified_pairs_until_the_password_changes(store, scrypt_calls):
    checks = accounts.PasswordChecks("secret")
    assert checks.recently_verified(store, "vic", PASSWORD) is None
    assert checks.check(store, "vic", PASSWORD) == accounts.get_user(store, "vic")
    assert checks.recently_verified(store, "vic", PASSWORD) == accounts.get_user(store, "vic")
    assert checks.recently_verified(store, "vic", "other-password") is None
    assert scrypt_calls == ["vic"]
    accounts.set_password(store, "vic", "brand-new-pass")
    assert checks.recently_verified(store, "vic", PASSWORD) is None
    accounts.delete_user(store, "ana")
    assert checks.check(store, "ana", PASSWORD) is None


def test_password_checks_refuse_repeated_wrong_pairs_without_scrypt(store, scrypt_calls):
    checks = accounts.PasswordChecks("secret")
    assert [checks.check(store, "vic", "guessed-pass-1") for _ in range(5)] == [None] * 5
    assert [checks.check(store, "ghost", "guessed-pass-1") for _ in range(5)] == [None] * 5
    assert scrypt_calls == ["vic", "ghost"]
    # A password changed to the refused one, or an account created with it, is checked again.
    accounts.set_password(store, "vic", "guessed-pass-1")
    accounts.add_user(store, "ghost", "viewer", "guessed-pass-1")
    assert checks.check(store, "vic", "guessed-pass-1")["name"] == "vic"
    assert checks.check(store, "ghost", "guessed-pass-1")["name"] == "ghost"
    assert scrypt_calls == ["vic", "ghost", "vic", "ghost"]


def test_password_checks_forget_refusals_after_their_lifetime(store, scrypt_calls):
    import time

    checks = accounts.PasswordChecks("secret", refused_ttl_s=0.2)
    checks.check(store, "vic", "wrong-password")
    checks.check(store, "vic", "wrong-password")
    time.sleep(0.3)
    checks.check(store, "vic", "wrong-password")
    assert scrypt_calls == ["vic", "vic"]


def test_password_checks_keep_verified_pairs_through_a_flood_of_wrong_ones(store, scrypt_calls):
    checks = accounts.PasswordChecks("secret", max_entries=3)
    checks.check(store, "ada", PASSWORD)
    for i in range(10):
        checks.check(store, "ada", f"flood-{i}-password")
    assert checks.recently_verified(store, "ada", PASSWORD)["name"] == "ada"
    assert accounts.PasswordChecks("another secret").recently_verified(store, "ada", PASSWORD) is None
