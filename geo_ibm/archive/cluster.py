"""What every archive task on a Dask cluster shares: inputs the cluster can rebuild, and its failures as our errors.

A worker may die in the middle of an analysis (killed for its memory, a crashed process, a
machine of a cluster taken away). Dask runs a lost task again on another worker, but data put
on the cluster with ``Client.scatter`` lives only in the workers that received it: once they are
gone it cannot be rebuilt, and every task that needs it is cancelled. :func:`hold` puts an input
on the cluster as the result of a task instead, which the scheduler runs again when its result is
lost. :func:`cluster_failures` turns what Dask raises when it gives up (a task whose workers kept
dying, a scheduler gone, a lost connection) into a :class:`~geo_ibm.errors.ClusterError` naming
the archive.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from geo_ibm.errors import ClusterError, GeoIbmError

if TYPE_CHECKING:
    from distributed import Client, Future


def _same(value: Any) -> Any:
    return value


def hold(client: Client, value: Any, *, priority: int = 0) -> Future:
    """``value`` kept on the cluster as the result of a task that returns it.

    Tasks given the future receive ``value`` (fetched once by each worker that runs one); when
    the worker holding it dies, the scheduler runs the task again from its own copy, where
    scattered data would be lost with the worker. The scheduler keeps that copy while the future
    lives, so ``value`` should be a few megabytes at most (a study area's WKB, a grid's lookup).
    """
    with warnings.catch_warnings():
        # the value goes once, not once per task, which is what the warning is about
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return client.submit(_same, value, pure=False, priority=priority)


def killed_worker_error(exc: BaseException, where: str, partitions: list[str] | None = None) -> ClusterError:
    """The error for Dask's ``KilledWorker`` ``exc``: what the task did, how many workers died running it, and
    the partitions it read (``partitions``) when it was binning them."""
    task = str(getattr(exc, "task", ""))
    tries = int(getattr(exc, "allowed_failures", 0)) + 1
    role = "running the analysis"
    if partitions:
        more = f" and {len(partitions) - 5} more" if len(partitions) > 5 else ""
        role = f"binning the partitions {', '.join(partitions[:5])}{more}"
    return ClusterError(
        f"{where}: {tries} Dask worker{'s' if tries > 1 else ''} died while {role} (out of memory, or the process "
        f"crashed); nothing was analysed. The workers' logs say why (task {task}); a worker needs the memory of "
        "one partition's columns, see docs/ARCHIVE.md")


@contextmanager
def cluster_failures(where: str) -> Iterator[None]:
    """Run the block, turning the cluster's failures into a :class:`~geo_ibm.errors.ClusterError` about ``where``.

    Our own errors pass through unchanged; so does any other exception (a bug to see in full).
    """
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    try:
        yield
    except GeoIbmError:
        raise
    except KilledWorker as exc:
        raise killed_worker_error(exc, where) from None
    except (CommClosedError, CancelledError, TimeoutError) as exc:
        # a task cancelled without our asking (its input lost, the scheduler restarted or gone),
        # a connection closed, or a scheduler that stopped answering
        reason = str(exc).strip() or exc.__class__.__name__
        raise ClusterError(f"{where}: the Dask cluster stopped the analysis ({reason}); nothing was analysed. Run it "
                           "again; if it happens again, see the scheduler's and the workers' logs") from None


__all__ = ["cluster_failures", "hold", "killed_worker_error"]
