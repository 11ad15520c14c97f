"""Tests for geo_ibm.lisa: Local Moran's I against esda, permutation inference, classes."""
from __future__ import annotations

import warnings

import esda
import geopandas as gpd
import libpysal
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from geo_ibm.errors import ValidationError
from geo_ibm.grid import grid_spec, locate, make_grid
from geo_ibm.lisa import lisa_from_events, local_moran, local_moran_values, neighbour_weights

AREA = box(50_000, 55_000, 80_000, 85_000)


def clustered_values(centres, seed):
    """Poisson noise plus a high blob, a low basin and one high outlier in a low area."""
    rng = np.random.default_rng(seed)
    hot = 12 * np.exp(-((centres[:, 0] - 60_000) ** 2 + (centres[:, 1] - 65_000) ** 2) / 4_000**2)
    y = rng.poisson(4 + hot).astype(float)
    basin = ((centres[:, 0] - 73_000) ** 2 + (centres[:, 1] - 78_000) ** 2) < 4_000**2
    y[basin] = rng.poisson(0.3, basin.sum())
    outlier = np.nonzero(basin)[0][len(np.nonzero(basin)[0]) // 2]
    y[outlier] = 30
    return y, outlier


@pytest.fixture(scope="module")
def grid():
    return make_grid(AREA, cell=1_000, shape="square")


@pytest.fixture(scope="module")
def centres(grid):
    return grid_spec(grid).centres()


def _esda(y, w, seed=None, permutations=999):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return esda.Moran_Local(y, w, transformation="r", permutations=permutations, seed=seed)


@pytest.mark.parametrize("band", [1_000, 1_500, 2_900])
def test_local_moran_i_equals_esda_distance_band(centres, band):
    y, _ = clustered_values(centres, seed=1)
    w = libpysal.weights.DistanceBand(centres, threshold=band, binary=True, silence_warnings=True)
    cardinality = np.array([w.cardinalities[i] for i in w.id_order])  # before esda row-standardises w
    ref = _esda(y, w, permutations=0)
    ours = local_moran_values(y, centres, band=band, permutations=0)
    np.testing.assert_allclose(ours.i, ref.Is, atol=1e-9, rtol=0)
    assert (ours.quadrant == ref.q).all()
    assert (ours.neighbours == cardinality).all()


@pytest.mark.parametrize("k", [4, 8])
def test_local_moran_i_equals_esda_knn(k):
    # jittered points: no ties among neighbour distances, so both KNN definitions agree
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 20_000, (400, 2))
    y = rng.poisson(3 + (xy[:, 0] > 10_000) * 3).astype(float)
    ref = _esda(y, libpysal.weights.KNN(xy, k=k), permutations=0)
    ours = local_moran_values(y, xy, k=k, permutations=0)
    np.testing.assert_allclose(ours.i, ref.Is, atol=1e-9, rtol=0)
    assert (ours.quadrant == ref.q).all()


def test_pseudo_p_values_agree_with_esda_statistically(centres):
    y, outlier = clustered_values(centres, seed=3)
    w = libpysal.weights.DistanceBand(centres, threshold=1_500, binary=True, silence_warnings=True)
    ref = _esda(y, w, seed=7)
    ours = local_moran_values(y, centres, band=1_500, permutations=999, seed=11)
    # two independent Monte Carlo estimates of the same p-values: with 999 draws the standard
    # error is at most 0.016, so they must agree closely on average and in the calls they make
    assert np.abs(ours.p_sim - ref.p_sim).mean() < 0.02
    assert np.corrcoef(ours.p_sim, ref.p_sim)[0, 1] > 0.98
    agree = (ours.p_sim <= 0.01) == (ref.p_sim <= 0.01)
    assert agree.mean() > 0.97
    np.testing.assert_allclose(ours.z_sim, ref.z_sim, rtol=0.1, atol=0.3)
    assert ours.p_sim[outlier] <= 0.01 and ours.quadrant[outlier] == 4


def test_mostly_empty_grid_agrees_with_esda(centres):
    # A sparse pattern (most cells empty, as with events along a few roads): an empty cell among
    # empty neighbours ties with most of its permutations and must not come out significant.
    rng = np.random.default_rng(8)
    y = np.zeros(len(centres))
    y[rng.choice(len(centres), 40, replace=False)] = rng.integers(1, 20, 40)
    w = libpysal.weights.DistanceBand(centres, threshold=1_500, binary=True, silence_warnings=True)
    ref = _esda(y, w, seed=3)
    ours = local_moran_values(y, centres, band=1_500, permutations=999, seed=3)
    empty_block = (y == 0) & (np.asarray(libpysal.weights.lag_spatial(w, y)) == 0)
    assert empty_block.sum() > 300
    assert (ref.p_sim[empty_block] > 0.05).all()
    assert (ours.p_sim[empty_block] > 0.05).all()
    assert np.abs(ours.p_sim - ref.p_sim).mean() < 0.03


def test_permutations_are_seeded(centres):
    y, _ = clustered_values(centres, seed=4)
    a = local_moran_values(y, centres, band=1_500, permutations=199, seed=5)
    b = local_moran_values(y, centres, band=1_500, permutations=199, seed=5)
    c = local_moran_values(y, centres, band=1_500, permutations=199, seed=6)
    np.testing.assert_array_equal(a.p_sim, b.p_sim)
    assert not np.array_equal(a.p_sim, c.p_sim)
    assert a.p_sim.min() >= 1 / 200 and a.p_sim.max() <= 0.5 + 1 / 200


def test_local_moran_classes(grid, centres):
    y, outlier = clustered_values(centres, seed=8)
    frame = grid.assign(count=y)
    result = local_moran(frame, band=1_500, seed=9, fdr=True)
    assert list(result.columns) == [
        "cell_id", "count", "neighbours", "lisa_i", "lisa_z", "lisa_p", "lisa_q", "lisa_class", "geometry"
    ]
    hot_centre = np.argmin(np.hypot(centres[:, 0] - 60_000, centres[:, 1] - 65_000))
    assert result["lisa_class"].iloc[hot_centre] == "HH"
    assert result["lisa_class"].iloc[outlier] == "HL"
    basin = np.hypot(centres[:, 0] - 73_000, centres[:, 1] - 78_000) < 2_500
    assert (result["lisa_class"][basin] == "LL").mean() > 0.5
    names = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}
    sig = result["lisa_class"] != "not significant"
    assert (result.loc[sig, "lisa_class"] == result.loc[sig, "lisa_q"].map(names)).all()
    # FDR is stricter than the plain threshold
    plain = local_moran(frame, band=1_500, seed=9, fdr=False)
    assert sig.sum() <= (plain["lisa_class"] != "not significant").sum()
    assert result.attrs["parameters"]["seed"] == 9


def test_random_values_give_few_fdr_clusters(grid):
    y = np.random.default_rng(12).poisson(5, len(grid)).astype(float)
    result = local_moran(grid.assign(count=y), band=1_500, seed=13)
    assert (result["lisa_class"] != "not significant").mean() < 0.01


def test_lisa_from_events():
    rng = np.random.default_rng(14)
    xy = np.vstack([rng.uniform([50_000, 55_000], [80_000, 85_000], (3_000, 2)), rng.normal([62_000, 70_000], 700, (300, 2))])
    events = gpd.GeoDataFrame(
        {"observed_at": [pd.Timestamp("2024-05-01", tz="Europe/Luxembourg")] * len(xy), "persons": np.full(len(xy), 2)},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=2169,
    )
    # 1,100 cells under FDR need p <= k/1100*0.05, out of reach of 999 permutations for a small cluster
    result = lisa_from_events(events, study_area=AREA, cell=1_000, band=1_500, seed=1, shape="hex", permutations=9_999)
    assert result["count"].sum() == len(events)
    centre_cell = locate(np.array([[62_000.0, 70_000.0]]), result.attrs["grid"])[0]
    assert result["lisa_class"].iloc[centre_cell] == "HH"
    assert result.attrs["parameters"]["cell"] == 1_000 and result.attrs["parameters"]["n_events"] == len(events)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of band or k"),
        ({"band": 1_000, "k": 3}, "exactly one of band or k"),
        ({"k": 0}, "k must be a whole number"),
        ({"k": 2.5}, "k must be a whole number"),
        ({"band": -1}, "band must be a positive"),
        ({"band": 1_500, "permutations": -1}, "permutations must be"),
    ],
)
def test_bad_arguments(centres, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        local_moran_values(np.arange(len(centres), dtype=float), centres, **kwargs)


def test_constant_values_and_missing_column(grid, centres):
    with pytest.raises(ValidationError, match="all equal"):
        local_moran_values(np.ones(len(centres)), centres, band=1_500)
    with pytest.raises(ValidationError, match="column 'count' not found"):
        local_moran(grid, band=1_500)


def test_neighbour_weights_knn_excludes_self():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0]])
    w = neighbour_weights(xy, k=2).toarray()
    assert (np.diag(w) == 0).all() and (w.sum(axis=1) == 2).all()
    assert w[3].tolist() == [0, 1, 1, 0]


def test_lisa_from_events_automatic_parameters():
    rng = np.random.default_rng(15)
    xy = np.vstack([rng.uniform([50_000, 55_000], [80_000, 85_000], (400, 2)), rng.normal([62_000, 70_000], 1_500, (200, 2))])
    events = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=2169)
    result = lisa_from_events(events, study_area=AREA, permutations=99, seed=2)
    params = result.attrs["parameters"]
    assert params["cell_method"].startswith(f"{params['cell']:g} m: about 2 events per cell")
    assert params["band"] >= params["cell"] and params["band_method"]
    assert result["count"].sum() == len(events)
