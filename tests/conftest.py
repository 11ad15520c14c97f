"""Shared pytest fixtures: every test runs against its own store and instance folder."""
from __future__ import annotations

import pytest
from pgserver import pg_server  # noqa: F401  (the PostGIS server of the session, started on first use)

from geo_ibm import accounts


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Point GEO_IBM_STORE at a per-test path so no test touches ``instance/``."""
    monkeypatch.setenv("GEO_IBM_STORE", str(tmp_path / "store" / "geo_ibm.gpkg"))
    yield


@pytest.fixture
def scrypt_calls(monkeypatch) -> list[str]:
    """The names whose password goes through scrypt (verify_password) from now on."""
    calls: list[str] = []
    real = accounts.verify_password

    def counting(store, name, password):
        calls.append(name)
        return real(store, name, password)

    monkeypatch.setattr(accounts, "verify_password", counting)
    return calls
