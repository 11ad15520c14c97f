"""Quarters and dates outside the years geo_ibm takes, through the web app: a 400 naming the parameter."""
from __future__ import annotations

import pytest
from webfixtures import app, base_store, client, logged_in, store, store_path  # noqa: F401


@pytest.mark.parametrize("url", [
    "/routes/?quarter=9999Q4", "/routes/?quarter=0000Q1", "/routes/?quarter=1000Q1", "/routes/map?quarter=9999Q4",
    "/reports/tables.xlsx?quarter=0000Q1", "/reports/tables.xlsx?quarter=9999Q4",
])
def test_a_quarter_outside_the_years_is_a_400_naming_quarter_and_the_value_sent(logged_in, url):
    response = logged_in("ana").get(url, headers={"Accept": "application/json"})
    assert response.status_code == 400
    body = response.get_json()
    sent = url.rsplit("=", 1)[1]
    assert body["parameter"] == "quarter"
    # 1000Q1 once gave a 400 naming '999Q4', the previous quarter, never sent
    assert body["description"] == f"quarter must be a quarter of the years 1900-2199, got '{sent}'"


def test_the_first_and_last_quarters_and_the_widest_dates_are_served(logged_in):
    c = logged_in("ana")
    for url in ("/routes/?quarter=1900Q1", "/routes/?quarter=2199Q4", "/routes/?from=1900-01-01&to=2199-12-31"):
        response = c.get(url)
        assert response.status_code == 200, (url, response.get_data()[:300])
    # the comparison window before 1900-2199 reaches 1600: computed, not refused
    items = c.get("/ogc/collections/route_segments/items?quarter=1900Q1&limit=1").get_json()
    assert items["parameters"]["from"] == "1900-01-01T00:00:00+00:24:36"
