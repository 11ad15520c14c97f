"""The API contract: schemathesis generates requests from our OpenAPI document and checks every answer.

Every operation of ``/ogc/api`` is called in-process (WSGI) with generated parameters, valid
and invalid, with an analyst's token: no server error, every response conforms to the
document (status codes, content types, schemas, headers), and every value the document
declares valid is accepted while invalid ones are refused with 400.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from webfixtures import Site, make_site

from webapp.ogc import COLLECTIONS
from webapp.openapi import build_openapi

# The document is built without an app (it depends on the collections and the cookie name
# only), so the operations are known when pytest collects this module.
DOCUMENT = build_openapi(server_url="http://localhost", collections=COLLECTIONS, cookie_name="geo_ibm_session")
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("contract") / "store.gpkg", seed=21, n_events=400)


@pytest.fixture(scope="module")
def app(site, tmp_path_factory):
    """The site's store behind an app whose login throttle never trips: schemathesis sends each
    operation invalid credentials to prove authentication is enforced (401), and that many
    failures from one address would otherwise, rightly, be answered 429."""
    from geo_ibm.archive import write_synthetic_archive
    from webapp import create_app

    archive = tmp_path_factory.mktemp("contract-archive") / "lux"
    write_synthetic_archive(archive, n_events=3_000, partitions=3, quarters=3, seed=3)
    unlimited = 10**9
    return create_app({"TESTING": True, "SECRET_KEY": "contract", "STORE_PATH": str(site.store.path),
                       "INSTANCE_PATH": str(tmp_path_factory.mktemp("contract-instance")),
                       "LOGIN_MAX_FAILURES": unlimited, "LOGIN_ADDRESS_FAILURES": unlimited,
                       "LOGIN_ACCOUNT_FAILURES": unlimited,
                       # a readable archive and one that is not: both kinds of description
                       "ARCHIVES": {"lux": str(archive), "gone": str(archive.parent / "missing")}})


def test_served_document_is_the_one_tested(site):
    served = site.get("/ogc/api", role="viewer").get_json()
    served["servers"] = DOCUMENT["servers"]
    assert served == DOCUMENT


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_keeps_the_contract(case, site, app):
    case.operation.schema.app = app  # in-process (WSGI) for every probe the checks send
    # A hotspot request may be schema-valid and still over a cost limit (a fine cell over the
    # whole country, a wide band over a fine cell): the document says so, and those 400s name
    # the parameter; every other operation must accept whatever the document allows.
    excluded = [positive_data_acceptance] if case.operation.path == "/api/hotspots" else []
    case.call_and_validate(app=app, base_url="http://localhost", excluded_checks=excluded,
                           headers={"Authorization": f"Bearer {site.tokens['analyst']}"})


def _times_in_order(query) -> bool:
    from geo_ibm.errors import ValidationError
    from webapp.params import parse_date_range, parse_datetime

    if query.get("datetime") and (query.get("from") or query.get("to")):
        return False  # one time filter or the other (the description says so)
    try:
        parse_date_range(query)
        if isinstance(query.get("datetime"), str):
            parse_datetime(query["datetime"])
    except ValidationError as exc:
        return "is after" not in str(exc)
    return True


@schema.hook("filter_query")
def _rules_the_schema_cannot_state(ctx, query):
    # Rules across parameters (minima before maxima, from before to, datetime or from/to) are
    # in the descriptions; generated values breaking them are left out of the cases that must
    # be accepted.
    if not _times_in_order(query or {}):
        return False
    box = (query or {}).get("bbox")
    if not isinstance(box, str):
        return True
    try:
        numbers = [float(v) for v in box.split(",")]
    except ValueError:
        return True  # not a box at all: a negative case, refused as the schema says
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    return len(numbers) != 4 or (numbers[0] <= numbers[2] and numbers[1] <= numbers[3])
