"""Partitioned GeoParquet archives and the hot spot analysis over them on Dask: the archive's io layer.

Every disk (or object-store) access to an archive lives in this package: :mod:`.format`
(partition files, manifest, validation), :mod:`.export` (from an event store),
:mod:`.synthetic` (large generated archives); :mod:`.distributed` runs the per-partition
binning on a Dask cluster and :mod:`.analysis` the hot spot methods on the reduced arrays.
"""
from __future__ import annotations

from geo_ibm.archive.analysis import (
    ARCHIVE_METHODS,
    ArchiveRequest,
    archive_cell,
    archive_study_area,
    check_archive_request,
    hotspots_from_archive,
    kde_raster,
    run_archive_request,
)
from geo_ibm.archive.distributed import (
    TALLY_COLUMNS,
    BinTask,
    add_partials,
    bin_partition,
    check_tally_by,
    dask_client,
    reduce_archive,
    select_partitions,
    tally_archive,
    tally_choices,
)
from geo_ibm.archive.export import export_store
from geo_ibm.archive.format import (
    MANIFEST_NAME,
    ArchiveWriter,
    Manifest,
    PartitionEntry,
    archive_summary,
    check_partitions,
    iter_partition,
    read_manifest,
    read_partition,
)
from geo_ibm.archive.synthetic import write_synthetic_archive

__all__ = [
    "ARCHIVE_METHODS", "MANIFEST_NAME", "TALLY_COLUMNS", "ArchiveRequest", "ArchiveWriter", "BinTask", "Manifest", "PartitionEntry", "add_partials",
    "archive_cell", "archive_study_area", "archive_summary", "bin_partition", "check_archive_request", "check_partitions", "check_tally_by", "dask_client",
    "export_store", "hotspots_from_archive", "iter_partition", "kde_raster", "read_manifest", "read_partition", "reduce_archive", "run_archive_request", "select_partitions",
    "tally_archive", "tally_choices", "write_synthetic_archive",
]
