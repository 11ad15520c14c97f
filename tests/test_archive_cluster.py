"""Workers that die during an archive analysis, on a real local cluster of worker processes.

A worker plugin ends its worker's process (``os._exit``) when a task of the chosen kind starts,
as the kernel's out-of-memory killer or a crash would: once (the analysis must finish with the
same cells as without any death) or every time (the analysis must fail with a ClusterError that
names the partitions of the task, not with Dask's own exceptions).
"""
from __future__ import annotations

import os
from pathlib import Path

import dask
import numpy as np
import pytest
from distributed.diagnostics.plugin import WorkerPlugin

from geo_ibm.archive import dask_client, hotspots_from_archive, read_manifest, write_synthetic_archive
from geo_ibm.archive.cluster import cluster_failures, killed_worker_error
from geo_ibm.archive.lattice import clear_grid_cache
from geo_ibm.errors import ClusterError, ValidationError


class EndWorker(WorkerPlugin):
    """End the worker's process when a task whose key starts with ``prefix`` starts; with ``mark``, only the
    first time on the whole cluster (the file ``mark`` is made then)."""

    name = "end-worker"

    def __init__(self, prefix: str, mark: str | None = None) -> None:
        self.prefix, self.mark = prefix, mark

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing" or not str(key).startswith(self.prefix):
            return
        if self.mark is not None:
            try:
                os.close(os.open(self.mark, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
        os._exit(3)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cluster") / "lux"
    write_synthetic_archive(root, n_events=24_000, partitions=8, quarters=4, seed=11)
    return root


def _gi(root: Path, client):
    return hotspots_from_archive(read_manifest(root), client=client, method="gi", cell=3000.0, band=9000.0)


@pytest.mark.parametrize("prefix", ["bin_partitions", "clip_block", "_same"])
def test_a_worker_that_dies_once_costs_a_rerun_not_the_analysis(archive, tmp_path, prefix):
    """Binning, clipping, or the task holding the study area (an input scattered data would lose with
    its worker): the scheduler runs the lost work again and the cells are those of an analysis without
    any death."""
    with dask_client(workers=2) as client:
        reference = _gi(archive, client)
        clear_grid_cache()  # the clipping and the area's holder run again
        mark = tmp_path / "ended"
        client.register_plugin(EndWorker(prefix, str(mark)))
        again = _gi(archive, client)
        assert mark.exists(), "no worker was ended: the test proved nothing"
    np.testing.assert_array_equal(again["count"].to_numpy(), reference["count"].to_numpy())
    np.testing.assert_array_equal(again["gi_z"].to_numpy(), reference["gi_z"].to_numpy())
    assert again.geometry.geom_equals_exact(reference.geometry, tolerance=0).all()


def test_workers_that_keep_dying_are_a_cluster_error_naming_the_partitions(archive):
    manifest = read_manifest(archive)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), dask_client(workers=2) as client:
        reference = _gi(archive, client)  # keeps the grid: the analysis below sends only binning and sums
        client.register_plugin(EndWorker("bin_partitions"))
        with pytest.raises(ClusterError) as caught:
            _gi(archive, client)
    text = str(caught.value)
    assert text.startswith(f"archive {manifest.root}: 1 Dask worker died while binning the partitions ")
    paths = [p.path for p in manifest.partitions]
    named = [p for p in paths if p in text]
    assert named, text
    first = paths.index(named[0])
    assert named == paths[first : first + len(named)]  # the task's run of consecutive partitions
    assert "nothing was analysed" in text and "KilledWorker" not in text
    assert caught.value.http_status == 503 and len(reference) > 0


def test_cluster_failures_names_the_archive_and_leaves_our_errors_alone():
    from distributed.comm.core import CommClosedError

    with pytest.raises(ClusterError, match=r"^archive A: the Dask cluster stopped the analysis \(in <TCP>: gone\)"):
        with cluster_failures("archive A"):
            raise CommClosedError("in <TCP>: gone")
    with pytest.raises(ValidationError, match="bad"), cluster_failures("archive A"):
        raise ValidationError("bad")
    with pytest.raises(KeyError), cluster_failures("archive A"):  # a bug stays a bug, shown in full
        raise KeyError("x")

    class Killed(Exception):
        task, allowed_failures = "bin_partitions-1-0", 2

    many = [f"quarter=2024Q1/part-{i}.parquet" for i in range(7)]
    error = killed_worker_error(Killed(), "archive A", many)
    assert str(error).startswith("archive A: 3 Dask workers died while binning the partitions "
                                 "quarter=2024Q1/part-0.parquet, ")
    assert "part-4.parquet and 2 more (out of memory" in str(error) and "part-5" not in str(error)
    assert "(task bin_partitions-1-0)" in str(error)
