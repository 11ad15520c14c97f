"""Tests of the interface languages: the choice of language and the French catalog's coverage."""
from __future__ import annotations

import re
from pathlib import Path

from webfixtures import PASSWORD, USERS, app, base_store, client, logged_in, login, store, store_path  # noqa: F401

from geo_ibm import tables


def test_language_from_accept_language_and_switch(client, logged_in):
    assert "Connexion" in client.get("/login", headers={"Accept-Language": "fr-LU,fr;q=0.9"}).get_data(as_text=True)
    assert "Log in" in client.get("/login", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    c = logged_in("vic")
    response = c.get("/lang/fr?next=/hotspots")
    assert response.status_code == 302 and response.headers["Location"] == "/hotspots"
    page = c.get("/overview", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Vue d&#39;ensemble" in page and 'lang="fr"' in page
    assert c.get("/lang/xx").status_code == 400


def test_french_catalog_covers_every_template_message():
    import pathlib

    from webapp.i18n import catalog

    root = pathlib.Path(__file__).resolve().parents[1] / "webapp"
    messages = set()
    for path in list((root / "templates").glob("*.html")) + [root / "auth.py", root / "pages.py", root / "__init__.py"]:
        text = path.read_text(encoding="utf-8")
        messages.update(re.findall(r'_\("([^"]+)"', text))
        messages.update(re.findall(r"_\('([^']+)'", text))
    from geo_ibm import maps

    maps_source = (root.parent / "geo_ibm" / "maps.py").read_text(encoding="utf-8")
    messages.update(re.findall(r'\bt\("([^"]+)"\)', maps_source))
    messages.update(maps.GI_BIN_LABELS.values())
    messages.update(maps.EMERGING_COLOURS)
    missing = sorted(m for m in messages if m not in catalog("fr"))
    assert missing == []
    assert len(messages) > 100


def test_french_catalog_covers_the_report_strings():
    from geo_ibm import figures
    from webapp.i18n import catalog

    source = Path(figures.__file__).read_text(encoding="utf-8")
    messages = set(re.findall(r'\bt\("([^"]+)"\)', source))
    messages |= set(tables.TABLE_TITLES.values()) | {"Belgium", "France", "Germany"}
    assert len(messages) > 20
    assert sorted(m for m in messages if m not in catalog("fr")) == []
