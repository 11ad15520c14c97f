"""Report tables from the library's analyses, and their Excel workbook."""
from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm.errors import GeoIbmError, Problem, ValidationError
from geo_ibm.io import ensure_working_crs
from geo_ibm.settings import OSM_ATTRIBUTION, WEB_CRS, WORKING_CRS

TABLE_NAMES: tuple[str, ...] = (
    "region_quarters", "canton_quarters", "hour_weekday", "border_distance", "crossing_distance", "top_hotspots",
    "named_hotspots",
)
"""Names of the tables :func:`report_tables` builds, in workbook order."""

TABLE_TITLES: dict[str, str] = {
    "region_quarters": "Quarter-on-quarter change per police region",
    "canton_quarters": "Quarter-on-quarter change per canton",
    "hour_weekday": "Events per weekday and hour (local time)",
    "border_distance": "Events by distance band to the nearest border",
    "crossing_distance": "Events by distance band to the nearest crossing point",
    "top_hotspots": "Hot spot cells with the highest Gi* z-scores",
    "named_hotspots": "Named hotspots: contiguous significant Gi* cells merged, named by place, ranked by events",
}
"""One-line description of each table (the workbook's About sheet lists them)."""

DATA_SOURCES: tuple[str, ...] = (
    "Interception events: the geo_ibm event store (filters above)",
    "Borders, outline, neighbours: OpenStreetMap-derived (data/boundaries)",
    "Cantons and police regions: data/boundaries/cantons.geojson (or the installed official file)",
    "Crossing points: hand-curated table with a source per row (data/boundaries/crossing_points.csv)",
    "Communes and place labels: ACT official administrative limits, CC0 (data/boundaries/communes.geojson)",
    "Road network: the shipped schematic corridors (data/boundaries/road_corridors.geojson) or the installed "
    "OpenStreetMap extract (© OpenStreetMap contributors, ODbL)",
    "Candidate control sites: hand-curated table with a source per row (data/boundaries/control_sites.csv)",
)

SHEET_NAMES: dict[str, str] = {
    "region_quarters": "Regions QoQ",
    "canton_quarters": "Cantons QoQ",
    "hour_weekday": "Hour x weekday",
    "border_distance": "Border distance",
    "crossing_distance": "Crossing distance",
    "top_hotspots": "Top hotspots",
    "named_hotspots": "Named hotspots",
}

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_GI_CONFIDENCE = {3: "99%", 2: "95%", 1: "90%", -1: "90%", -2: "95%", -3: "99%"}


# --------------------------------------------------------------------------- single tables


def quarter_change_table(events: gpd.GeoDataFrame, *, by: str, cantons: gpd.GeoDataFrame) -> pd.DataFrame:
    """:func:`geo_ibm.trends.quarter_change` per ``"region"`` or ``"canton"``, the unit column renamed to ``by``.

    Columns: ``<by>`` (for cantons followed by their police ``region``), ``quarter``, ``count``,
    ``previous``, ``change``, ``change_pct``, ``p_value``, ``significant`` (Benjamini–Hochberg
    at 5 % within each quarter).
    """
    from geo_ibm.trends import quarter_change

    if by not in ("region", "canton"):
        raise ValidationError(f"by must be 'region' or 'canton', got {by!r}", [Problem("unknown", column="by", value=by)])
    unit: Literal["region", "canton"] = "region" if by == "region" else "canton"
    table = quarter_change(events, by=unit, cantons=cantons).rename(columns={"unit": by})
    if by == "canton" and "region" in cantons.columns:
        region_of = dict(zip(cantons["canton"].astype(str), cantons["region"].astype(str)))
        table.insert(1, "region", table["canton"].astype(str).map(region_of))
    return table.sort_values(["quarter", by], kind="stable").reset_index(drop=True)


def hour_weekday_table(events: pd.DataFrame) -> pd.DataFrame:
    """:func:`geo_ibm.trends.hour_weekday` with the weekday as a column (``weekday``, ``0`` … ``23``, ``total``)."""
    from geo_ibm.trends import hour_weekday

    grid = hour_weekday(events)
    table = grid.copy()
    table.columns = [str(c) for c in table.columns]
    table["total"] = grid.sum(axis=1).to_numpy()
    return table.reset_index()


def border_distance_tables(
    events: gpd.GeoDataFrame, *, borders: gpd.GeoDataFrame, crossings: gpd.GeoDataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``by_neighbour`` and ``by_crossing`` of :func:`geo_ibm.bordergeo.border_distance_profile` (default bands).

    The crossing table keeps only crossings with events in some band, sorted by crossing
    and band; ``share`` columns are fractions of all banded events.
    """
    from geo_ibm.bordergeo import border_distance_profile

    profile = border_distance_profile(events, borders=borders, crossings=crossings)
    by_crossing = profile.by_crossing
    if len(by_crossing):
        busy = by_crossing.groupby("crossing_id")["events"].transform("sum") > 0
        by_crossing = by_crossing[busy].reset_index(drop=True)
    return profile.by_neighbour.reset_index(drop=True), by_crossing


def top_hotspot_cells(
    events: gpd.GeoDataFrame,
    *,
    study_area: Any,
    cantons: gpd.GeoDataFrame,
    cell: float | None = None,
    band: float | None = None,
    n: int = 20,
) -> pd.DataFrame:
    """The ``n`` hot spot cells (FDR-corrected ``gi_bin_fdr`` > 0) with the highest Gi* z-scores.

    The cells come from :func:`geo_ibm.hotspots.hotspots_from_events` as they are; each is
    placed in the canton (and police region) containing its centre, else the nearest one.

    Returns
    -------
    pandas.DataFrame
        ``rank``, ``cell_id``, ``canton``, ``region``, ``events`` (the cell's ``count``),
        ``gi_z``, ``gi_p``, ``confidence`` (``"99%"``…), ``x``, ``y`` (cell centre, EPSG:2169),
        ``lon``, ``lat`` (the same centre in EPSG:4326), ``cell_m``, ``band_m``. Empty (with
        these columns) when no cell is a significant hot spot.
    """
    from geo_ibm.hotspots import hotspots_from_events

    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValidationError(f"n must be a positive integer, got {n!r}", [Problem("not positive", column="n", value=n)])
    gi = hotspots_from_events(events, study_area=study_area, cell=cell, band=band)
    params = gi.attrs.get("parameters", {})
    hot = gi[gi["gi_bin_fdr"].astype(int) > 0].sort_values(["gi_z", "cell_id"], ascending=[False, True], kind="stable").head(int(n))
    centres = gpd.GeoSeries(shapely.centroid(hot.geometry.to_numpy()), index=hot.index, crs=gi.crs)
    layer = ensure_working_crs(cantons, name="cantons")[["canton", "region", "geometry"]].reset_index(drop=True)
    points = gpd.GeoDataFrame({"_key": np.arange(len(hot))}, geometry=centres.to_numpy(), crs=gi.crs)
    placed = gpd.sjoin_nearest(points, layer, how="left").drop_duplicates("_key").sort_values("_key")
    web = centres.to_crs(WEB_CRS)
    return pd.DataFrame({
        "rank": np.arange(1, len(hot) + 1, dtype=np.int64),
        "cell_id": hot["cell_id"].to_numpy(),
        "canton": placed["canton"].to_numpy(dtype=object),
        "region": placed["region"].to_numpy(dtype=object),
        "events": hot["count"].to_numpy(),
        "gi_z": hot["gi_z"].to_numpy(dtype=float),
        "gi_p": hot["gi_p"].to_numpy(dtype=float),
        "confidence": [_GI_CONFIDENCE[int(b)] for b in hot["gi_bin_fdr"]],
        "x": centres.x.round(1).to_numpy(),
        "y": centres.y.round(1).to_numpy(),
        "lon": web.x.round(6).to_numpy(),
        "lat": web.y.round(6).to_numpy(),
        "cell_m": float(params.get("cell", np.nan)),
        "band_m": float(params.get("band", np.nan)),
    })


def named_hotspot_table(
    events: gpd.GeoDataFrame,
    *,
    study_area: Any,
    cell: float | None = None,
    band: float | None = None,
    n: int = 20,
    previous: gpd.GeoDataFrame | None = None,
    lang: str = "en",
) -> pd.DataFrame:
    """The ``n`` largest named hotspots (:func:`geo_ibm.namedhotspots.named_hotspots`) of the Gi* cells of ``events``.

    Unlike :func:`top_hotspot_cells`, neighbouring significant cells count once, as one
    hotspot named by road, landmark and commune ("A3 at Aire de Berchem (Roeser)").

    Parameters
    ----------
    previous
        Events of the period before, for the ``previous``, ``change_pct`` and ``trend`` columns
        (periods taken as equally long).

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`geo_ibm.namedhotspots.COLUMNS` (``emerging`` empty: no time
        series here), then ``x``, ``y`` (a point inside the hotspot, EPSG:2169), ``lon``,
        ``lat`` (EPSG:4326), ``cell_m``, ``band_m``; ranked by events.
    """
    from geo_ibm.hotspots import hotspots_from_events
    from geo_ibm.namedhotspots import named_hotspots

    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValidationError(f"n must be a positive integer, got {n!r}", [Problem("not positive", column="n", value=n)])
    gi = hotspots_from_events(events, study_area=study_area, cell=cell, band=band)
    params = gi.attrs.get("parameters", {})
    named = named_hotspots(gi, events=events, previous=previous, lang=lang).head(int(n))
    spot = gpd.GeoSeries(named.geometry.representative_point(), crs=named.crs)
    web = spot.to_crs(WEB_CRS)
    return pd.DataFrame(named.drop(columns="geometry")).assign(
        x=spot.x.round(1).to_numpy(), y=spot.y.round(1).to_numpy(), lon=web.x.round(6).to_numpy(),
        lat=web.y.round(6).to_numpy(), cell_m=float(params.get("cell", np.nan)), band_m=float(params.get("band", np.nan)))


# --------------------------------------------------------------------------- the report set


def previous_quarter_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Event-store filters for the quarter before ``filters["quarter"]``, the other code filters kept.

    ``start``/``end`` are dropped: the comparison quarter is taken whole.

    Raises
    ------
    ValidationError
        No ``quarter`` in ``filters`` or one not like ``2025Q3`` (the problem names ``quarter``).
    """
    raw = str(filters.get("quarter") or "")
    text = raw.strip().upper().replace("-", "")
    if not re.fullmatch(r"\d{4}Q[1-4]", text):
        raise ValidationError(f"quarter must look like '2025Q3', got {raw!r}",
                              [Problem("not a quarter", column="quarter", value=raw)])
    period = pd.Period(text, freq="Q")
    out = {k: v for k, v in filters.items() if k not in ("start", "end")}
    out["quarter"] = str(period - 1)
    return out


@dataclass(frozen=True)
class ReportTables:
    """The report's tables and why any could not be built.

    Attributes
    ----------
    tables
        Table name (see :data:`TABLE_NAMES`) -> DataFrame, in workbook order.
    notes
        One message per table that the analysis refused for this selection (e.g. a single
        quarter has no quarter-on-quarter change), naming the table.
    """

    tables: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)


def report_tables(
    events: gpd.GeoDataFrame,
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame,
    cantons: gpd.GeoDataFrame,
    cell: float | None = None,
    band: float | None = None,
    top_n: int = 20,
    names: Sequence[str] = TABLE_NAMES,
    previous: gpd.GeoDataFrame | None = None,
) -> ReportTables:
    """Every report table for ``events``; a table the analysis refuses is left out with a note.

    ``previous``: the events of the period before the selection (e.g. the previous quarter
    when one quarter is selected), used by the quarter-on-quarter tables, so a report on one
    quarter still compares it with the quarter before, and by the named hotspots' trend. Other
    tables use ``events`` only.

    Raises
    ------
    ValidationError
        ``events`` is empty, or ``names`` holds an unknown table (the problem names ``table``).
    """
    unknown = [name for name in names if name not in TABLE_NAMES]
    if unknown:
        raise ValidationError(f"unknown table {unknown[0]!r}; use one of {', '.join(TABLE_NAMES)}",
                              [Problem("unknown table", column="table", value=unknown[0])])
    if len(events) == 0:
        raise ValidationError("no events match the selection; nothing to tabulate",
                              [Problem("empty selection", column="events", value=0)])
    trend = events if previous is None or len(previous) == 0 else pd.concat([previous, events], ignore_index=True)
    builders: dict[str, Callable[[], Any]] = {
        "region_quarters": lambda: quarter_change_table(trend, by="region", cantons=cantons),
        "canton_quarters": lambda: quarter_change_table(trend, by="canton", cantons=cantons),
        "hour_weekday": lambda: hour_weekday_table(events),
        "top_hotspots": lambda: top_hotspot_cells(events, study_area=outline, cantons=cantons, cell=cell, band=band, n=top_n),
        "named_hotspots": lambda: named_hotspot_table(events, study_area=outline, cell=cell, band=band, n=top_n,
                                                      previous=previous if previous is not None and len(previous) else None),
    }
    tables: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    distance: tuple[pd.DataFrame, pd.DataFrame] | None = None
    for name in TABLE_NAMES:
        if name not in names:
            continue
        try:
            if name in ("border_distance", "crossing_distance"):
                if distance is None:
                    distance = border_distance_tables(events, borders=borders, crossings=crossings)
                tables[name] = distance[0] if name == "border_distance" else distance[1]
            else:
                tables[name] = builders[name]()
        except GeoIbmError as exc:
            notes.append(f"{name}: {str(exc).splitlines()[0]}")
    return ReportTables(tables=tables, notes=notes)


# --------------------------------------------------------------------------- serialisation


def table_csv(table: pd.DataFrame) -> bytes:
    """One table as UTF-8 CSV (with a byte order mark, so spreadsheet programs read the accents)."""
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8-sig")


def _cell_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, pd.Timestamp):
        return value.tz_localize(None).to_pydatetime() if value.tzinfo else value.to_pydatetime()
    if value is pd.NA or value is pd.NaT:
        return None
    return value if isinstance(value, (int, str, datetime)) else str(value)


def tables_to_xlsx(
    tables: Mapping[str, pd.DataFrame],
    *,
    period: str | None = None,
    filters: Mapping[str, Any] | None = None,
    events: int | None = None,
    notes: Sequence[str] = (),
    generated_at: datetime | None = None,
    sources: Sequence[str] = DATA_SOURCES,
    attribution: str = OSM_ATTRIBUTION,
    report: str = "geo_ibm – interceptions near Luxembourg's internal Schengen borders",
    descriptions: Mapping[str, str] | None = None,
) -> bytes:
    """An Excel workbook (bytes) with one sheet per table and an "About" sheet first.

    Each table sheet has a bold shaded header row, frozen below the header, an autofilter and
    column widths fitted to the content (at most 50 characters). The About sheet lists the
    data period, the filters, the number of events, the generation time (UTC), the tables
    with their descriptions, ``notes`` (tables that could not be built), the data sources and
    the map data attribution. ``report`` is the About sheet's first line; ``descriptions``
    describes tables that :data:`TABLE_TITLES` does not (a sheet is named after its key, as
    :data:`SHEET_NAMES` does not rename it).

    Raises
    ------
    ValidationError
        ``tables`` is empty or a value is not a DataFrame.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    if not tables and not notes:
        raise ValidationError("no tables to write", [Problem("empty", column="tables")])
    for name, table in tables.items():
        if not isinstance(table, pd.DataFrame):
            raise ValidationError(f"table {name!r} must be a DataFrame, got {type(table).__name__}",
                                  [Problem("not a DataFrame", column="tables", value=name)])
    stamp = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="2B5CAD")

    wb = Workbook()
    about = wb.active
    about.title = "About"
    rows: list[tuple[str, str]] = [
        ("Report", report),
        ("Data period", period or "all stored events"),
        ("Filters", ", ".join(f"{k}={v}" for k, v in (filters or {}).items()) or "none"),
    ]
    if events is not None:
        rows.append(("Events", str(int(events))))
    rows.append(("Generated (UTC)", stamp.strftime("%Y-%m-%d %H:%M:%S")))
    rows.append(("Coordinates", f"x, y in {WORKING_CRS} (LUREF, metres); lon, lat in {WEB_CRS}"))
    rows.append(("", ""))
    for name in tables:
        rows.append((f"Sheet '{SHEET_NAMES.get(name, name)[:31]}'", {**TABLE_TITLES, **(descriptions or {})}.get(name, name)))
    for note in notes:
        rows.append(("Not computed", note))
    rows.append(("", ""))
    for source in sources:
        rows.append(("Data source", source))
    rows.append(("Map data", attribution))
    for key, value in rows:
        about.append([key, value])
    for row in about.iter_rows(min_col=1, max_col=1):
        row[0].font = Font(bold=True)
    about.column_dimensions["A"].width = 24
    about.column_dimensions["B"].width = 100
    for row in about.iter_rows(min_col=2, max_col=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")

    used: set[str] = {"About"}
    for name, table in tables.items():
        title = SHEET_NAMES.get(name, name)
        for bad in "[]:*?/\\":
            title = title.replace(bad, " ")
        title = title[:31] or "Sheet"
        base, k = title, 2
        while title in used:
            title = f"{base[:28]}_{k}"
            k += 1
        used.add(title)
        ws = wb.create_sheet(title)
        columns = [str(c) for c in table.columns]
        ws.append(columns)
        for record in table.itertuples(index=False, name=None):
            ws.append([_cell_value(v) for v in record])
        for cell in ws[1]:
            cell.font = header_font
            cell.fill = header_fill
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.freeze_panes = "A2"
        if columns:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(table) + 1}"
        for i, column in enumerate(columns, start=1):
            series = table.iloc[:, i - 1]
            if pd.api.types.is_float_dtype(series):
                fmt = "0.0000" if column in ("p_value", "gi_p") else ("0.000000" if column in ("lon", "lat") else "0.00")
                for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                    cell.number_format = fmt
            sample = series.head(500).map(lambda v: len(f"{v:.2f}") if isinstance(v, float) else len(str(v)))
            width = max([len(column)] + sample.tolist())
            ws.column_dimensions[get_column_letter(i)].width = min(50, max(6, width + 2))
    wb.properties.creator = "geo_ibm"
    wb.properties.title = "geo_ibm report tables"
    wb.properties.created = stamp.replace(tzinfo=None)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
