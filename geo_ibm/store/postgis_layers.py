"""Whole-layer tables of the PostGIS store: the demo ground truth and the installed canton layer."""
from __future__ import annotations

import re
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely

from geo_ibm import io
from geo_ibm.errors import ValidationError
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS
from geo_ibm.store import frames
from geo_ibm.store import postgis_schema as schema
from geo_ibm.store.gpkg_blobs import SRS_ID

_TYPES = {"b": "boolean", "i": "bigint", "u": "bigint", "f": "double precision"}
"""Column type of each numpy dtype kind; datetimes are ``timestamptz``, anything else ``text``."""


def _ewkb_hex(geometries: Any) -> list[str]:
    return list(shapely.to_wkb(shapely.set_srid(np.asarray(geometries), SRS_ID), hex=True, include_srid=True))


def ground_truth_rows(gdf: gpd.GeoDataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The ground truth as rows to COPY (attribute columns, then ``geom``) and its column declarations.

    Naive datetimes are local time (Europe/Luxembourg) and are stored as ``timestamptz``.

    Raises
    ------
    ValidationError
        If a column name cannot be stored (letters, digits and ``_``; not ``fid``/``geom``).
    """
    gdf = io.ensure_working_crs(gdf, name="ground truth")
    attrs = [str(c) for c in gdf.columns if c != gdf.geometry.name]
    for c in attrs:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c) or c.lower() in {"fid", "geom"}:
            raise ValidationError(f"{schema.GROUND_TRUTH}: column name {c!r} cannot be stored; use letters, digits and _")
    values: dict[str, pd.Series] = {}
    declared: list[str] = []
    for c in attrs:
        column = gdf[c].reset_index(drop=True)
        if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column.dtype):
            local = column if isinstance(column.dtype, pd.DatetimeTZDtype) else column.dt.tz_localize(LOCAL_TZ)
            values[c] = pd.Series(frames.none_for_na(local.dt.tz_convert("UTC").to_numpy(dtype=object)), dtype=object)
            declared.append(f'"{c}" timestamptz')
        elif column.dtype.kind in _TYPES:
            values[c] = column
            declared.append(f'"{c}" {_TYPES[column.dtype.kind]}')
        else:
            values[c] = pd.Series([None if pd.isna(v) else str(v) for v in column], dtype=object)
            declared.append(f'"{c}" text')
    values["geom"] = pd.Series(_ewkb_hex(gdf.geometry.to_numpy()), dtype=object)
    return pd.DataFrame(values), declared


def replace_ground_truth(conn: psycopg.Connection, table: pd.DataFrame, declared: list[str]) -> None:
    """Drop and create the ground-truth table with ``declared`` columns and fill it (caller's transaction)."""
    name = schema.GROUND_TRUTH
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} (fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
                 f"{''.join(', ' + d for d in declared)}, geom geometry(Geometry, {SRS_ID}))")
    conn.execute(f"CREATE INDEX {name}_geom ON {name} USING gist (geom)")
    schema.grant_like_events(conn, name)
    columns = [f'"{c}"' for c in table.columns if c != "geom"] + ["geom"]
    with conn.cursor().copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in zip(*(frames.python_values(table[c]) for c in table.columns)):
            copy.write_row(row)


def read_ground_truth(conn: psycopg.Connection) -> gpd.GeoDataFrame:
    """The ground truth in its column order, datetimes in local time; empty when there is none."""
    name = schema.GROUND_TRUTH
    present = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    if not present or not present[0]:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=WORKING_CRS), crs=WORKING_CRS)
    cur = conn.execute(f"SELECT * FROM {name} ORDER BY fid")
    rows = cur.fetchall()
    kinds = {d.name: d.type_code for d in cur.description or []}
    frame = pd.DataFrame(rows, columns=list(kinds), dtype=object)
    timestamptz = psycopg.adapters.types["timestamptz"].oid
    out: dict[str, Any] = {}
    for c, kind in kinds.items():
        if c in ("fid", "geom"):
            continue
        out[c] = pd.to_datetime(frame[c], utc=True).dt.tz_convert(LOCAL_TZ) if kind == timestamptz else frame[c].infer_objects()
    geometry = shapely.from_wkb(frame["geom"].to_numpy(dtype=object)) if len(frame) else []
    return gpd.GeoDataFrame(pd.DataFrame(out, index=pd.RangeIndex(len(frame))), geometry=geometry, crs=WORKING_CRS)


def replace_cantons(conn: psycopg.Connection, layer: gpd.GeoDataFrame) -> None:
    """Make ``layer`` (``canton``, ``region``, polygons in EPSG:2169) the installed canton layer (caller's transaction)."""
    multi = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in layer.geometry]
    conn.execute("DELETE FROM installed_cantons")
    with conn.cursor().copy("COPY installed_cantons (canton, region, geom) FROM STDIN") as copy:
        for row in zip(layer["canton"].astype(str), layer["region"].astype(str), _ewkb_hex(multi)):
            copy.write_row(row)


def read_cantons(conn: psycopg.Connection) -> gpd.GeoDataFrame | None:
    """The installed canton layer, sorted by canton; ``None`` when none is installed."""
    rows = conn.execute("SELECT canton, region, ST_AsBinary(geom) FROM installed_cantons ORDER BY canton").fetchall()
    if not rows:
        return None
    return gpd.GeoDataFrame({"canton": [r[0] for r in rows], "region": [r[1] for r in rows]},
                            geometry=shapely.from_wkb([bytes(r[2]) for r in rows]), crs=WORKING_CRS)
