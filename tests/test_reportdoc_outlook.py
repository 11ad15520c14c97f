"""The report's outlook section: the forecast's backtest recomputed by hand, the recommended sites, few events."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_ibm.disclosure import DisclosureRule
from geo_ibm.grid import bin_counts, locate, square_grid
from geo_ibm.hotspots import default_cell_size, fdr_bins, gi_star_grid
from geo_ibm.layers import police_regions
from geo_ibm.reportdoc.figures import CountDisplay
from geo_ibm.reportdoc.model import Image, Paragraph, Table
from geo_ibm.reportdoc.outlook import GI_LEVEL, outlook_section
from geo_ibm.reportdoc.strings import translator

QUARTER = "2026Q2"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from geo_ibm.demo import generate_events
    from geo_ibm.store import open_store

    events, _truth = generate_events(5000, seed=11, start="2025-01-01", end="2026-06-30")
    s = open_store(tmp_path_factory.mktemp("outlook") / "s.gpkg")
    s.init()
    s.import_events(events, source="demo", user="test")
    return s


def area():
    return police_regions().dissolve()


def run(store, *, rule=None, lang="en", quarter=QUARTER):
    return outlook_section(store, quarter=quarter, region=None, area=area(), area_name="Luxembourg",
                           footer_period=quarter, counts=CountDisplay(lang, rule), t=translator(lang))


def test_the_last_backtest_row_equals_a_hand_computation(store):
    blocks, tables = run(store)
    backtest = tables["forecast_backtest.csv"]
    last = backtest.iloc[-1]
    assert last["quarter"] == QUARTER and last["train_quarter"] == "2026Q1"
    # by hand: Gi* hot cells (bin >= 2, FDR) of 2026Q1 on the same grid, 2026Q2's events in them
    events = store.events(start="2025-01-01", end="2026-07-01", columns=["observed_at"])
    xy = np.column_stack([events.geometry.x, events.geometry.y])
    cell, _ = default_cell_size(xy, area())
    grid = square_grid(area().geometry.union_all(), cell=cell)
    spec = grid.attrs["grid"]
    q = pd.PeriodIndex(events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None), freq="Q")
    where = locate(xy, spec)
    train = (q.astype(str) == "2026Q1") & (where >= 0)
    test = (q.astype(str) == QUARTER) & (where >= 0)
    from geo_ibm.hotspots import auto_band

    counts = bin_counts(xy[train], spec)
    band, _ = auto_band(counts, spec)
    gi = gi_star_grid(counts, spec, band=band)
    hot = fdr_bins(gi.z, gi.p, fdr=True) >= GI_LEVEL
    hits = hot[where[test]].sum()
    assert last["predicted_cells"] == hot.sum()
    assert last["hit_rate"] == pytest.approx(hits / test.sum())
    lead = next(b for b in blocks if isinstance(b, Paragraph))
    scored = backtest[np.isfinite(backtest["pai"])]
    assert f"a PAI of {scored['pai'].mean():.1f}" in lead.text
    assert any(isinstance(b, Image) for b in blocks)


def test_recommended_sites_are_the_plan_of_the_quarter(store):
    from geo_ibm.planning.candidates import shipped_candidates
    from geo_ibm.planning.demand import demand_from_events
    from geo_ibm.planning.plan import make_plan
    from geo_ibm.reportdoc.outlook import HALF_LIFE_DAYS, RADIUS_M, TEAMS

    _, tables = run(store)
    sites = tables["recommended_sites.csv"]
    events = store.events(quarter=QUARTER, columns=["observed_at", "persons"])
    candidates = shipped_candidates()
    candidates = candidates[(candidates.geometry.distance(area().geometry.union_all()) <= RADIUS_M).to_numpy()]
    candidates = candidates.reset_index(drop=True)
    candidates.attrs["id_column"] = "site_id"
    plan = make_plan(candidates, demand_from_events(events, cell=100.0, half_life_days=HALF_LIFE_DAYS), teams=TEAMS,
                     radius=RADIUS_M, method="heuristic")
    assert sites["site_id"].tolist() == plan.sites["site_id"].tolist()
    assert (np.diff(sites["cumulative_share_pct"]) >= 0).all()
    assert sites["windows"].str.len().gt(0).all()


def test_the_protected_edition_has_rates_but_no_counts_and_no_map(store):
    blocks, tables = run(store, rule=DisclosureRule(), lang="fr")
    assert not any(isinstance(b, Image) for b in blocks)
    assert {"n_train", "n_test", "hits"}.isdisjoint(tables["forecast_backtest.csv"].columns)
    table = next(b for b in blocks if isinstance(b, Table))
    assert table.caption == "Résultats de la prévision aux trimestres passés"


def test_the_protected_edition_shows_only_hours_of_at_least_k_interceptions(store):
    """Each busiest-hours slot an aggregates-only reader sees holds at least min_count of the quarter's
    interceptions within reach of its site (counted here by hand); shares are in steps of 10 %."""
    from geo_ibm.planning.candidates import shipped_candidates
    from geo_ibm.reportdoc.outlook import RADIUS_M

    rule = DisclosureRule(min_count=20)
    _full_blocks, full = run(store)
    _blocks, tables = run(store, rule=rule)
    sites = tables["recommended_sites.csv"]
    assert sites["site_id"].tolist() == full["recommended_sites.csv"]["site_id"].tolist()
    assert (sites["cumulative_share_pct"] % 10 == 0).all()
    start, end = pd.Timestamp("2026-04-01", tz="Europe/Luxembourg"), pd.Timestamp("2026-07-01", tz="Europe/Luxembourg")
    events = store.events(start=start, end=end, columns=["observed_at"])
    local = events["observed_at"].dt.tz_convert("Europe/Luxembourg")
    days = np.array(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    slot = [f"{days[d]} {h // 4 * 4:02d}-{h // 4 * 4 + 4:02d}" for d, h in zip(local.dt.day_of_week, local.dt.hour)]
    where = shipped_candidates().set_index("site_id").geometry
    hidden = 0
    for site, shown, whole in zip(sites["site_id"], sites["windows"], full["recommended_sites.csv"]["windows"]):
        near = events.geometry.distance(where[site]).to_numpy() <= RADIUS_M
        per_slot = pd.Series(np.array(slot, dtype=object)[near]).value_counts()
        for window in whole.split(", "):
            if per_slot.get(window, 0) >= rule.min_count:
                assert window in shown.split(", ")
            else:
                assert window not in shown.split(", ")
                hidden += 1
    assert hidden > 0  # the rule took something away on this store


def test_a_quarter_with_few_events_says_so(store):
    blocks, tables = run(store, quarter="2024Q1")
    assert tables == {}
    assert blocks[0].text.startswith("Only 0 interceptions in the quarter: too few")
