"""Event exports in the formats analysts take away: CSV (formula-safe), GeoJSON and GeoPackage."""
from __future__ import annotations

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
}
"""Formats of :func:`export_events`, by name."""


def events_csv(events: gpd.GeoDataFrame) -> str:
    """Events as CSV text: attribute columns, then ``x``/``y`` (EPSG:2169) and ``lon``/``lat``.

    Times are ISO 8601 with their offset; text a spreadsheet would run as a formula is
    prefixed with ``'`` (:func:`geo_ibm.io.neutralise_formulas`).
    """
    frame = pd.DataFrame(events.drop(columns=events.geometry.name))
    frame["x"] = events.geometry.x.round(1)
    frame["y"] = events.geometry.y.round(1)
    web = events.geometry.to_crs(WEB_CRS)
    frame["lon"] = web.x.round(6)
    frame["lat"] = web.y.round(6)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].map(lambda v: v.isoformat() if pd.notna(v) else "")
    return io.neutralise_formulas(frame).to_csv(index=False)


def export_events(events: gpd.GeoDataFrame, fmt: str, *, scratch: io.PathLike | None = None) -> bytes:
    """``events`` as the bytes of a ``csv``, ``geojson`` (EPSG:4326) or ``gpkg`` (EPSG:2169) file.

    Raises
    ------
    ValidationError
        For another format, naming ``format``.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}",
                              [Problem("unknown format", column="format", value=fmt)])
    if fmt == "csv":
        return events_csv(events).encode("utf-8")
    return io.vector_bytes(events, suffix=f".{fmt}", layer="events", scratch=scratch)
