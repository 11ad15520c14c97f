"""Tests of geo_ibm.geojson against GDAL's own RFC 7946 GeoJSON writer."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from geo_ibm.errors import CrsError
from geo_ibm.geojson import geometry_to_geojson, json_value, to_feature_collection


@pytest.fixture
def mixed() -> gpd.GeoDataFrame:
    """Points, a clockwise polygon with a hole, a line and a multipolygon near Luxembourg City (EPSG:2169)."""
    square = Polygon([(76000, 74000), (76000, 76000), (78000, 76000), (78000, 74000)],  # clockwise exterior
                     holes=[[(76500, 74500), (77500, 74500), (77500, 75500), (76500, 75500)]])  # counter-clockwise hole
    return gpd.GeoDataFrame(
        {
            "name": ["a", "b", "c", "d"],
            "count": np.array([1, 2, 3, 4], dtype=np.int64),
            "score": [0.5, np.nan, np.inf, -1.25],
            "flag": np.array([True, False, True, False]),
            "when": pd.to_datetime(["2025-01-01T08:00", None, "2025-07-01T12:30", "2025-03-30T02:30"]).tz_localize(
                "Europe/Luxembourg", nonexistent="shift_forward"),
        },
        geometry=[
            Point(77000, 75000),
            square,
            LineString([(60000, 60000), (90000, 120000)]),
            MultiPolygon([Polygon([(50000, 50000), (51000, 50000), (51000, 51000)]), Polygon([(52000, 52000), (53000, 52000), (53000, 53000)])]),
        ],
        crs="EPSG:2169",
    )


def _gdal_reference(gdf: gpd.GeoDataFrame, tmp_path) -> dict:
    path = tmp_path / "ref.geojson"
    gdf[["geometry"]].to_crs("EPSG:4326").to_file(path, driver="GeoJSON", engine="pyogrio", RFC7946="YES", COORDINATE_PRECISION=9)
    return json.loads(path.read_text())


def _flat(coords) -> np.ndarray:
    return np.asarray(list(_walk(coords)), dtype=float).reshape(-1, 2)


def _walk(coords):
    if isinstance(coords[0], (int, float)):
        yield from coords[:2]
    else:
        for c in coords:
            yield from _walk(c)


def test_coordinates_match_gdal_rfc7946_writer(mixed, tmp_path):
    ours = to_feature_collection(mixed)
    ref = _gdal_reference(mixed, tmp_path)
    assert ours["type"] == "FeatureCollection"
    assert len(ours["features"]) == len(ref["features"]) == 4
    for mine, theirs in zip(ours["features"], ref["features"]):
        assert mine["geometry"]["type"] == theirs["geometry"]["type"]
        a, b = _flat(mine["geometry"]["coordinates"]), _flat(theirs["geometry"]["coordinates"])
        # Same vertices in the same order (GDAL also orients rings by the right-hand rule).
        np.testing.assert_allclose(a, b, atol=1.01e-7, rtol=0)


def test_coordinates_are_rounded_to_seven_decimals(mixed):
    coords = _flat(to_feature_collection(mixed)["features"][2]["geometry"]["coordinates"])
    np.testing.assert_array_equal(coords, np.round(coords, 7))
    lon, lat = coords[0]
    assert 5.7 < lon < 6.6 and 49.4 < lat < 50.2


def test_rings_follow_right_hand_rule(mixed):
    polygon = to_feature_collection(mixed)["features"][1]["geometry"]["coordinates"]
    exterior, hole = (shapely.LinearRing(r) for r in polygon)
    assert exterior.is_ccw
    assert not hole.is_ccw


def test_properties_are_plain_json(mixed):
    fc = to_feature_collection(mixed, id_column="name", members={"numberMatched": np.int64(4), "parameters": {"cell": np.float64(500.0)}})
    text = json.dumps(fc, allow_nan=False)  # fails on NaN/inf or numpy types
    back = json.loads(text)
    assert back["numberMatched"] == 4 and back["parameters"] == {"cell": 500.0}
    props = [f["properties"] for f in back["features"]]
    assert [f["id"] for f in back["features"]] == ["a", "b", "c", "d"]
    assert [p["count"] for p in props] == [1, 2, 3, 4]
    assert [p["score"] for p in props] == [0.5, None, None, -1.25]
    assert [p["flag"] for p in props] == [True, False, True, False]
    assert props[0]["when"] == "2025-01-01T08:00:00+01:00"
    assert props[1]["when"] is None
    assert props[2]["when"] == "2025-07-01T12:30:00+02:00"
    # 02:30 on 30 March 2025 does not exist locally (clocks jump to 03:00).
    assert props[3]["when"] == "2025-03-30T03:00:00+02:00"
    assert "geometry" not in props[0]


def test_empty_and_missing_geometry():
    gdf = gpd.GeoDataFrame({"n": [1, 2]}, geometry=[None, Point()], crs="EPSG:2169")
    fc = to_feature_collection(gdf)
    assert [f["geometry"] for f in fc["features"]] == [None, None]
    assert to_feature_collection(gdf.iloc[:0])["features"] == []


def test_refuses_layer_without_crs():
    with pytest.raises(CrsError, match="no CRS"):
        to_feature_collection(gpd.GeoDataFrame({"n": [1]}, geometry=[Point(0, 0)]))


def test_unknown_id_column(mixed):
    with pytest.raises(KeyError, match="id_column 'nope'"):
        to_feature_collection(mixed, id_column="nope")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(np.int32(3), 3), (np.float32(1.5), 1.5), (float("nan"), None), (pd.NaT, None), (pd.NA, None),
     (np.datetime64("2025-01-01T00:00"), "2025-01-01T00:00:00"), (np.bool_(True), True), ("x", "x"),
     ([np.int64(1), None], [1, None]), (pd.Timedelta(minutes=5), "P0DT0H5M0S")],
)
def test_json_value(value, expected):
    assert json_value(value) == expected


def test_geometry_to_geojson_point():
    assert geometry_to_geojson(Point(6.123456789, 49.6)) == {"type": "Point", "coordinates": [6.1234568, 49.6]}


def test_point_layers_match_gdal_and_the_general_path(tmp_path):
    # All points: the fast path (two coordinate arrays); the same points with one line added
    # go through GEOS. Both must agree with GDAL's writer and with each other.
    rng = np.random.default_rng(4)
    xy = rng.uniform([50_000, 60_000], [105_000, 138_000], size=(200, 2))
    points = gpd.GeoDataFrame({"event_id": [f"E{i}" for i in range(200)]},
                              geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169")
    fast = to_feature_collection(points, id_column="event_id")
    reference = _gdal_reference(points, tmp_path)
    ours = np.array([f["geometry"]["coordinates"] for f in fast["features"]])
    theirs = np.array([f["geometry"]["coordinates"] for f in reference["features"]])
    assert np.abs(ours - theirs).max() <= 0.5e-7 + 1e-12
    mixed = pd.concat([points, gpd.GeoDataFrame({"event_id": ["L"]}, geometry=[LineString([(60000, 60000), (61000, 61000)])],
                                                crs="EPSG:2169")], ignore_index=True)
    general = to_feature_collection(mixed, id_column="event_id")
    assert general["features"][:200] == fast["features"]
    assert fast["features"][0]["id"] == "E0" and fast["features"][0]["properties"] == {"event_id": "E0"}


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_a_collection_in_pieces_is_the_whole_collection(mixed, chunk):
    from geo_ibm.geojson import iter_feature_collection

    members = {"parameters": {"cell": np.float64(500.0), "name": "Écluse"}, "numberMatched": np.int64(4)}
    whole = to_feature_collection(mixed, id_column="name", members=members)
    pieces = list(iter_feature_collection(mixed, id_column="name", members=members, chunk=chunk))
    assert json.loads("".join(pieces)) == json.loads(json.dumps(whole, ensure_ascii=False, allow_nan=False))
    assert "Écluse" in pieces[0]  # UTF-8 text, not \u escapes
    assert len(pieces) == 2 + -(-len(mixed) // chunk)
    empty = mixed.iloc[:0]
    assert "".join(iter_feature_collection(empty, chunk=chunk)) == json.dumps(to_feature_collection(empty))


def _odd_columns() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "name": ["a", "b %s", 'c "quoted"', "d\\n"],
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "kind": pd.Categorical(["x", "y", None, "x"]),
            "share %": [1.0, -0.0, 1e-9, 123456789.125],
            "big": np.array([2**53 + 1, -1, 0, 7], dtype=np.int64),
            "tiny": np.array([1, 2, 3, 4], dtype=np.uint8),
        },
        geometry=[Point(77000, 75000), None, Polygon([(76000, 74000), (76000, 76000), (78000, 76000)]),
                  MultiPolygon([Polygon([(50000, 50000), (51000, 50000), (51000, 51000)])])],
        crs="EPSG:2169",
    )


@pytest.mark.parametrize("id_column", [None, "name", "big"])
def test_feature_texts_parse_to_the_features(mixed, id_column):
    from geo_ibm.geojson import feature_texts, features_text, to_features

    for layer in (mixed if id_column != "big" else mixed.assign(big=np.arange(4)), _odd_columns()):
        texts = feature_texts(layer, id_column=id_column)
        assert len(texts) == len(layer)
        want = json.loads(json.dumps(to_features(layer, id_column=id_column), ensure_ascii=False, allow_nan=False))
        assert [json.loads(t) for t in texts] == want
        assert json.loads(features_text(layer, id_column=id_column)) == want
    # numbers exactly as json writes them, a missing geometry as null
    odd = json.loads(features_text(_odd_columns()))
    assert odd[0]["properties"]["big"] == 2**53 + 1 and odd[1]["geometry"] is None
    assert odd[1]["properties"]["share %"] == 0.0 and odd[1]["properties"]["n"] is None
    assert odd[3]["properties"]["name"] == "d\\n"


def test_point_feature_texts_are_the_dumped_features_to_the_byte():
    from geo_ibm.geojson import features_text, to_features

    points = gpd.GeoDataFrame({"event_id": ["E0", "É1"], "persons": [1, 3]},
                              geometry=[Point(77000, 75000), Point(70000.5, 80000.25)], crs="EPSG:2169")
    assert features_text(points, id_column="event_id") == json.dumps(to_features(points, id_column="event_id"),
                                                                     ensure_ascii=False)
    assert features_text(points.iloc[:0]) == "[]"
