"""A job result's files on disk: written whole, counted, sent, removed with the job; folders a stopped process
left behind are swept."""
from __future__ import annotations

import os
import time

import pytest
from flask import Flask

from geo_ibm.errors import NotFoundError
from webapp.jobfiles import PREFIX, ResultFiles, send_result_file, sweep


def test_files_are_written_whole_counted_and_removed_with_the_result(tmp_path):
    files = ResultFiles.create(tmp_path)
    assert files.folder.parent == tmp_path and files.folder.name.startswith(PREFIX)
    assert oct(files.folder.stat().st_mode & 0o777) == "0o700"
    assert files.get("map-en.html") is None and files.read_text("map-en.html") is None
    files.add("map-en.html", "<p>é</p>")
    files.add("print-en.pdf", b"%PDF" + b"x" * 996)
    files.path("result.gpkg").write_bytes(b"y" * 500)  # a writer that makes its own file
    files.added("result.gpkg")
    assert files.read_text("map-en.html") == "<p>é</p>"
    assert files.disk_bytes == len("<p>é</p>".encode()) + 1000 + 500
    assert sorted(p.name for p in files.folder.iterdir()) == ["map-en.html", "print-en.pdf", "result.gpkg"]
    files.release()
    assert not files.folder.exists() and files.get("print-en.pdf") is None and files.disk_bytes == 0
    # a map or print map finished after its job was forgotten: a not found, not a server error
    with pytest.raises(NotFoundError, match="map-fr.html: this result's files are gone"):
        files.add("map-fr.html", "<p>carte</p>")
    with pytest.raises(NotFoundError, match="gone"):
        ResultFiles(tmp_path / "never-made").add("a.txt", "a")


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 101, "a b"])
def test_only_plain_file_names(tmp_path, name):
    with pytest.raises(ValueError, match="plain file name"):
        ResultFiles.create(tmp_path).path(name)


def test_a_file_is_sent_from_disk_and_a_forgotten_one_is_a_not_found(tmp_path):
    files = ResultFiles.create(tmp_path)
    files.add("hotspots_gi.geojson", b'{"type": "FeatureCollection", "features": []}')
    app = Flask(__name__)
    with app.test_request_context("/"):
        response = send_result_file(files, "hotspots_gi.geojson", "application/geo+json", "lux-gi.geojson")
        response.direct_passthrough = False
        assert response.get_data() == b'{"type": "FeatureCollection", "features": []}'
        assert response.headers["Content-Disposition"] == "attachment; filename=lux-gi.geojson"
        assert response.mimetype == "application/geo+json" and response.headers["Cache-Control"] == "no-store"
        assert "Expires" not in response.headers and "Last-Modified" not in response.headers
        inline = send_result_file(files, "hotspots_gi.geojson", "text/plain")
        assert "Content-Disposition" not in inline.headers
        with pytest.raises(NotFoundError, match="never.geojson"):
            send_result_file(files, "never.geojson", "application/geo+json")
        files.release()
        with pytest.raises(NotFoundError, match="forgotten"):
            send_result_file(files, "hotspots_gi.geojson", "application/geo+json")


def test_sweep_removes_only_old_result_folders(tmp_path):
    old, fresh = ResultFiles.create(tmp_path), ResultFiles.create(tmp_path)
    old.add("a.txt", "a")
    other = tmp_path / "upload-1234"
    other.mkdir()
    past = time.time() - 7200
    os.utime(old.folder, (past, past))
    os.utime(other, (past, past))
    assert sweep(tmp_path, older_than_s=3600) == 1
    assert not old.folder.exists() and fresh.folder.exists() and other.exists()
