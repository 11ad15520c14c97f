"""Events by distance to the internal border lines and to the nearest border crossing point."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm.errors import ValidationError
from geo_ibm.kde import _event_xy

DEFAULT_BANDS = (0.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, math.inf)


def _layer(gdf: gpd.GeoDataFrame, *, name: str, column: str, kinds: tuple[str, ...]) -> gpd.GeoDataFrame:
    from geo_ibm.io import ensure_working_crs

    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError(f"{name} must be a GeoDataFrame, got {type(gdf).__name__}")
    if len(gdf) == 0:
        raise ValidationError(f"{name} is empty")
    if column not in gdf.columns:
        raise ValidationError(f"{name} has no {column!r} column (columns: {list(gdf.columns)})")
    gdf = ensure_working_crs(gdf, name=name)
    bad = ~gdf.geometry.geom_type.isin(kinds) | gdf.geometry.is_empty
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValidationError(
            f"{name} row {first + 1}: expected {' or '.join(kinds)}, got {gdf.geometry.iloc[first].geom_type}"
        )
    return gdf


def _segments(lines: np.ndarray) -> np.ndarray:
    """Every line split into its 2-point segments, so nearest-segment distance is the line distance."""
    coords, index = shapely.get_coordinates(lines, return_index=True)
    same = index[1:] == index[:-1]
    starts = coords[:-1][same]
    ends = coords[1:][same]
    return shapely.linestrings(np.stack([starts, ends], axis=1))


def _nearest(points: np.ndarray, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``geoms`` of each point's nearest geometry and the distance to it."""
    tree = shapely.STRtree(geoms)
    (src, dst), dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    idx = np.full(len(points), -1, dtype=np.int64)
    out = np.full(len(points), np.nan)
    idx[src] = dst
    out[src] = dist
    return idx, out


def distance_to_borders(
    events: gpd.GeoDataFrame,
    *,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame | None = None,
    neighbour_column: str = "neighbour",
    crossing_column: str = "crossing_id",
) -> pd.DataFrame:
    """Each event's distance to every border line and to the nearest crossing point.

    Distances are planar, in metres (EPSG:2169), unsigned (an event just outside Luxembourg
    is as close as one just inside). Computed with STR-trees over the border segments and the
    crossing points, so large event sets stay fast.

    Parameters
    ----------
    events
        Point events in EPSG:2169.
    borders
        Border lines with a ``neighbour`` column (e.g. :func:`geo_ibm.layers.internal_borders`);
        several rows of one neighbour are treated as one line.
    crossings
        Crossing points with ``crossing_id`` and, if present, ``neighbour`` and ``kind``
        (e.g. :func:`geo_ibm.layers.crossing_points`; drop the airport for land borders only).
    neighbour_column, crossing_column
        Column names in ``borders`` / ``crossings``.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``events``, columns ``dist_<code>`` per neighbour (e.g. ``dist_BE``,
        in the order the neighbours first appear in ``borders``), ``border_distance`` (the
        smallest), ``nearest_border`` (its neighbour code), and when ``crossings`` is given
        ``crossing_id``, ``crossing_neighbour``, ``crossing_kind`` (None when the columns are
        absent) and ``crossing_distance`` of the nearest crossing.
    """
    xy = _event_xy(events)
    lines = _layer(borders, name="borders", column=neighbour_column, kinds=("LineString", "MultiLineString"))
    points = shapely.points(xy)
    codes = list(dict.fromkeys(lines[neighbour_column].astype(str)))
    dist = np.empty((len(xy), len(codes)))
    for k, code in enumerate(codes):
        geoms = np.asarray(lines.geometry[lines[neighbour_column].astype(str) == code].values)
        _, dist[:, k] = _nearest(points, _segments(geoms))
    out = pd.DataFrame({f"dist_{code}": dist[:, k] for k, code in enumerate(codes)}, index=events.index)
    nearest = np.argmin(dist, axis=1) if len(xy) else np.zeros(0, dtype=int)
    out["border_distance"] = dist.min(axis=1) if len(xy) else np.zeros(0)
    out["nearest_border"] = np.asarray(codes, dtype=object)[nearest]
    if crossings is not None:
        cps = _layer(crossings, name="crossings", column=crossing_column, kinds=("Point",))
        idx, cdist = _nearest(points, np.asarray(cps.geometry.values))
        pick = np.where(idx >= 0, idx, 0)

        def column(name: str) -> np.ndarray:
            if name not in cps.columns:
                return np.full(len(xy), None, dtype=object)
            return cps[name].astype(object).to_numpy()[pick]

        out["crossing_id"] = column(crossing_column)
        out["crossing_neighbour"] = column("neighbour")
        out["crossing_kind"] = column("kind")
        out["crossing_distance"] = cdist
    return out


def _check_bands(bands: Sequence[float]) -> np.ndarray:
    edges = np.asarray(bands, dtype=float)
    if (
        edges.ndim != 1
        or edges.size < 2
        or np.isnan(edges).any()
        or edges[0] < 0
        or np.any(np.diff(edges) <= 0)
        or np.isinf(edges[:-1]).any()
    ):
        raise ValidationError(
            f"bands must be at least two ascending distances >= 0 in metres (only the last may be inf), got {list(bands)!r}"
        )
    return edges


def _band_labels(edges: np.ndarray) -> list[str]:
    def km(v: float) -> str:
        return f"{v / 1000:g}"

    return [
        f"{km(lo)} km+" if math.isinf(hi) else f"{km(lo)}–{km(hi)} km" for lo, hi in zip(edges[:-1], edges[1:])
    ]


@dataclass(frozen=True)
class BorderProfile:
    """Events by distance band to the border lines and to the crossing points.

    Attributes
    ----------
    by_neighbour
        One row per (nearest border, band): ``neighbour``, ``band`` (label such as
        ``"1–2 km"``), ``band_min_m``, ``band_max_m`` (band is ``[min, max)``), ``events``,
        ``persons`` (sum; NaN without a ``persons`` column), ``share`` (of all banded events),
        ``events_per_border_km`` (events divided by that neighbour's border length in km).
    by_crossing
        One row per (nearest crossing, band) by distance to that crossing: ``crossing_id``,
        ``neighbour``, ``kind``, ``band``, ``band_min_m``, ``band_max_m``, ``events``,
        ``persons``, ``share``. Empty when no crossings were given.
    events
        The per-event table of :func:`distance_to_borders` plus ``border_band`` and
        ``crossing_band`` labels (None beyond the last band edge).
    """

    by_neighbour: pd.DataFrame
    by_crossing: pd.DataFrame
    events: pd.DataFrame


def _band_table(
    keys: pd.DataFrame, band_idx: np.ndarray, persons: np.ndarray | None, edges: np.ndarray, key_values: pd.DataFrame
) -> pd.DataFrame:
    labels = _band_labels(edges)
    nb = len(labels)
    ok = band_idx >= 0
    frame = keys[ok].assign(_band=band_idx[ok], _persons=persons[ok] if persons is not None else np.nan)
    cols = list(keys.columns)
    grouped = frame.groupby(cols + ["_band"], dropna=False).agg(events=("_band", "size"), persons=("_persons", "sum"))
    full = key_values.merge(pd.DataFrame({"_band": np.arange(nb)}), how="cross")
    table = full.merge(grouped.reset_index(), on=cols + ["_band"], how="left")
    table["events"] = table["events"].fillna(0).astype(np.int64)
    table["persons"] = table["persons"].fillna(0.0) if persons is not None else np.nan
    table.insert(len(cols), "band", np.asarray(labels, dtype=object)[table["_band"]])
    table.insert(len(cols) + 1, "band_min_m", edges[:-1][table["_band"]])
    table.insert(len(cols) + 2, "band_max_m", edges[1:][table["_band"]])
    total = int(ok.sum())
    table["share"] = table["events"] / total if total else np.nan
    return table.drop(columns="_band")


def border_distance_profile(
    events: gpd.GeoDataFrame,
    *,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame | None = None,
    bands: Sequence[float] = DEFAULT_BANDS,
    neighbour_column: str = "neighbour",
    crossing_column: str = "crossing_id",
) -> BorderProfile:
    """Count events (and persons) by distance band to the nearest border and nearest crossing.

    Each event is assigned to its nearest border line (``neighbour``) and to the band
    ``[bands[i], bands[i+1])`` its distance falls in; likewise for its nearest crossing
    point. Events beyond the last edge are left out of the tables (use ``inf`` as the last
    edge to keep all).

    Parameters
    ----------
    events
        Point events in EPSG:2169, optionally with ``persons``.
    borders, crossings, neighbour_column, crossing_column
        As in :func:`distance_to_borders`.
    bands
        Ascending band edges in metres, starting at 0 or more; only the last may be ``inf``.

    Raises
    ------
    ValidationError
        Empty ``events``, bad ``bands``, or layers without the needed columns.
    """
    edges = _check_bands(bands)
    xy = _event_xy(events)
    if len(xy) == 0:
        raise ValidationError("events is empty; nothing to profile")
    per_event = distance_to_borders(
        events, borders=borders, crossings=crossings, neighbour_column=neighbour_column, crossing_column=crossing_column
    )
    persons = pd.to_numeric(events["persons"], errors="coerce").to_numpy(dtype=float) if "persons" in events else None
    labels = np.asarray(_band_labels(edges) + [None], dtype=object)

    def band_of(d: np.ndarray) -> np.ndarray:
        i = np.searchsorted(edges, d, side="right") - 1
        return np.where((i >= 0) & (i < len(edges) - 1), i, -1)

    b_idx = band_of(per_event["border_distance"].to_numpy())
    per_event["border_band"] = labels[b_idx]
    lines = _layer(borders, name="borders", column=neighbour_column, kinds=("LineString", "MultiLineString"))
    line_codes = lines[neighbour_column].astype(str)
    codes = list(dict.fromkeys(line_codes))
    km = lines.geometry.length.groupby(line_codes.to_numpy()).sum() / 1000.0
    by_neighbour = _band_table(
        pd.DataFrame({"neighbour": per_event["nearest_border"].to_numpy()}),
        b_idx,
        persons,
        edges,
        pd.DataFrame({"neighbour": codes}),
    )
    by_neighbour["events_per_border_km"] = by_neighbour["events"] / by_neighbour["neighbour"].map(km).to_numpy()

    if crossings is not None:
        c_idx = band_of(per_event["crossing_distance"].to_numpy())
        per_event["crossing_band"] = labels[c_idx]
        cps = crossings
        ids = cps[crossing_column].astype(object).to_numpy()
        key_values = pd.DataFrame(
            {
                "crossing_id": ids,
                "neighbour": cps["neighbour"].astype(object).to_numpy() if "neighbour" in cps else None,
                "kind": cps["kind"].astype(object).to_numpy() if "kind" in cps else None,
            }
        ).drop_duplicates("crossing_id")
        by_crossing = _band_table(
            pd.DataFrame({"crossing_id": per_event["crossing_id"].to_numpy()}), c_idx, persons, edges, key_values[["crossing_id"]]
        )
        by_crossing = key_values.merge(by_crossing, on="crossing_id", how="right")
    else:
        by_crossing = pd.DataFrame(
            columns=["crossing_id", "neighbour", "kind", "band", "band_min_m", "band_max_m", "events", "persons", "share"]
        )
    return BorderProfile(by_neighbour=by_neighbour, by_crossing=by_crossing, events=per_event)
