"""Tests for geo_ibm.clusters: planted blobs in uniform noise, summaries against pandas."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sklearn.metrics import adjusted_rand_score

from geo_ibm.clusters import cluster_labels, density_clusters
from geo_ibm.errors import ValidationError

CENTRES = np.array([[70_000, 80_000], [90_000, 110_000], [65_000, 120_000]])
SIZES = (120, 80, 40)


@pytest.fixture(scope="module")
def planted():
    """Three tight blobs (sd 300 m) and 150 uniform noise events in a 40 x 70 km box."""
    rng = np.random.default_rng(11)
    xy = [rng.normal(c, 300, (k, 2)) for c, k in zip(CENTRES, SIZES)]
    noise = rng.uniform([60_000, 60_000], [100_000, 130_000], (150, 2))
    truth = np.r_[np.repeat(np.arange(3), SIZES), np.full(150, -1)]
    all_xy = np.r_[np.vstack(xy), noise]
    n = len(all_xy)
    times = pd.Timestamp("2025-01-01", tz="Europe/Luxembourg") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h")
    events = gpd.GeoDataFrame(
        {"observed_at": times, "persons": rng.integers(1, 10, n)},
        geometry=gpd.points_from_xy(all_xy[:, 0], all_xy[:, 1]),
        crs="EPSG:2169",
    )
    return events, truth


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [("dbscan", {"eps": 400.0, "min_samples": 8}), ("hdbscan", {"min_cluster_size": 20, "min_samples": 8})],
)
def test_recovers_planted_blobs(planted, method, kwargs):
    events, truth = planted
    labels = cluster_labels(events, method=method, **kwargs)
    assert adjusted_rand_score(truth, labels) > 0.9
    # Clusters are numbered by size, so the 120-event blob is cluster 0.
    for k in range(3):
        majority = np.bincount(labels[truth == k][labels[truth == k] >= 0]).argmax()
        assert majority == k


def test_summary_matches_pandas(planted):
    events, _ = planted
    out = density_clusters(events, eps=400.0, min_samples=8)
    labels = out.attrs["labels"]
    assert list(out.columns) == [
        "cluster_id", "n_events", "persons", "first_seen", "last_seen", "centroid_x", "centroid_y", "geometry",
    ]
    assert out.crs.to_epsg() == 2169 and len(out) == 3
    assert out.attrs["parameters"] | {} == {
        "method": "dbscan", "eps": 400.0, "min_samples": 8, "min_cluster_size": 10, "min_probability": 0.1,
        "hull_buffer": 100.0,
    }
    frame = events.assign(label=labels, x=events.geometry.x, y=events.geometry.y)
    ref = frame[frame.label >= 0].groupby("label").agg(
        n=("x", "size"), persons=("persons", "sum"), first=("observed_at", "min"), last=("observed_at", "max"),
        x=("x", "mean"), y=("y", "mean"),
    )
    np.testing.assert_array_equal(out.n_events, ref.n)
    np.testing.assert_allclose(out.persons, ref.persons)
    np.testing.assert_allclose(out.centroid_x, ref.x)
    np.testing.assert_allclose(out.centroid_y, ref.y)
    assert (out.first_seen.to_numpy() == ref["first"].to_numpy()).all()
    assert (out.last_seen.to_numpy() == ref["last"].to_numpy()).all()
    assert str(out.first_seen.dt.tz) == "Europe/Luxembourg"
    assert out.n_events.is_monotonic_decreasing
    for k, hull in zip(out.cluster_id, out.geometry):
        members = events.geometry[labels == k]
        assert hull.geom_type == "Polygon"
        assert hull.buffer(1e-6).contains(shapely.MultiPoint(list(members)))
        # The hull is the tightest convex cover: its vertices are member events.
        vertices = shapely.get_coordinates(hull.exterior)
        assert shapely.contains_xy(shapely.MultiPoint(list(members)).buffer(1e-6), vertices[:, 0], vertices[:, 1]).all()


def test_hdbscan_min_probability_drops_weak_members(planted):
    events, truth = planted
    loose = cluster_labels(events, method="hdbscan", min_cluster_size=20, min_samples=8, min_probability=0.0)
    strict = cluster_labels(events, method="hdbscan", min_cluster_size=20, min_samples=8, min_probability=0.1)
    assert (strict == -1).sum() > (loose == -1).sum()
    assert adjusted_rand_score(truth, strict) > adjusted_rand_score(truth, loose)
    # Strict members are a subset of loose ones.
    assert np.all(loose[strict >= 0] >= 0)


def test_degenerate_hulls_are_buffered():
    xy = np.array([[70_000.0, 80_000.0]] * 3 + [[80_000.0, 90_000.0], [80_000.0, 90_010.0], [80_000.0, 90_020.0]])
    events = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=2169)
    out = density_clusters(events, eps=50.0, min_samples=3, hull_buffer=100.0)
    assert len(out) == 2
    assert (out.geometry.geom_type == "Polygon").all()
    areas = sorted(out.geometry.area)
    assert areas[0] == pytest.approx(np.pi * 100**2, rel=0.02)  # a point buffered
    assert areas[1] == pytest.approx(20 * 200 + np.pi * 100**2, rel=0.02)  # a 20 m line buffered
    assert out.persons.isna().all() and out.first_seen.isna().all()


def test_all_noise_gives_empty_frame(planted):
    events, _ = planted
    out = density_clusters(events.iloc[240:], eps=10.0, min_samples=5)
    assert len(out) == 0 and list(out.columns)[0] == "cluster_id"
    assert (out.attrs["labels"] == -1).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "kmeans"}, "method must be one of"),
        ({"eps": -1.0}, "eps must be a positive"),
        ({"eps": 0}, "eps must be a positive"),
        ({"min_samples": 0}, "min_samples must be an integer >= 1"),
        ({"min_cluster_size": 1, "method": "hdbscan"}, "min_cluster_size must be an integer >= 2"),
        ({"hull_buffer": -5.0}, "hull_buffer must be"),
        ({"min_probability": 1.5}, "min_probability must be between 0 and 1"),
    ],
)
def test_bad_parameters(planted, kwargs, match):
    events, _ = planted
    with pytest.raises(ValidationError, match=match):
        density_clusters(events, **kwargs)


def test_too_few_events(planted):
    events, _ = planted
    with pytest.raises(ValidationError, match="too few to cluster with min_samples=5"):
        density_clusters(events.iloc[:3])
    with pytest.raises(ValidationError, match="too few to cluster with min_cluster_size=10"):
        density_clusters(events.iloc[:6], method="hdbscan", min_samples=2)
    with pytest.raises(ValidationError, match="too few"):
        density_clusters(events.iloc[:0])


def test_default_eps_needs_ten_times_average_density(planted):
    from geo_ibm.clusters import default_eps

    events, truth = planted
    xy = shapely.get_coordinates(events.geometry.values)
    hull = shapely.MultiPoint(list(map(tuple, xy))).convex_hull
    expected = np.sqrt(8 / 10 / (np.pi * len(xy) / hull.area))
    assert default_eps(xy, min_samples=8) == pytest.approx(expected)
    out = density_clusters(events, min_samples=8)
    assert out.attrs["parameters"]["eps"] == pytest.approx(expected)
    assert adjusted_rand_score(truth, out.attrs["labels"]) > 0.8
    assert out.attrs["parameters"]["eps"] is not None
    hd = density_clusters(events, method="hdbscan", min_samples=8, min_cluster_size=20)
    assert hd.attrs["parameters"]["eps"] is None
