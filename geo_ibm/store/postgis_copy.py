"""Binary COPY between numpy/pandas and PostgreSQL: event rows in, numeric columns out into numpy.

``COPY ... FROM STDIN (FORMAT BINARY)`` through psycopg's C row formatter is the fastest way
psycopg 3 offers to load rows (measured in ``benchmarks/bench_store.py``). Reading, a query
of float columns only comes back as binary COPY whose rows all have the same length, so the
whole answer is one ``numpy.frombuffer`` away from an ``(n, k)`` array: no Python object per
value.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from geo_ibm.store.frames import python_values

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(_SIGNATURE) + 8  # signature, flags, header extension length (always 0 today)


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


def copy_floats(conn: psycopg.Connection, select: str, params: Sequence[Any], width: int) -> np.ndarray:
    """The rows of ``select`` (``width`` NOT NULL ``float8`` columns) as an ``(n, width)`` float64 array.

    Integers up to 2**53 (row ids, epoch seconds, counts) cast to ``float8`` in the query stay exact.
    """
    chunks: list[bytes] = []
    with conn.cursor().copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)", params or None) as copy:
        for block in copy:
            chunks.append(bytes(block))
    data = b"".join(chunks)
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(data[_HEADER - 4 : _HEADER], "big")
    body = memoryview(data)[_HEADER + extension : len(data) - 2]  # the trailer is a field count of -1
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for k in range(width):
        fields += [(f"len{k}", ">i4"), (f"v{k}", ">f8")]
    rows = np.frombuffer(body, dtype=np.dtype(fields))
    if len(rows) and (np.any(rows["count"] != width) or any(np.any(rows[f"len{k}"] != 8) for k in range(width))):
        raise ValueError(f"COPY rows are not {width} non-null float8 values")
    out = np.empty((len(rows), width), dtype=np.float64)
    for k in range(width):
        out[:, k] = rows[f"v{k}"]
    return out
