"""OpenStreetMap extracts on disk: the file checks, the one read of GDAL's OSM driver, the header date.

The road network built from them lives in :mod:`geo_ibm.network.osm`.
"""
from __future__ import annotations

import os
import re
import zlib
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd

from geo_ibm.errors import Problem, ValidationError

OSM_SUFFIXES = (".osm", ".pbf")
"""File name endings GDAL's OSM driver reads (``.osm`` XML, ``.osm.pbf``)."""


def check_osm_file(path: Path, *, max_bytes: int) -> None:
    """Refuse a missing, empty, too large or non-OSM file before GDAL opens it."""
    if not path.is_file():
        raise ValidationError(f"{path}: file not found", [Problem("file not found", file=path.name)])
    name = path.name.lower()
    if not name.endswith(OSM_SUFFIXES):
        raise ValidationError(f"{path}: not an OpenStreetMap file name (GDAL's OSM driver reads .osm and .osm.pbf)",
                              [Problem("not an OSM file", file=path.name)])
    size = path.stat().st_size
    if size == 0:
        raise ValidationError(f"{path}: the file is empty", [Problem("empty file", file=path.name)])
    limit = max_bytes
    if size > limit:
        raise ValidationError(
            f"{path}: the file has {_size(size)}, more than the {_size(limit)} accepted "
            "(GEO_IBM_ROADS_MAX_MB); cut a smaller extract around Luxembourg",
            [Problem("file too large", file=path.name, value=size)])
    with path.open("rb") as handle:
        head = handle.read(4096)
    if name.endswith(".pbf"):
        # A PBF file starts with a 4-byte length and a BlobHeader whose type (field 1) is "OSMHeader".
        if head[4:15] != b"\n\tOSMHeader":
            raise ValidationError(f"{path}: not an OpenStreetMap PBF file (no OSMHeader block at its start)",
                                  [Problem("not an OSM PBF file", file=path.name)])
    else:
        text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
        if not (text.startswith((b"<?xml", b"<osm")) and re.search(rb"<osm[\s>]", text)):
            raise ValidationError(f"{path}: not an OpenStreetMap XML file (no <osm> element at its start)",
                                  [Problem("not an OSM XML file", file=path.name)])


def _size(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 2**20 else f"{n / 2**20:,.0f} MiB"


def read_osm_lines(path: Path, *, highways: tuple[str, ...], tags: tuple[str, ...],
                   bbox: tuple[float, float, float, float] | None = None,
                   max_features: int | None = None) -> gpd.GeoDataFrame:
    """The ``lines`` layer of an OSM file, only the ways of ``highways`` (meeting ``bbox``), in EPSG:4326.

    ``tags`` are the tags wanted as their own fields where GDAL's configuration gives them;
    the others stay in ``other_tags`` / ``all_tags``.
    """
    import pyogrio

    try:
        info = pyogrio.read_info(path, layer="lines")
    except Exception as exc:
        raise ValidationError(f"{path}: GDAL cannot open it as an OpenStreetMap file: {exc}",
                              [Problem("unreadable OSM file", file=path.name)]) from exc
    if info.get("driver") != "OSM":
        raise ValidationError(f"{path}: GDAL reads it as {info.get('driver')}, not as an OpenStreetMap file",
                              [Problem("not an OSM file", file=path.name)])
    fields = [str(f) for f in info["fields"]]
    if "highway" not in fields or "osm_id" not in fields:
        raise ValidationError(f"{path}: GDAL's OSM configuration (OSM_CONFIG_FILE) gives the lines no "
                              f"osm_id or highway field; fields are {fields}")
    wanted = [f for f in ("osm_id", "name", "highway", *tags, "other_tags", "all_tags") if f in fields]
    listed = ", ".join(f"'{h}'" for h in highways)
    try:
        return pyogrio.read_dataframe(path, layer="lines", columns=wanted, where=f"highway IN ({listed})", bbox=bbox,
                                      max_features=max_features)
    except Exception as exc:
        raise ValidationError(f"{path}: corrupt or unreadable OpenStreetMap file: {exc}",
                              [Problem("corrupt OSM file", file=path.name)]) from exc


def osm_extract_date(path: str | os.PathLike[str]) -> str | None:
    """The date (``YYYY-MM-DD``, UTC) an extract's header gives, ``None`` when it gives none.

    XML: the ``timestamp`` attribute of ``<osm>`` or ``osm_base`` of ``<meta>`` (Overpass). PBF: the
    header block's ``osmosis_replication_timestamp``, which extract mirrors set.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return None
    if path.name.lower().endswith(".pbf"):
        stamp = _pbf_replication_timestamp(head)
        return None if stamp is None else datetime.fromtimestamp(stamp, tz=timezone.utc).date().isoformat()
    found = re.search(rb'<(?:osm|meta)\b[^>]*?\b(?:timestamp|osm_base)="(\d{4}-\d{2}-\d{2})', head)
    return found.group(1).decode("ascii") if found else None


def _pbf_replication_timestamp(head: bytes) -> int | None:
    """``osmosis_replication_timestamp`` (field 32) of the PBF header block, from the file's first bytes."""
    try:
        size = int.from_bytes(head[:4], "big")
        blob_header = _protobuf_fields(head[4:4 + size])
        blob_size = int(blob_header[3][0])  # type: ignore[arg-type]
        blob = _protobuf_fields(head[4 + size:4 + size + blob_size])
        if 1 in blob:
            block = bytes(blob[1][0])  # type: ignore[arg-type]
        else:
            block = zlib.decompress(bytes(blob[3][0]))  # type: ignore[arg-type]
        stamps = _protobuf_fields(block).get(32)
    except (KeyError, IndexError, ValueError, TypeError, zlib.error):
        return None
    return int(stamps[0]) if stamps and int(stamps[0]) > 0 else None  # type: ignore[arg-type]


def _protobuf_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """Top-level fields of a protobuf message: varints as ints, length-delimited as bytes."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        value, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise ValueError("truncated varint")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        key = varint()
        number, kind = key >> 3, key & 7
        if kind == 0:
            fields.setdefault(number, []).append(varint())
        elif kind == 2:
            length = varint()
            if pos + length > len(data):
                raise ValueError("truncated field")
            fields.setdefault(number, []).append(data[pos:pos + length])
            pos += length
        elif kind in (1, 5):
            pos += 8 if kind == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {kind}")
    return fields
