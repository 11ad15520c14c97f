"""The geo-ibm command: each subcommand run for real, through click's runner or a subprocess."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from click.testing import CliRunner

from geo_ibm.cli import main
from geo_ibm.layers import border_lengths

HEADER = "event_id;observed_at;lat;lon;location_kind;persons;smugglers;transport_mode;entry_country;notes\n"
GOOD_ROWS = [
    "E1;2025-03-01 22:15;49.6217;6.1700;motorway;3;1;car;DE;A1 Höhe Cents\n",
    "E2;2025-04-02 03:40;49.5036;6.3700;border_crossing;2;0;van;DE;Schengen\n",
    "E3;2025-05-03 12:00;49.6000;6.1330;train_station;1;0;train;FR;Gare\n",
]


def _run(args: list[str], store: Path, env: dict[str, str] | None = None):
    runner = CliRunner()
    return runner.invoke(main, ["--store", str(store), *args], env=env, catch_exceptions=False)


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "cli" / "store.gpkg"


def _csv(tmp_path: Path, rows: list[str], name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "import", "demo", "borders", "info", "serve", "users", "hotspots", "regions"):
        assert f"  {command} " in result.output


def test_borders_prints_each_line_and_total():
    result = CliRunner().invoke(main, ["borders"])
    assert result.exit_code == 0
    table = border_lengths()
    for row in table.itertuples(index=False):
        assert row.name in result.output
        assert f"{row.length_km:.1f}" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("LU–")]
    assert len(lines) == 3
    total = [line for line in result.output.splitlines() if "total" in line]
    assert total and "356" in total[0]


def test_init_import_info(tmp_path, store):
    assert _run(["init"], store).exit_code == 0
    assert store.exists()
    result = _run(["import", str(_csv(tmp_path, GOOD_ROWS)), "--user", "tester"], store)
    assert result.exit_code == 0, result.output
    assert "3 imported" in result.output
    again = _run(["import", str(_csv(tmp_path, GOOD_ROWS)), "--user", "tester"], store)
    assert "0 imported" in again.output and "3 already in the store" in again.output
    info = _run(["info"], store)
    assert info.exit_code == 0
    assert "2025Q1: 1 events" in info.output
    assert "2025Q2: 2 events" in info.output


def test_import_bad_file_fails_with_row_and_column_and_stores_nothing(tmp_path, store):
    rows = GOOD_ROWS + ["E4;2025-13-45 10:00;49.6;6.1;motorway;0;1;car;XX;bad\n"]
    path = _csv(tmp_path, rows, "bad.csv")
    proc = subprocess.run(
        [sys.executable, "-m", "geo_ibm.cli", "--store", str(store), "import", str(path)],
        capture_output=True, text=True, env={**os.environ, "GEO_IBM_STORE": str(store)},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "bad.csv" in proc.stderr
    assert "row 5" in proc.stderr  # spreadsheet line: header is line 1
    for column in ("observed_at", "persons", "entry_country"):
        assert f"column '{column}'" in proc.stderr
    assert _run(["info"], store).output.count("events") <= 2  # no quarter lines: nothing stored


def test_skip_invalid_writes_rejected_rows(tmp_path, store):
    path = _csv(tmp_path, GOOD_ROWS + ["E4;2025-01-01 10:00;48.0;2.0;motorway;1;0;car;FR;Paris\n"], "mixed.csv")
    rejected = tmp_path / "rejected.csv"
    result = _run(["import", str(path), "--skip-invalid", "--rejected", str(rejected)], store)
    assert result.exit_code == 0
    assert "3 imported" in result.output and "1 rejected" in result.output
    text = rejected.read_text(encoding="utf-8")
    assert "E4" in text and "reason" in text.splitlines()[0]


def test_demo_is_reproducible_and_creates_login(tmp_path):
    outputs = []
    for name in ("a.gpkg", "b.gpkg"):
        store = tmp_path / name
        result = _run(["demo", "--events", "3000", "--seed", "7"], store, env={"GEO_IBM_DEMO_PASSWORD": "demo-pass-123"})
        assert result.exit_code == 0, result.output
        assert "3000 events imported" in result.output
        assert "demo login: user 'demo', password 'demo-pass-123'" in result.output
        outputs.append(pyogrio.read_dataframe(store, layer="events").sort_values("event_id").reset_index(drop=True))
    a, b = outputs
    assert len(a) == 3000
    assert (a["event_id"] == b["event_id"]).all()
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()
    truth = pyogrio.read_dataframe(tmp_path / "a.gpkg", layer="ground_truth")
    assert {"emerging", "fading"} <= set(truth["kind"])


def test_users_add_token_and_list(store):
    env = {"GEO_IBM_PASSWORD": "s3cret-passw0rd"}
    assert _run(["users", "add", "ana", "--role", "analyst"], store, env=env).exit_code == 0
    token = _run(["users", "token", "ana"], store).output.strip()
    assert len(token) > 20
    listing = _run(["users", "list"], store).output
    assert "ana" in listing and "analyst" in listing
    from geo_ibm.accounts import user_for_token, verify_password
    from geo_ibm.store import open_store

    st = open_store(store)
    assert user_for_token(st, token)["name"] == "ana"
    assert verify_password(st, "ana", "s3cret-passw0rd")
    bad = CliRunner().invoke(main, ["--store", str(store), "users", "add", "bob", "--role", "king"], env=env)
    assert bad.exit_code != 0 and "king" in bad.output


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hot") / "store.gpkg"
    result = CliRunner().invoke(main, ["--store", str(path), "demo", "--events", "6000", "--seed", "3", "--no-account"])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("method", ["gi", "lisa", "kde", "clusters", "emerging"])
@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_hotspots_writes_result_with_parameters(demo_store, tmp_path, method, suffix):
    out = tmp_path / f"hot_{method}{suffix}"
    args = ["hotspots", "--method", method, "--out", str(out)]
    if method in ("gi", "lisa", "emerging"):
        args += ["--cell", "1000"]
    result = CliRunner().invoke(main, ["--store", str(demo_store), *args])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output[: result.output.rindex("}") + 1])
    assert printed["method"] == method and printed["n_events"] == 6000
    frame = gpd.read_file(out)
    assert len(frame) > 0
    if suffix == ".gpkg":
        stored = json.loads(pyogrio.read_info(out)["layer_metadata"]["parameters"])
    else:
        stored = json.loads(out.read_text(encoding="utf-8"))["parameters"]
    assert stored["method"] == method
    if method in ("gi", "lisa", "emerging"):
        assert float(stored["cell"]) == 1000.0
        assert float(stored["band"]) > 0


def test_hotspots_bad_input_is_a_clean_error(demo_store, tmp_path):
    out = tmp_path / "x.gpkg"
    for args, needle in (
        (["--method", "gi", "--cell", "0"], "cell"),
        (["--method", "gi", "--region", "Atlantis"], "region"),
        (["--method", "gi", "--from", "2030-01-01"], "2030"),
        (["--method", "gi", "--from", "yesterday-ish"], "start"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "geo_ibm.cli", "--store", str(demo_store), "hotspots", *args, "--out", str(out)],
            capture_output=True, text=True,
        )
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert needle in proc.stderr, (args, proc.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_waitress_and_answers(demo_store, tmp_path):
    port = _free_port()
    env = {**os.environ, "GEO_IBM_INSTANCE": str(tmp_path / "instance")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "geo_ibm.cli", "--store", str(demo_store), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
                    body = response.read().decode()
                    server = response.headers.get("Server", "")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode() if proc.poll() is not None else "no answer")
                time.sleep(0.3)
        assert "password" in body.lower()
        assert "waitress" in server.lower()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=5)
        assert info.value.code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_regions_installs_an_official_canton_file(tmp_path, store, monkeypatch):
    from geo_ibm import layers

    monkeypatch.setenv("GEO_IBM_STORE", str(store))
    official = layers.cantons().rename(columns={"canton": "CANTON"}).drop(columns="region")
    official["CANTON"] = "Canton " + official["CANTON"].str.upper()  # spelt as an official file might
    official.geometry = official.geometry.buffer(-50)  # not the shipped shapes
    path = tmp_path / "act_cantons.geojson"
    official.to_crs(4326).to_file(path, driver="GeoJSON")
    result = _run(["regions", str(path)], store)
    assert result.exit_code == 0, result.output
    assert "12 cantons in 4 police regions" in result.output
    installed = layers.cantons()
    assert len(installed) == 12
    assert installed.area.sum() < official.area.sum() + 1e4  # the buffered shapes, not the shipped ones
    assert set(installed["region"]) == {"Capitale", "Centre-Est", "Nord", "Sud-Ouest"}
    bad = tmp_path / "bad.geojson"
    official.assign(CANTON="Atlantis").to_crs(4326).to_file(bad, driver="GeoJSON")
    failed = subprocess.run([sys.executable, "-m", "geo_ibm.cli", "--store", str(store), "regions", str(bad)],
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "Atlantis" in failed.stderr and "Traceback" not in failed.stderr


def test_regions_moves_the_stored_events_to_the_installed_cantons(tmp_path, store, monkeypatch):
    from geo_ibm import layers
    from geo_ibm.store import open_store

    monkeypatch.setenv("GEO_IBM_STORE", str(store))
    assert _run(["import", str(_csv(tmp_path, GOOD_ROWS)), "--user", "tester"], store).exit_code == 0
    before = {e: open_store(store).event(e)["canton"] for e in ("E1", "E2", "E3")}
    assert before == {"E1": "Luxembourg", "E2": "Remich", "E3": "Luxembourg"}
    official = layers.cantons().rename(columns={"canton": "CANTON"}).drop(columns="region")
    # Luxembourg and Remich swap places: the events there must change canton and region.
    a, b = official.index[official["CANTON"] == "Luxembourg"][0], official.index[official["CANTON"] == "Remich"][0]
    official.loc[[a, b], "CANTON"] = ["Remich", "Luxembourg"]
    path = tmp_path / "swapped.geojson"
    official.to_crs(4326).to_file(path, driver="GeoJSON")
    result = _run(["regions", str(path)], store)
    assert result.exit_code == 0, result.output
    moved = {e: (open_store(store).event(e)["canton"], open_store(store).event(e)["region"]) for e in ("E1", "E2", "E3")}
    assert moved == {"E1": ("Remich", "Centre-Est"), "E2": ("Luxembourg", "Capitale"), "E3": ("Remich", "Centre-Est")}
    counts = open_store(store).counts(by="region")
    assert counts.set_index("region")["events"].to_dict() == {"Capitale": 1, "Centre-Est": 2}
