"""The Dask driver: blocks go to the workers, each of which opens the scan
itself (h5py handles do not pickle), computes its block and writes it (TIFF,
Zarr) or hands it back to the client, which writes it (HDF5: one writer)."""

from __future__ import annotations

import os
import time

from ..exceptions import ParameterError
from ..io import read, volume_writer
from .compute import compute_block
from .config import PipelineConfig
from .read import read_for

__all__ = ["make_client"]

_WORKER_SCANS: dict = {}


def _worker_block(
    scan_path,
    open_kwargs,
    cfg_dict,
    a,
    b,
    start,
    center,
    halo,
    out,
    shape,
    nsino,
    write,
    recon_fn,
    n_threads,
    metadata=None,
):
    """Run on a Dask worker: open the scan (once per worker process), compute a block, write it
    (TIFF, Zarr; with the run's ``metadata``) or return it (HDF5: the client writes)."""
    cfg = PipelineConfig.from_dict(cfg_dict)
    key = (scan_path, tuple(sorted((k, str(v)) for k, v in open_kwargs.items())))
    scan = _WORKER_SCANS.get(key)
    if scan is None:
        scan = _WORKER_SCANS[key] = read(scan_path, **open_kwargs)
    t0 = time.perf_counter()
    raw = read_for(scan, a, b, halo=halo, center=center)
    t1 = time.perf_counter()
    vol = compute_block(raw, scan.theta, center, cfg, recon_fn=recon_fn, n_threads=n_threads)
    t2 = time.perf_counter()
    if write:
        volume_writer(cfg.output.format, out, shape, chunk_rows=nsino, metadata=metadata).write(
            a - start, b - start, vol
        )
        vol = None
    return a, b, vol, (t1 - t0, t2 - t1, time.perf_counter() - t2)


def _run_dask(client, cfg, scan, todo, start, center, halo, writer, out, shape, nsino, recon_fn):
    from distributed import as_completed

    from .._progress import progress

    n_workers = max(1, len(client.scheduler_info()["workers"]))
    nt = cfg.run.n_threads or max(1, (os.cpu_count() or 1) // n_workers)
    cfg_dict = cfg.to_dict()
    write_here = not writer.parallel_safe
    t = [0.0, 0.0, 0.0]
    pending = list(todo)
    in_flight = 2 * n_workers  # bounds what waits in worker (and, for HDF5, client) memory

    def submit(a, b):
        return client.submit(
            _worker_block,
            scan.path,
            scan.open_kwargs,
            cfg_dict,
            a,
            b,
            start,
            center,
            halo,
            str(out),
            shape,
            nsino,
            not write_here,
            recon_fn,
            nt,
            writer.metadata,
            pure=False,
        )

    futures = as_completed([submit(*pending.pop(0)) for _ in range(min(in_flight, len(pending)))])
    with progress(
        total=len(todo),
        desc=f"reconstruct ({n_workers} workers)",
        unit="block",
        enabled=None if cfg.run.progress else False,
    ) as bar:
        for fut in futures:
            a, b, vol, dt = fut.result()
            fut.release()
            for i in range(3):
                t[i] += dt[i]
            if write_here:
                t0 = time.perf_counter()
                writer.write(a - start, b - start, vol)
                t[2] += time.perf_counter() - t0
            bar.update()
            if pending:
                futures.add(submit(*pending.pop(0)))
    return tuple(t)


def make_client(address: str):
    """``local:N`` -> a LocalCluster of N single-threaded worker processes; else a scheduler
    address."""
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            raise ParameterError(
                f"--cluster local:N needs a number of workers, got {address!r}"
            ) from None
        if n < 1:
            raise ParameterError("--cluster local:N needs N >= 1")
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        return Client(cluster)
    return Client(address)
