"""Tests for file access (geo_ibm.io): vector round trips and the event-file readers."""
from __future__ import annotations

import datetime

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.events import validate_events
from geo_ibm.io import ensure_working_crs, file_sha256, read_event_table, read_vector, write_table, write_vector

TO_2169 = Transformer.from_crs("EPSG:4326", "EPSG:2169", always_xy=True)
OUTLINE = shapely.box(50_000, 57_000, 107_000, 139_000)
HEADER = ["event_id", "observed_at", "lat", "lon", "location_kind", "persons", "smugglers", "transport_mode", "entry_country", "notes"]
ROWS = [
    ["E1", "14/07/2025 06:30", "49,6116", "6,1319", "motorway", "2", "0", "car", "BE", "Zoé à la gare"],
    ["E2", "2025-07-14T07:00", "49.5", "6.0", "Urban", "1", "1", "van", "fr", ""],
]


def write_csv(path, header, rows, *, sep=",", encoding="utf-8", blank_after=None):
    lines = [sep.join(header)]
    for i, row in enumerate(rows):
        lines.append(sep.join(row))
        if blank_after == i:
            lines.append("")
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


# --- vector files --------------------------------------------------------------------------


def test_vector_round_trip_gpkg_and_geojson(tmp_path):
    gdf = gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=[shapely.Point(80000, 90000), shapely.Point(81000, 91000)], crs=2169)
    back = read_vector(write_vector(gdf, tmp_path / "a.gpkg", layer="pts"), layer="pts")
    assert back.crs.to_epsg() == 2169 and back["name"].tolist() == ["a", "b"]
    back = read_vector(write_vector(gdf, tmp_path / "a.geojson"))
    assert back.crs.to_epsg() == 2169
    assert back.geometry.x.tolist() == pytest.approx([80000, 81000], abs=0.01)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_vector_datetimes_round_trip_without_gdal_warnings(tmp_path, suffix):
    import warnings

    stamps = pd.to_datetime(["2024-01-02 12:56", "2024-07-02 08:00"]).tz_localize("Europe/Luxembourg")
    gdf = gpd.GeoDataFrame({"t": stamps}, geometry=[shapely.Point(80000, 90000), shapely.Point(80001, 90001)], crs=2169)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = read_vector(write_vector(gdf, tmp_path / f"t{suffix}", layer="t"), layer=None)
    assert str(back["t"].dt.tz) == "Europe/Luxembourg"
    assert (back["t"] == stamps).all()
    assert gdf["t"].dt.tz is not None and str(gdf["t"].dt.tz) == "Europe/Luxembourg"  # input untouched


def test_vector_errors(tmp_path):
    with pytest.raises(ValidationError, match="file not found"):
        read_vector(tmp_path / "none.gpkg")
    with pytest.raises(CrsError, match="has no CRS"):
        ensure_working_crs(gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]), name="pts")


# --- CSV -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sep", "encoding"),
    [(";", "latin-1"), (",", "utf-8"), (",", "utf-8-sig"), (";", "utf-8-sig"), ("\t", "utf-8")],
)
def test_csv_encodings_and_delimiters(tmp_path, sep, encoding):
    rows = [[c.replace(",", ".") if sep == "," else c for c in r] for r in ROWS]
    path = write_csv(tmp_path / "e.csv", HEADER, rows, sep=sep, encoding=encoding)
    if sep == "\t":
        # Only , and ; are supported: a tab file reads as one column and fails validation.
        frame = read_event_table(path)
        assert len(frame.columns) == 1
        return
    frame = read_event_table(path)
    assert list(frame.columns) == HEADER
    assert frame.index.name == "row" and frame.index.tolist() == [2, 3]
    assert frame.loc[2, "notes"] == "Zoé à la gare"
    assert frame.loc[3, "entry_country"] == "fr"


def test_csv_row_numbers_count_header_and_blank_lines(tmp_path):
    path = write_csv(tmp_path / "e.csv", HEADER, ROWS + [["E3", "x", "49.6", "6.1", "urban", "1", "0", "car", "BE", ""]],
                     sep=";", encoding="latin-1", blank_after=0)
    frame = read_event_table(path)
    assert frame.index.tolist() == [2, 4, 5]  # line 3 is blank
    _, problems = validate_events(frame, file="e.csv", outline=OUTLINE)
    assert [(p.file, p.row, p.column, p.value) for p in problems] == [("e.csv", 5, "observed_at", "x")]


def test_csv_rows_of_blank_cells_are_dropped_and_rows_with_one_cell_kept(tmp_path):
    rows = [
        ROWS[0],
        [" "] * len(HEADER),  # spaces in every cell: blank
        ["", "", "", "", "", "", "", "", "", "a note"],  # only the last cell: kept
        ["\t"] + [""] * (len(HEADER) - 1),  # a tab alone: blank
        ["", *ROWS[1][1:]],  # no id, the rest given: kept
    ]
    frame = read_event_table(write_csv(tmp_path / "e.csv", HEADER, rows, sep=";"))
    assert frame.index.tolist() == [2, 4, 6]
    assert frame.loc[4, "notes"] == "a note" and frame.loc[6, "event_id"] == "" and frame.loc[6, "persons"] == "1"


def test_csv_quoted_delimiters(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('event_id,notes\n"A,1","said ""hi""; left"\n', encoding="utf-8")
    frame = read_event_table(path)
    assert frame.loc[2, "event_id"] == "A,1"
    assert frame.loc[2, "notes"] == 'said "hi"; left'


def test_csv_bad_file_reports_file_row_column(tmp_path):
    rows = [list(ROWS[0]), list(ROWS[1])]
    rows[1][5] = "0"  # persons
    rows[1][7] = "boat"
    path = write_csv(tmp_path / "bad.csv", HEADER, rows, sep=";", encoding="latin-1")
    _, problems = validate_events(read_event_table(path), file=path.name, outline=OUTLINE)
    text = "\n".join(str(p) for p in problems)
    assert "bad.csv, row 3, column 'persons': persons must be at least 1 (value '0')" in text
    assert "bad.csv, row 3, column 'transport_mode': unknown transport_mode" in text


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_csv_is_refused(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(ValidationError, match="empty"):
        read_event_table(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "e.ods").write_bytes(b"x")
    with pytest.raises(ValidationError, match=r"unsupported event file type '\.ods'"):
        read_event_table(tmp_path / "e.ods")
    with pytest.raises(ValidationError, match="file not found"):
        read_event_table(tmp_path / "missing.csv")


# --- XLSX ----------------------------------------------------------------------------------


def write_xlsx(path, header, rows, *, sheet="Sheet", extra_first=False):
    book = openpyxl.Workbook()
    ws = book.active
    if extra_first:
        ws.title = "readme"
        ws.append(["this sheet is not the data"])
        ws = book.create_sheet("Events")
    else:
        ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def test_xlsx_cells_and_row_numbers(tmp_path):
    rows = [
        [1042.0, datetime.datetime(2025, 7, 14, 6, 30), 49.6116, 6.1319, "motorway", 2, 0, "car", "BE", None],
        [None] * 10,
        ["E2", "14/07/2025 07:00", 49.5, 6.0, "urban", 2.5, 0, "van", "FR", "note"],
    ]
    path = write_xlsx(tmp_path / "e.xlsx", HEADER, rows, extra_first=True)
    frame = read_event_table(path)
    assert frame.index.tolist() == [2, 4]
    assert frame.loc[2, "event_id"] == "1042"
    assert frame.loc[2, "observed_at"] == "2025-07-14T06:30:00"
    valid, problems = validate_events(frame, file="e.xlsx", outline=OUTLINE)
    assert [(p.row, p.column, p.value) for p in problems] == [(4, "persons", "2.5")]
    assert valid.loc[2, "observed_at"] == pd.Timestamp("2025-07-14T04:30Z")
    x, y = TO_2169.transform(6.1319, 49.6116)
    assert (valid.geometry.x.iloc[0], valid.geometry.y.iloc[0]) == pytest.approx((x, y))


def test_broken_xlsx_is_refused(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValidationError, match="cannot read as an XLSX workbook"):
        read_event_table(path)


# --- GeoJSON and GeoPackage ----------------------------------------------------------------


def event_layer(crs):
    attrs = {h: [r[i] for r in ROWS] for i, h in enumerate(HEADER) if h not in ("lat", "lon")}
    pts = [shapely.Point(6.1319, 49.6116), shapely.Point(6.0, 49.5)]
    gdf = gpd.GeoDataFrame(attrs, geometry=pts, crs="EPSG:4326")
    return gdf.to_crs(crs)


@pytest.mark.parametrize(("suffix", "crs"), [(".geojson", "EPSG:4326"), (".gpkg", "EPSG:2169"), (".gpkg", "EPSG:4326")])
def test_vector_event_files_give_xy_in_2169(tmp_path, suffix, crs):
    gdf = event_layer(crs)
    path = tmp_path / f"e{suffix}"
    gdf.to_file(path, engine="pyogrio")
    frame = read_event_table(path)
    assert frame.index.tolist() == [1, 2]
    x, y = TO_2169.transform(6.0, 49.5)
    assert frame.loc[2, "x"] == pytest.approx(x, abs=0.01) and frame.loc[2, "y"] == pytest.approx(y, abs=0.01)
    valid, problems = validate_events(frame, file=path.name, outline=OUTLINE)
    assert problems == [] and len(valid) == 2


def test_geojson_non_point_feature_is_a_problem_with_its_feature_number(tmp_path):
    gdf = event_layer("EPSG:4326")
    gdf.loc[1, "geometry"] = shapely.Polygon([(6, 49.5), (6.1, 49.5), (6.1, 49.6)])
    path = tmp_path / "e.geojson"
    gdf.to_file(path, engine="pyogrio")
    _, problems = validate_events(read_event_table(path), file="e.geojson", outline=OUTLINE)
    assert [(p.row, p.column) for p in problems] == [(2, "geometry")]
    assert "Polygon; expected a point" in problems[0].reason


def test_write_table_and_sha256(tmp_path):
    path = write_table(pd.DataFrame({"a": ["é"], "reason": ["x"]}), tmp_path / "sub" / "t.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfa,reason")
    import hashlib

    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- hostile files: what an upload can make the server do -------------------------------


def test_vrt_document_named_geojson_cannot_read_other_files(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("event_id,observed_at,lat,lon\nhunter2,2025-01-01,49.6,6.1\n", encoding="utf-8")
    evil = tmp_path / "evil.geojson"
    evil.write_text(
        f"<OGRVRTDataSource><OGRVRTLayer name='secret'><SrcDataSource>{secret}</SrcDataSource>"
        "</OGRVRTLayer></OGRVRTDataSource>",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="not a GeoJSON") as info:
        read_event_table(evil)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValidationError, match="not a GeoJSON"):
        read_vector(evil)


def test_sqlite_file_that_is_not_a_geopackage_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "plain.gpkg"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (event_id TEXT)")
    with pytest.raises(ValidationError, match="not a GeoPackage"):
        read_event_table(path)


def test_geopackage_table_without_geometry_is_a_clean_error(tmp_path):
    path = tmp_path / "attrs.gpkg"
    pd.DataFrame({"event_id": ["E1"]}).pipe(
        lambda f: gpd.GeoDataFrame(f, geometry=[shapely.Point(77_000, 75_000)], crs=2169)
    ).to_file(path, layer="events")
    import pyogrio

    pyogrio.write_dataframe(pd.DataFrame({"event_id": ["E2"]}), path, layer="plain", driver="GPKG", append=False)
    with pytest.raises(ValidationError, match="no geometry"):
        read_event_table(path, layer="plain")


def _xlsx_declaring(path, *, dimension, far_cell):
    """A tiny valid workbook whose sheet claims ``dimension`` and has one cell at ``far_cell``."""
    import re
    import zipfile

    base = path.with_suffix(".base.xlsx")
    write_xlsx(base, ["event_id", "x", "y"], [["E1", "77000", "75000"]])
    row = int(re.sub(r"[A-Z]", "", far_cell))
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                text = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>', data.decode())
                text = text.replace(
                    "</sheetData>",
                    f'<row r="{row}"><c r="{far_cell}" t="inlineStr"><is><t>z</t></is></c></row></sheetData>',
                )
                data = text.encode()
            dst.writestr(item, data)
    return path


def test_xlsx_declaring_a_huge_sheet_reads_only_the_cells_it_holds(tmp_path, monkeypatch):
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    # Counted, not timed (it was about 26 minutes of CPU before the fix): the reader reads the
    # sheet's rows as they are in the file, not padded to the 1,048,576 x 16,384 cells it declares.
    # Its two rows hold at most 2 x 16,384 cells (the far one is padded from column A to XFD).
    bound = 2 * 16_384
    cells = [0]
    real = ReadOnlyWorksheet.iter_rows

    def counting(self, *args, **kwargs):
        for row in real(self, *args, **kwargs):
            cells[0] += len(row)
            if cells[0] > bound:  # fail at once, not after billions of padding cells
                raise AssertionError(f"more than {bound} cells read: the declared dimension was used")
            yield row

    monkeypatch.setattr(ReadOnlyWorksheet, "iter_rows", counting)
    path = _xlsx_declaring(tmp_path / "bomb.xlsx", dimension="A1:XFD1048576", far_cell="XFD1048576")
    assert path.stat().st_size < 10_000
    with pytest.raises(ValidationError, match="columns") as info:
        read_event_table(path)
    assert info.value.problems[0].row == 1_048_576
    assert 16_384 <= cells[0] <= bound  # the far row was read (that is what is refused)


def test_xlsx_with_a_wrong_declared_dimension_still_reads_its_cells(tmp_path):
    path = _xlsx_declaring(tmp_path / "odd.xlsx", dimension="A1:C2", far_cell="C4")
    frame = read_event_table(path)
    assert list(frame.index) == [2, 4]
    assert frame.loc[2, "event_id"] == "E1"


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_repeated_header_is_refused(tmp_path, suffix):
    header = ["event_id", "observed_at", "x", "y", "Event_ID "]
    row = ["E1", "2025-01-01 10:00", "77000", "75000", "E2"]
    path = tmp_path / f"dup{suffix}"
    if suffix == ".csv":
        path.write_text(",".join(header) + "\n" + ",".join(row) + "\n", encoding="utf-8")
    else:
        write_xlsx(path, header, [row])
    with pytest.raises(ValidationError, match="more than once") as info:
        read_event_table(path)
    problem = info.value.problems[0]
    assert (problem.row, problem.column) == (1, "Event_ID")
    assert "column 5 repeats column 1" in problem.reason


# --- limits and ragged files (the import pipeline's refusals are tested in test_uploads) ----


def test_quoted_line_breaks_make_one_row_and_later_numbers_follow(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('event_id,notes\nA,"two\nlines"\n\nB,x\n', encoding="utf-8")
    frame = read_event_table(path)
    assert frame.index.tolist() == [2, 4] and frame.loc[2, "notes"] == "two\nlines"


def test_only_the_named_columns_are_read(tmp_path):
    path = write_csv(tmp_path / "e.csv", HEADER, ROWS, sep=";")
    frame = read_event_table(path, columns=[" EVENT_ID"])
    assert list(frame.columns) == ["event_id"] and frame["event_id"].tolist() == ["E1", "E2"]


def test_a_record_longer_than_the_block_is_refused_by_name(tmp_path):
    from geo_ibm.importlimits import ImportLimits

    path = tmp_path / "long.csv"
    path.write_text("event_id,notes\nA,short\nB," + "z" * 5000 + "\nC,x\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="long.csv: a record is longer than 1 KiB"):
        read_event_table(path, limits=ImportLimits(record_bytes=1024))
    assert read_event_table(path).loc[3, "notes"] == "z" * 5000


@pytest.mark.parametrize("data, name", [
    ("a,b\n1,2\n".encode("utf-16-le"), "UTF-16"), ("a,b\n1,2\n".encode("utf-16-be"), "UTF-16"),
    (b"\xff\xfea\x00", "UTF-16"), ("a,b\n1,2\n".encode("utf-32-le"), "UTF-32"), (b"a\x00,b\n1,2\x00\n", None),
])
def test_wide_encodings_are_recognised_and_stray_nul_bytes_are_not_taken_for_one(tmp_path, data, name):
    path = tmp_path / "w.csv"
    path.write_bytes(data)
    if name is None:
        assert list(read_event_table(path).columns) == ["a\x00", "b"]
        return
    with pytest.raises(ValidationError, match=f"w.csv: the file is {name}; save it as UTF-8 CSV"):
        read_event_table(path)


def test_a_saved_frame_comes_back_as_it_was_in_its_own_crs(tmp_path):
    from geo_ibm.io import load_frame, save_frame

    frame = gpd.GeoDataFrame(
        {"cell_id": pd.array([0, 5, 9], dtype="int64"), "gi_bin_fdr": pd.array([3, 0, -2], dtype="int8"),
         "gi_z": [2.9, 0.1, -2.2], "category": ["new hot spot", "no pattern detected", "persistent cold spot"]},
        geometry=[shapely.box(4_000_000, 3_000_000, 4_010_000, 3_010_000), shapely.box(0, 0, 1, 1), None],
        crs="EPSG:3035")
    frame.attrs = {"parameters": {"cell": 10_000}}
    back = load_frame(save_frame(frame, tmp_path / "deep" / "result.parquet"))
    assert back.crs.to_epsg() == 3035 and back.attrs == {}
    pd.testing.assert_frame_equal(pd.DataFrame(back.drop(columns="geometry")),
                                  pd.DataFrame(frame.drop(columns="geometry")))
    assert back.geometry.iloc[0].equals(frame.geometry.iloc[0]) and back.geometry.iloc[2] is None
    assert frame.attrs == {"parameters": {"cell": 10_000}}  # the caller's frame is left alone
    with pytest.raises(ValidationError, match="gone.parquet: file not found"):
        load_frame(tmp_path / "gone.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValidationError, match="bad.parquet: cannot read as GeoParquet"):
        load_frame(tmp_path / "bad.parquet")


_QUOTE_HEADER = "event_id,observed_at,location_kind,persons,smugglers,transport_mode,entry_country,lat,lon"
_QUOTE_ROW = "A1,2025-03-01T10:00:00,motorway,2,1,car,FR,49.6,6.1"


@pytest.mark.parametrize("body, row", [
    ('"B\n', 3),  # the attack: a short record that is an unclosed quote, at the end
    ('B,"2025-03-01\n', 3),  # a quote opened in the second cell of the last record
    (f'"B\n{_QUOTE_ROW}\n', 3),  # in the middle: it swallows the records after it
    (f'B,2025\n"C\n{_QUOTE_ROW}\nD,1\n', 4),  # after another short record (padded: row 3)
    ('B,"two\nlines"\n"C\n', 4),  # after a short record over two lines (rows count records)
])
def test_a_short_record_with_an_unclosed_quote_is_refused_naming_file_and_row(tmp_path, body, row):
    path = tmp_path / "u.csv"
    path.write_text(f"{_QUOTE_HEADER}\n{_QUOTE_ROW}\n{body}", encoding="utf-8")
    with pytest.raises(ValidationError, match=f"^u.csv: row {row} cannot be split into the header's columns: "
                                              "a quote opened in a cell is not closed") as caught:
        read_event_table(path)
    problem = caught.value.problems[0]
    assert (problem.file, problem.row) == ("u.csv", row)


def test_an_unclosed_quote_in_the_header_leaves_a_named_row_problem(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(f'event_id,"observed_at,lat,lon\n{_QUOTE_ROW}\n', encoding="utf-8")
    frame = read_event_table(path)
    assert list(frame.columns) == ["event_id", "observed_at,lat,lon"]
    assert frame.attrs["row_errors"] == {2: "row has 9 fields; the header has 2"}


def test_short_records_with_closed_quotes_are_still_padded(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(f'{_QUOTE_HEADER}\n{_QUOTE_ROW}\nB,"x, y"\n"C\nD"\n', encoding="utf-8")
    frame = read_event_table(path)
    assert frame.index.tolist() == [2, 3, 4]
    assert frame.loc[3, "observed_at"] == "x, y" and frame.loc[4, "event_id"] == "C\nD"
    assert frame.loc[4, "lon"] == "" and "row_errors" not in frame.attrs


_LOCAL_CRS = ('ENGCRS["site grid",EDATUM["site"],CS[Cartesian,2],AXIS["x",east,LENGTHUNIT["metre",1]],'
              'AXIS["y",north,LENGTHUNIT["metre",1]]]')


@pytest.mark.parametrize("crs, message, reason, value", [
    (None, "the layer has no CRS; expected EPSG:2169 or EPSG:4326",
     "the layer has no CRS; expected EPSG:2169 or EPSG:4326", None),
    (_LOCAL_CRS, "the layer is in .*, which cannot be converted to EPSG:2169", "CRS cannot be converted to EPSG:2169",
     "site grid"),
])
def test_a_vector_layer_whose_crs_is_unusable_is_refused_naming_the_file_only(tmp_path, crs, message, reason, value):
    import warnings

    import pyogrio
    from pyproj import CRS

    folder = tmp_path / "scratch-folder"
    folder.mkdir()
    path = folder / "pts.gpkg"
    frame = gpd.GeoDataFrame({"event_id": ["E1"]}, geometry=[shapely.Point(6.1, 49.6)],
                             crs=None if crs is None else CRS(crs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio: 'crs' was not provided
        pyogrio.write_dataframe(frame, path)
    with pytest.raises(ValidationError, match=f"^pts.gpkg: {message}") as caught:
        read_event_table(path)
    assert "scratch-folder" not in str(caught.value)
    problem = caught.value.problems[0]
    assert (problem.file, problem.column, problem.reason) == ("pts.gpkg", "geometry", reason)
    assert problem.value is None if value is None else value in str(problem.value)
