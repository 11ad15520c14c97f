"""Named hotspots: contiguous significant Gi* hot cells merged into one hotspot each, named by place and ranked by events."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from geo_ibm.disclosure import DisclosureRule, protect_counts
from geo_ibm.errors import GeoIbmError, Problem, ValidationError
from geo_ibm.io import ensure_working_crs
from geo_ibm.settings import WORKING_CRS

COLUMNS: tuple[str, ...] = (
    "hotspot_id", "rank", "name", "cells", "events", "persons", "max_z", "confidence", "previous", "change_pct",
    "trend", "trend_p", "emerging", "commune", "canton", "region", "road_ref", "landmark", "communes",
)
"""Columns of :func:`named_hotspots` besides ``geometry``, in order."""

CONFIDENCE: dict[int, str] = {3: "99%", 2: "95%", 1: "90%"}
"""Label of the best Gi* bin of a hotspot."""

TRENDS: tuple[str, ...] = ("new", "up", "down", "stable")
"""Trend of a hotspot against the previous period: ``new`` (no event there before), ``up`` and
``down`` (a significant change, exact conditional Poisson test at 5 %), ``stable`` (no
significant change)."""

TREND_ALPHA = 0.05

EMERGING_PRIORITY: tuple[str, ...] = (
    "new hot spot", "intensifying hot spot", "consecutive hot spot", "persistent hot spot", "sporadic hot spot",
    "oscillating hot spot", "diminishing hot spot", "historical hot spot",
)
"""Emerging hot spot categories a hotspot takes from its cells, the most telling first (when
two are as frequent among its cells, the earlier wins)."""

COMMUNES_LISTED = 4
"""Most communes named in a hotspot's ``communes`` column."""

PROTECTED_DROPPED: tuple[str, ...] = ("max_z", "trend_p", "change_pct")
"""Columns an aggregates-only reader does not get (a z-score, a test of change, an exact ratio)."""

_QUEEN = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
_HEX_AXIAL = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, -1), (-1, 1)]


# --------------------------------------------------------------------------- contiguity


def _lattice_pairs(rows: np.ndarray, cols: np.ndarray, offsets: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of cells whose lattice positions differ by one of ``offsets``."""
    r = rows.astype(np.int64)
    c = cols.astype(np.int64)
    width = int(c.max() - c.min()) + 3 if len(c) else 1
    key = (r - r.min() + 1) * width + (c - c.min() + 1) if len(r) else r
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    for dr, dc in offsets:
        want = key + dr * width + dc
        pos = np.searchsorted(sorted_key, want)
        ok = pos < len(sorted_key)
        hit = np.zeros(len(key), dtype=bool)
        hit[ok] = sorted_key[pos[ok]] == want[ok]
        first.append(np.flatnonzero(hit))
        second.append(order[pos[hit]])
    return np.concatenate(first), np.concatenate(second)


def hotspot_components(cells: gpd.GeoDataFrame, *, shape: str = "square") -> np.ndarray:
    """Hotspot number (0, 1, ...) of each cell: cells sharing an edge or a corner are one hotspot.

    With ``row``/``col`` columns (the grid's lattice position, as :func:`geo_ibm.hotspots.gi_frame`
    keeps them) neighbours are found by index arithmetic: the eight queen neighbours of a square
    cell, the six neighbours of a hexagon ("odd-r" offset rows, :mod:`geo_ibm.grid`), on the
    whole lattice: two cells clipped by the study area's limit stay neighbours even where the
    clipping parted them (a hotspot across a bend of the border is one). Without them
    (a protected result, say) cells whose geometries touch or overlap are neighbours.
    """
    n = len(cells)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if {"row", "col"} <= set(cells.columns):
        rows = cells["row"].to_numpy(dtype=np.int64)
        cols = cells["col"].to_numpy(dtype=np.int64)
        if shape == "hex":
            cols = cols - (rows - (rows & 1)) // 2  # axial coordinates: six fixed offsets
            i, j = _lattice_pairs(rows, cols, _HEX_AXIAL)
        else:
            i, j = _lattice_pairs(rows, cols, _QUEEN)
    else:
        geoms = cells.geometry.to_numpy()
        # 1 cm of slack: clipped cells of one lattice share limits up to rounding.
        i, j = shapely.STRtree(geoms).query(shapely.buffer(geoms, 0.01), predicate="intersects")
    graph = sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _n, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


# --------------------------------------------------------------------------- named hotspots


def _check_gi(gi: Any) -> gpd.GeoDataFrame:
    if not isinstance(gi, gpd.GeoDataFrame):
        raise ValidationError(f"gi_result_cells must be a GeoDataFrame, got {type(gi).__name__}",
                              [Problem("not a GeoDataFrame", column="gi_result_cells")])
    frame = ensure_working_crs(gi, name="gi_result_cells")
    missing = [c for c in ("cell_id", "count") if c not in frame.columns]
    if "gi_bin_fdr" not in frame.columns and "gi_bin" not in frame.columns:
        missing.append("gi_bin_fdr")
    if missing:
        raise ValidationError(f"gi_result_cells: missing columns {missing} (a Gi* result of geo_ibm.hotspots)",
                              [Problem("missing column", column=missing[0])])
    return frame


def _event_cells(events: gpd.GeoDataFrame, cells: gpd.GeoDataFrame, *, square_cell: float | None = None) -> pd.DataFrame:
    """Each event in one of ``cells``: its position in ``cells`` (``cell``) and ``persons``.

    With ``square_cell`` (a square lattice anchored at multiples of the cell, as
    :mod:`geo_ibm.grid` makes them) an event belongs to the lattice square holding it, as
    :func:`geo_ibm.grid.bin_counts` counts it, also where the cell is clipped by the study
    area's limit; otherwise to the (clipped) cell geometry it falls in.
    """
    points = ensure_working_crs(events, name="events")
    geoms = points.geometry.to_numpy()
    ok = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
    persons = (pd.to_numeric(points["persons"], errors="coerce").fillna(0).to_numpy(dtype=float)
               if "persons" in points.columns else np.full(len(points), np.nan))
    if not len(ok) or not len(cells):
        return pd.DataFrame({"event": np.zeros(0, dtype=np.int64), "cell": np.zeros(0, dtype=np.int64),
                             "persons": np.zeros(0)})
    if square_cell is not None:
        # A point inside a clipped cell lies in its lattice square: that square's indices are the cell's key.
        inner = shapely.get_coordinates(shapely.point_on_surface(cells.geometry.to_numpy()))
        keys = {(int(i), int(j)): k for k, (i, j) in enumerate(np.floor(inner / square_cell).astype(np.int64))}
        xy = shapely.get_coordinates(geoms[ok])
        ij = np.floor(xy / square_cell).astype(np.int64)
        cell = np.array([keys.get((int(i), int(j)), -1) for i, j in ij], dtype=np.int64)
        hit = cell >= 0
        event, where = ok[hit], cell[hit]
    else:
        p, c = shapely.STRtree(cells.geometry.to_numpy()).query(geoms[ok], predicate="intersects")
        # A point on the limit of two cells counts once, in the first of them.
        keep = np.unique(p, return_index=True)[1]
        event, where = ok[p[keep]], c[keep]
    return pd.DataFrame({"event": event, "cell": where, "persons": persons[event]})


def _trend(current: float, previous: float, exposure: tuple[float, float]) -> tuple[str, float]:
    if previous == 0:
        return ("new" if current > 0 else "stable"), float("nan")
    n = int(current + previous)
    share = exposure[0] / (exposure[0] + exposure[1])
    p = float(stats.binomtest(int(current), n, share, alternative="two-sided").pvalue)
    if p >= TREND_ALPHA:
        return "stable", p
    expected = n * share
    return ("up" if current > expected else "down"), p


def _emerging_of(emerging: gpd.GeoDataFrame, polygons: np.ndarray) -> list[str | None]:
    frame = ensure_working_crs(emerging, name="emerging")
    if "category" not in frame.columns:
        raise ValidationError("emerging: no 'category' column (a result of geo_ibm.emerging.emerging_hotspots)",
                              [Problem("missing column", column="category")])
    hot = frame[frame["category"].astype(str).isin(EMERGING_PRIORITY)]
    out: list[str | None] = [None] * len(polygons)
    if not len(hot) or not len(polygons):
        return out
    # A cell's representative point lies in the one hotspot cell of the same lattice holding it.
    centres = shapely.point_on_surface(hot.geometry.to_numpy())
    p, h = shapely.STRtree(centres).query(polygons, predicate="intersects")
    categories = hot["category"].astype(str).to_numpy()
    rank = {c: k for k, c in enumerate(EMERGING_PRIORITY)}
    for k in range(len(polygons)):
        found = categories[h[p == k]]
        if len(found):
            values, counts = np.unique(found, return_counts=True)
            out[k] = min(zip(values, counts), key=lambda vc: (-vc[1], rank[str(vc[0])]))[0]
    return out


def _communes_covered(cells: gpd.GeoDataFrame, labels: np.ndarray, weight: np.ndarray, n_spots: int, *,
                      commune_layer: gpd.GeoDataFrame | None) -> list[str]:
    """Per hotspot, the communes of its cells, most events first (then most cells, then by name), ``", "``-joined."""
    from geo_ibm.gazetteer import commune_at

    if not len(cells):
        return []
    points = gpd.GeoSeries(shapely.point_on_surface(cells.geometry.to_numpy()), crs=WORKING_CRS)
    names = commune_at(points, commune_layer=commune_layer)["commune"].to_numpy(dtype=object)
    frame = pd.DataFrame({"spot": labels, "commune": names, "weight": weight, "cells": 1})
    frame = frame[frame["commune"].map(lambda v: isinstance(v, str))]
    totals = frame.groupby(["spot", "commune"], as_index=False)[["weight", "cells"]].sum()
    totals = totals.sort_values(["spot", "weight", "cells", "commune"], ascending=[True, False, False, True])
    out = [""] * n_spots
    for _spot, group in totals.groupby("spot"):
        out[int(group["spot"].iloc[0])] = ", ".join(group["commune"].head(COMMUNES_LISTED))
    return out


def named_hotspots(
    gi_result_cells: gpd.GeoDataFrame,
    events: gpd.GeoDataFrame | None = None,
    emerging: gpd.GeoDataFrame | None = None,
    *,
    previous: gpd.GeoDataFrame | None = None,
    exposure: tuple[float, float] = (1.0, 1.0),
    min_bin: int = 1,
    lang: str = "en",
    road_distance_m: float | None = None,
    landmark_distance_m: float | None = None,
    roads: gpd.GeoDataFrame | None = None,
    landmark_layer: gpd.GeoDataFrame | None = None,
    commune_layer: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Merge contiguous significant Gi* hot cells into hotspots, name each by place, rank them by events.

    Cells with an FDR-corrected bin (``gi_bin_fdr``, else ``gi_bin``) of at least ``min_bin``
    are hot; hot cells sharing an edge or a corner are one hotspot
    (:func:`hotspot_components`). A hotspot is named (:func:`geo_ibm.gazetteer.place_name`)
    at its peak: the representative point of its cell with the most events (then the highest
    z-score).

    Parameters
    ----------
    gi_result_cells
        A Gi* result (:func:`geo_ibm.hotspots.hotspots_from_events`, or the ``gi`` method of
        :func:`geo_ibm.analysis.run_method`): ``cell_id``, ``count``, ``gi_z`` (optional),
        ``gi_bin_fdr`` or ``gi_bin``, cell polygons, and ``row``/``col`` when it has them.
    events
        The events analysed: counted (and their ``persons`` summed) in each hotspot's cells,
        on a square grid of known ``parameters["cell"]`` by the lattice square holding them (so
        ``events`` equals the sum of the cells' ``count`` of an unweighted Gi*, events just
        across a clipped border cell included), else by the cell polygons. ``None``: ``events``
        is the sum of the cells' ``count`` and ``persons`` is missing.
    emerging
        An emerging hot spot result (:func:`geo_ibm.emerging.emerging_hotspots`) on the same
        lattice: each hotspot takes the most frequent hot spot category among its cells
        (ties: :data:`EMERGING_PRIORITY` order).
    previous
        The events of the period before: counted in the same cells for ``previous``,
        ``change_pct`` and ``trend`` (:data:`TRENDS`).
    exposure
        Lengths of the analysed and the previous period (days, say) for the trend test.
    min_bin
        Smallest bin counted as hot: 1 (90 %), 2 (95 %) or 3 (99 %).
    lang
        Language of the names (``"en"``, ``"fr"``).
    road_distance_m, landmark_distance_m, roads, landmark_layer, commune_layer
        Passed to :func:`geo_ibm.gazetteer.place_name` (``None``: its defaults).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:2169, one row per hotspot, ranked by ``events`` (then ``max_z``): ``hotspot_id``
        (``"H1"``, ``"H2"``... in rank order), ``rank``, ``name`` (repeats numbered: "Remich #2"),
        ``cells``, ``events``, ``persons``, ``max_z`` (highest Gi* z-score, NaN without
        ``gi_z``), ``confidence`` (best bin: ``"99%"``, ``"95%"``, ``"90%"``), ``previous``,
        ``change_pct``, ``trend`` (``None`` without ``previous``), ``trend_p`` (two-sided p of
        the exact conditional Poisson test; NaN when not tested), ``emerging`` (``None`` without
        ``emerging`` or with no hot category), ``commune``, ``canton``, ``region``, ``road_ref``,
        ``landmark`` (``""`` when none), ``communes`` (the communes the hotspot's cells lie in,
        most events first, at most :data:`COMMUNES_LISTED`, ``", "``-joined: a large hotspot is more
        than the place it is named after) and the merged polygon ``geometry``.
        ``.attrs["parameters"]``: the Gi* parameters, ``contiguity``, ``min_bin``.

    Raises
    ------
    ValidationError
        Not a Gi* result, a bad ``min_bin``, ``lang`` or distance (the problem names it).
    """
    from geo_ibm.gazetteer import place_name, unique_names

    gi = _check_gi(gi_result_cells)
    if min_bin not in (1, 2, 3):
        raise ValidationError(f"min_bin must be 1, 2 or 3, got {min_bin!r}",
                              [Problem("not 1, 2 or 3", column="min_bin", value=min_bin)])
    if not (len(exposure) == 2 and all(float(e) > 0 for e in exposure)):
        raise ValidationError(f"exposure must be two positive lengths, got {exposure!r}",
                              [Problem("not two positive lengths", column="exposure", value=exposure)])
    params = dict(gi.attrs.get("parameters", {}))
    shape = str(params.get("shape", "square"))
    cell_size = params.get("cell")
    square_cell = float(cell_size) if shape == "square" and isinstance(cell_size, (int, float)) and cell_size > 0 \
        else None
    bin_column = "gi_bin_fdr" if "gi_bin_fdr" in gi.columns else "gi_bin"
    bins = gi[bin_column].astype(int).to_numpy()
    hot = gi[bins >= min_bin].reset_index(drop=True)
    hot_bins = hot[bin_column].astype(int).to_numpy()
    labels = hotspot_components(hot, shape=shape)
    n_spots = int(labels.max()) + 1 if len(labels) else 0
    z = hot["gi_z"].to_numpy(dtype=float) if "gi_z" in hot.columns else np.full(len(hot), np.nan)
    counts = pd.to_numeric(hot["count"], errors="coerce").fillna(0).to_numpy(dtype=float)

    if events is not None:
        placed = _event_cells(events, hot, square_cell=square_cell)
        cell_events = np.bincount(placed["cell"].to_numpy(), minlength=len(hot)).astype(float)
        cell_persons = np.bincount(placed["cell"].to_numpy(), weights=placed["persons"].to_numpy(),
                                   minlength=len(hot))
    else:
        cell_events = counts
        cell_persons = np.full(len(hot), np.nan)
    spot_events = np.bincount(labels, weights=cell_events, minlength=n_spots)
    spot_persons = (np.bincount(labels, weights=cell_persons, minlength=n_spots) if events is not None
                    else np.full(n_spots, np.nan))
    spot_cells = np.bincount(labels, minlength=n_spots)
    prev = np.full(n_spots, np.nan)
    if previous is not None:
        before = _event_cells(previous, hot, square_cell=square_cell)
        prev = np.bincount(labels[before["cell"].to_numpy()], minlength=n_spots).astype(float)

    peak = np.zeros(n_spots, dtype=np.int64)
    max_z = np.full(n_spots, np.nan)
    best = np.zeros(n_spots, dtype=np.int64)
    polygons = np.empty(n_spots, dtype=object)
    geoms = hot.geometry.to_numpy()
    for k in range(n_spots):
        members = np.flatnonzero(labels == k)
        # Most events first, then the highest z-score, then the lowest cell id: one answer.
        order = np.lexsort((hot["cell_id"].to_numpy()[members], -np.nan_to_num(z[members], nan=-np.inf),
                            -cell_events[members]))
        peak[k] = members[order[0]]
        max_z[k] = np.nanmax(z[members]) if np.isfinite(z[members]).any() else np.nan
        best[k] = int(hot_bins[members].max())
        polygons[k] = shapely.union_all(geoms[members])
    ranking = np.lexsort((np.arange(n_spots), -np.nan_to_num(max_z, nan=-np.inf), -spot_events))

    peaks = gpd.GeoSeries(shapely.point_on_surface(geoms[peak[ranking]]) if n_spots else [], crs=WORKING_CRS)
    naming: dict[str, Any] = {"lang": lang, "roads": roads, "landmark_layer": landmark_layer,
                              "commune_layer": commune_layer}
    if road_distance_m is not None:
        naming["road_distance_m"] = road_distance_m
    if landmark_distance_m is not None:
        naming["landmark_distance_m"] = landmark_distance_m
    places = place_name(peaks, **naming).reset_index(drop=True)

    out_events = spot_events[ranking]
    out_prev = prev[ranking]
    trends: list[str | None] = [None] * n_spots
    trend_p = np.full(n_spots, np.nan)
    change = np.full(n_spots, np.nan)
    if previous is not None:
        for k in range(n_spots):
            trends[k], trend_p[k] = _trend(out_events[k], out_prev[k], (float(exposure[0]), float(exposure[1])))
            if out_prev[k] > 0:
                change[k] = 100.0 * (out_events[k] - out_prev[k]) / out_prev[k]
    ranked_polygons = polygons[ranking] if n_spots else np.zeros(0, dtype=object)
    covered = _communes_covered(hot, labels, cell_events, n_spots, commune_layer=commune_layer)
    emerging_of = _emerging_of(emerging, ranked_polygons) if emerging is not None else [None] * n_spots
    frame = pd.DataFrame({
        "hotspot_id": [f"H{k}" for k in range(1, n_spots + 1)],
        "rank": np.arange(1, n_spots + 1, dtype=np.int64),
        "name": unique_names(places["name"].astype(str).tolist()),
        "cells": spot_cells[ranking].astype(np.int64),
        "events": out_events.astype(np.int64),
        "persons": spot_persons[ranking],
        "max_z": max_z[ranking],
        "confidence": [CONFIDENCE[int(b)] for b in best[ranking]],
        "previous": out_prev,
        "change_pct": change,
        "trend": trends,
        "trend_p": trend_p,
        "emerging": emerging_of,
        "commune": places["commune"].to_numpy(dtype=object),
        "canton": places["canton"].to_numpy(dtype=object),
        "region": places["region"].to_numpy(dtype=object),
        "road_ref": places["road_ref"].to_numpy(dtype=object),
        "landmark": places["landmark"].to_numpy(dtype=object),
        "communes": [covered[k] for k in ranking],
    }, columns=list(COLUMNS))
    out = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(ranked_polygons, crs=WORKING_CRS), crs=WORKING_CRS)
    params.update(contiguity="queen (edge or corner)" if shape != "hex" else "shared edge (hexagons)",
                  min_bin=int(min_bin), bin_column=bin_column)
    out.attrs = {"parameters": params}
    return out


def protect_hotspots(hotspots: gpd.GeoDataFrame, rule: DisclosureRule) -> gpd.GeoDataFrame:
    """Named hotspots as an aggregates-only reader sees them (:mod:`geo_ibm.disclosure`).

    ``events``, ``persons`` and ``previous`` protected (:func:`geo_ibm.disclosure.protect_counts`:
    1 to ``min_count - 1`` suppressed, others rounded; ``persons`` suppressed too where ``events`` is); :data:`PROTECTED_DROPPED` removed;
    ``trend`` compares the two protected counts only (``up``, ``down``, ``stable``; ``None``
    when either is suppressed), so no exact change or test is shown.
    """
    out = hotspots.drop(columns=[c for c in PROTECTED_DROPPED if c in hotspots.columns]).copy()
    for column in ("events", "persons", "previous"):
        if column in out.columns:
            out[column] = protect_counts(out[column].to_numpy(dtype=float), rule)
    if "persons" in out.columns and "events" in out.columns:
        # the persons of a hot spot whose events are suppressed would tell the size of its interceptions
        out["persons"] = np.where(np.isnan(out["events"].to_numpy(dtype=float)), np.nan,
                                  out["persons"].to_numpy(dtype=float))
    if "trend" in out.columns and "previous" in out.columns:
        now, before = out["events"].to_numpy(dtype=float), out["previous"].to_numpy(dtype=float)
        had = hotspots["trend"].notna().to_numpy()
        out["trend"] = [None if not h or np.isnan(a) or np.isnan(b) else ("up" if a > b else "down" if a < b else "stable")
                        for h, a, b in zip(had, now, before)]
    params = dict(hotspots.attrs.get("parameters", {}))
    params = {k: v for k, v in params.items() if k not in ("cell_details", "band_details", "start", "end")}
    if isinstance(params.get("n_events"), (int, float, np.integer, np.floating)):
        params["n_events"] = float(protect_counts([params["n_events"]], rule)[0])
    params["disclosure"] = rule.describe()
    out.attrs = {"parameters": params}
    return out


# --------------------------------------------------------------------------- from the store


def _previous_filters(filters: dict[str, Any]) -> tuple[dict[str, Any], tuple[float, float]] | None:
    """Store filters of the period just before ``filters``' (a quarter, or a closed window), and both lengths in days.

    ``None`` without such a period: an open window, or a window inside a quarter filter.
    """
    from geo_ibm.periods import parse_quarter, quarter_bounds, shift_quarter

    windowed = filters.get("start") is not None or filters.get("end") is not None
    if filters.get("quarter") and windowed:
        return None  # part of a quarter: no period before it of the same kind
    if filters.get("quarter"):
        q = parse_quarter(str(filters["quarter"]))
        pq = shift_quarter(q, -1)
        start, end = quarter_bounds(q)
        p_start, p_end = quarter_bounds(pq)
        days = ((end - start).total_seconds() / 86400.0, (p_end - p_start).total_seconds() / 86400.0)
        return {**filters, "quarter": pq}, days
    if filters.get("start") is not None and filters.get("end") is not None:
        start, end = pd.Timestamp(filters["start"]), pd.Timestamp(filters["end"])
        length = end - start
        if length <= pd.Timedelta(0):
            return None
        span = length.total_seconds() / 86400.0
        return {**filters, "start": start - length, "end": start}, (span, span)
    return None


def named_hotspots_for_query(store: Any, query: Any, *, disclosure: DisclosureRule | None = None,
                             lang: str = "en", emerging: bool = True) -> gpd.GeoDataFrame:
    """:func:`named_hotspots` of the Gi* cells a hotspot query gives (the hotspot map's Gi* layer).

    The query's Gi* runs as :func:`geo_ibm.analysis.hotspots` runs it (with ``disclosure``:
    the rule's one lattice, whole time blocks, region only clipping); the trend compares the
    period before (the previous quarter, or the window of the same length just before) and,
    with ``emerging``, the categories of the query's emerging hot spot analysis are added
    (left empty when that analysis refuses the selection). With ``disclosure`` the result is
    protected (:func:`protect_hotspots`).

    Parameters
    ----------
    store
        The event store.
    query
        A :class:`geo_ibm.analysis.HotspotQuery` (its method is ignored: Gi* is run).

    Raises
    ------
    ValidationError
        Sizes over the cost limits, too many or too few events for Gi*.
    """
    from geo_ibm.analysis.budget import check_event_count
    from geo_ibm.analysis.methods import run_method
    from geo_ibm.analysis.requests import ANALYSIS_COLUMNS, check_query, protect_query

    gi_query = replace(query, method="gi")
    if disclosure is not None:
        gi_query = protect_query(gi_query, disclosure)
    check_query(gi_query)
    filters = gi_query.store_filters()
    check_event_count("gi", store.count(**filters), protected=disclosure is not None)
    columns = list(ANALYSIS_COLUMNS)
    events = store.events(**filters, columns=columns)
    canton = gi_query.canton if gi_query.clip_only else None
    gi = run_method(events, method="gi", cell=gi_query.cell, band=gi_query.band, region=gi_query.region,
                    canton=canton)
    emerging_cells = None
    if emerging:
        try:
            check_query(replace(gi_query, method="emerging"))
            check_event_count("emerging", len(events))
            emerging_cells = run_method(events, method="emerging", cell=gi_query.cell, band=gi_query.band,
                                        region=gi_query.region, canton=canton)
        except GeoIbmError:
            emerging_cells = None
    before = _previous_filters(filters)
    previous = None
    exposure = (1.0, 1.0)
    if before is not None:
        previous = store.events(**before[0], columns=columns)
        exposure = before[1]
    result = named_hotspots(gi, events=events, emerging=emerging_cells, previous=previous, exposure=exposure, lang=lang)
    params = dict(result.attrs.get("parameters", {}))
    params.update(gi_query.described())
    params["n_events"] = int(len(events))
    result.attrs = {"parameters": params}
    return protect_hotspots(result, disclosure) if disclosure is not None else result


__all__ = [
    "COLUMNS", "COMMUNES_LISTED", "CONFIDENCE", "EMERGING_PRIORITY", "PROTECTED_DROPPED", "TRENDS", "hotspot_components",
    "named_hotspots", "named_hotspots_for_query", "protect_hotspots",
]
