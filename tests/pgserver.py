"""The PostgreSQL + PostGIS server of a test session: started once, on first use, by ``pg_server``.

Every PostGIS store of the tests is a new database copied from the server's PostGIS template
(about 0.1 s), so tests never see each other's data.
"""
from __future__ import annotations

import itertools
import os
import re

import pytest

from geo_ibm.errors import StoreError
from geo_ibm.store.pg_local import LocalServer, start_server

_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway local server (fsync off) for the whole session; the tests fail, never skip, without one."""
    try:
        server = start_server(database=None, fast=True)
    except StoreError as exc:
        pytest.fail(f"the PostGIS tests need a local PostgreSQL server with PostGIS (Debian packages postgresql and "
                    f"postgresql-15-postgis-3); it did not start: {exc}", pytrace=False)
    # Store URLs carry no password, as in a deployment with a password file: a store's
    # location (shown without password) opens the same store in another process.
    previous = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(server.passfile)
    yield server
    if previous is None:
        os.environ.pop("PGPASSFILE", None)
    else:
        os.environ["PGPASSFILE"] = previous
    server.stop()


def new_database(server: LocalServer, name: str = "s") -> str:
    """The URL (no password in it) of a new, empty database (PostGIS installed) named after ``name``."""
    stem = re.sub(r"[^a-z0-9_]", "_", name.lower())[:40] or "s"
    database = f"t{next(_numbers)}_{stem}"
    server.create_database(database)
    return server.url(database, password=False)
