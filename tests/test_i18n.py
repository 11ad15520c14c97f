"""Tests of the interface languages: the choice of language, the gettext catalogs' coverage, plurals."""
from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from webfixtures import PASSWORD, USERS, app, base_store, client, csrf_token, logged_in, login, store, store_path  # noqa: F401

from geo_ibm import accounts, events, layers, maps, tables
from webapp import i18n

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "webapp" / "translations"
FRENCH_PO = TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po"
FRENCH_MO = FRENCH_PO.with_suffix(".mo")


def extracted_messages() -> set[str | tuple[str, ...]]:
    """What ``make messages`` extracts with babel.cfg: ids, (singular, plural) for plurals."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    return {message for _file, _line, message, _comments, _context in extract_from_dir(str(ROOT), method_map, options_map)}


def french_catalog():
    with FRENCH_PO.open("rb") as f:
        return read_po(f, locale="fr")


def literal_calls(path: Path, names: set[str]) -> set[str]:
    """First string arguments of calls to ``names`` in ``path``, f-string insides included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def test_language_from_accept_language_and_switch(client, logged_in):
    assert "Connexion" in client.get("/login", headers={"Accept-Language": "fr-LU,fr;q=0.9"}).get_data(as_text=True)
    assert "Log in" in client.get("/login", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    c = logged_in("vic")
    response = c.get("/lang/fr?next=/hotspots")
    assert response.status_code == 302 and response.headers["Location"] == "/hotspots"
    page = c.get("/overview", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Vue d&#39;ensemble" in page and 'lang="fr"' in page
    assert c.get("/lang/xx").status_code == 400


def test_english_by_default_and_outside_requests(client, app):
    page = client.get("/login").get_data(as_text=True)
    assert "Log in" in page and 'lang="en"' in page
    client.set_cookie("lang", "xx")
    assert 'lang="fr"' in client.get("/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert i18n.get_language() == "en" and i18n.gettext("Log in") == "Log in"
    with app.app_context():
        assert i18n.gettext("Log in") == "Log in"
    assert i18n.ngettext("%(n)s token revoked.", "%(n)s tokens revoked.", 3) == "3 tokens revoked."


def test_gettext_fills_named_placeholders_only_when_given(app):
    with app.test_request_context(headers={"Cookie": "lang=fr"}):
        assert i18n.gettext("User %(name)s added.", name="ana") == "Utilisateur ana ajouté."
        # Without values the text comes back as is: "%" in labels needs no doubling.
        assert i18n.gettext("Hot spot, 99% confidence") == "Point chaud, confiance 99 %"
        assert i18n.gettext("%(n)s events") == "%(n)s événements"
        assert i18n.gettext("not a message") == "not a message"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", {0: "0 events match the filter.", 1: "1 event matches the filter.", 2: "2 events match the filter."}),
        # French takes the singular for 0 and 1 (plural=(n > 1)).
        ("fr", {0: "0 événement correspond au filtre.", 1: "1 événement correspond au filtre.",
                2: "2 événements correspondent au filtre."}),
    ],
)
def test_plurals_in_python_and_templates(app, language, expected):
    from flask import render_template_string

    template = '{{ ngettext("%(n)s event matches the filter.", "%(n)s events match the filter.", n) }}'
    with app.test_request_context(headers={"Accept-Language": language}):
        for n, text in expected.items():
            assert i18n.ngettext("%(n)s event matches the filter.", "%(n)s events match the filter.", n) == text
            assert render_template_string(template, n=n) == text
        other = i18n.ngettext("Too many failed logins. Try again in %(s)s second.",
                              "Too many failed logins. Try again in %(s)s seconds.", 1, s=1)
        assert other.endswith("1 second." if language == "en" else "1 seconde.")


def test_plurals_on_the_account_page(logged_in, store):
    c = logged_in("vic")
    assert "You have 0 tokens." in c.get("/account").get_data(as_text=True)
    accounts.new_token(store, "vic")
    assert "You have 1 token." in c.get("/account").get_data(as_text=True)
    c.get("/lang/fr")
    assert "Vous avez 1 jeton." in c.get("/account").get_data(as_text=True)
    page = c.post("/account", data={"csrf_token": csrf_token(c, "/account"), "action": "revoke"}).get_data(as_text=True)
    assert "1 jeton révoqué." in page and "Vous avez 0 jeton." in page


def test_import_report_counts_each_phrase(app):
    from flask import render_template

    class Report:
        file, rows, accepted, duplicates = "a.csv", 1, 1, 0

    with app.test_request_context(headers={"Accept-Language": "fr"}):
        app.preprocess_request()
        page = render_template("import.html", report=Report(), error=None, problems=[])
    assert "a.csv importé : 1 ligne, 1 nouvel événement, 0 déjà présent." in page
    with app.test_request_context():
        app.preprocess_request()
        Report.rows, Report.accepted, Report.duplicates = 3, 2, 1
        page = render_template("import.html", report=Report(), error=None, problems=[])
    assert "Imported a.csv: 3 rows, 2 new events, 1 already in the store." in page


def test_french_catalog_translates_every_extracted_message():
    extracted = extracted_messages()
    catalog = french_catalog()
    assert catalog.plural_forms == "nplurals=2; plural=(n > 1);"
    missing = []
    for message_id in extracted:
        key = message_id[0] if isinstance(message_id, tuple) else message_id
        entry = catalog.get(key)
        strings = entry.string if entry and isinstance(entry.string, tuple) else (entry.string if entry else "",)
        if entry is None or entry.id != message_id or entry.fuzzy or not all(strings):
            missing.append(message_id)
    assert sorted(missing, key=str) == []
    assert len(extracted) > 200
    assert sum(isinstance(m, tuple) for m in extracted) >= 6
    # The template for new languages holds them too.
    with (TRANSLATIONS / "messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    assert sorted(extracted - template, key=str) == []


def test_extraction_sees_every_message_of_the_code():
    """What extraction cannot find by itself (data, f-strings) is listed in DATA_MESSAGES."""
    extracted = extracted_messages()
    assert set(i18n.DATA_MESSAGES) <= extracted
    expected = set(accounts.ROLES) | set(events.LOCATION_KINDS) | set(events.TRANSPORT_MODES) | {"unknown"}
    expected |= set(layers.CROSSING_KINDS) | {"Belgium", "France", "Germany"}
    expected |= set(maps.GI_BIN_LABELS.values()) | set(maps.EMERGING_COLOURS) | set(tables.TABLE_TITLES.values())
    expected |= set(maps.EVENT_POPUP_COLUMNS) | {c.replace("_", " ").capitalize() for c in maps.EVENT_POPUP_COLUMNS}
    for path in (*sorted((ROOT / "geo_ibm" / "maps").glob("*.py")), *sorted((ROOT / "geo_ibm" / "figures").glob("*.py"))):
        expected |= literal_calls(path, {"t"})
    for path in (ROOT / "webapp").rglob("*.py"):
        expected |= literal_calls(path, {"_", "gettext"})
    assert sorted(expected - extracted) == []


def test_french_placeholders_match_the_english_ones():
    # pybabel's check also flags labels such as "Hot spot, 99% confidence", which are never
    # formatted: only messages with named placeholders are format strings here.
    catalog = french_catalog()
    checked = 0
    for message in catalog:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        if message.id and "%(" in "".join(ids):
            assert message.check(catalog) == [], message.id
            checked += 1
        elif message.id:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert not any("%(" in s for s in strings), message.id
    assert checked > 15


def test_committed_mo_is_the_compiled_po():
    """The app reads the .mo; `make messages` (pybabel compile) must have run after the last .po edit."""
    compiled = io.BytesIO()
    write_mo(compiled, french_catalog())
    compiled.seek(0)
    with FRENCH_MO.open("rb") as f:
        committed = read_mo(f)
    fresh = read_mo(compiled)
    assert committed.plural_forms == fresh.plural_forms
    assert entries(committed) == entries(fresh), "webapp/translations/fr/LC_MESSAGES/messages.mo is stale: run `make messages`"


def entries(catalog) -> dict:
    """Message id -> translation, plural ids and forms as tuples (read_mo gives lists)."""
    def plain(value):
        return tuple(value) if isinstance(value, list) else value

    return {plain(m.id): plain(m.string) for m in catalog if m.id}
