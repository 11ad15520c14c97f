"""Event exports in the formats analysts take away: CSV and XLSX (formula-safe), GeoJSON and GeoPackage."""
from __future__ import annotations

import io as _bytes_io
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd

from geo_ibm import io
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.settings import WEB_CRS


@dataclass(frozen=True)
class ExportFormat:
    """One download format of the events."""

    media_type: str
    filename: str


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "csv": ExportFormat("text/csv", "events.csv"),
    "geojson": ExportFormat("application/geo+json", "events.geojson"),
    "gpkg": ExportFormat("application/geopackage+sqlite3", "events.gpkg"),
    "xlsx": ExportFormat("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "events.xlsx"),
}
"""Formats of :func:`export_events`, by name."""

XLSX_MAX_ROWS = 200_000
"""Most events one XLSX export holds (a workbook of 200,000 events takes about 15 s and 0.5 GB to
write; spreadsheets stop at 1,048,576 rows anyway): larger selections are refused, CSV has no limit."""


def check_export_size(fmt: str, rows: int) -> None:
    """Refuse, before any event is read, an export too large for its format.

    Raises
    ------
    ValidationError
        Naming ``format`` and the limit, when an XLSX export would exceed :data:`XLSX_MAX_ROWS`.
    """
    if fmt == "xlsx" and rows > XLSX_MAX_ROWS:
        raise ValidationError(
            f"format xlsx: {rows:,} events match, more than the {XLSX_MAX_ROWS:,} an XLSX export holds; "
            "narrow the filter or download CSV",
            [Problem(f"at most {XLSX_MAX_ROWS:,} events", column="format", value=fmt)])


def _flat_frame(events: gpd.GeoDataFrame) -> pd.DataFrame:
    """Attribute columns, then ``x``/``y`` (EPSG:2169) and ``lon``/``lat``; times as ISO 8601 text; formula-safe."""
    frame = pd.DataFrame(events.drop(columns=events.geometry.name))
    frame["x"] = events.geometry.x.round(1)
    frame["y"] = events.geometry.y.round(1)
    web = events.geometry.to_crs(WEB_CRS)
    frame["lon"] = web.x.round(6)
    frame["lat"] = web.y.round(6)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].map(lambda v: v.isoformat() if pd.notna(v) else "")
    return io.neutralise_formulas(frame)


def events_csv(events: gpd.GeoDataFrame) -> str:
    """Events as CSV text: attribute columns, then ``x``/``y`` (EPSG:2169) and ``lon``/``lat``.

    Times are ISO 8601 with their offset; text a spreadsheet would run as a formula is
    prefixed with ``'`` (:func:`geo_ibm.io.neutralise_formulas`).
    """
    return _flat_frame(events).to_csv(index=False)


def events_xlsx(events: gpd.GeoDataFrame, *, header: Callable[[str], str] | None = None) -> bytes:
    """Events as an XLSX workbook: one sheet ``events``, the columns of :func:`events_csv`.

    Parameters
    ----------
    header
        The heading shown for each column name (e.g. a translation); default the name itself.
        Numbers stay numbers; times are ISO 8601 text with their offset (a spreadsheet date
        cell cannot hold the offset); empty cells are blank.

    Raises
    ------
    ValidationError
        When ``events`` exceeds :data:`XLSX_MAX_ROWS` (see :func:`check_export_size`).
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font

    check_export_size("xlsx", len(events))
    frame = _flat_frame(events)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("events")
    name = header or (lambda column: column)
    bold = Font(bold=True)
    from openpyxl.cell import WriteOnlyCell

    heading = []
    for column in frame.columns:
        cell = WriteOnlyCell(sheet, value=name(str(column)))
        cell.font = bold
        heading.append(cell)
    sheet.append(heading)
    columns = []
    for column in frame.columns:
        values = frame[column].to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = None
        columns.append(values.tolist())
    for row in zip(*columns, strict=True):
        sheet.append(row)
    out = _bytes_io.BytesIO()
    book.save(out)
    return out.getvalue()


def export_events(events: gpd.GeoDataFrame, fmt: str, *, scratch: io.PathLike | None = None,
                  header: Callable[[str], str] | None = None) -> bytes:
    """``events`` as the bytes of a ``csv``, ``xlsx``, ``geojson`` (EPSG:4326) or ``gpkg`` (EPSG:2169) file.

    A GeoPackage carries the events' QGIS style (:func:`geo_ibm.maps.qgisstyles.event_style`).

    ``header`` names the columns of an XLSX workbook (see :func:`events_xlsx`).

    Raises
    ------
    ValidationError
        For another format, naming ``format``; for an XLSX export over :data:`XLSX_MAX_ROWS`.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}",
                              [Problem("unknown format", column="format", value=fmt)])
    if fmt == "csv":
        return events_csv(events).encode("utf-8")
    if fmt == "xlsx":
        return events_xlsx(events, header=header)
    if fmt == "gpkg":
        from geo_ibm.maps.qgisstyles import event_style

        return io.vector_bytes(events, suffix=".gpkg", layer="events", scratch=scratch, style=event_style())
    return io.vector_bytes(events, suffix=f".{fmt}", layer="events", scratch=scratch)
