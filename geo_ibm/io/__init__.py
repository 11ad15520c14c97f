"""Disk access: reading and writing vector and table files (GeoPackage, GeoJSON, CSV, XLSX).

:mod:`~geo_ibm.io.vectors` reads and writes layers and tables; :mod:`~geo_ibm.io.eventfiles`
reads interception event files for the import pipeline. Everything is importable from here.
"""
from __future__ import annotations

from geo_ibm.io.eventfiles import EVENT_TABLE_SUFFIXES, ROW_ERRORS, XLSX_MAX_UNCOMPRESSED, read_event_table
from geo_ibm.io.vectors import (
    FORMULA_PREFIXES,
    PathLike,
    ensure_working_crs,
    file_sha256,
    load_frame,
    neutralise_formulas,
    read_parameters,
    read_vector,
    save_frame,
    spreadsheet_safe,
    vector_bytes,
    write_table,
    write_vector,
)

__all__ = [
    "EVENT_TABLE_SUFFIXES", "FORMULA_PREFIXES", "ROW_ERRORS", "XLSX_MAX_UNCOMPRESSED", "PathLike",
    "ensure_working_crs", "file_sha256", "neutralise_formulas", "load_frame", "read_event_table", "read_parameters", "read_vector",
    "save_frame", "spreadsheet_safe", "vector_bytes", "write_table", "write_vector",
]
