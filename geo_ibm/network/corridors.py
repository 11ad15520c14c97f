"""Events per road segment and per corridor (road ``ref``), with the change from the previous period."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import stats

from geo_ibm.hotspots import bh_adjusted_p
from geo_ibm.network.graph import RoadNetwork
from geo_ibm.network.snap import Snapped
from geo_ibm.settings import WORKING_CRS

ALPHA = 0.05
"""False discovery rate of the change test across segments or corridors."""


def rate_change_p(current: np.ndarray, previous: np.ndarray, share: float = 0.5) -> np.ndarray:
    """Two-sided p-value of "same rate in both periods" for Poisson counts.

    Conditional test: given ``T = current + previous``, ``current ~ Binomial(T, share)`` under the
    null, ``share`` being the current period's share of the time (0.5 for periods of equal
    length). The p-value is twice the smaller tail, capped at 1; NaN where ``T == 0``.
    """
    c = np.asarray(current, dtype=float)
    p = np.asarray(previous, dtype=float)
    total = c + p
    with np.errstate(invalid="ignore"):
        lower = stats.binom.cdf(c, total, share)
        upper = stats.binom.sf(c - 1, total, share)
    out = np.minimum(1.0, 2.0 * np.minimum(lower, upper))
    return np.where(total > 0, out, np.nan)


def _trend(current: np.ndarray, previous: np.ndarray, significant: np.ndarray, share: float) -> np.ndarray:
    expected_ratio = share / (1.0 - share)
    up = current > previous * expected_ratio
    trend = np.where(significant & up, "up", np.where(significant & ~up, "down", "stable"))
    return np.where((previous == 0) & (current > 0) & significant, "new", trend)


def _persons(snapped: Snapped) -> np.ndarray:
    events = snapped.events
    if "persons" in events:
        return pd.to_numeric(events["persons"], errors="coerce").fillna(0).to_numpy(dtype=float)
    return np.ones(len(events))


def segment_counts(network: RoadNetwork, snapped: Snapped) -> tuple[np.ndarray, np.ndarray]:
    """Events and persons per segment (arrays indexed by ``segment_id``)."""
    seg = snapped.events["segment_id"].to_numpy()
    on = seg >= 0
    n = len(network.segments)
    events = np.bincount(seg[on], minlength=n).astype(np.int64)
    persons = np.bincount(seg[on], weights=_persons(snapped)[on], minlength=n).astype(np.int64)
    return events, persons


def segment_stats(network: RoadNetwork, snapped: Snapped, previous: Snapped | None = None, *,
                  share: float = 0.5, alpha: float = ALPHA) -> gpd.GeoDataFrame:
    """Events per segment, per km, and their change from the previous period.

    Parameters
    ----------
    network
        The road graph.
    snapped
        This period's events on the network (:func:`geo_ibm.network.snap.snap_events`).
    previous
        The previous period's events on the same network, or ``None``.
    share
        This period's share of the two periods' combined length (0.5: equal lengths).
    alpha
        False discovery rate of the change test across segments (Benjamini–Hochberg).

    Returns
    -------
    GeoDataFrame
        ``segment_id``, ``ref``, ``name``, ``highway``, ``length_m``, ``events``, ``persons``,
        ``events_per_km``, ``previous_events`` (0 without ``previous``), ``change`` (events minus
        previous), ``p_value`` (:func:`rate_change_p`; NaN without ``previous`` or with no event
        in either), ``significant`` (BH-adjusted p <= alpha), ``trend`` (``up``, ``down``,
        ``new`` — significant, none before —, ``stable``), ``geometry`` (LineString).
    """
    events, persons = segment_counts(network, snapped)
    if previous is not None:
        prev, _ = segment_counts(network, previous)
        p_value = rate_change_p(events, prev, share)
    else:
        prev = np.zeros_like(events)
        p_value = np.full(events.size, np.nan)
    significant = bh_adjusted_p(p_value) <= alpha
    seg = network.segments
    length = seg["length_m"].to_numpy()
    out = gpd.GeoDataFrame({
        "segment_id": seg["segment_id"].to_numpy(),
        "ref": seg["ref"].to_numpy(), "name": seg["name"].to_numpy(), "highway": seg["highway"].to_numpy(),
        "length_m": length, "events": events, "persons": persons,
        "events_per_km": events / (length / 1000.0),
        "previous_events": prev, "change": events - prev, "p_value": p_value, "significant": significant,
        "trend": _trend(events, prev, significant, share),
    }, geometry=seg.geometry.to_numpy(), crs=WORKING_CRS)
    return out


def _first_ref(refs: pd.Series) -> pd.Series:
    """The first of ``;``-separated road numbers (OSM's ``A1;E44`` counts on the A1)."""
    return refs.fillna("").astype(str).str.split(";").str[0].str.strip()


def corridor_ranking(segments: gpd.GeoDataFrame, *, share: float = 0.5, alpha: float = ALPHA) -> gpd.GeoDataFrame:
    """Corridors (road ``ref``: A1, A3, N7...) ranked by events per km.

    Parameters
    ----------
    segments
        :func:`segment_stats`.
    share, alpha
        As for :func:`segment_stats`, applied to the corridors' totals.

    Returns
    -------
    GeoDataFrame
        ``rank`` (1 = most events per km), ``ref``, ``length_km``, ``events``, ``persons``,
        ``events_per_km``, ``previous_events``, ``change_pct`` (NaN when none before),
        ``p_value``, ``significant``, ``trend``, ``geometry`` (MultiLineString). Roads with no
        ``ref`` form one row ``ref == ""`` ("other roads").
    """
    frame = pd.DataFrame({
        "ref": _first_ref(segments["ref"]), "length_m": segments["length_m"].to_numpy(),
        "events": segments["events"].to_numpy(), "persons": segments["persons"].to_numpy(),
        "previous_events": segments["previous_events"].to_numpy(),
    })
    grouped = frame.groupby("ref", sort=True)
    sums = grouped[["length_m", "events", "persons", "previous_events"]].sum()
    geoms = {ref: shapely.multilinestrings(segments.geometry.to_numpy()[idx])
             for ref, idx in grouped.indices.items()}
    events = sums["events"].to_numpy()
    prev = sums["previous_events"].to_numpy()
    has_previous = bool(prev.sum() > 0) or "p_value" in segments and bool(np.isfinite(segments["p_value"]).any())
    p_value = rate_change_p(events, prev, share) if has_previous else np.full(events.size, np.nan)
    significant = bh_adjusted_p(p_value) <= alpha
    with np.errstate(invalid="ignore", divide="ignore"):
        change_pct = np.where(prev > 0, 100.0 * (events - prev) / prev, np.nan)
    out = pd.DataFrame({
        "ref": sums.index.to_numpy(), "length_km": sums["length_m"].to_numpy() / 1000.0,
        "events": events.astype(np.int64), "persons": sums["persons"].to_numpy().astype(np.int64),
        "events_per_km": events / (sums["length_m"].to_numpy() / 1000.0),
        "previous_events": prev.astype(np.int64), "change_pct": change_pct, "p_value": p_value,
        "significant": significant, "trend": _trend(events, prev, significant, share),
    })
    order = np.lexsort((out["ref"].to_numpy(), -out["events"].to_numpy(), -out["events_per_km"].to_numpy()))
    out = out.iloc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return gpd.GeoDataFrame(out, geometry=[geoms[r] for r in out["ref"]], crs=WORKING_CRS)
