"""Settings from the environment: defaults, accepted values, and refusals naming the variable."""
from __future__ import annotations

import pytest

from geo_ibm.errors import ValidationError
from geo_ibm.importlimits import import_limits
from geo_ibm.settings import env_number, margin_m


def test_unset_or_blank_gives_the_default(monkeypatch):
    monkeypatch.delenv("GEO_IBM_TEST_N", raising=False)
    assert env_number("GEO_IBM_TEST_N", 7.5) == 7.5
    monkeypatch.setenv("GEO_IBM_TEST_N", "  ")
    assert env_number("GEO_IBM_TEST_N", 3, integer=True) == 3


def test_values_are_parsed_as_asked(monkeypatch):
    monkeypatch.setenv("GEO_IBM_TEST_N", " 12 ")
    value = env_number("GEO_IBM_TEST_N", 1, integer=True, minimum=1)
    assert value == 12 and isinstance(value, int)
    monkeypatch.setenv("GEO_IBM_TEST_N", "0.25")
    assert env_number("GEO_IBM_TEST_N", 1.0, positive=True) == 0.25


@pytest.mark.parametrize(("raw", "options", "message"), [
    ("ten", {}, "must be a number, got 'ten'"),
    ("nan", {}, "must be a number"),
    ("inf", {}, "must be a number"),
    ("2.5", {"integer": True}, "got '2.5'"),
    ("0", {"positive": True}, "above 0"),
    ("-1", {"minimum": 0}, ">= 0"),
])
def test_bad_values_are_refused_naming_the_variable(monkeypatch, raw, options, message):
    monkeypatch.setenv("GEO_IBM_TEST_N", raw)
    with pytest.raises(ValidationError, match="GEO_IBM_TEST_N") as caught:
        env_number("GEO_IBM_TEST_N", 1, **options)
    assert message in str(caught.value)


def test_margin_and_import_limits_use_the_checked_reader(monkeypatch):
    monkeypatch.setenv("GEO_IBM_MARGIN_M", "-5")
    with pytest.raises(ValidationError, match="GEO_IBM_MARGIN_M must be a number of metres >= 0"):
        margin_m()
    monkeypatch.setenv("GEO_IBM_MARGIN_M", "500")
    assert margin_m() == 500.0
    monkeypatch.setenv("GEO_IBM_IMPORT_MAX_ROWS", "1e3")
    assert import_limits().rows == 1000
    monkeypatch.setenv("GEO_IBM_IMPORT_MAX_ROWS", "10.5")
    with pytest.raises(ValidationError, match="GEO_IBM_IMPORT_MAX_ROWS must be a whole number of rows"):
        import_limits()


@pytest.mark.parametrize(("name", "raw"), [
    ("GEO_IBM_MAX_UPLOAD_MB", "lots"),
    ("GEO_IBM_DISCLOSURE_MIN_COUNT", "0"),
    ("GEO_IBM_DISCLOSURE_ROUNDING", "2.5"),
    ("GEO_IBM_DISCLOSURE_CELL_M", "-500"),
    ("GEO_IBM_DISCLOSURE_PERIOD", "month"),
    ("GEO_IBM_IMPORT_MAX_MB", "0"),
    ("GEO_IBM_IMPORT_MAX_ROWS", "many"),
    ("GEO_IBM_MARGIN_M", "-1"),
])
def test_the_web_app_refuses_to_start_on_a_bad_setting(monkeypatch, tmp_path, name, raw):
    from webapp import create_app

    monkeypatch.setenv(name, raw)
    with pytest.raises(ValidationError) as caught:
        create_app({"TESTING": True, "SECRET_KEY": "x", "STORE_PATH": str(tmp_path / "s.gpkg")})
    text = str(caught.value)
    assert name in text or ("GEO_IBM_DISCLOSURE_*" in text and "period" in text), text


def test_archive_locations_are_names_and_locations():
    from geo_ibm.settings import archive_locations

    assert archive_locations("") == {}
    assert archive_locations(" lux = /srv/a/lux ;eu=s3://bucket/eu?region=x ; ") == {
        "lux": "/srv/a/lux", "eu": "s3://bucket/eu?region=x"}
    for raw, reason in (("lux", "write name=location"), ("lux=", "write name=location"), ("a b=/x", "a name is"),
                        ("-x=/x", "a name is"), ("a=/x;a=/y", "given twice"), ("x" * 65 + "=/x", "a name is")):
        with pytest.raises(ValidationError, match="GEO_IBM_ARCHIVES: entry") as caught:
            archive_locations(raw)
        assert reason in str(caught.value) and caught.value.problems[0].column == "GEO_IBM_ARCHIVES"
