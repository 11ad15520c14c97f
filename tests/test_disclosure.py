"""Tests of geo_ibm.disclosure and of what an aggregates-only reader (viewer) gets from the web app.

The attack the rule answers: a viewer asked ``/api/hotspots?method=gi&cell=50&cells=nonzero``
for one region and week and got 131 cells, 127 of them holding exactly one event: every event
of that week located to 50 m. The tests replay it, and a differencing pair of overlapping
queries, and check that no answer a viewer can get names fewer than k events.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from webfixtures import Site, make_site

from geo_ibm.disclosure import DisclosureRule, protect_counts, protect_filters, protect_result, protect_table, widen_window
from geo_ibm.errors import NotPermittedError, ValidationError
from geo_ibm.periods import to_timestamp

RULE = DisclosureRule()


# --------------------------------------------------------------------------- the rule


def test_counts_are_suppressed_below_k_and_rounded_above():
    shown = protect_counts([0, 1, 4, 5, 7, 8, 12, 13, 1000], RULE)
    assert shown[0] == 0
    assert np.isnan(shown[1:3]).all()
    assert shown[3:].tolist() == [5, 5, 10, 10, 15, 1000]
    # With k=10 and rounding 5 a count of 10 is shown, 9 is not.
    tight = DisclosureRule(min_count=10, rounding=5)
    assert np.isnan(protect_counts([9], tight)[0]) and protect_counts([10, 11], tight).tolist() == [10, 10]


@pytest.mark.parametrize(
    ("period", "start", "end", "first", "last"),
    [
        ("quarter", "2025-07-01", "2025-07-08", "2025-07-01T00:00:00+02:00", "2025-10-01T00:00:00+02:00"),
        ("quarter", "2025-09-30T23:00", "2025-10-01T01:00", "2025-07-01T00:00:00+02:00", "2026-01-01T00:00:00+01:00"),
        ("week", "2025-07-02T10:00", "2025-07-03", "2025-06-30T00:00:00+02:00", "2025-07-07T00:00:00+02:00"),
        ("day", "2025-10-26T10:00", "2025-10-26T11:00", "2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00"),
    ],
)
def test_windows_widen_to_whole_local_blocks(period, start, end, first, last):
    got = widen_window(to_timestamp(start), to_timestamp(end), DisclosureRule(period=period))
    assert (got[0].isoformat(), got[1].isoformat()) == (first, last)


def test_an_end_on_a_block_boundary_stays_there_and_open_ends_stay_open():
    start, end = widen_window(None, to_timestamp("2025-10-01"), RULE)
    assert start is None and end.isoformat() == "2025-10-01T00:00:00+02:00"
    assert protect_filters({"region": "Nord"}, RULE) == {"region": "Nord"}


def test_results_keep_classes_and_protected_counts_only():
    import geopandas as gpd
    from shapely.geometry import box

    frame = gpd.GeoDataFrame({"cell_id": [0, 1, 2], "count": [0, 3, 9], "gi_z": [0.1, 2.5, 3.9],
                              "gi_p": [0.9, 0.01, 0.0001], "gi_bin": [0, 2, 3], "gi_bin_fdr": [0, 1, 3],
                              "area_frac": [1.0, 1.0, 0.5]},
                             geometry=[box(0, 0, 500, 500), box(500, 0, 1000, 500), box(0, 500, 500, 1000)],
                             crs="EPSG:2169")
    frame.attrs = {"parameters": {"n_events": 12, "cell": 500.0}}
    out = protect_result(frame, "gi", RULE)
    assert list(out.columns) == ["cell_id", "area_frac", "count", "gi_bin", "gi_bin_fdr", "geometry"]
    assert out["count"].tolist()[0] == 0 and np.isnan(out["count"][1]) and out["count"][2] == 10
    assert out.attrs["parameters"]["n_events"] == 10 and out.attrs["parameters"]["disclosure"]["min_count"] == 5
    with pytest.raises(NotPermittedError, match="clusters results show single event positions") as info:
        protect_result(frame, "clusters", RULE)
    assert info.value.http_status == 403


@pytest.mark.parametrize("changes", [{"min_count": 1}, {"rounding": 0}, {"cell_m": 10.0}, {"period": "month"}])
def test_bad_rules_are_refused_naming_the_setting(changes):
    with pytest.raises(ValidationError, match=next(iter(changes))):
        DisclosureRule(**changes)


# --------------------------------------------------------------------------- what a viewer gets


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("disclosure") / "store.gpkg", seed=7, n_events=10_000)


ATTACK = "/api/hotspots?method=gi&cell=100&cells=nonzero&from=2025-07-01&to=2025-07-07"
"""The reported query (there 50 m cells over one region of a larger store; here 100 m over the
whole country, so that this smaller store's week holds enough events for Gi*)."""


def _cell_counts(body: dict) -> list:
    return [f["properties"].get("count") for f in body["features"]]


def test_the_single_event_query_gives_viewers_no_single_event(site):
    analyst = site.get(ATTACK, role="analyst").get_json()
    # The analyst's answer is what the attack used: fine cells holding single events.
    assert analyst["parameters"]["cell"] == 100 and 1 in _cell_counts(analyst)
    viewer = site.get(ATTACK, role="viewer").get_json()
    params = viewer["parameters"]
    assert params["cell"] == 500 and params["disclosure"]["min_count"] == 5
    assert params["from"].startswith("2025-07-01T00:00") and params["to"].startswith("2025-10-01T00:00")
    counts = [c for c in _cell_counts(viewer) if c is not None]
    assert counts and min(counts) >= 5 and all(c % 5 == 0 for c in counts)
    for feature in viewer["features"]:
        assert set(feature["properties"]) <= {"cell_id", "area_frac", "count", "gi_bin", "gi_bin_fdr"}


def test_a_differencing_pair_of_overlapping_windows_gives_identical_answers(site):
    week = site.get(ATTACK, role="viewer").get_json()
    longer = site.get(ATTACK.replace("to=2025-07-07", "to=2025-07-08"), role="viewer").get_json()
    assert week["features"] == longer["features"]
    stats_a = site.get("/api/stats?from=2025-07-01&to=2025-07-07", role="viewer").get_json()
    stats_b = site.get("/api/stats?from=2025-07-01&to=2025-07-08", role="viewer").get_json()
    assert stats_a == stats_b


def test_region_clips_the_map_without_changing_a_border_cells_count(site):
    national = site.get("/api/hotspots?method=gi&cells=nonzero&from=2025-01-01&to=2025-12-31", role="viewer").get_json()
    regional = site.get("/api/hotspots?method=gi&cells=nonzero&region=Capitale&from=2025-01-01&to=2025-12-31",
                        role="viewer").get_json()

    def by_centre(body):
        import shapely
        from shapely.geometry import shape

        return {tuple(np.round(shapely.get_coordinates(shape(f["geometry"]).envelope.centroid)[0], 3)): f["properties"]
                for f in body["features"]}

    # Cells are the national lattice; a clipped border cell's envelope differs, so compare
    # by lattice position: the cell ids are positions of each grid, not the lattice, hence centres
    # of cells that lie wholly in the region.
    whole = {k: v for k, v in by_centre(regional).items() if v.get("area_frac") == 1.0}
    national_cells = by_centre(national)
    assert whole
    assert all(national_cells[k]["count"] == v["count"] for k, v in whole.items() if k in national_cells)


def test_viewer_stats_are_protected_and_analyst_stats_exact(site):
    analyst = site.get("/api/stats?region=Nord", role="analyst").get_json()
    viewer = site.get("/api/stats?region=Nord", role="viewer").get_json()
    assert "disclosure" not in analyst and viewer["disclosure"]["rounding"] == 5
    assert viewer["total"] == protect_counts([analyst["total"]], RULE)[0]
    for entry in viewer["by_quarter"]:
        for key in ("events", "persons"):
            assert entry[key] is None or (entry[key] >= 5 and entry[key] % 5 == 0)


def test_viewers_cannot_get_cluster_hulls_but_analysts_can(site):
    refused = site.get("/api/hotspots?method=clusters", role="viewer")
    assert refused.status_code == 403 and refused.get_json()["parameter"] == "method"
    assert site.get("/api/hotspots?method=clusters", role="analyst").status_code == 200


def test_viewer_maps_draw_protected_cells_only(site):
    client = site.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {site.tokens['viewer']}"
    overview = client.get("/maps/overview?from=2025-07-01&to=2025-07-07").get_data(as_text=True)
    import json
    import re

    counts = [int(m) for m in re.findall(r'"count": "?(\d+)"?', overview)]
    assert counts and min(counts) >= 5 and all(c % 5 == 0 for c in counts)
    assert "Counts under 5 are hidden" in overview
    hotspots = client.get("/maps/hotspots").get_data(as_text=True)
    assert "Density clusters" in hotspots and "needs the analyst role" in hotspots
    assert '"gi_z"' not in hotspots
    assert json  # the documents embed GeoJSON; no single event appears in them


def test_viewer_ogc_hotspots_are_protected(site):
    body = site.get("/ogc/collections/hotspots/items?limit=10000", role="viewer").get_json()
    assert body["parameters"]["disclosure"]["cell_m"] == 500
    props = [f["properties"] for f in body["features"]]
    assert props and all("gi_z" not in p for p in props)
    assert all(p["count"] is None or p["count"] == 0 or p["count"] >= 5 for p in props)
    assert pd.notna(body["numberMatched"])


# --------------------------------------------------------------------------- one lone event in a quarter

LONE = ("event_id,observed_at,lat,lon,location_kind,persons,smugglers,transport_mode,entry_country,"
        "destination_country\nLONE-1,2026-10-05T03:17:42+02:00,49.6100,6.1300,other,13,2,taxi,BE,NL\n")
"""One interception in 2026Q4, a quarter the demo events leave empty: 13 persons, at 03:17:42."""


@pytest.fixture(scope="module")
def lone(tmp_path_factory) -> Site:
    folder = tmp_path_factory.mktemp("lone")
    site = make_site(folder / "store.gpkg", seed=7, n_events=3_000)
    (folder / "lone.csv").write_text(LONE, encoding="utf-8")
    assert site.store.import_file(folder / "lone.csv", user="test").accepted == 1
    return site


def test_no_message_gives_a_viewer_the_size_of_a_selection_too_small_to_analyse(lone):
    for url in ("/api/hotspots?method=gi&from=2026-10-01", "/api/hotspots?method=emerging&from=2026-10-01",
                "/api/hotspots?method=lisa&from=2026-10-01"):
        analyst = lone.get(url, role="analyst").get_json()
        assert "1 selected" in analyst["description"]  # what the attack read
        viewer = lone.get(url, role="viewer")
        body = viewer.get_json()
        assert viewer.status_code == 400 and "fewer than 30" in body["description"], body
        assert "1 selected" not in body["description"] and body["parameter"] == "events"
    client = lone.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {lone.tokens['viewer']}"
    document = client.get("/maps/hotspots?quarter=2026Q4").get_data(as_text=True)
    assert "fewer than 30" in document and "1 selected" not in document
    page = client.get("/hotspots?quarter=2026Q4").get_data(as_text=True)
    assert "1 selected" not in page


def test_persons_are_suppressed_with_the_events_they_were_counted_in(lone):
    viewer = lone.get("/api/stats?quarter=2026Q4", role="viewer").get_json()
    assert viewer["by_quarter"] == [{"quarter": "2026Q4", "events": None, "persons": None}]
    analyst = lone.get("/api/stats?quarter=2026Q4", role="analyst").get_json()
    assert analyst["by_quarter"] == [{"quarter": "2026Q4", "events": 1, "persons": 13}]
    table = protect_table(pd.DataFrame({"events": [3, 40, 0], "persons": [15, 81, 0], "smugglers": [7, 9, 0]}), RULE)
    assert np.isnan(table.loc[0]).all() and table.loc[1].tolist() == [40, 80, 10] and table.loc[2].tolist() == [0, 0, 0]


def test_hotspot_parameters_give_no_exact_count_nor_morans_z(lone):
    # a Q3 window against one that also holds the lone Q4 event: n_outside_grid differed by exactly one
    wide = lone.get("/api/hotspots?method=gi&from=2026-07-01&region=Capitale", role="viewer").get_json()["parameters"]
    exact = lone.get("/api/hotspots?method=gi&from=2026-07-01&region=Capitale", role="analyst").get_json()["parameters"]
    assert "moran_z" in exact["band_details"] and isinstance(exact["n_outside_grid"], int)
    assert wide["n_outside_grid"] is None or wide["n_outside_grid"] % 5 == 0
    q3 = lone.get("/api/hotspots?method=gi&from=2026-07-01&to=2026-09-30&region=Capitale", role="viewer")
    assert q3.get_json()["parameters"]["n_outside_grid"] == wide["n_outside_grid"]  # the lone event changes nothing
    assert set(wide["band_details"]) <= {"method", "k"} and "moran_z" not in str(wide)


def test_the_aggregates_report_of_a_lone_interception_names_none_of_its_attributes(lone):
    import re

    from geo_ibm.reportdoc.build import build_report
    from geo_ibm.reportdoc.html import render_html

    report = build_report(lone.store, quarter="2026Q4", disclosure=RULE)
    text = re.sub(r"<style.*?</style>", "", render_html(report.document), flags=re.S)
    assert "Fewer than 5 interceptions were recorded for Luxembourg in 2026Q4." in text
    assert "13 persons" not in text and "15 persons" not in text and not re.search(r">\s*1[05]\s*<", text)
    for attribute in ("Main entry country", "Belgium", "Taxi", "Netherlands", "Recorded: destination"):
        assert attribute not in text, attribute
    key = report.tables["key_figures.csv"]
    current = key.set_index("category")["current"]
    assert current.isna().all()  # events, persons and smugglers of the quarter: none shown
    exact = render_html(build_report(lone.store, quarter="2026Q4").document)
    assert "13 persons" in exact and "Main entry country" in exact  # what the full edition tells analysts


def test_a_report_is_full_or_short_by_the_count_as_printed():
    from geo_ibm.reportdoc.figures import CountDisplay

    shown = CountDisplay("en", RULE)
    # 28 to 32 all print as 30: every one of them gives the short report, so "30" tells nothing more
    assert [shown.all_at_least(n, 30) for n in (27, 28, 29, 30, 31, 32, 33, 37)] == [False] * 6 + [True] * 2
    assert [CountDisplay("en").all_at_least(n, 30) for n in (29, 30)] == [False, True]
    assert not shown.all_at_least(3, 2)  # suppressed
    assert CountDisplay("en", DisclosureRule(min_count=5, rounding=1)).all_at_least(30, 30)


def test_a_region_clips_the_viewers_overview_map_without_filtering_its_events(lone):
    import json
    import re

    client = lone.app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {lone.tokens['viewer']}"

    def cells(url: str) -> dict:
        document = client.get(url).get_data(as_text=True)
        found = {}
        for match in re.finditer(r'_add\((\{"features": .*?\})\);\n', document):
            collection = json.loads(match.group(1))
            for feature in collection.get("features", []):
                if "count" in feature.get("properties", {}):
                    ring = feature["geometry"]["coordinates"][0]
                    found[tuple(round(v, 5) for v in ring[0])] = int(feature["properties"]["count"])
        return found

    national = cells("/maps/overview?quarter=2025Q3")
    regional = cells("/maps/overview?quarter=2025Q3&region=Capitale")
    assert national and regional and len(regional) < len(national)
    assert all(national.get(k) == v for k, v in regional.items()), "a regional cell counts other events"
