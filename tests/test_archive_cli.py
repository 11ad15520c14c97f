"""The archive commands run for real: store -> archive -> hotspots on a local Dask cluster, against the store path."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

from geo_ibm.cli import main


def _run(args: list[str], store: Path | None = None):
    prefix = ["--store", str(store)] if store is not None else []
    return CliRunner().invoke(main, [*prefix, *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli_archive")
    store = folder / "store.gpkg"
    assert _run(["demo", "--events", "3000", "--no-account"], store).exit_code == 0
    result = _run(["archive", "export", "--out", str(folder / "arc")], store)
    assert result.exit_code == 0, result.output
    assert "3000 events in" in result.output
    return store, folder / "arc"


def test_info_describes_and_verifies_the_export(exported):
    store, archive = exported
    result = _run(["archive", "info", str(archive), "--verify"])
    assert result.exit_code == 0, result.output
    assert "crs: EPSG:2169" in result.output
    assert "rows: 3000" in result.output
    assert "checksums match" in result.output
    quarters = _run(["info"], store).output
    # the per-quarter counts of the archive are the store's
    listed = [line for line in result.output.split("rows_per_quarter:")[1].splitlines() if line.startswith("  ")]
    assert listed
    for line in listed:
        quarter, rows = (part.strip() for part in line.split(":"))
        assert f"{quarter}: {rows} events" in quarters


@pytest.fixture(scope="module")
def scheduler():
    """A running cluster to point --scheduler at (threads of this process: no worker processes to start)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        yield cluster.scheduler_address


def test_hotspots_over_the_archive_write_what_the_store_path_writes(exported, scheduler, tmp_path):
    store, archive = exported
    ours = tmp_path / "archive.gpkg"
    theirs = tmp_path / "store.gpkg"
    args = ["hotspots", "--method", "gi", "--cell", "1000", "--band", "3000", "--from", "2024-04-01", "--to", "2025-12-31"]
    result = _run([*args, "--out", str(ours), "--archive", str(archive), "--scheduler", scheduler], store)
    assert result.exit_code == 0, result.output
    assert _run([*args, "--out", str(theirs)], store).exit_code == 0
    a, b = gpd.read_file(ours), gpd.read_file(theirs)
    assert list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a["count"].to_numpy(), b["count"].to_numpy())
    np.testing.assert_allclose(a["gi_z"].to_numpy(), b["gi_z"].to_numpy(), rtol=0, atol=1e-12)
    assert a.crs.to_epsg() == 2169
    params = json.loads(result.output[result.output.index("{"): result.output.rindex("}") + 1])
    assert params["workers"] == 2 and params["crs"] == "EPSG:2169"
    assert params["n_events"] == int(b["count"].sum()) + params["n_outside_grid"]
    # audited in the store as the store path's export is, naming the archive and the cluster
    from geo_ibm.store import open_store

    log = open_store(store).audit_log()
    mine = [d for d, a in zip(log["detail"], log["action"]) if a == "export" and d.get("file") == str(ours)]
    assert len(mine) == 1 and mine[0]["archive"] == str(archive) and mine[0]["cluster"] == scheduler
    assert mine[0]["what"] == "hotspots gi" and mine[0]["events"] == params["n_events"]


def test_archive_refusals_name_the_option(exported, tmp_path):
    store, archive = exported
    out = str(tmp_path / "x.gpkg")
    result = CliRunner().invoke(main, ["--store", str(store), "hotspots", "--method", "lisa", "--archive", str(archive), "--out", out])
    assert result.exit_code == 1 and "--method lisa does not run over an archive" in result.output
    result = CliRunner().invoke(main, ["hotspots", "--method", "gi", "--scheduler", "tcp://127.0.0.1:1", "--out", out])
    assert result.exit_code == 1 and "--scheduler needs --archive" in result.output
    result = CliRunner().invoke(main, ["archive", "info", str(tmp_path)])
    assert result.exit_code == 1 and "no archive here" in result.output
    # a thousand local workers would be a thousand processes: refused before any starts
    from geo_ibm.archive.distributed import max_local_workers

    result = CliRunner().invoke(main, ["hotspots", "--method", "gi", "--archive", str(archive), "--workers", "1000", "--out", out])
    assert result.exit_code == 1 and f"workers: 1000 local workers is more than the limit of {max_local_workers()}" in result.output


def test_demo_archives_too_large_for_memory_or_disk_are_refused_before_writing(tmp_path, monkeypatch):
    from geo_ibm.archive import synthetic

    target = tmp_path / "big"
    # 10^10 events in one file would be made in memory at once
    result = CliRunner().invoke(main, ["demo", "--archive", str(target), "--events", "10000000000", "--partitions", "1"])
    assert result.exit_code == 1 and "10,000,000,000 events need at least 500 files" in result.output
    assert "partitions" in result.output and not target.exists()
    # and 10^12 would not fit this disk, whatever the files
    result = CliRunner().invoke(main, ["demo", "--archive", str(target), "--events", "1000000000000"])
    assert result.exit_code == 1 and "GB on disk" in result.output and "events" in result.output
    assert not target.exists()
    monkeypatch.setattr(synthetic.shutil, "disk_usage", lambda where: type("U", (), {"free": 10_000})())
    result = CliRunner().invoke(main, ["demo", "--archive", str(target), "--events", "20000", "--partitions", "20"])
    assert result.exit_code == 1 and "0.0 GB free where the archive goes" in result.output and not target.exists()


def test_demo_writes_a_european_archive_by_country(tmp_path):
    target = tmp_path / "eu"
    result = _run(["demo", "--archive", str(target), "--events", "20000", "--partitions", "20", "--crs", "EPSG:3035"])
    assert result.exit_code == 0, result.output
    assert "20000 events in 20 partitions" in result.output
    info = _run(["archive", "info", str(target)]).output
    assert "crs: EPSG:3035" in info and "ETRS89-extended / LAEA Europe" in info
    assert "partitioning: country, quarter" in info and "rows_per_country:" in info


def test_counts_per_region_and_quarter_equal_the_stores(exported):
    from geo_ibm.archive import dask_client, read_manifest, tally_archive
    from geo_ibm.store import open_store

    store, archive = exported
    with dask_client(workers=2, processes=False, memory_limit=None) as client:
        ours = tally_archive(read_manifest(archive), client=client, by="region")
    theirs = open_store(store).counts(by=("region", "quarter"))
    key = ["region", "quarter"]
    left = ours.sort_values(key).reset_index(drop=True)
    right = theirs.assign(region=theirs["region"].fillna("")).sort_values(key).reset_index(drop=True)
    assert left[key].values.tolist() == right[key].values.tolist()
    assert left["events"].tolist() == right["events"].astype(int).tolist()
    assert left["persons"].tolist() == right["persons"].astype(int).tolist()


def test_counts_command_per_region_and_quarter_equals_the_store(exported, scheduler, tmp_path):
    import pandas as pd

    from geo_ibm.store import open_store

    store, archive = exported
    out = tmp_path / "counts.csv"
    result = _run(["archive", "counts", str(archive), "--by", "region", "--scheduler", scheduler, "--out", str(out)], store)
    assert result.exit_code == 0, result.output
    ours = pd.read_csv(out, encoding="utf-8-sig", keep_default_na=False)
    theirs = open_store(store).counts(by=("region", "quarter"))
    theirs = theirs.assign(region=theirs["region"].fillna("")).sort_values(["region", "quarter"]).reset_index(drop=True)
    assert ours[["region", "quarter"]].values.tolist() == theirs[["region", "quarter"]].values.tolist()
    assert ours["events"].tolist() == theirs["events"].astype(int).tolist()
    assert ours["persons"].tolist() == theirs["persons"].astype(int).tolist()
    # a period, printed: the days of --from and --to included, as the store counts them
    printed = _run(["archive", "counts", str(archive), "--from", "2024-04-01", "--to", "2024-09-30", "--scheduler", scheduler],
                   store)
    assert printed.exit_code == 0, printed.output
    expected = len(open_store(store).events(start="2024-04-01", end="2024-09-30"))  # a date alone: that whole day
    rows = [line.split() for line in printed.output.splitlines() if line.strip().startswith("2024Q")]
    assert [r[0] for r in rows] == ["2024Q2", "2024Q3"] and sum(int(r[1]) for r in rows) == expected > 0
    # both audited as exports of the archive
    log = open_store(store).audit_log()
    mine = [d for d, a in zip(log["detail"], log["action"]) if a == "export" and d.get("archive") == str(archive)
            and d.get("what", "").startswith("archive counts")]
    assert {d["file"] for d in mine} >= {str(out), "-"}


def test_counts_command_refusals_name_the_option(exported, tmp_path, forbid):
    store, archive = exported
    forbid("geo_ibm.archive.dask_client")  # refused before any cluster is started
    result = CliRunner().invoke(main, ["--store", str(store), "archive", "counts", str(archive), "--out", str(tmp_path / "c.txt")])
    assert result.exit_code == 1 and "--out" in result.output and ".csv" in result.output
    result = CliRunner().invoke(main, ["--store", str(store), "archive", "counts", str(archive), "--from", "2025-01-02",
                                       "--to", "2025-01-01"])
    assert result.exit_code == 1 and "--from must come before --to" in result.output
    result = CliRunner().invoke(main, ["--store", str(store), "archive", "counts", str(archive), "--from", "yesterday-ish"])
    assert result.exit_code == 1 and "--from" in result.output
