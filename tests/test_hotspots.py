"""Tests for geo_ibm.hotspots: Gi* against esda, FDR bins, automatic parameters, events to hot spots."""
from __future__ import annotations

import math
import warnings
from fractions import Fraction

import esda
import geopandas as gpd
import libpysal
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance_matrix
from shapely.geometry import Polygon, box

from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.grid import bin_counts, grid_spec, make_grid
from geo_ibm.hotspots import (
    auto_band,
    auto_cell_size,
    benjamini_hochberg,
    bh_adjusted_p,
    confidence_bins,
    default_cell_size,
    fdr_bins,
    gi_star,
    gi_star_grid,
    global_moran_z,
    hotspots_from_events,
)

AREA = Polygon([(52_300, 57_100), (98_700, 60_400), (108_900, 101_200), (74_500, 138_600), (55_200, 112_000)])
SMALL = box(60_000, 70_000, 80_000, 90_000)


def _esda_weights(centres, band):
    return libpysal.weights.DistanceBand(centres, threshold=band, binary=True, silence_warnings=True)


def make_events(xy, *, seed=0, start="2024-01-01", days=365):
    rng = np.random.default_rng(seed)
    when = pd.Timestamp(start, tz="Europe/Luxembourg") + pd.to_timedelta(rng.uniform(0, days, len(xy)), unit="D")
    return gpd.GeoDataFrame(
        {"observed_at": when, "persons": rng.integers(1, 8, len(xy))},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=2169,
    )


def uniform_in(area, n, rng):
    minx, miny, maxx, maxy = area.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        cand = np.column_stack([rng.uniform(minx, maxx, 2 * n), rng.uniform(miny, maxy, 2 * n)])
        inside = gpd.GeoSeries(gpd.points_from_xy(cand[:, 0], cand[:, 1])).within(area).to_numpy()
        out = np.vstack([out, cand[inside]])
    return out[:n]


# Not (hex, 1000): hexagon neighbours sit exactly 1000 m apart there, so float rounding, not
# the statistic, decides whether libpysal's band includes them.
@pytest.mark.parametrize(
    ("shape", "band"),
    [(s, b) for s in ("square", "hex") for b in (1_000, 1_010, 1_600, 3_150) if (s, b) != ("hex", 1_000)],
)
def test_gi_star_equals_esda(shape, band):
    grid = make_grid(SMALL, cell=1_000, shape=shape)
    centres = grid_spec(grid).centres()
    y = np.random.default_rng(11).poisson(2.0, len(grid)).astype(float)
    y[:15] += 20  # a cluster in the first rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.G_Local(y, _esda_weights(centres, band), star=True, transform="B", permutations=0)
    ours = gi_star(y, centres, band=band)
    fast = gi_star_grid(y, grid, band=band)
    np.testing.assert_allclose(ours.z, ref.Zs, atol=1e-9, rtol=0)
    np.testing.assert_allclose(fast.z, ref.Zs, atol=1e-9, rtol=0)
    # esda's p_norm is one-sided; ours is two-sided
    np.testing.assert_allclose(ours.p, 2 * ref.p_norm, atol=1e-12)
    assert (fast.neighbours == np.asarray(ref.w.sparse.sum(axis=1)).ravel()).all()


def test_gi_star_rejects_mismatched_input():
    with pytest.raises(ValidationError, match="coords"):
        gi_star(np.ones(5), np.zeros((4, 2)), band=10)
    with pytest.raises(ValidationError, match="band"):
        gi_star(np.ones(5), np.zeros((5, 2)), band=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.10])
def test_benjamini_hochberg_matches_scipy(seed, alpha):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 400), rng.uniform(0, 0.002, 40)])
    expected = stats.false_discovery_control(p, method="bh") <= alpha
    assert (benjamini_hochberg(p, alpha) == expected).all()


def step_up_reference(p, alpha):
    """Benjamini–Hochberg step-up in exact rational arithmetic, written out rank by rank."""
    finite = [i for i, v in enumerate(p) if not math.isnan(v)]
    ranked = sorted(finite, key=lambda i: p[i])
    m, level, k = len(finite), Fraction(alpha), 0
    for rank, i in enumerate(ranked, start=1):
        if Fraction(p[i]) <= level * rank / m:
            k = rank  # the largest rank under its critical value
    out = np.zeros(len(p), dtype=bool)
    if k:
        threshold = p[ranked[k - 1]]
        for i in finite:
            out[i] = p[i] <= threshold  # ties with the k-th smallest p-value pass too
    return out


def _p_value_sets():
    rng = np.random.default_rng(12)
    yield np.concatenate([rng.uniform(0, 1, 400), rng.uniform(0, 0.002, 40)])
    yield np.round(np.concatenate([rng.uniform(0, 1, 300), rng.uniform(0, 0.01, 60)]), 3)  # many ties
    with_nan = rng.uniform(0, 0.05, 50)
    with_nan[::7] = np.nan
    yield with_nan
    yield np.array([0.004])
    yield np.array([0.03, 0.04])
    grid = make_grid(SMALL, cell=1_000, shape="square")
    y = rng.poisson(2.0, len(grid)).astype(float)
    y[:30] += 6
    yield gi_star_grid(y, grid, band=1_500).p


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.10])
def test_benjamini_hochberg_equals_an_exact_step_up(alpha):
    for p in _p_value_sets():
        expected = step_up_reference(p.tolist(), alpha)
        assert (benjamini_hochberg(p, alpha) == expected).all()
        assert ((bh_adjusted_p(p) <= alpha) == expected).all()


def test_fdr_bins_equal_bins_from_the_exact_step_up():
    for p in _p_value_sets():
        z = np.where(np.arange(p.size) % 3 == 0, -1.0, 1.0) * np.abs(stats.norm.isf(np.nan_to_num(p, nan=1.0) / 2))
        expected = np.zeros(p.size, dtype=np.int8)
        for rank, alpha in enumerate((0.10, 0.05, 0.01), start=1):
            expected[step_up_reference(p.tolist(), alpha)] = rank
        assert (fdr_bins(z, p) == np.sign(z) * expected).all()
        assert (fdr_bins(z, p, fdr=False) == confidence_bins(z, p)).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adjusted_p_below_a_limit_equal_scipys_to_the_bit(seed):
    from scipy.stats import false_discovery_control

    from geo_ibm.hotspots import bh_adjusted_below

    rng = np.random.default_rng(seed)
    # a hot spot grid's p-values: many near zero, ties (repeated values), NaNs left out of m
    p = np.concatenate([rng.uniform(0, 1, 5000), rng.uniform(0, 1e-3, 400), np.repeat(rng.uniform(0, 0.1, 30), 7),
                        [np.nan] * 25, [0.0, 0.1, 0.1, 1.0]])
    rng.shuffle(p)
    ok = np.isfinite(p)
    scipy_adjusted = np.full(p.shape, np.nan)
    scipy_adjusted[ok] = false_discovery_control(p[ok], method="bh")
    for limit in (0.1, 0.05, 0.01, 1.0):
        ours = bh_adjusted_below(p, limit)
        kept = ok & (scipy_adjusted <= limit)
        np.testing.assert_array_equal(ours[kept], scipy_adjusted[kept])
        assert (ours[ok & ~kept] > limit).all() and np.isnan(ours[~ok]).all()
        for a in (limit, limit / 2, limit / 10):
            assert ((ours <= a) == (scipy_adjusted <= a)).all()
    z = rng.normal(size=p.shape)
    np.testing.assert_array_equal(fdr_bins(z, p, fdr=True), confidence_bins(z, scipy_adjusted))
    # a cube's cells x steps: one family over every value, in its own shape
    cube = p[: (p.size // 9) * 9].reshape(-1, 9)
    flat = cube.ravel()
    want = np.full(flat.shape, np.nan)
    want[np.isfinite(flat)] = false_discovery_control(flat[np.isfinite(flat)], method="bh")
    ours = bh_adjusted_below(cube, 0.1)
    assert ours.shape == cube.shape
    assert ((ours <= 0.05) == (want.reshape(cube.shape) <= 0.05)).all()


def test_fdr_bins_by_hand():
    z = np.array([4.0, -3.0, 2.2, 1.8, -1.7, 0.5])
    p = 2 * stats.norm.sf(np.abs(z))
    # without correction: 4.0 -> p 6e-5 (99 %), 3.0 -> .0027 (99 %), 2.2 -> .028 (95 %),
    # 1.8 -> .072 (90 %), 1.7 -> .089 (90 %), 0.5 -> not significant
    assert fdr_bins(z, p, fdr=False).tolist() == [3, -3, 2, 1, -1, 0]
    # BH with m = 6 over the sorted p-values (.00006, .0027, .028, .072, .089, .62):
    # at 0.01 the critical values k/6*0.01 admit ranks 1-2; at 0.05 (k/6*0.05) ranks 1-2 again
    # (.028 > .025); at 0.10 (k/6*0.10) ranks 1-3 (.028 <= .05, but .072 > .067, .089 > .083)
    assert fdr_bins(z, p, fdr=True).tolist() == [3, -3, 1, 0, 0, 0]


def test_fdr_bins_are_nested_and_signed():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 2_000)
    p = 2 * stats.norm.sf(np.abs(z))
    raw, corrected = fdr_bins(z, p, fdr=False), fdr_bins(z, p)
    assert (np.abs(corrected) <= np.abs(raw)).all()
    assert (np.sign(corrected[corrected != 0]) == np.sign(z[corrected != 0])).all()


@pytest.mark.parametrize("band", [1_000, 2_300, 4_100])
def test_global_moran_equals_esda(band):
    grid = make_grid(SMALL, cell=1_000, shape="square")
    centres = grid_spec(grid).centres()
    y = np.random.default_rng(5).poisson(3.0, len(grid)).astype(float)
    y += np.where(centres[:, 0] < 66_000, 4, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.Moran(y, _esda_weights(centres, band), transformation="B", permutations=0)
    moran_i, z = global_moran_z(y, grid, band=band)
    assert moran_i == pytest.approx(ref.I, abs=1e-12)
    assert z == pytest.approx(ref.z_rand, abs=1e-9)


def test_auto_cell_size_matches_brute_force():
    rng = np.random.default_rng(8)
    xy = np.vstack([rng.uniform(60_000, 70_000, (400, 2)), [[300_000, 300_000]]])  # one far outlier
    cell, details = auto_cell_size(xy)
    core = xy[:-1]
    d = distance_matrix(core, core)
    np.fill_diagonal(d, np.inf)
    nn = d.min(axis=1)
    assert details["n_outliers"] == 1
    assert details["mean_nn_distance"] == pytest.approx(nn.mean())
    assert details["median_nn_distance"] == pytest.approx(np.median(nn))
    assert cell == np.ceil(max(nn.mean(), np.median(nn)))


def test_auto_band_picks_first_moran_peak_from_esda_sequence():
    rng = np.random.default_rng(9)
    grid = make_grid(AREA, cell=2_000, shape="square")
    centres = grid_spec(grid).centres()
    # blobs of ~6 km radius make clustering strongest at a few cells' distance
    blobs = centres[rng.choice(len(centres), 6, replace=False)]
    d = distance_matrix(centres, blobs).min(axis=1)
    y = rng.poisson(1 + 12 * np.exp(-((d / 6_000) ** 2))).astype(float)
    band, details = auto_band(y, grid)
    zs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dist in details["distances"]:
            zs.append(esda.Moran(y, _esda_weights(centres, dist * (1 + 1e-12)), transformation="B", permutations=0).z_rand)
    np.testing.assert_allclose(details["moran_z"], zs, atol=1e-9)
    zs = np.array(zs)
    peaks = [k for k in range(1, len(zs) - 1) if zs[k] > 1.96 and zs[k] > zs[k - 1] and zs[k] >= zs[k + 1]]
    if peaks:
        assert band == details["distances"][peaks[0]] and "first peak" in details["method"]
    else:
        assert "no Moran's I peak" in details["method"] and band >= details["distances"][0]


def test_planted_hotspot_is_found():
    rng = np.random.default_rng(21)
    background = uniform_in(AREA, 3_000, rng)
    planted_centre = np.array([80_500.0, 95_500.0])
    cluster = planted_centre + rng.normal(0, 400, (250, 2))
    events = make_events(np.vstack([background, cluster]), seed=21)
    result = hotspots_from_events(events, study_area=AREA, cell=1_000, band=2_000)
    planted = result[result.geometry.contains(gpd.points_from_xy([planted_centre[0]], [planted_centre[1]])[0])]
    assert len(planted) == 1
    assert planted["gi_bin_fdr"].iloc[0] == 3 and planted["gi_bin"].iloc[0] == 3
    hot = result[result["gi_bin_fdr"] > 0]
    # every FDR hot cell lies near the planted cluster
    assert hot.geometry.centroid.distance(gpd.points_from_xy([planted_centre[0]], [planted_centre[1]])[0]).max() < 4_000
    assert list(result.columns[:10]) == [
        "cell_id", "row", "col", "area_frac", "count", "neighbours", "gi_z", "gi_p", "gi_bin", "gi_bin_fdr"
    ]
    assert result["count"].sum() == len(events)
    params = result.attrs["parameters"]
    assert params["cell"] == 1_000 and params["band"] == 2_000
    assert params["cell_method"] == "given" and params["band_method"] == "given"
    assert params["n_events"] == len(events)


@pytest.mark.parametrize("seed", [31, 32, 33])
@pytest.mark.parametrize("shape", ["square", "hex"])
def test_uniform_events_give_almost_no_fdr_hotspots(seed, shape):
    rng = np.random.default_rng(seed)
    inner = AREA.buffer(-3_000)  # keep the edge cells, which the area clips, out of the picture
    events = make_events(uniform_in(inner, 6_000, rng), seed=seed)
    result = hotspots_from_events(events, study_area=inner, cell=1_500, band=3_000, shape=shape, min_area_frac=0.5)
    assert result["area_frac"].min() >= 0.5
    significant = (result["gi_bin_fdr"] != 0).mean()
    # neighbouring Gi* values share most of their events, so a chance bump can pass as a
    # small patch of a dozen cells; anything like a real pattern would be far more
    assert significant <= 0.02
    # without correction, about 10 % of cells pass the 90 % level by chance alone
    assert (result["gi_bin"] != 0).mean() > significant


def test_automatic_parameters_are_reported():
    rng = np.random.default_rng(41)
    xy = np.vstack([uniform_in(AREA, 1_500, rng), [70_000, 100_000] + rng.normal(0, 800, (300, 2))])
    result = hotspots_from_events(make_events(xy), study_area=AREA, shape="hex")
    params = result.attrs["parameters"]
    assert params["cell_method"].startswith(f"{params['cell']:g} m: about 2 events per cell")
    assert (params["cell"], params["cell_method"]) == default_cell_size(xy, AREA)
    assert params["cell"] >= params["cell_details"]["median_nn_distance"]
    assert "band_details" in params and params["band"] >= params["cell"]
    assert params["shape"] == "hex"


def test_weight_and_period_selection():
    rng = np.random.default_rng(42)
    events = make_events(uniform_in(AREA, 600, rng), seed=42, start="2024-01-01", days=366)
    result = hotspots_from_events(
        events, study_area=AREA, cell=5_000, band=10_000, start="2024-07-01", weight="persons"
    )
    chosen = events[events["observed_at"] >= pd.Timestamp("2024-07-01", tz="Europe/Luxembourg")]
    assert result["count"].sum() == chosen["persons"].sum()
    assert result.attrs["parameters"]["n_events"] == len(chosen)
    assert result.attrs["parameters"]["start"].startswith("2024-07-01T00:00:00+02:00")


@pytest.fixture(scope="module")
def some_events():
    return make_events(uniform_in(AREA, 200, np.random.default_rng(50)), seed=50)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2030-01-01"}, "no events to analyse between start=2030-01-01"),
        ({"end": "2000-01-01"}, "no events to analyse"),
        ({"cell": 0}, "cell must be a positive"),
        ({"cell": -100}, "cell must be a positive"),
        ({"cell": 500_000}, "cell=500000 m is larger than the study area"),
        ({"cell": 2_000, "band": 1_000}, "band=1000 m is smaller than the cell size"),
        ({"cell": 2_000, "band": 1e6}, "band=1e\\+06 m spans the whole study area"),
        ({"cell": 2_000, "band": -3}, "band must be a positive"),
        ({"weight": "nope"}, "weight column 'nope' not found"),
        ({"shape": "triangle"}, "shape must be"),
        ({"min_area_frac": 1.5}, "min_area_frac must be between 0 and 1"),
        ({"start": "not a date"}, "start is not a date"),
    ],
)
def test_bad_input_is_refused(some_events, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        hotspots_from_events(some_events, study_area=AREA, **kwargs)


def test_too_few_events(some_events):
    with pytest.raises(ValidationError, match="too few events.*29 selected, at least 30"):
        hotspots_from_events(some_events.iloc[:29], study_area=AREA, cell=2_000, band=4_000)


def test_non_point_events_and_missing_crs(some_events):
    lines = some_events.copy()
    lines["geometry"] = lines.geometry.buffer(10)
    with pytest.raises(ValidationError, match="events must be points, found Polygon"):
        hotspots_from_events(lines, study_area=AREA, cell=2_000, band=4_000)
    with pytest.raises(CrsError, match="events has no CRS"):
        hotspots_from_events(some_events.set_crs(None, allow_override=True), study_area=AREA, cell=2_000, band=4_000)


def test_automatic_cell_is_kept_within_the_cell_budget(monkeypatch):
    from geo_ibm import hotspots
    from geo_ibm.hotspots import choose_cell

    # Two events per cell mean at most n / 2 cells, so the real 250,000-cell bound takes over
    # from 500,000 events on; a bound of 1,000 cells shows the rule on 5,000.
    monkeypatch.setattr(hotspots, "MAX_AUTO_CELLS", 1_000)
    dense = np.random.default_rng(60).uniform(70_000, 70_500, (5_000, 2))  # nearest neighbours a few metres apart
    params = {}
    cell = choose_cell(None, dense, AREA, params)
    assert cell == np.ceil(np.sqrt(AREA.area / 1_000)) == 1_800
    assert "raised to 1800 m to stay within 1,000 cells" in params["cell_method"]
    assert params["cell_details"]["mean_nn_distance"] < cell
    monkeypatch.undo()
    sparse_pts = np.array([[52_400.0, 57_200.0], [108_800.0, 101_100.0], [74_500.0, 138_500.0]])
    params = {}
    assert choose_cell(None, sparse_pts, AREA, params) == np.floor(np.sqrt(AREA.area / 30))
    assert "lowered to" in params["cell_method"]
    assert choose_cell(750, dense, AREA, {}) == 750.0


@pytest.mark.parametrize(("n", "expected"), [(20_000, 400.0), (15_000, 450.0), (5_000, 800.0)])
def test_default_cell_gives_two_events_per_cell_on_dense_data(n, expected):
    square = box(0, 0, 40_000, 40_000)
    xy = np.random.default_rng(n).uniform(0, 40_000, (n, 2))
    cell, method = default_cell_size(xy, square)
    floor = np.sqrt(2 * square.area / n)  # 400, 462 and 800 m
    assert cell == expected == np.round(floor / 50) * 50
    nn_cell, _ = auto_cell_size(xy)
    assert nn_cell < floor  # uniform events: about half of sqrt(area / n)
    assert method.startswith(f"{expected:g} m: about 2 events per cell")
    counts = bin_counts(xy, make_grid(square, cell=cell))
    assert 1.6 <= counts.mean() <= 2.5


def test_default_cell_on_sparse_clustered_data_is_still_the_density_cell():
    # Five tight blobs of 60 events over the irregular study area: the nearest-neighbour cell
    # is a few tens of metres, far finer than the grid a map of 300 events can fill.
    rng = np.random.default_rng(61)
    centres = uniform_in(AREA.buffer(-5_000), 5, rng)
    xy = np.vstack([c + rng.normal(0, 150, (60, 2)) for c in centres])
    nn_cell, _ = auto_cell_size(xy)
    cell, method = default_cell_size(xy, AREA)
    floor = np.sqrt(2 * AREA.area / len(xy))
    assert nn_cell < 100 < floor
    assert cell == np.round(floor / 50) * 50 == 4_650
    assert "about 2 events per cell" in method and f", {nn_cell:.0f} m, is finer)" in method


def test_default_cell_is_the_nearest_neighbour_cell_when_events_reach_beyond_the_area():
    # Events inside the area cannot be spread out enough for their nearest-neighbour distance
    # to pass two events per cell (see default_cell_size); a lattice 1 km apart over 100 km,
    # mapped over its central 30 km, gives a nearest-neighbour cell of 1,000 m against 424 m.
    ticks = np.arange(500.0, 100_000.0, 1_000.0)
    xy = np.stack(np.meshgrid(ticks, ticks), axis=-1).reshape(-1, 2)
    centre = box(35_000, 35_000, 65_000, 65_000)
    cell, method = default_cell_size(xy, centre)
    assert cell == 1_000.0
    assert method.startswith("1000 m: the nearest-neighbour cell of Optimized Hot Spot Analysis")
    assert "coarser than 2 events per cell (424 m)" in method


def test_default_cell_is_never_finer_than_200_m():
    square = box(0, 0, 40_000, 40_000)
    xy = np.random.default_rng(62).uniform(0, 40_000, (200_000, 2))  # 2 per cell at 126 m
    cell, method = default_cell_size(xy, square)
    assert cell == 200.0 and method.startswith("200 m: the smallest automatic cell (2 events per cell would be 126 m")
    result = hotspots_from_events(make_events(xy[:5_000]), study_area=square, band=1_500)
    params = result.attrs["parameters"]
    assert params["cell"] == 800.0 and params["cell_details"]["events_per_cell"] == pytest.approx(2.0)
    with pytest.raises(ValidationError, match="at least 2 events"):
        default_cell_size(xy[:1], square)


def test_default_cell_on_the_demo_data():
    from geo_ibm.demo import generate_events
    from geo_ibm.layers import luxembourg_outline

    events, _ = generate_events(20_000, seed=1)
    outline = luxembourg_outline()
    xy = np.column_stack([events.geometry.x, events.geometry.y])
    cell, method = default_cell_size(xy, outline)
    assert 450 <= cell <= 600
    assert cell % 50 == 0 and "about 2 events per cell" in method
    # the old automatic cell: about 100 m, a quarter of a million cells of 0.1 events each
    nn_cell, _ = auto_cell_size(xy)
    assert nn_cell < 150


def test_gi_star_on_h3_cell_centres_equals_esda():
    from geo_ibm.grid import h3_grid

    grid = h3_grid(AREA, resolution=6)
    centres = grid_spec(grid).centres()
    y = np.random.default_rng(70).poisson(4, len(grid)).astype(float)
    band = 9_000  # H3 centres are irregular in EPSG:2169; pick a band away from their spacing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.G_Local(y, _esda_weights(centres, band), star=True, transform="B", permutations=0)
    np.testing.assert_allclose(gi_star(y, centres, band=band).z, ref.Zs, atol=1e-9, rtol=0)
