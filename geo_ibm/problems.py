"""Bounded problem reports: every problem of an input counted per column and reason, the first few listed.

A file of a million bad rows must not become a million :class:`~geo_ibm.errors.Problem`
objects, nor a page listing them all: :class:`ProblemLog` keeps the row numbers of every
problem as arrays (for the rejected-rows file and the counts) and builds problems only for
the first rows of each column.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geo_ibm.errors import Problem, ProblemCount, ValidationError
from geo_ibm.importlimits import PROBLEMS_LISTED, PROBLEMS_PER_COLUMN

VALUE_CHARS = 200
"""Characters of a listed problem's value; longer text is cut (a 20 MB cell stays out of pages)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown_value(value: Any) -> Any:
    """``value`` as a problem lists it: text cut to :data:`VALUE_CHARS`, control characters as ``\\xNN``; NA as ``None``."""
    if isinstance(value, str):
        cut = value[:VALUE_CHARS] + ("…" if len(value) > VALUE_CHARS else "")
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", cut)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


@dataclass(frozen=True)
class ColumnTotal:
    """Problems of one column (``None``: the whole file): how many there are and how many are listed."""

    column: str | None
    listed: int
    total: int


def column_totals(counts: Sequence[ProblemCount]) -> list[ColumnTotal]:
    """Per column, in the order first met, the problems counted and listed (from ``ValidationError.counts``)."""
    out: dict[str | None, list[int]] = {}
    for c in counts:
        listed, total = out.setdefault(c.column, [0, 0])
        out[c.column] = [listed + c.listed, total + c.count]
    return [ColumnTotal(column, listed, total) for column, (listed, total) in out.items()]


def summary_lines(counts: Sequence[ProblemCount]) -> list[str]:
    """One line per column: ``first 20 of 1,960,143 problems in column 'notes'`` (or all ``3 problems``)."""
    lines = []
    for t in column_totals(counts):
        where = f"in column {t.column!r}" if t.column else "in the file"
        noun = "problem" if t.total == 1 else "problems"
        lines.append(f"{t.total:,} {noun} {where}" if t.listed >= t.total else
                     f"first {t.listed:,} of {t.total:,} {noun} {where}")
    return lines


ValuesOf = Callable[[np.ndarray], Sequence[Any]]
"""Given positions, the values (or reasons) at them."""


class ProblemLog:
    """Counts every problem and keeps the first ``per_column`` of each column (at most ``listed`` in all).

    Parameters
    ----------
    per_column, listed
        How many problems are listed in detail per column and in all.
    """

    def __init__(self, *, per_column: int = PROBLEMS_PER_COLUMN, listed: int = PROBLEMS_LISTED) -> None:
        self.per_column = int(per_column)
        self.listed = int(listed)
        self._counts: dict[tuple[str | None, str], int] = {}
        self._kept: dict[str | None, list[tuple[int, int, str, Problem]]] = {}
        self._row_reasons: list[tuple[np.ndarray, str]] = []
        self._seq = 0
        self._file_level = False

    # -- recording -----------------------------------------------------------------------

    def add(self, problem: Problem) -> None:
        """Record one problem (a file-level one has ``row=None``)."""
        key = (problem.column, problem.reason)
        self._counts[key] = self._counts.get(key, 0) + 1
        self._keep(problem.column, problem.reason, [problem])
        if problem.row is None:
            self._file_level = True
        else:
            self._row_reasons.append((np.array([problem.row], dtype=np.int64), _label(problem.column, problem.reason)))

    def add_rows(
        self,
        positions: np.ndarray,
        rows: np.ndarray,
        *,
        file: str | None,
        column: str | None,
        reason: str,
        values: ValuesOf | None = None,
        reasons: ValuesOf | None = None,
    ) -> None:
        """Record the problem ``reason`` at ``positions`` (indexes into ``rows``, the row numbers).

        Parameters
        ----------
        values
            The values at given positions, asked only for the listed ones.
        reasons
            The detailed reason at given positions (e.g. naming the other rows of a duplicate);
            ``reason`` is what the problems are counted under.
        """
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return
        key = (column, reason)
        self._counts[key] = self._counts.get(key, 0) + len(positions)
        numbers = rows[positions]
        self._row_reasons.append((numbers, _label(column, reason)))
        room = self.per_column
        if len(positions) > room:
            first = np.argpartition(numbers, room - 1)[:room]
            first = first[np.argsort(numbers[first], kind="stable")]
        else:
            first = np.argsort(numbers, kind="stable")
        chosen = positions[first]
        shown = values(chosen) if values is not None else [None] * len(chosen)
        texts = reasons(chosen) if reasons is not None else [reason] * len(chosen)
        self._keep(column, reason, [
            Problem(str(text), file=file, row=int(r), column=column, value=shown_value(v))
            for r, v, text in zip(rows[chosen].tolist(), shown, texts)
        ])

    def add_mask(self, mask: np.ndarray, rows: np.ndarray, **kwargs: Any) -> None:
        """:meth:`add_rows` at the positions where ``mask`` is true."""
        self.add_rows(np.flatnonzero(mask), rows, **kwargs)

    def _keep(self, column: str | None, reason: str, problems: list[Problem]) -> None:
        kept = self._kept.setdefault(column, [])
        for p in problems:
            self._seq += 1
            kept.append((-1 if p.row is None else p.row, self._seq, reason, p))
        if len(kept) > self.per_column:
            kept.sort(key=lambda k: (k[0], k[1]))
            del kept[self.per_column:]

    # -- reading -------------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Number of problems recorded."""
        return sum(self._counts.values())

    def __len__(self) -> int:
        return self.total

    def _listed(self) -> list[tuple[int, int, str, Problem]]:
        everything = [k for kept in self._kept.values() for k in kept]
        everything.sort(key=lambda k: (k[0], k[1]))
        return everything[: self.listed]

    @property
    def problems(self) -> list[Problem]:
        """The listed problems: file-level ones first, then by row."""
        return [k[3] for k in self._listed()]

    @property
    def counts(self) -> list[ProblemCount]:
        """Every (column, reason) with its count and how many of them are listed."""
        listed: dict[tuple[str | None, str], int] = {}
        for _row, _seq, reason, p in self._listed():
            listed[(p.column, reason)] = listed.get((p.column, reason), 0) + 1
        return [ProblemCount(column, reason, count, listed.get((column, reason), 0))
                for (column, reason), count in self._counts.items()]

    @property
    def file_level(self) -> bool:
        """Whether a problem concerns the whole file (no row): then no row can be imported."""
        return self._file_level

    def bad_rows(self) -> np.ndarray:
        """The sorted distinct row numbers with a problem."""
        if not self._row_reasons:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([rows for rows, _ in self._row_reasons]))

    def row_reasons(self) -> tuple[np.ndarray, list[str]]:
        """Every row with a problem (sorted) and its reasons joined with ``; `` (``column: reason`` each)."""
        if not self._row_reasons:
            return np.zeros(0, dtype=np.int64), []
        rows = np.concatenate([r for r, _ in self._row_reasons])
        which = np.concatenate([np.full(len(r), k, dtype=np.int64) for k, (r, _) in enumerate(self._row_reasons)])
        order = np.lexsort((which, rows))
        rows, which = rows[order], which[order]
        labels = np.array([label for _, label in self._row_reasons], dtype=object)[which]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        sizes = np.diff(np.r_[starts, len(rows)])
        joined = labels[starts]
        for k in np.flatnonzero(sizes > 1).tolist():  # most bad rows have one problem
            joined[k] = "; ".join(labels[starts[k] : starts[k] + sizes[k]])
        return rows[starts], joined.tolist()

    def error(self, message: str) -> ValidationError:
        """A :class:`ValidationError` with the listed problems and every count."""
        return ValidationError(message, self.problems, counts=self.counts)


def _label(column: str | None, reason: str) -> str:
    return f"{column}: {reason}" if column else reason
