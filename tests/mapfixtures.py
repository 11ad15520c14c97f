"""Map test fixtures: a box outline, three border lines, crossings with hostile names, synthetic events."""
from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely

XSS = "<img src=x onerror=window.__xss=1> ${window.__xss=2} `back` \\ </script>"


@pytest.fixture
def outline() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": ["Luxembourg"]}, geometry=[shapely.box(50_000, 57_000, 106_000, 139_000)], crs=2169)


@pytest.fixture
def borders() -> gpd.GeoDataFrame:
    lines = [
        shapely.LineString([(50_000, 60_000), (50_000, 139_000)]),
        shapely.LineString([(50_000, 57_000), (106_000, 57_000)]),
        shapely.LineString([(106_000, 57_000), (106_000, 139_000)]),
    ]
    return gpd.GeoDataFrame(
        {"neighbour": ["BE", "FR", "DE"], "name": ["Belgium", "France", "Germany"], "length_km": [79.0, 56.0, 82.0]},
        geometry=lines, crs=2169,
    )


@pytest.fixture
def crossings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"crossing_id": ["c1", "c2", "c3"], "name": ["A3 Dudelange <b>x</b>", "Wasserbillig", "Weird `${1}`"],
         "kind": ["motorway", "rail", "ferry"], "ref": ["A3", "", "F"], "neighbour": ["FR", "DE", "DE"]},
        geometry=[shapely.Point(70_000, 57_500), shapely.Point(105_500, 100_000), shapely.Point(105_500, 80_000)], crs=2169,
    )


def synthetic_events(n: int, *, seed: int, notes: str = "ok") -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(52_000, 104_000, n)
    y = rng.uniform(58_000, 138_000, n)
    return gpd.GeoDataFrame(
        {"event_id": [f"E{i}" for i in range(n)], "location_kind": "motorway", "persons": 3, "notes": notes},
        geometry=gpd.points_from_xy(x, y), crs=2169,
    )


def feature_collections(document: str) -> list[dict]:
    """Every GeoJSON FeatureCollection embedded in a Folium document."""
    found = []
    decoder = json.JSONDecoder()
    for match in re.finditer(r"_add\((\{)", document):
        obj, _end = decoder.raw_decode(document, match.start(1))
        if obj.get("type") == "FeatureCollection":
            found.append(obj)
    return found
