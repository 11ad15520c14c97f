"""Entry attribution: the most likely entry crossing of each event, by network distance."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.network.graph import AttachedCrossings, RoadNetwork
from geo_ibm.network.paths import reach_costs, trees
from geo_ibm.network.snap import Snapped
from geo_ibm.settings import WORKING_CRS

ENTRY_NEIGHBOURS: tuple[str, ...] = ("BE", "FR", "DE")
"""Entry countries whose crossings can be attributed (``unknown`` cannot)."""


def _column(events: pd.DataFrame, name: str, default: object) -> np.ndarray:
    if name in events:
        return events[name].to_numpy(dtype=object)
    return np.full(len(events), default, dtype=object)


def attribute_entries(network: RoadNetwork, snapped: Snapped, crossings: AttachedCrossings) -> gpd.GeoDataFrame:
    """For each event, the crossing of its entry country nearest to it along the roads.

    The distance is the shortest drivable path (one-way roads respected) from the crossing's
    node to the event's position on its segment. The margin to the second-nearest crossing of
    the same country says how sure the attribution is: ``confidence = 1 - d1 / d2`` is 0 when
    two crossings are equally near and tends to 1 when the second is much farther (1 when the
    country has a single reachable crossing).

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
        ``crossing_id`` (None when not attributed), ``crossing_name``, ``distance_m``,
        ``second_crossing_id``, ``margin_m`` (second distance minus first; NaN with one
        candidate), ``confidence``, ``reason`` (None when attributed, else ``unknown entry
        country``, ``not on the network`` or ``no reachable crossing``), ``geometry`` (the
        event point).
    """
    events = snapped.events
    m = len(events)
    country = _column(events, "entry_country", "unknown")
    persons = pd.to_numeric(events["persons"], errors="coerce").fillna(0).to_numpy() if "persons" in events \
        else np.ones(m)
    crossing_id = np.full(m, None, dtype=object)
    crossing_name = np.full(m, None, dtype=object)
    second_id = np.full(m, None, dtype=object)
    distance = np.full(m, np.nan)
    second = np.full(m, np.nan)
    known = np.isin(country, ENTRY_NEIGHBOURS)
    snapped_mask = events["snapped"].to_numpy()
    reason = np.full(m, None, dtype=object)
    reason[~known] = "unknown entry country"
    reason[known & ~snapped_mask] = "not on the network"
    frame = crossings.frame
    tree = trees(network, frame["node"].to_numpy())
    segment = events["segment_id"].to_numpy()
    offset = events["offset_m"].to_numpy()
    for code in ENTRY_NEIGHBOURS:
        rows = np.flatnonzero((country == code) & snapped_mask)
        if rows.size == 0:
            continue
        candidates = np.flatnonzero(frame["neighbour"].to_numpy() == code)
        if candidates.size == 0:
            reason[rows] = "no reachable crossing"
            continue
        cost, _ = reach_costs(network, tree.distance[candidates], segment[rows], offset[rows], reverse=False)
        order = np.argsort(cost, axis=0)
        best = order[0]
        d1 = cost[best, np.arange(rows.size)]
        reachable = np.isfinite(d1)
        ids = frame["crossing_id"].to_numpy()[candidates]
        names = frame["name"].to_numpy()[candidates]
        ok = rows[reachable]
        crossing_id[ok] = ids[best[reachable]]
        crossing_name[ok] = names[best[reachable]]
        distance[ok] = d1[reachable]
        reason[rows[~reachable]] = "no reachable crossing"
        if candidates.size > 1:
            nxt = order[1]
            d2 = cost[nxt, np.arange(rows.size)]
            has_second = reachable & np.isfinite(d2)
            second_id[rows[has_second]] = ids[nxt[has_second]]
            second[rows[has_second]] = d2[has_second]
    margin = second - distance
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(np.isfinite(second), 1.0 - distance / second, np.where(np.isfinite(distance), 1.0,
                                                                                         np.nan))
    confidence = np.where(np.isfinite(second) & (second == 0), 0.0, confidence)
    out = pd.DataFrame({
        "event_id": _column(events, "event_id", None), "entry_country": country, "persons": persons,
        "crossing_id": crossing_id, "crossing_name": crossing_name, "distance_m": distance,
        "second_crossing_id": second_id, "margin_m": margin, "confidence": confidence, "reason": reason,
    }, index=events.index)
    return gpd.GeoDataFrame(out, geometry=events.geometry.to_numpy(), crs=WORKING_CRS, index=events.index)


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
    grouped = done.groupby("crossing_id").agg(events=("crossing_id", "size"), persons=("persons", "sum"),
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
