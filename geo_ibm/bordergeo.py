"""Events by distance to the internal border lines and to the nearest border crossing point."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from geo_ibm.errors import ValidationError
from geo_ibm.eventframe import event_xy

DEFAULT_BANDS = (0.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, math.inf)

DENSIFY_M = 50.0
"""Longest segment after densifying the border lines for the vertex search."""

_CANDIDATES = 4
"""Nearest border vertices whose adjacent segments are measured per event."""

_CHUNK = 65_536
"""Events per vectorised batch (bounds the candidate arrays to a few tens of MB)."""


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


def _nearest_on_lines(xy: np.ndarray, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact distance from each point to the nearest of ``lines`` and that line's index.

    The lines are densified to segments of at most ``DENSIFY_M`` metres and their vertices
    put in a k-d tree. For each point the segments next to its ``_CANDIDATES`` nearest vertices
    are measured exactly. Any other segment has both ends at least ``r_k`` (the k-th vertex
    distance) away, hence lies at least ``sqrt(r_k² − (L/2)²)`` away; when the best candidate
    is closer than that the answer is proven exact. The few points without that proof (very
    near a tight bend) fall back to an STR-tree nearest-segment search.
    """
    dense = shapely.segmentize(lines, DENSIFY_M)
    coords, line_of = shapely.get_coordinates(dense, return_index=True)
    nv = len(coords)
    # Segment i joins vertex i and i + 1 when both belong to the same line.
    valid = np.zeros(nv, dtype=bool)
    valid[:-1] = line_of[1:] == line_of[:-1]
    seg_a = coords
    seg_b = np.vstack([coords[1:], coords[-1:]])
    seg_len = np.where(valid, np.hypot(*(seg_b - seg_a).T), 0.0)
    half = 0.5 * float(seg_len.max(initial=0.0))
    k = min(_CANDIDATES, nv)
    tree = cKDTree(coords)
    dist = np.empty(len(xy))
    which = np.empty(len(xy), dtype=np.int64)
    unproven = []
    for lo in range(0, len(xy), _CHUNK):
        p = xy[lo : lo + _CHUNK]
        r, v = tree.query(p, k=k)
        r = r.reshape(len(p), k)
        v = v.reshape(len(p), k)
        segs = np.concatenate([v - 1, v], axis=1)
        ok = (segs >= 0) & valid[np.clip(segs, 0, nv - 1)]
        segs = np.clip(segs, 0, nv - 1)
        a, b = seg_a[segs], seg_b[segs]
        ab = b - a
        ap = p[:, None, :] - a
        den = (ab * ab).sum(axis=2)
        t = np.clip(np.divide((ap * ab).sum(axis=2), den, out=np.zeros_like(den), where=den > 0), 0.0, 1.0)
        d = np.hypot(ap[..., 0] - t * ab[..., 0], ap[..., 1] - t * ab[..., 1])
        # Lone vertices (single-point lines) still count as themselves.
        d = np.where(ok, d, np.hypot(ap[..., 0], ap[..., 1]))
        best = np.argmin(d, axis=1)
        rows = np.arange(len(p))
        dist[lo : lo + len(p)] = d[rows, best]
        which[lo : lo + len(p)] = line_of[segs[rows, best]]
        if k < nv:
            bound = np.sqrt(np.maximum(r[:, -1] ** 2 - half**2, 0.0))
            unproven.append(lo + np.flatnonzero(d[rows, best] > bound))
    todo = np.concatenate(unproven) if unproven else np.zeros(0, dtype=np.int64)
    if todo.size:
        pieces = shapely.linestrings(np.stack([seg_a[valid], seg_b[valid]], axis=1))
        (src, dst), dd = shapely.STRtree(pieces).query_nearest(
            shapely.points(xy[todo]), return_distance=True, all_matches=False
        )
        dist[todo[src]] = dd
        which[todo[src]] = line_of[np.flatnonzero(valid)[dst]]
    return dist, which


def distance_to_borders(
    events: gpd.GeoDataFrame,
    *,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame | None = None,
    neighbour_column: str = "neighbour",
    crossing_column: str = "crossing_id",
    per_neighbour: bool = True,
) -> pd.DataFrame:
    """Each event's distance to every border line and to the nearest crossing point.

    Distances are planar, in metres (EPSG:2169), unsigned (an event just outside Luxembourg
    is as close as one just inside) and exact: a k-d tree over the densified border vertices
    finds candidate segments, measured exactly (see :func:`_nearest_on_lines`), so a million
    events take seconds rather than minutes.

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
    per_neighbour
        Whether to add the ``dist_<code>`` columns. Each costs one nearest-segment search
        per event; without them only the nearest border is searched (about 3x faster).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``events``, columns ``dist_<code>`` per neighbour (e.g. ``dist_BE``,
        in the order the neighbours first appear in ``borders``; only with
        ``per_neighbour``), ``border_distance`` (to the nearest border), ``nearest_border``
        (its neighbour code), and when ``crossings`` is given
        ``crossing_id``, ``crossing_neighbour``, ``crossing_kind`` (None when the columns are
        absent) and ``crossing_distance`` of the nearest crossing.
    """
    xy = event_xy(events)
    lines = _layer(borders, name="borders", column=neighbour_column, kinds=("LineString", "MultiLineString"))
    line_codes = lines[neighbour_column].astype(str).to_numpy()
    line_geoms = np.asarray(lines.geometry.values)
    codes = list(dict.fromkeys(line_codes))
    out = pd.DataFrame(index=events.index)
    if len(xy) == 0:
        dist = np.zeros((0, len(codes)))
        nearest_code = np.zeros(0, dtype=object)
    elif per_neighbour:
        dist = np.empty((len(xy), len(codes)))
        for k, code in enumerate(codes):
            dist[:, k], _ = _nearest_on_lines(xy, line_geoms[line_codes == code])
        nearest_code = np.asarray(codes, dtype=object)[np.argmin(dist, axis=1)]
    else:
        d, line = _nearest_on_lines(xy, line_geoms)
        dist = d[:, None]
        nearest_code = line_codes.astype(object)[line]
    if per_neighbour:
        for k, code in enumerate(codes):
            out[f"dist_{code}"] = dist[:, k]
    out["border_distance"] = dist.min(axis=1) if len(xy) else np.zeros(0)
    out["nearest_border"] = nearest_code
    if crossings is not None:
        cps = _layer(crossings, name="crossings", column=crossing_column, kinds=("Point",))
        if len(xy):
            cdist, idx = cKDTree(shapely.get_coordinates(np.asarray(cps.geometry.values))).query(xy)
        else:
            cdist, idx = np.zeros(0), np.zeros(0, dtype=np.int64)

        def column(name: str) -> np.ndarray:
            if name not in cps.columns:
                return np.full(len(xy), None, dtype=object)
            return cps[name].astype(object).to_numpy()[idx]

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
    xy = event_xy(events)
    if len(xy) == 0:
        raise ValidationError("events is empty; nothing to profile")
    per_event = distance_to_borders(
        events,
        borders=borders,
        crossings=crossings,
        neighbour_column=neighbour_column,
        crossing_column=crossing_column,
        per_neighbour=False,
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
