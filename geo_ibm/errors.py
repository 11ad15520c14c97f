"""The project's one exception family; the web layer maps it to 4xx responses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class GeoIbmError(ValueError):
    """Root of every error geo_ibm raises on purpose; ``http_status`` is what the web layer sends."""

    http_status = 400


@dataclass(frozen=True)
class Problem:
    """One problem found in an input: where (file, row, column), what value, and why.

    ``row`` is the row as a user sees it in the file: for CSV and XLSX the spreadsheet line
    number (the header is line 1, so the first data row is 2); for vector files the 1-based
    feature number; ``None`` for file-level problems.
    """

    reason: str
    file: str | None = None
    row: int | None = None
    column: str | None = None
    value: Any = None

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column!r}")
        loc = ", ".join(where)
        val = "" if self.value is None else f" (value {self.value!r})"
        return f"{loc}: {self.reason}{val}" if loc else f"{self.reason}{val}"


@dataclass(frozen=True)
class ProblemCount:
    """How many problems one column (``None``: the file) has for one reason, and how many are listed."""

    column: str | None
    reason: str
    count: int
    listed: int


class ValidationError(GeoIbmError):
    """Bad input. ``problems`` lists the problems found, so all can be fixed at once.

    A large input may list only the first problems of each column: ``counts`` then holds
    every problem's count per column and reason, and :attr:`total` the count of all.
    """

    def __init__(self, message: str, problems: list[Problem] | None = None, *,
                 counts: list[ProblemCount] | None = None) -> None:
        self.problems: list[Problem] = list(problems or [])
        self.counts: list[ProblemCount] = list(counts or [])
        if self.problems:
            shown = "\n".join(f"  - {p}" for p in self.problems[:50])
            more = self.total - min(len(self.problems), 50)
            if more > 0:
                shown += f"\n  ... and {more} more"
            message = f"{message}\n{shown}"
        super().__init__(message)

    @property
    def total(self) -> int:
        """Number of problems found, listed or not."""
        return max(sum(c.count for c in self.counts), len(self.problems))


class CrsError(GeoIbmError):
    """A layer has no CRS or a CRS that cannot be used where it was given."""


class NotFoundError(GeoIbmError):
    """A named thing (region, layer, collection, feature, user) does not exist."""

    http_status = 404


class StoreError(GeoIbmError):
    """The store cannot do what was asked (conflicting event, missing store, locked file)."""

    http_status = 409


class ClusterError(GeoIbmError):
    """The Dask cluster could not finish the work: workers kept dying on a task, or the scheduler went away."""

    http_status = 503


class NotPermittedError(ValidationError):
    """A result the reader's role may not see, whatever the parameters (e.g. single event positions)."""

    http_status = 403
