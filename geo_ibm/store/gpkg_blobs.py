"""GeoPackage geometry blobs: the standard header followed by little-endian WKB, in EPSG:2169."""
from __future__ import annotations

import struct
from typing import Any

import numpy as np
import shapely

SRS_ID = 2169
HEADER = b"GP\x00\x01" + struct.pack("<i", SRS_ID)
"""Version 0, little endian, no envelope, SRS 2169."""

POINT_RECORD = np.dtype([("header", "S8"), ("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])
"""One 2D point's GeoPackage geometry blob as a numpy record (29 bytes): header, byte order, WKB type, x, y."""


def point_blobs(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """GeoPackage geometry blobs for 2D points: header without envelope + little-endian WKB.

    Built as one numpy record array (29 bytes a point) rather than through shapely objects;
    the tests check the bytes against ``shapely.to_wkb``.
    """
    records = np.empty(len(x), dtype=POINT_RECORD)
    records["header"] = HEADER
    records["order"] = 1
    records["kind"] = 1
    records["x"] = x
    records["y"] = y
    raw = records.tobytes()
    size = POINT_RECORD.itemsize
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def header_size(blob: bytes) -> int:
    """Bytes before the WKB: 8, plus the envelope the flags announce."""
    envelope = (blob[3] >> 1) & 0b111
    return 8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get(envelope, 0)


def is_empty_flag(blob: bytes) -> bool:
    """Whether the header flags the geometry as empty."""
    return bool((blob[3] >> 4) & 1)


def blob_geometry(blob: bytes | None) -> Any:
    """The shapely geometry of one blob (``None`` stays ``None``)."""
    if blob is None:
        return None
    return shapely.from_wkb(bytes(blob[header_size(blob):]))


def geometries_from_blobs(blobs: list[bytes | None]) -> np.ndarray:
    """Shapely geometries from GeoPackage geometry blobs (``None`` stays ``None``)."""
    wkb = [None if b is None else bytes(b[header_size(b):]) for b in blobs]
    return shapely.from_wkb(np.array(wkb, dtype=object))
