"""Build the candidate control-site layer data/boundaries/control_sites.{csv,geojson}.

Run from the repository root::

    python scripts/build_control_sites.py

Inputs (both kept in the repository, a source and a coordinate quality per row)
----------------------------------------------------------------------------
* ``data/boundaries/crossing_points.csv``: every land crossing point and the airport, kind
  ``crossing`` (``crossing_id`` becomes ``site_id``; source and quality carried over).
* ``data/boundaries/control_site_sources.csv``: motorway service areas, main stations, bus hubs
  and park-and-ride sites.

The build fails unless ids are unique, kinds and qualities are known, coordinates are WGS84
numbers and every site lies inside Luxembourg's outline or within 500 m of it (crossings sit on
the border line).
"""
from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import write_vector
from geo_ibm.layers import luxembourg_outline
from geo_ibm.settings import WORKING_CRS

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "data" / "boundaries"
COLUMNS = ["site_id", "name", "kind", "lat", "lon", "source", "coord_quality", "notes"]
KINDS = ("crossing", "service_area", "station", "bus_hub", "park_and_ride")
QUALITIES = ("published", "published-3rdparty", "derived", "estimate")
MAX_OUTSIDE_M = 500.0


def load_sources() -> pd.DataFrame:
    """The crossings and the curated sites as one table with :data:`COLUMNS`."""
    crossings = pd.read_csv(OUT_DIR / "crossing_points.csv", dtype=str, keep_default_na=False)
    crossings = crossings.rename(columns={"crossing_id": "site_id"})
    crossings["kind"] = "crossing"
    crossings["source"] = "crossing_points.csv: " + crossings["source"]
    extra = pd.read_csv(OUT_DIR / "control_site_sources.csv", dtype=str, keep_default_na=False)
    return pd.concat([crossings[COLUMNS], extra[COLUMNS]], ignore_index=True)


def validate(table: pd.DataFrame) -> gpd.GeoDataFrame:
    """Check the table (see the module docstring) and return it as points in EPSG:2169."""
    problems: list[Problem] = []
    for dup in table.loc[table["site_id"].duplicated(), "site_id"]:
        problems.append(Problem("duplicate site_id", column="site_id", value=dup))
    for col, allowed in (("kind", KINDS), ("coord_quality", QUALITIES)):
        for value in sorted(set(table[col]) - set(allowed)):
            problems.append(Problem(f"not one of {allowed}", column=col, value=value))
    lat = pd.to_numeric(table["lat"], errors="coerce")
    lon = pd.to_numeric(table["lon"], errors="coerce")
    for i in table.index[lat.isna() | lon.isna()]:
        problems.append(Problem("lat/lon not a number", row=int(i) + 2, column="lat", value=table.at[i, "site_id"]))
    if problems:
        raise ValidationError("control sites: bad source rows", problems)
    gdf = gpd.GeoDataFrame(table.assign(lat=lat, lon=lon), geometry=gpd.points_from_xy(lon, lat), crs=4326)
    gdf = gdf.to_crs(WORKING_CRS)
    outline = luxembourg_outline().geometry.iloc[0]
    distance = gdf.geometry.distance(outline)
    for i in gdf.index[distance > MAX_OUTSIDE_M]:
        problems.append(Problem(f"{distance[i]:.0f} m outside Luxembourg", column="lat", value=gdf.at[i, "site_id"]))
    if problems:
        raise ValidationError("control sites: sites outside the territory", problems)
    return gdf


def main() -> int:
    gdf = validate(load_sources())
    gdf.drop(columns="geometry").to_csv(OUT_DIR / "control_sites.csv", index=False)
    write_vector(gdf, OUT_DIR / "control_sites.geojson")
    counts = gdf["kind"].value_counts().to_dict()
    print(f"control_sites: {len(gdf)} sites {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
