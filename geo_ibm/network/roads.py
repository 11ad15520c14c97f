"""The road layer the network is built from: the installed OpenStreetMap roads, else the shipped corridors.

Every road layer has the same columns (:data:`ROAD_COLUMNS`), whatever its source, so the graph,
the snapping and the statistics never ask where the roads came from.
"""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm import layers
from geo_ibm.network import installed
from geo_ibm.settings import OSM_ATTRIBUTION, WORKING_CRS

ROAD_COLUMNS: tuple[str, ...] = ("road_id", "ref", "name", "highway", "oneway", "maxspeed")
"""Columns of a road layer besides ``geometry`` (LineString, EPSG:2169):

``road_id`` (str: ``w<id>`` for an OSM way, ``corridor-<n>`` for a shipped line), ``ref`` (road
numbers, ``;``-separated, ``""`` when none), ``name`` (``""`` when none), ``highway`` (one of
:data:`HIGHWAY_CLASSES`), ``oneway`` (int8: 0 both ways, 1 along the geometry, -1 against it),
``maxspeed`` (km/h, NaN when unknown)."""

HIGHWAY_CLASSES: tuple[str, ...] = (
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
    "secondary", "secondary_link", "tertiary", "tertiary_link",
)
"""OpenStreetMap ``highway`` classes a road network keeps, most important first."""

CLASS_SPEED_KMH: dict[str, float] = {
    "motorway": 110.0, "motorway_link": 60.0, "trunk": 90.0, "trunk_link": 50.0,
    "primary": 70.0, "primary_link": 40.0, "secondary": 60.0, "secondary_link": 40.0,
    "tertiary": 50.0, "tertiary_link": 30.0,
}
"""Travel speed (km/h) of a road whose ``maxspeed`` is unknown: below Luxembourg's limits (motorways
130, rural roads 90, built-up areas 50 km/h) to allow for junctions, towns and traffic."""

SHIPPED_CLASS: dict[str, str] = {"motorway": "motorway", "national": "primary", "collector": "secondary"}
"""The shipped corridors' ``class`` as an OpenStreetMap ``highway`` class."""

SHIPPED_SOURCE = ("schematic corridors shipped in data/boundaries/road_corridors.geojson "
                  "(positional accuracy about 1 km; see data/boundaries/README.md)")


def empty_roads() -> gpd.GeoDataFrame:
    """A road layer with no rows and the columns of :data:`ROAD_COLUMNS`."""
    frame = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        ROAD_COLUMNS, (object, object, object, object, np.int8, float), strict=True)})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=WORKING_CRS), crs=WORKING_CRS)


def shipped_roads() -> gpd.GeoDataFrame:
    """The shipped schematic corridors (:func:`geo_ibm.layers.road_corridors`) as a road layer.

    Returns
    -------
    GeoDataFrame
        :data:`ROAD_COLUMNS` and ``geometry``; every line drivable both ways, ``maxspeed`` unknown,
        ``highway`` from the corridor class (:data:`SHIPPED_CLASS`).
    """
    corridors = layers.road_corridors()
    frame = pd.DataFrame({
        "road_id": [f"corridor-{i}" for i in range(len(corridors))],
        "ref": corridors["ref"].fillna("").astype(str).to_numpy(),
        "name": corridors["name"].fillna("").astype(str).to_numpy(),
        "highway": corridors["class"].map(SHIPPED_CLASS).fillna("secondary").to_numpy(),
        "oneway": np.zeros(len(corridors), dtype=np.int8),
        "maxspeed": np.full(len(corridors), np.nan),
    })
    return gpd.GeoDataFrame(frame, geometry=corridors.geometry.to_numpy(), crs=WORKING_CRS)


def road_layer() -> gpd.GeoDataFrame:
    """The roads analyses use: the installed OpenStreetMap extract (``geo-ibm roads import``), else
    the shipped corridors.

    Returns
    -------
    GeoDataFrame
        :data:`ROAD_COLUMNS` and ``geometry`` in EPSG:2169.
    """
    roads = installed.installed_roads()
    return shipped_roads() if roads is None else roads


def road_source() -> dict[str, Any]:
    """Where :func:`road_layer` comes from, to print under a map or in a layer's metadata.

    Returns
    -------
    dict
        ``kind`` ("osm" or "shipped"), ``source``, ``date`` (extract date or ``None``),
        ``attribution`` (the ODbL notice for OpenStreetMap data, else ``None``), ``roads`` (rows),
        ``installed_at`` (when the extract was installed; ``None`` for the shipped corridors): two
        installs of the same extract differ by it, so caches keyed on this dict see the new one.
    """
    info = installed.installed_roads_info()
    if info:
        return {"kind": "osm", "source": info.get("source"), "date": info.get("date"),
                "attribution": info.get("attribution") or OSM_ATTRIBUTION, "roads": info.get("roads"),
                "installed_at": info.get("installed_at")}
    return {"kind": "shipped", "source": SHIPPED_SOURCE, "date": None, "attribution": None,
            "roads": len(layers.road_corridors()), "installed_at": None}
