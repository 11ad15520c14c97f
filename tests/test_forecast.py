"""Tests for geo_ibm.forecast: hit rate and PAI against a brute-force recount."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_ibm.errors import ValidationError
from geo_ibm.forecast import backtest_hotspots
from geo_ibm.hotspots import fdr_bins, gi_star_grid

TZ = "Europe/Luxembourg"
AREA = shapely.box(60_000, 60_000, 100_000, 130_000)
HOT = np.array([[72_500.0, 87_500.0], [91_500.0, 118_500.0]])


def _quarterly_events(seed: int, *, hot: bool, n_per_quarter: int = 600, quarters: int = 4) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    xy, times = [], []
    for q in range(quarters):
        start = pd.Timestamp("2025-01-01", tz=TZ) + pd.DateOffset(months=3 * q)
        n_hot = n_per_quarter // 2 if hot else 0
        pts = rng.uniform([60_000, 60_000], [100_000, 130_000], (n_per_quarter - n_hot, 2))
        if n_hot:
            pts = np.r_[pts, HOT[rng.integers(0, 2, n_hot)] + rng.normal(0, 700, (n_hot, 2))]
        xy.append(pts)
        times.append(start + pd.to_timedelta(rng.uniform(0, 89, len(pts)), unit="D"))
    xy = np.vstack(xy)
    return gpd.GeoDataFrame(
        {"observed_at": pd.DatetimeIndex(np.concatenate(times)).tz_convert(TZ)},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs="EPSG:2169",
    )


def _brute(events: gpd.GeoDataFrame, cell: float, share: float, quarter: str):
    """Training counts per (col, row) cell key, k, test event keys and the number of cells."""
    x, y = events.geometry.x.to_numpy(), events.geometry.y.to_numpy()
    keys = list(zip(np.floor(x / cell).astype(int), np.floor(y / cell).astype(int)))
    q = events.observed_at.dt.tz_convert(TZ).dt.tz_localize(None).dt.to_period("Q").astype(str).to_numpy()
    prev = str(pd.Period(quarter, "Q") - 1)
    n_cells = int((40_000 / cell) * (70_000 / cell))
    train = pd.Series([k for k, qq in zip(keys, q) if qq == prev]).value_counts()
    test = [kk for kk, qq in zip(keys, q) if qq == quarter]
    return train, int(np.ceil(share * n_cells)), test, n_cells


@pytest.mark.parametrize("seed", [1, 2])
def test_top_share_hit_rate_matches_brute_force(seed):
    events = _quarterly_events(seed, hot=True)
    cell = 2_000.0
    out = backtest_hotspots(events, study_area=AREA, cell=cell, top_share=0.05)
    assert list(out.columns) == [
        "quarter", "train_quarter", "method", "n_train", "n_test", "predicted_cells", "area_share", "hits",
        "hit_rate", "pai", "baseline_hit_rate",
    ]
    assert out.quarter.tolist() == ["2025Q2", "2025Q3", "2025Q4"]
    grid = out.attrs["grid"]
    for _, row in out.iterrows():
        train, k, test, n_cells = _brute(events, cell, 0.05, row.quarter)
        assert n_cells == len(grid) and k == 35
        predicted = grid.iloc[out.attrs["cells"][row.quarter]]
        keys = set(zip((predicted.geometry.bounds.minx // cell).astype(int), (predicted.geometry.bounds.miny // cell).astype(int)))
        # The predicted cells are the k busiest of the training quarter: no unpicked cell beats a picked one.
        picked = train.reindex(list(keys)).fillna(0)
        assert picked.min() >= train.drop(list(keys), errors="ignore").max()
        hits = sum(1 for t in test if t in keys)
        assert row.hits == hits and row.n_test == len(test) and row.predicted_cells == len(keys) == 35
        assert row.area_share == pytest.approx(35 * cell**2 / AREA.area)
        assert row.hit_rate == pytest.approx(hits / len(test))
        assert row.pai == pytest.approx(row.hit_rate / row.area_share)
        assert row.baseline_hit_rate == row.area_share
    # A persistent hotspot makes last quarter's top cells very good predictors.
    assert (out.pai > 5).all()


def test_uniform_events_give_pai_near_one():
    events = _quarterly_events(3, hot=False, n_per_quarter=3_000, quarters=5)
    out = backtest_hotspots(events, study_area=AREA, cell=2_000.0, top_share=0.1)
    assert 0.7 < out.pai.mean() < 1.3


def test_gi_method_predicts_fdr_hot_cells():
    events = _quarterly_events(4, hot=True)
    out = backtest_hotspots(events, study_area=AREA, cell=2_000.0, method="gi", band=4_000.0, quarters=["2025Q3"])
    assert out.quarter.tolist() == ["2025Q3"] and out.method.iloc[0] == "gi"
    grid = out.attrs["grid"]
    q2 = events[events.observed_at.dt.quarter == 2]
    x, y = q2.geometry.x.to_numpy(), q2.geometry.y.to_numpy()
    spec = grid.attrs["grid"]
    counts = np.zeros(len(grid))
    np.add.at(counts, spec.lookup[np.floor((y - spec.y0) / 2_000).astype(int), np.floor((x - spec.x0) / 2_000).astype(int)], 1)
    gi = gi_star_grid(counts, grid, band=4_000.0)
    expected = np.flatnonzero(fdr_bins(gi.z, gi.p, fdr=True) >= 2)
    np.testing.assert_array_equal(out.attrs["cells"]["2025Q3"], expected)
    assert out.pai.iloc[0] > 3


def test_quarter_without_training_events_predicts_nothing():
    events = _quarterly_events(5, hot=True, quarters=4)
    events = events[events.observed_at.dt.quarter != 2]
    out = backtest_hotspots(events, study_area=AREA, cell=2_000.0).set_index("quarter")
    assert out.loc["2025Q2", "n_test"] == 0 and np.isnan(out.loc["2025Q2", "pai"])
    assert out.loc["2025Q3", "predicted_cells"] == 0 and np.isnan(out.loc["2025Q3", "pai"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "kde"}, "method must be one of"),
        ({"top_share": 0}, "top_share must be between 0 and 1"),
        ({"top_share": 1.5}, "top_share must be between 0 and 1"),
        ({"cell": -100.0}, "cell must be a positive"),
        ({"gi_level": 4}, "gi_level must be 1, 2 or 3"),
        ({"quarters": ["2025Q1"]}, "needs events in 2024Q4"),
        ({"quarters": ["spring"]}, "is not a quarter"),
    ],
)
def test_bad_arguments(kwargs, match):
    events = _quarterly_events(6, hot=True, n_per_quarter=100)
    with pytest.raises(ValidationError, match=match):
        backtest_hotspots(events, study_area=AREA, **({"cell": 2_000.0} | kwargs))


def test_single_quarter_and_empty_events():
    events = _quarterly_events(7, hot=True, n_per_quarter=100, quarters=1)
    with pytest.raises(ValidationError, match="single quarter"):
        backtest_hotspots(events, study_area=AREA, cell=2_000.0)
    with pytest.raises(ValidationError, match="empty"):
        backtest_hotspots(events.iloc[:0], study_area=AREA, cell=2_000.0)
