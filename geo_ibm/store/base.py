"""The backend-neutral event store interface, with the logic every backend shares.

A backend subclasses :class:`EventStore` and implements its abstract methods: a few queries
(``_select_*``), one write transaction (:class:`WriteTransaction`), the audit, imports and
ground-truth tables, and the storage primitives of web accounts and of counters per key (the
login throttle) with tallied audit records.
Filter parsing (:mod:`geo_ibm.store.filters`), the import pipeline
(:mod:`geo_ibm.store.imports`) and frame conversions (:mod:`geo_ibm.store.frames`) are
written once for all backends; no caller sees a database connection.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm import io
from geo_ibm.errors import NotFoundError, ValidationError
from geo_ibm.settings import WORKING_CRS
from geo_ibm.store import imports as pipeline
from geo_ibm.store.filters import EventFilter, Paging, parse_columns, parse_count_keys, parse_filters, parse_paging
from geo_ibm.store.frames import none_for_na
from geo_ibm.store.imports import ImportRecord, ImportReport

AssignRegions = Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]
"""Adds ``canton`` and ``region`` columns to a point GeoDataFrame (as :func:`geo_ibm.layers.assign_regions`)."""


@dataclass(frozen=True)
class Account:
    """A web account as stored: ``name`` in its stored spelling, ``created`` tz-aware UTC."""

    name: str
    role: str
    password_hash: str
    created: datetime
    tokens: int = 0
    """Number of API tokens (filled by :meth:`EventStore.list_accounts`, else 0)."""


HitKey = tuple[str, str]
"""A counter's name as ``(space, key)``: the space groups the counters of one purpose (e.g.
``"login-address"``) and bounds their number apart from the other spaces."""


@dataclass(frozen=True)
class Hits:
    """A counter as stored: how many hits since it (re)started, and the time of the last one (epoch seconds)."""

    count: int
    last: float


class WriteTransaction(ABC):
    """What a backend offers inside one write transaction: everything done is stored, or nothing.

    The transaction moves :meth:`EventStore.version` at commit when it added an import or
    events or set regions; audit records alone leave the version as it is.
    """

    @abstractmethod
    def stored_events(self, event_ids: Sequence[str] | pd.Series) -> pd.DataFrame:
        """The stored events among ``event_ids``: ``event_id``, the content columns
        (:data:`~geo_ibm.store.frames.CONTENT_COLUMNS`), ``x``, ``y``; in any order.

        A Series is taken as it is: its values become Python strings only when the store
        holds events to compare with (an import into an empty store makes none)."""

    def count_of_import(self, import_id: int) -> int | None:
        """How many stored events carry ``import_id`` (the events that import added), or ``None``
        when the backend cannot count them without reading them."""
        return None

    def count_stored(self, event_ids: Sequence[str]) -> int:
        """How many of ``event_ids`` (distinct ids) are stored; a backend may count without reading the rows."""
        return len(self.stored_events(event_ids))

    @abstractmethod
    def add_import(self, record: ImportRecord) -> int:
        """Append ``record`` to the imports table (time: now) and return its id."""

    @abstractmethod
    def add_events(self, table: pd.DataFrame, *, progress: Callable[[int], None] | None = None) -> None:
        """Store new events given as :data:`~geo_ibm.store.frames.RECORD_COLUMNS`.

        ``progress(n)`` is called after each batch with the rows written so far.
        """

    @abstractmethod
    def event_places(self) -> pd.DataFrame:
        """Every stored event as ``key`` (the backend's row id), ``x``, ``y``, ``canton``, ``region``."""

    @abstractmethod
    def set_places(self, keys: np.ndarray, canton: np.ndarray, region: np.ndarray) -> None:
        """Give the events of ``keys`` (from :meth:`event_places`) these cantons and regions (``None``: none)."""

    @abstractmethod
    def audit(self, action: str, *, user: str, detail: dict[str, Any]) -> None:
        """Append an audit record (time: now; ``detail`` stored as JSON)."""


class EventStore(ABC):
    """Interception events with their imports, audit trail, ground truth and web accounts.

    Parameters
    ----------
    outline
        Luxembourg's outline (shapely geometry, EPSG:2169) for the location check; ``None``
        loads ``geo_ibm.layers.luxembourg_outline()`` when first needed; ``False`` skips the
        check (tests and special imports only).
    assign_regions
        Callable adding ``canton``/``region`` to a point GeoDataFrame; ``None`` uses
        ``geo_ibm.layers.assign_regions``; ``False`` leaves both columns empty.
    serving
        The handle serves a long-running process that reads often (the web app): a backend
        may keep read connections open between calls (the GeoPackage keeps one per thread;
        a database server's pool does so anyway).
    """

    def __init__(self, *, outline: Any = None, assign_regions: AssignRegions | bool | None = None,
                 serving: bool = False) -> None:
        self._outline = outline
        self._assign_regions = assign_regions
        self.serving = serving

    # -- the store itself -------------------------------------------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store is, as text fit for messages (a path, or a URL without password)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the store has been created (it may still need :meth:`init`)."""

    @abstractmethod
    def init(self) -> None:
        """Create the store and its tables, or bring an older store's tables up to date; keeps all data."""

    @abstractmethod
    def version(self) -> str:
        """A short text that changes whenever content a cache may hold changes.

        It moves with every import (events and the imports table), ground-truth write,
        region re-assignment, and change of accounts or API tokens, in every process using
        the store. Audit records, login sessions and the login throttle (which no cache
        holds) leave it alone. It starts with an identity of the store, so two stores never
        share a version; it reveals no path or secret (fit for an ETag).

        Raises
        ------
        StoreError
            If there is no store.
        """

    # -- reading events ---------------------------------------------------------------------

    def events(
        self,
        *,
        start: Any = None,
        end: Any = None,
        quarter: str | None = None,
        region: str | list[str] | None = None,
        canton: str | list[str] | None = None,
        location_kind: str | list[str] | None = None,
        entry_country: str | list[str] | None = None,
        transport_mode: str | list[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        event_id: str | list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        columns: list[str] | tuple[str, ...] | None = None,
    ) -> gpd.GeoDataFrame:
        """Stored events matching every given filter, ordered by time.

        Parameters
        ----------
        start, end
            ``start <= observed_at < end``; ISO text, date or datetime, naive = local time. An
            ``end`` given as a date alone includes that whole day.
        quarter
            ``'2025Q3'`` (``'2025-Q3'`` accepted), local time.
        region, canton
            A police region / canton name or a list of them (case-insensitive).
        location_kind, entry_country, transport_mode
            A code or a list of codes (see :mod:`geo_ibm.events`).
        bbox
            ``(minx, miny, maxx, maxy)`` in EPSG:2169 metres.
        event_id
            An event id or a list of at most 30 000 (ids not stored match nothing).
        limit, offset
            Paging.
        columns
            Return only these columns (names of :data:`~geo_ibm.store.filters.LEAN_COLUMNS`)
            and ``geometry``, e.g. ``["observed_at", "persons"]`` for the hotspot methods:
            same rows, same order, same values, read without building the text columns of a
            million rows.

        Returns
        -------
        GeoDataFrame
            EPSG:2169; columns ``event_id``, ``observed_at`` (tz-aware Europe/Luxembourg),
            ``location_kind``, ``persons``, ``smugglers``, ``transport_mode``,
            ``entry_country``, ``operation_id``, ``source_unit``, ``notes``, ``quarter``,
            ``canton``, ``region``, ``geometry`` (Point); with ``columns``, those in the
            order given, then ``geometry``.

        Raises
        ------
        ValidationError
            If a filter value is malformed or unknown, or a column is not one of
            ``LEAN_COLUMNS`` (the message names the parameter).
        """
        paging = parse_paging(limit, offset)
        wanted = parse_columns(columns) if columns is not None else None
        flt = self._filter(dict(
            start=start, end=end, quarter=quarter, region=region, canton=canton, location_kind=location_kind,
            entry_country=entry_country, transport_mode=transport_mode, bbox=bbox, event_id=event_id,
        ))
        return self._select_events(flt, paging=paging, columns=wanted)

    def event_points(self, **filters: Any) -> np.ndarray:
        """Coordinates of the events matching the filters of :meth:`events` (no paging).

        The fast path for maps and counts per cell: only ``x``/``y`` are read.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, 2)``: x, y in EPSG:2169 metres, one row per event, in no particular order.
        """
        return self._select_points(self._filter(filters))

    def counts(self, *, by: str | tuple[str, ...] | list[str] = ("quarter",), **filters: Any) -> pd.DataFrame:
        """Events and persons per group, counted in one query (filters as in :meth:`events`).

        Parameters
        ----------
        by
            One or more of :data:`~geo_ibm.store.filters.COUNT_KEYS`, e.g. ``("quarter", "region")``.

        Returns
        -------
        DataFrame
            The ``by`` columns, ``events``, ``persons``: one row per combination present,
            sorted by the ``by`` columns (a missing canton/region, ``None``, first).

        Raises
        ------
        ValidationError
            If ``by`` names something else, or a filter is malformed.
        """
        keys = parse_count_keys(by)
        return self._select_counts(self._filter(filters), keys)

    def count(self, **filters: Any) -> int:
        """Number of stored events matching the filters of :meth:`events` (no paging)."""
        return self._select_count(self._filter(filters))

    def quarter_counts(self, **filters: Any) -> pd.DataFrame:
        """Events and persons per quarter (filters as in :meth:`events`).

        Returns
        -------
        DataFrame
            ``quarter`` (``2025Q3``), ``events``, ``persons``; sorted by quarter.
        """
        return self.counts(by="quarter", **filters)

    def event(self, event_id: str) -> dict[str, Any]:
        """One stored event as a dict (keys as the columns of :meth:`events`).

        Raises
        ------
        NotFoundError
            If no event has this id.
        """
        found = self._select_events(self._filter({"event_id": str(event_id)}), paging=Paging(), columns=None)
        if not len(found):
            raise NotFoundError(f"event_id {event_id!r} not found in the store")
        return found.iloc[0].to_dict()

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """Layers and counts: ``path`` (:attr:`location`), ``layers``, ``events``, ``persons``,
        ``first_event``, ``last_event``, ``imports``, ``ground_truth``, ``audit_records``."""

    @abstractmethod
    def audit_log(self, *, limit: int = 200) -> pd.DataFrame:
        """The newest audit records first.

        Returns
        -------
        DataFrame
            ``id``, ``at`` (tz-aware UTC), ``user``, ``action``, ``detail`` (dict).
        """

    @abstractmethod
    def imports(self) -> pd.DataFrame:
        """Every import attempt, newest first.

        Returns
        -------
        DataFrame
            ``id``, ``imported_at`` (tz-aware UTC), ``user``, ``file_name``, ``sha256``,
            ``rows``, ``accepted``, ``rejected``, ``duplicates``, ``status`` (``ok`` or
            ``failed``), ``message`` (why it failed).
        """

    @abstractmethod
    def ground_truth(self) -> gpd.GeoDataFrame:
        """The demo ground-truth layer (EPSG:2169); an empty GeoDataFrame when there is none.

        Columns are those written; datetime columns come back tz-aware (Europe/Luxembourg).
        """

    # -- writing ----------------------------------------------------------------------------

    def import_file(
        self,
        path: io.PathLike,
        *,
        user: str,
        skip_invalid: bool = False,
        rejected_path: io.PathLike | None = None,
        progress: Callable[[int, int], None] | None = None,
        name: str | None = None,
    ) -> ImportReport:
        """Import an event file (CSV, XLSX, GeoJSON, GeoPackage) in one transaction.

        Parameters
        ----------
        path
            The file; read with :func:`geo_ibm.io.read_event_table`.
        user
            Who imports, for the audit trail.
        skip_invalid
            Import the valid rows and write the invalid ones, with a ``reason`` column, to
            ``rejected_path``. By default one invalid row stops the whole import.
        rejected_path
            Where rejected rows go (default ``<file name>.rejected.csv`` next to the input).
        progress
            Called as ``progress(done, total)`` while rows are written.
        name
            File name shown in messages and the imports table (default: the path's name; the
            web app passes the uploaded file's name).

        Returns
        -------
        ImportReport

        Raises
        ------
        ValidationError
            If the file cannot be read or has invalid rows (and ``skip_invalid`` is off); every
            problem is listed with file, row, column and value. Nothing is stored.
        StoreError
            If an event_id is already stored with different content. Nothing is stored.
        """
        return pipeline.import_file(self, path, user=user, skip_invalid=skip_invalid, rejected_path=rejected_path,
                                    progress=progress, name=name)

    def import_events(
        self, gdf: gpd.GeoDataFrame, *, source: str, user: str, sha256: str | None = None
    ) -> ImportReport:
        """Import events held in memory (e.g. from :func:`geo_ibm.demo.generate_events`).

        The frame is validated like a file (all or nothing); ``source`` names it in messages
        and in the imports table.
        """
        return pipeline.import_events(self, gdf, source=source, user=user, sha256=sha256)

    def audit(self, action: str, *, user: str, detail: dict[str, Any]) -> None:
        """Append an audit record (UTC time, user, action, detail as JSON)."""
        if not action or not str(action).strip():
            raise ValidationError("action must be a non-empty text")
        self.init()
        with self._write_transaction() as tx:
            tx.audit(str(action), user=str(user), detail=detail)

    @abstractmethod
    def write_ground_truth(self, gdf: gpd.GeoDataFrame) -> None:
        """Replace the demo ground-truth layer with ``gdf`` (converted to EPSG:2169).

        Naive datetime columns are taken as local time (Europe/Luxembourg).

        Raises
        ------
        ValidationError
            If a column name cannot be stored (letters, digits and ``_``; not ``fid``/``geom``).
        """

    def reassign_regions(
        self, *, assign: AssignRegions | None = None, before_commit: Callable[[], None] | None = None
    ) -> int:
        """Give every stored event the canton and police region of its location afresh, in one transaction.

        Parameters
        ----------
        assign
            Adds ``canton``/``region`` to points (default: the store's own assignment), e.g.
            :func:`geo_ibm.layers.assign_regions` over a canton layer about to be installed.
        before_commit
            Called after the events are updated and before the commit; if it raises, nothing
            changes (the installer of a canton layer renames its file here).

        Returns
        -------
        int
            The number of events whose canton or region changed.
        """
        return pipeline.reassign_regions(self, assign=assign, before_commit=before_commit)

    # -- saved operations (the rules live in geo_ibm.planning.operations) --------------------

    @abstractmethod
    def add_operation(self, name: str, body: str, *, user: str, created: datetime, start_date: str,
                      end_date: str) -> bool:
        """Save an operation (``body``: its JSON document); ``False`` when the name is taken (case-insensitive)."""

    @abstractmethod
    def operations(self) -> pd.DataFrame:
        """The saved operations, newest first: ``id``, ``name``, ``created`` (tz-aware UTC), ``user``,
        ``start_date``, ``end_date`` (ISO dates)."""

    @abstractmethod
    def operation(self, name: str) -> tuple[dict[str, Any], str] | None:
        """One saved operation by name (case-insensitive): its listed columns and its JSON ``body``, or ``None``."""

    # -- web accounts: storage primitives (the rules live in geo_ibm.accounts) --------------

    @abstractmethod
    def add_account(self, name: str, role: str, password_hash: str, *, created: datetime) -> bool:
        """Store a new account; ``False``, storing nothing, when ``name`` exists in any letter case."""

    @abstractmethod
    def account(self, name: str) -> Account | None:
        """The account ``name`` (any letter case), or ``None``."""

    @abstractmethod
    def list_accounts(self) -> list[Account]:
        """Every account with its number of tokens, sorted by name ignoring case."""

    @abstractmethod
    def update_account(
        self, name: str, *, updated: datetime, role: str | None = None, password_hash: str | None = None,
        end_sessions: bool = False,
    ) -> bool:
        """Change the role and/or password hash of ``name``; ``end_sessions`` also removes its
        sessions, in the same transaction. ``False`` if there is no such account."""

    @abstractmethod
    def delete_account(self, name: str) -> bool:
        """Remove the account ``name`` with its tokens and sessions; ``False`` if there was none."""

    @abstractmethod
    def add_token(self, name: str, token_sha256: str, *, created: datetime) -> str | None:
        """Store an API token digest for ``name``; the account's stored name, or ``None`` (nothing
        stored) without such account."""

    @abstractmethod
    def token_owner(self, token_sha256: str) -> str | None:
        """The stored name of the account holding this token digest, or ``None``."""

    @abstractmethod
    def delete_tokens(self, name: str) -> int:
        """Remove every token of ``name``; returns how many there were."""

    @abstractmethod
    def add_session(self, name: str, sid_sha256: str, *, created: datetime, expires: datetime) -> str | None:
        """Store a login session of ``name`` after removing every session expired at ``created``;
        the account's stored name, or ``None`` (no session stored) without such account."""

    @abstractmethod
    def session_account(self, sid_sha256: str, *, now: datetime) -> Account | None:
        """The account of a session digest still live at ``now``, or ``None``."""

    @abstractmethod
    def delete_session(self, sid_sha256: str) -> bool:
        """Remove one session; whether it existed."""

    @abstractmethod
    def delete_sessions(self, name: str) -> int:
        """Remove every session of ``name``; returns how many there were."""

    # -- counters and tallies: storage primitives (the login policy lives in geo_ibm.throttle) -

    @abstractmethod
    def hits(self, keys: Sequence[HitKey], *, since: float) -> dict[HitKey, Hits]:
        """The counters of those ``keys`` whose last hit is after ``since`` (epoch seconds).

        A key with no counter, or whose last hit is at or before ``since``, is absent from the
        result. Reads only: nothing is added or removed.
        """

    @abstractmethod
    def add_hits(self, keys: Sequence[HitKey], at: float, *, since: float, max_keys: int) -> dict[HitKey, Hits]:
        """Count one hit at ``at`` for each of ``keys`` and return their counters, in one transaction.

        A counter whose last hit is at or before ``since`` starts again at 1; ``last`` becomes
        the later of its old value and ``at``. The same transaction keeps the state bounded, in
        each space of ``keys`` apart: counters whose last hit is at or before ``since`` go,
        and beyond ``max_keys`` counters those with the oldest last hit go.
        """

    @abstractmethod
    def clear_hits(self, keys: Sequence[HitKey]) -> None:
        """Remove the counters of ``keys``."""

    @abstractmethod
    def hit_keys(self, space: str, *, since: float) -> int:
        """Number of counters of ``space`` whose last hit is after ``since``."""

    @abstractmethod
    def audit_tally(self, action: str, *, user: str, key: str, detail: dict[str, Any], at: float,
                    since: float, count: int = 1) -> int:
        """Count ``count`` more ``action`` of ``key`` in the audit trail; returns the count of its record.

        The record tallied for (``action``, ``key``) is updated if it was opened after
        ``since`` (epoch seconds): its detail's ``count`` grows by ``count`` and ``last``
        becomes the time now (ISO 8601 UTC). Otherwise a new audit record is appended (time
        now, ``user``, ``action``, ``detail`` with ``count`` and ``last``) and opened at ``at``
        for the next tallies. Tallies opened at or before ``since`` are forgotten in the same
        transaction (their records stay). Unlike :meth:`audit`, one record stands for many
        events: repeated failures of a key cost one record per window, not one each.
        """

    # -- backend primitives -----------------------------------------------------------------

    @abstractmethod
    def _write_transaction(self, *, new_rows: int = 0) -> AbstractContextManager[WriteTransaction]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        ``new_rows`` is the number of events an import in it may add: a backend may prepare a
        large one (the GeoPackage store writes an import into an empty store once, see
        ``GeoPackageStore._leave_wal_for_bulk``); others ignore it.

        Raises
        ------
        StoreError
            If the store is missing or the write cannot start (e.g. another import holds it).
        """

    @abstractmethod
    def _stored_names(self, column: str) -> list[str]:
        """Distinct stored values of ``region`` or ``canton``."""

    @abstractmethod
    def _select_events(self, flt: EventFilter, *, paging: Paging, columns: list[str] | None) -> gpd.GeoDataFrame:
        """The events of ``flt`` as :meth:`events` returns them (``columns`` already checked)."""

    @abstractmethod
    def _select_points(self, flt: EventFilter) -> np.ndarray:
        """``x``, ``y`` of the events of ``flt`` as an ``(n, 2)`` float array."""

    @abstractmethod
    def _select_counts(self, flt: EventFilter, keys: list[str]) -> pd.DataFrame:
        """Events and persons of ``flt`` grouped by ``keys`` (see :meth:`counts`)."""

    @abstractmethod
    def _select_count(self, flt: EventFilter) -> int:
        """The number of events of ``flt``."""

    # -- shared helpers ---------------------------------------------------------------------

    def _filter(self, filters: dict[str, Any]) -> EventFilter:
        return parse_filters(filters, stored_names=self._stored_names)

    def _outline_geometry(self) -> Any:
        if self._outline is False:
            return None
        if self._outline is None:
            from geo_ibm.layers import luxembourg_outline

            self._outline = luxembourg_outline().geometry.union_all()
        return self._outline

    def _regions(self, gdf: gpd.GeoDataFrame, *, assign: AssignRegions | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Canton and region of each point (object arrays, ``None`` where there is none)."""
        n = len(gdf)
        chosen = assign if assign is not None else self._assign_regions
        if chosen is False or n == 0:
            return np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        if chosen is None or chosen is True:
            from geo_ibm.layers import assign_regions

            chosen = assign_regions
        out = chosen(gdf[["geometry"]].reset_index(drop=True))
        return none_for_na(out["canton"]), none_for_na(out["region"])

    def _prepare_regions(self) -> None:
        """Pay ahead what :meth:`_regions_xy` of many points costs once (the shipped cantons' lookup grid)."""
        if self._assign_regions is None or self._assign_regions is True:
            from geo_ibm.layers import prepare_region_lookup

            prepare_region_lookup()

    def _regions_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_regions` of the points ``x``, ``y`` (EPSG:2169); the shipped cantons' need no shapely points."""
        chosen = self._assign_regions
        if chosen is False or len(x) == 0:
            return np.full(len(x), None, dtype=object), np.full(len(x), None, dtype=object)
        if chosen is None or chosen is True:
            from geo_ibm.layers import assign_regions_xy

            canton, region = assign_regions_xy(x, y)
            return none_for_na(canton), none_for_na(region)
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=WORKING_CRS)
        return self._regions(points)
