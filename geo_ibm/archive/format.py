"""The partitioned GeoParquet archive on disk: partition files, the manifest, and their validation.

An archive is a folder (or an object-store prefix) holding one GeoParquet file per partition,
in Hive-style folders ``[country=XX/]quarter=2025Q3/part-00000.parquet``, and a
``manifest.json`` listing every partition with its row count, size, SHA-256, bounds and time
range. Each file holds plain ``x``/``y`` float64 columns in the archive's CRS next to a WKB
``geometry`` column with GeoParquet 1.1 metadata, so GDAL, QGIS and geopandas open a partition
as a point layer while the analysis reads only ``x``/``y``/``observed_at``/``persons`` with
pyarrow and never builds a shapely object. ``observed_at`` is a UTC timestamp; quarters are
those of the Europe/Luxembourg wall clock, as in the event store.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyproj import CRS

from geo_ibm import periods
from geo_ibm.errors import CrsError, Problem, ProblemCount, ValidationError

FORMAT_NAME = "geo_ibm-archive"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

MAX_MANIFEST_BYTES = 64 << 20
"""Largest manifest read (about 150,000 partitions of 450 bytes each: tens of billions of events at
the partition sizes an analysis wants); a larger file is refused before it is read into memory."""

MAX_PARTITIONS = 100_000
"""Most partitions an archive writer writes, so that its manifest stays under :data:`MAX_MANIFEST_BYTES`."""

REQUIRED_COLUMNS = ("observed_at", "x", "y", "persons", "geometry")
"""Columns every partition file has; the others (``event_id``, ``region``, ...) are optional."""

TEXT_COLUMNS = ("event_id", "location_kind", "transport_mode", "entry_country", "region", "canton", "country")
"""Optional text columns a partition may carry (written dictionary-encoded)."""

MAX_PROBLEMS_PER_COLUMN = 20
"""Problems listed per file and column; every problem is still counted."""

_WKB_POINT = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])


@dataclass(frozen=True)
class PartitionEntry:
    """One partition file as the manifest lists it.

    ``path`` is relative to the archive root (``/``-separated); ``start_utc``/``end_utc`` are
    the epoch seconds bounding the partition's quarter (every row lies in ``[start, end)``);
    ``time_min``/``time_max`` the first and last event (epoch seconds, ``None`` when empty);
    ``bounds`` the ``(minx, miny, maxx, maxy)`` of its points in the archive CRS.
    """

    path: str
    quarter: str
    country: str | None
    rows: int
    bytes: int
    sha256: str
    bounds: tuple[float, float, float, float] | None
    time_min: int | None
    time_max: int | None
    start_utc: int
    end_utc: int


@dataclass(frozen=True)
class Manifest:
    """The manifest of an archive: where it is, its CRS and its partitions."""

    root: str
    crs: str
    partitions: tuple[PartitionEntry, ...]
    partitioning: tuple[str, ...] = ("quarter",)
    columns: tuple[str, ...] = REQUIRED_COLUMNS
    created: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def bounds(self) -> tuple[float, float, float, float] | None:
        boxes = np.array([p.bounds for p in self.partitions if p.bounds is not None], dtype=float)
        if not len(boxes):
            return None
        return (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max()))

    @property
    def time_range(self) -> tuple[int, int] | None:
        firsts = [p.time_min for p in self.partitions if p.time_min is not None]
        lasts = [p.time_max for p in self.partitions if p.time_max is not None]
        return (min(firsts), max(lasts)) if firsts and lasts else None

    @property
    def quarters(self) -> list[str]:
        return sorted({p.quarter for p in self.partitions})

    @property
    def countries(self) -> list[str]:
        return sorted({p.country for p in self.partitions if p.country is not None})

    def to_json(self) -> dict[str, Any]:
        span = self.time_range
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "crs": self.crs,
            "partitioning": list(self.partitioning),
            "columns": list(self.columns),
            "created": self.created,
            "source": self.source,
            "rows": self.rows,
            "bounds": list(self.bounds) if self.bounds else None,
            "time_min": _iso(span[0]) if span else None,
            "time_max": _iso(span[1]) if span else None,
            **({"extra": self.extra} if self.extra else {}),
            "partitions": [asdict(p) for p in self.partitions],
        }


# --------------------------------------------------------------------------------------------
# file systems: a local folder or any URL pyarrow opens (s3://, gs://, hdfs://)


def archive_filesystem(root: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system and base path of an archive location (local path or URL)."""
    text = os.fspath(root)
    if "://" in text and not text.startswith("file://"):
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ValidationError(f"archive {text}: cannot open this location ({exc})",
                                  [Problem(str(exc), file=text)]) from None
    path = text[len("file://"):] if text.startswith("file://") else text
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def _join(base: str, relative: str) -> str:
    return f"{base.rstrip('/')}/{relative}"


# --------------------------------------------------------------------------------------------
# writing


def quarter_window(quarter: str) -> tuple[int, int]:
    """Epoch seconds ``[start, end)`` of a local calendar quarter (``"2025Q3"``)."""
    first, after = periods.quarter_bounds(quarter)
    return periods.epoch_seconds(first), periods.epoch_seconds(after)


def point_wkb(x: np.ndarray, y: np.ndarray) -> pa.BinaryArray:
    """Little-endian 2-D WKB points of ``x``/``y`` as a pyarrow binary array, built without shapely."""
    n = len(x)
    records = np.empty(n, dtype=_WKB_POINT)
    records["order"] = 1
    records["kind"] = 1
    records["x"] = x
    records["y"] = y
    offsets = np.arange(0, _WKB_POINT.itemsize * (n + 1), _WKB_POINT.itemsize, dtype=np.int32)
    return pa.BinaryArray.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(records.view(np.uint8))])


def _geo_metadata(crs: CRS, bounds: tuple[float, float, float, float] | None) -> bytes:
    column: dict[str, Any] = {"encoding": "WKB", "geometry_types": ["Point"], "crs": crs.to_json_dict()}
    if bounds is not None:
        column["bbox"] = list(bounds)
    return json.dumps({"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}).encode()


def check_crs(crs: Any) -> CRS:
    """``crs`` as a projected pyproj CRS (grids are laid in metres), or CrsError naming it."""
    try:
        parsed = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises its own CRSError for any unreadable input
        raise CrsError(f"crs: {crs!r} is not a coordinate reference system ({exc})") from None
    if not parsed.is_projected:
        raise CrsError(f"crs: {parsed.to_string()} is not projected; an archive needs metres (e.g. EPSG:2169, EPSG:3035)")
    return parsed


def _crs_name(crs: CRS) -> str:
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else crs.to_wkt()


PLAIN_COLUMNS = ("x", "y", "observed_at")
"""Columns every analysis reads, written without compression or dictionary. Random coordinates do not
compress (Snappy left x and y at 4.27 MB each for 500,000 events) and a dictionary tried on them
only adds a page before falling back; the times shrink by a fifth. Decoding all that was most of
a worker's time: read plain, the four analysis columns of a partition take 7 ms instead of 17 ms
here, and the file stays at 20.8 MB. Every other column is dictionary-encoded and Snappy-compressed."""


class ArchiveWriter:
    """Write an archive partition by partition; the manifest is written by :meth:`close`.

    Use it as a context manager. Each :meth:`write` takes one partition's columns (numpy
    arrays or lists, one value per event) and writes one file, so memory is bounded by the
    largest partition. A folder that already holds a manifest is refused (no silent mix of
    two archives).
    """

    def __init__(self, directory: str | os.PathLike[str], *, crs: Any, source: str | None = None,
                 partitioning: Sequence[str] = ("quarter",)) -> None:
        self.directory = Path(directory)
        self.crs = check_crs(crs)
        self.source = source
        self.partitioning = tuple(partitioning)
        self.entries: list[PartitionEntry] = []
        self._parts: dict[tuple[str | None, str], int] = {}
        self._columns: set[str] = set(REQUIRED_COLUMNS)
        if (self.directory / MANIFEST_NAME).exists():
            raise ValidationError(f"{self.directory}: already holds an archive ({MANIFEST_NAME}); choose an empty folder",
                                  [Problem("archive exists", file=str(self.directory / MANIFEST_NAME))])
        self.directory.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is None:
            self.close()

    def write(self, columns: Mapping[str, Any], *, quarter: str, country: str | None = None) -> PartitionEntry:
        """Write one partition file of ``quarter`` (and ``country``) and return its manifest entry.

        ``columns`` needs ``x``, ``y`` (archive CRS), ``observed_at`` (tz-aware timestamps or
        UTC epoch microseconds as int64) and ``persons``; any of :data:`TEXT_COLUMNS` and
        ``smugglers`` may follow.

        Raises
        ------
        ValidationError
            A missing column, columns of different lengths, an event outside ``quarter``, or a
            partition beyond :data:`MAX_PARTITIONS`.
        """
        if len(self.entries) >= MAX_PARTITIONS:
            raise ValidationError(f"{self.directory}: an archive holds at most {MAX_PARTITIONS:,} partitions; write fewer, "
                                  "larger ones", [Problem("too many partitions", column="partitions", value=len(self.entries) + 1)])
        quarter = periods.parse_quarter(quarter)
        missing = [c for c in ("x", "y", "observed_at", "persons") if c not in columns]
        if missing:
            raise ValidationError(f"partition {quarter}: missing columns {', '.join(missing)}",
                                  [Problem("missing column", column=c) for c in missing])
        x = np.ascontiguousarray(columns["x"], dtype=np.float64)
        y = np.ascontiguousarray(columns["y"], dtype=np.float64)
        micros = _epoch_micros(columns["observed_at"])
        start, end = quarter_window(quarter)
        seconds = micros // 1_000_000
        outside = (seconds < start) | (seconds >= end)
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise ValidationError(f"partition {quarter}: {int(outside.sum())} events lie outside the quarter",
                                  [Problem(f"outside {quarter}", row=first + 1, column="observed_at", value=_iso(int(seconds[first])))])
        arrays: dict[str, pa.Array] = {
            "observed_at": pa.array(micros, type=pa.timestamp("us", tz="UTC")),
            "x": pa.array(x),
            "y": pa.array(y),
            "persons": pa.array(np.asarray(columns["persons"], dtype=np.int32)),
        }
        if "smugglers" in columns:
            arrays["smugglers"] = pa.array(np.asarray(columns["smugglers"], dtype=np.int32))
        for name in TEXT_COLUMNS:
            if name in columns:
                arrays[name] = pa.array(pd.Series(columns[name], dtype=object).where(lambda s: s.notna(), None),
                                        type=pa.string()).dictionary_encode()
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValidationError(f"partition {quarter}: columns of different lengths {lengths}")
        n = len(x)
        finite = np.isfinite(x) & np.isfinite(y)
        bounds = (float(x[finite].min()), float(y[finite].min()), float(x[finite].max()), float(y[finite].max())) if finite.any() else None
        arrays["geometry"] = point_wkb(x, y)
        table = pa.table(arrays).replace_schema_metadata({b"geo": _geo_metadata(self.crs, bounds)})
        key = (country, quarter)
        number = self._parts.get(key, 0)
        self._parts[key] = number + 1
        folder = (f"country={country}/" if country is not None else "") + f"quarter={quarter}"
        relative = f"{folder}/part-{number:05d}.parquet"
        target = self.directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, scratch, row_group_size=1 << 20,
                       compression={name: "none" if name in PLAIN_COLUMNS else "snappy" for name in table.column_names},
                       use_dictionary=[name for name in table.column_names if name not in PLAIN_COLUMNS])
        digest, size = _sha256(scratch)
        os.replace(scratch, target)
        self._columns.update(arrays)
        entry = PartitionEntry(
            path=relative, quarter=quarter, country=country, rows=n, bytes=size, sha256=digest, bounds=bounds,
            time_min=int(seconds.min()) if n else None, time_max=int(seconds.max()) if n else None,
            start_utc=start, end_utc=end,
        )
        self.entries.append(entry)
        return entry

    def close(self) -> Manifest:
        """Write ``manifest.json`` (atomically) and return the manifest."""
        order = [*REQUIRED_COLUMNS, *sorted(self._columns - set(REQUIRED_COLUMNS))]
        manifest = Manifest(
            root=str(self.directory), crs=_crs_name(self.crs), partitions=tuple(self.entries),
            partitioning=self.partitioning, columns=tuple(order),
            created=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"), source=self.source,
        )
        text = json.dumps(manifest.to_json(), indent=1, ensure_ascii=False)
        scratch = self.directory / f".{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
        scratch.write_text(text + "\n", encoding="utf-8")
        os.replace(scratch, self.directory / MANIFEST_NAME)
        return manifest


def _epoch_micros(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    stamps = pd.DatetimeIndex(pd.Series(values))
    if stamps.tz is None:
        raise ValidationError("observed_at must be time zone aware (or UTC epoch microseconds)",
                              [Problem("no time zone", column="observed_at")])
    return np.asarray(stamps.tz_convert("UTC").as_unit("us").asi8, dtype=np.int64)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _iso(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()


# --------------------------------------------------------------------------------------------
# reading


_READ_CHUNK = 1 << 20


def _read_at_most(handle: Any, limit: int, *, expected: int | None = None) -> bytes | None:
    """The whole content of ``handle``, or None once it passes ``limit`` bytes.

    ``handle.read(n)`` allocates ``n`` bytes before it reads, so a file is read in chunks no larger
    than its reported size (``expected``, plus one byte to see its end) or one MB: memory follows
    the file's actual size, not the limit.
    """
    parts: list[bytes] = []
    total = 0
    chunk = min(_READ_CHUNK, expected + 1) if expected is not None else _READ_CHUNK
    while total <= limit:
        part = handle.read(min(chunk, limit + 1 - total))
        if not part:
            return b"".join(parts)
        parts.append(bytes(part))
        total += len(part)
    return None


def read_manifest(root: str | os.PathLike[str]) -> Manifest:
    """The manifest of the archive at ``root`` (folder or URL), checked for shape and CRS.

    Raises
    ------
    ValidationError
        No manifest, unreadable JSON, another format or version, or malformed partition entries
        (each listed with the field at fault).
    CrsError
        A CRS that is missing or not projected.
    """
    fs, base = archive_filesystem(root)
    where = _join(base, MANIFEST_NAME)
    too_large = ValidationError(f"{where}: larger than {MAX_MANIFEST_BYTES >> 20} MB, more partitions than an archive "
                                "may list; write fewer, larger partitions", [Problem("manifest too large", file=where)])
    try:
        info = fs.get_file_info(where)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(where)
        if info.size is not None and info.size > MAX_MANIFEST_BYTES:
            raise too_large
        with fs.open_input_stream(where) as handle:
            raw = _read_at_most(handle, MAX_MANIFEST_BYTES, expected=info.size)
    except (FileNotFoundError, OSError):
        raise ValidationError(f"{os.fspath(root)}: no archive here ({MANIFEST_NAME} not found)",
                              [Problem("manifest not found", file=where)]) from None
    if raw is None:
        raise too_large
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{where}: not valid JSON ({exc})", [Problem("not JSON", file=where)]) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ValidationError(f"{where}: not a {FORMAT_NAME} manifest", [Problem("unknown format", file=where)])
    if data.get("version") != FORMAT_VERSION:
        raise ValidationError(f"{where}: archive version {data.get('version')!r}, this geo_ibm reads version {FORMAT_VERSION}",
                              [Problem("unknown version", file=where, column="version", value=data.get("version"))])
    if not data.get("crs"):
        raise CrsError(f"{where}: the archive names no CRS")
    crs = _crs_name(check_crs(data["crs"]))
    entries, problems = [], []
    fields = PartitionEntry.__dataclass_fields__
    for number, item in enumerate(data.get("partitions") or [], start=1):
        if not isinstance(item, dict) or set(fields) - set(item):
            lacking = sorted(set(fields) - set(item)) if isinstance(item, dict) else ["all"]
            problems.append(Problem(f"partition {number} lacks {', '.join(lacking)}", file=where, row=number))
            continue
        path = str(item["path"])
        if path.startswith("/") or ".." in path.split("/"):
            problems.append(Problem("partition path leaves the archive", file=where, row=number, column="path", value=path))
            continue
        bounds = tuple(float(v) for v in item["bounds"]) if item["bounds"] is not None else None
        entries.append(PartitionEntry(
            path=path, quarter=str(item["quarter"]), country=item["country"], rows=int(item["rows"]),
            bytes=int(item["bytes"]), sha256=str(item["sha256"]), bounds=bounds,  # type: ignore[arg-type]
            time_min=item["time_min"], time_max=item["time_max"],
            start_utc=int(item["start_utc"]), end_utc=int(item["end_utc"]),
        ))
    if problems:
        raise ValidationError(f"{where}: {len(problems)} malformed partition entries", problems)
    return Manifest(
        root=os.fspath(root), crs=crs, partitions=tuple(entries), partitioning=tuple(data.get("partitioning") or ("quarter",)),
        columns=tuple(data.get("columns") or REQUIRED_COLUMNS), created=data.get("created"), source=data.get("source"),
        extra=dict(data.get("extra") or {}),
    )


def check_partitions(manifest: Manifest, *, entries: Iterable[PartitionEntry] | None = None,
                     checksums: bool = False, progress: Callable[[int, int], None] | None = None) -> None:
    """Check that every listed partition file is there with the size (and SHA-256) the manifest gives.

    A partition listed in the manifest but absent is an error, never a silent gap. With
    ``checksums`` every file is read; ``progress`` is then called with the bytes hashed so far
    and the bytes of all the chosen files, every 4 MiB read.

    Raises
    ------
    ValidationError
        One problem per missing, resized or (with ``checksums``) altered file, naming the file.
    """
    fs, base = archive_filesystem(manifest.root)
    chosen = list(manifest.partitions if entries is None else entries)
    infos = fs.get_file_info([_join(base, e.path) for e in chosen])
    problems = []
    done, total = 0, sum(e.bytes for e in chosen)
    for entry, info in zip(chosen, infos):
        if info.type == pafs.FileType.NotFound:
            problems.append(Problem("listed in the manifest, absent from the archive", file=entry.path))
        elif info.size != entry.bytes:
            problems.append(Problem(f"{info.size} bytes, the manifest lists {entry.bytes}", file=entry.path))
        elif checksums:
            digest = hashlib.sha256()
            with fs.open_input_stream(info.path) as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if digest.hexdigest() != entry.sha256:
                problems.append(Problem("SHA-256 differs from the manifest (file changed after export)", file=entry.path))
    if problems:
        raise ValidationError(f"archive {manifest.root}: {len(problems)} of {len(chosen)} partitions missing or altered",
                              problems)


@dataclass
class PartitionColumns:
    """What a worker reads of one partition: the analysis columns and every bad row found.

    ``micros``: ``observed_at`` in UTC epoch microseconds (0 where missing), ``None`` when it
    was not read; ``offset``: the 0-based row in the file of the first row (a batch's); ``seconds`` and ``persons`` (as float) are made from the file's columns when
    first asked for, so that an analysis that needs neither pays for neither.
    """

    x: np.ndarray
    y: np.ndarray
    micros: np.ndarray | None
    good: np.ndarray
    text: dict[str, np.ndarray]
    problems: list[Problem]
    counts: list[ProblemCount]
    persons_column: pa.Array | pa.ChunkedArray | None = field(repr=False)
    offset: int = 0

    @cached_property
    def seconds(self) -> np.ndarray:
        """``observed_at`` in whole UTC epoch seconds (0 where missing)."""
        if self.micros is None:
            raise ValueError("observed_at was not read (read_partition(..., times=False))")
        return self.micros // 1_000_000

    @cached_property
    def persons(self) -> np.ndarray:
        """``persons`` as float64 (0 where missing)."""
        if self.persons_column is None:
            raise ValueError("persons was not read (read_partition(..., persons=False))")
        return _person_counts(self.persons_column)


BATCH_ROWS = 1 << 20
"""Rows of a partition checked and binned at a time (about 32 MB of analysis columns): a worker's
memory is bounded by this, not by the size of the partitions an archive's writer chose."""


def read_partition(root: str, entry: PartitionEntry, *, text_columns: Sequence[str] = (), times: bool = True,
                   persons: bool = True) -> PartitionColumns:
    """Read and check the analysis columns of one partition with pyarrow (no geometry decoding).

    Rows are checked for a finite ``x``/``y``, a time inside the partition's quarter and
    ``persons >= 1``; ``good`` flags the rows that pass. Problems name the file and the
    1-based row within it (at most :data:`MAX_PROBLEMS_PER_COLUMN` per column and reason, every
    one counted). The whole file at once: :func:`iter_partition` reads it in batches.

    Parameters
    ----------
    times, persons
        As :func:`iter_partition`.

    Raises
    ------
    ValidationError
        As :func:`iter_partition`.
    """
    parts = list(iter_partition(root, entry, text_columns=text_columns, times=times, persons=persons,
                                batch_rows=max(1, entry.rows)))
    if len(parts) == 1:
        return parts[0]
    problems, counts = merge_problems([p for part in parts for p in part.problems], [c for part in parts for c in part.counts])

    def joined(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)

    micros = None if any(part.micros is None for part in parts) else joined([p.micros for p in parts if p.micros is not None], np.int64)
    persons_parts = [p.persons_column for p in parts if p.persons_column is not None]
    return PartitionColumns(
        joined([p.x for p in parts], np.float64), joined([p.y for p in parts], np.float64), micros,
        joined([p.good for p in parts], bool),
        {name: joined([p.text[name] for p in parts], object) for name in text_columns}, problems, counts,
        pa.chunked_array(persons_parts) if persons_parts and len(persons_parts) == len(parts)
        else pa.chunked_array([], type=pa.int32()) if not parts else None)


def iter_partition(root: str, entry: PartitionEntry, *, text_columns: Sequence[str] = (), times: bool = True,
                   persons: bool = True, batch_rows: int = BATCH_ROWS) -> Iterator[PartitionColumns]:
    """The analysis columns of one partition, checked, in batches of at most ``batch_rows`` rows.

    Each batch is checked as :func:`read_partition` says; its ``offset`` is the 0-based row of
    its first row in the file, and its problems name rows of the file. :func:`merge_problems`
    caps the problems of all batches to :data:`MAX_PROBLEMS_PER_COLUMN` per column and reason.
    A local file is memory-mapped (its pages are read in place, not copied first into a buffer
    of this process); an archive is written once and its files' sizes are checked against the
    manifest before an analysis.

    Parameters
    ----------
    times, persons
        ``False``: the caller needs no ``observed_at`` (``micros``) or ``persons`` values.
        Such a column is then left unread when the file's own column statistics (the minimum,
        maximum and null count Parquet writers keep per row group) show every row good: no
        missing value, every time inside the quarter, every ``persons >= 1``. Otherwise it is
        read and checked row by row as always, so the same bad rows are reported either way.

    Raises
    ------
    ValidationError
        The file is missing, is not Parquet (or a page of it cannot be decoded), lacks a
        required column or has another row count than the manifest (problems with bad rows are
        returned, not raised, so the caller can report every partition's at once).
    """
    fs, base = archive_filesystem(root)
    where = _join(base, entry.path)
    wanted = ["x", "y", "observed_at", "persons", *text_columns]
    first, after = entry.start_utc * 1_000_000, entry.end_utc * 1_000_000
    try:
        with _open_partition(fs, where) as handle:
            parquet = pq.ParquetFile(handle)
            names = set(parquet.schema_arrow.names)
            lacking = [c for c in wanted if c not in names]
            if lacking:
                raise ValidationError(f"{entry.path}: lacks the columns {', '.join(lacking)}",
                                      [Problem("missing column", file=entry.path, column=c) for c in lacking])
            if parquet.metadata.num_rows != entry.rows:
                raise ValidationError(
                    f"{entry.path}: {parquet.metadata.num_rows} rows, the manifest lists {entry.rows}",
                    [Problem(f"{parquet.metadata.num_rows} rows, the manifest lists {entry.rows}", file=entry.path)])
            skip = set()
            if not times and _proven_by_statistics(parquet, "observed_at", first, after):
                skip.add("observed_at")
            if not persons and _proven_by_statistics(parquet, "persons", 1, None):
                skip.add("persons")
            _check_row_groups(parquet.metadata, [c for c in wanted if c not in skip], entry)
            offset = 0
            # a few row groups at a time: pyarrow's reader over the whole file holds every row
            # group's column chunks at once (164 MB for x/y of a 10M-event file, 21 MB one group
            # at a time); one thread: a Dask worker is one thread per core already
            for groups in _row_group_runs(parquet.metadata, max(1, batch_rows)):
                for batch in parquet.iter_batches(batch_size=max(1, batch_rows), row_groups=groups,
                                                  columns=[c for c in wanted if c not in skip], use_threads=False):
                    yield _checked(batch, entry, offset, text_columns, first, after)
                    offset += batch.num_rows
    except FileNotFoundError:
        raise ValidationError(f"{entry.path}: listed in the manifest, absent from the archive",
                              [Problem("listed in the manifest, absent from the archive", file=entry.path)]) from None
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ValidationError(f"{entry.path}: a column's type cannot be read as the analysis needs ({exc})",
                              [Problem("column of an unusable type", file=entry.path)]) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"{entry.path}: not a readable Parquet file ({exc})",
                              [Problem("not a Parquet file", file=entry.path)]) from None


MAX_ROW_GROUP_BYTES = 512 << 20
"""Most bytes the read columns of one row group may take decoded: pyarrow reads a row group's column
chunks whole (a batch cannot be smaller), so a file written as one huge row group is refused, not
read (the archive writer's groups of 1,048,576 events take 16-28 MB)."""


_FIXED_WIDTH = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}


def _check_row_groups(meta: pq.FileMetaData, columns: Sequence[str], entry: PartitionEntry) -> None:
    """Refuse a file one of whose row groups holds more than :data:`MAX_ROW_GROUP_BYTES` of ``columns`` once decoded.

    Fixed-width columns take their width a row whatever their encoding (a dictionary-encoded
    column is small on disk, not in memory); text takes its uncompressed size.
    """
    wanted = set(columns)
    leaves = [(i, meta.schema.column(i).physical_type) for i in range(meta.num_columns)
              if meta.schema.column(i).path in wanted]
    for group in range(meta.num_row_groups):
        chunks = meta.row_group(group)
        size = sum(chunks.num_rows * _FIXED_WIDTH[kind] if kind in _FIXED_WIDTH else chunks.column(i).total_uncompressed_size
                   for i, kind in leaves)
        if size > MAX_ROW_GROUP_BYTES:
            raise ValidationError(
                f"{entry.path}: row group {group} holds {chunks.num_rows:,} rows, {size / 1e6:,.0f} MB of the columns read "
                f"at once (at most {MAX_ROW_GROUP_BYTES >> 20} MB); rewrite the partition with smaller row groups",
                [Problem("row group too large", file=entry.path, value=chunks.num_rows)])


def _row_group_runs(meta: pq.FileMetaData, rows: int) -> Iterator[list[int]]:
    """Consecutive row groups of together at most ``rows`` rows (a larger group alone), in file order.

    Many small row groups are read by one call (a call costs about as much as a small group),
    large ones one by one.
    """
    run: list[int] = []
    held = 0
    for group in range(meta.num_row_groups):
        size = meta.row_group(group).num_rows
        if run and held + size > rows:
            yield run
            run, held = [], 0
        run.append(group)
        held += size
    if run:
        yield run


def _checked(batch: pa.RecordBatch, entry: PartitionEntry, offset: int, text_columns: Sequence[str], first: int,
             after: int) -> PartitionColumns:
    """One batch's columns and bad rows (``offset``: its first row's 0-based row in the file)."""
    names = set(batch.schema.names)
    x = _floats(batch.column("x"))
    y = _floats(batch.column("y"))
    # each check first asks pyarrow for the column's range (a fraction of a millisecond), and
    # builds a row mask only when the range shows a bad row
    checks: list[tuple[str, Callable[[], np.ndarray | None], str, Callable[[], np.ndarray] | None]] = [
        ("x", lambda: _not_finite(x), "not a finite number", lambda: x),
        ("y", lambda: _not_finite(y), "not a finite number", lambda: y),
    ]
    micros: np.ndarray | None = None
    if "observed_at" in names:
        time = batch.column("observed_at")
        if pa.types.is_timestamp(time.type):
            time = time.cast(pa.timestamp("us", tz=time.type.tz))
        micros_column = time.cast(pa.int64())
        time_null = _nulls(micros_column)
        micros = values = _values(micros_column.fill_null(0) if time_null is not None else micros_column, np.int64)
        checks += [
            ("observed_at", lambda: time_null, "missing time", None),
            ("observed_at", lambda: _outside(micros_column, values, time_null, first, after),
             f"outside the partition's quarter {entry.quarter}", lambda: values // 1_000_000),
        ]
    persons_column = None
    if "persons" in names:
        persons_column = column = batch.column("persons")
        persons_null = _nulls(column)
        checks.append(("persons", lambda: _below_one(column, persons_null), "persons must be at least 1",
                       lambda: _person_counts(column)))
    good = np.ones(len(x), dtype=bool)
    problems: list[Problem] = []
    counts: list[ProblemCount] = []
    for name, find, reason, shown in checks:
        bad = find()
        if bad is None or not bad.any():
            continue
        good &= ~bad
        rows = np.flatnonzero(bad)
        listed = rows[:MAX_PROBLEMS_PER_COLUMN]
        shown_values = None if shown is None else shown()
        for row in listed:
            value = None if shown_values is None else shown_values[row].item()
            if name == "observed_at" and value is not None:
                value = _iso(int(value))
            problems.append(Problem(reason, file=entry.path, row=offset + int(row) + 1, column=name, value=value))
        counts.append(ProblemCount(name, reason, int(rows.size), int(listed.size)))
    text = {name: np.asarray(batch.column(name).to_numpy(zero_copy_only=False), dtype=object) for name in text_columns}
    return PartitionColumns(x, y, micros, good, text, problems, counts, persons_column, offset)


def merge_problems(problems: Iterable[Problem], counts: Iterable[ProblemCount]) -> tuple[list[Problem], list[ProblemCount]]:
    """The problems of several batches of one file as one file's: at most :data:`MAX_PROBLEMS_PER_COLUMN` listed per
    column and reason (the first rows), every one counted."""
    kept: list[Problem] = []
    per: dict[tuple[str | None, str], int] = {}
    for problem in problems:
        key = (problem.column, problem.reason)
        if per.get(key, 0) < MAX_PROBLEMS_PER_COLUMN:
            per[key] = per.get(key, 0) + 1
            kept.append(problem)
    totals: dict[tuple[str | None, str], int] = {}
    for count in counts:
        totals[(count.column, count.reason)] = totals.get((count.column, count.reason), 0) + count.count
    return kept, [ProblemCount(column, reason, total, per.get((column, reason), 0)) for (column, reason), total in totals.items()]


def _proven_by_statistics(parquet: pq.ParquetFile, name: str, low: int, high: int | None) -> bool:
    """Whether the file's statistics show every value of integer column ``name`` present and in ``[low, high)``.

    The statistics are those of the Parquet column whose path is ``name`` (a nested column
    before it, a GeoArrow point say, has several Parquet columns for one Arrow field). Only a
    signed integer column qualifies, ``observed_at`` only as a timestamp in microseconds (as the
    archive writes it), for its raw values to be compared with ``low``/``high``; any other
    layout, or a row group without statistics or null count, answers ``False`` (the column is
    then read and checked row by row).
    """
    meta = parquet.metadata
    leaves = [i for i in range(meta.num_columns) if meta.schema.column(i).path == name]
    if len(leaves) != 1:
        return False
    leaf = meta.schema.column(leaves[0])
    if leaf.physical_type not in ("INT32", "INT64"):
        return False
    logical = json.loads(leaf.logical_type.to_json())
    if name == "observed_at":
        if logical.get("Type") != "Timestamp" or logical.get("timeUnit") != "microseconds":
            return False
    elif logical.get("Type") not in ("None", "Int") or (logical.get("Type") == "Int" and not logical.get("isSigned")):
        return False
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(leaves[0]).statistics
        if stats is None or not stats.has_min_max or not stats.has_null_count or stats.null_count != 0:
            return False
        lo, hi = stats.min_raw, stats.max_raw
        if not isinstance(lo, int) or not isinstance(hi, int) or lo < low or (high is not None and hi >= high):
            return False
    return True


MMAP_MAX_BYTES = 256 << 20
"""Largest local partition file read through a memory map. The pages of a mapped file count in
the worker's resident memory while it is read (Dask's memory monitor sees them), so a larger
file is read with pyarrow's file reader, which holds one row group's column chunks at a time."""


def _open_partition(fs: pafs.FileSystem, where: str) -> Any:
    if isinstance(fs, pafs.LocalFileSystem) and os.path.getsize(where) <= MMAP_MAX_BYTES:
        return pa.memory_map(where)
    return fs.open_input_file(where)


def _floats(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    # nulls become NaN, so the finiteness check catches them too; a float64 column without
    # nulls in one chunk (as the archive writes it) is viewed in place, not copied
    return _values(column.cast(pa.float64()), np.float64)


def _values(column: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)


def _nulls(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """The rows of ``column`` that are null, or ``None`` when there are none."""
    if column.null_count == 0:
        return None
    return np.asarray(column.is_null().to_numpy(zero_copy_only=False))


def _not_finite(values: np.ndarray) -> np.ndarray | None:
    # the sum of finite coordinates is finite unless it overflows; only then is every value looked at
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(values)):
            return None
    return ~np.isfinite(values)


def _outside(column: pa.Array | pa.ChunkedArray, micros: np.ndarray, nulls: np.ndarray | None, first: int, after: int) -> np.ndarray | None:
    span = pc.min_max(column)
    lo, hi = span["min"].as_py(), span["max"].as_py()
    if lo is None or (lo >= first and hi < after):
        return None
    out = (micros < first) | (micros >= after)
    if nulls is not None:
        out &= ~nulls
    return out


def _person_counts(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``persons`` as float64, missing values as 0 (whatever the column's numeric or text layout)."""
    return _values(column.cast(pa.float64()).fill_null(0.0), np.float64)


def _below_one(column: pa.Array | pa.ChunkedArray, nulls: np.ndarray | None) -> np.ndarray | None:
    """Rows whose persons are missing, below 1 or not a number (the column as floats, whatever its type)."""
    as_float = column.cast(pa.float64())
    smallest = pc.min(as_float).as_py()
    if nulls is None and smallest is not None and smallest >= 1 and not pc.any(pc.is_nan(as_float)).as_py():
        return None
    values = _person_counts(as_float)
    out = ~(values >= 1)  # NaN too
    if nulls is not None:
        out |= nulls
    return out


def archive_summary(manifest: Manifest) -> dict[str, Any]:
    """What ``geo-ibm archive info`` prints: CRS, partitioning, counts, bounds, time range and rows per quarter."""
    span = manifest.time_range
    per_quarter: dict[str, int] = {}
    per_country: dict[str, int] = {}
    for p in manifest.partitions:
        per_quarter[p.quarter] = per_quarter.get(p.quarter, 0) + p.rows
        if p.country is not None:
            per_country[p.country] = per_country.get(p.country, 0) + p.rows
    summary: dict[str, Any] = {
        "archive": manifest.root,
        "crs": manifest.crs,
        "crs_name": CRS.from_user_input(manifest.crs).name,
        "partitioning": ", ".join(manifest.partitioning),
        "partitions": len(manifest.partitions),
        "rows": manifest.rows,
        "bytes": sum(p.bytes for p in manifest.partitions),
        "bounds": manifest.bounds,
        "first_event": _iso(span[0]) if span else None,
        "last_event": _iso(span[1]) if span else None,
        "columns": ", ".join(manifest.columns),
        "created": manifest.created,
        "source": manifest.source,
        "rows_per_quarter": dict(sorted(per_quarter.items())),
    }
    if per_country:
        summary["rows_per_country"] = dict(sorted(per_country.items()))
    return summary


__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_NAME", "REQUIRED_COLUMNS", "TEXT_COLUMNS", "ArchiveWriter", "Manifest",
    "PartitionColumns", "PartitionEntry", "archive_filesystem", "archive_summary", "check_crs", "check_partitions",
    "point_wkb", "quarter_window", "read_manifest", "read_partition", "iter_partition", "merge_problems", "BATCH_ROWS",
    "MAX_MANIFEST_BYTES", "MAX_PARTITIONS",
]
