"""Interception event files read as text cells (CSV, XLSX, GeoJSON, GeoPackage), bounded before they are read.

The store's import pipeline (:mod:`geo_ibm.store.imports`) validates what these readers return;
here every file-level problem (size, encoding, header, columns, rows) is refused with the file
named.
"""
from __future__ import annotations

import datetime
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import CrsError, Problem, ValidationError
from geo_ibm.importlimits import ImportLimits, import_limits
from geo_ibm.io.vectors import PathLike, ensure_working_crs, vector_source

EVENT_TABLE_SUFFIXES = (".csv", ".txt", ".xlsx", ".geojson", ".json", ".gpkg")

ROW_ERRORS = "row_errors"
"""Key of ``DataFrame.attrs`` where the CSV reader puts ``{row: reason}`` for the records it could not
split into the header's columns (they come with empty cells)."""


def read_event_table(path: PathLike, *, layer: str | None = None, limits: ImportLimits | None = None,
                     columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Read an interception event file as text cells, keeping each row's number as the user sees it.

    Formats, chosen by file suffix:

    - CSV (``.csv``/``.txt``): UTF-8 with or without BOM, else Latin-1 (a UTF-16 or UTF-32
      file is refused by name); ``,`` or ``;`` delimiter, sniffed from the header line. Every
      cell is read as text. A record with fewer cells than the header is padded with empty
      ones; one with more comes with empty cells and a reason in ``frame.attrs["row_errors"]``.
    - XLSX (``.xlsx``): the sheet named ``events`` if there is one, else the first sheet;
      the first non-empty row is the header. Date cells become ISO 8601 text, whole numbers
      lose their ``.0``.
    - GeoJSON / GeoPackage (``.geojson``/``.json``/``.gpkg``): point features; the geometry
      becomes ``x``/``y`` columns in EPSG:2169. A feature without a point geometry gets
      ``x``/``y`` missing and a reason in the ``_geometry_error`` column.

    CSV and XLSX cells come as pandas' pyarrow-backed string dtype (never missing; an empty
    cell is ``""``).

    Row numbers (the index, named ``row``): for CSV and XLSX the spreadsheet row number,
    header = row 1, so the first data row is row 2 (a CSV record with a line break inside
    quotes is one row, as in a spreadsheet); blank rows keep their number and are dropped.
    For GeoJSON and GeoPackage the 1-based feature number.

    Parameters
    ----------
    limits
        File size, columns, rows and record size accepted (default
        :func:`geo_ibm.importlimits.import_limits`); each is checked before the data that
        would exceed it is held in memory.
    columns
        Keep only the columns with these names (trimmed, any letter case); a CSV file's other
        columns are not even converted. Rows blank in these columns are dropped.

    Raises
    ------
    ValidationError
        If the file is missing, too large, has an unsupported suffix, too many columns or
        rows, or cannot be parsed at all; a GeoJSON or GeoPackage layer without a CRS or with
        one that cannot be converted to EPSG:2169.
    """
    limits = import_limits() if limits is None else limits
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in EVENT_TABLE_SUFFIXES:
        if path.name.lower().endswith((".osm", ".osm.pbf", ".pbf")):
            raise ValidationError(f"{path}: an OpenStreetMap extract, not an event file; "
                                  "use `geo-ibm roads import FILE` to install it as the road network")
        raise ValidationError(
            f"{path}: unsupported event file type {suffix!r}; use one of {', '.join(EVENT_TABLE_SUFFIXES)}"
        )
    size = path.stat().st_size
    if size > limits.file_bytes:
        raise ValidationError(f"{path.name}: the file has {_mib(size)}, more than the {_mib(limits.file_bytes)} "
                              "accepted; split it", [Problem("file too large", file=path.name, value=size)])
    wanted = None if columns is None else {str(c).strip().lower() for c in columns}
    if suffix in {".csv", ".txt"}:
        return _read_event_csv(path, limits, wanted=wanted)
    if suffix == ".xlsx":
        frame = _read_event_xlsx(path, limits)
    else:
        frame = _read_event_vector(path, layer=layer, limits=limits)
    if wanted is None:
        return frame
    return frame[[c for c in frame.columns if str(c).strip().lower() in wanted]]


def _mib(size: int) -> str:
    """A size in bytes as a person reads it: KiB below 1 MiB, MiB above."""
    if size < 2**20:
        return f"{size / 1024:,.0f} KiB"
    return f"{size / 2**20:,.1f} MiB" if size < 10 * 2**20 else f"{size / 2**20:,.0f} MiB"


def _sniff_delimiter(header: str) -> str:
    """``;`` or ``,``: whichever splits the header line (outside quotes) into more fields."""
    counts = {";": 0, ",": 0}
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return ";" if counts[";"] > counts[","] else ","


_WIDE_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"), (b"\xfe\xff", "UTF-16"),
              (b"\xff\xfe", "UTF-16"))


def _wide_encoding(head: bytes) -> str | None:
    """``UTF-16`` or ``UTF-32`` when a file's first bytes say so: a byte-order mark, or NUL bytes at
    every second (fourth) place, as Latin text in those encodings has."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return name
    sample = np.frombuffer(head[: min(len(head), 4096) // 4 * 4], dtype=np.uint8)
    if len(sample) < 8:
        return None
    zero = [float((sample[k::4] == 0).mean()) for k in range(4)]
    if (min(zero[1:]) > 0.9 and zero[0] < 0.1) or (min(zero[:3]) > 0.9 and zero[3] < 0.1):
        return "UTF-32"
    even, odd = (zero[0] + zero[2]) / 2, (zero[1] + zero[3]) / 2
    if (odd > 0.5 and even < 0.1) or (even > 0.5 and odd < 0.1):
        return "UTF-16"
    return None


def _csv_header(path: Path, limits: ImportLimits) -> tuple[list[str], str]:
    """The header cells and the delimiter; the size and width of the header are checked here."""
    import csv

    with path.open("rb") as fh:
        head = fh.read(limits.header_bytes + 1)
    wide = _wide_encoding(head)
    if wide:
        raise ValidationError(f"{path.name}: the file is {wide}; save it as UTF-8 CSV (in Excel: \"CSV UTF-8\")",
                              [Problem(f"text encoding {wide}", file=path.name)])
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    line = head[: min(ends)] if ends else head
    try:
        header = line.decode("utf-8")
    except UnicodeDecodeError:
        header = line.decode("latin-1")
    if not header.strip():
        raise ValidationError(f"{path}: the file is empty or its first line (the header) is blank")
    sep = _sniff_delimiter(header)
    names = next(csv.reader([header], delimiter=sep))
    if len(names) > limits.columns:
        raise ValidationError(f"{path.name}: the header has {len(names):,}{'' if ends else ' or more'} columns, more "
                              f"than the {limits.columns} accepted",
                              [Problem("too many columns", file=path.name, row=1, value=len(names))])
    if not ends and len(head) > limits.header_bytes:
        raise ValidationError(f"{path.name}: the header line is longer than {limits.header_bytes // 1024} KiB",
                              [Problem("header line too long", file=path.name, row=1)])
    # pandas renamed a repeated header to "name.1" silently; the user must hear of it.
    _refuse_duplicate_columns(names, file=path.name)
    return names, sep


def _read_event_csv(path: Path, limits: ImportLimits, *, wanted: set[str] | None) -> pd.DataFrame:
    names, sep = _csv_header(path, limits)
    include = [k for k, n in enumerate(names) if wanted is None or n.strip().lower() in wanted]
    try:
        table, numbers, too_long = _arrow_csv(path, width=len(names), sep=sep, encoding="utf8", limits=limits,
                                              include=include)
    except _NotUtf8:
        table, numbers, too_long = _arrow_csv(path, width=len(names), sep=sep, encoding="latin-1", limits=limits,
                                              include=include)
    shown = [names[k] if names[k].strip() else f"column {k + 1}" for k in include]
    frame = _drop_blank_rows(table.rename_columns(shown), numbers, keep=np.array(sorted(too_long), dtype=np.int64))
    if too_long:
        frame.attrs[ROW_ERRORS] = {n: f"row has {k} fields; the header has {len(names)}" for n, k in too_long.items()}
    return frame


class _NotUtf8(Exception):
    """The CSV file is not UTF-8 (it is then read as Latin-1)."""


def _arrow_csv(path: Path, *, width: int, sep: str, encoding: str, limits: ImportLimits,
               include: list[int]) -> tuple[Any, np.ndarray, dict[int, int]]:
    """Every record after the header, as string columns, with its row number (sorted) and the long rows' widths.

    Records are read in blocks; the row limit is checked after each block. A short record is
    padded with empty cells (re-read from its own text, padded with delimiters); a long one
    becomes an empty record whose row number maps to its field count.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [f"c{i}" for i in range(width)]
    padded = io.StringIO()
    padded_numbers: list[int] = []
    too_long: dict[int, int] = {}
    state = {"read": 0, "over": False}

    def odd_row(row: Any) -> str:
        if row.number is None:
            return "error"
        text = row.text or ""
        if row.actual_columns > width:
            too_long[row.number] = row.actual_columns
            text = ""
        missing = width - (row.actual_columns if text.strip() else 1)
        padded.write(text + sep * missing + "\n")
        padded_numbers.append(row.number)
        if state["read"] + len(padded_numbers) > limits.rows:
            state["over"] = True
            return "error"
        return "skip"

    types = {c: pa.string() for c in columns}
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False,
                                   include_columns=[columns[k] for k in include])
    parse = pacsv.ParseOptions(delimiter=sep, newlines_in_values=True, ignore_empty_lines=False,
                               invalid_row_handler=odd_row)
    # One thread: the row handler learns row numbers only then (and the machine is shared).
    options = pacsv.ReadOptions(use_threads=False, block_size=limits.record_bytes, column_names=columns, skip_rows=1,
                                encoding=encoding)
    batches = []
    try:
        with pacsv.open_csv(path, read_options=options, parse_options=parse, convert_options=convert) as reader:
            for batch in reader:
                state["read"] += batch.num_rows
                if state["read"] + len(padded_numbers) > limits.rows:
                    state["over"] = True
                    break
                batches.append(batch)
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "invalid UTF8" in text and encoding == "utf8":
            raise _NotUtf8() from None
        if not state["over"]:
            if "straddling" in text or "block size" in text:
                raise ValidationError(f"{path.name}: a record is longer than {_mib(limits.record_bytes)}; check the "
                                      "quotes (an unclosed quote makes the rest of the file one cell)",
                                      [Problem("record too long", file=path.name)]) from None
            raise ValidationError(f"{path.name}: cannot read as CSV (delimiter {sep!r}, {encoding}): {text}") from None
    if state["over"]:
        raise ValidationError(f"{path.name}: more than {limits.rows:,} data rows; split the file",
                              [Problem("too many rows", file=path.name, row=limits.rows + 2)])
    main = pa.Table.from_batches(batches, schema=pa.schema([(columns[k], pa.string()) for k in include]))
    total = main.num_rows + len(padded_numbers)
    numbers = np.arange(2, total + 2, dtype=np.int64)
    if not padded_numbers:
        return main, numbers, too_long
    odd = np.asarray(padded_numbers, dtype=np.int64)
    keep = np.ones(total, dtype=bool)
    keep[odd - 2] = False
    # Padding fixes a short record's width unless its padding lands inside a quote it opened and
    # never closed: such a record (the first one, if it swallows those after it) refuses the file.
    unsplit: list[int] = []  # records of the padded text (pyarrow counts records, not quoted line breaks)

    def unclosed(row: Any) -> str:
        if row.number is not None:
            unsplit.append(row.number)
        return "skip"

    try:
        extra = pacsv.read_csv(io.BytesIO(padded.getvalue().encode("utf-8")),
                               read_options=pacsv.ReadOptions(use_threads=False, column_names=columns,
                                                              block_size=limits.record_bytes + width * len(sep) + 1),
                               parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True,
                                                                ignore_empty_lines=False, invalid_row_handler=unclosed),
                               convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise ValidationError(f"{path.name}: cannot read as CSV (delimiter {sep!r}, {encoding}): {exc}",
                              [Problem("not CSV", file=path.name)]) from None
    if unsplit or extra.num_rows != len(odd):
        raise _unsplit_record(path.name, [padded_numbers[min(n, len(odd)) - 1] for n in unsplit[:1]])
    order = np.argsort(np.concatenate([numbers[keep], odd]), kind="stable")
    table = pa.concat_tables([main, extra]).take(pa.array(order))
    return table, numbers, too_long


def _unsplit_record(file: str, rows: list[int]) -> ValidationError:
    """The error for a short record that padding with empty cells cannot split (an unclosed quote)."""
    reason = "cannot be split into the header's columns: a quote opened in a cell is not closed"
    if not rows:
        return ValidationError(f"{file}: a record {reason}; check the quotes", [Problem(reason, file=file)])
    return ValidationError(f"{file}: row {rows[0]} {reason} (it runs to the end of the file); check its quotes",
                           [Problem(reason, file=file, row=rows[0])])


def _refuse_duplicate_columns(names: list[str], *, file: str) -> None:
    """Raise if two header cells name the same column (ignoring case and surrounding spaces)."""
    seen: dict[str, int] = {}
    problems = []
    for number, name in enumerate(names, start=1):
        key = str(name).strip().lower()
        if not key:
            continue
        if key in seen:
            problems.append(Problem(f"column {number} repeats column {seen[key]}", file=file, row=1,
                                    column=str(name).strip()))
        else:
            seen[key] = number
    if problems:
        raise ValidationError(f"{file}: the header names a column more than once", problems)


def _drop_blank_rows(table: Any, numbers: np.ndarray, *, keep: np.ndarray) -> pd.DataFrame:
    """The table as a DataFrame indexed by row number, without the rows whose every cell is blank
    (except the rows numbered in ``keep``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows and table.num_columns:
        # A row is blank when every cell is: each column is only looked at in the rows still
        # blank in the columns before it (after the first, usually none).
        candidates = np.arange(table.num_rows)
        for name in table.column_names:
            cells = table.column(name)
            if len(candidates) < table.num_rows:
                cells = cells.take(pa.array(candidates))
            empty = np.asarray(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(cells)), 0), dtype=bool)
            candidates = candidates[empty]
            if not len(candidates):
                break
        drop = np.zeros(table.num_rows, dtype=bool)
        drop[candidates] = True
        if len(keep):
            drop[np.searchsorted(numbers, keep)] = False
        if drop.any():
            table = table.filter(pa.array(~drop))
            numbers = numbers[~drop]
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow"),
                                          pa.large_string(): pd.StringDtype("pyarrow")}.get)
    frame.index = pd.Index(numbers, name="row")
    return frame


def _xlsx_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


XLSX_MAX_UNCOMPRESSED = 1 << 30
"""Largest total uncompressed size of an XLSX file's parts (a zip bomb stops here)."""

_XLSX_CHUNK_ROWS = 20_000
"""Rows kept as Python lists before they become columns (bounding the memory of a big sheet)."""


def _read_event_xlsx(path: Path, limits: ImportLimits) -> pd.DataFrame:
    import zipfile

    import openpyxl
    import pyarrow as pa

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationError(f"{path.name}: cannot read as an XLSX workbook: {exc}") from exc
    if unpacked > XLSX_MAX_UNCOMPRESSED:
        raise ValidationError(f"{path.name}: the workbook unpacks to {unpacked / 2**20:,.0f} MiB, more than the "
                              f"{XLSX_MAX_UNCOMPRESSED / 2**20:,.0f} MiB accepted; export the events sheet as CSV")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors
        raise ValidationError(f"{path}: cannot read as an XLSX workbook: {exc}") from exc
    header: list[str] | None = None
    chunks: list[Any] = []
    records: list[list[str]] = []
    numbers: list[int] = []

    def flush() -> None:
        assert header is not None
        width = len(header)
        cells = [(r + [""] * width)[:width] for r in records]
        chunks.append(pa.table({f"c{i}": pa.array([r[i] for r in cells], type=pa.string()) for i in range(width)}))
        records.clear()

    try:
        names = {name.lower(): name for name in book.sheetnames}
        sheet = book[names.get("events", book.sheetnames[0])]
        # The sheet's declared size is the file's own claim (a 1.5 kB file can declare a million
        # rows by 16,384 columns): read only the cells that are there.
        sheet.reset_dimensions()
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            width = len(values)
            while width and values[width - 1] is None:
                width -= 1
            if width > limits.columns:
                raise ValidationError(
                    f"{path.name}: row {number} of sheet {sheet.title!r} has {width:,} columns, more than "
                    f"the {limits.columns} accepted",
                    [Problem("too many columns", file=path.name, row=number, value=width)],
                )
            if not width:
                continue
            cells = [_xlsx_cell(v) for v in values[:width]]
            if header is None:
                if any(c.strip() for c in cells):
                    header = cells
                    while header and not header[-1].strip():
                        header.pop()
                    _refuse_duplicate_columns(header, file=path.name)
                continue
            if any(c.strip() for c in cells):
                if len(numbers) >= limits.xlsx_rows:
                    raise ValidationError(
                        f"{path.name}: more than {limits.xlsx_rows:,} rows in sheet {sheet.title!r}; export the "
                        "events sheet as CSV (any number of rows up to the import limit) or split it",
                        [Problem("too many rows", file=path.name, row=number)])
                records.append(cells)
                numbers.append(number)
                if len(records) >= _XLSX_CHUNK_ROWS:
                    flush()
    finally:
        book.close()
    if header is None:
        raise ValidationError(f"{path}: the sheet {sheet.title!r} is empty (no header row)")
    flush()
    table = pa.concat_tables(chunks).rename_columns([h.strip() or f"column {i + 1}" for i, h in enumerate(header)])
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    frame.index = pd.Index(np.asarray(numbers, dtype=np.int64), name="row")
    return frame


def _read_event_vector(path: Path, *, layer: str | None, limits: ImportLimits) -> pd.DataFrame:
    import pyogrio
    import shapely

    source = vector_source(path)
    try:
        if layer is None and path.suffix.lower() == ".gpkg":
            # The first layer with geometry: a styled GeoPackage also holds the layer_styles table.
            layer = next((str(n) for n, g in pyogrio.list_layers(source) if g is not None), None)
        info = pyogrio.read_info(source, layer=layer)
    except Exception as exc:
        raise ValidationError(f"{path.name}: cannot read as a vector file: {exc}") from exc
    if len(info["fields"]) > limits.columns:
        raise ValidationError(f"{path.name}: the layer has {len(info['fields']):,} fields, more than the "
                              f"{limits.columns} accepted", [Problem("too many columns", file=path.name)])
    if info["features"] > limits.rows:
        raise ValidationError(f"{path.name}: the layer has {info['features']:,} features, more than the "
                              f"{limits.rows:,} accepted; split it", [Problem("too many rows", file=path.name)])
    try:
        gdf = pyogrio.read_dataframe(source, layer=layer)
    except Exception as exc:
        raise ValidationError(f"{path.name}: cannot read as a vector file: {exc}") from exc
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ValidationError(f"{path.name}: the layer has no geometry column; expected point features",
                              [Problem("no geometry", file=path.name, column="geometry")])
    # A file-level refusal naming the file (not its folder: the store shows an upload's own name
    # in its place), with the problem listed as for every other one.
    if gdf.crs is None:
        reason = "the layer has no CRS; expected EPSG:2169 or EPSG:4326"
        raise ValidationError(f"{path.name}: {reason}", [Problem(reason, file=path.name, column="geometry")])
    try:
        geoms = ensure_working_crs(gdf, name=f"{path.name}: the layer").geometry.to_numpy()
    except CrsError as exc:
        raise ValidationError(str(exc), [Problem("CRS cannot be converted to EPSG:2169", file=path.name,
                                                 column="geometry", value=gdf.crs.to_string())]) from None
    frame = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name]))
    missing = pd.isna(geoms)
    is_point = np.zeros(len(geoms), dtype=bool)
    is_point[~missing] = (shapely.get_type_id(geoms[~missing]) == 0) & ~shapely.is_empty(geoms[~missing])
    x = np.full(len(geoms), np.nan)
    y = np.full(len(geoms), np.nan)
    x[is_point] = shapely.get_x(geoms[is_point])
    y[is_point] = shapely.get_y(geoms[is_point])
    reasons = np.full(len(geoms), None, dtype=object)
    for i in np.flatnonzero(~is_point):
        kind = "missing or empty" if missing[i] or geoms[i].is_empty else f"a {geoms[i].geom_type}"
        reasons[i] = f"geometry is {kind}; expected a point"
    lower = {str(c).strip().lower() for c in frame.columns}
    for name in ("x", "y", "easting", "northing", "lat", "lon", "latitude", "longitude", "lng", "long"):
        if name in lower:
            # The geometry is the location; attribute copies would make the columns ambiguous.
            frame = frame.drop(columns=[c for c in frame.columns if str(c).strip().lower() == name])
    frame["x"] = x
    frame["y"] = y
    if (~is_point).any():
        frame["_geometry_error"] = reasons
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame


