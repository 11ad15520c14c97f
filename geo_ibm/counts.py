"""Counts of events per quarter and police region: the figures of ``/api/stats`` and the pages' totals."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from geo_ibm.disclosure import DisclosureRule, protect_counts, protect_filters


def _shown(value: int, rule: DisclosureRule | None) -> int | None:
    if rule is None:
        return int(value)
    number = float(protect_counts([value], rule)[0])
    return None if math.isnan(number) else int(number)


def event_total(store: Any, filters: dict[str, Any], *, disclosure: DisclosureRule | None = None) -> int | None:
    """How many stored events ``filters`` select, as the reader may see it.

    With ``disclosure`` the time window is widened to whole blocks and the count protected
    (``None`` when suppressed).
    """
    if disclosure is not None:
        filters = protect_filters(filters, disclosure)
    return _shown(int(store.count(**filters)), disclosure)


def event_counts(store: Any, filters: dict[str, Any], *, regions: Sequence[str],
                 disclosure: DisclosureRule | None = None) -> dict[str, Any]:
    """Events and persons in total, per quarter and per police region, counted by the store.

    Parameters
    ----------
    store
        The event store.
    filters
        Keyword filters of ``store.events``.
    regions
        The police regions to list (every one appears, with 0 when it has no events).
    disclosure
        For aggregates-only readers: the window widened to whole blocks and every count
        protected (:func:`geo_ibm.disclosure.protect_counts`; ``None`` where suppressed, and a quarter's
        persons where its events are).

    Returns
    -------
    dict
        ``total``, ``by_quarter`` (``quarter``, ``events``, ``persons``), ``by_region``
        (``region``, ``events``) and ``filters`` (as applied, times as ISO text), plus
        ``disclosure`` (the rule) when protected.
    """
    if disclosure is not None:
        filters = protect_filters(filters, disclosure)
    # One GROUP BY quarter, region gives the total and both breakdowns.
    counts = store.counts(by=("quarter", "region"), **filters)
    quarters = counts.groupby("quarter", sort=True)[["events", "persons"]].sum()
    by_quarter = []
    for q, row in quarters.iterrows():
        events = _shown(row.events, disclosure)
        # the persons of suppressed events would tell their size
        persons = None if events is None and disclosure is not None else _shown(row.persons, disclosure)
        by_quarter.append({"quarter": str(q), "events": events, "persons": persons})
    per_region = counts.dropna(subset=["region"]).groupby("region")["events"].sum()
    chosen = [r for r in regions if filters.get("region") in (None, r)]
    by_region = [{"region": r, "events": _shown(int(per_region.get(r, 0)), disclosure)} for r in chosen]
    body: dict[str, Any] = {
        "total": _shown(int(counts["events"].sum()), disclosure),
        "by_quarter": by_quarter,
        "by_region": by_region,
        "filters": {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in filters.items()},
    }
    if disclosure is not None:
        body["disclosure"] = disclosure.describe()
    return body
