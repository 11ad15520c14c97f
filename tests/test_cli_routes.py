"""``geo-ibm routes`` on a small store: events planted on the A3, the layers GDAL reads, every bad input."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from geo_ibm.cli import main
from geo_ibm.layers import crossing_points, road_corridors

HEADER = ("event_id;observed_at;lat;lon;location_kind;persons;smugglers;transport_mode;entry_country;"
          "destination_country\n")
N_A3 = 12
N_FAR = 3


def _lat_lon(points: list[shapely.Point]) -> np.ndarray:
    wgs = gpd.GeoSeries(points, crs="EPSG:2169").to_crs("EPSG:4326")
    return np.column_stack([wgs.y.to_numpy(), wgs.x.to_numpy()])


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 events on the A3 entering from France, heading for Germany; 3 events 3 km from every road."""
    folder = tmp_path_factory.mktemp("routes")
    corridors = road_corridors()
    a3 = corridors[corridors["ref"] == "A3"].geometry.union_all()
    line = shapely.line_merge(a3)
    on_a3 = [line.interpolate(0.3 + 0.03 * i, normalized=True) for i in range(N_A3)]
    rows = []
    for i, (lat, lon) in enumerate(_lat_lon(on_a3)):
        rows.append(f"A{i};2026-08-{i + 1:02d} 10:00;{lat:.6f};{lon:.6f};motorway;3;1;car;FR;DE\n")
    # Far from roads: a point in the Ardennes woods away from the schematic corridors.
    roads = corridors.geometry.union_all()
    far = []
    for x in np.arange(55_000, 100_000, 500.0):
        for y in np.arange(100_000, 135_000, 500.0):
            p = shapely.Point(x, y)
            if roads.distance(p) > 3_000:
                far.append(p)
            if len(far) == N_FAR:
                break
        if len(far) == N_FAR:
            break
    for i, (lat, lon) in enumerate(_lat_lon(far)):
        rows.append(f"F{i};2026-08-20 10:00;{lat:.6f};{lon:.6f};other;1;0;car;BE;NL\n")
    # The previous quarter: two events on the A3.
    for i, (lat, lon) in enumerate(_lat_lon(on_a3[:2])):
        rows.append(f"P{i};2026-05-0{i + 1} 10:00;{lat:.6f};{lon:.6f};motorway;2;0;car;FR;DE\n")
    events = folder / "events.csv"
    events.write_text(HEADER + "".join(rows), encoding="utf-8")
    store = folder / "store.gpkg"
    result = CliRunner().invoke(main, ["--store", str(store), "import", str(events)])
    assert result.exit_code == 0, result.output
    return store


def run(store: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--store", str(store), "routes", *args])
    return result.exit_code, result.stdout, result.stderr


def test_geopackage_layers_hold_the_planted_corridor_entry_and_flows(planted: Path, tmp_path: Path) -> None:
    out = tmp_path / "routes.gpkg"
    code, stdout, stderr = run(planted, "--quarter", "2026Q3", "--out", str(out), "--network-hotspots")
    assert code == 0, stderr
    names = [str(n) for n, _ in pyogrio.list_layers(out) if n != "layer_styles"]
    assert names == ["route_segments", "route_corridors", "route_lixels", "route_attribution", "route_crossings",
                     "route_flows", "route_unsnapped"]
    corridors = pyogrio.read_dataframe(out, layer="route_corridors")
    top = corridors.iloc[0]
    assert (top["rank"], top["ref"], top["events"], top["persons"]) == (1, "A3", N_A3, 3 * N_A3)
    assert top["previous_events"] == 2
    a3_km = road_corridors().loc[lambda f: f["ref"] == "A3"].to_crs(2169).length.sum() / 1000
    assert top["length_km"] == pytest.approx(a3_km, rel=1e-9)
    attribution = pyogrio.read_dataframe(out, layer="route_attribution")
    a3_rows = attribution[attribution["event_id"].str.startswith("A")]
    assert set(a3_rows["crossing_id"]) == {"FR-A3-DUDELANGE"}
    crossings = pyogrio.read_dataframe(out, layer="route_crossings").set_index("crossing_id")
    assert crossings.loc["FR-A3-DUDELANGE", "events"] == N_A3
    assert crossings.loc["FR-A3-DUDELANGE", "persons"] == 3 * N_A3
    flows = pyogrio.read_dataframe(out, layer="route_flows")
    entry = flows[flows["leg"] == "entry"]
    # every planted event enters at Dudelange: the A3 segment at the crossing carries all of them
    first_segment = entry[entry["ref"] == "A3"]["events"].max()
    assert first_segment == N_A3
    exit_leg = flows[flows["leg"] == "exit"]
    assert exit_leg["events"].max() == N_A3  # all head for Germany
    unsnapped = pyogrio.read_dataframe(out, layer="route_unsnapped")
    assert sorted(unsnapped["event_id"]) == [f"F{i}" for i in range(N_FAR)]
    assert (unsnapped["distance_m"] > 3_000).all()
    assert f"{N_FAR} of {N_A3 + N_FAR} events are more than 250 m from every road" in stderr
    metadata = json.loads(pyogrio.read_info(out, layer="route_segments")["layer_metadata"]["parameters"])
    assert metadata["query"]["quarter"] == "2026Q3" and metadata["n_events"] == N_A3 + N_FAR
    assert metadata["network"]["kind"] == "shipped"
    assert "1. A3: 12 events" in stdout


def test_csv_and_geojson_write_one_file_per_layer(planted: Path, tmp_path: Path) -> None:
    code, stdout, stderr = run(planted, "--from", "2026-08-01", "--to", "2026-08-31", "--out", str(tmp_path / "r.csv"))
    assert code == 0, stderr
    files = sorted(p.name for p in tmp_path.glob("r_*.csv"))
    assert files == sorted(f"r_{n}.csv" for n in ("segments", "corridors", "attribution", "crossings", "flows",
                                                  "unsnapped"))
    attribution = pd.read_csv(tmp_path / "r_attribution.csv")
    assert {"lat", "lon", "crossing_id", "confidence"} <= set(attribution.columns)
    segments = pd.read_csv(tmp_path / "r_segments.csv")
    assert segments["wkt"].str.startswith("LINESTRING").all()
    code, _, stderr = run(planted, "--quarter", "2026Q3", "--out", str(tmp_path / "r.geojson"))
    assert code == 0, stderr
    flows = gpd.read_file(tmp_path / "r_flows.geojson")
    assert flows.crs.to_epsg() == 4326 and len(flows) > 0


@pytest.mark.parametrize(("args", "named"), [
    (["--tolerance", "0"], "tolerance"),
    (["--tolerance", "99999"], "tolerance"),
    (["--network-hotspots", "--band", "1e9"], "band"),
    (["--network-hotspots", "--lixel", "1"], "lixel"),
    (["--network-hotspots", "--lixel", "nan"], "lixel"),
    (["--quarter", "2026Q7"], "quarter"),
    (["--from", "2026-09-01", "--to", "2026-08-01"], "to"),
    (["--from", "yesterday"], "from"),
    (["--region", "Atlantis"], "region"),
    (["--entry-country", "XX"], "entry_country"),
])
def test_bad_parameters_are_refused_naming_them(planted: Path, tmp_path: Path, args: list[str], named: str) -> None:
    out = tmp_path / "x.gpkg"
    code, _, stderr = run(planted, *args, "--out", str(out))
    assert code == 1
    assert stderr.startswith("error:") and named in stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def test_an_unsupported_output_is_refused_before_any_work(planted: Path, tmp_path: Path) -> None:
    code, _, stderr = run(planted, "--out", str(tmp_path / "x.txt"))
    assert code == 1 and "--out must end in .gpkg, .geojson, .csv" in stderr


def test_an_empty_period_writes_empty_layers_with_every_crossing(planted: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty.gpkg"
    code, stdout, stderr = run(planted, "--quarter", "2024Q1", "--out", str(out))
    assert code == 0, stderr
    assert stdout.startswith("0 events, 0 on the network")
    crossings = pyogrio.read_dataframe(out, layer="route_crossings")
    road_kinds = crossing_points()["kind"].isin(["motorway", "national_road", "bridge"]).sum()
    assert len(crossings) == road_kinds and (crossings["events"] == 0).all()
