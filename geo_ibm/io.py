"""Disk access: reading and writing vector and table files (GeoPackage, GeoJSON, CSV, XLSX)."""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import CrsError, Problem, ValidationError
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
        gdf = gpd.read_file(_vector_source(path), layer=layer, engine="pyogrio")
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read as a vector file: {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise ValidationError(f"{path}: the layer has no geometry column")
    return _local_datetimes(ensure_working_crs(gdf, name=str(path)))


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
) -> Path:
    """Write ``gdf`` to GeoPackage (``.gpkg``) or GeoJSON (``.geojson``/``.json``).

    GeoJSON is written in EPSG:4326 as RFC 7946 requires; GeoPackage keeps EPSG:2169.

    Parameters
    ----------
    metadata
        How the layer was made (for example an analysis' parameters). GeoPackage: a layer
        metadata item ``parameters`` holding the JSON text (``ogrinfo`` and QGIS show it);
        GeoJSON: a top-level ``parameters`` member of the FeatureCollection.
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
            from geo_ibm.geojson import to_feature_collection

            collection = to_feature_collection(gdf, members={"parameters": metadata})
            path.write_text(json.dumps(collection, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    elif suffix == ".gpkg":
        extra: dict[str, Any] = {}
        if metadata is not None:
            extra["layer_metadata"] = {"parameters": json.dumps(metadata, default=str)}
        _utc_datetimes(gdf).to_file(path, layer=layer, driver="GPKG", engine="pyogrio", **extra)
    else:
        raise ValidationError(f"{path}: unsupported output format {suffix!r}; use .gpkg or .geojson")
    return path


EVENT_TABLE_SUFFIXES = (".csv", ".txt", ".xlsx", ".geojson", ".json", ".gpkg")


def read_event_table(path: PathLike, *, layer: str | None = None) -> pd.DataFrame:
    """Read an interception event file as text cells, keeping each row's number as the user sees it.

    Formats, chosen by file suffix:

    - CSV (``.csv``/``.txt``): UTF-8 with or without BOM, else Latin-1; ``,`` or ``;``
      delimiter, sniffed from the header line. Every cell is read as text.
    - XLSX (``.xlsx``): the sheet named ``events`` if there is one, else the first sheet;
      the first non-empty row is the header. Date cells become ISO 8601 text, whole numbers
      lose their ``.0``.
    - GeoJSON / GeoPackage (``.geojson``/``.json``/``.gpkg``): point features; the geometry
      becomes ``x``/``y`` columns in EPSG:2169. A feature without a point geometry gets
      ``x``/``y`` missing and a reason in the ``_geometry_error`` column.

    Row numbers (the index, named ``row``): for CSV and XLSX the spreadsheet line number,
    header = line 1, so the first data row is row 2 (a CSV cell with a line break inside
    quotes shifts later numbers); blank lines keep their number and are dropped. For GeoJSON
    and GeoPackage the 1-based feature number.

    Raises
    ------
    ValidationError
        If the file is missing, has an unsupported suffix, or cannot be parsed at all.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt"}:
        frame = _read_event_csv(path)
    elif suffix == ".xlsx":
        frame = _read_event_xlsx(path)
    elif suffix in {".geojson", ".json", ".gpkg"}:
        frame = _read_event_vector(path, layer=layer)
    else:
        raise ValidationError(
            f"{path}: unsupported event file type {suffix!r}; use one of {', '.join(EVENT_TABLE_SUFFIXES)}"
        )
    return frame


def _decode_name(data: bytes) -> str:
    """The text encoding of a CSV file: UTF-8 (with or without BOM) if it decodes, else Latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _sniff_delimiter(header: str) -> str:
    """``;`` or ``,``: whichever splits the header line (outside quotes) into more fields."""
    counts = {";": 0, ",": 0}
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return ";" if counts[";"] > counts[","] else ","


def _read_event_csv(path: Path) -> pd.DataFrame:
    data = path.read_bytes()
    encoding = _decode_name(data)
    text_start = data[: 64 * 1024].decode(encoding, errors="replace")
    header = text_start.splitlines()[0] if text_start.strip() else ""
    if not header.strip():
        raise ValidationError(f"{path}: the file is empty or its first line (the header) is blank")
    sep = _sniff_delimiter(header)
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=sep,
            encoding=encoding,
            dtype=object,
            keep_default_na=False,
            na_values=[],
            skip_blank_lines=False,
            engine="c",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{path}: cannot read as CSV (delimiter {sep!r}, {encoding}): {exc}") from exc
    import csv

    # pandas renames a repeated header to "name.1" silently; the user must hear of it.
    names = next(csv.reader([header], delimiter=sep))
    _refuse_duplicate_columns(names, file=path.name)
    frame.columns = [str(c) for c in frame.columns]
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="row")
    return _drop_blank_rows(frame)


def _refuse_duplicate_columns(names: list[str], *, file: str) -> None:
    """Raise if two header cells name the same column (ignoring case and surrounding spaces)."""
    seen: dict[str, int] = {}
    problems = []
    for number, name in enumerate(names, start=1):
        key = str(name).strip().lower()
        if not key:
            continue
        if key in seen:
            problems.append(Problem(f"column {number} repeats column {seen[key]}", file=file, row=1,
                                    column=str(name).strip()))
        else:
            seen[key] = number
    if problems:
        raise ValidationError(f"{file}: the header names a column more than once", problems)


def _drop_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if not len(frame) or not len(frame.columns):
        return frame
    blank = np.ones(len(frame), dtype=bool)
    for col in frame.columns:
        values = frame[col].to_numpy(dtype=object)
        blank &= np.fromiter(
            ((v is None or (v.__class__ is str and not v.strip()) or (v.__class__ is float and math.isnan(v))) for v in values),
            dtype=bool,
            count=len(values),
        )
        if not blank.any():
            return frame
    return frame.loc[~blank]


def _xlsx_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


XLSX_MAX_UNCOMPRESSED = 1 << 30
"""Largest total uncompressed size of an XLSX file's parts (a zip bomb stops here)."""

XLSX_MAX_COLUMNS = 500
"""Widest sheet row read; the event schema has 13 columns."""


def _read_event_xlsx(path: Path) -> pd.DataFrame:
    import zipfile

    import openpyxl

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationError(f"{path.name}: cannot read as an XLSX workbook: {exc}") from exc
    if unpacked > XLSX_MAX_UNCOMPRESSED:
        raise ValidationError(f"{path.name}: the workbook unpacks to {unpacked / 2**20:,.0f} MiB, more than the "
                              f"{XLSX_MAX_UNCOMPRESSED / 2**20:,.0f} MiB accepted; export the events sheet as CSV")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors
        raise ValidationError(f"{path}: cannot read as an XLSX workbook: {exc}") from exc
    try:
        names = {name.lower(): name for name in book.sheetnames}
        sheet = book[names.get("events", book.sheetnames[0])]
        # The sheet's declared size is the file's own claim (a 1.5 kB file can declare a million
        # rows by 16,384 columns): read only the cells that are there.
        sheet.reset_dimensions()
        header: list[str] | None = None
        records: list[list[str]] = []
        numbers: list[int] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if len(values) > XLSX_MAX_COLUMNS:
                raise ValidationError(
                    f"{path.name}: row {number} of sheet {sheet.title!r} has {len(values):,} columns, more than "
                    f"the {XLSX_MAX_COLUMNS} accepted",
                    [Problem("too many columns", file=path.name, row=number, value=len(values))],
                )
            cells = [_xlsx_cell(v) for v in values]
            if header is None:
                if any(c.strip() for c in cells):
                    header = cells
                continue
            if any(c.strip() for c in cells):
                records.append(cells)
                numbers.append(number)
    finally:
        book.close()
    if header is None:
        raise ValidationError(f"{path}: the sheet {sheet.title!r} is empty (no header row)")
    while header and not header[-1].strip():
        header.pop()
    _refuse_duplicate_columns(header, file=path.name)
    width = len(header)
    records = [(r + [""] * width)[:width] for r in records]
    frame = pd.DataFrame(records, columns=[h.strip() or f"column {i + 1}" for i, h in enumerate(header)], dtype=object)
    frame.index = pd.Index(np.asarray(numbers, dtype=np.int64), name="row")
    return frame


_FORCED_DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def _vector_source(path: Path) -> str:
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


def _read_event_vector(path: Path, *, layer: str | None) -> pd.DataFrame:
    import pyogrio
    import shapely

    source = _vector_source(path)
    try:
        gdf = pyogrio.read_dataframe(source, layer=layer)
    except Exception as exc:
        raise ValidationError(f"{path.name}: cannot read as a vector file: {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError(f"{path.name}: the layer has no geometry column; expected point features",
                              [Problem("no geometry", file=path.name, column="geometry")])
    if gdf.crs is None:
        raise CrsError(f"{path}: the layer has no CRS; expected EPSG:2169 or EPSG:4326")
    frame = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name]))
    geoms = ensure_working_crs(gdf, name=str(path)).geometry.to_numpy()
    missing = pd.isna(geoms)
    is_point = np.zeros(len(geoms), dtype=bool)
    is_point[~missing] = (shapely.get_type_id(geoms[~missing]) == 0) & ~shapely.is_empty(geoms[~missing])
    x = np.full(len(geoms), np.nan)
    y = np.full(len(geoms), np.nan)
    x[is_point] = shapely.get_x(geoms[is_point])
    y[is_point] = shapely.get_y(geoms[is_point])
    reasons = np.full(len(geoms), None, dtype=object)
    for i in np.flatnonzero(~is_point):
        kind = "missing or empty" if missing[i] or geoms[i].is_empty else f"a {geoms[i].geom_type}"
        reasons[i] = f"geometry is {kind}; expected a point"
    lower = {str(c).strip().lower() for c in frame.columns}
    for name in ("x", "y", "easting", "northing", "lat", "lon", "latitude", "longitude", "lng", "long"):
        if name in lower:
            # The geometry is the location; attribute copies would make the columns ambiguous.
            frame = frame.drop(columns=[c for c in frame.columns if str(c).strip().lower() == name])
    frame["x"] = x
    frame["y"] = y
    if (~is_point).any():
        frame["_geometry_error"] = reasons
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame


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
                 scratch: PathLike | None = None) -> bytes:
    """``gdf`` as the bytes of a GeoPackage or GeoJSON file (see :func:`write_vector`).

    GDAL writes files, not buffers: the file is made in a temporary folder inside ``scratch``
    (a private folder: the data may be sensitive) and removed afterwards.
    """
    import tempfile

    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        path = write_vector(gdf, Path(tmp) / f"export{suffix}", layer=layer)
        return path.read_bytes()


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
