"""Tests for geo_ibm.nearrepeat, geo-ibm nearrepeat and the report's near-repeat section, against brute force."""
from __future__ import annotations

import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from storefixtures import HEADER
from workfixtures import Forbidden

from geo_ibm import nearrepeat as nearrepeat_module
from geo_ibm.cli import main
from geo_ibm.disclosure import DisclosureRule
from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.nearrepeat import (
    MAX_BANDS,
    MAX_EVENTS,
    MAX_PAIRS,
    MAX_PERMUTATIONS,
    band_edges,
    check_near_repeat_cost,
    count_close_pairs,
    near_repeat,
)
from geo_ibm.pointpattern import knox_test
from geo_ibm.reportdoc.figures import CountDisplay
from geo_ibm.reportdoc.model import Paragraph, Table
from geo_ibm.reportdoc.nearrepeat import MIN_NEAR_REPEAT_EVENTS, REPORT_PERMUTATIONS, near_repeat_section
from geo_ibm.reportdoc.strings import translator

BASE = pd.Timestamp("2026-07-01", tz="Europe/Luxembourg")


def _events(xy: np.ndarray, seconds: np.ndarray) -> gpd.GeoDataFrame:
    times = BASE + pd.to_timedelta(np.asarray(seconds, dtype=np.int64), unit="s")
    return gpd.GeoDataFrame({"observed_at": times}, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169")


def planted(n_background: int = 200, n_repeats: int = 100, seed: int = 0) -> gpd.GeoDataFrame:
    """Uniform events over 90 days and a third as many repeats, each within 70 m and 3 days of a background event."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([62_000, 72_000], [88_000, 98_000], (n_background, 2))
    seconds = rng.uniform(0, 90 * 86_400, n_background)
    origin = rng.choice(n_background, n_repeats, replace=False)
    angle, radius = rng.uniform(0, 2 * math.pi, n_repeats), rng.uniform(0, 70, n_repeats)
    rxy = xy[origin] + np.c_[radius * np.cos(angle), radius * np.sin(angle)]
    rsec = seconds[origin] + rng.uniform(0, 3 * 86_400, n_repeats)
    return _events(np.vstack([xy, rxy]), np.round(np.concatenate([seconds, rsec])))


def independent(n: int = 400, seed: int = 1) -> gpd.GeoDataFrame:
    """Clustered places and times with a rising trend, drawn independently: no space-time interaction."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([62_000, 72_000], [88_000, 98_000], (5, 2))
    xy = centres[rng.integers(0, 5, n)] + rng.normal(0, 300, (n, 2))
    days = 90 * np.sqrt(rng.uniform(0, 1, n))  # density rising over the quarter
    return _events(xy, np.round(days * 86_400))


def brute_force(xy: np.ndarray, seconds: np.ndarray, d_edges, t_edges, *, metric: str = "euclidean") -> np.ndarray:
    """Cell counts by a double loop over the pairs, in exact integer arithmetic (integer coordinates and seconds)."""
    counts = np.zeros((len(d_edges) - 1, len(t_edges) - 1), dtype=np.int64)
    n = len(xy)
    for a in range(n):
        for b in range(a + 1, n):
            dx, dy = int(xy[a, 0] - xy[b, 0]), int(xy[a, 1] - xy[b, 1])
            gap = abs(int(seconds[a]) - int(seconds[b]))
            for k in range(len(d_edges) - 1):
                if metric == "euclidean":
                    inside = d_edges[k] ** 2 <= dx * dx + dy * dy < d_edges[k + 1] ** 2
                else:
                    inside = d_edges[k] <= abs(dx) + abs(dy) < d_edges[k + 1]
                if not inside:
                    continue
                for m in range(len(t_edges) - 1):
                    if t_edges[m] * 86_400 <= gap < t_edges[m + 1] * 86_400:
                        counts[k, m] += 1
    return counts.ravel()


@pytest.fixture(scope="module")
def grid_events() -> tuple[np.ndarray, np.ndarray]:
    """90 events on whole metres and whole hours, with pairs exactly on band edges (100 m, 7 days)."""
    rng = np.random.default_rng(7)
    xy = rng.integers(0, 600, (86, 2)).astype(float) + 80_000
    hours = rng.integers(0, 30 * 24, 86)
    # A 60-80-100 triangle: exactly 100 m apart (upper edge of the first band, lower of the second),
    # 7 days apart to the hour; a coincident pair at the same time.
    xy = np.vstack([xy, [[80_000, 80_000], [80_060, 80_080], [80_300, 80_300], [80_300, 80_300]]])
    hours = np.concatenate([hours, [0, 7 * 24, 100, 100]])
    return xy, hours * 3600


# ---- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_pair_counts_match_brute_force(grid_events, metric):
    xy, seconds = grid_events
    d_edges, t_edges = (0, 100, 250, 400), (0, 1, 7, 14, 30)
    result = near_repeat(_events(xy, seconds), distance_bands_m=d_edges, time_bands_days=t_edges, permutations=9,
                         seed=2, metric=metric)
    expected = brute_force(xy, seconds, d_edges, t_edges, metric=metric)
    assert result.table["observed"].tolist() == expected.tolist()
    assert expected.sum() > 500  # enough pairs that a wrong band would show
    assert result.n == len(xy) and result.metric == metric and result.reason is None
    # Pairs closer than the largest edge, whatever their time difference.
    n_close = sum(1 for a in range(len(xy)) for b in range(a + 1, len(xy))
                  if (math.dist(xy[a], xy[b]) if metric == "euclidean" else np.abs(xy[a] - xy[b]).sum()) < 400)
    assert result.pairs == n_close
    assert list(result.table.columns) == ["distance_band", "time_band", "distance_from_m", "distance_to_m", "days_from",
                                          "days_to", "observed", "expected", "knox_ratio", "p_value", "significant"]
    assert result.table["distance_band"].iloc[0] == "0-100 m" and result.table["time_band"].iloc[1] == "1-7 days"


def test_edges_are_lower_inclusive(grid_events):
    # Two events exactly 100 m and 7 days apart: in 100-200 m and 7-14 days, not in the first cell.
    xy = np.array([[80_000.0, 80_000.0], [80_060.0, 80_080.0]])
    result = near_repeat(_events(xy, np.array([0, 7 * 86_400])), distance_bands_m=(0, 100, 200),
                         time_bands_days=(0, 7, 14), permutations=5)
    assert result.table["observed"].tolist() == [0, 0, 0, 1]


def test_monte_carlo_expected_and_p_value_by_definition(grid_events):
    xy, seconds = grid_events
    d_edges, t_edges = (0, 150, 300), (0, 2, 10)
    permutations, seed = 39, 11
    result = near_repeat(_events(xy, seconds), distance_bands_m=d_edges, time_bands_days=t_edges,
                         permutations=permutations, seed=seed)
    observed = brute_force(xy, seconds, d_edges, t_edges)
    # The same draws as the implementation documents: one rng.permutation(n) of the times per permutation.
    rng = np.random.default_rng(seed)
    sims = np.array([brute_force(xy, seconds[rng.permutation(len(xy))], d_edges, t_edges)
                     for _ in range(permutations)])
    expected = sims.mean(axis=0)
    p = (1 + (sims >= observed).sum(axis=0)) / (1 + permutations)
    np.testing.assert_allclose(result.table["expected"], expected, rtol=1e-12)
    np.testing.assert_allclose(result.table["p_value"], p, rtol=1e-12)
    np.testing.assert_allclose(result.table["knox_ratio"], observed / expected, rtol=1e-12)
    assert result.table["significant"].tolist() == ((p <= 0.05) & (observed / expected > 1)).tolist()
    assert result.table["p_value"].min() >= 1 / (1 + permutations)


def test_width_count_bands_equal_the_edges(grid_events):
    xy, seconds = grid_events
    events = _events(xy, seconds)
    by_width = near_repeat(events, distance_bands_m=(100, 4), time_bands_days=(7, 3), permutations=19, seed=4)
    by_edges = near_repeat(events, distance_bands_m=(0, 100, 200, 300, 400), time_bands_days=[0, 7, 14, 21],
                           permutations=19, seed=4)
    pd.testing.assert_frame_equal(by_width.table, by_edges.table)
    assert by_width.distance_edges == (0, 100, 200, 300, 400) and by_width.time_edges == (0, 7, 14, 21)
    # Unequal time bands take the general (search) path: same counts as brute force.
    uneven = near_repeat(events, distance_bands_m=(0, 100, 200, 300, 400), time_bands_days=(0, 1, 3, 21),
                         permutations=3, seed=4)
    assert uneven.table["observed"].tolist() == brute_force(xy, seconds, (0, 100, 200, 300, 400), (0, 1, 3, 21)).tolist()


def test_matrix_is_the_table_by_band(grid_events):
    result = near_repeat(_events(*grid_events), distance_bands_m=(100, 3), time_bands_days=(7, 2), permutations=5)
    m = result.matrix("observed")
    assert m.shape == (3, 2)
    assert list(m.index) == ["0-100 m", "100-200 m", "200-300 m"] and list(m.columns) == ["0-7 days", "7-14 days"]
    assert m.to_numpy().ravel().tolist() == result.table["observed"].tolist()
    with pytest.raises(ValidationError, match="column must be one of"):
        result.matrix("nope")


def test_planted_near_repeats_are_found():
    result = near_repeat(planted(), permutations=99, seed=0)
    first = result.table.iloc[0]
    assert (first["distance_band"], first["time_band"]) == ("0-100 m", "0-7 days")
    assert first["observed"] >= 100 and first["knox_ratio"] > 3
    assert first["p_value"] == pytest.approx(0.01) and bool(first["significant"])


def test_independent_pattern_has_no_significant_cell():
    # Clustered places and a time trend, drawn independently: the ratios stay near 1. Twenty cells
    # at the 5 % level would mark one by chance about two times in three, so the family is held at
    # 5 % with Bonferroni (alpha = 0.05 / 20) and 999 permutations.
    cells = 20
    result = near_repeat(independent(), permutations=999, seed=0, alpha=0.05 / cells)
    assert len(result.table) == cells and result.pairs > 5_000
    assert not result.table["significant"].any()
    assert result.table["p_value"].min() > 0.05 / cells
    assert result.table["knox_ratio"].between(0.8, 1.25).all()


def test_first_cell_is_knox_test(grid_events):
    # Continuous places and times (no ties at the thresholds, where Knox counts inclusively):
    # with the same seed the permutations are the same draws, so the counts are identical.
    events = planted(seed=5)
    for distance, days in ((100.0, 7.0), (2_000.0, 2.5)):
        cell = near_repeat(events, distance_bands_m=(0, distance), time_bands_days=(0, days), permutations=199,
                           seed=3).table.iloc[0]
        knox = knox_test(events, distance=distance, days=days, permutations=199, seed=3)
        assert cell["observed"] == knox.observed
        assert cell["expected"] == pytest.approx(knox.simulated_mean, rel=1e-12)
        assert cell["p_value"] == pytest.approx(knox.p_value, rel=1e-12)
        # The permutation mean estimates Knox's analytic expectation N_s N_t / N.
        assert cell["expected"] == pytest.approx(knox.expected, abs=4 * knox.simulated_sd / math.sqrt(199) + 0.5)


def test_too_few_events_and_no_pairs_are_said():
    one = near_repeat(_events(np.array([[80_000.0, 80_000.0]]), np.array([0])), permutations=9)
    assert one.reason == "1 event: a near-repeat table needs at least 2 events"
    none = near_repeat(_events(np.empty((0, 2)), np.array([], dtype=np.int64)), permutations=9)
    assert none.n == 0 and "0 events" in (none.reason or "")
    far = near_repeat(_events(np.array([[70_000.0, 80_000.0], [90_000.0, 80_000.0]]), np.array([0, 60])),
                      permutations=9)
    assert far.reason == "no two of the 2 events are closer than 500 m" and far.pairs == 0
    for result in (one, none, far):
        assert len(result.table) == 20
        assert (result.table["observed"] == 0).all() and (result.table["expected"] == 0).all()
        assert result.table["knox_ratio"].isna().all() and (result.table["p_value"] == 1).all()
        assert not result.table["significant"].any()


# ---- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "column", "match"),
    [
        ({"distance_bands_m": (100, 200, 300)}, "distance_bands_m", "must start at 0 and increase"),
        ({"distance_bands_m": (0, 200, 100)}, "distance_bands_m", "must start at 0 and increase"),
        ({"distance_bands_m": (100, 2.5)}, "distance_bands_m", "whole number of bands"),
        ({"distance_bands_m": (10, MAX_BANDS + 1)}, "distance_bands_m", f"at most {MAX_BANDS} bands"),
        ({"distance_bands_m": "0,100"}, "distance_bands_m", "give band edges"),
        ({"distance_bands_m": (0, math.nan)}, "distance_bands_m", "give band edges"),
        ({"time_bands_days": tuple(range(MAX_BANDS + 2))}, "time_bands_days", f"at most {MAX_BANDS} bands"),
        ({"time_bands_days": (0, 100_000)}, "time_bands_days", "largest edge may be at most"),
        ({"time_bands_days": (7, 0)}, "time_bands_days", "whole number of bands >= 1"),
        ({"permutations": 0}, "permutations", "whole number from 1"),
        ({"permutations": MAX_PERMUTATIONS + 1}, "permutations", "whole number from 1"),
        ({"permutations": 9.5}, "permutations", "whole number from 1"),
        ({"metric": "chebyshev"}, "metric", "must be one of euclidean, manhattan"),
        ({"alpha": 1.5}, "alpha", "between 0 and 1"),
        ({"seed": -5}, "seed", "whole number >= 0 or None"),
        ({"seed": 1.5}, "seed", "whole number >= 0 or None"),
        ({"seed": "1"}, "seed", "whole number >= 0 or None"),
    ],
)
def test_bad_parameters_are_named(grid_events, kwargs, column, match):
    with pytest.raises(ValidationError, match=match) as err:
        near_repeat(_events(*grid_events), **kwargs)
    assert [p.column for p in err.value.problems] == [column]


def test_every_bad_parameter_reported_at_once(grid_events):
    with pytest.raises(ValidationError) as err:
        near_repeat(_events(*grid_events), distance_bands_m=(5, 0), time_bands_days=(0,), permutations=-1)
    assert [p.column for p in err.value.problems] == ["distance_bands_m", "time_bands_days", "permutations"]


def test_band_edges_forms():
    assert band_edges((250, 2), name="d", unit="m").tolist() == [0, 250, 500]
    assert band_edges((0, 50), name="d", unit="m").tolist() == [0, 50]  # starts at 0: edges, one band
    assert band_edges(np.array([0, 1.5, 3]), name="t", unit="days").tolist() == [0, 1.5, 3]


def test_too_many_pairs_refused_before_they_are_built(monkeypatch):
    # 3 300 events in a 100 m square: 5.4 million pairs within 500 m, counted on the tree only.
    rng = np.random.default_rng(0)
    xy = rng.uniform(80_000, 80_100, (3_300, 2))
    events = _events(xy, rng.integers(0, 90 * 86_400, 3_300))
    assert count_close_pairs(xy, 500.0) == 3_300 * 3_299 // 2 > MAX_PAIRS

    # Not timed: listing the pairs (_pairs) fails the test, so the refusal must come first.
    with monkeypatch.context() as patched:
        Forbidden(patched)(nearrepeat_module, "_pairs", why="the refusal comes before the pairs are listed")
        with pytest.raises(ValidationError, match="distance_bands_m: 5,443,350 pairs of events are closer than 500 m") as err:
            near_repeat(events, permutations=1)
    assert [p.column for p in err.value.problems] == ["distance_bands_m"]
    # A smaller largest band fits (and its pairs are listed by _pairs).
    assert near_repeat(events, distance_bands_m=(0, 1, 2), permutations=1).pairs < MAX_PAIRS


def test_too_many_permutations_refused_with_the_most_that_fit():
    rng = np.random.default_rng(1)
    xy = rng.uniform(80_000, 80_100, (1_200, 2))
    events = _events(xy, rng.integers(0, 90 * 86_400, 1_200))
    pairs = 1_200 * 1_199 // 2
    with pytest.raises(ValidationError, match=f"use at most {1_000_000_000 // pairs:,} permutations") as err:
        near_repeat(events, permutations=9_999)
    assert [p.column for p in err.value.problems] == ["permutations"]


def test_too_many_events_refused():
    with pytest.raises(ValidationError, match="events: 2,000,001 events") as err:
        check_near_repeat_cost(MAX_EVENTS + 1, 0, 99, largest_distance=500)
    assert [p.column for p in err.value.problems] == ["events"]
    check_near_repeat_cost(MAX_EVENTS, MAX_PAIRS, 1, largest_distance=500)  # at the limits: accepted


def test_events_must_be_in_the_working_crs(grid_events):
    with pytest.raises(CrsError, match="EPSG:4326"):
        near_repeat(_events(*grid_events).to_crs(4326))


def test_progress_reports_the_permutations(grid_events):
    seen: list[tuple[int, int]] = []
    near_repeat(_events(*grid_events), permutations=250, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (250, 250) and all(total == 250 for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) <= 251


# ---- command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nearrepeat_cli")
    events = planted(seed=2)
    stamps = events["observed_at"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    rows = [f"N{i:04d};{stamps.iloc[i]};{p.x:.2f};{p.y:.2f};motorway;2;0;car;FR;" for i, p in enumerate(events.geometry)]
    source = folder / "events.csv"
    source.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    store = folder / "store.gpkg"
    result = CliRunner().invoke(main, ["--store", str(store), "import", str(source)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return store


def _run(store, *args: str):
    return CliRunner().invoke(main, ["--store", str(store), "nearrepeat", *args], catch_exceptions=False)


def test_cli_prints_the_table_and_writes_csv(planted_store, tmp_path):
    from geo_ibm.store import open_store

    out = tmp_path / "nr.csv"
    result = _run(planted_store, "--quarter", "2026Q3", "--distance", "100:3", "--time-bands", "0,3,7,14",
                  "--permutations", "49", "--seed", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    events = open_store(str(planted_store)).events(quarter="2026Q3")
    expected = near_repeat(events, distance_bands_m=(100, 3), time_bands_days=(0, 3, 7, 14), permutations=49, seed=1)
    assert f"near-repeat table of {len(events)} events (quarter 2026Q3)" in result.output
    assert f"{expected.pairs} pairs closer than 300 m (euclidean), 49 permutations" in result.output
    first = expected.table.iloc[0]
    assert re.search(rf"^0-100 m +{first['knox_ratio']:.2f} \*", result.output, re.MULTILINE)
    assert first["p_value"] == pytest.approx(1 / 50)
    written = pd.read_csv(out, encoding="utf-8-sig")
    pd.testing.assert_frame_equal(written, expected.table, check_dtype=False)
    assert f"{int(expected.table['significant'].sum())} of 9 cells significant" in result.output
    audit = open_store(str(planted_store)).audit_log()
    assert audit.iloc[0]["action"] == "export" and "near-repeat table" in str(audit.iloc[0]["detail"])


def test_cli_writes_xlsx(planted_store, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "nr.xlsx"
    result = _run(planted_store, "--permutations", "19", "--metric", "manhattan", "--out", str(out))
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out)["near_repeat"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("distance_band", "time_band") and len(rows) == 21
    assert rows[1][:2] == ("0-100 m", "0-7 days")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--distance", "100"], "--distance must be WIDTH:COUNT"),
        (["--distance", "100:5", "--distance-bands", "0,100"], "give one of them"),
        (["--time-bands", "0,a"], "--time-bands must be comma-separated edges"),
        (["--time", "7:0"], "time_bands_days"),
        (["--permutations", "0"], "permutations must be a whole number"),
        (["--seed", "-5"], "seed must be a whole number >= 0"),
        (["--out", "table.gpkg"], "--out must end in .csv, .xlsx"),
    ],
)
def test_cli_refuses_bad_options(planted_store, args, match):
    result = _run(planted_store, *args)
    assert result.exit_code == 1 and match in result.output


def test_cli_says_when_nothing_can_be_tested(planted_store):
    result = _run(planted_store, "--quarter", "2020Q1", "--permutations", "9")
    assert result.exit_code == 0, result.output
    assert "nothing to test: 0 events: a near-repeat table needs at least 2 events" in result.output


# ---- report section -------------------------------------------------------------------------


def _texts(blocks) -> str:
    return "\n".join(b.text for b in blocks if isinstance(b, Paragraph))


def test_section_says_near_repeats_are_more_likely():
    events = planted()
    blocks = near_repeat_section(events, lang="en", t=translator("en"), counts=CountDisplay("en"))
    first = near_repeat(events, permutations=REPORT_PERMUTATIONS, seed=0).table.iloc[0]
    assert first["p_value"] == pytest.approx(1 / (1 + REPORT_PERMUTATIONS))
    assert blocks[0] == Paragraph(f"Within 100 m and 7 days of an interception, another one is {first['knox_ratio']:.1f} "
                                  "times as likely as chance would give (p = 0.005).", "lead")
    tables = [b for b in blocks if isinstance(b, Table)]
    assert [t.caption for t in tables] == ["Knox ratios of pairs of interceptions by distance and time apart",
                                           "Pairs of interceptions observed (expected by chance)"]
    assert tables[0].columns == ["Distance", "0–7 days", "7–14 days", "14–21 days", "21–28 days"]
    assert tables[0].rows[0][:2] == ["0–100 m", f"{first['knox_ratio']:.2f} **"]
    assert tables[1].rows[0][1] == f"{first['observed']} ({first['expected']:.1f})"
    assert "199 permutations" in _texts(blocks)


def test_section_says_no_near_repeat_for_independent_events():
    events = independent()
    blocks = near_repeat_section(events, lang="en", t=translator("en"), counts=CountDisplay("en"))
    first = near_repeat(events, permutations=REPORT_PERMUTATIONS, seed=0).table.iloc[0]
    assert not first["significant"]
    assert blocks[0].text.startswith("Within 100 m and 7 days of an interception, another one is no more likely than "
                                     f"chance would give (Knox ratio {first['knox_ratio']:.2f}, p = ")
    assert blocks[0].text.endswith("): no near-repeat pattern at this range.")


def test_section_for_aggregates_only_shows_no_pair_counts_or_p_values():
    rule = DisclosureRule()
    blocks = near_repeat_section(planted(), lang="en", t=translator("en"), counts=CountDisplay("en", rule))
    assert "(significant at the 1 % level)" in blocks[0].text and "p =" not in _texts(blocks)
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(tables) == 1  # the ratios, no pair counts
    assert "Cells of fewer than 5 pairs show no ratio (–)." in _texts(blocks)


def test_section_for_aggregates_only_hides_ratios_of_few_pairs():
    # 40 events far apart, and one place with 3 interceptions within 50 m and a day: 3 pairs.
    rng = np.random.default_rng(3)
    xy = np.vstack([np.c_[60_000 + 1_000 * np.arange(40), np.full(40, 90_000.0)],
                    [[80_020, 90_400], [80_040, 90_410], [80_010, 90_430]]])
    seconds = np.concatenate([rng.integers(0, 90 * 86_400, 40), [86_400, 90_000, 100_000]])
    events = _events(xy, seconds)
    safe = near_repeat_section(events, lang="en", t=translator("en"), counts=CountDisplay("en", DisclosureRule()))
    assert safe[0].text.startswith("Fewer than 5 pairs of interceptions were within 100 m and 7 days of each other")
    assert safe[1].rows[0][1] == "–"
    full = near_repeat_section(events, lang="en", t=translator("en"), counts=CountDisplay("en"))
    assert full[0].text.startswith("Within 100 m and 7 days of an interception, another one is")


def test_section_too_few_and_no_pairs():
    t = translator("en")
    few = planted(n_background=10, n_repeats=5)
    assert near_repeat_section(few, lang="en", t=t, counts=CountDisplay("en")) == [Paragraph(
        f"Only 15 interceptions: too few for a near-repeat analysis, which needs at least {MIN_NEAR_REPEAT_EVENTS}.")]
    spread = _events(np.c_[60_000 + 1_000 * np.arange(30), np.full(30, 90_000.0)], np.arange(30) * 3_600)
    assert near_repeat_section(spread, lang="en", t=t, counts=CountDisplay("en")) == [Paragraph(
        "No two interceptions were less than 500 m apart, so no near repeat can be measured.")]


def test_section_in_french():
    blocks = near_repeat_section(planted(), lang="fr", t=translator("fr"), counts=CountDisplay("fr"))
    assert blocks[0].text.startswith("À moins de 100 m et 7 jours d'une interception, une autre est ")
    assert blocks[0].text.endswith("fois plus probable que ne le voudrait le hasard (p = 0,005).")
    table = next(b for b in blocks if isinstance(b, Table))
    assert table.columns[1] == "0–7 jours" and "," in table.rows[0][1]
