"""``geo-ibm report --quarter Q --out DIR``: the quarterly report document through the command line."""
from __future__ import annotations

import subprocess

from click.testing import CliRunner

from geo_ibm.cli import main
from geo_ibm.store import open_store


def test_report_document_into_a_folder(tmp_path):
    store = tmp_path / "s.gpkg"
    runner = CliRunner()
    assert runner.invoke(main, ["--store", str(store), "demo", "--events", "1500", "--seed", "3",
                                "--no-account"]).exit_code == 0
    quarters = open_store(str(store)).quarter_counts()
    quarter = str(quarters.sort_values("events").iloc[-1]["quarter"])
    out = tmp_path / "report"
    result = runner.invoke(main, ["--store", str(store), "report", "--quarter", quarter, "--region", "Nord",
                                  "--lang", "fr", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pdf = out / "Nord" / "report.pdf"
    assert pdf.is_file() and (out / "Nord" / "report.html").is_file()
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    expected = open_store(str(store)).count(quarter=quarter, region="Nord")
    assert "Nord" in text and f"{expected}" in text.replace("\u202f", "").replace(" ", "")
    audit = open_store(str(store)).audit_log()
    detail = audit[audit["action"] == "export"].iloc[0]["detail"]
    assert detail["what"] == "quarterly report" and detail["region"] == "Nord" and detail["quarter"] == quarter


def test_report_document_needs_a_quarter_and_no_period(tmp_path):
    store = tmp_path / "s.gpkg"
    runner = CliRunner()
    assert runner.invoke(main, ["--store", str(store), "init"]).exit_code == 0
    for args, message in ((["--out", str(tmp_path / "r")], "--quarter"),
                          (["--quarter", "2025Q3", "--from", "2025-07-01", "--out", str(tmp_path / "r")], "--from/--to"),
                          (["--quarter", "2025Q3", "--region", "all", "--out", str(tmp_path / "r.pdf")], "--region all"),
                          (["--quarter", "20X5Q3", "--out", str(tmp_path / "r")], "quarter")):
        result = runner.invoke(main, ["--store", str(store), "report", *args])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output


def test_report_document_refuses_too_many_events_before_reading(tmp_path, monkeypatch):
    from geo_ibm.reportdoc import build

    store = tmp_path / "s.gpkg"
    runner = CliRunner()
    assert runner.invoke(main, ["--store", str(store), "demo", "--events", "300", "--seed", "3",
                                "--no-account"]).exit_code == 0
    quarter = str(open_store(str(store)).quarter_counts().sort_values("events").iloc[-1]["quarter"])
    monkeypatch.setattr(build, "MAX_REPORT_EVENTS", 5)
    result = runner.invoke(main, ["--store", str(store), "report", "--quarter", quarter, "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "quarter: the report of" in result.output and "more than 5" in result.output
    assert not (tmp_path / "r" / "national" / "report.pdf").exists()
