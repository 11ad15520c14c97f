"""Events per segment and per corridor (geo_ibm.network.corridors), and their change test."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from networkfixtures import events_frame, road, roads_frame
from scipy import stats

from geo_ibm.network.corridors import corridor_ranking, rate_change_p, segment_stats
from geo_ibm.network.graph import build_network
from geo_ibm.network.snap import snap_events

ROADS = [
    road([(0, 0), (1000, 0)], ref="A3", highway="motorway"),              # r0, 1 km
    road([(1000, 0), (3000, 0)], ref="A3;E25", highway="motorway"),       # r1, 2 km, counts on the A3
    road([(1000, 0), (1000, 500)], ref="N31"),                            # r2, 0.5 km
    road([(0, 0), (0, 2000)]),                                            # r3, 2 km, no ref
    road([(3000, 0), (3000, 400)], ref="B7", highway="trunk"),            # r4, 0.4 km
]
COORDS = [[(0, 0), (1000, 0)], [(1000, 0), (3000, 0)], [(1000, 0), (1000, 500)], [(0, 0), (0, 2000)],
          [(3000, 0), (3000, 400)]]
# events (current, previous) per road, and the persons of each current event
CURRENT = [30, 10, 0, 4, 12]
PREVIOUS = [5, 10, 20, 4, 0]


def persons_of(road_index: int, k: int) -> int:
    return [2, 1, 1, 3, 1 + k % 2][road_index]


def events_on(counts, *, with_persons: bool):
    points, persons = [], []
    for r, n in enumerate(counts):
        (x0, y0), (x1, y1) = COORDS[r]
        for k in range(n):
            f = (k + 0.5) / n
            points.append((x0 + f * (x1 - x0), y0 + f * (y1 - y0)))
            persons.append(persons_of(r, k))
    return events_frame(points, persons=persons) if with_persons else events_frame(points)


@pytest.fixture(scope="module")
def network():
    return build_network(roads_frame(ROADS))


@pytest.fixture(scope="module")
def snapped(network):
    return snap_events(events_on(CURRENT, with_persons=True), network)


@pytest.fixture(scope="module")
def previous(network):
    return snap_events(events_on(PREVIOUS, with_persons=False), network)


def tails_p(c: int, total: int, share: float) -> float:
    """Twice the smaller binomial tail, by summing the probabilities."""
    pmf = [math.comb(total, k) * share**k * (1 - share) ** (total - k) for k in range(total + 1)]
    return min(1.0, 2.0 * min(sum(pmf[: c + 1]), sum(pmf[c:])))


def bh(p):
    """Benjamini–Hochberg adjusted p-values of the finite ``p`` (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.size, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    order = idx[np.argsort(p[idx])]
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        out[i] = running
    return out


def test_segment_counts_persons_and_events_per_km(network, snapped):
    out = segment_stats(network, snapped)
    assert out["segment_id"].tolist() == [0, 1, 2, 3, 4]
    assert out["ref"].tolist() == ["A3", "A3;E25", "N31", "", "B7"]
    np.testing.assert_allclose(out["length_m"], [1000, 2000, 500, 2000, 400])
    assert out["events"].tolist() == CURRENT
    assert out["persons"].tolist() == [60, 10, 0, 12, 18]
    np.testing.assert_allclose(out["events_per_km"], [30.0, 5.0, 0.0, 2.0, 30.0])
    # no previous period: nothing to compare
    assert out["previous_events"].tolist() == [0] * 5
    assert out["change"].tolist() == CURRENT
    assert out["p_value"].isna().all()
    assert not out["significant"].any()
    assert out["trend"].tolist() == ["stable"] * 5
    assert out.geometry.geom_type.eq("LineString").all() and str(out.crs) == "EPSG:2169"


def test_unsnapped_events_count_nowhere(network):
    events = events_frame([(500, 0), (500, 5000), (2000, 0)], persons=[4, 9, 1])
    out = segment_stats(network, snap_events(events, network))
    assert out["events"].tolist() == [1, 1, 0, 0, 0]
    assert out["persons"].tolist() == [4, 1, 0, 0, 0]


def test_change_against_the_previous_period(network, snapped, previous):
    out = segment_stats(network, snapped, previous)
    assert out["previous_events"].tolist() == PREVIOUS
    assert out["change"].tolist() == [25, 0, -20, 0, 12]
    expected = [tails_p(c, c + p, 0.5) for c, p in zip(CURRENT, PREVIOUS, strict=True)]
    np.testing.assert_allclose(out["p_value"], expected, rtol=1e-9)
    assert out["p_value"].iloc[4] == pytest.approx(2 * 0.5**12)
    assert out["p_value"].iloc[2] == pytest.approx(2 * 0.5**20)
    assert out["p_value"].iloc[1] == 1.0 and out["p_value"].iloc[3] == 1.0
    assert out["significant"].tolist() == (bh(expected) <= 0.05).tolist() == [True, False, True, False, True]
    assert out["trend"].tolist() == ["up", "stable", "down", "stable", "new"]


def test_no_event_in_either_period_has_no_p_value(network):
    one = snap_events(events_frame([(500, 0)]), network)
    out = segment_stats(network, one, one)
    assert out["p_value"].isna().tolist() == [False, True, True, True, True]
    assert out["trend"].tolist() == ["stable"] * 5


def test_unequal_periods_use_the_current_share_of_the_time(network, snapped, previous):
    share = 0.3
    out = segment_stats(network, snapped, previous, share=share)
    expected = [tails_p(c, c + p, share) for c, p in zip(CURRENT, PREVIOUS, strict=True)]
    np.testing.assert_allclose(out["p_value"], expected, rtol=1e-9)
    significant = bh(expected) <= 0.05
    assert out["significant"].tolist() == significant.tolist()
    # under the null the current count is previous * 0.3 / 0.7: above it is "up"
    ratio = share / (1 - share)
    trend = ["new" if s and p == 0 and c > 0 else ("up" if c > p * ratio else "down") if s else "stable"
             for c, p, s in zip(CURRENT, PREVIOUS, significant, strict=True)]
    assert out["trend"].tolist() == trend


@pytest.mark.parametrize(("current", "previous"), [(30, 5), (0, 20), (12, 0), (10, 10), (7, 9), (41, 60), (1, 0)])
def test_rate_change_p_is_twice_the_smaller_binomial_tail(current, previous):
    total = current + previous
    lower = stats.binom.cdf(current, total, 0.5)
    upper = stats.binom.sf(current - 1, total, 0.5)
    got = float(rate_change_p(np.array([current]), np.array([previous]))[0])
    assert got == pytest.approx(min(1.0, 2 * min(lower, upper)), rel=1e-12)
    assert got == pytest.approx(tails_p(current, total, 0.5), rel=1e-9)
    # at share 0.5 the binomial is symmetric: binomtest's two-sided p-value is the same
    assert got == pytest.approx(stats.binomtest(current, total, 0.5).pvalue, rel=1e-9)


def test_rate_change_p_agrees_with_binomtest_within_a_factor_for_unequal_shares():
    share = 92 / (92 + 90)  # a third quarter against the second
    for current, previous in [(60, 25), (20, 55)]:
        got = float(rate_change_p(np.array([current]), np.array([previous]), share)[0])
        assert got == pytest.approx(tails_p(current, current + previous, share), rel=1e-9)
        exact = stats.binomtest(current, current + previous, share).pvalue
        assert got < 1e-3 and 0.5 < got / exact < 2.0
    assert np.isnan(rate_change_p(np.array([0]), np.array([0]))[0])


def test_corridor_ranking_by_events_per_km(network, snapped, previous):
    ranking = corridor_ranking(segment_stats(network, snapped, previous))
    assert ranking["rank"].tolist() == [1, 2, 3, 4]
    assert ranking["ref"].tolist() == ["B7", "A3", "", "N31"]
    np.testing.assert_allclose(ranking["length_km"], [0.4, 3.0, 2.0, 0.5])
    assert ranking["events"].tolist() == [12, 40, 4, 0]
    assert ranking["persons"].tolist() == [18, 70, 12, 0]
    np.testing.assert_allclose(ranking["events_per_km"], [30.0, 40 / 3, 2.0, 0.0])
    assert ranking["previous_events"].tolist() == [0, 15, 4, 20]
    change = ranking["change_pct"].to_numpy()
    assert np.isnan(change[0])
    np.testing.assert_allclose(change[1:], [100 * 25 / 15, 0.0, -100.0])
    expected = [tails_p(12, 12, 0.5), tails_p(40, 55, 0.5), 1.0, tails_p(0, 20, 0.5)]
    np.testing.assert_allclose(ranking["p_value"], expected, rtol=1e-9)
    assert ranking["significant"].tolist() == (bh(expected) <= 0.05).tolist() == [True, True, False, True]
    assert ranking["trend"].tolist() == ["new", "up", "stable", "down"]
    # one MultiLineString per corridor, of its segments
    parts = [len(shapely.get_parts(g)) for g in ranking.geometry]
    assert parts == [1, 2, 1, 1]
    assert ranking.geometry.geom_type.eq("MultiLineString").all()
    np.testing.assert_allclose(ranking.geometry.length / 1000.0, ranking["length_km"])


def test_corridor_ranking_without_a_previous_period(network, snapped):
    ranking = corridor_ranking(segment_stats(network, snapped))
    assert ranking["ref"].tolist() == ["B7", "A3", "", "N31"]
    assert ranking["p_value"].isna().all() and ranking["change_pct"].isna().all()
    assert not ranking["significant"].any()
    assert ranking["trend"].tolist() == ["stable"] * 4
