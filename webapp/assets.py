"""Local serving of the vendored browser libraries (XStatic packages and Folium's leaflet-heat)."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, abort, send_from_directory
from werkzeug.utils import safe_join

assets_bp = Blueprint("assets", __name__)

ASSET_PREFIX = "/assets"
"""URL prefix of the vendored libraries: ``/assets/<package>/<file>``."""


@lru_cache(maxsize=1)
def vendor_dirs() -> dict[str, Path]:
    """Package name -> folder holding its files (looked up once, at first use)."""
    import folium
    import xstatic.pkg.leaflet
    import xstatic.pkg.leaflet_markercluster

    return {
        "leaflet": Path(xstatic.pkg.leaflet.BASE_DIR),
        "leaflet_markercluster": Path(xstatic.pkg.leaflet_markercluster.BASE_DIR),
        "folium": Path(folium.__file__).parent / "templates",
    }


@assets_bp.route(f"{ASSET_PREFIX}/<package>/<path:filename>")
def vendor(package: str, filename: str):
    """One file of a vendored package (public, cacheable for a day)."""
    folder = vendor_dirs().get(package)
    if folder is None or safe_join(str(folder), filename) is None:
        abort(404)
    return send_from_directory(folder, filename, max_age=86400)


def asset_path(url: str) -> Path | None:
    """The file behind an ``/assets/...`` URL, or ``None`` if it is not a vendored file."""
    match = re.fullmatch(rf"{re.escape(ASSET_PREFIX)}/([^/]+)/(.+)", url)
    if not match:
        return None
    folder = vendor_dirs().get(match.group(1))
    if folder is None:
        return None
    joined = safe_join(str(folder), match.group(2))
    if joined is None or not Path(joined).is_file():
        return None
    return Path(joined)


def inline_assets(document: str) -> str:
    """Replace ``<script src=/assets/...>`` and ``<link href=/assets/...>`` by the files' contents.

    Gives a self-contained map document that opens offline from a file.
    """

    def script(match: re.Match[str]) -> str:
        path = asset_path(match.group(1))
        if path is None:
            return match.group(0)
        code = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
        return f"<script>{code}</script>"

    def style(match: re.Match[str]) -> str:
        path = asset_path(match.group(1))
        if path is None:
            return match.group(0)
        return f"<style>{path.read_text(encoding='utf-8')}</style>"

    document = re.sub(r'<script\s+src="([^"]+)"\s*>\s*</script>', script, document)
    document = re.sub(r'<link\s+rel="stylesheet"\s+href="([^"]+)"\s*/?>', style, document)
    return document
