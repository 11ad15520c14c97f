"""Shared pytest fixtures: every test runs against its own store and instance folder."""
from __future__ import annotations

import pytest
from pgserver import pg_server  # noqa: F401  (the PostGIS server of the session, started on first use)
from workfixtures import Forbidden

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


@pytest.fixture
def forbid(monkeypatch) -> Forbidden:
    """``forbid(target[, name])`` makes a function fail the test if it runs; ``forbid.ran`` lists those that did.

    For refusals that must come before any work: the work is forbidden, the refusal asserted.
    A web app turns the AssertionError into a 500, so web tests assert ``forbid.ran == []`` too.
    """
    return Forbidden(monkeypatch)


def pytest_collection_modifyitems(items):
    """Give schemathesis's items (one per API operation) node ids of their own.

    schemathesis names each item after its operation (``test_x[GET /api/stats]``) but gives
    them all the test function's node id; pytest-xdist tells items apart by node id, and ran
    only one of them.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        if label is None or not item.nodeid.endswith("::" + item.originalname):
            continue
        unique = f"{item.nodeid}[{label}]"
        # pytest keeps the node id privately: a NodeId in ``_id`` (pytest >= 9), a text in ``_nodeid`` before
        if hasattr(item, "_id"):
            from _pytest.nodes import coerce_node_id

            item._id = coerce_node_id(unique)
        else:
            item._nodeid = unique
        if item.nodeid != unique:  # a pytest that keeps it elsewhere: say so rather than run one operation
            raise pytest.UsageError(f"cannot give {item.name} a node id of its own (pytest changed its node ids)")
