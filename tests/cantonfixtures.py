"""Synthetic canton layers (1 km squares named as another file might spell them) and events at their centres.

Used by the tests of the region layers (``test_layers``) and of the database store's copy of
them (``test_store_postgis``).
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point, box

from geo_ibm import io, layers
from geo_ibm.settings import WORKING_CRS

NAME_VARIANTS = {  # how another file might spell each canton
    "Capellen": "CAPELLEN", "Clervaux": "Canton Clervaux", "Diekirch": "diekirch", "Echternach": "Echternach",
    "Esch-sur-Alzette": "Esch/Alzette", "Grevenmacher": "Grevenmacher", "Luxembourg": "Luxembourg",
    "Mersch": "Mersch", "Redange": "Redange", "Remich": "Remich", "Vianden": "Vianden", "Wiltz": "Wiltz",
}


def synthetic_cantons(path: Path, *, column: str = "CANTON", communes_per_canton: int = 1,
                       rename: dict[str, str] | None = None, drop: str | None = None) -> dict[str, Point]:
    """Write 1 km squares (split into communes) named like an ACT file; return each canton's centre."""
    rows, centres = [], {}
    for k, canton in enumerate(sorted(layers.CANTON_REGION)):
        if canton == drop:
            continue
        x0, y0 = 60000 + (k % 4) * 1000, 70000 + (k // 4) * 1000
        centres[canton] = Point(x0 + 500, y0 + 500)
        width = 1000 / communes_per_canton
        for j in range(communes_per_canton):
            name = (rename or {}).get(canton, NAME_VARIANTS[canton])
            rows.append({column: name, "COMMUNE": f"{canton}-{j}",
                         "geometry": box(x0 + j * width, y0, x0 + (j + 1) * width, y0 + 1000)})
    io.write_vector(gpd.GeoDataFrame(rows, geometry="geometry", crs=WORKING_CRS), path)
    return centres


def swapped(layer: gpd.GeoDataFrame, a: str, b: str) -> gpd.GeoDataFrame:
    """The same shapes with the places of cantons ``a`` and ``b`` exchanged (each keeps its region)."""
    out = layer.copy()
    ia, ib = out.index[out["canton"] == a][0], out.index[out["canton"] == b][0]
    geoms = out.geometry.to_numpy().copy()
    geoms[[ia, ib]] = geoms[[ib, ia]]
    return out.set_geometry(gpd.GeoSeries(geoms, index=out.index, crs=out.crs))


def events_at(centres: dict[str, Point]) -> gpd.GeoDataFrame:
    names = list(centres)
    return gpd.GeoDataFrame(
        {"event_id": [f"at-{n}" for n in names],
         "observed_at": pd.Timestamp("2025-03-01 10:00", tz="Europe/Luxembourg"),
         "location_kind": "urban", "persons": 2, "smugglers": 0, "transport_mode": "car", "entry_country": "FR"},
        geometry=[centres[n] for n in names], crs=WORKING_CRS,
    )
