"""Limits of an event file import: bytes, columns, rows, field lengths and the listed problems.

Every limit is checked as early as possible, before memory grows with the input: the file's
size before it is opened, its columns from the header line, its rows while it is read, field
lengths and control characters column by column. Each refusal names the file and, where
there is one, the row and the column.

==================== ============ ==========================================================
limit                default      setting (environment, read at each import)
==================== ============ ==========================================================
file size            256 MiB      ``GEO_IBM_IMPORT_MAX_MB`` (the web app also refuses uploads
                                  over ``GEO_IBM_MAX_UPLOAD_MB`` before they are read)
data rows            2,000,000    ``GEO_IBM_IMPORT_MAX_ROWS``
XLSX data rows       250,000      (also at most the rows above) a workbook is parsed cell by
                                  cell; export a bigger sheet as CSV
columns              100          the event schema has 15
header line          64 KiB
one CSV record       16 MiB       (the reader's block: a record must fit in one)
field length         100 chars    ``event_id``, codes, counts, coordinates, dates,
                                  ``operation_id``, ``source_unit``
``notes``            2,000 chars
listed problems      20 a column, every problem is counted per column and reason
                     200 in all
==================== ============ ==========================================================

Control characters (C0 and DEL) are refused in every stored text column; ``notes`` may hold
tab, line feed and carriage return.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from geo_ibm.settings import env_number

MAX_FILE_MB = 256
"""Largest event file imported, MiB (``GEO_IBM_IMPORT_MAX_MB``)."""

MAX_ROWS = 2_000_000
"""Most data rows (records after the header, blank ones included) of one file (``GEO_IBM_IMPORT_MAX_ROWS``)."""

MAX_XLSX_ROWS = 250_000
"""Most non-empty rows read from a workbook (about 20 seconds of parsing here)."""

MAX_COLUMNS = 100
"""Most columns of one file (header cells, or attribute fields of a vector layer)."""

MAX_HEADER_BYTES = 64 * 1024
"""Longest header line of a CSV file."""

MAX_RECORD_BYTES = 16 * 1024 * 1024
"""Longest CSV record: the reader parses in blocks of this size and a record must fit in one."""

FIELD_CHARS = 100
"""Longest value, in characters, of a stored column other than ``notes``."""

NOTES_CHARS = 2_000
"""Longest ``notes`` value, in characters."""

PROBLEMS_PER_COLUMN = 20
"""Problems listed in detail per column (every problem is counted)."""

PROBLEMS_LISTED = 200
"""Problems listed in detail in all."""

FREE_TEXT_COLUMNS = frozenset({"notes"})
"""Columns that may hold tab, line feed and carriage return (no other control character)."""


@dataclass(frozen=True)
class ImportLimits:
    """The limits one import runs under (see the module's table)."""

    file_bytes: int = MAX_FILE_MB * 1024 * 1024
    rows: int = MAX_ROWS
    xlsx_rows: int = MAX_XLSX_ROWS
    columns: int = MAX_COLUMNS
    header_bytes: int = MAX_HEADER_BYTES
    record_bytes: int = MAX_RECORD_BYTES
    field_chars: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({"notes": NOTES_CHARS}))
    default_field_chars: int = FIELD_CHARS
    problems_per_column: int = PROBLEMS_PER_COLUMN
    problems_listed: int = PROBLEMS_LISTED

    def chars(self, column: str) -> int:
        """Longest accepted value of the stored column ``column``, in characters."""
        return int(self.field_chars.get(column, self.default_field_chars))


def import_limits() -> ImportLimits:
    """The limits in force: the defaults, with ``GEO_IBM_IMPORT_MAX_MB`` and ``GEO_IBM_IMPORT_MAX_ROWS`` applied.

    Raises
    ------
    ValidationError
        If a setting is not a positive number.
    """
    megabytes = env_number("GEO_IBM_IMPORT_MAX_MB", MAX_FILE_MB, positive=True, what="a number of MiB")
    rows = int(env_number("GEO_IBM_IMPORT_MAX_ROWS", MAX_ROWS, integer=True, positive=True, what="a whole number of rows"))
    return ImportLimits(file_bytes=int(megabytes * 1024 * 1024), rows=rows, xlsx_rows=min(rows, MAX_XLSX_ROWS))
