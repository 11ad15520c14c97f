"""Export of an event store into an archive, quarter by quarter (memory bounded by one page of events)."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from geo_ibm.archive.format import ArchiveWriter, Manifest
from geo_ibm.settings import WORKING_CRS

EXPORT_COLUMNS = ["event_id", "observed_at", "persons", "smugglers", "location_kind", "transport_mode",
                  "entry_country", "region", "canton"]
"""Store columns written to every partition, next to ``x``/``y`` (EPSG:2169) and the WKB geometry."""

PAGE_ROWS = 500_000
"""Most events read from the store at once; a larger quarter is written as several files."""


def export_store(store: Any, directory: str | os.PathLike[str], *, page_rows: int = PAGE_ROWS,
                 progress: Callable[[int, int], None] | None = None) -> Manifest:
    """Write every event of ``store`` into a new archive at ``directory``, partitioned by quarter.

    Events are read one quarter at a time (in pages of ``page_rows``, ordered by time), so
    memory is bounded by a page, not by the store. The archive is in EPSG:2169, the store's CRS.

    Parameters
    ----------
    store
        An :class:`geo_ibm.store.EventStore`.
    progress
        Called with ``(events written, events in the store)`` after each file.

    Raises
    ------
    ValidationError
        If ``directory`` already holds an archive.
    """
    quarters = store.quarter_counts()
    total = int(quarters["events"].sum()) if len(quarters) else 0
    writer = ArchiveWriter(directory, crs=WORKING_CRS, source=f"store {store.location}")
    written = 0
    for quarter in quarters["quarter"].astype(str):
        offset = 0
        while True:
            page = store.events(quarter=quarter, columns=EXPORT_COLUMNS, limit=page_rows, offset=offset)
            if page.empty:
                break
            xy = np.column_stack([page.geometry.x.to_numpy(), page.geometry.y.to_numpy()])
            columns: dict[str, Any] = {name: page[name].to_numpy() for name in EXPORT_COLUMNS if name != "observed_at"}
            columns.update(x=xy[:, 0], y=xy[:, 1], observed_at=page["observed_at"])
            writer.write(columns, quarter=quarter)
            written += len(page)
            offset += len(page)
            if progress is not None:
                progress(written, total)
            if len(page) < page_rows:
                break
    return writer.close()


__all__ = ["EXPORT_COLUMNS", "PAGE_ROWS", "export_store"]
