"""Entry attribution: the most likely entry crossing of each event, by network distance."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.network.graph import AttachedCrossings, RoadNetwork
from geo_ibm.network.paths import reach_points, trees
from geo_ibm.network.snap import Snapped
from geo_ibm.settings import WORKING_CRS

ENTRY_NEIGHBOURS: tuple[str, ...] = ("BE", "FR", "DE")
"""Entry countries whose crossings can be attributed (``unknown`` cannot)."""

REASONS: tuple[str, ...] = ("unknown entry country", "not on the network", "no reachable crossing")
"""Why an event has no attributed crossing (``reason``)."""


def _positions(values: pd.Series, labels: tuple[str, ...]) -> np.ndarray:
    """Each value's position in ``labels``, ``-1`` for any other value and missing ones."""
    code, uniques = pd.factorize(values)  # one hash pass, then the few distinct values by name
    lookup = np.array([labels.index(str(v)) if str(v) in labels else -1 for v in uniques] + [-1], dtype=np.int64)
    return lookup[code]


def attribute_entries(network: RoadNetwork, snapped: Snapped, crossings: AttachedCrossings) -> gpd.GeoDataFrame:
    """For each event, the crossing of its entry country nearest to it along the roads.

    The distance is the shortest drivable path (one-way roads respected) from the crossing's
    node to the event's position on its segment. The margin to the second-nearest crossing of
    the same country says how sure the attribution is: ``confidence = 1 - d1 / d2`` is 0 when
    two crossings are equally near and tends to 1 when the second is much farther (1 when the
    country has a single reachable crossing). Of equally near crossings, the one listed first in
    ``crossings`` is attributed.

    Parameters
    ----------
    network
        The road graph.
    snapped
        Events on the network, with ``entry_country`` (BE, FR, DE, unknown) and ``persons``.
    crossings
        :func:`geo_ibm.network.graph.attach_crossings`.

    Returns
    -------
    GeoDataFrame
        One row per event (same index): ``event_id``, ``entry_country``, ``persons``,
        ``crossing_id`` (categorical; missing, NaN, when not attributed), ``crossing_name``, ``distance_m``,
        ``second_crossing_id``, ``margin_m`` (second distance minus first; NaN with one
        candidate), ``confidence``, ``reason`` (None when attributed, else ``unknown entry
        country``, ``not on the network`` or ``no reachable crossing``), ``geometry`` (the
        event point).
    """
    events = snapped.events
    m = len(events)
    country = _positions(events["entry_country"], ENTRY_NEIGHBOURS) if "entry_country" in events \
        else np.full(m, -1, dtype=np.int64)
    persons = pd.to_numeric(events["persons"], errors="coerce").fillna(0).to_numpy() if "persons" in events \
        else np.ones(m)
    best_code = np.full(m, -1, dtype=np.int64)
    second_code = np.full(m, -1, dtype=np.int64)
    distance = np.full(m, np.nan)
    second = np.full(m, np.nan)
    known = country >= 0
    snapped_mask = events["snapped"].to_numpy()
    reason_code = np.where(~known, 0, np.where(~snapped_mask, 1, -1))
    frame = crossings.frame
    tree = trees(network, frame["node"].to_numpy())
    segment = events["segment_id"].to_numpy()
    offset = events["offset_m"].to_numpy()
    neighbour = frame["neighbour"].to_numpy()
    for position, code in enumerate(ENTRY_NEIGHBOURS):
        rows = np.flatnonzero((country == position) & snapped_mask)
        if rows.size == 0:
            continue
        candidates = np.flatnonzero(neighbour == code)
        reach = reach_points(network, tree, candidates, segment[rows], offset[rows])
        reachable = reach.first >= 0
        best_code[rows] = reach.first
        distance[rows[reachable]] = reach.first_distance[reachable]
        reason_code[rows[~reachable]] = 2
        has_second = reach.second >= 0
        second_code[rows] = reach.second
        second[rows[has_second]] = reach.second_distance[has_second]
    margin = second - distance
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(np.isfinite(second), 1.0 - distance / second, np.where(np.isfinite(distance), 1.0,
                                                                                         np.nan))
    confidence = np.where(np.isfinite(second) & (second == 0), 0.0, confidence)
    ids = pd.Index(frame["crossing_id"].astype(str))
    unique_names, name_code = np.unique(frame["name"].astype(str).to_numpy(), return_inverse=True)
    def categories(codes: np.ndarray, labels: Any) -> Any:
        # a categorical column: built from the codes without a string per row
        return pd.Categorical.from_codes(codes.astype(np.int64), dtype=pd.CategoricalDtype(list(labels)))

    out = pd.DataFrame({
        "event_id": events["event_id"] if "event_id" in events else pd.Series(None, index=events.index, dtype=object),
        "entry_country": events["entry_country"] if "entry_country" in events else np.full(m, "unknown", dtype=object),
        "persons": persons,
        "crossing_id": categories(best_code, ids),
        "crossing_name": categories(np.where(best_code >= 0, name_code[np.maximum(best_code, 0)] if name_code.size else -1, -1),
                                    unique_names),
        "distance_m": distance,
        "second_crossing_id": categories(second_code, ids),
        "margin_m": margin, "confidence": confidence,
        "reason": categories(reason_code, REASONS),
    }, index=events.index)
    return gpd.GeoDataFrame(out, geometry=events.geometry.array, crs=WORKING_CRS, index=events.index)


def crossing_table(attribution: gpd.GeoDataFrame, crossings: AttachedCrossings) -> gpd.GeoDataFrame:
    """Attributed events and persons per crossing.

    Returns
    -------
    GeoDataFrame
        ``crossing_id``, ``name``, ``neighbour``, ``events``, ``persons``, ``share`` (of the
        attributed events), ``mean_confidence``, ``geometry`` (crossing point); every attached
        crossing, most events first.
    """
    done = attribution[attribution["crossing_id"].notna()]
    grouped = done.groupby("crossing_id", observed=True).agg(events=("crossing_id", "size"), persons=("persons", "sum"),
                                              mean_confidence=("confidence", "mean"))
    frame = crossings.frame
    out = frame[["crossing_id", "name", "neighbour"]].merge(grouped, left_on="crossing_id", right_index=True,
                                                            how="left")
    out["events"] = out["events"].fillna(0).astype(np.int64)
    out["persons"] = out["persons"].fillna(0).astype(np.int64)
    total = max(int(out["events"].sum()), 1)
    out["share"] = out["events"] / total
    out = gpd.GeoDataFrame(out, geometry=frame.geometry.to_numpy(), crs=WORKING_CRS)
    order = np.lexsort((out["crossing_id"].to_numpy(), -out["events"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)
