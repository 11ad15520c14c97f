"""Reading OpenStreetMap extracts into the road layer, and installing it next to the store."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from osmfixtures import WAYS, to_pbf, write_osm
from pyproj import Geod, Transformer
from scipy.sparse import csgraph

from geo_ibm import layers
from geo_ibm.errors import ValidationError
from geo_ibm.io.osm import osm_extract_date
from geo_ibm.network import installed, osm
from geo_ibm.network.graph import build_network
from geo_ibm.network.osm import hstore_value, parse_maxspeed, parse_oneway, read_osm
from geo_ibm.network.roads import ROAD_COLUMNS, road_layer

TO_LUREF = Transformer.from_crs("EPSG:4326", "EPSG:2169", always_xy=True)
GEOD = Geod(ellps="WGS84")


def geodesic_m(coords: list[tuple[float, float]]) -> float:
    lons, lats = zip(*coords)
    return float(GEOD.line_length(lons, lats))


@pytest.fixture
def extract(tmp_path) -> Path:
    return write_osm(tmp_path / "luxembourg.osm", timestamp="2026-11-30T21:21:02Z")


def test_read_osm_keeps_the_road_classes_with_their_tags(extract):
    roads = read_osm(extract)
    assert list(roads.columns) == [*ROAD_COLUMNS, "geometry"]
    assert roads.crs.to_epsg() == 2169
    assert set(roads.geom_type) == {"LineString"}
    by_id = roads.set_index("road_id")
    # footway and residential dropped, Paris clipped out
    assert list(roads["road_id"]) == ["w100", "w101", "w102", "w103", "w104", "w105", "w109"]
    assert by_id.loc["w100", ["ref", "name", "highway", "oneway", "maxspeed"]].to_list() == [
        "A3", "Autoroute de Dudelange", "motorway", 1, 130.0]
    assert by_id.loc["w101", ["ref", "name", "highway", "oneway"]].to_list() == ["", "", "motorway_link", 0]
    assert np.isnan(by_id.loc["w101", "maxspeed"])
    assert by_id.loc["w102", ["ref", "name", "oneway"]].to_list() == ["N6;E44", 'Route "d\'Arlon"', -1]
    assert by_id.loc["w102", "maxspeed"] == pytest.approx(50 * 1.609344)
    assert by_id.loc["w103", "oneway"] == 0 and np.isnan(by_id.loc["w103", "maxspeed"])  # FR:urban is implicit
    assert by_id.loc["w104", ["oneway", "maxspeed"]].to_list() == [-1, 30.0]  # not the 999 of the description
    assert by_id.loc["w105", ["ref", "highway", "oneway"]].to_list() == ["B7", "trunk", 1]
    assert np.isnan(by_id.loc["w105", "maxspeed"])
    assert by_id.loc["w109", "maxspeed"] == pytest.approx(18.52)
    assert roads["oneway"].dtype == np.int8 and roads["maxspeed"].dtype == float


def test_read_osm_geometry_follows_the_nodes_and_measures_as_the_geodesic(extract):
    roads = read_osm(extract).set_index("road_id")
    for way_id in (100, 101, 102, 103, 104, 105):
        coords = WAYS[way_id][1]
        geom = roads.loc[f"w{way_id}", "geometry"]
        expected = np.column_stack(TO_LUREF.transform(*zip(*coords)))
        np.testing.assert_allclose(shapely.get_coordinates(geom), expected, atol=1e-6)
        assert geom.length == pytest.approx(geodesic_m(coords), rel=5e-4)


def test_read_osm_cuts_a_road_at_the_margin(extract):
    outline = shapely.union_all(layers.luxembourg_outline().geometry.to_numpy())
    full = geodesic_m(WAYS[109][1])
    whole = shapely.LineString(np.column_stack(TO_LUREF.transform(*zip(*WAYS[109][1]))))
    lengths = []
    for margin in (0.0, 1000.0, 5000.0):
        piece = read_osm(extract, margin_m=margin).set_index("road_id").loc["w109", "geometry"]
        start, end = shapely.get_coordinates(piece)[[0, -1]]
        np.testing.assert_allclose(start, TO_LUREF.transform(6.30, 49.61), atol=1e-6)
        # the piece ends where the line leaves the buffered outline: margin_m from the outline
        assert shapely.distance(outline, shapely.Point(end)) == pytest.approx(margin, abs=1.0)
        assert shapely.distance(shapely.Point(end), whole) < 1e-6  # on the projected way
        lengths.append(piece.length)
    assert lengths[0] < lengths[1] < lengths[2] < full / 2


def test_read_osm_splits_a_way_that_leaves_and_reenters(tmp_path):
    # east of Luxembourg City into Germany and back: two pieces, both with the way's road_id
    ways = {7: ({"highway": "primary"}, [(6.30, 49.61), (7.00, 49.61), (7.00, 49.62), (6.30, 49.62)])}
    roads = read_osm(write_osm(tmp_path / "loop.osm", ways))
    assert list(roads["road_id"]) == ["w7", "w7"]
    outline = shapely.union_all(layers.luxembourg_outline().geometry.to_numpy())
    ends = shapely.points(shapely.get_coordinates(roads.geometry.to_numpy()))
    assert shapely.distance(outline, ends).max() == pytest.approx(osm.road_margin_m(), abs=1.0)


def test_pbf_reads_as_the_xml_and_gives_its_date(extract, tmp_path):
    pbf = to_pbf(extract, tmp_path / "luxembourg.osm.pbf", replication_timestamp="2026-11-30T21:21:02Z")
    from_xml, from_pbf = read_osm(extract), read_osm(pbf)
    pd.testing.assert_frame_equal(from_pbf.drop(columns="geometry"), from_xml.drop(columns="geometry"))
    assert from_pbf.geometry.geom_equals_exact(from_xml.geometry, tolerance=0.01).all()  # PBF stores 1e-7 degrees
    assert osm_extract_date(pbf) == "2026-11-30"
    assert osm_extract_date(extract) == "2026-11-30"
    assert osm_extract_date(to_pbf(extract, tmp_path / "undated.osm.pbf")) is None


@pytest.mark.parametrize("change", ["fields", "json"])
def test_a_custom_gdal_osm_configuration_reads_the_same(extract, tmp_path, monkeypatch, change):
    import pyogrio

    conf = (Path(pyogrio.get_gdal_data_path()) / "osmconf.ini").read_text(encoding="utf-8")
    if change == "fields":  # ref, oneway and maxspeed as fields of their own instead of in other_tags
        conf = conf.replace("attributes=name,highway,waterway,aerialway,barrier,man_made,railway",
                            "attributes=name,highway,ref,oneway,maxspeed,waterway,aerialway,barrier,man_made,railway")
    else:  # other_tags as JSON
        conf = conf.replace("#tags_format=json", "tags_format=json")
    assert conf != (Path(pyogrio.get_gdal_data_path()) / "osmconf.ini").read_text(encoding="utf-8")
    expected = read_osm(extract)
    (tmp_path / "osmconf.ini").write_text(conf, encoding="utf-8")
    monkeypatch.setenv("OSM_CONFIG_FILE", str(tmp_path / "osmconf.ini"))
    fields = pyogrio.read_info(extract, layer="lines")["fields"]
    assert ("maxspeed" in fields) == (change == "fields")
    pd.testing.assert_frame_equal(read_osm(extract), expected)


def ring(lon: float, lat: float, r: float = 0.0005) -> list[tuple[float, float]]:
    """A closed way around ``(lon, lat)``, counter-clockwise from its east point (E, N, W, S, E)."""
    east, north, west, south = (lon + r, lat), (lon, lat + r), (lon - r, lat), (lon, lat - r)
    return [east, north, west, south, east]


ROUNDABOUTS: dict[int, tuple[dict[str, str], list[tuple[float, float]]]] = {
    1: ({"highway": "primary", "junction": "roundabout"}, ring(6.13, 49.61)),
    2: ({"highway": "secondary", "junction": "circular"}, ring(6.14, 49.61)),
    3: ({"highway": "tertiary", "junction": "roundabout", "oneway": "no"}, ring(6.15, 49.61)),
    4: ({"highway": "tertiary", "junction": "roundabout", "oneway": "-1"}, ring(6.16, 49.61)),
    5: ({"highway": "primary", "junction": "Roundabout", "oneway": "yes"}, ring(6.17, 49.61)),
    6: ({"highway": "primary", "junction": "yes"}, [(6.18, 49.61), (6.19, 49.62)]),  # a junction, not a ring
    7: ({"highway": "primary"}, [(6.20, 49.61), (6.21, 49.62)]),
    # roads into roundabout 1 at its east, north and south points
    8: ({"highway": "primary"}, [(6.1305, 49.61), (6.1320, 49.61)]),
    9: ({"highway": "primary"}, [(6.13, 49.6105), (6.13, 49.6120)]),
    10: ({"highway": "primary"}, [(6.13, 49.6095), (6.13, 49.6080)]),
}


@pytest.mark.parametrize("kind", ["osm", "pbf"])
def test_roundabouts_are_one_way_along_the_way_unless_tagged_otherwise(tmp_path, kind):
    path = write_osm(tmp_path / "roundabouts.osm", ROUNDABOUTS)
    if kind == "pbf":
        path = to_pbf(path, tmp_path / "roundabouts.osm.pbf")
    roads = read_osm(path).set_index("road_id")
    assert roads["oneway"].to_dict() == {"w1": 1, "w2": 1, "w3": 0, "w4": -1, "w5": 1, "w6": 0, "w7": 0,
                                         "w8": 0, "w9": 0, "w10": 0}
    # on the graph: round roundabout 1 only counter-clockwise, the way it is drawn
    network = build_network(roads.reset_index())
    seg = network.segments[network.segments["road_id"] == "w1"]
    assert len(seg) == 3 and (seg["oneway"] == 1).all()
    nodes = {name: int(np.argmin(np.hypot(*(network.nodes - np.array(TO_LUREF.transform(*xy))).T)))
             for name, xy in zip(("east", "north", "south"), [ring(6.13, 49.61)[i] for i in (0, 1, 3)], strict=True)}
    distance = csgraph.dijkstra(network.matrix("length"), directed=True, indices=[nodes["east"], nodes["south"]])
    length = dict(zip(zip(seg["u"], seg["v"]), seg["length_m"], strict=True))
    east_north = length[(nodes["east"], nodes["north"])]
    north_south = length[(nodes["north"], nodes["south"])]  # past the west point
    south_east = length[(nodes["south"], nodes["east"])]
    # east -> south the long way round (east, north, west, south); south -> east directly
    assert distance[0, nodes["south"]] == pytest.approx(east_north + north_south)
    assert distance[1, nodes["east"]] == pytest.approx(south_east)
    assert distance[0, nodes["south"]] > 2.5 * distance[1, nodes["east"]]


def test_tag_parsers():
    tags = pd.Series(['"ref"=>"A3","oneway"=>"yes"', '"name:x"=>"a\\"ref\\"=>\\"Z","ref"=>"N\\"1\\\\"', None,
                      '"maxspeed"=>"50", "ref"=>"B7"'])
    assert hstore_value(tags, "ref").to_list()[:2] == ["A3", 'N"1\\']
    assert pd.isna(hstore_value(tags, "ref")[2]) and hstore_value(tags, "ref")[3] == "B7"
    oneway = pd.Series(["yes", "TRUE", "1", "-1", "reverse", "no", "alternating", None, " yes "])
    assert parse_oneway(oneway).tolist() == [1, 1, 1, -1, -1, 0, 0, 0, 1]
    junction = pd.Series(["roundabout"] * 5 + ["circular", "roundabout", "roundabout", None])
    assert parse_oneway(oneway, junction=junction).tolist() == [1, 1, 1, -1, -1, 0, 0, 1, 1]
    untagged = pd.Series([None, "", None, None, None], dtype=object)
    assert parse_oneway(untagged, junction=pd.Series([" Roundabout", "circular", "yes", None, "circular"])
                        ).tolist() == [1, 1, 0, 0, 1]
    speeds = pd.Series(["50", "50 mph", "130 km/h", "90;70", "FR:urban", "none", "walk", "0", "999", "7.5", None,
                        "signals", "40kmh"])
    np.testing.assert_allclose(parse_maxspeed(speeds), [50, 80.4672, 130, 90, np.nan, np.nan, np.nan, np.nan,
                                                        np.nan, 7.5, np.nan, np.nan, 40])


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("empty.osm", b"", "empty"),
    ("empty.osm.pbf", b"", "empty"),
    ("random.osm.pbf", bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)), "not an OpenStreetMap PBF"),
    ("text.osm", b"hello, not xml\n", "not an OpenStreetMap XML"),
    ("vrt.osm", b"<OGRVRTDataSource><OGRVRTLayer name='x'/></OGRVRTDataSource>", "not an OpenStreetMap XML"),
    ("roads.xml", b'<osm version="0.6"></osm>', "not an OpenStreetMap file name"),
    ("nothing.osm", b'<?xml version="1.0"?>\n<osm version="0.6"></osm>\n', "no roads of the kept classes"),
])
def test_bad_files_are_refused_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValidationError, match=reason) as info:
        read_osm(path)
    assert name in str(info.value)
    assert info.value.problems and info.value.problems[0].file == name


def test_corrupt_pbf_and_xml_are_refused(extract, tmp_path):
    pbf = to_pbf(extract, tmp_path / "whole.osm.pbf")
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes(pbf.read_bytes()[:60])  # a valid header block, then nothing whole
    with pytest.raises(ValidationError, match="cut.osm.pbf: corrupt or unreadable"):
        read_osm(cut)
    garbled = tmp_path / "garbled.osm.pbf"
    data = bytearray(pbf.read_bytes())
    data[40:] = bytes(len(data) - 40)
    garbled.write_bytes(bytes(data))
    with pytest.raises(ValidationError, match="garbled.osm.pbf: corrupt or unreadable"):
        read_osm(garbled)
    broken = tmp_path / "broken.osm"
    broken.write_text(extract.read_text()[: len(extract.read_text()) // 2] + "<<<", encoding="utf-8")
    with pytest.raises(ValidationError, match="broken.osm: corrupt or unreadable"):
        read_osm(broken)


def test_files_without_roads_in_luxembourg_are_refused(tmp_path):
    paths = {"paths": {1: ({"highway": "footway"}, [(6.12, 49.58), (6.13, 49.59)]),
                       2: ({"highway": "residential"}, [(6.12, 49.58), (6.14, 49.59)]),
                       3: ({"waterway": "river"}, [(6.12, 49.58), (6.15, 49.59)])},
             "far": {1: ({"highway": "motorway", "ref": "A1"}, [(2.35, 48.85), (2.40, 48.90)]),
                     2: ({"highway": "primary"}, [(6.40, 50.20), (6.50, 50.30)])}}
    with pytest.raises(ValidationError, match="paths.osm: no roads of the kept classes"):
        read_osm(write_osm(tmp_path / "paths.osm", paths["paths"]))
    with pytest.raises(ValidationError, match="far.osm: none of its roads of the kept classes is within 5,000 m of Luxembourg"):
        read_osm(write_osm(tmp_path / "far.osm", paths["far"]))


def test_size_is_bounded_before_reading(extract, monkeypatch):
    size = extract.stat().st_size
    monkeypatch.setenv("GEO_IBM_ROADS_MAX_MB", str(size / 2**20 / 2))
    said = rf"luxembourg.osm: the file has {size / 1024:.1f} KiB, more than the {size / 2048:.1f} KiB accepted"
    with pytest.raises(ValidationError, match=said + r" \(GEO_IBM_ROADS_MAX_MB\)"):
        read_osm(extract)
    monkeypatch.setenv("GEO_IBM_ROADS_MAX_MB", "lots")
    with pytest.raises(ValidationError, match="GEO_IBM_ROADS_MAX_MB"):
        read_osm(extract)
    monkeypatch.delenv("GEO_IBM_ROADS_MAX_MB")
    assert osm.osm_max_bytes() == 2048 * 2**20
    with pytest.raises(ValidationError, match="margin_m"):
        read_osm(extract, margin_m=-1)
    with pytest.raises(ValidationError, match="file not found"):
        read_osm(extract.with_name("missing.osm"))


def test_default_margin_follows_the_event_margin_when_larger(monkeypatch):
    assert osm.road_margin_m() == 5000.0
    monkeypatch.setenv("GEO_IBM_MARGIN_M", "8000")
    assert osm.road_margin_m() == 8000.0


def test_install_and_read_back(extract, tmp_path):
    assert installed.installed_roads() is None and installed.installed_roads_info() is None
    roads = read_osm(extract)
    path = installed.install_roads(roads, source="luxembourg.osm", extract_date="2026-11-30")
    assert path == tmp_path / "store" / "roads.gpkg" and Path(path).is_file()
    back = installed.installed_roads()
    assert back is not None
    pd.testing.assert_frame_equal(back.drop(columns="geometry"), roads.drop(columns="geometry"), check_dtype=False)
    assert back["oneway"].dtype == np.int8
    assert back.geometry.geom_equals_exact(roads.geometry, tolerance=1e-6).all()
    info = installed.installed_roads_info()
    assert info is not None
    assert {k: info[k] for k in ("source", "date", "attribution", "roads")} == {
        "source": "luxembourg.osm", "date": "2026-11-30", "attribution": "© OpenStreetMap contributors, ODbL 1.0",
        "roads": 7}
    assert info["length_km"] == pytest.approx(roads.geometry.length.sum() / 1000, abs=1e-3)
    assert info["installed_at"].endswith("+00:00")
    assert list(road_layer()["road_id"]) == list(roads["road_id"])
    assert [p.name for p in Path(path).parent.iterdir()] == ["roads.gpkg"]  # no staged file left


def test_a_new_install_replaces_the_cached_one(extract):
    roads = read_osm(extract)
    installed.install_roads(roads, source="first")
    assert installed.installed_roads_info()["source"] == "first"
    installed.install_roads(roads.iloc[:2], source="second")
    assert installed.installed_roads_info()["source"] == "second"
    assert len(installed.installed_roads()) == 2
    changed = installed.installed_roads()
    changed.loc[0, "ref"] = "changed"  # a copy: the cache is not changed through it
    assert installed.installed_roads().loc[0, "ref"] == "A3"


def test_a_refused_install_leaves_the_installed_network(extract):
    roads = read_osm(extract)
    installed.install_roads(roads, source="good")
    bad = [roads.assign(highway="footway"), roads.assign(oneway=2), roads.iloc[:0], roads.drop(columns="ref"),
           roads.set_geometry(roads.geometry.buffer(1))]
    for layer in bad:
        with pytest.raises(ValidationError, match="install_roads"):
            installed.install_roads(layer, source="bad")
    for kwargs in ({"source": " "}, {"source": "x", "extract_date": "30/11/2026"}):
        with pytest.raises(ValidationError, match="source|extract_date"):
            installed.install_roads(roads, **kwargs)
    assert installed.installed_roads_info()["source"] == "good"
    assert len(installed.installed_roads()) == len(roads)


def test_database_store_keeps_the_roads_in_the_instance_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("GEO_IBM_STORE", "postgresql://user@localhost:5432/ibm")
    monkeypatch.setenv("GEO_IBM_INSTANCE", str(tmp_path / "inst"))
    assert installed.installed_roads_path() == tmp_path / "inst" / "roads.gpkg"
    monkeypatch.delenv("GEO_IBM_INSTANCE")
    assert installed.installed_roads_path() == Path("instance") / "roads.gpkg"
    assert os.fspath(installed.installed_roads_path()).startswith("instance")
