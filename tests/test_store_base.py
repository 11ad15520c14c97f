"""The store interface beyond events: audit, imports table, ground truth, version, open_store; every backend."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from storefixtures import event_rows, half_regions, raw_rows, store_factory, write_events  # noqa: F401

import geo_ibm.store
from geo_ibm import accounts
from geo_ibm.errors import StoreError, ValidationError
from geo_ibm.store import GeoPackageStore, open_store
from geo_ibm.throttle import LoginThrottle


def test_audit_log_and_imports(store_factory, tmp_path):
    store = store_factory()
    store.init()
    store.audit("export", user="ana", detail={"what": "hotspots", "n": 3})
    store.audit("login", user="bob", detail={})
    log = store.audit_log()
    assert log["action"].tolist() == ["login", "export"]
    assert log["detail"].iloc[1] == {"what": "hotspots", "n": 3}
    assert str(log["at"].dt.tz) == "UTC"
    assert len(store.audit_log(limit=1)) == 1
    store.import_file(write_events(tmp_path / "e.csv", event_rows(3)), user="ana")
    imports = store.imports()
    assert imports.loc[0, ["user", "file_name", "rows", "accepted", "rejected", "status"]].tolist() == [
        "ana", "e.csv", 3, 3, 0, "ok",
    ]
    assert len(imports.loc[0, "sha256"]) == 64
    entry = store.audit_log().iloc[0]
    assert entry["action"] == "import" and entry["detail"]["accepted"] == 3
    with pytest.raises(ValidationError, match="action must be"):
        store.audit(" ", user="ana", detail={})


def test_ground_truth_round_trip(store_factory, tmp_path):
    store = store_factory()
    truth = gpd.GeoDataFrame(
        {
            "hotspot_id": ["H01", "H02"],
            "share": [0.1, 0.2],
            "events": [10, 20],
            "start": pd.to_datetime(["2024-01-01", "2024-06-01"]).tz_localize("Europe/Luxembourg"),
            "active": [True, False],
        },
        geometry=[shapely.Point(80_000, 90_000), shapely.Point(81_000, 91_000)],
        crs=2169,
    )
    assert len(store.ground_truth()) == 0 if store.exists() else True
    store.write_ground_truth(truth)
    store.write_ground_truth(truth)  # replaces
    back = store.ground_truth()
    pd.testing.assert_frame_equal(pd.DataFrame(back.drop(columns="geometry")), pd.DataFrame(truth.drop(columns="geometry")), check_dtype=False)
    assert back.geometry.equals(truth.geometry)
    if isinstance(store, GeoPackageStore):  # a layer GDAL and QGIS see
        gdal = pyogrio.read_dataframe(store.path, layer="ground_truth")
        assert gdal["hotspot_id"].tolist() == ["H01", "H02"] and gdal.crs.to_epsg() == 2169
    assert store.summary()["ground_truth"] == 2


def test_open_store_uses_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_IBM_STORE", str(tmp_path / "env.gpkg"))
    assert open_store().path == tmp_path / "env.gpkg"
    assert open_store(tmp_path / "x.gpkg").path == tmp_path / "x.gpkg"


def test_audit_detail_is_json(store_factory, tmp_path):
    store = store_factory()
    store.audit("note", user="ana", detail={"path": tmp_path})
    ((detail,),) = raw_rows(store, "SELECT detail FROM audit")
    assert json.loads(detail) == {"path": str(tmp_path)}
    assert store.exists()


class _Recorder:
    """Stands for a backend registered in BACKENDS."""

    def __init__(self, location, **options):
        self.location = location
        self.options = options


@pytest.mark.parametrize("url", ["mysql://geo:s3cret@db.example/ibm", "MySQL://db.example/ibm"])
def test_open_store_refuses_a_backend_that_is_not_there(url, monkeypatch):
    with pytest.raises(StoreError, match="'mysql' store backend, which is not available") as caught:
        open_store(url)
    assert "s3cret" not in str(caught.value) and "db.example" not in str(caught.value)
    monkeypatch.setenv("GEO_IBM_STORE", url)
    with pytest.raises(StoreError, match="not available"):
        open_store()


def test_open_store_dispatches_on_the_scheme(tmp_path, monkeypatch):
    assert isinstance(open_store(f"file://{tmp_path}/f.gpkg"), GeoPackageStore)
    assert open_store(f"file://{tmp_path}/f.gpkg").path == tmp_path / "f.gpkg"
    assert open_store(str(tmp_path / "t.gpkg"), outline=False).location == str(tmp_path / "t.gpkg")
    # One registration line makes a scheme open its backend, with the URL as given.
    monkeypatch.setitem(geo_ibm.store.BACKENDS, "postgresql", f"{__name__}:_Recorder")
    opened = open_store("postgresql://geo@db.example/ibm", outline=False)
    assert isinstance(opened, _Recorder)
    assert (opened.location, opened.options) == ("postgresql://geo@db.example/ibm", {"outline": False})
    assert isinstance(open_store("postgres://db.example/ibm"), _Recorder)


# --- version -----------------------------------------------------------------------------------


def test_version_moves_with_what_caches_hold_and_only_that(store_factory, tmp_path):
    store = store_factory()
    store.init()
    seen = [store.version()]

    def moved() -> bool:
        seen.append(store.version())
        return seen[-1] != seen[-2]

    store.audit("note", user="ana", detail={})
    assert not moved()
    events = write_events(tmp_path / "e.csv", event_rows(30))
    store.import_file(events, user="ana")
    assert moved()
    store.import_file(events, user="ana")  # nothing new, but one more import listed
    assert moved()
    with pytest.raises(ValidationError):
        store.import_file(write_events(tmp_path / "bad.csv", ["x;y"]), user="ana")
    assert moved()  # the failed attempt is listed too
    truth = gpd.GeoDataFrame({"name": ["h"]}, geometry=[shapely.Point(80_000, 90_000).buffer(100)], crs=2169)
    store.write_ground_truth(truth)
    assert moved()
    store.reassign_regions(assign=half_regions)
    assert moved()
    accounts.add_user(store, "ana", "viewer", "long-enough")
    assert moved()
    accounts.set_role(store, "ana", "analyst")
    assert moved()
    accounts.new_token(store, "ana")
    assert moved()
    accounts.revoke_tokens(store, "ana")
    assert moved()
    sid = accounts.open_session(store, "ana", lifetime_s=60)
    accounts.session_user(store, sid)
    accounts.close_session(store, sid)
    throttle = LoginThrottle(store, max_failures=2, window_s=60)
    throttle.failed("ana", "10.0.0.1")
    throttle.reset("ana", "10.0.0.1")
    assert not moved()  # sessions and throttle counts are held by no cache
    accounts.set_password(store, "ana", "another-one")
    assert moved()
    accounts.delete_user(store, "ana")
    assert moved()
    assert len(set(seen)) == len(seen) - 2


def test_version_is_shared_by_every_handle_and_process(store_factory, tmp_path):
    store = store_factory()
    store.init()
    other = type(store)(store.path) if isinstance(store, GeoPackageStore) else store
    assert other.version() == store.version()
    before = store.version()
    script = textwrap.dedent(
        f"""
        from geo_ibm.accounts import add_user
        from geo_ibm.store import open_store
        add_user(open_store({store.location!r}), "zoe", "viewer", "long-enough")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)
    assert store.version() != before and other.version() == store.version()


def test_versions_of_two_stores_differ(store_factory, tmp_path):
    first, second = store_factory("first"), store_factory("second")
    first.init()
    second.init()
    assert first.version() != second.version()
    assert not any(part in first.version() for part in (str(tmp_path), "first"))
    if isinstance(first, GeoPackageStore):  # a copied file is another store
        shutil.copyfile(first.path, tmp_path / "copy.gpkg")
        assert GeoPackageStore(tmp_path / "copy.gpkg").version() != first.version()


def test_version_needs_a_store(tmp_path):
    with pytest.raises(StoreError, match="no event store"):
        GeoPackageStore(tmp_path / "absent.gpkg").version()


def test_reassign_regions_moves_every_event_in_one_transaction(store_factory, tmp_path):
    store = store_factory()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(60, seed=2)), user="ana")
    before = store.events()
    version = store.version()

    def swapped(gdf):
        out = half_regions(gdf)
        east = out["canton"] == "Remich"
        out["canton"] = np.where(east, "Capellen", "Remich")
        out["region"] = np.where(east, "Sud-Ouest", "Centre-Est")
        return out

    def failing() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.reassign_regions(assign=swapped, before_commit=failing)
    pd.testing.assert_frame_equal(store.events(), before)
    assert store.version() == version
    assert store.reassign_regions(assign=swapped) == 60
    after = store.events()
    flip = {"Sud-Ouest": "Centre-Est", "Centre-Est": "Sud-Ouest"}
    assert after["region"].tolist() == before["region"].map(flip).tolist()
    assert after.drop(columns=["canton", "region"]).equals(before.drop(columns=["canton", "region"]))
    expected = after.groupby("canton").size()
    assert store.counts(by="canton").set_index("canton")["events"].to_dict() == expected.to_dict()
    assert store.version() != version
    assert store.reassign_regions(assign=swapped) == 0
