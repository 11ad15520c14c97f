"""``geo-ibm operations``: a plan saved as an operation, listed, shown and evaluated; every bad input a clear message."""
from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from geo_ibm.cli import main
from geo_ibm.store import open_store

HEADER = "event_id;observed_at;lat;lon;location_kind;persons;smugglers;transport_mode;entry_country;operation_id\n"
SITES = "site_id;lat;lon\nA;49.6000;6.1330\nB;49.5000;5.9800\nC;49.8470;6.1040\n"


def _rows(prefix: str, lat: float, lon: float, stamp: str, n: int, op: str = "", persons: int = 1) -> list[str]:
    return [f"{prefix}{i};{stamp.format(i)};{lat:.4f};{lon:.4f};urban;{persons};0;car;DE;{op}\n" for i in range(n)]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store with 10 Friday-night events at A and 6 Monday-morning events at B (1-9 March 2025), tagged results
    of the week after, and a 4-hour shift plan for 2 teams made from the first week."""
    folder = tmp_path_factory.mktemp("ops")
    rows = [*_rows("A", 49.6000, 6.1330, "2025-03-07 22:{:02d}", 10), *_rows("B", 49.5000, 5.9800,
                                                                             "2025-03-03 09:{:02d}", 6),
            *_rows("R", 49.6001, 6.1331, "2025-03-14 22:{:02d}", 3, op="OP Mars", persons=2),
            *_rows("Z", 49.8470, 6.1040, "2025-03-12 10:{:02d}", 2)]
    events = folder / "events.csv"
    events.write_text(HEADER + "".join(rows), encoding="utf-8")
    store = folder / "store.gpkg"
    runner = CliRunner()
    assert runner.invoke(main, ["--store", str(store), "import", str(events)]).exit_code == 0
    sites = folder / "sites.csv"
    sites.write_text(SITES, encoding="utf-8")
    plan = folder / "plan.gpkg"
    result = runner.invoke(main, ["--store", str(store), "plan", "--teams", "2", "--radius", "1000", "--shifts", "4",
                                  "--candidates", str(sites), "--from", "2025-03-01", "--to", "2025-03-09",
                                  "--out", str(plan)])
    assert result.exit_code == 0, result.output
    return store, plan


def _run(store: Path, *args: str):
    return CliRunner().invoke(main, ["--store", str(store), "operations", *args])


def test_add_list_show_evaluate_and_export(planned, tmp_path):
    store, plan = planned
    added = _run(store, "add", "OP Mars", "--plan", str(plan), "--from", "2025-03-10", "--to", "2025-03-16",
                 "--user", "pia")
    assert added.exit_code == 0, added.output
    assert "2025-03-10 to 2025-03-16 (7 days), 2 teams at 2 sites, shifts of 4 h, radius 1000 m" in added.output
    listed = _run(store, "list")
    assert listed.exit_code == 0 and "OP Mars" in listed.output and "by pia" in listed.output
    shown = _run(store, "show", "op mars")
    doc = json.loads(shown.output)
    assert doc["name"] == "OP Mars" and doc["shift_hours"] == 4 and doc["user"] == "pia"
    # Friday 20-24 at A (block (4 * 24 + 20) / 4 = 29), Monday 08-12 at B (block 2).
    assert sorted((s["site_id"], s["block"]) for s in doc["shifts"]) == [("A", 29), ("B", 2)]
    assert doc["plan"]["from"] == "2025-03-01" and doc["plan"]["to"] == "2025-03-09"

    out = tmp_path / "eval.xlsx"
    evaluated = _run(store, "evaluate", "OP Mars", "--out", str(out), "--user", "pia")
    assert evaluated.exit_code == 0, evaluated.output
    # 3 tagged results in A's Friday shift; 4 team-hours at each site; 2 of the week's 5 events elsewhere (C).
    assert "interceptions 3 (6 persons), 0.375 per team-hour, 60.0 % of the 5 in the country" in evaluated.output
    # Forecast: 10 + 6 covered events over the plan's 9 days, times 7; baseline: the same 16 over 56 days, times 7.
    assert f"forecast {16 / 9 * 7:,.1f}" in evaluated.output and f"{16 / 56 * 7:,.1f}" in evaluated.output
    book = openpyxl.load_workbook(out, read_only=True)
    assert {"About", "Operation sites", "Operation summary"} <= set(book.sheetnames)
    sheet = pd.DataFrame(list(book["Operation sites"].values))
    header, body = list(sheet.iloc[0]), sheet.iloc[1:]
    table = pd.DataFrame(body.to_numpy(), columns=header).set_index("site_id")
    assert table.at["A", "operation_events"] == 3 and table.at["A", "team_hours"] == 4
    assert table.at["A", "forecast_events"] == pytest.approx(10 / 9 * 7)
    assert table.at["B", "baseline_events"] == pytest.approx(6 / 56 * 7)
    gpkg = tmp_path / "eval.gpkg"
    assert _run(store, "evaluate", "OP Mars", "--out", str(gpkg)).exit_code == 0
    info = pyogrio.read_info(gpkg, layer="operation_sites")
    assert info["features"] == 3 and json.loads(info["layer_metadata"]["parameters"])["operation_events"] == 3
    csv = tmp_path / "eval.csv"
    assert _run(store, "evaluate", "OP Mars", "--out", str(csv)).exit_code == 0
    assert pd.read_csv(csv, encoding="utf-8-sig")["site_id"].tolist() == ["A", "B", "elsewhere"]
    audit = open_store(str(store)).audit_log()
    assert {"operation", "export"} <= set(audit["action"])
    saved = audit[(audit["action"] == "operation")].iloc[-1]["detail"]
    assert saved["name"] == "OP Mars" and saved["what"] == "saved"


@pytest.mark.parametrize(("args", "message"), [
    (["show", "nothing"], "no operation named 'nothing'"),
    (["evaluate", "nothing"], "no operation named 'nothing'"),
    (["add", "bad;name", "--plan", "{plan}", "--from", "2025-03-10", "--to", "2025-03-16"], "name: an operation name"),
    (["add", "OP2", "--plan", "{plan}", "--from", "2025-03-16", "--to", "2025-03-10"], "to: the last day"),
    (["add", "OP2", "--plan", "{plan}", "--from", "10/03/2025", "--to", "2025-03-16"], "from: give the day"),
    (["add", "OP2", "--plan", "{plan}", "--from", "2025-03-10", "--to", "2025-03-16", "--hours-per-day", "30"],
     "shifts"),  # a shift plan ignores hours per day: accepted (checked below)
    (["add", "OP2", "--plan", "{csv}", "--from", "2025-03-10", "--to", "2025-03-16"], "--plan must be a plan"),
    (["evaluate", "OP Dup", "--out", "x.txt"], "--out must end in .csv, .xlsx, .gpkg"),
    (["evaluate", "OP Dup", "--baseline-weeks", "0"], "baseline_weeks"),
])
def test_bad_input_is_a_clear_message(planned, tmp_path, args, message):
    store, plan = planned
    _run(store, "add", "OP Dup", "--plan", str(plan), "--from", "2025-03-10", "--to", "2025-03-16")
    csv = tmp_path / "plan.csv"
    csv.write_text("x\n", encoding="utf-8")
    result = _run(store, *[a.format(plan=plan, csv=csv) for a in args])
    if message == "shifts":
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    again = _run(store, "add", "op dup", "--plan", str(plan), "--from", "2025-03-10", "--to", "2025-03-16")
    assert again.exit_code == 1 and "exists already" in again.output
