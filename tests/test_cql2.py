"""CQL2 text filters: parsing against queryables, the bounds, LIKE without regular expressions, and masks against pandas."""
from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from geo_ibm import cql2
from geo_ibm.cql2 import filter_mask, like_match, parse_filter
from geo_ibm.errors import ValidationError

PROPERTIES: dict[str, cql2.PropertyType] = {
    "persons": "integer", "smugglers": "integer", "entry_country": "string", "region": "string",
    "observed_at": "date-time", "geometry": "geometry",
}
TZ = "Europe/Luxembourg"


@pytest.fixture(scope="module")
def frame() -> gpd.GeoDataFrame:
    """60 synthetic rows in EPSG:2169 with missing values in every column."""
    rng = np.random.default_rng(7)
    n = 60
    persons = rng.integers(1, 12, n).astype(float)
    persons[[3, 17]] = np.nan
    countries = rng.choice(np.array(["DE", "FR", "BE", "unknown"], dtype=object), n)
    countries[[5, 40]] = None
    regions = rng.choice(np.array(["Nord", "Sud", "Centre", "Est", "it's"], dtype=object), n)
    stamps = pd.Timestamp("2025-01-01", tz=TZ) + pd.to_timedelta(rng.integers(0, 200 * 86400, n), unit="s")
    observed = pd.Series(stamps).where(np.arange(n) != 9)  # row 9 has no time
    lon = rng.uniform(5.8, 6.5, n)
    lat = rng.uniform(49.45, 50.15, n)
    geometry = gpd.GeoSeries([Point(x, y) for x, y in zip(lon, lat)], crs="EPSG:4326").to_crs("EPSG:2169")
    geometry[11] = None
    return gpd.GeoDataFrame({"persons": pd.array(persons, dtype="Int64"), "smugglers": rng.integers(0, 3, n),
                             "entry_country": countries, "region": regions, "observed_at": observed},
                            geometry=geometry, crs="EPSG:2169")


def selected(frame: gpd.GeoDataFrame, text: str) -> list[int]:
    return np.flatnonzero(filter_mask(frame, parse_filter(text, properties=PROPERTIES).root)).tolist()


def rows(mask: pd.Series) -> list[int]:
    return np.flatnonzero(mask.fillna(False).to_numpy(dtype=bool)).tolist()


# --------------------------------------------------------------------------- against pandas


def _cases(f: gpd.GeoDataFrame) -> list[tuple[str, pd.Series]]:
    p, s, c, r, t = f["persons"], f["smugglers"], f["entry_country"], f["region"], f["observed_at"]
    known = p.notna()
    return [
        ("persons > 5 AND entry_country = 'DE'", (p > 5) & (c == "DE")),
        # AND binds tighter than OR (pygeofilter 0.4 reads this as (a OR b) AND c).
        ("persons = 1 OR persons = 2 AND entry_country = 'FR'", (p == 1) | ((p == 2) & (c == "FR"))),
        ("(persons = 1 OR persons = 2) AND entry_country = 'FR'", ((p == 1) | (p == 2)) & (c == "FR")),
        # A comparison with a missing value is unknown, and so is its negation.
        ("NOT (persons > 5)", known & ~(p > 5).fillna(False)),
        ("NOT persons > 5 AND smugglers = 0", known & ~(p > 5).fillna(False) & (s == 0)),
        ("persons <> 3", known & (p != 3)),
        ("persons != 3", known & (p != 3)),
        ("persons >= 4 AND persons <= 7", (p >= 4) & (p <= 7)),
        ("persons BETWEEN 4 AND 7", (p >= 4) & (p <= 7)),
        ("persons NOT BETWEEN 4 AND 7", known & ~((p >= 4) & (p <= 7)).fillna(False)),
        ("persons > 2.5", p > 2.5),
        ("persons > -1", known),
        ("persons IN (1, 3, 5)", p.isin([1, 3, 5])),
        ("persons NOT IN (1, 3, 5)", known & ~p.isin([1, 3, 5])),
        ("entry_country IN ('DE', 'BE')", c.isin(["DE", "BE"])),
        ("entry_country IS NULL", c.isna()),
        ("entry_country IS NOT NULL", c.notna()),
        ("region LIKE 'N%'", r.str.startswith("N")),
        ("region LIKE '%e%'", r.str.contains("e", regex=False)),
        ("region LIKE '_ud'", r.str.fullmatch(".ud")),
        ("region NOT LIKE '%r%'", ~r.str.contains("r", regex=False)),
        ("region = 'it''s'", r == "it's"),
        ("CASEI(region) = CASEI('NORD')", r.str.lower() == "nord"),
        ("CASEI(region) LIKE CASEI('%ENT%')", r.str.lower().str.contains("ent", regex=False)),
        ("region < 'O'", r < "O"),
        ('"persons" = 4', p == 4),
        # What GDAL's OAPIF driver sends: every operand parenthesised, IS NOT NULL as NOT ((x IS NULL)).
        ("((persons > 2) AND (entry_country = 'DE')) AND (smugglers >= 1)", (p > 2) & (c == "DE") & (s >= 1)),
        ("NOT ((entry_country IS NULL))", c.notna()),
        ("NOT ((persons > 2) AND (smugglers = 0))", (known & (p <= 2)) | (s != 0)),
        ("observed_at >= '2025-03-01T'", t >= pd.Timestamp("2025-03-01", tz=TZ)),
        ("observed_at < '2025-03-01'", t < pd.Timestamp("2025-03-01", tz=TZ)),
        ("observed_at > '2025-03-01T10:00:00Z'", t > pd.Timestamp("2025-03-01T10:00:00Z")),
        ("observed_at > TIMESTAMP('2025-03-01T10:00:00Z')", t > pd.Timestamp("2025-03-01T10:00:00Z")),
        # A date names its whole (local) day.
        ("observed_at = DATE('2025-03-01')", (t >= pd.Timestamp("2025-03-01", tz=TZ))
         & (t < pd.Timestamp("2025-03-02", tz=TZ))),
        ("observed_at <= DATE('2025-03-01')", t < pd.Timestamp("2025-03-02", tz=TZ)),
        ("observed_at > DATE('2025-03-01')", t >= pd.Timestamp("2025-03-02", tz=TZ)),
        ("T_INTERSECTS(observed_at, INTERVAL('2025-02-01', '2025-03-31'))",
         (t >= pd.Timestamp("2025-02-01", tz=TZ)) & (t < pd.Timestamp("2025-04-01", tz=TZ))),
        ("T_INTERSECTS(observed_at, INTERVAL('2025-05-01T00:00:00Z', '..'))", t >= pd.Timestamp("2025-05-01T00:00:00Z")),
        ("T_INTERSECTS(observed_at, TIMESTAMP('2025-01-01T00:00:00Z'))", t == pd.Timestamp("2025-01-01T00:00:00Z")),
    ]


def test_filters_select_what_pandas_selects(frame):
    for text, expected in _cases(frame):
        assert selected(frame, text) == rows(expected), text


def test_spatial_filters_equal_shapely_in_lonlat(frame):
    lonlat = frame.geometry.to_crs("EPSG:4326")
    polygon = shapely.from_wkt("POLYGON((5.9 49.5, 6.3 49.5, 6.3 49.9, 5.9 49.5))")
    expected = lonlat.intersects(polygon) & lonlat.notna()
    assert 0 < expected.sum() < len(frame)
    assert selected(frame, f"S_INTERSECTS(geometry, {polygon.wkt})") == rows(expected)
    box = lonlat.intersects(shapely.box(6.0, 49.6, 6.2, 49.8))
    assert selected(frame, "S_INTERSECTS(geometry, BBOX(6.0, 49.6, 6.2, 49.8))") == rows(box)
    assert selected(frame, "S_INTERSECTS(BBOX(6.0, 49.6, 6.2, 49.8), geometry) AND persons > 3") == rows(
        box & (frame["persons"] > 3))
    assert selected(frame, "geometry IS NULL") == [11]
    # Points without a missing one take the bulk path (coordinates projected, intersects_xy).
    points = frame.drop(index=11).reset_index(drop=True)
    assert selected(points, f"S_INTERSECTS(geometry, {polygon.wkt})") == rows(expected.drop(index=11).reset_index(drop=True))
    lines = points.set_geometry(points.geometry.buffer(1.0).boundary)
    assert selected(lines, "S_INTERSECTS(geometry, BBOX(6.0, 49.6, 6.2, 49.8))") == rows(
        box.drop(index=11).reset_index(drop=True))


def test_a_frame_without_the_property_matches_nothing():
    empty_columns = gpd.GeoDataFrame({"other": [1, 2]}, geometry=[Point(0, 0)] * 2, crs="EPSG:4326")
    flt = parse_filter("persons > 1", properties=PROPERTIES)
    assert not filter_mask(empty_columns, flt.root).any()
    assert filter_mask(empty_columns, parse_filter("persons IS NULL", properties=PROPERTIES).root).all()


def test_properties_lists_what_the_filter_reads():
    flt = parse_filter("persons > 1 AND (region LIKE 'N%' OR S_INTERSECTS(geometry, POINT(6 49.6)))",
                       properties=PROPERTIES)
    assert flt.properties == {"persons", "region", "geometry"}


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("text", "message"), [
    ("count > 1", r"property 'count' is not queryable here; queryables: persons, smugglers.* at character 1"),
    ("persons > 'many'", r"'persons' is a number.* at character 11"),
    ("entry_country = 3", r"'entry_country' is text.* at character 17"),
    ("persons >", r"'persons' is a number.* at character 10"),
    ("persons = 1 AND", r"expected a property name, found the end of the filter .* at character 16"),
    ("(persons = 1", r"expected '\)', found the end of the filter at character 13"),
    ("persons = 1)", r"unexpected '\)' after a complete condition at character 12"),
    ("persons = 1 region = 'x'", r"unexpected 'region' after a complete condition at character 13"),
    ("persons ~ 1", r"unexpected character '~' at character 9"),
    ("entry_country = 'DE", r"unexpected character \"'\" at character 17"),
    ("region ILIKE 'n%'", r"expected a comparison, LIKE, BETWEEN, IN or IS NULL after 'region', found 'ILIKE'"),
    ("persons LIKE '1%'", r"LIKE needs a text property; 'persons' is integer"),
    ("CASEI(persons) = CASEI('1')", r"CASEI needs a text property"),
    ("S_WITHIN(geometry, POINT(6 49))", r"S_WITHIN is not supported here"),
    ("S_INTERSECTS(persons, POINT(6 49))", r"S_INTERSECTS needs a geometry property; 'persons' is integer"),
    ("S_INTERSECTS(geometry, POINT(6 99))", r"CRS84 longitude/latitude"),
    ("S_INTERSECTS(geometry, POLYGON((6 49, 7 49)))", r"not a valid WKT geometry"),
    ("S_INTERSECTS(geometry, BBOX(6.2, 49, 6.1, 50))", r"BBOX minima must not exceed its maxima"),
    ("T_INTERSECTS(observed_at, INTERVAL('2025-03-01', '2025-02-01'))", r"the interval's start is after its end"),
    ("observed_at > '2025-13-01'", r"'2025-13-01' is not a valid date"),
    ("observed_at > 'yesterday'", r"is not an RFC 3339 date-time"),
    ("observed_at > DATE('2025-03-01T10:00:00Z')", r"is not a date YYYY-MM-DD"),
    ("observed_at > '2025-10-26T02:30:00'", r"ambiguous in Europe/Luxembourg"),
    ("region LIKE 'x\\'", r"ends with its escape character"),
    ("geometry = 'x'", r"'geometry' is a geometry: use S_INTERSECTS"),
    ("", r"is empty"),
])
def test_bad_filters_are_refused_naming_the_problem(text, message):
    with pytest.raises(ValidationError, match=message) as info:
        parse_filter(text, properties=PROPERTIES)
    assert info.value.problems[0].column == "filter"


def test_filter_lang_and_crs_are_checked():
    assert parse_filter("persons = 1", properties=PROPERTIES, lang="cql-text").properties == {"persons"}
    with pytest.raises(ValidationError, match="'filter-lang': 'cql2-json' is not read") as lang:
        parse_filter("persons = 1", properties=PROPERTIES, lang="cql2-json")
    assert lang.value.problems[0].column == "filter-lang"
    with pytest.raises(ValidationError, match="only http://www.opengis.net/def/crs/OGC/1.3/CRS84") as crs:
        parse_filter("persons = 1", properties=PROPERTIES, crs="http://www.opengis.net/def/crs/EPSG/0/2169")
    assert crs.value.problems[0].column == "filter-crs"


def _nested(levels: int) -> str:
    return "(" * levels + "persons = 1" + ")" * levels


def _ored(n: int) -> str:
    return " OR ".join(f"persons = {i}" for i in range(n))


@pytest.fixture
def parser_work(monkeypatch) -> dict[str, int]:
    """What :func:`parse_filter` does, counted by a parser that records its own work.

    ``parsers``: parsers made (texts tokenised); ``tokens``: the text's tokens (with the end);
    ``read``: tokens consumed when the parse ended or was refused; ``steps``: calls of the
    recursive descent (``negation``, ``predicate``, ``literal_for``); ``deepest``: the deepest
    nesting of ``negation`` calls (the parser's recursion).
    """
    work = {"parsers": 0, "tokens": 0, "read": 0, "steps": 0, "deepest": 0}
    nesting = [0]

    class CountingParser(cql2._Parser):
        def __init__(self, text: str, properties) -> None:
            super().__init__(text, properties)
            work["parsers"] += 1
            work["tokens"] = len(self.tokens)

        def parse(self) -> cql2.Node:
            try:
                return super().parse()
            finally:
                work["read"] = self.i

        def negation(self) -> cql2.Node:
            work["steps"] += 1
            nesting[0] += 1
            work["deepest"] = max(work["deepest"], nesting[0])
            try:
                return super().negation()
            finally:
                nesting[0] -= 1

        def predicate(self) -> cql2.Node:
            work["steps"] += 1
            return super().predicate()

        def literal_for(self, prop: str, *, casei: bool = False) -> cql2.Literal_:
            work["steps"] += 1
            return super().literal_for(prop, casei=casei)

    monkeypatch.setattr(cql2, "_Parser", CountingParser)
    return work


def _assert_linear(work: dict[str, int]) -> None:
    """The parse took steps linear in the tokens it read (no backtracking), so bounded by MAX_FILTER_CHARS.

    A step reads a token, or (a ``negation`` that is not NOT or a bracket) is followed by a
    ``predicate`` that does; the last step may be refused before reading one.
    """
    assert work["parsers"] <= 1  # the text is tokenised once
    assert work["steps"] <= 2 * work["read"] + 2, work
    assert work["read"] <= work["tokens"] <= cql2.MAX_FILTER_CHARS + 1, work
    assert work["deepest"] <= cql2.MAX_DEPTH + 1, work  # the recursion stops at the depth bound


@pytest.mark.parametrize(("text", "accepted", "message"), [
    (_nested(cql2.MAX_DEPTH), True, ""),
    (_nested(cql2.MAX_DEPTH + 1), False, "nested more than 20 levels deep"),
    ("NOT " * cql2.MAX_DEPTH + "persons = 1", True, ""),
    ("NOT " * (cql2.MAX_DEPTH + 1) + "persons = 1", False, "nested more than 20 levels deep"),
    ("persons IN (" + ", ".join(map(str, range(cql2.MAX_IN_VALUES))) + ")", True, ""),
    ("persons IN (" + ", ".join(map(str, range(cql2.MAX_IN_VALUES + 1))) + ")", False, "at most 100 values"),
    (_ored(100), True, ""),
    (_ored(101), False, "more than 200 predicates"),
    ("region LIKE '" + "%a" * 5 + "_" * 5 + "'", True, ""),
    ("region LIKE '" + "%a" * 11 + "'", False, "at most 10 wildcards"),
    ("region = '" + "x" * cql2.MAX_TEXT_LITERAL + "'", True, ""),
    ("region = '" + "x" * (cql2.MAX_TEXT_LITERAL + 1) + "'", False, "at most 200 characters"),
    ("persons = 1 " + " " * (cql2.MAX_FILTER_CHARS - 12), True, ""),
    ("persons = 1 " + " " * (cql2.MAX_FILTER_CHARS - 11), False, "more than 4096"),
    ("S_INTERSECTS(geometry, LINESTRING(" + ", ".join(f"6 {49 + i / 10000}" for i in range(300)) + "))", True, ""),
])
def test_bounds_are_checked_before_evaluation_in_linear_steps(parser_work, text, accepted, message):
    # Deterministic, not timed: the parser's steps are counted (see parser_work).
    if accepted:
        parse_filter(text, properties=PROPERTIES)
    else:
        with pytest.raises(ValidationError, match=message):
            parse_filter(text, properties=PROPERTIES)
    _assert_linear(parser_work)


@pytest.mark.parametrize("text", [
    "(" * 3000, "NOT " * 1000 + "persons = 1", "persons IN (" + "1," * 2000 + "1)",
    "'" + "a" * 4000, "persons = 1 AND " * 250 + "persons = 1", "\x00" * 100,
    "S_INTERSECTS(geometry, POLYGON((" + ", ".join(["6 49"] * 1200) + ")))",
], ids=["brackets", "nots", "in-list", "open-quote", "ands", "nul", "polygon"])
def test_hostile_texts_are_refused_at_the_bound_they_cross(parser_work, text):
    with pytest.raises(ValidationError):
        parse_filter(text, properties=PROPERTIES)
    _assert_linear(parser_work)
    if parser_work["parsers"]:
        # Refused at the token crossing a bound, not after reading the whole text (tokens end
        # with the end marker); texts that never got a parser were refused by length or by the tokeniser.
        assert parser_work["read"] < parser_work["tokens"] - 1, parser_work


def test_rows_are_bounded():
    cql2.check_rows(cql2.MAX_FILTER_ROWS)
    with pytest.raises(ValidationError, match="more than the 200000 a filter is applied to") as info:
        cql2.check_rows(cql2.MAX_FILTER_ROWS + 1)
    assert info.value.problems[0].column == "filter"
    big = pd.DataFrame({"persons": np.ones(cql2.MAX_FILTER_ROWS + 1, dtype=int)})
    with pytest.raises(ValidationError, match="more than the 200000"):
        filter_mask(big, parse_filter("persons = 1", properties=PROPERTIES).root)


# --------------------------------------------------------------------------- LIKE


def _reference_like(pattern: str) -> re.Pattern[str]:
    """CQL2 LIKE as a regular expression (the independent reference, used on small inputs only)."""
    out, chars = [], iter(pattern)
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars)))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


@settings(max_examples=400, deadline=None)
@given(value=st.text(alphabet="ab_%\\", max_size=12),
       pattern=st.text(alphabet="ab_%", max_size=8).filter(lambda p: p.count("%") + p.count("_") <= 10))
def test_like_equals_the_regular_expression(value, pattern):
    assert like_match(value, pattern) == bool(_reference_like(pattern).fullmatch(value))


@pytest.mark.parametrize(("value", "pattern", "expected"), [
    ("100%", "100\\%", True), ("1000", "100\\%", False), ("a_b", "a\\_b", True), ("axb", "a\\_b", False),
    ("", "%", True), ("", "_", False), ("abc", "abc", True), ("abcd", "abc", False), ("abab", "%ab", True),
    ("aXbYc", "a%b%c", True), ("acb", "a%b%c", False), ("aa", "a%a", True), ("a", "a%a", False),
])
def test_like_cases(value, pattern, expected):
    assert like_match(value, pattern) is expected


@pytest.mark.parametrize("pattern", ["%a%a%a%a%a%a%a%a%a%b", "%a%a%a%a%a%a%a%a%b%"])
def test_like_is_linear_on_a_pattern_that_makes_regular_expressions_backtrack(monkeypatch, pattern):
    # Counted, not timed: each placement of a segment is one _segment_at call, and the matcher
    # places each segment once after the previous one, so there are at most len(value) + len(pattern)
    # of them (a backtracking matcher tries every split of the value among the wildcards).
    # The second pattern ends in %: its last segment matches, so the scan for "b" runs through the value.
    real = cql2._segment_at
    value = "a" * 50_000
    bound = len(value) + len(pattern)
    calls = [0]

    def counting(text, segment, at):
        calls[0] += 1
        if calls[0] > bound:  # fail at once: a backtracking matcher would take hours here
            raise AssertionError(f"more than {bound} segment placements: the LIKE matcher backtracks")
        return real(text, segment, at)

    monkeypatch.setattr(cql2, "_segment_at", counting)
    assert not like_match(value, pattern)
    assert calls[0] <= bound


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(alphabet="aAb_%\\\nÄ", max_size=8)), max_size=8),
       pattern=st.text(alphabet="aAb_%\\Ä", max_size=8), casei=st.booleans())
def test_like_masks_equal_the_regular_expression(values, pattern, casei):
    # What filter_mask evaluates (on a whole column at once) is what like_match and the reference say.
    quoted = f"CASEI('{pattern}')" if casei else f"'{pattern}'"
    try:
        node = parse_filter(f"{'CASEI(s)' if casei else 's'} LIKE {quoted}", properties={"s": "string"}).root
    except ValidationError:
        return  # a pattern ending in its escape character, or too many wildcards
    reference = _reference_like(pattern.lower() if casei else pattern)
    expected = [v is not None and bool(reference.fullmatch(v.lower() if casei else v)) for v in values]
    mask = filter_mask(pd.DataFrame({"s": pd.Series(values, dtype=object)}), node)
    assert mask.tolist() == expected


def test_many_likes_on_unique_values_are_matched_a_whole_column_at_a_time(monkeypatch):
    # Event ids are all distinct: 30 ORed LIKEs on 50,000 of them took 21 s of one core on the
    # server when every distinct value was matched in Python. Counted, not timed: each LIKE is one
    # vectorised Arrow match over the whole column, and the Python matcher never runs.
    real = pc.match_like
    matched: list[int] = []

    def counting(values, pattern, *args, **kwargs):
        matched.append(len(values))
        return real(values, pattern, *args, **kwargs)

    def python_matcher(*args, **kwargs):
        raise AssertionError("the per-value Python matcher must not run in filter_mask")

    monkeypatch.setattr(pc, "match_like", counting)
    monkeypatch.setattr(cql2, "_segments_match", python_matcher)
    ids = pd.DataFrame({"event_id": [f"EV-{i:07d}" + ("-abcde" if i % 7 == 0 else "") for i in range(50_000)]})
    node = parse_filter(" OR ".join(["event_id LIKE '%a%b%c%d%e%'"] * 30), properties={"event_id": "string"}).root
    mask = filter_mask(ids, node)
    assert 1 <= len(matched) <= 30 and set(matched) == {50_000}
    assert np.flatnonzero(mask).tolist() == list(range(0, 50_000, 7))


@pytest.mark.parametrize("text", [
    " OR ".join(f"CASEI(event_id) = CASEI('ev-{i:07d}')" for i in range(90)),
    " OR ".join(["CASEI(event_id) LIKE CASEI('%a%b%')"] * 95),
    " OR ".join(f"event_id IN ({', '.join(repr(f'EV-{i:07d}') for i in range(k, k + 20))})" for k in range(0, 160, 20)),
    " OR ".join(["event_id BETWEEN 'a' AND 'b'"] * 60),
])
def test_the_largest_text_filters_read_the_text_column_once(text, monkeypatch):
    # Within every bound, these took 5 to 7 s of CPU on 100,000 rows (15 s at MAX_FILTER_ROWS) when
    # each predicate converted the text column again: the column is converted once per evaluation
    # (and case, for CASEI) now, however many predicates read it.
    real = cql2._text_column
    conversions: list[tuple[str, bool]] = []

    def counting(column, prop, *, casei, texts):
        if (prop, casei) not in texts:
            conversions.append((prop, casei))
        return real(column, prop, casei=casei, texts=texts)

    monkeypatch.setattr(cql2, "_text_column", counting)
    ids = pd.DataFrame({"event_id": [f"EV-{i:07d}-2025" for i in range(100_000)]})
    node = parse_filter(text, properties={"event_id": "string"}).root
    mask = filter_mask(ids, node)
    assert len(mask) == len(ids)
    assert len(conversions) == len(set(conversions)) <= 1


def test_reprs_tell_long_geometries_apart():
    # The web layer keys its cache of matching ids on the tree's repr.
    def line(last: float) -> str:
        coords = ", ".join(f"6 {49 + i / 1000}" for i in range(200))
        return f"S_INTERSECTS(geometry, LINESTRING({coords}, 6.1 {last}))"

    one, other = (parse_filter(line(v), properties=PROPERTIES).root for v in (49.5, 49.6))
    assert repr(one) != repr(other)
