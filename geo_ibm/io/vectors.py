"""Vector and table files: read and write GeoPackage/GeoJSON layers in the working CRS, tables, hashes."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo_ibm.errors import CrsError, Problem, ValidationError
from geo_ibm.io.qgis import LayerStyle, write_layer_style
from geo_ibm.settings import LOCAL_TZ, WEB_CRS, WORKING_CRS

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


_FORCED_DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def vector_source(path: Path) -> str:
    """A GDAL connection string that opens ``path`` only with the driver its suffix names.

    GDAL picks a driver from a file's content, not its name: an uploaded ``.geojson`` that is
    really a GDAL virtual-file (VRT) document would make the server read any file it can
    reach. Forcing the driver (``GeoJSON:``/``GPKG:`` prefix) closes that; the leading bytes
    are checked first so the error names the real problem.
    """
    driver = _FORCED_DRIVERS.get(path.suffix.lower())
    if driver is None:
        return str(path)
    with path.open("rb") as fh:
        head = fh.read(100)
    if driver == "GeoJSON":
        start = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
        if not start.lstrip()[:1] == b"{":
            raise ValidationError(f"{path.name}: not a GeoJSON file (it must start with '{{')",
                                  [Problem("not GeoJSON", file=path.name)])
    elif not head.startswith(b"SQLite format 3\x00") or head[68:72] not in (b"GPKG", b"GP10", b"GP11"):
        raise ValidationError(f"{path.name}: not a GeoPackage (no SQLite header with the GeoPackage application id)",
                              [Problem("not a GeoPackage", file=path.name)])
    return f"{driver}:{path}"


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
        gdf = gpd.read_file(vector_source(path), layer=layer, engine="pyogrio")
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read as a vector file: {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise ValidationError(f"{path}: the layer has no geometry column")
    return _local_datetimes(ensure_working_crs(gdf, name=str(path)))


def read_parameters(path: PathLike, *, layer: str | None = None) -> dict[str, Any]:
    """The ``parameters`` a layer was written with (:func:`write_vector`'s ``metadata``); ``{}`` when it has none."""
    import pyogrio

    path = Path(path)
    try:
        if path.suffix.lower() == ".gpkg":
            text = (pyogrio.read_info(vector_source(path), layer=layer).get("layer_metadata") or {}).get("parameters")
        else:
            text = json.dumps(json.loads(path.read_text(encoding="utf-8")).get("parameters") or {})
        found = json.loads(text) if text else {}
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read the layer's parameters: {exc}") from exc
    if not isinstance(found, dict):
        raise ValidationError(f"{path}: the layer's parameters are not a JSON object")
    return found


def _local_datetimes(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Tz-aware datetime columns in Europe/Luxembourg (GDAL returns fixed offsets or UTC)."""
    for col in gdf.columns:
        if isinstance(gdf[col].dtype, pd.DatetimeTZDtype):
            gdf[col] = gdf[col].dt.tz_convert(LOCAL_TZ)
    return gdf


def _utc_datetimes(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Tz-aware datetime columns in UTC, as the GeoPackage DATETIME type requires."""
    aware = [c for c in gdf.columns if isinstance(gdf[c].dtype, pd.DatetimeTZDtype)]
    if not aware:
        return gdf
    gdf = gdf.copy()
    for col in aware:
        gdf[col] = gdf[col].dt.tz_convert("UTC")
    return gdf


def write_vector(
    gdf: gpd.GeoDataFrame,
    path: PathLike,
    *,
    layer: str | None = None,
    metadata: dict[str, Any] | None = None,
    style: LayerStyle | None = None,
) -> Path:
    """Write ``gdf`` to GeoPackage (``.gpkg``) or GeoJSON (``.geojson``/``.json``).

    GeoJSON is written in EPSG:4326 as RFC 7946 requires; GeoPackage keeps EPSG:2169.

    Parameters
    ----------
    metadata
        How the layer was made (for example an analysis' parameters). GeoPackage: a layer
        metadata item ``parameters`` holding the JSON text (``ogrinfo`` and QGIS show it);
        GeoJSON: a top-level ``parameters`` member of the FeatureCollection.
    style
        GeoPackage only: the layer's QGIS style, stored as its default in the ``layer_styles``
        table (:func:`geo_ibm.io.qgis.write_layer_style`) so that QGIS opens the layer styled.
        GeoJSON has no place for it and ignores it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in {".geojson", ".json"}:
        if path.exists():
            path.unlink()
        if metadata is None:
            gdf.to_crs(WEB_CRS).to_file(path, driver="GeoJSON", engine="pyogrio", RFC7946="YES")
        else:
            from geo_ibm.geojson import iter_feature_collection

            # in pieces: a large layer's features never all exist as Python objects at once
            with path.open("w", encoding="utf-8") as handle:
                for text in iter_feature_collection(gdf, members={"parameters": metadata}):
                    handle.write(text)
    elif suffix == ".gpkg":
        extra: dict[str, Any] = {}
        if metadata is not None:
            extra["layer_metadata"] = {"parameters": json.dumps(metadata, default=str)}
        _utc_datetimes(gdf).to_file(path, layer=layer, driver="GPKG", engine="pyogrio", **extra)
        if style is not None:
            # pyogrio names a layer written without a name after the file.
            write_layer_style(path, layer or path.stem, style)
    else:
        raise ValidationError(f"{path}: unsupported output format {suffix!r}; use .gpkg or .geojson")
    return path


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula (OWASP CSV injection)."""


def spreadsheet_safe(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Only strings are changed: numbers (negative ones too) stay numbers.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text columns hold no cell a spreadsheet would run as a formula.

    Every CSV or workbook a user opens in a spreadsheet passes through this: event notes,
    unit names and installed reference names are user text.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or isinstance(out[col].dtype, (pd.StringDtype, pd.CategoricalDtype)):
            out[col] = out[col].map(spreadsheet_safe)
    return out


def vector_bytes(gdf: gpd.GeoDataFrame, *, suffix: str, layer: str | None = None,
                 scratch: PathLike | None = None, style: LayerStyle | None = None) -> bytes:
    """``gdf`` as the bytes of a GeoPackage or GeoJSON file (see :func:`write_vector`, also for ``style``).

    GDAL writes files, not buffers: the file is made in a temporary folder inside ``scratch``
    (a private folder: the data may be sensitive) and removed afterwards.
    """
    import tempfile

    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        path = write_vector(gdf, Path(tmp) / f"export{suffix}", layer=layer, style=style)
        return path.read_bytes()


def save_frame(gdf: gpd.GeoDataFrame, path: PathLike) -> Path:
    """Keep ``gdf`` on disk as it is (GeoParquet: its CRS, dtypes and column order), for the app to
    read back with :func:`load_frame`; not a file for users (they get :func:`write_vector`'s)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = gdf.copy()
    frame.attrs = {}
    frame.to_parquet(path, index=True, compression="zstd")
    return path


def load_frame(path: PathLike) -> gpd.GeoDataFrame:
    """The frame :func:`save_frame` kept at ``path``, in its own CRS.

    Raises
    ------
    ValidationError
        If the file is missing or not a GeoParquet file.
    """
    path = Path(path)
    try:
        return gpd.read_parquet(path)
    except FileNotFoundError as exc:
        raise ValidationError(f"{path.name}: file not found") from exc
    except Exception as exc:
        raise ValidationError(f"{path.name}: cannot read as GeoParquet: {exc}") from exc


def write_table(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write a table as CSV (UTF-8 with BOM, so spreadsheet programs pick the encoding)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
