"""Report tables: the library's own results, checked by pandas recounts, and the Excel workbook."""
from __future__ import annotations

import io
from datetime import datetime, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from openpyxl import load_workbook

from geo_ibm import layers, tables
from geo_ibm.bordergeo import border_distance_profile
from geo_ibm.errors import ValidationError
from geo_ibm.hotspots import hotspots_from_events
from geo_ibm.settings import OSM_ATTRIBUTION, WORKING_CRS
from geo_ibm.trends import hour_weekday, quarter_change


@pytest.fixture(scope="module")
def ref() -> dict[str, gpd.GeoDataFrame]:
    return {
        "outline": layers.luxembourg_outline(),
        "borders": layers.internal_borders(),
        "crossings": layers.crossing_points(),
        "cantons": layers.cantons(),
    }


@pytest.fixture(scope="module")
def events() -> gpd.GeoDataFrame:
    """800 points in Luxembourg over three quarters of 2025; a quarter of them in one tight cluster."""
    rng = np.random.default_rng(11)
    area = layers.luxembourg_outline().geometry.iloc[0]
    minx, miny, maxx, maxy = area.bounds
    xy = np.column_stack([rng.uniform(minx, maxx, 3000), rng.uniform(miny, maxy, 3000)])
    xy = xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])][:800]
    xy[:200] = np.column_stack([rng.normal(92_000, 300, 200), rng.normal(101_000, 300, 200)])
    when = pd.Timestamp("2025-01-01", tz="Europe/Luxembourg") + pd.to_timedelta(rng.uniform(0, 270, 800), unit="D")
    return gpd.GeoDataFrame({"observed_at": when, "persons": rng.integers(1, 5, 800)},
                            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=WORKING_CRS)


@pytest.fixture(scope="module")
def report(events, ref) -> tables.ReportTables:
    return tables.report_tables(events, **ref, cell=500.0)


def _canton_of(events: gpd.GeoDataFrame, cantons: gpd.GeoDataFrame) -> pd.Series:
    joined = gpd.sjoin(events[["geometry"]], cantons[["canton", "region", "geometry"]], predicate="within", how="left")
    return joined[~joined.index.duplicated()]


def test_every_table_is_built(report):
    assert list(report.tables) == list(tables.TABLE_NAMES)
    assert report.notes == []


@pytest.mark.parametrize("by", ["region", "canton"])
def test_quarter_tables_are_the_library_result_and_recount(report, events, ref, by):
    table = report.tables[f"{by}_quarters"]
    expected = quarter_change(events, by=by, cantons=ref["cantons"]).rename(columns={"unit": by})
    if by == "canton":
        regions = ref["cantons"].set_index("canton")["region"]
        assert (table["region"] == table["canton"].map(regions)).all()
        table = table.drop(columns="region")
    pd.testing.assert_frame_equal(
        table.sort_values(["quarter", by]).reset_index(drop=True),
        expected.sort_values(["quarter", by]).reset_index(drop=True),
    )
    # Independent recount: point-in-polygon with geopandas, quarters with pandas.
    placed = _canton_of(events, ref["cantons"])
    quarter = events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None).dt.to_period("Q").astype(str)
    recount = pd.crosstab(placed[by], quarter)
    for row in table.itertuples(index=False):
        unit = getattr(row, by)
        got = recount.loc[unit, row.quarter] if unit in recount.index else 0
        assert row.count == got
    assert set(table["quarter"]) == {"2025Q2", "2025Q3"}


def test_hour_weekday_table(report, events):
    table = report.tables["hour_weekday"]
    grid = hour_weekday(events)
    assert list(table["weekday"]) == list(grid.index)
    assert table[[str(h) for h in range(24)]].to_numpy().tolist() == grid.to_numpy().tolist()
    local = events["observed_at"].dt.tz_convert("Europe/Luxembourg")
    monday_8 = int(((local.dt.day_of_week == 0) & (local.dt.hour == 8)).sum())
    assert table.loc[table["weekday"] == "Mon", "8"].item() == monday_8
    assert table["total"].sum() == len(events)


def test_border_tables_match_the_profile(report, events, ref):
    profile = border_distance_profile(events, borders=ref["borders"], crossings=ref["crossings"])
    pd.testing.assert_frame_equal(report.tables["border_distance"], profile.by_neighbour.reset_index(drop=True))
    crossing = report.tables["crossing_distance"]
    assert crossing["events"].sum() == profile.by_crossing["events"].sum() == len(events)
    # Crossings without any event are left out; all bands of a kept crossing stay.
    assert (crossing.groupby("crossing_id")["events"].sum() > 0).all()
    assert set(crossing["crossing_id"]) == set(profile.by_crossing.loc[profile.by_crossing["events"] > 0, "crossing_id"])


def test_top_hotspots_are_the_highest_gi_cells(report, events, ref):
    top = report.tables["top_hotspots"]
    gi = hotspots_from_events(events, study_area=ref["outline"], cell=500.0)
    hot = gi[gi["gi_bin_fdr"] > 0].sort_values("gi_z", ascending=False)
    assert len(top) == min(20, len(hot)) and len(top) > 0
    assert list(top["cell_id"]) == list(hot["cell_id"].head(20))
    assert list(top["rank"]) == list(range(1, len(top) + 1))
    assert np.all(np.diff(top["gi_z"].to_numpy()) <= 0)
    # Brute-force count of the first cell and its canton.
    first = gi.set_index("cell_id").loc[top["cell_id"].iloc[0]]
    inside = events.geometry.within(first.geometry).sum()
    assert top["events"].iloc[0] == first["count"] == inside
    centre = shapely.Point(top["x"].iloc[0], top["y"].iloc[0])
    canton = ref["cantons"][ref["cantons"].contains(centre)]
    assert top["canton"].iloc[0] == canton["canton"].item()
    assert top["region"].iloc[0] == canton["region"].item()
    assert 49.4 < top["lat"].iloc[0] < 50.2 and 5.7 < top["lon"].iloc[0] < 6.6


def test_single_quarter_leaves_a_note(events, ref):
    q1 = events[events["observed_at"] < pd.Timestamp("2025-04-01", tz="Europe/Luxembourg")]
    result = tables.report_tables(q1, **ref)
    assert "region_quarters" not in result.tables and "canton_quarters" not in result.tables
    assert any(n.startswith("region_quarters: events span a single quarter") for n in result.notes)
    assert "hour_weekday" in result.tables


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": ("hour_weekday", "nope")}, "unknown table 'nope'"),
    ],
)
def test_bad_table_names(events, ref, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        tables.report_tables(events, **ref, **kwargs)


def test_empty_events_refused(events, ref):
    with pytest.raises(ValidationError, match="no events match"):
        tables.report_tables(events.iloc[:0], **ref)


def test_xlsx_has_about_and_one_sheet_per_table(report):
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    data = tables.tables_to_xlsx(report.tables, period="2025-01-01 – 2025-09-27", filters={"region": "Nord"},
                                 events=800, notes=["x: not computed"], generated_at=stamp)
    assert data[:2] == b"PK"
    wb = load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["About"] + [tables.SHEET_NAMES[n] for n in tables.TABLE_NAMES]
    about = {row[0]: row[1] for row in wb["About"].iter_rows(values_only=True) if row[0]}
    assert about["Data period"] == "2025-01-01 – 2025-09-27"
    assert about["Filters"] == "region=Nord"
    assert about["Events"] == "800"
    assert about["Generated (UTC)"] == "2026-01-02 03:04:05"
    assert about["Map data"] == OSM_ATTRIBUTION
    assert about["Not computed"] == "x: not computed"
    for name in tables.TABLE_NAMES:
        ws = wb[tables.SHEET_NAMES[name]]
        frame = report.tables[name]
        header = [c.value for c in ws[1]]
        assert header == [str(c) for c in frame.columns]
        assert ws.max_row == len(frame) + 1
        assert ws.freeze_panes == "A2"
        assert ws["A1"].font.bold
        assert ws.auto_filter.ref.startswith("A1:")
    ws = wb["Hour x weekday"]
    values = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert values == report.tables["hour_weekday"].astype(object).to_numpy().tolist()
    widths = [wb["Top hotspots"].column_dimensions[c].width for c in "ABCD"]
    assert all(6 <= w <= 50 for w in widths)


def test_xlsx_values_round_trip_with_missing_numbers():
    frame = pd.DataFrame({"unit": ["a", "b"], "change_pct": [12.5, np.nan], "significant": [np.True_, np.False_],
                          "count": np.array([3, 0], dtype=np.int64)})
    wb = load_workbook(io.BytesIO(tables.tables_to_xlsx({"region_quarters": frame})))
    rows = list(wb["Regions QoQ"].iter_rows(min_row=2, values_only=True))
    assert rows == [("a", 12.5, True, 3), ("b", None, False, 0)]


def test_xlsx_refuses_non_frames():
    with pytest.raises(ValidationError, match="table 'x' must be a DataFrame"):
        tables.tables_to_xlsx({"x": [1, 2]})
    with pytest.raises(ValidationError, match="no tables"):
        tables.tables_to_xlsx({})


def test_csv_bytes(report):
    data = tables.table_csv(report.tables["hour_weekday"])
    assert data.startswith("\ufeff".encode())
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert back["total"].sum() == 800


def test_previous_quarter_feeds_only_the_quarter_tables(events, ref):
    quarter = events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None).dt.to_period("Q").astype(str)
    current, before = events[quarter == "2025Q2"], events[quarter == "2025Q1"]
    result = tables.report_tables(current, **ref, previous=before)
    region = result.tables["region_quarters"]
    assert set(region["quarter"]) == {"2025Q2"}
    placed = _canton_of(events, ref["cantons"])
    for row in region.itertuples(index=False):
        assert row.count == int(((placed["region"] == row.region) & (quarter == "2025Q2")).sum())
        assert row.previous == int(((placed["region"] == row.region) & (quarter == "2025Q1")).sum())
    assert result.tables["hour_weekday"]["total"].sum() == len(current)
    assert result.tables["border_distance"]["events"].sum() == len(current)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"quarter": "2025Q1", "region": "Nord", "start": "x", "end": "y"}, {"quarter": "2024Q4", "region": "Nord"}),
        ({"quarter": "2025-q3"}, {"quarter": "2025Q2"}),
    ],
)
def test_previous_quarter_filters(filters, expected):
    assert tables.previous_quarter_filters(filters) == expected


@pytest.mark.parametrize("filters", [{}, {"quarter": "2025Q5"}, {"quarter": "Q1"}])
def test_previous_quarter_filters_refuses_bad_quarters(filters):
    with pytest.raises(ValidationError, match="quarter must look like '2025Q3'"):
        tables.previous_quarter_filters(filters)
