"""Location models against brute-force enumeration and spopt, and every bad input of a plan."""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pulp
import pytest
import scipy.sparse as sp
from shapely.geometry import Point
from spopt.locate import MCLP
from spopt.locate import PMedian as SpoptPMedian

from geo_ibm.errors import ValidationError
from geo_ibm.planning.coverage import Coverage, coverage_by_radius, distance_matrix
from geo_ibm.planning.models import (
    MaximalCovering,
    PMedian,
    ReducedCovering,
    SetCovering,
    _lp_multipliers,
    lagrangian_fixing,
    mclp_exact,
    mclp_heuristic,
    mclp_lagrangian_bound,
    reduce_covering,
)
from geo_ibm.planning.spacetime import block_label, demand_blocks, plan_shifts


def _instance(seed: int, n: int = 50, m: int = 9, radius: float = 2_500.0) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray, Coverage]:
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0, 10_000, (n, 2))
    sites = rng.uniform(0, 10_000, (m, 2))
    weights = rng.integers(1, 6, n).astype(float)
    return demand, sites, weights, coverage_by_radius(demand, sites, radius=radius)


def _brute_mclp(inc: np.ndarray, w: np.ndarray, k: int, required: tuple[int, ...] = (),
                excluded: tuple[int, ...] = ()) -> float:
    free = [j for j in range(inc.shape[1]) if j not in required and j not in excluded]
    return max(float(w[inc[:, list(required) + list(c)].any(axis=1)].sum())
               for c in itertools.combinations(free, k - len(required)))


def _brute_lscp(inc: np.ndarray, w: np.ndarray, target: float) -> int:
    m = inc.shape[1]
    for size in range(1, m + 1):
        for c in itertools.combinations(range(m), size):
            if w[inc[:, list(c)].any(axis=1)].sum() >= target - 1e-9:
                return size
    raise AssertionError("unreachable target")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_mclp_equals_brute_force_and_heuristic_never_beats_it(seed: int, k: int) -> None:
    demand, sites, w, cov = _instance(seed)
    inc = cov.incidence().toarray() > 0
    best = _brute_mclp(inc, w, k)
    exact = MaximalCovering(cov, w, k=k).solve(method="exact")
    assert exact.objective_ == pytest.approx(best)
    assert exact.status_ == "optimal" and exact.gap_ == pytest.approx(0.0, abs=1e-9)
    assert len(exact.selected_) == k
    assert exact.gains_.sum() == pytest.approx(best)  # ranked gains add up to the objective
    assert np.all(np.diff(exact.gains_) <= 1e-9)  # ranked by marginal gain
    heur = MaximalCovering(cov, w, k=k).solve(method="heuristic")
    assert heur.objective_ <= best + 1e-9
    assert heur.bound_ >= best - 1e-9  # the heuristic's bound is a valid upper bound
    assert heur.objective_ >= (1 - 1 / np.e) * best - 1e-9
    covered = inc[:, heur.selected_].any(axis=1)
    assert heur.objective_ == pytest.approx(w[covered].sum())
    assert heur.perc_cov_ == pytest.approx(100 * w[covered].sum() / w.sum())


@pytest.mark.parametrize("seed", range(4))
def test_mclp_required_and_excluded_sites(seed: int) -> None:
    _, _, w, cov = _instance(seed)
    inc = cov.incidence().toarray() > 0
    model = MaximalCovering(cov, w, k=3, required=[2], excluded=[0, 5]).solve()
    assert model.objective_ == pytest.approx(_brute_mclp(inc, w, 3, required=(2,), excluded=(0, 5)))
    assert 2 in model.selected_ and 0 not in model.selected_ and 5 not in model.selected_
    heur = MaximalCovering(cov, w, k=3, required=[2], excluded=[0, 5]).solve(method="heuristic")
    assert 2 in heur.selected_ and not set(heur.selected_) & {0, 5}
    assert heur.objective_ <= model.objective_ + 1e-9 <= heur.bound_ + 2e-9


def test_reduction_drops_dead_and_merges_identical_rows() -> None:
    # rows 0 and 1 have the same covering set {0, 1}; row 2 is reached by no site
    rows, cols = np.array([0, 0, 1, 1, 3]), np.array([0, 1, 1, 0, 2])
    cost = sp.csr_matrix((np.ones(5), (rows, cols)), shape=(4, 3))
    cov = Coverage(cost, 1.0)
    red = reduce_covering(cov, np.array([1.0, 2.0, 5.0, 4.0]), required=np.zeros(0, dtype=np.int64),
                          excluded=np.zeros(0, dtype=np.int64))
    assert red.a.shape == (2, 3)
    assert sorted(red.weight.tolist()) == [3.0, 4.0]
    assert red.row_of[2] == -1 and red.row_of[0] == red.row_of[1]


def _reduced(seed: int, *, n: int = 70, m: int = 14, radius: float = 2_200.0,
             whole: bool = True) -> tuple[np.ndarray, np.ndarray, ReducedCovering]:
    demand, sites, w, cov = _instance(seed, n=n, m=m, radius=radius)
    if not whole:
        w = w + np.random.default_rng(seed + 100).uniform(0, 1, len(w))
    none = np.zeros(0, dtype=np.int64)
    return cov.incidence().toarray() > 0, w, reduce_covering(cov, w, required=none, excluded=none)


def _brute_reduced(red: ReducedCovering, k: int, *, drop: Sequence[int] = (), force: Sequence[int] = ()) -> float:
    a = red.a.toarray() > 0
    free = [j for j in range(a.shape[1]) if j not in set(drop) | set(force)]
    best = -np.inf
    for c in itertools.combinations(free, k - len(force)):
        best = max(best, float(red.weight[a[:, list(force) + list(c)].any(axis=1)].sum()))
    return best


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_lagrangian_bound_is_valid(seed: int, k: int, whole: bool) -> None:
    inc, w, red = _reduced(seed, whole=whole)
    best = _brute_mclp(inc, w, k)
    for start, iterations in ((np.zeros(0, dtype=np.int64), 3), (np.arange(k), 50), (np.arange(k), 400)):
        lag = mclp_lagrangian_bound(red, k, start=start, lower=0.0, max_iter=iterations)
        assert lag.bound >= best - 1e-9
        assert lag.best_value <= best + 1e-9
        # the bound is L at the stored multipliers, whatever the rounding
        top = np.sort(lag.site_value)[::-1][:k].sum()
        assert lag.bound <= lag.constant + top + 1e-6 * max(1.0, best)
        assert np.all(lag.multipliers >= 0) and np.all(lag.multipliers <= red.weight)
    lp = _lp_multipliers(red, k, time_limit=10.0)  # the LP duals as multipliers: the tightest such bound
    assert lp is not None and best - 1e-9 <= lp.bound <= lag.bound + 1e-6 * max(1.0, best)
    heur = mclp_heuristic(red, k)
    assert heur.value <= best + 1e-9 <= heur.bound + 2e-9


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_lagrangian_fixing_keeps_the_optimum(seed: int, whole: bool) -> None:
    k = 4
    _, _, red = _reduced(seed, whole=whole)
    best = _brute_reduced(red, k)
    # a weak incumbent (greedy without swaps, a few subgradient steps) leaves something to fix
    weak = mclp_heuristic(red, k, swaps=False, lagrangian_iterations=0)
    lag = mclp_lagrangian_bound(red, k, start=weak.chosen, lower=weak.value, max_iter=200)
    drop, force = lagrangian_fixing(lag, k, weak.value, integral=whole)
    assert not set(drop) & set(force)
    if len(force) <= k:
        restricted = _brute_reduced(red, k, drop=drop.tolist(), force=force.tolist())
        assert max(restricted, weak.value) == pytest.approx(best)
    else:
        assert weak.value == pytest.approx(best)


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iterations", [0, 4, 1_000])
def test_exact_with_fixing_equals_brute_force(seed: int, whole: bool, iterations: int) -> None:
    # few subgradient steps leave the proof to the MILP on the fixed model
    k = 4
    _, _, red = _reduced(seed, whole=whole)
    best = _brute_reduced(red, k)
    sol = mclp_exact(red, k, time_limit=30.0, lagrangian_iterations=iterations)
    assert sol.value == pytest.approx(best) and sol.status == "optimal"
    assert sol.bound >= best - 1e-9 and sol.bound == pytest.approx(best, rel=1e-6)
    assert len(sol.chosen) == k and len(set(sol.chosen.tolist())) == k
    assert float(red.weight[(red.a.toarray()[:, sol.chosen] > 0).any(axis=1)].sum()) == pytest.approx(best)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("share", [0.3, 0.6, 0.8])
def test_lscp_equals_brute_force(seed: int, share: float) -> None:
    _, _, w, cov = _instance(seed, radius=3_500.0)
    inc = cov.incidence().toarray() > 0
    reach = w[inc.any(axis=1)].sum() / w.sum()
    share = min(share, float(reach))
    fewest = _brute_lscp(inc, w, share * w.sum())
    exact = SetCovering(cov, w, share=share).solve()
    assert len(exact.selected_) == fewest and exact.status_ == "optimal"
    assert exact.objective_ >= share * w.sum() - 1e-9
    heur = SetCovering(cov, w, share=share).solve(method="heuristic")
    assert len(heur.selected_) >= fewest >= heur.bound_ - 1e-9
    assert heur.objective_ >= share * w.sum() - 1e-9


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 2, 4])
def test_pmedian_equals_brute_force(seed: int, k: int) -> None:
    demand, sites, w, _ = _instance(seed, n=40, m=8)
    d = distance_matrix(demand, sites)
    best = min(float((w * d[:, list(c)].min(axis=1)).sum()) for c in itertools.combinations(range(8), k))
    exact = PMedian(d, w, k=k).solve()
    assert exact.objective_ == pytest.approx(best, rel=1e-9)
    assert exact.bound_ <= best * (1 + 1e-6)
    heur = PMedian(d, w, k=k).solve(method="heuristic")
    assert heur.objective_ >= best - 1e-6
    assert heur.bound_ <= best + 1e-6  # a valid lower bound
    np.testing.assert_allclose(heur.distance_, d[np.arange(40), heur.assignment_])


def _medium(seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 40_000, (8, 2))
    demand = np.vstack([c + rng.normal(0, 2_500, (60, 2)) for c in centres])
    sites = rng.uniform(0, 40_000, (40, 2))
    return demand, sites, rng.integers(1, 10, len(demand)).astype(float)


def test_mclp_matches_spopt_on_a_medium_instance() -> None:
    demand, sites, w = _medium()
    radius, k = 5_000.0, 6
    ours = MaximalCovering(coverage_by_radius(demand, sites, radius=radius), w, k=k).solve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = MCLP.from_cost_matrix(distance_matrix(demand, sites), w, service_radius=radius, p_facilities=k)
        ref = ref.solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours.objective_ == pytest.approx(pulp.value(ref.problem.objective))
    heur = MaximalCovering(coverage_by_radius(demand, sites, radius=radius), w, k=k).solve(method="heuristic")
    assert heur.objective_ <= ours.objective_ + 1e-9 <= heur.bound_ + 1e-9


def test_pmedian_matches_spopt_on_a_medium_instance() -> None:
    demand, sites, w = _medium(3)
    demand, sites, w = demand[::3], sites[:25], w[::3]
    d = distance_matrix(demand, sites)
    ours = PMedian(d, w, k=4).solve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SpoptPMedian.from_cost_matrix(d, w, p_facilities=4).solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours.objective_ == pytest.approx(pulp.value(ref.problem.objective), rel=1e-6)


def test_to_geodataframe_ranks_chosen_sites() -> None:
    _, sites, w, cov = _instance(2)
    gdf = gpd.GeoDataFrame({"site_id": [f"S{j}" for j in range(len(sites))]},
                           geometry=[Point(x, y) for x, y in sites], crs=2169)
    model = MaximalCovering(cov, w, k=3).solve()
    out = model.to_geodataframe(gdf)
    assert out["rank"].tolist() == [1, 2, 3]
    assert out["site_id"].tolist() == [f"S{j}" for j in model.selected_]
    assert out.crs.to_epsg() == 2169


def test_spacetime_finds_the_planted_site_and_hours() -> None:
    rng = np.random.default_rng(0)
    sites = np.array([[0.0, 0.0], [20_000.0, 0.0], [0.0, 20_000.0], [20_000.0, 20_000.0]])
    # background: events everywhere at any hour; planted: many events near site 3, Friday 20-24
    background = rng.uniform(-2_000, 22_000, (300, 2))
    planted = sites[3] + rng.normal(0, 500, (120, 2))
    points = np.vstack([background, planted])
    hours = np.r_[rng.integers(0, 168, 300), rng.integers(4 * 24 + 20, 4 * 24 + 24, 120)]
    cov = coverage_by_radius(points, sites, radius=3_000.0)
    blocks = demand_blocks(np.arange(len(points)), hours, np.ones(len(points)), shift_hours=4, n_points=len(points))
    plan = plan_shifts(cov, blocks, k=1, shift_hours=4)
    assert plan.pairs["site"].tolist() == [3]
    assert plan.pairs["window"].tolist() == ["Fri 20-24"] == [block_label(4 * 6 + 5, 4)]
    assert plan.status == "optimal"
    two = plan_shifts(cov, blocks, k=3, shift_hours=4)
    assert not two.pairs.duplicated(["site", "block"]).any()  # one team per site and shift
    heur = plan_shifts(cov, blocks, k=3, shift_hours=4, method="heuristic")
    assert heur.objective <= two.objective + 1e-9 <= heur.bound + 1e-9


# --------------------------------------------------------------------------------------------
# bad input: each a ValidationError naming the parameter


def test_more_teams_than_candidates() -> None:
    _, _, w, cov = _instance(0)
    with pytest.raises(ValidationError, match=r"teams: 10 teams but only 9 candidate sites"):
        MaximalCovering(cov, w, k=10)


@pytest.mark.parametrize("radius", [0, -5, float("nan"), 90_000])
def test_bad_radius(radius: float) -> None:
    with pytest.raises(ValidationError, match=r"^radius"):
        coverage_by_radius(np.zeros((3, 2)), np.ones((2, 2)), radius=radius)


def test_no_demand() -> None:
    with pytest.raises(ValidationError, match=r"demand: no demand points"):
        coverage_by_radius(np.zeros((0, 2)), np.ones((2, 2)), radius=100)
    _, _, w, cov = _instance(0)
    with pytest.raises(ValidationError, match=r"every demand weight is 0"):
        MaximalCovering(cov, np.zeros_like(w), k=2)


def test_share_unreachable() -> None:
    _, _, w, cov = _instance(0, radius=500.0)
    with pytest.raises(ValidationError, match=r"share: 100.0% of demand asked, but all candidate sites together"):
        SetCovering(cov, w, share=1.0)
    with pytest.raises(ValidationError, match=r"^share must be"):
        SetCovering(cov, w, share=1.5)


def test_too_many_pairs_refused_before_building() -> None:
    with pytest.raises(ValidationError, match=r"radius: .* covering \(demand, site\) pairs; at most 100"):
        coverage_by_radius(np.zeros((50, 2)), np.zeros((5, 2)), radius=10, max_nonzeros=100)
    with pytest.raises(ValidationError, match=r"demand: p-median needs every"):
        distance_matrix(np.zeros((50, 2)), np.zeros((5, 2)), max_pairs=100)


def test_time_limit_without_a_feasible_solution() -> None:
    rng = np.random.default_rng(5)
    demand = rng.uniform(0, 60_000, (4_000, 2))
    sites = rng.uniform(0, 60_000, (300, 2))
    w = rng.integers(1, 10, 4_000).astype(float)
    cov = coverage_by_radius(demand, sites, radius=4_000.0)
    with pytest.raises(ValidationError, match=r"^time_limit must be"):
        MaximalCovering(cov, w, k=5).solve(time_limit=0)
    # set covering of 99 % with a tiny limit: HiGHS stops before finding any feasible cover
    inc = cov.incidence()
    reach = float(w[np.asarray(inc.sum(axis=1)).ravel() > 0].sum()) / w.sum()
    with pytest.raises(ValidationError, match=r"time_limit: no feasible solution was found within 0.001 s"):
        SetCovering(cov, w, share=reach).solve(time_limit=0.001)


def test_bad_shift_length() -> None:
    with pytest.raises(ValidationError, match=r"^shifts must be"):
        plan_shifts(Coverage(sp.csr_matrix((2, 2)), 1.0), sp.csr_matrix((2, 33)), k=1, shift_hours=5)
