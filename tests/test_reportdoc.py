"""The quarterly report document: PDF pages and text against the store's own counts, a self-contained HTML, short reports."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from scipy import stats

from geo_ibm.errors import ValidationError
from geo_ibm.reportdoc import build_report, write_quarterly_report
from geo_ibm.reportdoc.figures import breakdown, poisson_change_p, significance_mark
from geo_ibm.reportdoc.strings import code_label, number

QUARTER, PREVIOUS, YEAR_BEFORE = "2026Q3", "2026Q2", "2025Q3"
REGION = "Sud-Ouest"

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                reason="needs poppler-utils (pdftoppm, pdftotext)")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from geo_ibm.demo import generate_events
    from geo_ibm.store import open_store

    events, _truth = generate_events(3000, seed=2, start="2024-01-01", end="2026-09-30")
    s = open_store(tmp_path_factory.mktemp("reportdoc") / "s.gpkg")
    s.init()
    s.import_events(events, source="demo", user="test")
    return s


@pytest.fixture(scope="module")
def national(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("national")
    steps = []
    paths = write_quarterly_report(store, quarter=QUARTER, out_dir=out, progress=lambda f, m: steps.append(f))
    return out / "national", paths, steps


@pytest.fixture(scope="module")
def regional(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("regional")
    write_quarterly_report(store, quarter=QUARTER, region=REGION.lower(), lang="fr", out_dir=out)
    return out / REGION


def pdf_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout


def page_ink(path, tmp_path) -> list[float]:
    """Share of non-white pixels of each page, rendered by pdftoppm."""
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "30", "-gray", str(path), str(tmp_path / "page")], check=True)
    shares = []
    for page in sorted(tmp_path.glob("page*.pgm")):
        pixels = np.asarray(Image.open(page))
        shares.append(float((pixels < 200).mean()))
    return shares


def between(text: str, first: str, last: str | None) -> str:
    start = text.index(first)
    end = text.index(last, start) if last else len(text)
    return text[start:end]


def row_numbers(block: str, label: str) -> list[str]:
    """The cells after ``label`` on its line of the table ``block``.

    pdftotext -layout keeps a table row on one line with cells apart by two spaces or more;
    "1 168" (French) and "+43 (+30 %) **" stay one cell each.
    """
    match = re.search(rf"^\s*{re.escape(label)}\s{{2,}}(.*)$", block, re.M)
    assert match, f"no row {label!r} in\n{block}"
    return re.split(r"\s{2,}", match.group(1).strip())


# --------------------------------------------------------------------------- the test of change


def test_poisson_change_p_is_the_exact_conditional_test():
    # Equal exposure, 10 against 0: both tails of Binomial(10, 1/2) at the extremes.
    assert poisson_change_p(10, 0) == pytest.approx(2 * 0.5**10)
    assert poisson_change_p(0, 0) == 1.0
    # Unequal exposure: the two-sided p sums every outcome no more likely than the observed one.
    n, share = 30, 92 / (92 + 91)
    pmf = stats.binom.pmf(np.arange(n + 1), n, share)
    expected = pmf[pmf <= pmf[21] * (1 + 1e-7)].sum()
    assert poisson_change_p(21, 9, exposure=92, other_exposure=91) == pytest.approx(expected, rel=1e-9)
    assert [significance_mark(p) for p in (0.001, 0.03, 0.2, None)] == ["**", "*", "", "–"]
    with pytest.raises(ValidationError, match="negative"):
        poisson_change_p(-1, 3)


# --------------------------------------------------------------------------- the national report


def test_national_report_files(national):
    folder, paths, steps = national
    names = {p.name for p in paths}
    assert {"report.html", "report.pdf", "key_figures.csv", "persons_by_nationality.csv", "facilitators.csv",
            "border_sections.csv"} <= names
    assert all(p.parent == folder and p.stat().st_size > 0 for p in paths)
    assert steps == sorted(steps) and steps[-1] == 1.0


def test_pdf_pages_are_not_blank_and_fonts_embedded(national, tmp_path):
    folder, _paths, _steps = national
    ink = page_ink(folder / "report.pdf", tmp_path)
    assert len(ink) >= 6
    assert min(ink) > 0.004, ink  # more than a footer on every page
    fonts = subprocess.run(["pdffonts", str(folder / "report.pdf")], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in fonts.splitlines()[2:] if line.strip()]
    assert rows and all("DejaVu" in r[0] for r in rows)
    assert all(r[-5] == "yes" for r in rows)  # the "emb" column


def test_pdf_key_figures_equal_the_store(national, store):
    folder, _paths, _steps = national
    text = pdf_text(folder / "report.pdf")
    assert "Contents" in text and "Page 3" in text
    totals = between(text, "Totals", "By entry country")
    counts = [store.count(quarter=q) for q in (QUARTER, PREVIOUS, YEAR_BEFORE)]
    numbers = row_numbers(totals, "Interceptions")
    assert [numbers[0], numbers[1], numbers[3]] == [number(c, "en") for c in counts]
    # The mark: an exact binomial test written out here, 92 days (Q3) against 91 (Q2) and 92 (Q3 a year before).
    for other, days, cell in ((counts[1], 91, numbers[2]), (counts[2], 92, numbers[4])):
        n = counts[0] + other
        pmf = stats.binom.pmf(np.arange(n + 1), n, 92 / (92 + days))
        p = pmf[pmf <= pmf[counts[0]] * (1 + 1e-7)].sum()
        mark = "**" if p < 0.01 else ("*" if p < 0.05 else "")
        assert cell.split(")")[-1].strip() == mark, (cell, p)
    persons = [int(store.counts(by="quarter", quarter=q)["persons"].sum()) for q in (QUARTER, PREVIOUS, YEAR_BEFORE)]
    numbers = row_numbers(totals, "Persons")
    assert [numbers[0], numbers[1], numbers[3]] == [number(c, "en") for c in persons]
    smugglers = int(store.events(quarter=QUARTER)["smugglers"].sum())
    assert row_numbers(totals, "Suspected smugglers")[0] == number(smugglers, "en")

    for by, first, last in (("entry_country", "By entry country", "By transport mode"),
                            ("transport_mode", "By transport mode", "By location kind"),
                            ("location_kind", "By location kind", "By destination country")):
        block = between(text, first, last)
        now = store.counts(by=by, quarter=QUARTER).set_index(by)["events"]
        before = store.counts(by=by, quarter=PREVIOUS).set_index(by)["events"]
        assert len(now) >= 3
        for code, n in now.items():
            numbers = row_numbers(block, code_label(str(code), "en"))
            assert numbers[:2] == [str(n), str(int(before.get(code, 0)))], (by, code)


def test_named_hotspot_table_equals_the_library(national, store):
    import pandas as pd

    from geo_ibm.hotspots import hotspots_from_events
    from geo_ibm.layers import luxembourg_outline
    from geo_ibm.namedhotspots import named_hotspots
    from geo_ibm.reportdoc.figures import quarter_days

    folder, paths, _steps = national
    current, previous = store.events(quarter=QUARTER), store.events(quarter=PREVIOUS)
    gi = hotspots_from_events(current, study_area=luxembourg_outline())
    expected = named_hotspots(gi, events=current, previous=previous,
                              exposure=(quarter_days(QUARTER), quarter_days(PREVIOUS))).head(10)
    assert len(expected) >= 1
    top = pd.read_csv(folder / "named_hotspots.csv", encoding="utf-8-sig", keep_default_na=False)
    assert "top_hotspots.csv" not in {p.name for p in paths}
    assert top["name"].tolist() == expected["name"].tolist() and top["name"].is_unique
    assert top["events"].tolist() == expected["events"].tolist()
    assert top["persons"].tolist() == expected["persons"].tolist()
    assert top["trend"].tolist() == expected["trend"].tolist()
    assert top["canton"].tolist() == expected["canton"].tolist()
    text = pdf_text(folder / "report.pdf")
    block = between(text, "Named hotspots", "4. Corridors and flows")
    for row in expected.itertuples():
        line = next(line for line in block.splitlines() if re.match(rf"^\s*{row.rank}\s{{2,}}", line))
        assert row.name.split()[0] in line and number(row.events, "en") in line
    # The title page names the main hotspot (the most interceptions).
    assert expected["name"].iloc[0].split()[0] in between(text, "Main hotspot", "Contents")


def test_pdf_destination_and_nationality_figures(national, store):
    folder, _paths, _steps = national
    text = pdf_text(folder / "report.pdf")
    events = store.events(quarter=QUARTER)
    # Independent counts: destinations as recorded, nationalities split by hand.
    block = between(text, "By destination country", "By nationality")
    recorded = events["destination_country"].dropna().value_counts()
    for code, n in recorded.head(5).items():
        assert row_numbers(block, code_label(str(code), "en"))[0] == str(n)
    tally: dict[str, int] = {}
    for cell in events["nationalities"].dropna():
        for code in str(cell).split(";"):
            tally[code] = tally.get(code, 0) + 1
    block = between(text, "By nationality", "Significance")
    for code, n in sorted(tally.items(), key=lambda kv: -kv[1])[:5]:
        assert row_numbers(block, code)[0] == str(n)
    assert breakdown(events, "nationality")["events"].to_dict() == pytest.approx(tally)


def test_html_is_self_contained(national):
    folder, _paths, _steps = national
    html = (folder / "report.html").read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, re.I)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), [r[:40] for r in refs if not r.startswith(("data:", "#"))]
    assert html.count("data:image/png;base64,") >= 5  # two maps, three charts
    assert not re.search(r"<(script|link|iframe|object)\b", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html)
    assert "Key figures" in html and "Methods annex" in html and "© OpenStreetMap contributors" in html


# --------------------------------------------------------------------------- a regional report, in French


def test_regional_report_in_french(regional, store, tmp_path):
    text = pdf_text(regional / "report.pdf")
    assert "Chiffres clés" in text and "Annexe méthodologique" in text and "Sommaire" in text
    assert f"Région de police {REGION}" in text
    totals = between(text, "Totaux", "Par pays d'entrée")
    counts = [store.count(quarter=q, region=REGION) for q in (QUARTER, PREVIOUS, YEAR_BEFORE)]
    numbers = row_numbers(totals, "Interceptions")
    assert [numbers[0], numbers[1], numbers[3]] == [number(c, "fr") for c in counts]
    assert counts[0] < store.count(quarter=QUARTER)
    assert min(page_ink(regional / "report.pdf", tmp_path)) > 0.004
    html = (regional / "report.html").read_text(encoding="utf-8")
    assert '<html lang="fr">' in html and f"Région de police {REGION}" in html


# --------------------------------------------------------------------------- short reports


def test_empty_quarter_says_so(store, tmp_path):
    paths = write_quarterly_report(store, quarter="2020Q1", out_dir=tmp_path / "out")
    folder = tmp_path / "out" / "national"
    text = pdf_text(folder / "report.pdf")
    assert "No interceptions were recorded for Luxembourg in 2020Q1." in text
    assert "holds no maps, charts or tables" in text
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "No interceptions were recorded" in html and "<img" not in html
    assert min(page_ink(folder / "report.pdf", tmp_path)) > 0.004
    assert {p.name for p in paths} == {"report.html", "report.pdf", "key_figures.csv"}


def test_few_events_give_key_figures_only(tmp_path):
    from geo_ibm.demo import generate_events
    from geo_ibm.reportdoc.html import render_html
    from geo_ibm.reportdoc.model import Image
    from geo_ibm.store import open_store

    small = open_store(tmp_path / "small.gpkg")
    small.init()
    small.import_events(generate_events(12, seed=5, start="2026-07-01", end="2026-09-30")[0], source="demo", user="test")
    report = build_report(small, quarter=QUARTER)
    assert report.events == 12
    assert not any(isinstance(b, Image) for s in report.document.sections for b in s.blocks)
    html = render_html(report.document)
    assert "Only 12 interceptions were recorded" in html and "gives the key figures only" in html
    assert "Key figures" in html and "<img" not in html


def test_bad_arguments_are_refused_before_writing(store, tmp_path):
    with pytest.raises(ValidationError, match="region"):
        write_quarterly_report(store, quarter=QUARTER, region="Atlantis", out_dir=tmp_path)
    with pytest.raises(ValidationError, match="lang"):
        write_quarterly_report(store, quarter=QUARTER, lang="de", out_dir=tmp_path)
    with pytest.raises(ValidationError, match="quarter"):
        write_quarterly_report(store, quarter="2026Q5", out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- the HTML in a browser


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("chromium") and not __import__("os").path.exists("/usr/bin/chromium"),
                    reason="needs Debian chromium")
def test_html_opens_offline_in_chromium(national):
    playwright = pytest.importorskip("playwright.sync_api")
    folder, _paths, _steps = national
    url = (folder / "report.html").as_uri()
    requests: list[str] = []
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            context = browser.new_context(offline=True)
            # Everything but the file itself is refused: any other request would be a leak.
            context.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_load_state("load")
            broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
            images = page.evaluate("() => document.images.length")
            headings = page.evaluate("() => [...document.querySelectorAll('h2')].map(h => h.textContent)")
        finally:
            browser.close()
    assert [r for r in requests if not r.startswith(("data:", url))] == []
    assert errors == []
    assert images >= 5 and broken == 0
    assert "1. Key figures" in headings and "9. Methods annex" in headings


# --------------------------------------------------------------------------- the edition for aggregates-only readers


def test_protected_edition_shows_no_exact_small_counts(store, tmp_path):
    import pandas as pd

    from geo_ibm.disclosure import DisclosureRule, protect_counts

    rule = DisclosureRule()
    write_quarterly_report(store, quarter=QUARTER, region=REGION, out_dir=tmp_path, disclosure=rule)
    folder = tmp_path / REGION
    text = pdf_text(folder / "report.pdf")
    totals = between(text, "Totals", "By entry country")
    counts = [store.count(quarter=q, region=REGION) for q in (QUARTER, PREVIOUS, YEAR_BEFORE)]
    shown = protect_counts(counts, rule)
    numbers = row_numbers(totals, "Interceptions")
    assert [numbers[0], numbers[1], numbers[3]] == [number(v, "en") for v in shown]
    # Every count of the key-figure tables is suppressed or a multiple of 5; no test mark, no z-score.
    block = between(text, "Totals", "Counts are protected")
    cells = [c for line in block.splitlines() for c in re.split(r"\s{2,}", line.strip())[1:]]
    plain = [c.replace(",", "") for c in cells if re.fullmatch(r"[\d,]+", c)]
    assert plain and all(int(c) % 5 == 0 and int(c) != 0 or c == "0" for c in plain)
    assert "*" not in block and not re.search(r"Gi\* z\s{2,}", text) and "First and last interception" not in text
    html = (folder / "report.html").read_text(encoding="utf-8")
    # hot spots and emerging hot spots (on the rule's cell), hour x weekday, distance
    assert "for analysts only" in html and html.count("data:image/png") == 4
    key = pd.read_csv(folder / "key_figures.csv", encoding="utf-8-sig")
    assert "p_previous" not in key.columns
    values = key[["current", "previous", "year_before"]].to_numpy().ravel()
    assert all(v == 0 or (v >= 5 and v % 5 == 0) or np.isnan(v) for v in values)
    top = pd.read_csv(folder / "named_hotspots.csv", encoding="utf-8-sig")
    assert not {"gi_z", "max_z", "trend_p", "change_pct"} & set(top.columns) and set(top["region"]) <= {REGION}
    assert all(v == 0 or (v >= 5 and v % 5 == 0) or np.isnan(v) for v in top[["events", "persons", "previous"]].to_numpy().ravel())


def test_contents_page_numbers_lead_to_their_chapters(national):
    folder, _paths, _steps = national
    contents = subprocess.run(["pdftotext", "-layout", "-f", "2", "-l", "2", str(folder / "report.pdf"), "-"],
                              check=True, capture_output=True, text=True).stdout
    entries = re.findall(r"^\s*(\d)\. (.+?)[\s.]+(\d+)\s*$", contents, re.M)
    assert [title for _n, title, _p in entries][:3] == ["Key figures", "Maps", "Hot spots"]
    for number_, title, page in entries:
        text = subprocess.run(["pdftotext", "-f", page, "-l", page, str(folder / "report.pdf"), "-"],
                              check=True, capture_output=True, text=True).stdout
        assert f"{number_}. {title}" in text, (title, page)


def test_all_means_the_nation_and_every_police_region():
    from geo_ibm.layers import police_regions
    from geo_ibm.reportdoc import resolve_regions

    regions = list(police_regions()["region"])
    assert resolve_regions("all") == [None, *regions]
    assert resolve_regions(None) == [None]
    assert resolve_regions("NORD") == ["Nord"]
