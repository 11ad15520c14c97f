"""The GeoPackage R-tree of the events layer: its triggers, the ST_* functions they call, and a bulk loader.

The standard GeoPackage triggers keep ``rtree_events_geom`` in step with ``events`` by calling
``ST_IsEmpty``/``ST_MinX``... which plain SQLite lacks: :func:`register_functions` adds Python
versions to a connection, so single-row edits (ours or GDAL's) keep the index right.

An import adds its rows to the R-tree in one statement instead of firing the insert trigger
per row: either through SQLite's own R-tree inserts (:func:`insert_rows`, about 10 µs a row)
or, when an import brings a large share of the events, by rebuilding the whole tree with a
Sort-Tile-Recursive bulk load written straight into the R-tree's shadow tables
(:func:`pack`), a fraction of that. ``rtreecheck()`` confirms both in the tests.
"""
from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geo_ibm.store.frames import numeric_rows
from geo_ibm.store.gpkg_blobs import blob_geometry, is_empty_flag

RTREE = "rtree_events_geom"
TABLE = "events"

_CELL = np.dtype([("id", ">i8"), ("minx", ">f4"), ("maxx", ">f4"), ("miny", ">f4"), ("maxy", ">f4")])
"""One R-tree cell as SQLite stores it: rowid and float32 bounds, big endian."""

_MAX_CELLS = 51
"""Most cells SQLite's R-tree puts in a node."""

TRIGGERS = {
    "insert": f"""AFTER INSERT ON {TABLE} WHEN (new.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom))
        BEGIN INSERT OR REPLACE INTO {RTREE} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom),
        ST_MinY(NEW.geom), ST_MaxY(NEW.geom)); END""",
    "update1": f"""AFTER UPDATE OF geom ON {TABLE} WHEN OLD.fid = NEW.fid AND
        (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))
        BEGIN INSERT OR REPLACE INTO {RTREE} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom),
        ST_MinY(NEW.geom), ST_MaxY(NEW.geom)); END""",
    "update2": f"""AFTER UPDATE OF geom ON {TABLE} WHEN OLD.fid = NEW.fid AND
        (NEW.geom ISNULL OR ST_IsEmpty(NEW.geom))
        BEGIN DELETE FROM {RTREE} WHERE id = OLD.fid; END""",
    "update3": f"""AFTER UPDATE ON {TABLE} WHEN OLD.fid != NEW.fid AND
        (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))
        BEGIN DELETE FROM {RTREE} WHERE id = OLD.fid; INSERT OR REPLACE INTO {RTREE} VALUES (NEW.fid,
        ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom)); END""",
    "update4": f"""AFTER UPDATE ON {TABLE} WHEN OLD.fid != NEW.fid AND
        (NEW.geom ISNULL OR ST_IsEmpty(NEW.geom))
        BEGIN DELETE FROM {RTREE} WHERE id IN (OLD.fid, NEW.fid); END""",
    "delete": f"""AFTER DELETE ON {TABLE} WHEN old.geom NOT NULL
        BEGIN DELETE FROM {RTREE} WHERE id = OLD.fid; END""",
}
"""The GeoPackage 1.3 R-tree triggers of ``events.geom`` (spec, annex F.3)."""


# --- ST_* functions -------------------------------------------------------------------------


def _st_is_empty(blob: bytes | None) -> int | None:
    if blob is None:
        return None
    if is_empty_flag(blob):
        return 1
    return int(blob_geometry(blob).is_empty)


def _st_bound(index: int) -> Callable[[bytes | None], float | None]:
    def bound(blob: bytes | None) -> float | None:
        geom = blob_geometry(blob)
        if geom is None or geom.is_empty:
            return None
        return float(geom.bounds[index])

    return bound


def register_functions(conn: sqlite3.Connection) -> None:
    """Add ``ST_IsEmpty``, ``ST_MinX``, ``ST_MinY``, ``ST_MaxX``, ``ST_MaxY`` to ``conn``."""
    conn.create_function("ST_IsEmpty", 1, _st_is_empty, deterministic=True)
    for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
        conn.create_function(name, 1, _st_bound(i), deterministic=True)


# --- schema ---------------------------------------------------------------------------------


def create(conn: sqlite3.Connection) -> None:
    """Create the R-tree, register it as a GeoPackage extension and install its triggers."""
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {RTREE} USING rtree(id, minx, maxx, miny, maxy)")
    conn.execute(
        f"INSERT OR IGNORE INTO gpkg_extensions VALUES ('{TABLE}', 'geom', 'gpkg_rtree_index', "
        "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')"
    )
    create_triggers(conn)


def create_triggers(conn: sqlite3.Connection) -> None:
    """Install the triggers that are missing."""
    for name, body in TRIGGERS.items():
        conn.execute(f"CREATE TRIGGER IF NOT EXISTS {RTREE}_{name} {body}")


def drop_insert_trigger(conn: sqlite3.Connection) -> None:
    """Drop the per-row insert trigger for a batch insert (re-create it with :func:`create_triggers`)."""
    conn.execute(f"DROP TRIGGER IF EXISTS {RTREE}_insert")


# --- filling --------------------------------------------------------------------------------


def insert_rows(conn: sqlite3.Connection, *, after_fid: int) -> None:
    """Add the events with ``fid > after_fid`` through SQLite's own R-tree inserts (points: a box of zero size)."""
    conn.execute(
        f"INSERT INTO {RTREE} (id, minx, maxx, miny, maxy) SELECT fid, x, x, y, y FROM {TABLE} WHERE fid > ?",
        (after_fid,),
    )


def _f32_down(values: np.ndarray) -> np.ndarray:
    out = values.astype(np.float32)
    over = out.astype(np.float64) > values
    out[over] = np.nextafter(out[over], np.float32(-np.inf))
    return out


def _f32_up(values: np.ndarray) -> np.ndarray:
    out = values.astype(np.float32)
    under = out.astype(np.float64) < values
    out[under] = np.nextafter(out[under], np.float32(np.inf))
    return out


def _str_groups(cx: np.ndarray, cy: np.ndarray, capacity: int) -> list[np.ndarray]:
    """Sort-Tile-Recursive packing: slices along x, runs of ``capacity`` along y within each."""
    n = len(cx)
    pages = -(-n // capacity)
    slices = int(np.ceil(np.sqrt(pages)))
    by_x = np.argsort(cx, kind="stable")
    groups: list[np.ndarray] = []
    step = slices * capacity
    for s0 in range(0, n, step):
        part = by_x[s0 : s0 + step]
        part = part[np.argsort(cy[part], kind="stable")]
        groups.extend(part[g0 : g0 + capacity] for g0 in range(0, len(part), capacity))
    return groups


Boxes = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""minx, maxx, miny, maxy of the entries of one tree level."""


@dataclass(frozen=True)
class PackedTree:
    """An R-tree's shadow table rows, computed apart from any connection (:func:`packed_tree`)."""

    nodes: list[tuple[int, bytes]]
    """``(nodeno, data)`` of every node, in node order."""
    links: list[tuple[np.ndarray, np.ndarray, str | None]]
    """Per level from the leaves up: child ids (ascending), the node holding each, and both as the JSON
    array of ``child << 32 | node`` that :func:`write_packed` hands to ``json_each`` (``None`` when an id
    does not fit 31 bits)."""


def node_bytes(conn: sqlite3.Connection, rtree: str = RTREE) -> int:
    """Bytes of one node of the R-tree (fixed when the tree was created, from the page size)."""
    return int(conn.execute(f"SELECT length(data) FROM {rtree}_node WHERE nodeno = 1").fetchone()[0])


def pack(conn: sqlite3.Connection, rtree: str = RTREE, table: str = TABLE, *,
         points: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
         tree: PackedTree | None = None) -> None:
    """Rebuild the R-tree of point table ``table`` by writing packed nodes into its shadow tables.

    The nodes hold 24-byte big-endian cells (rowid and float32 minx, maxx, miny, maxy
    rounded outwards); the root, node 1, holds the depth. Points of rows without a geometry
    are left out, as the triggers leave them out. ``points`` (fids, x, y) are every point of
    the table when the caller holds them already (an import into an empty store), which
    saves reading them back; ``tree`` is the tree of those points already computed
    (:func:`packed_tree`, e.g. on another thread while SQLite builds an index).
    """
    if tree is None:
        if points is None:
            data = numeric_rows(conn.execute(f"SELECT fid, x, y FROM {table} WHERE geom IS NOT NULL"), 3)
            points = (data[:, 0].astype(np.int64), data[:, 1], data[:, 2])
        tree = packed_tree(points, node_size=node_bytes(conn, rtree))
    write_packed(conn, tree, rtree)


def packed_tree(points: tuple[np.ndarray, np.ndarray, np.ndarray], *, node_size: int) -> PackedTree:
    """The Sort-Tile-Recursive packing of ``points`` (fids, x, y) as shadow table rows (numpy only, no connection)."""
    capacity = min(_MAX_CELLS, (node_size - 4) // _CELL.itemsize)
    ids = np.asarray(points[0], dtype=np.int64)
    x, y = np.asarray(points[1], dtype=np.float64), np.asarray(points[2], dtype=np.float64)
    boxes: Boxes = (_f32_down(x), _f32_up(x), _f32_down(y), _f32_up(y))
    levels: list[tuple[list[np.ndarray], Boxes]] = []
    cx, cy = x, y
    while True:
        groups = _str_groups(cx, cy, capacity) if len(cx) else [np.zeros(0, dtype=np.int64)]
        levels.append((groups, boxes))
        if len(groups) == 1:
            break
        order = np.concatenate(groups)
        starts = np.cumsum([0, *(len(g) for g in groups[:-1])])
        minx, maxx, miny, maxy = (
            reduce.reduceat(boxes[k][order], starts).astype(np.float32)
            for k, reduce in enumerate((np.minimum, np.maximum, np.minimum, np.maximum))
        )
        boxes = (minx, maxx, miny, maxy)
        cx = (minx.astype(np.float64) + maxx) / 2
        cy = (miny.astype(np.float64) + maxy) / 2
    numbers: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(levels)
    next_number = 1
    for level in range(len(levels) - 1, -1, -1):
        count = len(levels[level][0])
        numbers[level] = np.arange(next_number, next_number + count, dtype=np.int64)
        next_number += count
    depth = len(levels) - 1
    nodes: list[tuple[int, bytes]] = []
    links: list[tuple[np.ndarray, np.ndarray, str | None]] = []
    size = _CELL.itemsize
    for level, (groups, level_boxes) in enumerate(levels):
        child_ids = ids if level == 0 else numbers[level - 1]
        # All cells of a level in one record array, cut into node blobs by byte offsets.
        order = np.concatenate(groups)
        counts = np.array([len(g) for g in groups], dtype=np.int64)
        cells = np.empty(len(order), dtype=_CELL)
        cells["id"] = child_ids[order]
        for k, name in enumerate(("minx", "maxx", "miny", "maxy")):
            cells[name] = level_boxes[k][order]
        raw = cells.tobytes()
        ends = np.cumsum(counts) * size
        for number, count, end in zip(numbers[level].tolist(), counts.tolist(), ends.tolist()):
            blob = struct.pack(">HH", depth if number == 1 else 0, count) + raw[end - count * size : end]
            nodes.append((number, blob + bytes(node_size - len(blob))))
        links.append(_child_links(child_ids, order, np.repeat(numbers[level], counts)))
    return PackedTree(nodes=nodes, links=links)


def _child_links(child_ids: np.ndarray, order: np.ndarray, holders: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Child ids in ascending order with the node holding each (entry ``order[k]`` sits in ``holders[k]``)."""
    # The ids ascend (node numbers always, row ids when read or given in fid order): the pairs in
    # child order are then a scatter rather than a sort of a million keys.
    if len(child_ids) < 2 or bool((child_ids[1:] > child_ids[:-1]).all()):
        child = child_ids.astype(np.int64)
        node = np.empty(len(order), dtype=np.int64)
        node[order] = holders
    else:
        by_child = np.argsort(child_ids[order], kind="stable")
        child, node = child_ids[order][by_child].astype(np.int64), holders[by_child].astype(np.int64)
    if len(child) and max(int(child.max()), int(node.max())) >= 2**31:  # does not fit the packing
        return child, node, None
    # A list's repr is the JSON array, written in C (0.13 s for 1M against 0.31 s for a join).
    return child, node, repr(((child << 32) | node).tolist())


SHADOW_TABLES = ("node", "rowid", "parent")
"""Suffixes of an R-tree's shadow tables (``<rtree>_node`` ...)."""


def shadow_schema(conn: sqlite3.Connection, rtree: str = RTREE) -> list[str]:
    """The ``CREATE TABLE`` statements of the R-tree's shadow tables, as SQLite keeps them."""
    names = [f"{rtree}_{suffix}" for suffix in SHADOW_TABLES]
    found = dict(conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ({', '.join('?' * len(names))})",
        names).fetchall())
    return [found[name] for name in names]


def stage_packed(points: tuple[np.ndarray, np.ndarray, np.ndarray], path: Path, *, node_size: int,
                 schema: list[str], rtree: str = RTREE) -> Path:
    """Pack ``points`` (:func:`packed_tree`) and write the shadow rows into a new SQLite file ``path``.

    Runs on a thread of its own with a connection of its own while the import's connection
    copies the rows and builds an index; the tables are declared as the store's
    (``schema``: :func:`shadow_schema`), so that :func:`copy_staged` moves them whole. The
    file is thrown away after the import, so it has no journal and is never flushed.
    """
    tree = packed_tree(points, node_size=node_size)
    staging = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        staging.execute("PRAGMA journal_mode = OFF")
        staging.execute("PRAGMA synchronous = OFF")
        staging.execute("BEGIN")
        for statement in schema:
            staging.execute(statement)
        write_packed(staging, tree, rtree)
        staging.execute("COMMIT")
    finally:
        staging.close()
    return path


def copy_staged(conn: sqlite3.Connection, path: Path, rtree: str = RTREE) -> None:
    """Replace the R-tree's shadow rows with those :func:`stage_packed` wrote to ``path`` (in ``conn``'s transaction).

    Into an emptied table of the same declaration SQLite copies the records as they are
    (its transfer optimisation) instead of inserting them one by one: the 1M-point tree of an
    import moves in a tenth of the second its writing takes. The file stays attached until
    ``conn`` is closed (DETACH is refused inside a transaction).
    """
    conn.execute("ATTACH DATABASE ? AS rtree_staging", (str(path),))
    for suffix in SHADOW_TABLES:
        conn.execute(f"DELETE FROM main.{rtree}_{suffix}")
        conn.execute(f"INSERT INTO main.{rtree}_{suffix} SELECT * FROM rtree_staging.{rtree}_{suffix}")


def write_packed(conn: sqlite3.Connection, tree: PackedTree, rtree: str = RTREE) -> None:
    """Replace the rows of the R-tree's shadow tables with those of ``tree``."""
    conn.execute(f"DELETE FROM {rtree}_node")
    conn.execute(f"DELETE FROM {rtree}_rowid")
    conn.execute(f"DELETE FROM {rtree}_parent")
    # Inserting in key order appends to each shadow table's B-tree instead of splitting pages
    # all over it.
    conn.executemany(f"INSERT INTO {rtree}_node (nodeno, data) VALUES (?, ?)", sorted(tree.nodes))
    for level, (child, node, text) in enumerate(tree.links):
        target = f"{rtree}_rowid (rowid, nodeno)" if level == 0 else f"{rtree}_parent (nodeno, parentnode)"
        if text is None:
            conn.executemany(f"INSERT INTO {target} VALUES (?, ?)", zip(child.tolist(), node.tolist()))
            continue
        # One JSON array of (child << 32 | node) read by json_each: binding a million pairs
        # from Python costs twice as much (measured on 1M rows: 2.6 s against 1.3 s).
        conn.execute(f"INSERT INTO {target} SELECT value >> 32, value & 4294967295 FROM json_each(?)", (text,))
