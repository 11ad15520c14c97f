"""``geo-ibm roads import`` and ``geo-ibm roads info``; ``geo-ibm import`` of an OSM extract."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from osmfixtures import WAYS, to_pbf, write_osm

from geo_ibm.cli import main
from geo_ibm.network import installed
from geo_ibm.network.graph import build_network
from geo_ibm.network.osm import read_osm


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "cli" / "geo_ibm.gpkg"


def _run(args: list[str], store: Path):
    return CliRunner().invoke(main, ["--store", str(store), *args])


def test_roads_info_before_any_import_names_the_shipped_corridors(store):
    result = _run(["roads", "info"], store)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("shipped schematic corridors: 54 lines")
    assert "geo-ibm roads import" in result.output


def test_roads_import_installs_next_to_the_store_and_reports(tmp_path, store, monkeypatch):
    xml = write_osm(tmp_path / "lux.osm")
    pbf = to_pbf(xml, tmp_path / "luxembourg-latest.osm.pbf", replication_timestamp="2026-11-29T20:59:59Z")
    result = _run(["roads", "import", str(pbf), "--source", "mirror extract luxembourg-latest"], store)
    assert result.exit_code == 0, result.output
    roads = read_osm(xml)
    network = build_network(roads)
    km = roads.geometry.length.sum() / 1000
    assert f"7 roads kept, {km:,.1f} km, {network.n_components} connected components" in result.output
    assert f"-> {store.parent / 'roads.gpkg'}" in result.output
    assert "extract date 2026-11-29" in result.output
    monkeypatch.setenv("GEO_IBM_STORE", str(store))
    info = installed.installed_roads_info()
    assert info is not None and info["source"] == "mirror extract luxembourg-latest" and info["roads"] == 7
    shown = _run(["roads", "info"], store)
    assert shown.exit_code == 0, shown.output
    for line in ("source: mirror extract luxembourg-latest", "date: 2026-11-29", "roads: 7", f"length_km: {km:,.1f}",
                 "attribution: © OpenStreetMap contributors, ODbL 1.0"):
        assert line in shown.output


def test_a_failed_import_leaves_the_installed_network(tmp_path, store, monkeypatch):
    good = write_osm(tmp_path / "good.osm", timestamp="2026-10-01T00:00:00Z")
    assert _run(["roads", "import", str(good)], store).exit_code == 0
    far = write_osm(tmp_path / "far.osm", {1: ({"highway": "motorway"}, [(2.35, 48.85), (2.40, 48.90)])})
    noise = tmp_path / "noise.osm.pbf"
    noise.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty.osm.pbf"
    empty.write_bytes(b"")
    paths = write_osm(tmp_path / "paths.osm", {1: ({"highway": "footway"}, [(6.12, 49.58), (6.13, 49.59)])})
    for bad, said in ((far, "none of its roads of the kept classes is within"), (noise, "not an OpenStreetMap PBF file"),
                      (empty, "the file is empty"), (paths, "no roads of the kept classes")):
        result = _run(["roads", "import", str(bad)], store)
        assert result.exit_code == 1, result.output
        assert f"error: {bad}: {said}" in result.output
    monkeypatch.setenv("GEO_IBM_STORE", str(store))
    info = installed.installed_roads_info()
    assert info is not None and (info["source"], info["date"], info["roads"]) == ("good.osm", "2026-10-01", 7)
    assert sorted(p.name for p in store.parent.iterdir()) == ["roads.gpkg"]


def test_errors_reach_stderr_without_a_traceback(tmp_path, store):
    corrupt = tmp_path / "corrupt.osm.pbf"
    corrupt.write_bytes(to_pbf(write_osm(tmp_path / "x.osm"), tmp_path / "x.osm.pbf").read_bytes()[:80])
    failed = subprocess.run([sys.executable, "-m", "geo_ibm.cli", "--store", str(store), "roads", "import",
                             str(corrupt)], capture_output=True, text=True)
    assert failed.returncode == 1
    assert f"{corrupt}: corrupt or unreadable OpenStreetMap file" in failed.stderr
    assert "Traceback" not in failed.stderr and failed.stdout == ""


def test_event_import_of_an_osm_extract_points_to_roads_import(tmp_path, store):
    xml = write_osm(tmp_path / "lux.osm", {k: WAYS[k] for k in (100, 101)})
    for path in (xml, to_pbf(xml, tmp_path / "lux.osm.pbf")):
        result = _run(["import", str(path)], store)
        assert result.exit_code == 1
        assert "an OpenStreetMap extract, not an event file; use `geo-ibm roads import FILE`" in result.output
        assert "unsupported event file type" not in result.output


def test_margin_option_and_date_option(tmp_path, store, monkeypatch):
    xml = write_osm(tmp_path / "lux.osm")
    result = _run(["roads", "import", str(xml), "--margin", "0", "--date", "2026-01-31"], store)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("GEO_IBM_STORE", str(store))
    roads = installed.installed_roads()
    assert roads is not None
    wide = read_osm(xml)
    narrow = read_osm(xml, margin_m=0)
    assert roads.geometry.length.sum() == pytest.approx(narrow.geometry.length.sum())
    assert narrow.geometry.length.sum() < wide.geometry.length.sum()
    assert installed.installed_roads_info()["date"] == "2026-01-31"
    bad = _run(["roads", "import", str(xml), "--date", "last week"], store)
    assert bad.exit_code == 1 and "extract_date must be YYYY-MM-DD, got 'last week'" in bad.output
    assert installed.installed_roads_info()["date"] == "2026-01-31"


def test_an_import_into_an_existing_store_is_audited(tmp_path, store):
    assert _run(["init"], store).exit_code == 0
    xml = write_osm(tmp_path / "lux.osm")
    assert _run(["roads", "import", str(xml), "--source", "test extract"], store).exit_code == 0
    from geo_ibm.store import open_store

    log = open_store(store).audit_log()
    record = log[log["action"] == "roads import"].iloc[0]
    assert record["detail"]["source"] == "test extract" and record["detail"]["roads"] == 7


def test_routes_use_the_network_installed_next_to_the_store_given(tmp_path, store, monkeypatch):
    """``--store`` decides where every command finds the installed network, whatever ``GEO_IBM_STORE`` says."""
    xml = write_osm(tmp_path / "lux.osm")
    assert _run(["roads", "import", str(xml)], store).exit_code == 0
    assert (store.parent / "roads.gpkg").exists()
    assert _run(["init"], store).exit_code == 0
    monkeypatch.setenv("GEO_IBM_STORE", str(tmp_path / "elsewhere" / "geo_ibm.gpkg"))
    result = CliRunner().invoke(main, ["--store", str(store), "routes", "--out", str(tmp_path / "r.gpkg")])
    assert result.exit_code == 0, result.output
    assert "(osm: lux.osm)" in result.stdout and "© OpenStreetMap contributors" in result.stdout
