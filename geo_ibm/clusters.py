"""Density-based clusters of events (DBSCAN / HDBSCAN) summarised as hull polygons."""
from __future__ import annotations

import math
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm.errors import ValidationError
from geo_ibm.eventframe import event_xy
from geo_ibm.settings import WORKING_CRS

METHODS = ("dbscan", "hdbscan")

CLUSTER_COLUMNS = [
    "cluster_id",
    "n_events",
    "persons",
    "first_seen",
    "last_seen",
    "centroid_x",
    "centroid_y",
    "geometry",
]


def _check_params(
    method: str, eps: float | None, min_samples: int, min_cluster_size: int, hull_buffer: float, min_probability: float = 0.0
) -> None:
    problems = []
    if method not in METHODS:
        problems.append(f"method must be one of {METHODS}, got {method!r}")
    if eps is not None and not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        problems.append(f"eps must be a positive distance in metres, got {eps!r}")
    if not (isinstance(min_samples, (int, np.integer)) and min_samples >= 1):
        problems.append(f"min_samples must be an integer >= 1, got {min_samples!r}")
    if not (isinstance(min_cluster_size, (int, np.integer)) and min_cluster_size >= 2):
        problems.append(f"min_cluster_size must be an integer >= 2, got {min_cluster_size!r}")
    if not (isinstance(hull_buffer, (int, float)) and math.isfinite(hull_buffer) and hull_buffer >= 0):
        problems.append(f"hull_buffer must be a distance >= 0 in metres, got {hull_buffer!r}")
    if not (isinstance(min_probability, (int, float)) and 0 <= min_probability <= 1):
        problems.append(f"min_probability must be between 0 and 1, got {min_probability!r}")
    if problems:
        raise ValidationError("; ".join(problems))


def cluster_labels(
    events: gpd.GeoDataFrame,
    *,
    method: Literal["dbscan", "hdbscan"] = "dbscan",
    eps: float | None = None,
    min_samples: int = 5,
    min_cluster_size: int = 10,
    min_probability: float = 0.1,
) -> np.ndarray:
    """Cluster label of each event (``-1`` = noise), clusters numbered by size (0 = largest).

    Parameters
    ----------
    events
        Point events in EPSG:2169.
    method
        ``"dbscan"``: a core event has at least ``min_samples`` events (itself included) within
        ``eps`` metres; clusters are core events linked within ``eps`` plus their border events.
        ``"hdbscan"``: hierarchical DBSCAN over all ``eps``, keeping the most stable clusters of
        at least ``min_cluster_size`` events (``eps`` unused; ``min_samples`` sets the core
        distance).
    eps, min_samples, min_cluster_size
        See ``method``. ``eps=None`` (DBSCAN) derives it from the data: the radius of a disk
        that would hold ``min_samples / 10`` events if they were spread evenly over their
        convex hull, so a core event needs ten times the average density around it (our rule
        of thumb; give ``eps`` in metres to control it).
    min_probability
        HDBSCAN only: events whose membership strength (sklearn's ``probabilities_``) is below
        this are labelled noise. HDBSCAN's excess-of-mass selection keeps sparse background
        events in the cluster of their branch with a strength near 0; left in, they stretch
        the hulls over empty country.

    Raises
    ------
    ValidationError
        Unknown ``method``, non-positive ``eps``, ``min_samples`` < 1, ``min_cluster_size`` < 2,
        or fewer events than ``min_samples`` (and than ``min_cluster_size`` for HDBSCAN).
    """
    _check_params(method, eps, min_samples, min_cluster_size, 0.0, min_probability)
    xy = event_xy(events)
    needed = min_samples if method == "dbscan" else max(min_samples, min_cluster_size)
    if len(xy) < needed:
        param = "min_samples" if method == "dbscan" or min_samples >= min_cluster_size else "min_cluster_size"
        raise ValidationError(f"events: {len(xy)} events are too few to cluster with {param}={needed}")
    if method == "dbscan":
        from sklearn.cluster import DBSCAN

        if eps is None:
            eps = default_eps(xy, min_samples=min_samples)
        raw = DBSCAN(eps=float(eps), min_samples=int(min_samples)).fit_predict(xy)
    else:
        from sklearn.cluster import HDBSCAN

        fitted = HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=int(min_samples), copy=True).fit(xy)
        raw = np.where(fitted.probabilities_ >= min_probability, fitted.labels_, -1)
    return _renumber_by_size(raw)


DENSITY_FACTOR = 10.0


def default_eps(xy: np.ndarray, *, min_samples: int) -> float:
    """DBSCAN radius at which a core event needs ``DENSITY_FACTOR`` times the average density.

    The average density is the number of events over the area of their convex hull; with fewer
    than 3 non-collinear events the hull has no area and the bounding-box diagonal / 10 is used.
    """
    hull = shapely.convex_hull(shapely.multipoints(xy))
    if hull.area <= 0:
        minx, miny, maxx, maxy = hull.bounds
        return max(math.hypot(maxx - minx, maxy - miny) / 10.0, 1.0)
    lam = len(xy) / hull.area
    return math.sqrt(min_samples / DENSITY_FACTOR / (math.pi * lam))


def _renumber_by_size(raw: np.ndarray) -> np.ndarray:
    labels = np.full(raw.shape, -1, dtype=np.int64)
    found = raw >= 0
    if not found.any():
        return labels
    ids, counts = np.unique(raw[found], return_counts=True)
    # Largest first; ties broken by the original label so the order is deterministic.
    order = np.lexsort((ids, -counts))
    new = np.empty(ids.max() + 1, dtype=np.int64)
    new[ids[order]] = np.arange(ids.size)
    labels[found] = new[raw[found]]
    return labels


def density_clusters(
    events: gpd.GeoDataFrame,
    *,
    method: Literal["dbscan", "hdbscan"] = "dbscan",
    eps: float | None = None,
    min_samples: int = 5,
    min_cluster_size: int = 10,
    min_probability: float = 0.1,
    hull_buffer: float = 100.0,
) -> gpd.GeoDataFrame:
    """Clusters of events as polygons with counts and time span, one row per cluster.

    Parameters are those of :func:`cluster_labels`, plus ``hull_buffer``: clusters whose convex
    hull is a point or a line (fewer than 3 distinct, non-collinear events) are drawn as that
    hull buffered by ``hull_buffer`` metres.

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:2169, ordered by ``cluster_id``, columns

        - ``cluster_id``: 0 = the cluster with the most events
        - ``n_events``: events in the cluster
        - ``persons``: sum of ``persons`` (NaN when the column is absent)
        - ``first_seen``, ``last_seen``: earliest / latest ``observed_at`` (NaT when absent)
        - ``centroid_x``, ``centroid_y``: mean event coordinates in metres
        - ``geometry``: convex hull polygon of the cluster's events

        ``.attrs["labels"]`` is the per-event label array in the order of ``events`` (-1 =
        noise) and ``.attrs["parameters"]`` the parameters used.
    """
    _check_params(method, eps, min_samples, min_cluster_size, hull_buffer, min_probability)
    if method == "dbscan" and eps is None and isinstance(events, gpd.GeoDataFrame) and len(events):
        eps = default_eps(event_xy(events), min_samples=min_samples)
    labels = cluster_labels(
        events,
        method=method,
        eps=eps,
        min_samples=min_samples,
        min_cluster_size=min_cluster_size,
        min_probability=min_probability,
    )
    xy = event_xy(events)
    n_clusters = int(labels.max()) + 1 if labels.size else 0
    member = labels >= 0
    lab = labels[member]
    n_events = np.bincount(lab, minlength=n_clusters)
    cx = np.bincount(lab, weights=xy[member, 0], minlength=n_clusters) / np.maximum(n_events, 1)
    cy = np.bincount(lab, weights=xy[member, 1], minlength=n_clusters) / np.maximum(n_events, 1)
    if "persons" in events.columns:
        pv = pd.to_numeric(events["persons"], errors="coerce").to_numpy(dtype=float)[member]
        persons = np.bincount(lab, weights=np.nan_to_num(pv), minlength=n_clusters)
    else:
        persons = np.full(n_clusters, np.nan)
    if "observed_at" in events.columns:
        times = pd.to_datetime(events["observed_at"]).reset_index(drop=True)[member]
        grouped = times.groupby(lab)
        first_seen = grouped.min().reindex(range(n_clusters)).reset_index(drop=True)
        last_seen = grouped.max().reindex(range(n_clusters)).reset_index(drop=True)
    else:
        first_seen = last_seen = pd.Series(pd.NaT, index=range(n_clusters), dtype="datetime64[ns]")
    order = np.argsort(lab, kind="stable")
    bounds = np.r_[0, np.cumsum(n_events)]
    pts = shapely.points(xy[member][order])
    hulls = []
    for k in range(n_clusters):
        hull = shapely.convex_hull(shapely.multipoints(pts[bounds[k] : bounds[k + 1]]))
        if hull.geom_type != "Polygon":
            hull = hull.buffer(hull_buffer) if hull_buffer > 0 else hull
        hulls.append(hull)
    out = gpd.GeoDataFrame(
        {
            "cluster_id": np.arange(n_clusters, dtype=np.int64),
            "n_events": n_events.astype(np.int64),
            "persons": persons,
            "first_seen": first_seen,
            "last_seen": last_seen,
            "centroid_x": cx,
            "centroid_y": cy,
        },
        geometry=gpd.GeoSeries(hulls, crs=WORKING_CRS) if hulls else gpd.GeoSeries([], crs=WORKING_CRS),
        crs=WORKING_CRS,
    )[CLUSTER_COLUMNS]
    out.attrs["labels"] = labels
    out.attrs["parameters"] = {
        "method": method,
        "eps": None if eps is None else float(eps),
        "min_samples": int(min_samples),
        "min_cluster_size": int(min_cluster_size),
        "min_probability": float(min_probability),
        "hull_buffer": float(hull_buffer),
    }
    return out
