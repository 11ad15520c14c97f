"""Disk access: reading and writing vector and table files (GeoPackage, GeoJSON, CSV, XLSX)."""
from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd

from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.settings import WEB_CRS, WORKING_CRS

PathLike = str | os.PathLike[str]


def ensure_working_crs(gdf: gpd.GeoDataFrame, *, name: str = "layer") -> gpd.GeoDataFrame:
    """Return ``gdf`` in EPSG:2169, converting explicitly; refuse a layer without a CRS.

    Parameters
    ----------
    gdf
        Any GeoDataFrame.
    name
        What to call the layer in the error message.
    """
    if gdf.crs is None:
        raise CrsError(f"{name} has no CRS; expected {WORKING_CRS} or a CRS convertible to it")
    if gdf.crs.to_epsg() == 2169:
        return gdf
    try:
        return gdf.to_crs(WORKING_CRS)
    except Exception as exc:  # pyproj raises several types
        raise CrsError(f"{name} is in {gdf.crs.to_string()}, which cannot be converted to {WORKING_CRS}: {exc}") from exc


def read_vector(path: PathLike, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a vector file (GeoPackage, GeoJSON, Shapefile...) and return it in EPSG:2169.

    Raises
    ------
    ValidationError
        If the file is missing or GDAL cannot read it.
    """
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: file not found")
    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read as a vector file: {exc}") from exc
    return ensure_working_crs(gdf, name=str(path))


def write_vector(gdf: gpd.GeoDataFrame, path: PathLike, *, layer: str | None = None) -> Path:
    """Write ``gdf`` to GeoPackage (``.gpkg``) or GeoJSON (``.geojson``/``.json``).

    GeoJSON is written in EPSG:4326 as RFC 7946 requires; GeoPackage keeps EPSG:2169.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in {".geojson", ".json"}:
        if path.exists():
            path.unlink()
        gdf.to_crs(WEB_CRS).to_file(path, driver="GeoJSON", engine="pyogrio", RFC7946="YES")
    elif suffix == ".gpkg":
        gdf.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
    else:
        raise ValidationError(f"{path}: unsupported output format {suffix!r}; use .gpkg or .geojson")
    return path
