"""Tests for geo_ibm.pointpattern against brute-force counts, textbook formulas and pointpats."""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import stats
from scipy.spatial.distance import cdist

from geo_ibm.errors import ValidationError
from geo_ibm.pointpattern import knox_test, nearest_neighbour_index, random_points_in, ripley_l

AREA = shapely.box(60_000, 60_000, 100_000, 130_000)


def _events(xy: np.ndarray, times=None) -> gpd.GeoDataFrame:
    cols = {} if times is None else {"observed_at": times}
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169")


def _clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform([65_000, 65_000], [95_000, 125_000], (5, 2))
    return centres[rng.integers(0, 5, n)] + rng.normal(0, 800, (n, 2))


# ---- Clark-Evans ----------------------------------------------------------------------------


def test_nni_matches_brute_force_and_textbook():
    rng = np.random.default_rng(1)
    xy = rng.uniform([60_000, 60_000], [100_000, 130_000], (400, 2))
    res = nearest_neighbour_index(_events(xy), area=AREA)
    d = cdist(xy, xy)
    np.fill_diagonal(d, np.inf)
    d_obs = d.min(axis=1).mean()
    a = 40_000 * 70_000
    d_exp = 0.5 * math.sqrt(a / 400)
    se = 0.26136 * math.sqrt(a) / 400
    assert res.n == 400 and res.area == a
    assert res.observed_mean == pytest.approx(d_obs)
    assert res.expected_mean == pytest.approx(d_exp)
    assert res.ratio == pytest.approx(d_obs / d_exp)
    assert res.z == pytest.approx((d_obs - d_exp) / se)
    assert res.p_value == pytest.approx(2 * (1 - stats.norm.cdf(abs(res.z))))
    # Uniform data: R close to 1 (edge effects push it up a little).
    assert 0.9 < res.ratio < 1.15


def test_nni_clustered_below_one_and_lattice_above():
    clustered = nearest_neighbour_index(_events(_clustered(300, 2)), area=AREA)
    assert clustered.ratio < 0.5 and clustered.z < -10 and clustered.p_value < 1e-10
    gx, gy = np.meshgrid(np.arange(20) * 1_000.0 + 70_500, np.arange(20) * 1_000.0 + 80_500)
    lattice = np.c_[gx.ravel(), gy.ravel()]
    res = nearest_neighbour_index(_events(lattice), area=20_000.0 * 20_000.0)
    # Square lattice of spacing s: D_o = s, D_e = s / 2 with density 1/s², so R = 2 exactly.
    assert res.ratio == pytest.approx(2.0)
    assert res.z > 10


def test_nni_area_from_polygon_or_number():
    xy = _clustered(50, 3)
    a = nearest_neighbour_index(_events(xy), area=gpd.GeoDataFrame(geometry=[AREA], crs=2169))
    b = nearest_neighbour_index(_events(xy), area=AREA.area)
    assert a == b


@pytest.mark.parametrize(
    ("n", "area", "match"),
    [(1, AREA, "at least 2 events"), (0, AREA, "at least 2 events"), (10, -5.0, "area must be a positive"),
     (10, 0, "area must be a positive")],
)
def test_nni_bad_input(n, area, match):
    with pytest.raises(ValidationError, match=match):
        nearest_neighbour_index(_events(_clustered(10, 4)[:n]), area=area)


# ---- Ripley's L -----------------------------------------------------------------------------


def _brute_k(xy: np.ndarray, d: np.ndarray, poly, border: bool) -> np.ndarray:
    n = len(xy)
    dm = cdist(xy, xy)
    np.fill_diagonal(dm, np.inf)
    out = []
    for r in d:
        if not border:
            out.append(poly.area * (dm <= r).sum() / (n * (n - 1)))
        else:
            to_edge = np.array([poly.boundary.distance(shapely.Point(p)) for p in xy])
            centres = to_edge >= r
            out.append((dm[centres] <= r).sum(axis=1).mean() * poly.area / n)
    return np.array(out)


@pytest.mark.parametrize("edge_correction", ["none", "border"])
def test_ripley_k_matches_brute_force(edge_correction):
    xy = _clustered(250, 5)
    d = np.array([250.0, 500, 1_000, 2_000, 4_000])
    out = ripley_l(_events(xy), study_area=AREA, distances=d, simulations=0, edge_correction=edge_correction)
    ref = _brute_k(xy, d, AREA, edge_correction == "border")
    np.testing.assert_allclose(out.K, ref, rtol=1e-12)
    np.testing.assert_allclose(out.L, np.sqrt(ref / math.pi))
    np.testing.assert_allclose(out.L_minus_d, np.sqrt(ref / math.pi) - d)
    assert out.env_low.isna().all()


def test_ripley_envelope_flags_clustering_and_csr():
    d = np.array([500.0, 1_000, 2_000, 4_000])
    tri = shapely.Polygon([(60_000, 60_000), (100_000, 60_000), (80_000, 130_000)])
    clustered = ripley_l(_events(_clustered(200, 6)), study_area=tri, distances=d, simulations=39, seed=1)
    assert list(clustered.columns) == ["distance", "K", "L", "L_minus_d", "env_low", "env_high", "clustered", "dispersed"]
    assert clustered.clustered.all() and (clustered.L_minus_d > 0).all()
    assert (clustered.env_low <= clustered.env_high).all()
    csr = random_points_in(tri, 200, np.random.default_rng(9))
    assert shapely.contains_xy(tri, csr[:, 0], csr[:, 1]).all() and len(csr) == 200
    rand = ripley_l(_events(csr), study_area=tri, distances=d, simulations=39, seed=2)
    assert not rand.clustered.any()
    # Under CSR with border correction the envelope brackets d itself.
    assert ((rand.env_low < d) & (d < rand.env_high)).all()
    # Same seed, same envelope.
    again = ripley_l(_events(csr), study_area=tri, distances=d, simulations=39, seed=2)
    pd.testing.assert_frame_equal(rand, again)


def test_random_points_are_uniform_in_polygon():
    poly = shapely.Polygon([(0, 0), (10, 0), (0, 10)])
    pts = random_points_in(poly, 20_000, np.random.default_rng(0))
    # Share left of x = 5 in the triangle is 3/4.
    assert (pts[:, 0] < 5).mean() == pytest.approx(0.75, abs=0.015)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distances": [500, 100]}, "distances must be ascending positive"),
        ({"distances": [-1, 100]}, "distances must be ascending positive"),
        ({"distances": []}, "distances must be ascending positive"),
        ({"simulations": -1}, "simulations must be an integer >= 0"),
        ({"edge_correction": "ripley"}, "edge_correction must be"),
    ],
)
def test_ripley_bad_input(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        ripley_l(_events(_clustered(20, 7)), study_area=AREA, **({"distances": [100.0]} | kwargs))
    with pytest.raises(ValidationError, match="at least 3 events"):
        ripley_l(_events(_clustered(2, 7)), study_area=AREA, distances=[100.0])


# ---- Knox -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def knox_events():
    """60 background events plus 3 bursts: events close in space and time."""
    rng = np.random.default_rng(21)
    base = pd.Timestamp("2025-01-01", tz="Europe/Luxembourg")
    xy = [rng.uniform([60_000, 60_000], [100_000, 130_000], (60, 2))]
    hours = [rng.uniform(0, 365 * 24, 60)]
    for k in range(3):
        xy.append(rng.uniform(65_000, 95_000, 2) + rng.normal(0, 300, (8, 2)))
        hours.append(rng.uniform(0, 365 * 24) + rng.uniform(0, 72, 8))
    xy, hours = np.vstack(xy), np.concatenate(hours)
    times = base + pd.to_timedelta(np.round(hours * 3600), unit="s")
    return _events(xy, times)


def test_knox_counts_match_brute_force(knox_events):
    res = knox_test(knox_events, distance=1_500, days=5, permutations=199, seed=3)
    xy = shapely.get_coordinates(knox_events.geometry.values)
    t = (knox_events.observed_at - knox_events.observed_at.min()).dt.total_seconds().to_numpy() / 86_400
    ns = nt = nst = 0
    n = len(xy)
    for a in range(n):
        for b in range(a + 1, n):
            close_s = math.dist(xy[a], xy[b]) <= 1_500
            close_t = abs(t[a] - t[b]) <= 5
            ns += close_s
            nt += close_t
            nst += close_s and close_t
    assert (res.space_pairs, res.time_pairs, res.observed) == (ns, nt, nst)
    assert res.total_pairs == n * (n - 1) // 2
    assert res.expected == pytest.approx(ns * nt / (n * (n - 1) / 2))
    assert res.ratio > 3 and res.p_value == pytest.approx(1 / 200)
    assert res.p_value_poisson == pytest.approx(stats.poisson.sf(nst - 1, res.expected))
    # The permutation mean estimates the analytic expectation.
    assert res.simulated_mean == pytest.approx(res.expected, rel=0.25)


def test_knox_no_interaction_when_times_shuffled(knox_events):
    rng = np.random.default_rng(5)
    shuffled = knox_events.assign(observed_at=knox_events.observed_at.to_numpy()[rng.permutation(len(knox_events))])
    shuffled["observed_at"] = pd.to_datetime(shuffled.observed_at).dt.tz_convert("Europe/Luxembourg")
    res = knox_test(shuffled, distance=1_500, days=5, permutations=199, seed=3)
    assert res.p_value > 0.05


def test_knox_inclusive_thresholds():
    xy = np.array([[70_000.0, 80_000.0], [71_000.0, 80_000.0], [90_000.0, 120_000.0]])
    times = pd.to_datetime(["2025-03-01 10:00", "2025-03-08 10:00", "2025-06-01 10:00"]).tz_localize("Europe/Luxembourg")
    res = knox_test(_events(xy, times), distance=1_000, days=7, permutations=9, seed=0)
    assert (res.space_pairs, res.time_pairs, res.observed) == (1, 1, 1)


def test_knox_agrees_with_pointpats(knox_events):
    from pointpats import spacetime
    res = knox_test(knox_events, distance=1_500, days=5, permutations=9, seed=0)
    xy = shapely.get_coordinates(knox_events.geometry.values)
    t = ((knox_events.observed_at - knox_events.observed_at.min()).dt.total_seconds().to_numpy() / 86_400)[:, None]
    ref = spacetime.Knox(xy, t, delta=1_500, tau=5, permutations=0)
    # pointpats' 2 x 2 table: [[N_st, N_s - N_st], [N_t - N_st, rest]].
    obs = ref.observed
    assert res.observed == ref.nst == obs[0, 0]
    assert res.space_pairs == obs[0, 0] + obs[0, 1]
    assert res.time_pairs == obs[0, 0] + obs[1, 0]
    assert res.expected == pytest.approx(ref.expected[0, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distance": 0}, "distance must be a positive"),
        ({"days": -1}, "days must be a positive"),
        ({"permutations": 0}, "permutations must be an integer >= 1"),
    ],
)
def test_knox_bad_parameters(knox_events, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        knox_test(knox_events, **({"distance": 1_000, "days": 3} | kwargs))


def test_knox_bad_events(knox_events):
    with pytest.raises(ValidationError, match="observed_at"):
        knox_test(knox_events.drop(columns="observed_at"), distance=1_000, days=3)
    with pytest.raises(ValidationError, match="at least 3 events"):
        knox_test(knox_events.iloc[:2], distance=1_000, days=3)
