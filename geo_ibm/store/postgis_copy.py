"""Bulk transfer between numpy/pandas and PostgreSQL: event rows in by binary COPY, numeric columns out into numpy.

``COPY ... FROM STDIN (FORMAT BINARY)`` through psycopg's C row formatter is the fastest way
psycopg 3 offers to load rows (measured in ``benchmarks/bench_store.py``). Reading, libpq
hands a ``COPY TO`` over one row at a time (a Python call per row); instead the server packs
the numeric columns of all rows into one ``bytea`` of big-endian doubles (``float8send``,
``string_agg``), which is one ``numpy.frombuffer`` away from an ``(n, k)`` array: five times
faster for a million points, and no Python object per value.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from geo_ibm.store.frames import python_values


def copy_in(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    frame: pd.DataFrame,
    *,
    chunk_rows: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Append ``frame[columns]`` to ``table`` with one binary COPY.

    Parameters
    ----------
    types
        PostgreSQL type of each column (``text``, ``int8``, ``float8``, ``bool``...).
    progress
        Called with the rows sent so far after each ``chunk_rows``.
    """
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with conn.cursor().copy(sql) as copy:
        copy.set_types(list(types))
        for start in range(0, len(frame), chunk_rows):
            part = frame.iloc[start : start + chunk_rows]
            for row in zip(*(python_values(part[c]) for c in columns)):
                copy.write_row(row)
            if progress:
                progress(start + len(part))


def read_floats(conn: psycopg.Connection, columns: Sequence[str], source: str, params: Sequence[Any], *,
                order: Sequence[str] = (), page: str = "") -> np.ndarray:
    """The rows of ``SELECT columns FROM source`` as an ``(n, len(columns))`` float64 array.

    Parameters
    ----------
    columns
        NOT NULL numeric expressions (integers up to 2**53 stay exact: row ids, epoch seconds).
    source
        ``events WHERE ...`` with ``%s`` placeholders for ``params``.
    order, page
        Columns to sort by and `` LIMIT n OFFSET m``; without them the rows come in no order.
    """
    row = " || ".join(f"float8send(({c})::float8)" for c in columns)
    keys = ", ".join(order)
    sort = f" ORDER BY {keys}" if keys else ""
    inner = f"SELECT {row} AS b{', ' if keys else ''}{keys} FROM {source}{sort}{page}"
    try:
        found = conn.execute(f"SELECT string_agg(b, ''::bytea{sort}) FROM ({inner}) AS page", params or None,
                             binary=True).fetchone()
    except psycopg.errors.ProgramLimitExceeded:
        # Beyond the 1 GB one value may hold (tens of millions of rows): row by row instead.
        return _copy_floats(conn, f"SELECT {', '.join(f'({c})::float8' for c in columns)} FROM {source}{sort}{page}",
                            params, len(columns))
    raw = found[0] if found and found[0] is not None else b""
    return np.frombuffer(raw, dtype=">f8").astype(np.float64).reshape(-1, len(columns))


_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(_SIGNATURE) + 8  # signature, flags, header extension length


def _copy_floats(conn: psycopg.Connection, select: str, params: Sequence[Any], width: int) -> np.ndarray:
    """``select`` (``width`` NOT NULL float8 columns) through a binary COPY, parsed by numpy."""
    with conn.cursor().copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)", params or None) as copy:
        data = b"".join(bytes(block) for block in copy)
    extension = int.from_bytes(data[_HEADER - 4 : _HEADER], "big")
    body = memoryview(data)[_HEADER + extension : len(data) - 2]  # the trailer is a field count of -1
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for k in range(width):
        fields += [(f"len{k}", ">i4"), (f"v{k}", ">f8")]
    rows = np.frombuffer(body, dtype=np.dtype(fields))
    return np.column_stack([rows[f"v{k}"].astype(np.float64) for k in range(width)]) if len(rows) else (
        np.empty((0, width), dtype=np.float64))
