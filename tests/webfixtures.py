"""Web-app test fixtures: a small event store with one account per role, app and client helpers."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest

PASSWORD = "correct-horse-42"
USERS: dict[str, str] = {"vic": "viewer", "ana": "analyst", "pia": "planner", "ada": "admin"}
"""Account name -> role of the test store."""

XSS_NOTE = "<img src=x onerror=window.__xss=1>"
N_EVENTS = 300


def demo_events(n: int, *, seed: int) -> gpd.GeoDataFrame:
    """Synthetic events from ``geo_ibm.demo`` (EPSG:2169)."""
    from geo_ibm.demo import generate_events

    events, _truth = generate_events(n, seed=seed)
    return events


def events_csv(events: gpd.GeoDataFrame, *, notes: str | None = None, id_prefix: str = "") -> str:
    """Events as an import CSV with x/y in EPSG:2169 (the format the store reads)."""
    frame = pd.DataFrame(events.drop(columns=events.geometry.name))
    frame["event_id"] = id_prefix + frame["event_id"].astype(str)
    frame["observed_at"] = events["observed_at"].map(lambda v: v.isoformat())
    frame["x"] = events.geometry.x.round(2)
    frame["y"] = events.geometry.y.round(2)
    if notes is not None:
        frame["notes"] = notes
    return frame.to_csv(index=False)


def build_store(path: Path, *, n_events: int = N_EVENTS, seed: int = 1, notes: str | None = None) -> Path:
    """A store at ``path`` holding ``n_events`` demo events (imported from a CSV) and the USERS."""
    from geo_ibm.accounts import add_user
    from geo_ibm.store import open_store

    path.parent.mkdir(parents=True, exist_ok=True)
    store = open_store(path)
    store.init()
    csv = path.parent / "events.csv"
    csv.write_text(events_csv(demo_events(n_events, seed=seed), notes=notes), encoding="utf-8")
    store.import_file(csv, user="fixture")
    for name, role in USERS.items():
        add_user(store, name, role, PASSWORD)
    return path


@pytest.fixture(scope="session")
def base_store(tmp_path_factory) -> Path:
    """A store built once per session; tests that change data copy it (see ``store_path``)."""
    return build_store(tmp_path_factory.mktemp("webstore") / "geo_ibm.gpkg")


@pytest.fixture
def store_path(base_store, tmp_path) -> Path:
    """A private copy of the session store for one test."""
    target = tmp_path / "store" / "geo_ibm.gpkg"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base_store, target)
    return target


@pytest.fixture
def store(store_path):
    from geo_ibm.store import open_store

    return open_store(store_path)


@pytest.fixture
def app(store_path, tmp_path):
    from webapp import create_app

    return create_app({
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "STORE_PATH": str(store_path),
        "INSTANCE_PATH": str(tmp_path / "instance"),
    })


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, url: str = "/login") -> str:
    """The CSRF token of a form on ``url`` (the session keeps it)."""
    page = client.get(url)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"no CSRF token on {url} (status {page.status_code})"
    return match.group(1)


def login(client, name: str, password: str = PASSWORD, **environ):
    """Log in through the form; returns the response of the POST."""
    token = csrf_token(client)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token},
                       environ_base=environ)


@pytest.fixture
def logged_in(app):
    """A factory: ``logged_in("ada")`` gives a test client with that account's session."""

    def make(name: str):
        c = app.test_client()
        response = login(c, name)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return c

    return make



def assert_released_files_are_gone(app, client, job_url: str, owner: str, views: tuple[str, ...]) -> None:
    """Release the files of the finished job at ``job_url`` under the runner (as if another request forgot
    it meanwhile): each of ``views`` (paths after ``job_url``) is then a JSON 404 that says the files are gone."""
    from webapp.jobs import runner

    runner(app).get(job_url.rsplit("/", 1)[1], owner=owner).result.release()
    for view in views:
        gone = client.get(job_url + view, headers={"Accept": "application/json"})
        assert gone.status_code == 404 and "gone" in gone.get_data(as_text=True), view


# --------------------------------------------------------------------------- API sites

API_PASSWORD = "correct-horse-battery"
"""Password of the one-account-per-role stores the API and OGC tests build."""


@dataclass
class Site:
    """An app over a store of generated events, with one account (named after its role) and
    one API token per role."""

    app: Any
    store: Any
    events: gpd.GeoDataFrame
    tokens: dict[str, str]

    def get(self, url: str, role: str | None = "analyst", **kwargs: Any):
        headers = kwargs.pop("headers", {})
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return self.app.test_client().get(url, headers=headers, **kwargs)


def make_site(path: Path, *, seed: int, n_events: int, config: dict[str, Any] | None = None) -> Site:
    """A store at ``path`` with ``n_events`` demo events (seeded), the role accounts and an app (``config`` added to its own)."""
    from geo_ibm.accounts import ROLES, add_user, new_token
    from geo_ibm.demo import generate_events
    from geo_ibm.store import open_store
    from webapp import create_app

    store = open_store(path)
    store.init()
    events, _truth = generate_events(n_events, seed=seed)
    assert store.import_events(events, source=path.stem, user="test").accepted == n_events
    tokens = {}
    for role in ROLES:
        add_user(store, role, role, API_PASSWORD)
        tokens[role] = new_token(store, role)
    app = create_app({"TESTING": True, "STORE_PATH": str(path), "SECRET_KEY": "test", **(config or {})})
    return Site(app, store, events, tokens)


@contextlib.contextmanager
def serve_store(path: Path, folder: Path) -> Iterator[str]:
    """``geo-ibm serve`` of the store at ``path`` in its own process on a free port; yields the OGC base URL.

    Its own process: pyogrio keeps the GIL while GDAL reads features, so a server thread in the test
    process could not answer GDAL's requests.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "GEO_IBM_SECRET_KEY": "test", "GEO_IBM_INSTANCE": str(folder / "instance")}
    process = subprocess.Popen(
        [sys.executable, "-m", "geo_ibm.cli", "--store", str(path), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--threads", "4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/ogc/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401  # up, and asking for credentials
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {process.stderr.read().decode(errors='replace')}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
