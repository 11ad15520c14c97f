"""Tests of the review fixes in the web app: record visibility by role, uploads, CSV cells, paths, modes."""
from __future__ import annotations

import io
import re

import pytest
from webfixtures import (  # noqa: F401
    PASSWORD,
    app,
    base_store,
    client,
    csrf_token,
    logged_in,
    store,
    store_path,
)


def _quarter_with_few_events(store) -> str:
    events = store.events(columns=["event_id", "observed_at"])
    quarters = events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None).dt.to_period("Q").value_counts()
    quarter = quarters[quarters > 0].sort_values().index[0]
    return f"{quarter.year}-Q{quarter.quarter}"


# --------------------------------------------------------------------------- records by role


@pytest.mark.parametrize("name, details", [("vic", False), ("ana", True), ("ada", True)])
def test_overview_page_lists_records_for_analysts_only(logged_in, store, name, details):
    body = logged_in(name).get("/overview").get_data(as_text=True)
    latest = store.events(columns=["event_id", "observed_at"])["event_id"].iloc[-1]
    assert ('id="recent-events"' in body) == details
    assert (f">{latest}<" in body) == details
    assert ("Individual events need the analyst role." in body) == (not details)


@pytest.mark.parametrize("order", [("ana", "vic"), ("vic", "ana")])
def test_map_document_details_follow_the_role_not_the_cache(logged_in, store, order):
    quarter = _quarter_with_few_events(store)
    url = f"/maps/overview?quarter={quarter}"
    ids = set(store.events(quarter=quarter)["event_id"].astype(str))
    assert 0 < len(ids) <= 1000
    docs = {}
    for name in order:  # both orders: a cached map of one role must not reach the other
        response = logged_in(name).get(url)
        assert response.status_code == 200
        docs[name] = response.get_data(as_text=True)
    viewer, analyst = docs["vic"], docs["ana"]
    assert not any(f'"event_id": "{i}"' in viewer for i in ids)
    assert '"source_unit"' not in viewer and '"notes"' not in viewer
    assert "Individual events need the analyst role." in viewer
    assert all(f'"event_id": "{i}"' in analyst for i in ids)
    assert '"source_unit"' in analyst


def test_exported_map_keeps_the_records_for_analysts(logged_in, store):
    quarter = _quarter_with_few_events(store)
    first = store.events(quarter=quarter)["event_id"].iloc[0]
    doc = logged_in("ana").get(f"/exports/map.html?map=overview&quarter={quarter}").get_data(as_text=True)
    assert f'"event_id": "{first}"' in doc
    assert logged_in("vic").get(f"/exports/map.html?map=overview&quarter={quarter}").status_code == 403
